"""The backup file format and ``central-hub backup restore`` refusing bad files."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path

import orjson
import pytest

from adapters.sqlite import SQLiteBackend
from facade.cli.main import main
from facade.coordination.backup_file import FORMAT_VERSION, gzip_bytes, read_backup
from facade.coordination.backups import create_backup
from shared.errors import InvalidRequest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_BACKEND", "HUB_DATA_DIR", "HUB_ADMIN_TOKEN", "HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _source_backup(tmp_path: Path) -> bytes:
    async def build() -> bytes:
        backend = SQLiteBackend(tmp_path / "source")
        await backend.open()
        try:
            await backend.put("tenants/acme", b'{"subscription_tier": "pro"}')
            await backend.put("config/tenants/acme/history/000000000001", b'{"config": {}}')
            await backend.put("tokens/abc", b'{"secret_sha256": "00"}')
            lease = await backend.grant_lease(30)
            await backend.put("catalog/svc/ttl-1", b"{}", lease=lease.id)
            await backend.put("health/svc/ttl-1", b'{"status": "healthy"}')
            await backend.append_audit([{"id": "00000000000000000001-aa", "action": "x"}])
            return gzip_bytes(await create_backup(backend, include_audit=True))
        finally:
            await backend.close()

    return asyncio.run(build())


def _lines(data: bytes) -> list[bytes]:
    return gzip.decompress(data).splitlines(keepends=True)


def _with_checksum(lines: list[bytes]) -> bytes:
    """Re-seal ``lines`` (without an end line) with a correct checksum."""
    digest = hashlib.sha256(b"".join(lines)).hexdigest()
    end = orjson.dumps({"t": "end", "lines": len(lines), "sha256": digest}) + b"\n"
    return gzip.compress(b"".join(lines) + end)


def test_header_counts_and_leases_left_out(tmp_path: Path) -> None:
    backup = read_backup(_source_backup(tmp_path))
    header = backup.header
    assert header["format_version"] == FORMAT_VERSION
    assert header["source_backend"] == "embedded"
    assert header["revision"] >= 4
    # The TTL instance and its health record are not kept; leases do not survive.
    assert header["counts"]["skipped_leased"] == 2
    assert header["counts"]["by_prefix"] == {"config": 1, "tenants": 1, "tokens": 1}
    assert header["counts"]["audit_records"] == 1
    assert {kv.key for kv in backup.items} == {
        "config/tenants/acme/history/000000000001",
        "tenants/acme",
        "tokens/abc",
    }
    assert backup.audit[0]["action"] == "x"


def _bad_files(good: bytes) -> dict[str, bytes]:
    lines = _lines(good)
    body = lines[:-1]
    altered = [line.replace(b"tokens/abc", b"tokens/abd") for line in body]
    assert altered != body
    header = orjson.loads(body[0])
    header["format_version"] = FORMAT_VERSION + 1
    return {
        "truncated-gzip": good[: len(good) // 2],
        "truncated-at-line": gzip.compress(b"".join(lines[:-2])),
        "no-end-line": gzip.compress(b"".join(body)),
        "checksum": gzip.compress(b"".join(altered) + lines[-1]),
        "wrong-version": _with_checksum([orjson.dumps(header) + b"\n", *body[1:]]),
        "corrupted-gzip": good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:],
        "not-gzip": b"hello\n",
    }


def test_read_backup_refuses_every_damaged_file(tmp_path: Path) -> None:
    good = _source_backup(tmp_path)
    reasons = {}
    for name, data in _bad_files(good).items():
        with pytest.raises(InvalidRequest) as caught:
            read_backup(data)
        reasons[name] = caught.value.details["reason"]
    assert reasons == {
        "truncated-gzip": "truncated",
        "truncated-at-line": "truncated",
        "no-end-line": "truncated",
        "checksum": "checksum",
        "wrong-version": "wrong_version",
        "corrupted-gzip": reasons["corrupted-gzip"],
        "not-gzip": "not_gzip",
    }
    assert reasons["corrupted-gzip"] in ("corrupted", "checksum", "truncated")


def test_cli_restore_of_a_bad_file_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _source_backup(tmp_path)
    for name, data in _bad_files(good).items():
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(data)
        target = tmp_path / f"target-{name}"
        code = main(
            ["backup", "restore", str(path), "--backend", "embedded", "--data-dir", str(target)]
        )
        err = capsys.readouterr().err
        assert code == 1, name
        assert err.count("\n") == 1, (name, err)
        assert "backup file refused" in err, (name, err)
        # Refused before any backend was opened: not even an empty store was created.
        assert not target.exists(), name


def test_cli_restore_into_empty_then_refuses_non_empty_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.jsonl.gz"
    path.write_bytes(_source_backup(tmp_path))
    target = tmp_path / "target"
    args = ["backup", "restore", str(path), "--backend", "embedded", "--data-dir", str(target)]
    assert main(args) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["keys"] == 3
    assert report["revisions_kept"]
    assert report["atomic"]
    assert report["audit_records"] == 1
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "not empty" in err
    assert err.count("\n") == 1
    assert main([*args, "--force"]) == 0

    async def keys() -> list[str]:
        backend = SQLiteBackend(target)
        await backend.open()
        try:
            return [kv.key for kv in (await backend.range("")).items]
        finally:
            await backend.close()

    assert asyncio.run(keys()) == [
        "config/tenants/acme/history/000000000001",
        "tenants/acme",
        "tokens/abc",
    ]
