"""Regenerate the code committed beside the .proto files under ``proto/``.

Python (``*_pb2.py`` plus ``*_pb2.pyi`` stubs) comes from grpcio-tools' bundled protoc;
TypeScript (``proto/ts/proto/...``) from ts-proto, installed by npm into
``proto/ts/node_modules`` from the committed lock file. The Node.js package
(``proto/node``: CommonJS ``.js`` plus ``.d.ts`` and an ``index``) is those TypeScript
files compiled by the locked ``tsc``, so a Node service needs no TypeScript build.

The include root is the repository root, so ``import "proto/common/..."`` in a schema
becomes ``from proto.common import ..._pb2`` in Python: the generated modules import
each other as the installed ``proto`` package, with no ``sys.path`` tricks.

Usage::

    python scripts/gen_proto.py                  # regenerate in place (Python + TS + Node)
    python scripts/gen_proto.py --python-only
    python scripts/gen_proto.py --out /tmp/x     # write elsewhere (the staleness test)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO / "proto"
TS_DIR = PROTO_DIR / "ts"
NODE_DIR = PROTO_DIR / "node"
TS_PLUGIN = TS_DIR / "node_modules" / ".bin" / "protoc-gen-ts_proto"
# forceLong=string keeps int64 timestamps exact in JavaScript; the rest keeps the output
# plain interfaces + codecs without gRPC service stubs.
TS_OPTIONS = "forceLong=string,esModuleInterop=true,useOptionals=none,outputServices=false"


def proto_files() -> list[str]:
    """Every schema, as paths relative to the include root (the repository)."""
    return sorted(
        str(p.relative_to(REPO))
        for p in PROTO_DIR.rglob("*.proto")
        if "node_modules" not in p.parts
    )


def _protoc(args: list[str]) -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = str(Path(grpc_tools.__file__).parent / "_proto")
    argv = ["grpc_tools.protoc", f"-I{REPO}", f"-I{well_known}", *args, *proto_files()]
    # protoc resolves the files relative to the include root; run from there.
    code = protoc.main(argv)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}: {' '.join(argv)}")


def generate_python(out: Path) -> None:
    """Write ``proto/**/*_pb2.py`` and ``*_pb2.pyi`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _protoc([f"--python_out={out}", f"--pyi_out={out}"])


def ensure_ts_plugin() -> Path:
    """Install ts-proto from the committed lock file unless it is already there."""
    if not TS_PLUGIN.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed to generate the TypeScript definitions")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=TS_DIR,
            check=True,
            timeout=300,
        )
    return TS_PLUGIN


def generate_typescript(out: Path) -> None:
    """Write the TypeScript definitions under ``out`` (``<out>/proto/...``)."""
    plugin = ensure_ts_plugin()
    out.mkdir(parents=True, exist_ok=True)
    _protoc(
        [
            f"--plugin=protoc-gen-ts_proto={plugin}",
            f"--ts_proto_out={out}",
            f"--ts_proto_opt={TS_OPTIONS}",
        ]
    )


def generate_node(ts_root: Path, out: Path) -> None:
    """Compile the TypeScript under ``ts_root/proto`` into ``out/proto`` (CommonJS + .d.ts)
    and write ``out/index.js`` / ``index.d.ts`` exposing every module by package path
    (``require("@aitrading/central-hub-proto-node").common.base.MessageEnvelope``)."""
    ensure_ts_plugin()  # the same npm install brings the locked TypeScript compiler
    tsc = TS_DIR / "node_modules" / ".bin" / "tsc"
    # Compiled from a copy inside proto/ts, so "@bufbuild/protobuf/wire" resolves from
    # the locked node_modules whatever ``ts_root`` is (e.g. the staleness test's tmp dir).
    staging = TS_DIR / ".node-build"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(ts_root / "proto", staging)
    sources = sorted(staging.rglob("*.ts"))
    shutil.rmtree(out / "proto", ignore_errors=True)
    try:
        subprocess.run(
            [
                str(tsc),
                "--outDir",
                str(out / "proto"),
                "--rootDir",
                str(staging),
                "--declaration",
                "--module",
                "commonjs",
                "--target",
                "es2020",
                "--strict",
                "--esModuleInterop",
                "--skipLibCheck",
                *[str(p) for p in sources],
            ],
            check=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    sources = sorted((ts_root / "proto").rglob("*.ts"))
    modules: dict[str, list[str]] = {}
    for source in sources:
        rel = source.relative_to(ts_root / "proto").with_suffix("")
        modules.setdefault(rel.parts[0], []).append(rel.name)
    header = "// Generated by scripts/gen_proto.py. DO NOT EDIT.\n"
    js = [header, '"use strict";\n']
    dts = [header]
    for package, names in sorted(modules.items()):
        entries = ", ".join(f'{n}: require("./proto/{package}/{n}")' for n in sorted(names))
        js.append(f"exports.{package} = {{ {entries} }};\n")
        for n in sorted(names):
            dts.append(f'import * as {package}_{n} from "./proto/{package}/{n}";\n')
    for package, names in sorted(modules.items()):
        members = "; ".join(f"{n}: typeof {package}_{n}" for n in sorted(names))
        dts.append(f"export declare const {package}: {{ {members} }};\n")
    (out / "index.js").write_text("".join(js))
    (out / "index.d.ts").write_text("".join(dts))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO, help="root to write into")
    parser.add_argument("--python-only", action="store_true")
    parser.add_argument("--ts-only", action="store_true", help="TypeScript and Node only")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if not args.ts_only:
        generate_python(out)
    if not args.python_only:
        # The TS tree mirrors the schema paths under proto/ts/.
        generate_typescript(out / "proto" / "ts")
        generate_node(out / "proto" / "ts", out / "proto" / "node")
    return 0


if __name__ == "__main__":
    sys.exit(main())
