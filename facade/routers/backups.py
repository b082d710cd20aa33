"""``POST /admin/backups``: a backup of the hub's state, streamed (issue 14)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from facade.coordination.backup_file import encode_lines, gzip_chunks
from facade.coordination.backups import backup_file_name, create_backup
from facade.routers.dependencies import Administrator, HubDep

router = APIRouter(tags=["backups"])


@router.post(
    "/admin/backups",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}}, "description": "The backup file."}},
)
async def create_backup_route(
    hub: HubDep,
    _: Administrator,
    audit: Annotated[bool, Query(description="Include the audit log.")] = False,
) -> StreamingResponse:
    """Snapshot the hub's state at one backend revision and stream it as a backup file.

    The snapshot is read before the answer starts, so a backend failure is an error
    answer, never a cut file; the format is in docs/operations.md.
    """
    backup = await create_backup(hub.backend, include_audit=audit)
    name = backup_file_name(backup)
    return StreamingResponse(
        gzip_chunks(encode_lines(backup)),
        media_type="application/gzip",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "x-backup-revision": str(backup.revision),
            "x-backup-keys": str(len(backup.items)),
        },
    )
