"""Hostile bytes: random, truncated and mutated packets raise only PacketError, quickly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stampflow.schemas.alert import STAMP_FIELDS
from stampflow.schemas.avsc import input_alert_schema
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.packets import write_alert_packet

from .helpers import alert_record

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(60)
SMALL_PACKET = write_alert_packet(alert_record(77))


def _use_everything(data: bytes, **kwargs) -> None:
    """Decode and touch every field and stamp; only PacketError may escape."""
    try:
        decoded = decode_packet(data, **kwargs)
    except PacketError as exc:
        assert exc.reason and exc.detail
        return
    for alert in decoded.alerts:
        _ = (alert.object_id, alert.candid, alert.jd, alert.fid, alert.ra, alert.dec, alert.magpsf)
        for which in STAMP_FIELDS:
            try:
                if alert.has_stamp(which):
                    alert.stamp(which)
            except PacketError as exc:
                assert exc.field == STAMP_FIELDS[which]
        try:
            if alert.multiband is not None:
                alert.multiband.stamps()
        except PacketError as exc:
            assert exc.field == "cutoutMultiband"


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _use_everything(data)
    _use_everything(b"Obj\x01" + data)
    _use_everything(b"\x00\x00\x00\x00\x01" + data, registry={1: input_alert_schema()})


@FUZZ
@given(st.data())
def test_truncated_real_packets(ztf_packets, data):
    packet = data.draw(st.sampled_from(sorted(ztf_packets)))
    raw = ztf_packets[packet]
    cut = data.draw(st.integers(0, len(raw) - 1))
    _use_everything(raw[:cut])


@FUZZ
@given(st.data())
def test_mutated_real_packets(ztf_packets, data):
    raw = bytearray(ztf_packets[data.draw(st.sampled_from(sorted(ztf_packets)))])
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _use_everything(bytes(raw))


@FUZZ
@given(st.data())
def test_mutated_record_bytes_of_a_small_packet(data):
    # Mutations past the header hit block framing, record fields and the stamps themselves.
    raw = bytearray(SMALL_PACKET)
    start = len(raw) - 40_000 if len(raw) > 40_000 else 0
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(start, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    inserted = data.draw(st.binary(max_size=16))
    at = data.draw(st.integers(start, len(raw)))
    _use_everything(bytes(raw[:at]) + inserted + bytes(raw[at:]))
