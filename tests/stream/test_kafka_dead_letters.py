"""On a real broker: every bad packet lands in the dead letters, untouched, while good ones flow."""

from __future__ import annotations

from pathlib import Path

import pytest
from stream_helpers import Daemon, produce, read_topic, start_daemon

from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError

pytestmark = pytest.mark.integration


def expected_outcome(packet: bytes) -> tuple[int, str | None]:
    """(alerts the codec yields, dead-letter reason or None) for one packet."""
    try:
        decoded = decode_packet(packet)
    except PacketError as exc:
        return 0, exc.reason
    return len(decoded.alerts), decoded.error.reason if decoded.error else None


def test_bad_packets_are_dead_lettered_with_their_reason(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], shared_alerts: Path, tmp_path: Path
) -> None:
    bad_files = sorted(
        p
        for folder in ("legacy", "damaged", "other-surveys")
        for p in (shared_alerts / folder).rglob("*")
        if p.is_file()
    )
    good_files = sorted((shared_alerts / "ztf").glob("*.avro"))[:12]
    packets = [p.read_bytes() for p in good_files + bad_files]
    packets += [b"", b"\x00\x01garbage bytes", bytes(range(256)) * 8]
    outcomes = [expected_outcome(p) for p in packets]
    assert all(reason is None for _n, reason in outcomes[: len(good_files)])
    assert all(reason is not None for _n, reason in outcomes[len(good_files) :])

    source, output, dead = (make_topic(p, 1) for p in ("in", "out", "dead"))
    coords = produce(kafka_bootstrap, source, packets, 1)
    daemon = start_daemon(
        daemons,
        kafka_bootstrap,
        source,
        output,
        dead,
        "--max-batch=8",
        "--max-wait-ms=100",
        log_path=tmp_path / "d.log",
    )
    n_out = sum(n for n, _ in outcomes)
    n_dead = sum(1 for _, reason in outcomes if reason)
    outputs = read_topic(kafka_bootstrap, output, n_out)
    letters = read_topic(kafka_bootstrap, dead, n_dead)
    assert daemon.process.poll() is None, daemon.log_tail()  # bad input never stops it
    assert daemon.stop() == 0, daemon.log_tail()

    assert len(outputs) == n_out  # the good packets (and the damaged one's good record) flow
    assert len(letters) == n_dead
    by_offset = {int(r.headers["stampflow.source.offset"]): r for r in letters}
    for (partition, offset), packet, (_n, reason) in zip(coords, packets, outcomes, strict=True):
        if reason is None:
            continue
        letter = by_offset[offset]
        assert letter.value == packet  # the original bytes, untouched
        assert letter.headers["stampflow.reason"].decode() == reason
        assert letter.headers["stampflow.stage"] == b"decode"
        assert letter.headers["stampflow.source.topic"].decode() == source
        assert int(letter.headers["stampflow.source.partition"]) == partition
        assert letter.headers["stampflow.error"]
