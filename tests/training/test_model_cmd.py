"""``stampflow train|study MODEL``: the same jobs and options for every model."""

from __future__ import annotations

import importlib
import json

import pytest

from stampflow.classifiers import registry
from stampflow.classifiers.bundle import sha256_of
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.stream.cli import main

TINY = ["--preset", "small", "--set", "n_train=60", "--set", "n_val=30", "--set", "epochs=1"]


@pytest.mark.parametrize("name", registry.names())
def test_every_model_exposes_the_same_jobs(name):
    jobs = importlib.import_module(registry.get(name).training)
    for presets in (jobs.TRAIN_PRESETS, jobs.STUDY_PRESETS):
        assert {"default", "small"} <= set(presets)
        assert all(hasattr(config, "seed") for config in presets.values())
    for job in ("train", "save", "summary", "study"):
        assert callable(getattr(jobs, job)), job


def test_train_writes_a_bundle_the_registry_serves(tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["train", "morphology", *TINY, "--seed", "11", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["bundle"] == str(out) and 0.0 <= printed["val_accuracy"] <= 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["seed"] == 11 and manifest["training"]["n_train"] == 60
    assert manifest["serving"]["spec"]["filters"] == list(SPEC.filters)
    plugin = registry.load_classifier("morphology", out)
    assert plugin.sha256 == sha256_of(out / "weights.safetensors")
    # --weights keeps that network and only calibrates it, here for one view per stamp.
    again = tmp_path / "one-view"
    args = ["train", "morphology", *TINY, "--seed", "11", "--set", "views=1"]
    assert main([*args, "--weights", str(out), "--out", str(again)]) == 0
    capsys.readouterr()
    recalibrated = json.loads((again / "manifest.json").read_text())
    assert recalibrated["serving"]["views"] == 1 and manifest["serving"]["views"] == 4
    assert (again / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    with pytest.raises(SystemExit, match="--weights is not supported"):
        main(["train", "blend", "--preset", "small", "--weights", str(out)])


def test_the_default_output_never_touches_the_installed_bundle(tmp_path, monkeypatch):
    shipped = registry.get("morphology").bundle / "manifest.json"
    before = shipped.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "morphology", *TINY]) == 0
    assert (tmp_path / "runs" / "train-morphology" / "manifest.json").is_file()
    assert shipped.read_bytes() == before


def test_a_bad_override_names_the_key():
    with pytest.raises(SystemExit, match="--set n_trian: unknown key"):
        main(["train", "morphology", "--set", "n_trian=5"])
    with pytest.raises(SystemExit, match="epochs: must be an integer"):
        main(["train", "morphology", "--set", "epochs=many"])
    with pytest.raises(SystemExit, match="unknown preset 'huge'"):
        main(["study", "blend", "--preset", "huge"])
