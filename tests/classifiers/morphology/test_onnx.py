"""Serving through ONNX Runtime: the exported graph computes what the torch network does, the
numpy preprocessing what the torch one did, and the serving path needs no torch at all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stampflow.classifiers.bundle import MANIFEST, ONNX, BundleError, sha256_of
from stampflow.classifiers.morphology import ENTRY
from stampflow.classifiers.morphology.net import TorchNetwork
from stampflow.classifiers.morphology.plugin import MorphologyClassifier
from stampflow.classifiers.morphology.preprocess import fill_bad_pixels, preprocess, to_grid
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.training.morphology.export import export_bundle, load_net
from stampflow.training.morphology.sim import SimConfig, simulate


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shipped() -> MorphologyClassifier:
    return MorphologyClassifier.load()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return simulate(48, seed=2025, config=SimConfig(balance=(1.0,) * 5)).images


# The torch numerics the shipped network was trained with (preprocess.py before serving
# went torch-free), as the reference.


def _torch_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    out = F.interpolate(tensor, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def _torch_fill(stamps: np.ndarray, passes: int = 3) -> torch.Tensor:
    x = torch.as_tensor(stamps, dtype=torch.float32).clone()
    missing = torch.isnan(x)
    if not missing.any():
        return x
    c = x.shape[1]
    kernel = torch.ones(c, 1, 3, 3, dtype=x.dtype)
    for _ in range(passes):
        valid = (~missing).to(x.dtype)
        total = F.conv2d(torch.nan_to_num(x, nan=0.0) * valid, kernel, padding=1, groups=c)
        count = F.conv2d(valid, kernel, padding=1, groups=c)
        fill = missing & (count > 0)
        x = torch.where(fill, total / count.clamp_min(1.0), x)
        missing = missing & ~fill
        if not missing.any():
            break
    return x


def _torch_preprocess(stamps: np.ndarray) -> np.ndarray:
    x = _torch_fill(stamps)
    sky = x.flatten(2).nanmedian(dim=2).values[..., None, None]
    mad = (x - sky).abs().flatten(2).nanmedian(dim=2).values[..., None, None] * 1.4826
    out = torch.asinh((x - sky) / (3.0 * mad.clamp_min(1e-12))) / 3.0
    return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).numpy()


def _with_nans(rng: np.random.Generator, shape: tuple[int, ...], share: float) -> np.ndarray:
    x = rng.normal(20.0, 4.0, size=shape).astype(np.float32)
    x[rng.random(shape) < share] = np.nan
    return x


def test_numpy_preprocess_matches_the_torch_numerics():
    rng = np.random.default_rng(11)
    stamps = _with_nans(rng, (12, 4, 64, 64), 0.03)
    stamps[0, 1, 20:30, 25:33] = np.nan  # a saturated core: a hole filled from its rim
    stamps[1, 0, :, :6] = np.nan  # an edge cut: left for preprocess to set to sky
    stamps[2, 3] = np.nan  # a whole band missing: sky everywhere
    stamps[3, 2, :, :33] = np.nan  # an even count of valid pixels: torch's lower median
    filled = fill_bad_pixels(stamps)
    reference = _torch_fill(stamps).numpy()
    np.testing.assert_array_equal(np.isnan(filled), np.isnan(reference))
    np.testing.assert_allclose(filled, reference, rtol=1e-6, atol=1e-5, equal_nan=True)
    out = preprocess(stamps)
    assert out.dtype == np.float32 and out.shape == stamps.shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, _torch_preprocess(stamps), atol=1e-5)
    clean = rng.normal(5.0, 1.0, size=(3, 4, 64, 64)).astype(np.float32)  # no NaN at all
    np.testing.assert_allclose(preprocess(clean), _torch_preprocess(clean), atol=1e-5)
    # Callers in training hand it tensors.
    np.testing.assert_array_equal(preprocess(torch.from_numpy(stamps)), out)


@pytest.mark.parametrize(
    ("shape", "scale"),
    [((50, 50), 0.08), ((47, 61), 0.05), ((100, 90), 0.045), ((30, 34), 0.2), ((64, 64), 0.07)],
)
def test_bilinear_resampling_matches_torch_interpolate(shape, scale):
    rng = np.random.default_rng(len(shape) * 7 + int(scale * 1000))
    stamp = _with_nans(rng, shape, 0.02)
    ratio = SPEC.grid_scale_arcsec / scale
    out_h, out_w = max(round(shape[0] / ratio), 1), max(round(shape[1] / ratio), 1)
    resampled = to_grid(stamp, scale)
    expected = np.full((64, 64), np.nan, np.float32)
    reference = _torch_bilinear(stamp, out_h, out_w)
    h, w = reference.shape
    sy, sx, dy, dx = max((h - 64) // 2, 0), max((w - 64) // 2, 0), max((64 - h) // 2, 0), 0
    dx = max((64 - w) // 2, 0)
    ch, cw = min(h, 64), min(w, 64)
    expected[dy : dy + ch, dx : dx + cw] = reference[sy : sy + ch, sx : sx + cw]
    np.testing.assert_array_equal(np.isnan(resampled), np.isnan(expected))
    np.testing.assert_allclose(resampled, expected, rtol=1e-5, atol=1e-4, equal_nan=True)


def test_integer_factor_block_average_with_nans():
    rng = np.random.default_rng(12)
    fine = _with_nans(rng, (128, 128), 0.05)
    fine[10:12, 10:12] = np.nan  # one whole 2x2 block: NaN on the grid
    with pytest.warns(RuntimeWarning, match="empty slice"):  # the all-NaN block
        binned = to_grid(fine, 0.0315)
        expected = np.nanmean(fine.reshape(64, 2, 64, 2), axis=(1, 3))
    np.testing.assert_allclose(binned, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(binned[5, 5])
    # Through the whole preprocessing, against torch's, on a batch built this way.
    batch = np.stack([[to_grid(_with_nans(rng, (128, 128), 0.04), 0.031) for _ in range(4)]])
    np.testing.assert_allclose(preprocess(batch), _torch_preprocess(batch), atol=1e-5)


def test_onnx_graph_computes_the_torch_network(shipped, images):
    net = load_net(ENTRY.bundle)
    x = preprocess(images)
    torch_features, torch_logits = TorchNetwork(net).run(x)
    onnx_features, onnx_logits = shipped.model.run(x)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    np.testing.assert_allclose(onnx_features, torch_features, atol=1e-4, rtol=1e-4)
    # Probabilities and OOD scores through the plugin, both networks behind it.
    in_torch = MorphologyClassifier(
        TorchNetwork(net), shipped.serving, version="", sha256="", ood=shipped.ood
    )
    served, reference = shipped.predict(images, batch_size=20), in_torch.predict(images)
    np.testing.assert_allclose(served.probabilities, reference.probabilities, atol=1e-4)
    np.testing.assert_allclose(served.ood_score, reference.ood_score, rtol=1e-4)
    assert (served.probabilities.argmax(1) == reference.probabilities.argmax(1)).all()


def test_threads_are_configurable(monkeypatch):
    # An in-process `stampflow run` earlier in the session sets this for its workers.
    monkeypatch.delenv("STAMPFLOW_MORPHOLOGY_THREADS", raising=False)
    assert MorphologyClassifier.load().model.threads == 1
    assert MorphologyClassifier.load(threads=2).model.threads == 2
    monkeypatch.setenv("STAMPFLOW_MORPHOLOGY_THREADS", "2")
    assert MorphologyClassifier.load().model.threads == 2
    monkeypatch.setenv("STAMPFLOW_MORPHOLOGY_THREADS", "many")
    with pytest.raises(ValueError, match="STAMPFLOW_MORPHOLOGY_THREADS"):
        MorphologyClassifier.load()


def test_shipped_manifest_records_the_graph():
    manifest = json.loads((ENTRY.bundle / MANIFEST).read_text())
    assert manifest["onnx"] == ONNX
    assert manifest["onnx_sha256"] == sha256_of(ENTRY.bundle / ONNX)
    assert manifest["sha256"] == sha256_of(ENTRY.bundle / manifest["weights"])


@pytest.fixture()
def copied(tmp_path):
    return shutil.copytree(ENTRY.bundle, tmp_path / "morphology")


def test_a_bundle_without_the_graph_is_one_line_and_export_adds_it(copied):
    manifest_path = copied / MANIFEST
    before = json.loads(manifest_path.read_text())
    weights = (copied / before["weights"]).read_bytes()
    for key in ("onnx", "onnx_sha256"):
        del before[key]
    manifest_path.write_text(json.dumps(before))
    (copied / ONNX).unlink()
    with pytest.raises(BundleError) as caught:
        MorphologyClassifier.load(copied)
    message = str(caught.value)
    assert "onnx: missing" in message and "export" in message and "\n" not in message
    export_bundle(copied)
    after = json.loads(manifest_path.read_text())
    assert {k: v for k, v in after.items() if not k.startswith("onnx")} == before
    assert (copied / before["weights"]).read_bytes() == weights
    assert MorphologyClassifier.load(copied).version == before["version"]


def test_a_tampered_or_foreign_graph_is_refused(copied):
    graph = copied / ONNX
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="onnx_sha256"):
        MorphologyClassifier.load(copied)
    manifest = json.loads((copied / MANIFEST).read_text())
    graph.write_bytes(b"not an onnx graph")
    manifest["onnx_sha256"] = sha256_of(graph)
    (copied / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a loadable ONNX model"):
        MorphologyClassifier.load(copied)


# Two ways to take torch away. ``sys.modules["torch"] = None`` makes every import of it fail,
# but scipy (which MuyGPyS imports) looks torch up in sys.modules and trips over the None
# itself; an import hook raising ModuleNotFoundError is what a machine without torch does.
BLOCKERS = {
    "sys.modules": 'sys.modules["torch"] = None',
    "import hook": textwrap.dedent(
        """
        import importlib.abc

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoTorch())
        """
    ),
}

SERVE = textwrap.dedent(
    """
    import numpy as np
    from stampflow.classifiers.registry import load_classifier
    from stampflow.schemas.codec import decode_alert
    from stampflow.training.synth import synthesise

    packets = synthesise(30, 5, broken_fraction=0.0, multiband_fraction=0.5, progress=False)
    alerts = [decode_alert(p) for _, p, _ in packets]
    morphology = load_classifier("morphology")
    multiband = [a for a in alerts if morphology.applies_to(a)]
    assert len(multiband) >= 5, len(multiband)
    labels = [a.label for a in morphology.classify(multiband)]
    blended = []
    if WITH_BLEND:
        blend = load_classifier("blend")
        blended = [a.label for a in blend.classify([a for a in alerts if blend.applies_to(a)])]
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m])
    print(len(labels), len(blended))
    """
)


@pytest.mark.parametrize("blocker", sorted(BLOCKERS))
def test_serving_needs_no_torch(blocker):
    with_blend = blocker == "import hook"
    code = f"import sys\n{BLOCKERS[blocker]}\nWITH_BLEND = {with_blend}\n{SERVE}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    n_morphology, n_blend = map(int, done.stdout.split())
    assert n_morphology >= 5 and n_blend == (30 if with_blend else 0)


def test_without_torch_train_says_what_to_install_and_demo_still_runs():
    hook = BLOCKERS["import hook"]
    code = (
        f"import sys\n{hook}\nfrom stampflow.stream.cli import main\nsys.exit(main(sys.argv[1:]))"
    )
    train = subprocess.run(
        [sys.executable, "-c", code, "train", "morphology"], capture_output=True, text=True
    )
    assert train.returncode != 0 and "Traceback" not in train.stderr
    assert train.stderr.strip().splitlines() == [
        "stampflow train morphology: needs torch, which a serving install leaves out: "
        "pip install 'stampflow[train]'"
    ]
    demo = subprocess.run([sys.executable, "-c", code, "demo", "--help"], capture_output=True)
    assert demo.returncode == 0, demo.stderr[-2000:]
