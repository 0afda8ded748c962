"""The daemon decodes without the history (``skip_history``) yet publishes whole alerts."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro

from stampflow.stream.cli import main


def test_archive_run_of_real_packets_publishes_their_prv_candidates(
    shared_alerts: Path, tmp_path: Path
) -> None:
    expected = []
    for path in sorted((shared_alerts / "ztf").glob("*.avro")):
        expected.extend(fastavro.reader(io.BytesIO(path.read_bytes())))
    code = main([
        "run", f"--archive={shared_alerts / 'ztf'}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=", "--mode=full",
        "--metrics-port=0",
    ])  # fmt: skip
    assert code == 0
    published = []
    for path in sorted((tmp_path / "out").glob("*.avro")):
        with path.open("rb") as handle:
            published.extend(fastavro.reader(handle))
    for record in published:
        assert record.pop("stampflow")["annotations"] == []
    assert len(published) == len(expected)
    assert sum(bool(record.get("prv_candidates")) for record in expected) >= 50
    for record in expected:  # the same alert may come in two files (two schema versions)
        assert record in published, record["candidate"]["candid"]  # with its whole history
        published.remove(record)
