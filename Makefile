# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run` needs only the hub's own dependencies; the dev toolchain comes with STAMP.
RUN_STAMP := $(VENV)/.installed-run
# Most of the suite waits on real processes (etcd, Consul, hub replicas), not the CPU, so
# four pytest-xdist workers finish it in about a third of the time even on 2 cores.
PYTEST_WORKERS ?= 4

.PHONY: run test lint typecheck pytest bench bench-etcd clean proto

# pip's progress stays visible: the first install takes a while.
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/central-hub run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The live Consul suites start `consul agent -dev`; the script installs consul when it can.
pytest: $(STAMP)
	sh scripts/ensure_test_services.sh
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

# Regenerate proto/**/*_pb2.py(i), proto/ts/ and proto/node/ from the .proto files (installs ts-proto via npm).
proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

bench: $(STAMP)
	$(BIN)/python -m bench.discovery
	$(BIN)/python -m bench.config_push

bench-etcd: $(STAMP)
	$(BIN)/python -m bench.etcd_propagation

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache hub-data
