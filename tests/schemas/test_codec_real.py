"""Every real packet in ../shared/alerts: read like fastavro, stamps like astropy, or refused."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from stampflow.schemas import writer_schema
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.errors import PacketError

STAMPS = {
    "science": "cutoutScience",
    "template": "cutoutTemplate",
    "difference": "cutoutDifference",
}


def _reference_records(data: bytes) -> tuple[dict, list[dict]]:
    reader = fastavro.reader(io.BytesIO(data))
    return reader.writer_schema, list(reader)


def test_every_ztf_packet_decodes_to_the_record_fastavro_reads(ztf_packets):
    for name, data in ztf_packets.items():
        decoded = decode_packet(data)
        _, expected = _reference_records(data)
        assert decoded.error is None, name
        assert [alert.record for alert in decoded.alerts] == expected, name
        alert = decoded.alerts[0]
        record = expected[0]
        assert alert.object_id == record["objectId"]
        assert alert.candid == record.get("candid", record["candidate"]["candid"])
        assert (alert.jd, alert.fid, alert.ra, alert.dec, alert.magpsf) == tuple(
            record["candidate"][key] for key in ("jd", "fid", "ra", "dec", "magpsf")
        )
        assert alert.prv_candidates == (record.get("prv_candidates") or [])
        if record.get("schemavsn"):
            assert alert.schema_version == record["schemavsn"]


def test_the_packets_cover_every_schema_version_and_writer(ztf_packets):
    alerts = [decode_alert(data) for data in ztf_packets.values()]
    versions = {alert.record.get("schemavsn") for alert in alerts}
    assert {"2.0", "3.0", "3.1", "3.2", "3.3", "3.5", "4.01", None} <= versions
    assert {alert.writer_schema.fullname for alert in alerts} == {"ztf.alert", "topLevelRecord"}


def test_each_distinct_writer_schema_is_parsed_once(ztf_packets):
    writer_schema.from_json_bytes.cache_clear()
    fingerprints = set()
    for data in ztf_packets.values():
        fingerprints.add(decode_alert(data).writer_schema.fingerprint)
    for data in ztf_packets.values():
        decode_alert(data)
    info = writer_schema.from_json_bytes.cache_info()
    assert info.misses == len(fingerprints)
    assert info.hits == 2 * len(ztf_packets) - len(fingerprints)


# Some real ZTF stamps pad the SIMPLE card oddly; astropy warns and reads them anyway.
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_stamps_equal_astropy_including_edge_cuts_and_nan(ztf_packets):
    shapes, nan_pixels = set(), 0
    for name, data in ztf_packets.items():
        alert = decode_alert(data)
        for which, field in STAMPS.items():
            assert alert.has_stamp(which), (name, which)
            image = alert.stamp(which)
            reference = fits.getdata(io.BytesIO(gzip.decompress(alert.record[field]["stampData"])))
            assert image.dtype == np.float32 and not image.flags.writeable  # shared, read-only
            assert image.shape == reference.shape, (name, which)
            np.testing.assert_array_equal(image, reference.astype(np.float32), err_msg=name)
            assert alert.stamp(which) is image  # decoded once, cached
            shapes.add(image.shape)
            nan_pixels += int(np.isnan(image).sum())
    assert (63, 63) in shapes and len(shapes) > 1, "edge-cut stamps keep their real shape"
    assert nan_pixels > 0, "NaN pixels stay visible"


@pytest.mark.parametrize(
    ("prefix", "reason", "field"),
    [
        ("2017-03-30", "no_container_header", None),
        ("2017-04-04", "unsupported_stamp", "cutoutScience"),
        ("2017-07-30", "unsupported_stamp", "cutoutScience"),
    ],
)
def test_legacy_packets_are_refused_with_their_reason(shared_alerts: Path, prefix, reason, field):
    paths = sorted((shared_alerts / "legacy").glob(f"{prefix}_*.avro"))
    assert len(paths) == 3
    for path in paths:
        with pytest.raises(PacketError) as caught:
            decode_packet(path.read_bytes())
        assert (caught.value.reason, caught.value.field) == (reason, field), path.name


def test_damaged_packet_yields_its_valid_record_and_reports_the_tail(shared_alerts: Path):
    data = (shared_alerts / "damaged" / "ztf_4.02_truncated_tail.avro").read_bytes()
    decoded = decode_packet(data)
    assert len(decoded.alerts) == 1
    assert decoded.error is not None and decoded.error.reason in {"corrupt", "truncated"}
    first = next(iter(fastavro.reader(io.BytesIO(data))))
    assert decoded.alerts[0].record == first
    assert decoded.alerts[0].schema_version == "4.02"
    assert decoded.alerts[0].stamp("science").shape == (63, 63)
    assert decode_alert(data).object_id == first["objectId"]


def test_atlas_packets_are_not_ztf_alerts(shared_alerts: Path):
    paths = sorted((shared_alerts / "other-surveys" / "atlas").glob("*.avro"))
    assert len(paths) == 12
    for path in paths:
        with pytest.raises(PacketError, match="atlas.alert") as caught:
            decode_packet(path.read_bytes())
        assert caught.value.reason == "unknown_schema"
