"""The Rubin blend plugin with its shipped bundle: which alerts it takes, synthetic Rubin
alerts (``synth --survey rubin`` and the Rubin sky simulator with truth), broken cutouts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from stampflow.classifiers.blend.plugin import BlendClassifier
from stampflow.classifiers.blend_rubin.plugin import RubinBlendClassifier
from stampflow.classifiers.blend_rubin.spec import SPEC
from stampflow.classifiers.registry import get, load_classifier, names
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import minimal_candidate, write_alert_packet
from stampflow.schemas.registry import LocalSchemas, rubin_schema_id
from stampflow.schemas.rubin_packets import rubin_cutout, rubin_message, rubin_record
from stampflow.schemas.stamps import encode_stamp
from stampflow.training.blend import sky
from stampflow.training.blend.sim import ztf_cutouts
from stampflow.training.blend_rubin.config import RUBIN_SKY
from stampflow.training.synth import synthesise_rubin

SCHEMA_ID = rubin_schema_id("11.0")


@pytest.fixture(scope="module")
def plugin() -> RubinBlendClassifier:
    return RubinBlendClassifier.load()


def _rubin_alert(i: int, template: np.ndarray | bytes):
    image = np.zeros((31, 31)) if isinstance(template, bytes) else template
    blob = template if isinstance(template, bytes) else rubin_cutout(image, 10.0, -5.0)
    record = rubin_record(
        SCHEMA_ID,
        alert_id=7_000 + i,
        object_id=9_000 + i,
        ra=10.0,
        dec=-5.0,
        mjd=61000.5,
        band="r",
        flux=1e4,
        flux_err=1e2,
        cutouts={
            "science": rubin_cutout(image, 10.0, -5.0),
            "template": blob,
            "difference": rubin_cutout(image, 10.0, -5.0),
        },
    )
    return decode_alert(rubin_message(record, SCHEMA_ID), registry=LocalSchemas.rubin())


def _ztf_alert():
    _, template, _, _ = ztf_cutouts(np.random.default_rng(1), 1)
    stamps = {"Science": template[0], "Template": template[0], "Difference": template[0]}
    packet = write_alert_packet(
        {
            "objectId": "ZTF26rubin",
            "candid": 11,
            "candidate": minimal_candidate(candid=11, ra=10.0, dec=-5.0, magpsf=18.0),
            **{
                f"cutout{name}": {"fileName": f"{name}.fits.gz", "stampData": encode_stamp(s)}
                for name, s in stamps.items()
            },
        }
    )
    return decode_packet(packet).alerts[0]


def test_the_registry_knows_it_and_loads_the_shipped_bundle(plugin):
    assert "blend_rubin" in names()
    assert get("blend_rubin").spec.surveys == ("rubin",)
    loaded = load_classifier("blend_rubin")
    assert loaded.name == "blend_rubin" and loaded.version == plugin.version
    assert plugin.model.prep.crop == 31 and plugin.model.spec == SPEC
    assert len(plugin.sha256) == 64


def test_it_takes_rubin_alerts_only_and_the_ztf_model_ztf_only(plugin):
    rubin, ztf = _rubin_alert(0, np.ones((31, 31))), _ztf_alert()
    assert plugin.applies_to(rubin) and not plugin.applies_to(ztf)
    ztf_model = BlendClassifier.load()
    assert ztf_model.applies_to(ztf) and not ztf_model.applies_to(rubin)


def test_synthetic_rubin_night_gets_sane_labels(plugin):
    packets = synthesise_rubin(40, seed=5, broken_fraction=0.0, progress=False)
    alerts = [decode_alert(p, registry=LocalSchemas.rubin()) for _, p, _ in packets]
    assert all(plugin.applies_to(a) for a in alerts)
    annotations = plugin.classify(alerts)
    assert len(annotations) == len(alerts)
    for a in annotations:
        assert a.classifier == "blend_rubin" and a.label in ("single", "blend")
        assert abs(sum(a.probabilities.values()) - 1.0) < 1e-6
        assert a.label == max(a.probabilities, key=a.probabilities.get)
    # synth's templates hold one point source each: mostly called single
    confident = [a for a in annotations if not a.ambiguous]
    assert confident and np.mean([a.label == "single" for a in confident]) >= 0.7


def test_rubin_sky_stamps_as_alerts_beat_chance_clearly(plugin):
    stamps, truth = sky.simulate_templates(np.random.default_rng(99), 150, RUBIN_SKY)
    alerts = [_rubin_alert(i, s) for i, s in enumerate(stamps)]
    outcomes = plugin.outcomes(alerts)
    ok = [i for i, o in enumerate(outcomes) if not isinstance(o, PacketError)]
    assert len(ok) >= 140
    labels = truth["label"][ok]
    called = np.array([outcomes[i].label == "blend" for i in ok])
    p_blend = np.array([outcomes[i].probabilities["blend"] for i in ok])
    assert np.mean(called == (labels == 1)) >= 0.7
    assert roc_auc_score(labels, p_blend) >= 0.8


@pytest.mark.parametrize("blob", [b"not a FITS file", b""], ids=["garbage", "empty"])
def test_a_broken_cutout_is_a_clear_error_for_that_alert_only(plugin, blob):
    rng = np.random.default_rng(2)
    good = [_rubin_alert(i, 100 + rng.normal(0, 1, (31, 31))) for i in (1, 3)]
    bad = _rubin_alert(2, blob)
    assert plugin.applies_to(bad)
    outcomes = plugin.outcomes([good[0], bad, good[1]])
    assert not isinstance(outcomes[0], PacketError) and not isinstance(outcomes[2], PacketError)
    error = outcomes[1]
    assert isinstance(error, PacketError) and error.field == "cutoutTemplate"
    assert "7002" in error.detail
    with pytest.raises(PacketError, match="7002"):
        plugin.classify([good[0], bad, good[1]])
    assert len(plugin.classify([good[0]])) == 1


def test_a_cutout_at_another_pixel_scale_is_refused(plugin):
    import io

    from astropy.io import fits

    header = fits.Header()
    header.update(
        CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=10.0, CRVAL2=-5.0, CRPIX1=16.0, CRPIX2=16.0,
        CDELT1=-1.0 / 3600, CDELT2=1.0 / 3600,
    )  # fmt: skip
    image = np.random.default_rng(3).normal(100, 1, (31, 31)).astype(np.float32)
    buffer = io.BytesIO()
    fits.PrimaryHDU(image, header).writeto(buffer)
    alert = _rubin_alert(4, buffer.getvalue())
    assert alert.view.cutout("template").pixel_scale == pytest.approx(1.0)
    (error,) = plugin.outcomes([alert])
    assert isinstance(error, PacketError) and error.reason == "bad_stamp"
    assert '1"/px' in error.detail and "7004" in error.detail
