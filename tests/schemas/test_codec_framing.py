"""Container files with several records and codecs, the wire format, and framing errors."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from stampflow.schemas.avsc import input_alert_schema
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.container import encode_long, header_bytes, new_sync, single_block
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import write_alert_packet

from .helpers import alert_record


def _container(records: list[dict], codec: str = "null", schema: dict | None = None) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, schema or input_alert_schema(), records, codec=codec, sync_interval=1)
    return out.getvalue()


def _reason(data: bytes, **kwargs) -> str:
    with pytest.raises(PacketError) as caught:
        decode_packet(data, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_several_records_in_several_blocks_all_come_out_in_order(codec):
    records = [alert_record(candid) for candid in range(1, 6)]
    data = _container(records, codec)
    decoded = decode_packet(data)
    assert decoded.error is None
    assert [alert.candid for alert in decoded.alerts] == [1, 2, 3, 4, 5]
    assert [alert.record for alert in decoded.alerts] == list(fastavro.reader(io.BytesIO(data)))
    assert decoded.alerts[3].stamp("science").shape == (63, 63)


def test_a_block_holding_several_records():
    records = [alert_record(candid, stamps=False) for candid in range(1, 4)]
    out = io.BytesIO()
    fastavro.writer(out, input_alert_schema(), records)  # default sync interval: one block
    assert [alert.candid for alert in decode_packet(out.getvalue()).alerts] == [1, 2, 3]


def test_wire_format_decodes_with_the_registry_schema():
    record = alert_record(42)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(input_alert_schema()), record)
    message = b"\x00" + (7).to_bytes(4, "big") + body.getvalue()
    registry = {7: input_alert_schema()}
    (alert,) = decode_packet(message, registry=registry).alerts
    assert alert.object_id == record["objectId"] and alert.candid == 42
    assert alert.stamp("difference").shape == (63, 63)
    assert _reason(message, registry={8: input_alert_schema()}) == "unknown_schema_id"
    assert _reason(message + b"\x00", registry=registry) == "corrupt"
    assert _reason(message[:5], registry=registry) == "truncated"
    as_json = {7: json.dumps(input_alert_schema())}  # registries may hold the schema's JSON
    assert decode_packet(message, registry=as_json).alerts[0].candid == 42
    # Container packets still decode when a registry is given.
    assert decode_packet(write_alert_packet(record), registry=registry).alerts[0].candid == 42


def test_wire_format_notices_a_registry_that_changes_the_schema_for_an_id():
    record = alert_record(3, stamps=False)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(input_alert_schema()), record)
    message = b"\x00" + (1).to_bytes(4, "big") + body.getvalue()
    assert decode_packet(message, registry={1: input_alert_schema()}).alerts[0].candid == 3
    atlas_like = {"type": "record", "name": "alert", "namespace": "atlas", "fields": []}
    assert _reason(message, registry={1: atlas_like}) == "unknown_schema"


def test_framing_errors_have_precise_reasons():
    packet = write_alert_packet(alert_record(9))
    assert _reason(b"") == "empty"
    assert _reason(b"Ob") == "truncated"
    assert _reason(b"\x00\x01\x02 not avro") == "no_container_header"
    with pytest.raises(PacketError, match="wire format"):
        decode_packet(b"\x00\x00\x00\x00\x07" + bytes(20))  # wire format, no registry
    assert _reason(packet[:40]) == "truncated"
    assert _reason(packet[:-1]) == "truncated"
    sync = new_sync()
    header = header_bytes(_schema_json(input_alert_schema()), sync)
    assert _reason(header) == "no_records"
    broken_sync = packet[:-16] + bytes(16)
    assert _reason(broken_sync) == "corrupt"
    huge_block = header + encode_long(1) + encode_long(2**40)
    assert _reason(huge_block) == "corrupt"
    huge_schema = (
        b"Obj\x01" + encode_long(1) + encode_long(11) + b"avro.schema" + encode_long(2**31)
    )
    assert _reason(huge_schema) == "truncated"


def test_an_unsupported_codec_is_named():
    data = _container([alert_record(1, stamps=False)], codec="bzip2")
    with pytest.raises(PacketError, match="bzip2") as caught:
        decode_packet(data)
    assert caught.value.reason == "unsupported_codec"


def test_a_ztf_named_schema_without_the_needed_fields_is_missing_field():
    schema = {
        "type": "record",
        "name": "alert",
        "namespace": "ztf",
        "fields": [{"name": "objectId", "type": "string"}, {"name": "candid", "type": "long"}],
    }
    with pytest.raises(PacketError) as caught:
        decode_packet(_container([{"objectId": "ZTF1", "candid": 1}], schema=schema))
    assert (caught.value.reason, caught.value.field) == ("missing_field", "candidate")


def test_arrays_of_zero_byte_items_are_refused_before_they_can_loop():
    schema = {
        "type": "record",
        "name": "alert",
        "namespace": "ztf",
        "fields": [{"name": "nothing", "type": {"type": "array", "items": "null"}}],
    }
    sync = new_sync()
    body = encode_long(2**62) + encode_long(0)  # an array claiming 2**62 nulls
    data = single_block(header_bytes(_schema_json(schema), sync), sync, body)
    assert _reason(data) == "corrupt"


def test_trailing_bytes_after_the_records_are_reported_with_the_records():
    record = alert_record(5, stamps=False)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(input_alert_schema()), record)
    sync = new_sync()
    header = header_bytes(_schema_json(input_alert_schema()), sync)
    good = single_block(header, sync, body.getvalue())
    assert decode_alert(good).candid == 5
    decoded = decode_packet(single_block(header, sync, body.getvalue() + b"\x00\x00"))
    assert [alert.candid for alert in decoded.alerts] == [5]
    assert decoded.error is not None and decoded.error.reason == "corrupt"


def _schema_json(schema: dict) -> bytes:
    return json.dumps(schema).encode()
