"""Rubin alerts: every lsst-alert-packet sample (7.0-11.x) framed and unframed, the offline
registry, the survey-neutral view, cutouts checked against astropy, the wire encoder."""

from __future__ import annotations

import gzip
import io
import json
import math

import fastavro
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, VarianceUncertainty
from astropy.wcs import WCS
from fastavro.schema import to_parsing_canonical_form

from stampflow.schemas.alert import Alert
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import write_alert_packet
from stampflow.schemas.registry import (
    LocalSchemas,
    SchemaRegistry,
    rubin_schema_id,
    rubin_versions,
)
from stampflow.schemas.rubin import RubinAlert
from stampflow.schemas.wire import encode_wire, frame, schema_id_of

from .helpers import alert_record

VERSIONS = rubin_versions()
# The versions the issue names; the package may ship newer ones, which are tested as well.
REQUIRED = ["7.0", "7.1", "7.2", "7.3", "7.4", "8.0", "9.0", "10.0", "11.0"]


def _sample(version: str) -> bytes:
    """lsst-alert-packet's ``fakeAlert.avro`` for ``version``: an Avro container file."""
    return (VERSIONS[version].parent / "sample_data" / "fakeAlert.avro").read_bytes()


def _same(a: object, b: object) -> bool:
    """Record equality where NaN equals NaN (Rubin's samples are full of NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.fixture(scope="module")
def rubin() -> LocalSchemas:
    return LocalSchemas.rubin()


def test_the_package_ships_every_required_version_and_ids_are_major_times_100_plus_minor(rubin):
    assert set(REQUIRED) <= set(VERSIONS)
    assert rubin_schema_id("7.1") == 701 and rubin_schema_id("11.0") == 1100
    assert sorted(rubin) == sorted(rubin_schema_id(v) for v in VERSIONS)
    assert isinstance(rubin, SchemaRegistry)
    for version in VERSIONS:
        schema = json.loads(rubin.lookup(rubin_schema_id(version)))
        assert schema["name"] == f"lsst.v{version.replace('.', '_')}.alert"
        # What the offline registry holds is what the sample was written with.
        embedded = fastavro.reader(io.BytesIO(_sample(version))).writer_schema
        assert to_parsing_canonical_form(embedded) == to_parsing_canonical_form(schema)


@pytest.mark.parametrize("version", sorted(VERSIONS, key=rubin_schema_id))
def test_every_sample_decodes_unframed_and_framed_into_the_neutral_view(version, rubin):
    data = _sample(version)
    expected = next(iter(fastavro.reader(io.BytesIO(data))))

    (unframed,) = decode_packet(data).alerts
    assert isinstance(unframed, RubinAlert) and unframed.schema_id is None
    assert _same(unframed.record, expected)

    schema_id = rubin_schema_id(version)
    message = frame(schema_id, unframed.record_bytes)
    assert schema_id_of(message) == schema_id
    (framed,) = decode_packet(message, registry=rubin).alerts
    assert isinstance(framed, RubinAlert) and framed.schema_id == schema_id
    assert framed.record_bytes == unframed.record_bytes and framed.raw == message
    assert _same(framed.record, expected)
    assert framed.writer_schema.survey == "rubin"

    view = framed.view
    source = expected["diaSource"]
    assert view.survey == "rubin" and view.schema_version == version
    assert view.alert_id == expected.get("alertId", expected.get("diaSourceId"))
    assert (view.ra, view.dec, view.mjd) == (source["ra"], source["dec"], source["midpointMjdTai"])
    assert view.band == source["band"]
    assert view.flux == source["psfFlux"] and view.flux_err == source["psfFluxErr"]
    assert view.magnitude == pytest.approx(31.4 - 2.5 * math.log10(source["psfFlux"]))
    assert view.magnitude_err == pytest.approx(1.0857362 * source["psfFluxErr"] / source["psfFlux"])
    object_id = source.get("diaObjectId") or source.get("ssObjectId")
    assert view.object_id == (None if not object_id else str(object_id))
    assert view.record is framed.record  # passed through untouched
    assert view.cutouts == {}  # the samples carry no cutouts
    assert not framed.has_stamp("science")
    with pytest.raises(PacketError) as caught:
        framed.stamp("science")
    assert (caught.value.reason, caught.value.field) == ("missing_field", "cutoutScience")


def test_an_unknown_schema_id_is_a_packet_error_naming_the_id(rubin):
    body = decode_packet(_sample("7.1")).alerts[0].record_bytes
    message = frame(4242, body)
    for registry in (rubin, {701: rubin[701]}):
        with pytest.raises(PacketError, match="4242") as caught:
            decode_packet(message, registry=registry)
        assert caught.value.reason == "unknown_schema_id"
    # The schema of another version under the wrong id does not decode the record cleanly.
    with pytest.raises(PacketError) as caught:
        decode_packet(frame(1100, body), registry={1100: rubin[1100]})
    assert caught.value.reason in {"corrupt", "truncated"}


def test_schemas_written_to_a_directory_read_back(tmp_path, rubin):
    written = rubin.write_directory(tmp_path)
    assert {path.name for path in written} == {f"{schema_id}.avsc" for schema_id in rubin}
    again = LocalSchemas.from_directory(tmp_path)
    assert sorted(again) == sorted(rubin)
    assert all(json.loads(again[i]) == json.loads(rubin[i]) for i in rubin)
    message = frame(1100, decode_packet(_sample("11.0")).alerts[0].record_bytes)
    assert decode_alert(message, registry=again).schema_id == 1100
    with pytest.raises(PacketError, match="schema directory") as caught:
        decode_alert(frame(1, b"\x00"), registry=again)
    assert caught.value.reason == "unknown_schema_id"


def _wcs(ra: float, dec: float, rotation_deg: float, centre: tuple[float, float]) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = list(centre)
    scale = 0.2 / 3600
    theta = np.deg2rad(rotation_deg)
    wcs.wcs.cd = [
        [-scale * np.cos(theta), scale * np.sin(theta)],
        [scale * np.sin(theta), scale * np.cos(theta)],
    ]
    return wcs


def _rubin_cutout(seed: int, ra: float, dec: float, *, empty_primary: bool = False) -> bytes:
    """A cutout as Rubin's pipelines write one: astropy CCDData (image + WCS, variance) as
    FITS bytes; ``empty_primary`` puts the image in the first extension instead."""
    rng = np.random.default_rng(seed)
    shape = (30 + seed % 3, 31)
    image = rng.normal(0.0, 50.0, size=shape).astype(np.float32)
    image[3, 4] = np.nan
    wcs = _wcs(ra, dec, 12.0 * seed, (shape[1] / 2 + 0.5, shape[0] / 2 + 0.5))
    if empty_primary:
        hdus = fits.HDUList(
            [fits.PrimaryHDU(), fits.ImageHDU(image, header=wcs.to_header(), name="IMAGE")]
        )
        out = io.BytesIO()
        hdus.writeto(out)
        return out.getvalue()
    ccd = CCDData(
        image, unit="nJy", wcs=wcs, uncertainty=VarianceUncertainty(np.full(shape, 2500.0))
    )
    out = io.BytesIO()
    ccd.write(out, format="fits")
    return out.getvalue()


@pytest.mark.parametrize("version", ["7.0", "8.0", "11.0"])
def test_rubin_cutouts_decode_lazily_and_match_astropy(version, rubin):
    sample = decode_packet(_sample(version)).alerts[0]
    record = dict(sample.record)
    ra, dec = record["diaSource"]["ra"], record["diaSource"]["dec"]
    blobs = {
        "cutoutScience": _rubin_cutout(1, ra, dec),
        "cutoutTemplate": gzip.compress(_rubin_cutout(2, ra, dec), mtime=0),
        "cutoutDifference": _rubin_cutout(3, ra, dec, empty_primary=True),
    }
    record.update(blobs)
    schema_id = rubin_schema_id(version)
    message = encode_wire(record, rubin[schema_id], schema_id)
    alert = decode_alert(message, registry=rubin)
    assert isinstance(alert, RubinAlert)
    assert frame(alert.schema_id, alert.record_bytes) == message  # re-framing is byte-exact

    view = alert.view
    assert set(view.cutouts) == {"science", "template", "difference"}
    for kind, field in (
        ("science", "cutoutScience"),
        ("template", "cutoutTemplate"),
        ("difference", "cutoutDifference"),
    ):
        cutout = view.cutout(kind)
        assert cutout.kind == kind and cutout.field == field and cutout._fits is None  # lazy
        raw = blobs[field]
        with fits.open(io.BytesIO(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)) as hdus:
            hdu = next(h for h in hdus if h.data is not None)
            reference = hdu.data.astype(np.float32)
            reference_wcs = WCS(hdu.header, naxis=2)
        np.testing.assert_array_equal(cutout.data, reference)  # NaN in the same places
        assert cutout.data.dtype == np.float32 and not cutout.data.flags.writeable
        assert alert.stamp(kind) is cutout.data  # decoded once
        assert cutout.pixel_scale == pytest.approx(0.2, rel=1e-9)
        assert cutout.wcs is not None
        pixels = np.array([[0.0, 0.0], [10.5, 3.25], [30.0, 29.0]])
        np.testing.assert_allclose(
            cutout.wcs.all_pix2world(pixels, 0), reference_wcs.all_pix2world(pixels, 0)
        )
        centre = cutout.wcs.all_pix2world(
            [[(reference.shape[1] - 1) / 2, (reference.shape[0] - 1) / 2]], 0
        )[0]
        assert centre == pytest.approx([ra, dec], abs=1e-6)
        assert cutout.header["CTYPE1"].strip("' ") == "RA---TAN"


def test_a_bad_rubin_cutout_fails_only_when_it_is_read(rubin):
    record = dict(decode_packet(_sample("9.0")).alerts[0].record)
    record["cutoutScience"] = b"SIMPLE  = not really FITS"
    alert = decode_alert(encode_wire(record, rubin[900], 900), registry=rubin)
    assert alert.has_stamp("science")
    with pytest.raises(PacketError) as caught:
        _ = alert.view.cutout("science").data
    assert (caught.value.reason, caught.value.field) == ("bad_stamp", "cutoutScience")


def test_a_rubin_named_record_without_the_needed_fields_is_missing_field():
    schema = {
        "type": "record",
        "name": "lsst.v7_0.alert",
        "fields": [
            {"name": "alertId", "type": "long"},
            {
                "name": "diaSource",
                "type": {
                    "type": "record",
                    "name": "lsst.v7_0.diaSource",
                    "fields": [{"name": "ra", "type": "double"}, {"name": "dec", "type": "double"}],
                },
            },
        ],
    }
    message = encode_wire({"alertId": 5, "diaSource": {"ra": 1.0, "dec": 2.0}}, schema, 700)
    with pytest.raises(PacketError) as caught:
        decode_packet(message, registry={700: schema})
    assert (caught.value.reason, caught.value.field) == (
        "missing_field",
        "diaSource.midpointMjdTai",
    )


def test_encode_wire_refuses_records_that_do_not_match(rubin):
    with pytest.raises(ValueError, match="schema id 701"):
        encode_wire({"alertId": "not a long"}, rubin[701], 701)
    with pytest.raises(ValueError):
        frame(-1, b"")


def test_a_ztf_alert_has_the_same_view(tmp_path):
    record = alert_record(7)
    alert = decode_alert(write_alert_packet(record))
    assert isinstance(alert, Alert) and alert.survey == "ztf" and alert.schema_id is None
    view = alert.view
    candidate = record["candidate"]
    assert (view.survey, view.alert_id, view.object_id) == ("ztf", 7, record["objectId"])
    assert (view.ra, view.dec) == (candidate["ra"], candidate["dec"])
    assert view.mjd == pytest.approx(candidate["jd"] - 2400000.5)
    assert view.band == {1: "g", 2: "r", 3: "i"}[candidate["fid"]]
    assert view.magnitude == candidate["magpsf"] and view.flux is None
    assert view.record is alert.record
    assert set(view.cutouts) == {"science", "template", "difference"}
    science = view.cutout("science")
    assert science.data is alert.stamp("science")  # the alert's own cached stamp
    assert science.pixel_scale == 1.01 and science.wcs is None  # no WCS in these headers
    with pytest.raises(ValueError):
        view.cutout("multiband")
