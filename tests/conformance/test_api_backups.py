"""Backups through the API, over every backend: POST /admin/backups and the catalog's
``backup`` declarations (issue 14)."""

from __future__ import annotations

from facade.coordination.backup_file import read_backup
from tests.conformance.conftest import RunningHub, assert_error


async def test_admin_backup_streams_a_verified_file_of_this_backend(
    running_hub: RunningHub,
) -> None:
    api = running_hub.client
    resp = await api.post("/tenants", json={"tenant_id": "acme", "subscription_tier": "pro"})
    assert resp.status_code == 201, resp.text
    resp = await api.post("/admin/backups")
    assert resp.status_code == 200, resp.text
    backup = read_backup(resp.content)
    assert backup.header["source_backend"] == running_hub.hub.backend.name
    assert backup.header["consistency"] == running_hub.hub.backend.snapshot_consistency
    assert "tenants/acme" in {kv.key for kv in backup.items}
    # Secrets never leave: tokens are hashes, and the header holds no credentials.
    assert b"conformance-admin-" not in resp.content
    reader = await running_hub.issue("read-only")
    async with running_hub.client_with(reader) as client:
        assert_error(await client.post("/admin/backups"), 403, "forbidden")


async def test_the_catalog_keeps_a_backup_declaration(running_hub: RunningHub) -> None:
    declaration = {"endpoint": "/ops/backup", "depends_on": ["db"], "timeout_seconds": 12.5}
    body = {"name": "ledger", "host": "127.0.0.1", "port": 18555, "backup": declaration}
    resp = await running_hub.client.post("/services/register", json=body)
    assert resp.status_code in (200, 201), resp.text
    instance_id = resp.json()["instance_id"]
    state = running_hub.hub.catalog.get("ledger")
    assert state is not None
    assert state.instances[instance_id].backup == declaration
    bad = body | {"backup": {"timeout_seconds": 0}}
    assert_error(
        await running_hub.client.post("/services/register", json=bad), 422, "invalid_request"
    )
