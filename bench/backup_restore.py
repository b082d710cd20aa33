"""Backup and restore cost (issue 14): snapshot, encode, verify, restore per backend.

Fills an embedded store with ``--keys`` config history entries (plus overwrites, so the
revision runs ahead of the key count), then times the snapshot, the gzip encoding, the
verification of the file, a restore into a fresh embedded store (one transaction) and a
restore into a fresh one-member etcd (one write per key plus the writes that advance
etcd's revision so every key keeps its revision). Prints figures; asserts nothing.

    python -m bench.backup_restore [--keys 5000]   (from the repo root)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from adapters import Put
from adapters.etcd import EtcdBackend
from adapters.sqlite import SQLiteBackend
from facade.coordination.backup_file import gzip_bytes, read_backup
from facade.coordination.backups import create_backup, restore_backup
from tests.etcd_cluster import EtcdCluster


async def run(keys: int) -> None:
    """Fill, back up, restore; print each step's time."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    source = SQLiteBackend(workdir / "source")
    await source.open()
    for start in range(0, keys, 100):
        batch = range(start, min(keys, start + 100))
        await source.put_all(
            [
                Put(f"config/tenants/t{j % 50}/history/{j:012d}", b'{"config": {"x": %d}}' % j)
                for j in batch
            ]
        )
    for start in range(0, keys // 2, 100):  # overwrites: gaps in the revisions kept
        batch = range(start, min(keys // 2, start + 100))
        await source.put_all(
            [Put(f"config/tenants/t{j % 50}/history/{j:012d}", b"{}") for j in batch]
        )
    began = time.perf_counter()
    backup = await create_backup(source)
    snap = time.perf_counter() - began
    began = time.perf_counter()
    data = gzip_bytes(backup)
    encode = time.perf_counter() - began
    began = time.perf_counter()
    parsed = read_backup(data)
    verify = time.perf_counter() - began
    print(
        f"keys {len(backup.items)}, source revision {backup.revision}: snapshot "
        f"{snap * 1000:.0f} ms, encode+gzip {encode * 1000:.0f} ms ({len(data)} bytes), "
        f"verify+parse {verify * 1000:.0f} ms"
    )
    target = SQLiteBackend(workdir / "target")
    await target.open()
    began = time.perf_counter()
    report = await restore_backup(target, parsed)
    print(
        f"restore into embedded: {time.perf_counter() - began:.2f} s, "
        f"revisions kept: {report.revisions_kept}"
    )
    await target.close()
    cluster = EtcdCluster(workdir / "etcd").start()
    try:
        etcd = EtcdBackend(cluster.endpoints, namespace="hub")
        await etcd.open()
        began = time.perf_counter()
        report = await restore_backup(etcd, parsed)
        took = time.perf_counter() - began
        print(
            f"restore into etcd: {took:.2f} s for {backup.revision} revisions "
            f"({backup.revision / took:.0f} writes/s), revisions kept: {report.revisions_kept}"
        )
        await etcd.close()
    finally:
        cluster.stop()
    await source.close()


def main() -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=5000)
    asyncio.run(run(parser.parse_args().keys))


if __name__ == "__main__":
    main()
