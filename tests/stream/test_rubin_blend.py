"""Archive mode with both blend models: Rubin alerts annotated by ``blend_rubin``, ZTF ones by
``blend``, each model seeing only its own survey's alerts."""

from __future__ import annotations

import shutil
from pathlib import Path

import fastavro

from stampflow.stream.cli import main
from stampflow.training.synth import TRUTH_NAME


def test_each_survey_gets_its_own_blend_model(tmp_path: Path) -> None:
    rubin, ztf, both = tmp_path / "rubin", tmp_path / "ztf", tmp_path / "both"
    assert main(["synth", str(rubin), "--n=20", "--seed=3", "--survey=rubin", "--quiet"]) == 0
    assert main(["synth", str(ztf), "--n=10", "--seed=4", "--broken-fraction=0", "--quiet"]) == 0
    both.mkdir()
    for night in (rubin, ztf):
        for packet in night.iterdir():
            if packet.name != TRUTH_NAME:
                shutil.copy(packet, both / packet.name)
    code = main([
        "run", f"--archive={both}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=blend,blend_rubin",
        "--schema-dir=rubin", "--metrics-port=0", "--max-batch=16",
    ])  # fmt: skip
    assert code == 0
    records = []
    for path in sorted((tmp_path / "out").glob("*.avro")):
        with path.open("rb") as handle:
            records.extend(fastavro.reader(handle))
    rubin_out = [r for r in records if "diaSource" in r]
    ztf_out = [r for r in records if "candidate" in r]
    assert len(rubin_out) >= 15 and len(ztf_out) == 10
    for record in rubin_out:
        (annotation,) = record["stampflow"]["annotations"]
        assert annotation["classifier"] == "blend_rubin"
        assert annotation["label"] in ("single", "blend")
    for record in ztf_out:
        assert [a["classifier"] for a in record["stampflow"]["annotations"]] == ["blend"]
