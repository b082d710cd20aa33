"""Schema-driven fuzzing of every documented operation against a real hub process.

Schemathesis generates valid and invalid requests from the OpenAPI schema. Whatever it
sends, the hub must never answer 5xx, and every error must have the standard shape.
Bounded: a fixed number of examples per operation, no deadline flakiness.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.processes import HubProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzzed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    # The token bucket is raised so the fuzzer measures behaviour, not rate limiting.
    hub = HubProcess(
        workdir,
        args=["--data-dir", str(workdir / "data")],
        env={"HUB_RATE_LIMIT_PER_TOKEN": "100000", "HUB_RATE_LIMIT_BURST": "100000"},
    )
    hub.start()
    yield hub
    hub.stop()


def check_answer(response: schemathesis.Response) -> None:
    """No 5xx, and every error in the standard shape."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert {"code", "message", "details"} <= set(body["error"]), body
        assert isinstance(body["error"]["details"], dict), body


def test_no_input_produces_a_server_error(fuzzed_hub: HubProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_hub.url}/openapi.json")
    headers = {"authorization": f"Bearer {fuzzed_hub.admin_token}"}
    # Server-sent-event streams never end, so a plain call cannot read them; their input
    # handling is covered by the config push tests.
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if not op.path.endswith("/watch")
    ]
    assert len(operations) >= 10
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            if case.query and "index" in case.query:
                case.query["wait"] = "1s"  # long polls: keep the fuzz run bounded
            response = case.call(base_url=fuzzed_hub.url, headers=headers, timeout=30)
            if response.status_code >= 500:
                request = (case.method, case.formatted_path, case.query, case.body)
                pytest.fail(f"{request} -> {response.status_code}\n{fuzzed_hub.log()[-3000:]}")
            check_answer(response)

        fuzz()
    print(f"fuzzed {len(operations)} operations with {calls} requests")
    assert calls >= len(operations)
