"""Background tasks of the hub's services: the one way they are ended."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel every task given (``None`` skipped), then wait until each has ended.

    All are cancelled before any is awaited, so they wind down together; a task's own
    cancellation is expected and swallowed, any other exception it ends with is not.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
