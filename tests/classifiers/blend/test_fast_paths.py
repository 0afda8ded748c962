"""The fast blend paths against the reference ones they replaced (issue 12).

``reference_prepare`` below is the per-stamp preprocessing as it was (one Python iteration
and one ``ndimage.rotate`` per stamp), kept here verbatim so the vectorised ``prepare``
can be checked against it; ``BlendGP.predict_muygpys`` is MuyGPyS' own prediction path.
``bench/bench_blend.py`` loads this file for its old-vs-new timings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from scipy import ndimage

from stampflow.classifiers.blend.model import Posterior
from stampflow.classifiers.blend.plugin import BlendClassifier
from stampflow.classifiers.blend.preprocess import (
    FULL_STAMP,
    Prepared,
    PreprocessConfig,
    fill_nan,
    normalise,
    prepare,
    prepare_each,
)
from stampflow.classifiers.blend.spec import SPEC
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import minimal_candidate, write_alert_packet
from stampflow.schemas.stamps import encode_stamp
from stampflow.stream.messages import DecodedAlert, SourceMessage
from stampflow.stream.pipeline import classify_batch
from stampflow.training.blend.sim import ztf_cutouts

# --- the reference: per-stamp preprocessing as it was before issue 12 -------------------


def _axis_centre_candidates(size: int) -> tuple[int, ...]:
    nominal = FULL_STAMP // 2
    if size >= FULL_STAMP:
        return (size // 2,)
    return tuple(sorted({min(nominal, size - 1), max(size - 1 - nominal, 0)}))


def _window(stamp: np.ndarray, row: int, col: int, half: int) -> np.ndarray:
    side = 2 * half + 1
    out = np.full((side, side), np.nan, dtype=np.float32)
    r0, c0 = row - half, col - half
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + side, stamp.shape[0]), min(c0 + side, stamp.shape[1])
    if rs < re and cs < ce:
        out[rs - r0 : re - r0, cs - c0 : ce - c0] = stamp[rs:re, cs:ce]
    return out


def reference_locate_and_crop(stamp: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    stamp = np.asarray(stamp, dtype=np.float32)
    sky = float(np.nanmedian(stamp))
    filled = np.where(np.isfinite(stamp), stamp, sky).astype(np.float64)
    best, best_flux = (stamp.shape[0] // 2, stamp.shape[1] // 2), -np.inf
    for row in _axis_centre_candidates(stamp.shape[0]):
        for col in _axis_centre_candidates(stamp.shape[1]):
            flux = float(np.sum(_window(filled, row, col, 2)))
            if flux > best_flux:
                best, best_flux = (row, col), flux
    row, col = best
    if config.recentre_px:
        near = _window(filled, row, col, config.recentre_px)
        near = np.where(np.isfinite(near), near, -np.inf)
        dr, dc = np.unravel_index(int(np.argmax(near)), near.shape)
        row, col = row + int(dr) - config.recentre_px, col + int(dc) - config.recentre_px
    return _window(stamp, row, col, config.crop // 2)


def reference_orient(crop: np.ndarray, sky: float) -> np.ndarray:
    side = crop.shape[0]
    light = np.clip((crop - sky) / max(float(crop.max()) - sky, 1e-12), 0.0, 1.0) ** 0.5
    yy, xx = np.mgrid[:side, :side] - side // 2
    w = light * (xx**2 + yy**2 <= (side // 2) ** 2)
    total = max(float(w.sum()), 1e-12)
    ixx, iyy, ixy = (w * xx * xx).sum() / total, (w * yy * yy).sum() / total, (w * xx * yy).sum()
    angle = 0.5 * np.degrees(np.arctan2(2.0 * ixy / total, ixx - iyy))
    turned = ndimage.rotate(crop, angle, reshape=False, order=1, mode="constant", cval=sky)
    light = turned - sky
    if light[:, side // 2 + 1 :].sum() < light[:, : side // 2].sum():
        turned = turned[:, ::-1]
    if light[side // 2 + 1 :, :].sum() < light[: side // 2, :].sum():
        turned = turned[::-1, :]
    return np.ascontiguousarray(turned, dtype=np.float32)


def reference_prepare(
    stamps: Sequence[np.ndarray], config: PreprocessConfig, field: str = "stamp"
) -> Prepared:
    crops = np.empty((len(stamps), config.crop, config.crop), dtype=np.float32)
    sky = np.empty(len(stamps), dtype=np.float32)
    peak_snr = np.empty(len(stamps))
    coverage = np.empty(len(stamps))
    centre = slice(config.crop // 2 - 1, config.crop // 2 + 2)
    for i, stamp in enumerate(stamps):
        stamp = np.asarray(stamp, dtype=np.float32)
        stamp = np.where(np.abs(stamp) < SPEC.fill_sentinel, stamp, np.nan)
        if stamp.ndim != 2 or min(stamp.shape) < SPEC.min_side:
            raise PacketError("bad_stamp", f"stamp {i} has shape {stamp.shape}", field=field)
        finite = np.isfinite(stamp)
        if finite.sum() < SPEC.min_finite_fraction * stamp.size:
            raise PacketError("bad_stamp", f"stamp {i} has too few finite pixels", field=field)
        values = stamp[finite]
        sky[i] = np.median(values)
        noise = 1.4826 * float(np.median(np.abs(values - sky[i])))
        crops[i] = reference_locate_and_crop(stamp, config)
        coverage[i] = float(np.isfinite(crops[i]).mean())
        peak = float(np.nanmax(crops[i][centre, centre], initial=sky[i])) - float(sky[i])
        peak_snr[i] = peak / noise if noise > 0 else 0.0
    crops = fill_nan(crops, sky)
    if config.orient:
        crops = np.stack([reference_orient(c, float(s)) for c, s in zip(crops, sky, strict=True)])
    return Prepared(crops, peak_snr, coverage)


# --- stamps to compare on ----------------------------------------------------------------


def awkward_stamps(n: int = 400, seed: int = 5) -> list[np.ndarray]:
    """Simulated templates (some edge-cut by the simulator) made awkward: NaN pixels,
    -FLT_MAX and inf masked pixels, more edge cuts of every size, flat and tiny stamps."""
    rng = np.random.default_rng(seed)
    _, template, _, _ = ztf_cutouts(rng, n)
    stamps = [np.array(t, dtype=np.float32) for t in template]
    for k in range(0, n, 7):
        s = stamps[k]
        s[rng.integers(0, s.shape[0], 40), rng.integers(0, s.shape[1], 40)] = np.nan
    for k in range(1, n, 13):
        s = stamps[k]
        s[rng.integers(0, s.shape[0], 5), rng.integers(0, s.shape[1], 5)] = -3.4028235e38
        s[0, :] = np.inf
    for k in range(3, n, 11):
        s = stamps[k]
        side = int(rng.integers(5, min(s.shape)))
        axis, low = rng.integers(0, 2, 2)
        if axis == 0:
            stamps[k] = s[:side] if low else s[-side:]
        else:
            stamps[k] = s[:, :side] if low else s[:, -side:]
    for k in range(4, n, 17):  # a masked block over the source
        stamps[k][25:38, 25:38] = np.nan
    stamps[5] = np.full((63, 63), 42.0, np.float32)
    stamps[6] = np.zeros((63, 63), np.float32)
    stamps[9] = (100 + rng.normal(0, 2, (5, 5))).astype(np.float32)
    stamps[10] = np.full((63, 63), 1e4, np.float32)
    stamps[12] = stamps[12][:40, :50]  # cut on two sides
    return stamps


def assert_prepared_equal(new: Prepared, ref: Prepared) -> None:
    np.testing.assert_array_equal(new.crops, ref.crops)
    np.testing.assert_array_equal(new.peak_snr, ref.peak_snr)
    np.testing.assert_array_equal(new.coverage, ref.coverage)


@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(),
        PreprocessConfig(orient=False),
        PreprocessConfig(crop=31, recentre_px=0),
        PreprocessConfig(crop=9, recentre_px=5),
    ],
    ids=["shipped", "no-orient", "crop31-norecentre", "crop9-recentre5"],
)
def test_vectorised_prepare_equals_the_per_stamp_code_bit_for_bit(config):
    stamps = awkward_stamps(300 if config == PreprocessConfig() else 120)
    assert_prepared_equal(prepare(stamps, config), reference_prepare(stamps, config))
    # Batch composition does not matter: one at a time gives the same bits.
    for i in (0, 3, 5, 12):
        assert_prepared_equal(prepare([stamps[i]], config), reference_prepare([stamps[i]], config))


def test_real_ztf_templates_prepare_bit_for_bit(shared_alerts):
    stamps = []
    for path in sorted((shared_alerts / "ztf").glob("*.avro")):
        for alert in decode_packet(path.read_bytes()).alerts:
            if alert.has_stamp("template"):
                stamps.append(alert.stamp("template"))
    assert len(stamps) >= 100
    assert any(s.shape != (63, 63) for s in stamps) and any(np.isnan(s).any() for s in stamps)
    config = PreprocessConfig()
    usable = [s for s in stamps if np.isfinite(s).mean() >= SPEC.min_finite_fraction]
    assert_prepared_equal(prepare(usable, config), reference_prepare(usable, config))


def test_prepare_each_reports_every_broken_stamp_and_prepares_the_rest():
    good = awkward_stamps(20)
    stamps = list(good)
    stamps.insert(3, np.full((63, 63), np.nan, np.float32))
    stamps.insert(7, np.zeros(10, np.float32))
    stamps.insert(11, np.full((63, 63), -3.4028235e38, np.float32))
    stamps.insert(12, np.zeros((4, 63), np.float32))
    batch = prepare_each(stamps, PreprocessConfig(), field="cutoutX")
    assert sorted(batch.errors) == [3, 7, 11, 12]
    assert all(e.reason == "bad_stamp" and e.field == "cutoutX" for e in batch.errors.values())
    assert "stamp 3 has only 0 finite pixels" in str(batch.errors[3])
    assert "stamp 7 has shape (10,)" in str(batch.errors[7])
    assert list(batch.kept) == [i for i in range(len(stamps)) if i not in batch.errors]
    assert_prepared_equal(batch.prepared, reference_prepare(good, PreprocessConfig()))
    with pytest.raises(PacketError, match="stamp 3 "):
        prepare(stamps, PreprocessConfig())
    everything_broken = prepare_each([np.zeros(3)], PreprocessConfig())
    assert len(everything_broken.prepared.crops) == 0 and list(everything_broken.errors) == [0]


# --- the GP ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin() -> BlendClassifier:
    return BlendClassifier.load()


@pytest.fixture(scope="module")
def validation(plugin):
    """A validation-like set: simulated templates (the training family), prepared."""
    _, template, _, _ = ztf_cutouts(np.random.default_rng(2024), 2000)
    prepared = prepare(template, plugin.model.prep)
    x = normalise(prepared.crops, plugin.model.prep)
    return prepared, x, plugin.model.embedding.transform(x)


def _flags(plugin, prepared, x, mean, variance):
    embedding = plugin.model.embedding
    post = Posterior(mean, variance, embedding.residual(x), embedding.embed(x)[1])
    return plugin.model.decide(post, prepared)


def test_fast_gp_equals_muygpys_posterior(plugin, validation):
    prepared, x, features = validation
    gp = plugin.model.gp
    ref_mean, ref_var = gp.predict_muygpys(features)
    mean, var = gp.predict(features)
    np.testing.assert_allclose(var, ref_var, rtol=1e-9, atol=1e-12)
    # The mean differs only where the 50th neighbour is an exact tie among duplicated
    # training points (the library breaks it one way, the exact index by lower index).
    differs = np.abs(mean - ref_mean) > 1e-9
    assert differs.mean() <= 0.005, differs.mean()
    ref = _flags(plugin, prepared, x, ref_mean, ref_var)
    new = _flags(plugin, prepared, x, mean, var)
    changed = (ref.reason != new.reason) | (ref.is_blend != new.is_blend)
    assert changed.mean() <= 0.005, changed.mean()
    # Batch composition does not matter.
    one_mean, one_var = gp.predict(features[:7])
    np.testing.assert_array_equal(one_mean, mean[:7])
    np.testing.assert_array_equal(one_var, var[:7])


def test_exact_neighbours_match_the_library(plugin, validation):
    _, _, features = validation
    gp = plugin.model.gp
    ref, _ = gp.nbrs.get_nns(features[:500])
    mine = gp.nearest(features[:500])
    recall = np.mean(
        [len(set(a) & set(b)) / gp.hyper.nn_count for a, b in zip(ref, mine, strict=True)]
    )
    assert recall >= 0.999


def test_crop_moments_equal_the_per_pixel_sums():
    """The moments from one product with a fixed basis against the sums written out."""
    from stampflow.classifiers.blend.preprocess import crop_moments

    _, template, _, _ = ztf_cutouts(np.random.default_rng(8), 300)
    x = normalise(prepare(template, PreprocessConfig()).crops, PreprocessConfig()).astype(float)
    side = 21
    yy, xx = np.mgrid[:side, :side] - side // 2
    xx, yy = xx.ravel().astype(float), yy.ravel().astype(float)
    r2 = xx**2 + yy**2
    light = (x - np.median(x, axis=1, keepdims=True)) * np.exp(-r2 / 18.0)
    total = light.sum(axis=1)
    cx, cy = (light * xx).sum(axis=1) / total, (light * yy).sum(axis=1) / total
    dx, dy = xx - cx[:, None], yy - cy[:, None]
    ixx, iyy = (light * dx**2).sum(axis=1) / total, (light * dy**2).sum(axis=1) / total
    reference = np.stack(
        [
            np.log(ixx),
            np.log(iyy),
            (ixx - iyy) / (ixx + iyy),
            (light * dx**3).sum(axis=1) / total / ixx**1.5,
            (light * dx**4).sum(axis=1) / total / ixx**2,
            (light * (r2 <= 4.0)).sum(axis=1) / total,
            light.max(axis=1) / total,
            cx,
        ],
        axis=1,
    )
    assert (total > 1e-3).all() and (ixx > 1e-3).all()  # no floor is in play here
    np.testing.assert_allclose(crop_moments(x), reference, rtol=1e-7, atol=1e-9)


def _brute_force_neighbours(train: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The k nearest by exact squared distance, ties to the lower index."""
    dist = ((queries[:, None, :] - train[None]) ** 2).sum(axis=-1)
    return np.stack([np.lexsort((np.arange(len(train)), row))[:k] for row in dist])


