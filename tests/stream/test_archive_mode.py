"""`stampflow run` without a broker: archive in, Avro files and dead letters out, a summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import fastavro
import pytest

from stampflow.stream.cli import main
from stampflow.training.synth import TRUTH_NAME


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("night")
    assert (
        main(["synth", str(out), "--n=60", "--seed=5", "--broken-fraction=0.3", "--tar", "--quiet"])
        == 0
    )
    return out


def truth(night: Path) -> list[dict]:
    return [json.loads(line) for line in (night / TRUTH_NAME).read_text().splitlines()]


@pytest.mark.parametrize("mode", ["full", "slim"])
def test_archive_to_avro_files(night: Path, tmp_path: Path, mode: str, capsys) -> None:
    code = main([
        "run", f"--archive={night / 'alerts.tar.gz'}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=", f"--mode={mode}",
        "--metrics-port=0", "--max-batch=16",
    ])  # fmt: skip
    assert code == 0
    rows = truth(night)
    # With no classifier the unreadable stamp is never looked at: that alert passes through.
    expected_out = [r["candid"] for r in rows if r["broken"] in (None, "bad_stamp")]
    records = []
    for path in sorted((tmp_path / "out").glob("*.avro")):
        with path.open("rb") as handle:
            records.extend(fastavro.reader(handle))  # any Avro reader opens the output
    assert [r["candid"] for r in records] == expected_out
    assert all(r["stampflow"]["annotations"] == [] for r in records)
    if mode == "slim":
        assert "cutoutScience" not in records[0]

    index = [
        json.loads(line) for line in (tmp_path / "dead" / "index.jsonl").read_text().splitlines()
    ]
    expected_dead = Counter(
        r["expected_reason"] for r in rows if r["broken"] not in (None, "bad_stamp")
    )
    assert Counter(entry["reason"] for entry in index) == expected_dead
    first = index[0]
    assert (tmp_path / "dead" / first["file"]).read_bytes() == _packet(night, first["key"])

    summary = capsys.readouterr().out
    assert f"packets in        {len(rows):>8}" in summary
    assert f"alerts out        {len(expected_out):>8}" in summary


def _packet(night: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(night / "alerts.tar.gz") as tar:
        return tar.extractfile(name).read()


def test_unknown_archive_is_one_clear_error(tmp_path: Path, capsys) -> None:
    assert (
        main(["run", f"--archive={tmp_path / 'missing'}", "--metrics-port=0", "--classifiers="])
        == 2
    )
    assert "missing" in capsys.readouterr().err


def test_bad_config_value_is_one_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["run", f"--archive={tmp_path}", "--max-batch=0"]) == 2
    assert "batching.max_batch" in capsys.readouterr().err


def test_demo_prints_a_summary(tmp_path: Path, capsys) -> None:
    assert main(["demo", f"--out={tmp_path}", "--n=40", "--seed=1"]) == 0
    out = capsys.readouterr().out
    assert "packets in              40" in out
    assert "dead letters" in out
    assert list((tmp_path / "annotated").glob("*.avro"))


def test_every_dead_letter_is_logged_with_where_and_why(
    night: Path, tmp_path: Path, caplog
) -> None:
    caplog.set_level("WARNING", logger="stampflow.stream.checkpoint")
    code = main([
        "run", f"--archive={night / 'alerts.tar.gz'}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=", "--metrics-port=0",
    ])  # fmt: skip
    assert code == 0
    index = [json.loads(x) for x in (tmp_path / "dead" / "index.jsonl").read_text().splitlines()]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dead letter")]
    assert len(logged) == len(index) > 0
    for entry, line in zip(index, logged, strict=True):
        assert f"@{entry['offset']} at {entry['stage']}: {entry['reason']}" in line
