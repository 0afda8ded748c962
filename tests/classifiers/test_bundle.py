"""Model bundles: every way a bundle can be broken is one line naming the file and the key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stampflow.classifiers.blend import ENTRY
from stampflow.classifiers.blend.plugin import BlendClassifier
from stampflow.classifiers.bundle import MANIFEST, WEIGHTS, BundleError


@pytest.fixture()
def bundle(tmp_path) -> Path:
    return Path(shutil.copytree(ENTRY.bundle, tmp_path / "blend"))


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


def _rewrite(bundle: Path, edit) -> None:
    data = _manifest(bundle)
    edit(data)
    (bundle / MANIFEST).write_text(json.dumps(data))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _refit_sha(bundle: Path) -> None:
    from stampflow.classifiers.bundle import sha256_of

    _rewrite(bundle, lambda d: d.update(sha256=sha256_of(bundle / WEIGHTS)))


BREAKS = {
    "missing dir": (lambda b: shutil.rmtree(b), "does not exist"),
    "empty dir": (lambda b: [p.unlink() for p in b.iterdir()], f"{MANIFEST}: missing"),
    "file in its place": (
        lambda b: (shutil.rmtree(b), b.write_text("x")),
        "is not a directory",
    ),
    "truncated manifest": (
        lambda b: (b / MANIFEST).write_text((b / MANIFEST).read_text()[:200]),
        f"{MANIFEST}: not JSON",
    ),
    "missing weights": (lambda b: (b / WEIGHTS).unlink(), f"{WEIGHTS}: missing"),
    "flipped weights": (lambda b: _flip_last_byte(b / WEIGHTS), "sha256 is"),
    "wrong sha256": (lambda b: _rewrite(b, lambda d: d.update(sha256="0" * 64)), "says 0000"),
    "wrong model name": (
        lambda b: _rewrite(b, lambda d: d.update(name="morphology")),
        "name: holds model 'morphology', not 'blend'",
    ),
    "missing serving key": (
        lambda b: _rewrite(b, lambda d: d["serving"]["gp"].pop("length_scale")),
        "serving.gp.length_scale: missing",
    ),
    "mistyped serving value": (
        lambda b: _rewrite(b, lambda d: d["serving"]["gp"].update(nn_count="50")),
        "serving.gp.nn_count: must be an integer",
    ),
    "other input contract": (
        lambda b: _rewrite(b, lambda d: d["serving"]["spec"].update(stamp_size=64)),
        "serving.spec.stamp_size: the bundle was trained for 64",
    ),
    "weights not safetensors": (
        lambda b: ((b / WEIGHTS).write_bytes(b"not a tensor file"), _refit_sha(b)),
        "not a readable safetensors file",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_broken_bundle_is_one_precise_line(bundle, name):
    breaker, expected = BREAKS[name]
    breaker(bundle)
    with pytest.raises(BundleError) as caught:
        BlendClassifier.load(bundle)
    message = str(caught.value)
    assert expected in message
    assert str(bundle) in message and "\n" not in message


def test_a_missing_array_is_named(bundle):
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(bundle / WEIGHTS))
    del arrays["pca_scale"]
    save_file(arrays, str(bundle / WEIGHTS))
    _refit_sha(bundle)
    with pytest.raises(BundleError, match=rf"{WEIGHTS}: array 'pca_scale' missing"):
        BlendClassifier.load(bundle)


def test_the_daemon_refuses_a_bad_bundle_in_one_line(bundle, tmp_path):
    _flip_last_byte(bundle / WEIGHTS)
    config = tmp_path / "config.yaml"
    config.write_text(f"classifiers: [{{name: blend, model_dir: {bundle}}}]\n")
    (tmp_path / "night").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "stampflow", "run", "--config", str(config)]
        + ["--archive", str(tmp_path / "night"), "--metrics-port", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{bundle / WEIGHTS}: sha256 is" in done.stderr
