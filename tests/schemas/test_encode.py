"""Round trip: decode, annotate, encode, read back with fastavro and with the avro package."""

from __future__ import annotations

import io
import json

import avro.datafile
import avro.io
import fastavro
import pytest

from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import write_alert_packet
from stampflow.schemas.stamps import encode_stamp

from .helpers import alert_record, stamp_image

ANNOTATIONS = [
    Annotation("blend", "1.2.0", "blend", {"single": 0.25, "blend": 0.75}, 0.125, False),
    Annotation("morphology", "0.3.1", "shell", {"spiral": 0.5, "shell": 0.5}, 1.5, True),
]
EXPECTED_BLOCK = {
    "stampflowVersion": "9.9.9",
    "processingTimeMs": 12.5,
    "annotations": [
        {
            "classifier": "blend",
            "modelVersion": "1.2.0",
            "label": "blend",
            "probabilities": {"single": 0.25, "blend": 0.75},
            "uncertainty": 0.125,
            "ambiguous": False,
        },
        {
            "classifier": "morphology",
            "modelVersion": "0.3.1",
            "label": "shell",
            "probabilities": {"spiral": 0.5, "shell": 0.5},
            "uncertainty": 1.5,
            "ambiguous": True,
        },
    ],
}


def _fastavro_read(data: bytes) -> list[dict]:
    return list(fastavro.reader(io.BytesIO(data)))


def _avro_read(data: bytes) -> list[dict]:
    with avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader()) as reader:
        return list(reader)


@pytest.fixture(scope="module")
def encoder() -> OutputEncoder:
    return OutputEncoder(stampflow_version="9.9.9")


def test_full_output_is_the_input_record_plus_the_stampflow_block(ztf_packets, encoder):
    for name, data in ztf_packets.items():
        alert = decode_alert(data)
        out = encoder.encode(alert, ANNOTATIONS, mode="full", processing_time_ms=12.5)
        (record,) = _fastavro_read(out)
        assert record.pop("stampflow") == EXPECTED_BLOCK, name
        assert record == alert.record, name


def test_a_strict_independent_reader_reads_every_distinct_output_schema(ztf_packets, encoder):
    seen = set()
    for name, data in ztf_packets.items():
        alert = decode_alert(data)
        if alert.writer_schema.fingerprint in seen:
            continue
        seen.add(alert.writer_schema.fingerprint)
        out = encoder.encode(alert, ANNOTATIONS, mode="full", processing_time_ms=12.5)
        (record,) = _avro_read(out)
        assert record["stampflow"] == EXPECTED_BLOCK, name
        assert record["objectId"] == alert.object_id
        assert record["candidate"]["candid"] == alert.candidate["candid"]
        assert record["cutoutScience"]["stampData"] == alert.record["cutoutScience"]["stampData"]
    assert len(seen) >= 10


def test_slim_output_carries_ids_position_time_band_and_annotations(ztf_packets, encoder):
    for data in list(ztf_packets.values())[:20]:
        alert = decode_alert(data)
        out = encoder.encode(alert, ANNOTATIONS, mode="slim", processing_time_ms=12.5)
        expected = {
            "objectId": alert.object_id,
            "candid": alert.candid,
            "ra": alert.ra,
            "dec": alert.dec,
            "jd": alert.jd,
            "fid": alert.fid,
            "survey": "ztf",  # slim 1.1
            "band": {1: "g", 2: "r", 3: "i"}[alert.fid],
            "stampflow": EXPECTED_BLOCK,
        }
        assert _fastavro_read(out) == [expected]
        assert _avro_read(out) == [expected]


def test_one_output_schema_per_writer_schema(ztf_packets, encoder):
    alerts = [decode_alert(data) for data in ztf_packets.values()]
    by_fingerprint = {}
    for alert in alerts:
        schema = encoder.schema_for(alert, "full")
        assert by_fingerprint.setdefault(alert.writer_schema.fingerprint, schema) is schema
    assert encoder.schema_for(alerts[0], "slim") is encoder.schema_for(alerts[1], "slim")


