"""Fixtures for reading results: stampflow output records made without any model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_helpers import annotated_file  # noqa: E402


@pytest.fixture(scope="module")
def output_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive-mode output file with the four alerts of ``results_helpers.VERDICTS``."""
    return annotated_file(tmp_path_factory.mktemp("annotated") / "annotated-full-x.avro")
