"""Fixtures for the codec tests: the real packets, read once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


def _read_all(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.avro"))}


@pytest.fixture(scope="session")
def ztf_packets(shared_alerts: Path) -> dict[str, bytes]:
    """Every real ZTF packet, by file name."""
    packets = _read_all(shared_alerts / "ztf")
    assert len(packets) >= 100, "expected the full set of real ZTF packets"
    return packets
