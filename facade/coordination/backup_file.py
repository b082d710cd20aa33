"""The hub's backup file: a versioned, checksummed JSON-lines stream, gzip-compressed.

Layout (docs/operations.md has the operator's view), one JSON object per line::

    {"t": "header", "format": "central-hub-backup", "format_version": 1,
     "source_backend": "embedded", "source": {...}, "revision": 4711,
     "created_at": "2026-12-01T15:40:00.000Z", "consistency": "...",
     "leases": "...", "counts": {"keys": 120, "by_prefix": {"tenants": 3, ...},
     "audit_records": 0, "skipped_leased": 4}}
    {"t": "kv", "key": "tenants/acme", "value": "<base64>", "create_revision": 17,
     "mod_revision": 42, "version": 3}
    ...
    {"t": "audit", "record": {...}}                     (only with audit included)
    {"t": "end", "lines": 123, "sha256": "<hex>"}

``sha256`` covers every byte before the ``end`` line (uncompressed, newlines included) and
``lines`` counts those lines, so a file cut anywhere (even at a line boundary), altered,
or of another format version is refused by :func:`read_backup` before a restore writes
anything. Values are base64 because the keyspace holds bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters import AuditRecord, KeyValue
from shared.errors import InvalidRequest

FORMAT_NAME = "central-hub-backup"
FORMAT_VERSION = 1
"""Bumped on any change a reader of the previous version would misread."""
MAX_FILE_BYTES = 2 * 1024**3
"""Largest uncompressed backup :func:`read_backup` accepts (a guard against gzip bombs)."""


@dataclass
class Backup:
    """A backup's content: its header, keys (in key order) and optional audit records."""

    header: dict[str, Any]
    items: list[KeyValue]
    audit: list[AuditRecord] = field(default_factory=list)

    @property
    def revision(self) -> int:
        """The source backend's revision the snapshot was taken at."""
        return int(self.header["revision"])


def encode_lines(backup: Backup) -> Iterator[bytes]:
    """The uncompressed lines of ``backup``, the ``end`` line (checksum) last."""
    digest = hashlib.sha256()
    count = 0

    def emit(obj: dict[str, Any]) -> bytes:
        nonlocal count
        line = orjson.dumps(obj) + b"\n"
        digest.update(line)
        count += 1
        return line

    yield emit({"t": "header", **backup.header})
    for kv in backup.items:
        yield emit(
            {
                "t": "kv",
                "key": kv.key,
                "value": base64.b64encode(kv.value).decode(),
                "create_revision": kv.create_revision,
                "mod_revision": kv.mod_revision,
                "version": kv.version,
            }
        )
    for record in backup.audit:
        yield emit({"t": "audit", "record": record})
    yield orjson.dumps({"t": "end", "lines": count, "sha256": digest.hexdigest()}) + b"\n"


def gzip_chunks(lines: Iterable[bytes], *, level: int = 6) -> Iterator[bytes]:
    """``lines`` as a gzip stream, in chunks (for streaming an HTTP answer)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pending: list[bytes] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= 64 * 1024:
            chunk = compressor.compress(b"".join(pending))
            pending, size = [], 0
            if chunk:
                yield chunk
    yield compressor.compress(b"".join(pending)) + compressor.flush()


def write_backup(backup: Backup, path: Path) -> int:
    """Write ``backup`` to ``path`` atomically (a temporary file renamed); return its size."""
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("wb") as out:
        for chunk in gzip_chunks(encode_lines(backup)):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return path.stat().st_size


def _refuse(reason: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"backup file refused: {message}", details={"reason": reason})


def read_backup(data: bytes) -> Backup:
    """Parse and verify a whole backup file; raise InvalidRequest (``details.reason``:
    ``not_gzip``, ``truncated``, ``corrupted``, ``wrong_format``, ``wrong_version``,
    ``checksum``) without returning anything partial."""
    try:
        raw = _gunzip(data)
    except EOFError as exc:
        raise _refuse("truncated", "the gzip stream ends early (file truncated)") from exc
    except (OSError, zlib.error) as exc:
        if not data.startswith(b"\x1f\x8b"):
            raise _refuse("not_gzip", "not a gzip file") from exc
        raise _refuse("corrupted", f"the gzip stream is damaged ({exc})") from exc
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    else:
        raise _refuse("truncated", "the last line is incomplete (file truncated)")
    if not lines:
        raise _refuse("truncated", "the file is empty")
    try:
        header = orjson.loads(lines[0])
        end = orjson.loads(lines[-1])
    except orjson.JSONDecodeError as exc:
        raise _refuse("corrupted", "a line is not JSON") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _refuse("wrong_format", f"not a {FORMAT_NAME} file")
    if header.get("format_version") != FORMAT_VERSION:
        raise _refuse(
            "wrong_version",
            f"format version {header.get('format_version')!r} is not supported "
            f"(this hub reads version {FORMAT_VERSION})",
        )
    if not isinstance(end, dict) or end.get("t") != "end":
        raise _refuse("truncated", "the end line (with the checksum) is missing")
    body = lines[:-1]
    digest = hashlib.sha256()
    for line in body:
        digest.update(line + b"\n")
    if end.get("lines") != len(body) or end.get("sha256") != digest.hexdigest():
        raise _refuse("checksum", "the checksum does not match the content (file altered)")
    return _parse(header, body[1:])


def _gunzip(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(data, MAX_FILE_BYTES)
    if decompressor.unconsumed_tail:
        raise _refuse("corrupted", f"uncompressed content exceeds {MAX_FILE_BYTES} bytes")
    if not decompressor.eof:
        raise EOFError("gzip stream incomplete")
    return out


def _parse(header: dict[str, Any], lines: list[bytes]) -> Backup:
    header = {k: v for k, v in header.items() if k != "t"}
    items: list[KeyValue] = []
    audit: list[AuditRecord] = []
    try:
        for line in lines:
            obj = orjson.loads(line)
            if obj["t"] == "kv":
                items.append(
                    KeyValue(
                        key=str(obj["key"]),
                        value=base64.b64decode(obj["value"], validate=True),
                        create_revision=int(obj["create_revision"]),
                        mod_revision=int(obj["mod_revision"]),
                        version=int(obj["version"]),
                    )
                )
            elif obj["t"] == "audit" and isinstance(obj["record"], dict):
                audit.append(obj["record"])
            else:
                raise ValueError(f"unknown line type {obj['t']!r}")
        int(header["revision"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        # The checksum matched, so this file was written wrong, not damaged later.
        raise _refuse("corrupted", f"a line is malformed ({exc})") from exc
    return Backup(header=header, items=items, audit=audit)


def read_backup_file(path: Path) -> Backup:
    """:func:`read_backup` of a file; an unreadable file is refused the same way."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse("unreadable", f"cannot read {path}: {exc.strerror or exc}") from exc
    return read_backup(data)


def gzip_bytes(backup: Backup) -> bytes:
    """The whole file in memory (tests, small hubs)."""
    return b"".join(gzip_chunks(encode_lines(backup)))


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Backup",
    "encode_lines",
    "gzip_bytes",
    "gzip_chunks",
    "read_backup",
    "read_backup_file",
    "write_backup",
]
