"""Fixtures for the daemon's tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test modules import ``stream_helpers`` (the tests folders are no packages).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream_helpers import Daemon  # noqa: E402


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    """A list tests append their daemons to; every daemon left running is killed after."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.ensure_stopped()
