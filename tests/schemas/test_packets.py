"""stampflow's own input packets: alert.avsc, minimal candidates, the multiband extension."""

from __future__ import annotations

import json

import avro.schema
import numpy as np
import pytest

from stampflow.schemas.avsc import input_alert_schema, slim_schema, stampflow_info_schema
from stampflow.schemas.codec import decode_alert
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import minimal_candidate, write_alert_packet
from stampflow.schemas.stamps import encode_stamp

from .helpers import alert_record, stamp_image

FILTERS = ["F200W", "F277W", "F356W", "F444W"]
SCALES = [0.031, 0.063, 0.063, 0.063]


def _multiband(images: list[np.ndarray], **overrides) -> dict:
    value = {"filters": FILTERS, "pixelScale": SCALES, "stampData": list(map(encode_stamp, images))}
    return {**value, **overrides}


def test_the_schema_files_are_valid_for_a_strict_avro_parser():
    for schema in (input_alert_schema(), slim_schema(), stampflow_info_schema()):
        avro.schema.parse(json.dumps(schema))


def test_minimal_candidate_fills_every_field_and_refuses_unknown_ones():
    candidate = minimal_candidate(magpsf=17.5, fid=3)
    assert len(candidate) == 103 and candidate["magpsf"] == 17.5 and candidate["fid"] == 3
    assert candidate["rb"] is None
    with pytest.raises(ValueError, match="magnitude"):
        minimal_candidate(magnitude=17.5)


def test_a_written_packet_decodes_with_its_stamps_and_multiband_cutout():
    images = [stamp_image(seed, (48, 48)) for seed in range(4)]
    record = alert_record(11) | {"cutoutMultiband": _multiband(images)}
    alert = decode_alert(write_alert_packet(record))
    assert (alert.object_id, alert.candid, alert.schema_version) == ("ZTF24test0011", 11, "4.02")
    np.testing.assert_array_equal(alert.stamp("template"), stamp_image(12))
    band = alert.multiband
    assert band is not None and band.filters == tuple(FILTERS) and band.pixel_scale == tuple(SCALES)
    stack = band.stamps()
    assert stack.shape == (4, 48, 48) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack, np.stack(images))
    assert band.stamps() is stack


def test_packets_without_optional_fields():
    record = {"objectId": "ZTF24x", "candid": 1, "candidate": minimal_candidate(candid=1)}
    alert = decode_alert(write_alert_packet(record))
    assert alert.multiband is None and not alert.has_stamp("science")
    with pytest.raises(PacketError) as caught:
        alert.stamp("science")
    assert (caught.value.reason, caught.value.field) == ("missing_field", "cutoutScience")
    with pytest.raises(ValueError, match="stamp must be one of"):
        alert.has_stamp("sky")


def test_a_broken_stamp_surfaces_only_when_it_is_used():
    record = alert_record(4)
    record["cutoutDifference"] = {"fileName": "d", "stampData": b"\x1f\x8bnot gzip at all"}
    alert = decode_alert(write_alert_packet(record))
    assert alert.stamp("science").shape == (63, 63)
    with pytest.raises(PacketError) as caught:
        alert.stamp("difference")
    assert (caught.value.reason, caught.value.field) == ("bad_stamp", "cutoutDifference")


@pytest.mark.parametrize(
    "overrides",
    [
        {"pixelScale": SCALES[:3]},
        {"filters": []},
        {"stampData": [encode_stamp(stamp_image(0, (48, 48)))] * 3},
    ],
)
def test_inconsistent_multiband_cutouts_are_bad_stamps(overrides):
    images = [stamp_image(seed, (48, 48)) for seed in range(4)]
    record = alert_record(5) | {"cutoutMultiband": _multiband(images, **overrides)}
    alert = decode_alert(write_alert_packet(record))
    with pytest.raises(PacketError) as caught:
        alert.multiband  # noqa: B018 - the property is what raises
    assert (caught.value.reason, caught.value.field) == ("bad_stamp", "cutoutMultiband")


def test_multiband_stamps_of_different_shapes_are_bad_stamps():
    images = [stamp_image(0, (48, 48))] * 3 + [stamp_image(1, (40, 48))]
    record = alert_record(6) | {"cutoutMultiband": _multiband(images)}
    band = decode_alert(write_alert_packet(record)).multiband
    with pytest.raises(PacketError, match="differ in shape"):
        band.stamps()
