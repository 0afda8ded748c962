"""Annotated Rubin alerts: every lsst-alert-packet sample (7.0-11.x), framed and unframed,
comes out in Rubin's schema plus ``stampflow`` (containers and the wire format), read back
by plain fastavro; the slim record serves both surveys; the vendored schemas are current."""

from __future__ import annotations

import io
import json

import fastavro
import numpy as np
import pytest

from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.registry import (
    LOCAL_ID_BASE,
    LocalSchemas,
    RegistryUnavailable,
    RetryingRegistry,
    local_schema_id,
    lsst_rubin_schemas,
    rubin_schema_id,
    rubin_versions,
)
from stampflow.schemas.rubin import RubinAlert
from stampflow.schemas.rubin_packets import rubin_cutout, rubin_message, rubin_record
from stampflow.schemas.vendor_rubin import differences
from stampflow.schemas.wire import WIRE_HEADER, frame, schema_id_of
from stampflow.schemas.writer_schema import full_name

VERSIONS = rubin_versions()
NOTE = Annotation("brightness", "0.1.0", "faint", {"bright": 0.0, "faint": 1.0})


def _sample(version: str) -> bytes:
    return (VERSIONS[version].parent / "sample_data" / "fakeAlert.avro").read_bytes()


def _read_wire(message: bytes, schema: str) -> dict:
    """A wire-format message read by fastavro alone, with the schema its id names."""
    parsed = fastavro.parse_schema(json.loads(schema))
    return fastavro.schemaless_reader(io.BytesIO(message[WIRE_HEADER:]), parsed, None)


def test_the_vendored_schemas_are_lsst_alert_packets():
    assert differences() == []
    assert sorted(LocalSchemas.rubin()) == sorted(lsst_rubin_schemas())
    assert {"7.0", "8.0", "9.0", "10.0", "11.0"} <= set(VERSIONS)


@pytest.mark.parametrize("version", sorted(VERSIONS, key=rubin_schema_id))
def test_every_sample_framed_and_unframed_comes_out_annotated(version):
    local = LocalSchemas.rubin()
    encoder = OutputEncoder("9.9.9", registry=local, subject_prefix="out")
    unframed = decode_alert(_sample(version))
    framed = decode_alert(frame(rubin_schema_id(version), unframed.record_bytes), registry=local)
    for alert in (unframed, framed):
        assert isinstance(alert, RubinAlert)
        encoded = encoder.encode_record(alert, [NOTE], mode="full", processing_time_ms=1.5)
        # a container: any Avro reader opens it; the record is Rubin's plus stampflow
        (record,) = fastavro.reader(io.BytesIO(encoded.container()))
        assert record["stampflow"]["annotations"][0]["label"] == "faint"
        assert {k: v for k, v in record.items() if k != "stampflow"}.keys() == alert.record.keys()
        schema = json.loads(encoded.schema_json)
        assert full_name(schema) == alert.writer_schema.fullname
        # the wire format under the annotated schema's deterministic id, which the local
        # registry learnt: stampflow (and plain fastavro) read it back
        message = encoder.message(encoded)
        schema_id = schema_id_of(message)
        assert schema_id == local_schema_id(encoded.schema_json.decode()) >= LOCAL_ID_BASE
        assert _read_wire(message, local.lookup(schema_id))["stampflow"]["stampflowVersion"] == (
            "9.9.9"
        )
        again = decode_alert(message, registry=local)
        assert isinstance(again, RubinAlert) and again.schema_version == version
        assert again.record["stampflow"]["annotations"][0]["classifier"] == "brightness"
        assert again.view.alert_id == alert.view.alert_id
        # re-annotating replaces the block
        twice = encoder.encode_record(again, [], mode="full", processing_time_ms=2.0)
        assert (
            decode_alert(encoder.message(twice), registry=local).record["stampflow"]["annotations"]
            == []
        )