def test_records_of_one_schema_go_into_one_container(encoder):
    alerts = [decode_alert(write_alert_packet(alert_record(c))) for c in (1, 2, 3)]
    schema = encoder.schema_for(alerts[0], "full")
    records = [
        encoder.record(alert, ANNOTATIONS, mode="full", processing_time_ms=12.5) for alert in alerts
    ]
    out = io.BytesIO()
    fastavro.writer(out, schema, records)
    decoded = decode_packet(out.getvalue())
    assert [alert.candid for alert in decoded.alerts] == [1, 2, 3]
    assert all(alert.record["stampflow"] == EXPECTED_BLOCK for alert in decoded.alerts)


def test_multiband_cutouts_survive_the_round_trip(encoder):
    images = [stamp_image(seed, (32, 32)) for seed in range(2)]
    multiband = {
        "filters": ["F200W", "F444W"],
        "pixelScale": [0.031, 0.063],
        "stampData": [encode_stamp(image) for image in images],
    }
    alert = decode_alert(write_alert_packet(alert_record(8) | {"cutoutMultiband": multiband}))
    out = encoder.encode(alert, ANNOTATIONS, mode="full", processing_time_ms=12.5)
    (record,) = _avro_read(out)
    assert record["cutoutMultiband"] == multiband
    assert decode_alert(out).multiband.stamps().shape == (2, 32, 32)


def test_re_annotating_an_output_replaces_its_stampflow_block(ztf_packets, encoder):
    first = decode_alert(next(iter(ztf_packets.values())))
    out = encoder.encode(first, ANNOTATIONS, mode="full", processing_time_ms=12.5)
    again = decode_alert(out)
    assert again.record["stampflow"] == EXPECTED_BLOCK
    out2 = encoder.encode(again, ANNOTATIONS[:1], mode="full", processing_time_ms=3.0)
    schema = json.loads(fastavro.reader(io.BytesIO(out2)).metadata["avro.schema"])
    assert [field["name"] for field in schema["fields"]].count("stampflow") == 1
    (record,) = _avro_read(out2)
    assert record["stampflow"]["annotations"] == EXPECTED_BLOCK["annotations"][:1]
    assert record["stampflow"]["processingTimeMs"] == 3.0


def test_a_writer_schema_defining_stampflow_types_is_a_conflict(encoder):
    packet = write_alert_packet(alert_record(2))
    alert = decode_alert(packet)
    schema = json.loads(json.dumps(alert.writer_schema.schema))
    schema["fields"].append(
        {
            "name": "extra",
            "type": [
                "null",
                {"type": "record", "name": "Annotation", "namespace": "stampflow", "fields": []},
            ],
            "default": None,
        }
    )
    out = io.BytesIO()
    fastavro.writer(out, schema, [alert.record | {"extra": None}])
    with pytest.raises(PacketError) as caught:
        encoder.encode(decode_alert(out.getvalue()), ANNOTATIONS, processing_time_ms=1.0)
    assert caught.value.reason == "schema_conflict"


def test_unknown_modes_are_refused(encoder):
    alert = decode_alert(write_alert_packet(alert_record(1)))
    with pytest.raises(ValueError, match="mode"):
        encoder.encode(alert, ANNOTATIONS, mode="tiny", processing_time_ms=1.0)


def test_encode_many_writes_one_container_for_alerts_of_one_schema(encoder):
    alerts = [decode_alert(write_alert_packet(alert_record(c))) for c in (1, 2, 3)]
    items = [(alert, ANNOTATIONS[:i]) for i, alert in enumerate(alerts)]
    out = encoder.encode_many(items, mode="full", processing_time_ms=12.5)
    records = _avro_read(out)
    assert [record["candid"] for record in records] == [1, 2, 3]
    assert [len(record["stampflow"]["annotations"]) for record in records] == [0, 1, 2]
    for record, alert in zip(_fastavro_read(out), alerts, strict=True):
        assert {k: v for k, v in record.items() if k != "stampflow"} == alert.record


def test_encode_many_refuses_mixed_schemas(ztf_packets, encoder):
    mine = decode_alert(write_alert_packet(alert_record(1)))
    theirs = decode_alert(next(iter(ztf_packets.values())))
    items = [(mine, ANNOTATIONS), (theirs, ANNOTATIONS)]
    with pytest.raises(ValueError, match="different output schemas"):
        encoder.encode_many(items, mode="full", processing_time_ms=1.0)
    slim = encoder.encode_many(items, mode="slim", processing_time_ms=1.0)
    assert [r["objectId"] for r in _fastavro_read(slim)] == [mine.object_id, theirs.object_id]
