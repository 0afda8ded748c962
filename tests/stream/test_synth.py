"""`stampflow synth`: reproducible synthetic packets the codec reads, broken ones as labelled."""

from __future__ import annotations

import pytest

from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.training.synth import BROKEN_KINDS, synthesise


def records(packets) -> list[dict]:
    return [decode_packet(p).alerts[0].record for _n, p, row in packets if not row["broken"]]


def test_same_seed_same_alerts() -> None:
    # Container sync markers are random by design; the records themselves are reproducible.
    a = synthesise(5, seed=9, progress=False)
    b = synthesise(5, seed=9, progress=False)
    c = synthesise(5, seed=10, progress=False)
    assert records(a) == records(b)
    assert records(a) != records(c)
    assert [row for _n, _p, row in a] == [row for _n, _p, row in b]


def test_packets_decode_and_broken_ones_fail_as_labelled() -> None:
    packets = synthesise(80, seed=4, broken_fraction=0.5, progress=False)
    kinds = {row["broken"] for _n, _p, row in packets}
    assert kinds >= set(BROKEN_KINDS)  # every kind of damage shows up
    for _name, packet, row in packets:
        if row["broken"] in (None, "bad_stamp"):
            alert = decode_packet(packet).alerts[0]
            assert alert.candid == row["candid"]
            if row["broken"] is None:
                science = alert.stamp("science")
                assert science.shape == tuple(row["shape"])
                assert science.dtype.name == "float32"
            else:
                with pytest.raises(PacketError) as caught:
                    alert.stamp("science")
                assert caught.value.reason == row["expected_reason"]
        else:
            with pytest.raises(PacketError) as caught:
                decode_packet(packet)
            assert caught.value.reason == row["expected_reason"]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="--n"):
        synthesise(0, seed=1, progress=False)
    with pytest.raises(ValueError, match="--broken-fraction"):
        synthesise(5, seed=1, broken_fraction=2.0, progress=False)


def test_a_share_of_packets_carries_multiband_cutouts() -> None:
    plain = synthesise(30, seed=6, broken_fraction=0.0, progress=False)
    packets = synthesise(30, seed=6, broken_fraction=0.0, multiband_fraction=0.5, progress=False)
    with_multiband = [row for _n, _p, row in packets if row["multiband"]]
    assert 5 <= len(with_multiband) <= 25
    for (_n, packet, row), (_m, plain_packet, _r) in zip(packets, plain, strict=True):
        alert = decode_packet(packet).alerts[0]
        if row["multiband"]:
            cube = alert.multiband.stamps()
            assert cube.ndim == 3 and cube.shape[0] == len(alert.multiband.filters)
        else:
            assert alert.multiband is None
        plain_record = decode_packet(plain_packet).alerts[0].record
        assert {k: v for k, v in alert.record.items() if k != "cutoutMultiband"} == {
            k: v for k, v in plain_record.items() if k != "cutoutMultiband"
        }  # the rest of each packet is unchanged by the option