def test_exact_neighbours_equal_brute_force_on_both_paths():
    """Queries whose sampled threshold leaves enough candidates, and queries for which it
    leaves too few (the sampled points sit on the query): the same neighbours as sorting
    every distance."""
    from stampflow.classifiers.blend.gp import ExactNeighbours

    rng = np.random.default_rng(5)
    train = rng.normal(size=(4000, 6))
    index = ExactNeighbours(train, 20)
    queries = rng.normal(size=(50, 6))
    np.testing.assert_array_equal(index.query(queries), _brute_force_neighbours(train, queries, 20))
    # Every sampled point (a stride of the training set) close around one query: the
    # threshold is so small that too few lie below it, and that query falls back to all.
    crowded = train.copy()
    sampled = crowded[:: index.stride]
    crowded[:: index.stride] = queries[0] + 0.05 * rng.normal(size=sampled.shape)
    index = ExactNeighbours(crowded, 20)
    found = index.query(queries[:3])
    np.testing.assert_array_equal(found, _brute_force_neighbours(crowded, queries[:3], 20))
    assert set(found[0]) <= set(range(0, len(crowded), index.stride))


def test_hnsw_neighbours_when_faiss_is_installed(plugin, validation):
    pytest.importorskip("faiss", reason="faiss-cpu not installed: the exact index serves")
    from stampflow.classifiers.blend.gp import BlendGP

    prepared, x, features = validation
    exact = plugin.model.gp
    approx = BlendGP(exact.features, exact.targets, exact.hyper, neighbours="hnsw")
    truth = exact.nearest(features)
    found = approx.nearest(features)
    recall = np.mean(
        [len(set(a) & set(b)) / exact.hyper.nn_count for a, b in zip(truth, found, strict=True)]
    )
    assert recall > 0.95
    ref = _flags(plugin, prepared, x, *exact.predict(features))
    new = _flags(plugin, prepared, x, *approx.predict(features))
    changed = (ref.reason != new.reason) | (ref.is_blend != new.is_blend)
    print(f"hnsw: recall {recall:.4f}, flag or label changed for {changed.mean():.2%}")


