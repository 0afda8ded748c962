"""One bad packet never stops the daemon or jams its partition (issue 15, findings 1 and 2).

Packets valid as Avro that stampflow cannot publish: a writer schema that already defines a
type stampflow adds (``stampflow.Annotation``), or a field named ``stampflow`` that another
field refers to; and a packet the broker takes (about 1,040,000 bytes) but whose output and
dead letter are over the producer's 1,000,000-byte limit.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import fastavro
import pytest
from stream_helpers import (
    Daemon,
    committed,
    good_packets,
    http_status,
    metric,
    oversized,
    produce,
    read_topic,
    start_daemon,
    with_stampflow_field,
    with_stampflow_type,
)

from stampflow.stream.cli import main

BIG = 1_040_000  # under the broker's default limit (1,048,588), over the producer's


def poisoned_stream() -> tuple[list[bytes], dict[int, str]]:
    """Good packets with two schema-conflict packets among them; index -> expected reason."""
    good = good_packets(8, seed=31)
    packets = [*good[:3], with_stampflow_type(good[3]), *good[4:6], with_stampflow_field(good[6])]
    packets.append(good[7])
    return packets, {3: "schema_conflict", 6: "schema_conflict"}


def test_archive_mode_dead_letters_a_schema_conflict_and_goes_on(tmp_path: Path, capsys) -> None:
    packets, poisoned = poisoned_stream()
    night = tmp_path / "night"
    night.mkdir()
    for i, packet in enumerate(packets):
        (night / f"p{i:03d}.avro").write_bytes(packet)
    code = main([
        "run", f"--archive={night}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=", "--metrics-port=0",
        "--max-batch=4",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err

    out = []
    for path in sorted((tmp_path / "out").glob("*.avro")):
        with path.open("rb") as handle:
            out.extend(r["candid"] for r in fastavro.reader(handle))
    expected = [fastavro_candid(p) for i, p in enumerate(packets) if i not in poisoned]
    assert sorted(out) == sorted(expected)  # every good packet, after the bad ones too
    index = [json.loads(x) for x in (tmp_path / "dead" / "index.jsonl").read_text().splitlines()]
    assert [(e["offset"], e["stage"], e["reason"]) for e in index] == [
        (i, "encode", reason) for i, reason in poisoned.items()
    ]
    for entry in index:
        assert (tmp_path / "dead" / entry["file"]).read_bytes() == packets[entry["offset"]]
        assert "stampflow.Annotation" in entry["error"]  # why, in words
        assert "alert " in entry["error"]  # and which alert


def fastavro_candid(packet: bytes) -> int:
    import io

    (record,) = fastavro.reader(io.BytesIO(packet))
    return record["candid"]


@pytest.mark.integration
def test_kafka_mode_dead_letters_a_schema_conflict_and_goes_on(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    packets, poisoned = poisoned_stream()
    source, output, dead = (make_topic(p, 1) for p in ("in", "out", "dead"))
    produce(kafka_bootstrap, source, packets, 1)
    daemon = start_daemon(
        daemons, kafka_bootstrap, source, output, dead, "--max-batch=4", "--max-wait-ms=100",
        log_path=tmp_path / "d.log",
    )  # fmt: skip
    outputs = read_topic(kafka_bootstrap, output, len(packets) - len(poisoned))
    letters = read_topic(kafka_bootstrap, dead, len(poisoned))
    assert daemon.process.poll() is None, daemon.log_tail()
    assert daemon.stop() == 0, daemon.log_tail()

    assert sorted(r.source[1] for r in outputs) == [
        i for i in range(len(packets)) if i not in poisoned
    ]
    assert {int(r.headers["stampflow.source.offset"]): r for r in letters}.keys() == poisoned.keys()
    for letter in letters:
        offset = int(letter.headers["stampflow.source.offset"])
        assert letter.value == packets[offset]
        assert letter.headers["stampflow.stage"] == b"encode"
        assert letter.headers["stampflow.reason"].decode() == poisoned[offset]


@pytest.mark.integration
def test_an_oversized_packet_is_dead_lettered_without_payload_and_its_offset_moves(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    good = good_packets(12, seed=32)
    big = oversized(good[5], BIG)
    assert 1_000_000 < len(big) < 1_048_588 - 1024
    packets = [*good[:5], big, *good[5:]]
    source, output, dead = (make_topic(p, 1) for p in ("in", "out", "dead"))
    produce(kafka_bootstrap, source, packets, 1, max_message_bytes=1_048_588)
    daemon = start_daemon(
        daemons, kafka_bootstrap, source, output, dead, "--max-batch=4", "--max-wait-ms=100",
        log_path=tmp_path / "d.log",
    )  # fmt: skip
    daemon.wait_ready()
    outputs = read_topic(kafka_bootstrap, output, len(good))
    letters = read_topic(kafka_bootstrap, dead, 1)
    samples = daemon.metrics()
    healthz = http_status(daemon.port, "/healthz")
    assert daemon.stop() == 0, daemon.log_tail()

    sources = Counter(r.source for r in outputs)
    assert sorted(offset for _p, offset in sources) == [i for i in range(13) if i != 5]
    assert max(sources.values()) == 1, "no batch went round again"
    (letter,) = letters
    headers = letter.headers
    assert headers["stampflow.source.offset"] == b"5"
    assert (headers["stampflow.stage"], headers["stampflow.reason"]) == (b"produce", b"too_large")
    assert b"over the limit of 1000000 bytes" in headers["stampflow.error"]  # the producer's
    # Too large for the dead-letter topic as well: published without it, and says so.
    assert letter.value == b""
    assert headers["stampflow.payload"] == b"omitted"
    assert int(headers["stampflow.source.size"]) == len(big)
    assert headers["stampflow.source.sha256"].decode() == hashlib.sha256(big).hexdigest()

    assert committed(kafka_bootstrap, f"g-{source}", source, 1) == {0: len(packets)}
    assert healthz == 200
    assert metric(samples, "stampflow_rewinds_total") == 0
    assert metric(samples, "stampflow_stuck") == 0
    assert metric(samples, "stampflow_dead_letters_total", stage="produce", reason="too_large") == 1
