"""The morphology plugin on synthetic multiband packets, its grid resampling and bundle loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from stampflow.classifiers.bundle import BundleError, save_bundle
from stampflow.classifiers.morphology.net import (
    MorphologyNet,
    NetConfig,
    TorchNetwork,
    state_to_arrays,
)
from stampflow.classifiers.morphology.ood import MEANS_KEY, PRECISION_KEY, OodServing
from stampflow.classifiers.morphology.plugin import (
    MorphologyClassifier,
    MorphologyServing,
    softmax,
)
from stampflow.classifiers.morphology.preprocess import (
    detected,
    preprocess,
    saturated_core,
    to_grid,
)
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.classifiers.morphology.views import views
from stampflow.schemas.codec import decode_alert
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import minimal_candidate, write_alert_packet
from stampflow.schemas.stamps import encode_stamp
from stampflow.training.morphology.export import onnx_bytes
from stampflow.training.morphology.sim import SimConfig, simulate

FILTERS, CLASSES = SPEC.filters, SPEC.labels


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _packet(candid: int, stamps: np.ndarray | None, *, scales=(0.063,) * 4, filters=FILTERS):
    multiband = None
    if stamps is not None:
        multiband = {
            "filters": list(filters),
            "pixelScale": list(scales),
            "stampData": [encode_stamp(plane) for plane in stamps],
        }
    record = {
        "objectId": f"JWST{candid:05d}",
        "candid": candid,
        "candidate": minimal_candidate(candid=candid),
        "cutoutMultiband": multiband,
    }
    return decode_alert(write_alert_packet(record))


@pytest.fixture(scope="module")
def shipped() -> MorphologyClassifier:
    return MorphologyClassifier.load()


@pytest.fixture(scope="module")
def held_out():
    return simulate(60, seed=2024, config=SimConfig(balance=(1.0,) * 5))


def test_shipped_model_classifies_multiband_packets(shipped, held_out):
    alerts = [_packet(i, held_out.images[i]) for i in range(len(held_out.labels))]
    assert all(shipped.applies_to(a) for a in alerts)
    annotations = shipped.classify(alerts)
    assert len(annotations) == len(alerts)
    predicted = np.array([CLASSES.index(a.label) for a in annotations])
    assert np.mean(predicted == held_out.labels) > 0.8
    for annotation in annotations:
        assert annotation.classifier == "morphology"
        assert annotation.model_version == shipped.version
        assert set(annotation.probabilities) == set(CLASSES)
        assert math.isclose(sum(annotation.probabilities.values()), 1.0, rel_tol=1e-5)
        assert max(annotation.probabilities, key=annotation.probabilities.get) == annotation.label
        assert 0.0 <= annotation.uncertainty <= 1.0
        if annotation.uncertainty > shipped.ambiguous_threshold:
            assert annotation.ambiguous  # entropy alone flags; the OOD score may add more
    prediction = shipped.predict(held_out.images)
    flags = shipped.flags(prediction)
    assert [a.ambiguous for a in annotations] == list(flags)


def test_native_f200w_stamp_is_binned_onto_the_grid(shipped, held_out):
    # The extension stacks same-shape stamps: 128x128 covers 4" of F200W at its native
    # 0.0315"/px and 8" of each long-wavelength band, whose centre is the network's grid.
    stamps = held_out.images[:3]
    alerts = []
    for i, stack in enumerate(stamps):
        native = np.repeat(np.repeat(stack[0], 2, axis=0), 2, axis=1)
        wide = [np.pad(plane, 32, mode="reflect") for plane in stack[1:]]
        alerts.append(_packet(i, np.stack([native, *wide]), scales=(0.0315, 0.063, 0.063, 0.063)))
    on_grid = shipped.classify([_packet(i, stamps[i]) for i in range(3)])
    from_native = shipped.classify(alerts)
    for a, b in zip(on_grid, from_native, strict=True):
        assert a.label == b.label
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)


def test_filters_in_another_order_give_the_same_answer(shipped, held_out):
    stamps = held_out.images[4]
    reordered = _packet(1, stamps[::-1].copy(), filters=FILTERS[::-1])
    assert shipped.classify([reordered])[0].probabilities == pytest.approx(
        shipped.classify([_packet(2, stamps)])[0].probabilities, abs=1e-5
    )


def test_applies_only_to_alerts_with_the_nircam_bands(shipped, held_out):
    assert not shipped.applies_to(_packet(1, None))
    other = _packet(2, held_out.images[0][:3], scales=(0.063,) * 3, filters=FILTERS[:3])
    assert not shipped.applies_to(other)
    assert shipped.classify([]) == []


def test_broken_multiband_stamp_raises_packet_error_naming_the_alert(shipped, held_out):
    record = {
        "objectId": "JWSTbroken",
        "candid": 7,
        "candidate": minimal_candidate(candid=7),
        "cutoutMultiband": {
            "filters": list(FILTERS),
            "pixelScale": [0.063] * 4,
            "stampData": [encode_stamp(p) for p in held_out.images[0][:3]] + [b"not gzip"],
        },
    }
    alert = decode_alert(write_alert_packet(record))
    assert shipped.applies_to(alert)
    with pytest.raises(PacketError) as error:
        shipped.classify([alert])
    assert error.value.reason == "bad_stamp"
    assert error.value.field == "cutoutMultiband"
    assert "JWSTbroken" in str(error.value)


def test_to_grid_block_averages_crops_and_pads():
    fine = np.arange(128 * 128, dtype=np.float32).reshape(128, 128)
    binned = to_grid(fine, 0.031)
    assert binned.shape == (64, 64)
    assert binned[0, 0] == pytest.approx(fine[:2, :2].mean())
    edge_cut = to_grid(np.ones((63, 47), np.float32), 0.063)
    assert edge_cut.shape == (64, 64)
    assert np.isnan(edge_cut).sum() == 64 * 64 - 63 * 47
    larger = to_grid(np.ones((80, 80), np.float32), 0.063)
    assert not np.isnan(larger).any()
    resampled = to_grid(np.ones((50, 50), np.float32), 0.08)  # 50 px of 0.08" -> ~63 px
    assert np.isfinite(resampled).sum() == pytest.approx(63 * 63, rel=0.05)
    with pytest.raises(ValueError):
        to_grid(fine, 0.0)


def test_detection_equals_its_reference_per_pixel_selection():
    """``detected`` (separable box sums, the second band from pairwise minima) against the
    plain computation: a 3x3 convolution and ``np.partition`` across bands per pixel."""
    from scipy import ndimage

    from stampflow.classifiers.morphology.preprocess import _box3, _second_largest

    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 4, 16, 16)).astype(np.float32)
    box = ndimage.convolve(z, np.ones((1, 1, 3, 3), np.float32), mode="constant")
    np.testing.assert_allclose(_box3(z), box, rtol=1e-5, atol=1e-5)
    ties = rng.integers(0, 3, size=(40, 4, 8, 8)).astype(np.float32)
    for a in (z, ties, z[:, :2], z[:, :3]):
        np.testing.assert_array_equal(_second_largest(a), np.partition(a, -2, axis=1)[:, -2])
    # Sources in two bands, one band, or none: the reference rule decides the same.
    stamps = rng.normal(size=(60, 4, 64, 64)).astype(np.float32)
    stamps[:20, :2, 30:33, 30:33] += 8.0
    stamps[20:40, 1, 30:33, 30:33] += 50.0
    inputs = preprocess(stamps)
    snr = np.minimum(3.0 * np.sinh(3.0 * inputs), 5.0)
    aperture = ndimage.convolve(snr, np.ones((1, 1, 3, 3)), mode="constant") / 3.0
    reference = np.partition(aperture, -2, axis=1)[:, -2].reshape(60, -1).max(axis=1) >= 5.0
    np.testing.assert_array_equal(detected(inputs), reference)
    assert reference[:20].all() and not reference[20:].any()


@pytest.fixture()
def tiny_bundle(tmp_path):
    config = NetConfig(stem=4, stages=(8,))
    torch.manual_seed(0)
    directory = tmp_path / "morphology"
    net = MorphologyNet(config)
    save_bundle(
        directory,
        version="0.0-test",
        serving=MorphologyServing(SPEC, config, temperature=1.5, ambiguous_threshold=0.5),
        arrays=state_to_arrays(net),
        training={},
        metrics={},
        onnx=onnx_bytes(net),
    )
    return directory


def test_bundle_loads_without_pickle_and_refuses_tampered_weights(tiny_bundle):
    weights = tiny_bundle / "weights.safetensors"
    assert not weights.read_bytes().startswith(b"\x80")  # not a pickle stream
    plugin = MorphologyClassifier.load(tiny_bundle)
    assert plugin.version == "0.0-test" and plugin.temperature == 1.5
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        MorphologyClassifier.load(tiny_bundle)


def test_bundle_with_mismatched_network_is_refused(tiny_bundle):
    manifest = tiny_bundle / "manifest.json"
    data = json.loads(manifest.read_text())
    data["serving"]["net"]["stages"] = [16]
    manifest.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="does not fit serving.net"):
        MorphologyClassifier.load(tiny_bundle)


def _ood_bundle(directory, threshold: float):
    config = NetConfig(stem=4, stages=(8,))
    torch.manual_seed(0)
    net = MorphologyNet(config)
    arrays = state_to_arrays(net)
    arrays[MEANS_KEY] = np.zeros((5, 8), np.float32)
    arrays[PRECISION_KEY] = np.eye(8, dtype=np.float32)
    ood = OodServing(threshold=threshold, feature_dim=8)
    save_bundle(
        directory,
        version="0.0-test",
        serving=MorphologyServing(SPEC, config, 1.0, ambiguous_threshold=1.0, ood=ood),
        arrays=arrays,
        training={},
        metrics={},
        onnx=onnx_bytes(net),
    )
    return MorphologyClassifier.load(directory)


def test_ood_statistics_load_from_the_bundle_and_raise_the_flag(tmp_path, held_out):
    # Entropy threshold 1.0 never flags: only the OOD distance can.
    strict = _ood_bundle(tmp_path / "strict", threshold=1e-6)
    lenient = _ood_bundle(tmp_path / "lenient", threshold=1e6)
    assert strict.ood is not None and strict.ood.precision.shape == (8, 8)
    assert all(a.ambiguous for a in strict.annotate(held_out.images[:5]))
    assert not any(a.ambiguous for a in lenient.annotate(held_out.images[:5]))
    prediction = strict.predict(held_out.images[:5])
    assert (prediction.ood_score > 1).all()
    np.testing.assert_allclose(prediction.probabilities, strict.probabilities(held_out.images[:5]))


def test_ood_arrays_must_match_the_manifest(tmp_path):
    directory = tmp_path / "bad"
    _ood_bundle(directory, threshold=1.0)
    manifest = directory / "manifest.json"
    data = json.loads(manifest.read_text())
    data["serving"]["ood"]["feature_dim"] = 16
    manifest.write_text(json.dumps(data))
    with pytest.raises(BundleError):
        MorphologyClassifier.load(directory)


def test_a_stamp_without_a_source_is_flagged_whatever_the_network_says(shipped):
    """Sky noise with a hot pixel and a cosmic-ray track (each in one band) holds nothing
    to classify; a faint blob in two bands at one place does."""
    rng = np.random.default_rng(3)
    sky = rng.normal(100.0, 1.0, size=(3, 4, 64, 64)).astype(np.float32)
    sky[0, 2, 10, 40] += 500.0  # a hot pixel
    sky[1, 0, 30, 5:25] += 80.0  # a cosmic-ray track
    blob = np.exp(-0.5 * np.hypot(*np.mgrid[-32:32, -32:32]) ** 2 / 2.0**2) * 3.0
    sky[2, 2:] += blob.astype(np.float32)  # peak S/N 3 per pixel, F356W and F444W
    found = detected(preprocess(sky))
    assert found.tolist() == [False, False, True]
    prediction = shipped.predict(sky)
    assert shipped.flags(prediction)[:2].all()
    assert [a.ambiguous for a in shipped.annotate(sky[:2])] == [True, True]


def test_no_gas_around_a_star_saturated_where_dust_shines_is_flagged(shipped):
    rng = np.random.default_rng(4)
    stamps = rng.normal(100.0, 1.0, size=(4, 4, 64, 64)).astype(np.float32)
    stamps[0, :, rng.uniform(size=(64, 64)) < 0.005] = np.nan  # scattered bad pixels
    stamps[1, 0, 31:34, 31:34] = np.nan  # saturated in F200W only (a blue star)
    stamps[2, 3, 30:34, 30:34] = np.nan  # saturated in F444W
    stamps[3, 2, 31:33, 32:34] = np.nan
    assert saturated_core(stamps).tolist() == [False, False, True, True]
    # Dusty targets beside saturated stars, dust at the usual S/N: whatever is called
    # no_gas is flagged (absence not established), and so is the stress set's bulk.
    from stampflow.training.morphology.families import faint_dust_set

    data = faint_dust_set(12, 5)
    prediction = shipped.predict(data.images)
    no_gas = prediction.probabilities.argmax(1) == CLASSES.index("no_gas")
    assert prediction.saturated.all() and shipped.flags(prediction)[no_gas].all()


def _views_classifier(views: int) -> MorphologyClassifier:
    config = NetConfig(stem=4, stages=(8,))
    torch.manual_seed(0)
    serving = MorphologyServing(SPEC, config, 1.0, ambiguous_threshold=0.5, views=views)
    return MorphologyClassifier(
        TorchNetwork(MorphologyNet(config)), serving, version="0.0-test", sha256=""
    )


def test_views_make_the_call_invariant_under_turns_and_flips(held_out):
    stamps = held_out.images[:6]
    turned = np.rot90(stamps, 1, axes=(-2, -1))
    mirrored = stamps[..., ::-1]
    one, four, eight = (_views_classifier(v) for v in (1, 4, 8))
    p8 = eight.probabilities(stamps)
    np.testing.assert_allclose(eight.probabilities(turned), p8, atol=2e-6)
    np.testing.assert_allclose(eight.probabilities(mirrored), p8, atol=2e-6)
    np.testing.assert_allclose(four.probabilities(turned), four.probabilities(stamps), atol=2e-6)
    # One view is one orientation: its answer changes when the stamp turns (an untrained
    # net is nearly flat, so the change is small, but 50x the tolerance above).
    assert np.abs(one.probabilities(turned) - one.probabilities(stamps)).max() > 1e-4
    # Eight views average the one-view answers of the eight orientations (logits, T = 1).
    x = preprocess(stamps)
    logits = np.mean([one.model.run(v)[1] for v in views(x, 8).reshape(8, *x.shape)], axis=0)
    np.testing.assert_allclose(p8, softmax(logits), atol=2e-6)


def test_views_outside_the_groups_are_refused():
    with pytest.raises(ValueError, match="views must be one of"):
        MorphologyServing(SPEC, NetConfig(), 1.0, ambiguous_threshold=0.5, views=3)
    with pytest.raises(ValueError, match="views must be one of"):
        views(np.zeros((1, 4, 8, 8)), 2)