# --- the plugin: broken stamps never make the batch redo its work ------------------------


def _packet(candid: int, template: np.ndarray | bytes) -> bytes:
    stamp = template if isinstance(template, bytes) else encode_stamp(template)
    return write_alert_packet(
        {
            "objectId": f"ZTF26fast{candid}",
            "candid": candid,
            "candidate": minimal_candidate(candid=candid),
            "cutoutTemplate": {"fileName": "t.fits.gz", "stampData": stamp},
        }
    )


def test_broken_templates_are_dead_lettered_and_the_rest_prepared_once(plugin, monkeypatch):
    import stampflow.classifiers.blend.plugin as module

    _, template, _, _ = ztf_cutouts(np.random.default_rng(31), 40)
    raw = [_packet(i, t) for i, t in enumerate(template)]
    broken = {
        5: _packet(5, b"\x1f\x8b not a gzip FITS stamp"),
        17: _packet(17, np.full((63, 63), np.nan, np.float32)),
        18: _packet(18, np.zeros((3, 63), np.float32)),
        30: _packet(30, b""),
    }
    raw = [broken.get(i, p) for i, p in enumerate(raw)]
    items = [
        DecodedAlert(SourceMessage(p, "t", 0, i), decode_alert(p), 0.0) for i, p in enumerate(raw)
    ]
    clean = plugin.classify([item.alert for i, item in enumerate(items) if i not in broken])

    calls = []
    real = module.prepare_each
    monkeypatch.setattr(
        module, "prepare_each", lambda s, *a, **k: calls.append(len(s)) or real(s, *a, **k)
    )
    out, dead = classify_batch(
        items, [plugin], batch_started=0.0, on_classifier_time=lambda name, s: None
    )
    assert calls == [len(items) - 2]  # one pass; the undecodable and empty ones skip it
    assert sorted(d.message.offset for d in dead) == sorted(broken)
    for d in dead:
        assert d.stage == "classify" and d.reason == "bad_stamp" and d.field == SPEC.cutout
        assert f"ZTF26fast{d.message.offset} " in d.error
    why = {d.message.offset: d.error for d in dead}
    assert "finite pixels" in why[17] and "shape (3, 63)" in why[18] and "empty" in why[30]
    assert [a.annotations[0] for a in out] == clean


def test_a_new_batch_is_not_answered_from_the_last_one(plugin):
    _, template, _, _ = ztf_cutouts(np.random.default_rng(32), 3)
    good = decode_alert(_packet(1, template[0]))
    bad = decode_alert(_packet(2, b""))
    with pytest.raises(PacketError, match="ZTF26fast2"):
        plugin.classify([good, bad])
    again = decode_alert(_packet(1, template[1]))  # a different alert object
    assert plugin.classify([again]) == plugin.classify([decode_alert(_packet(1, template[1]))])