def test_the_local_registry_ids_are_deterministic_and_written_to_its_directory(tmp_path):
    LocalSchemas.rubin().write_directory(tmp_path)
    local = LocalSchemas.from_directory(tmp_path)
    alert = decode_alert(_sample("11.0"))
    encoded = OutputEncoder(registry=local).encode_record(
        alert, [NOTE], mode="full", processing_time_ms=1.0
    )
    message = OutputEncoder(registry=local).message(encoded)
    schema_id = schema_id_of(message)
    assert (tmp_path / f"{schema_id}.avsc").is_file()
    # another process reading the directory decodes the output
    assert decode_alert(message, registry=LocalSchemas.from_directory(tmp_path)).schema_id == (
        schema_id
    )
    assert OutputEncoder(registry=LocalSchemas.rubin()).message(encoded) == message


def test_without_a_registry_rubin_output_is_a_container():
    alert = decode_alert(_sample("9.0"))
    encoded = OutputEncoder().encode_record(alert, [], mode="full", processing_time_ms=1.0)
    assert OutputEncoder().message(encoded).startswith(b"Obj\x01")


def test_the_slim_record_serves_both_surveys():
    encoder = OutputEncoder("1.0.0")
    rubin = decode_alert(_sample("8.0"))
    (slim,) = fastavro.reader(
        io.BytesIO(encoder.encode(rubin, [NOTE], mode="slim", processing_time_ms=1.0))
    )
    source = rubin.record["diaSource"]
    assert slim["survey"] == "rubin" and slim["band"] == source["band"] and slim["fid"] == 0
    assert slim["candid"] == rubin.record["diaSourceId"]
    assert slim["jd"] == pytest.approx(source["midpointMjdTai"] + 2400000.5)
    assert (slim["ra"], slim["dec"]) == (source["ra"], source["dec"])
    assert slim["objectId"] == (rubin.view.object_id or "")


def test_synthetic_rubin_messages_of_every_version_decode_with_their_cutouts():
    local = LocalSchemas.rubin()
    image = np.arange(31 * 31, dtype=np.float32).reshape(31, 31)
    for schema_id in local:
        if schema_id >= LOCAL_ID_BASE:
            continue
        record = rubin_record(
            schema_id, alert_id=9, object_id=3, ra=10.0, dec=-5.0, mjd=61000.0, band="i",
            flux=2000.0, flux_err=20.0, cutouts={"template": rubin_cutout(image, 10.0, -5.0)},
        )  # fmt: skip
        alert = decode_alert(rubin_message(record, schema_id), registry=local)
        assert (alert.view.alert_id, alert.view.object_id, alert.view.band) == (9, "3", "i")
        np.testing.assert_array_equal(alert.stamp("template"), image)
        assert alert.view.cutout("template").pixel_scale == pytest.approx(0.2)
        assert alert.view.cutout("template").wcs.wcs.crval.tolist() == [10.0, -5.0]


def test_a_retrying_registry_waits_out_an_outage_and_passes_unknown_ids_on():
    local = LocalSchemas.rubin()
    calls = {"n": 0}
    waits: list[float] = []

    class Flaky:
        def lookup(self, schema_id: int) -> str:
            calls["n"] += 1
            if calls["n"] < 4:
                raise RegistryUnavailable("down")
            return local.lookup(schema_id)

    answered = []
    registry = RetryingRegistry(
        Flaky(),
        first_wait_s=0.01,
        on_retry=lambda s, _e: waits.append(s),
        on_answer=lambda: answered.append(1),
        sleep=lambda _s: None,
    )
    message = frame(1100, decode_alert(_sample("11.0")).record_bytes)
    assert decode_packet(message, registry=registry).alerts[0].schema_id == 1100
    assert waits == [0.01, 0.02, 0.04] and answered == [1]
    with pytest.raises(Exception) as caught:
        decode_packet(frame(5, b"\x00"), registry=RetryingRegistry(local))
    assert caught.value.reason == "unknown_schema_id"
