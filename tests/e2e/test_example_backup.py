"""The example trading service takes part in a system-wide backup (issue 14).

The hub and the service run as separate processes; ``POST /coordination/backups`` makes
the hub call the service's ``POST /backup`` (served by BaseService for the hook the
service supplies), and the run records the location the service reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shared.client import HubClient
from tests.e2e.test_example_service import SERVICE, ServiceProcess, discoverable, eventually
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow


def test_the_example_service_backs_up_when_the_hub_coordinates_a_backup(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path, args=["--data-dir", str(tmp_path / "hub-data")]).start()
    service: ServiceProcess | None = None
    try:
        with hub.client() as admin:
            issued = admin.post(
                "/tokens", json={"role": "service", "name": SERVICE, "services": [SERVICE]}
            )
            assert issued.status_code == 201, issued.text
            backups = tmp_path / "service-backups"
            service = ServiceProcess(
                tmp_path, hub.url, "--backup-dir", str(backups), token=issued.json()["token"]
            )
            with HubClient(hub.url, token=TEST_ADMIN_TOKEN) as client:
                eventually(lambda: discoverable(client), what=f"registered\n{service.log()}")
            run = admin.post("/coordination/backups").json()
            deadline = time.monotonic() + 30
            while True:
                run = admin.get(f"/coordination/backups/{run['id']}").json()
                if run["state"] in ("succeeded", "partial") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        assert run["state"] == "succeeded", (run, service.log())
        entry = run["services"][SERVICE]
        assert entry["status"] == "succeeded"
        written = Path(urlsplit(entry["location"]).path)
        assert written.parent == backups
        saved = json.loads(written.read_text())
        assert saved["backup_id"] == run["id"]
        assert saved["service"] == SERVICE
    finally:
        if service is not None:
            service.stop()
        hub.stop()
