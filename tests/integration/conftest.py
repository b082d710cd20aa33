"""Integration fixtures: hub processes that are always stopped after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import HubProcess


@pytest.fixture
def hub_processes(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Factory for real hub processes; every one started is stopped by PID afterwards."""
    started: list[HubProcess] = []

    def make(**kwargs: Any) -> HubProcess:
        proc = HubProcess(kwargs.pop("workdir", tmp_path), **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()
