"""The classifier registry: built-in model packages, and a third model installed from outside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fastavro
import pytest

from stampflow.classifiers import registry
from stampflow.classifiers.blend.spec import SPEC as BLEND
from stampflow.classifiers.morphology.spec import SPEC as MORPHOLOGY
from stampflow.training.synth import synthesise, write_archive

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "stampflow-brightness"


def test_built_in_models_are_found_by_their_packages():
    entries = registry.entries()
    assert {"blend", "morphology"} <= set(entries)
    assert entries["blend"].spec == BLEND and entries["morphology"].spec == MORPHOLOGY
    for entry in entries.values():
        assert (entry.bundle / "manifest.json").is_file()
        assert entry.training is not None


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(registry.RegistryError, match="unknown classifier 'nosuch'; known: blend"):
        registry.get("nosuch")


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """The example plugin installed (as pip installs it) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        + ["--no-build-isolation", "--target", str(target), str(EXAMPLE)],
        check=True,
        capture_output=True,
    )
    return target


def _stampflow(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "stampflow", *args], env=env, capture_output=True, text=True
    )


def test_an_installed_plugin_classifies_a_night_with_nothing_else_changed(
    installed_plugin, tmp_path
):
    packets = synthesise(30, seed=4, broken_fraction=0.0, progress=False)
    archive = write_archive(tmp_path / "night", packets, tar=True)
    out = tmp_path / "annotated"
    done = _stampflow(
        installed_plugin,
        "run",
        "--archive",
        str(archive),
        "--output-dir",
        str(out),
        "--dead-letter-dir",
        str(tmp_path / "dead"),
        "--classifiers",
        "brightness,blend",
        "--metrics-port",
        "0",
    )
    assert done.returncode == 0, done.stderr
    records = []
    for path in out.glob("*.avro"):
        with path.open("rb") as handle:
            records.extend(fastavro.reader(handle))
    assert len(records) == len(packets)
    for record in records:
        notes = {n["classifier"]: n for n in record["stampflow"]["annotations"]}
        assert set(notes) == {"brightness", "blend"}
        bright = record["candidate"]["magpsf"] < 18.0
        assert notes["brightness"]["label"] == ("bright" if bright else "faint")
        assert notes["brightness"]["modelVersion"] == "0.1.0"


def test_a_mistyped_name_is_refused_at_start_up_naming_the_installed_plugin(
    installed_plugin, tmp_path
):
    done = _stampflow(
        installed_plugin, "run", "--archive", str(tmp_path), "--classifiers", "brigthness"
    )
    assert done.returncode == 2
    assert "classifiers[0]" in done.stderr and "brightness" in done.stderr
    assert "Traceback" not in done.stderr
