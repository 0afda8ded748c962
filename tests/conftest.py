"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ALERTS = REPO.parent / "shared" / "alerts"


@pytest.fixture(scope="session")
def shared_alerts() -> Path:
    """The real public alert packets in ``../shared/alerts`` (never copied into the repo)."""
    if not (SHARED_ALERTS / "ztf").is_dir():
        pytest.skip(f"real alert packets not found at {SHARED_ALERTS} (../shared/alerts)")
    return SHARED_ALERTS
