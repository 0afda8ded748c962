"""Helpers for the daemon's tests: synthetic packets, a daemon subprocess, topic readers."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_broker import free_port
from prometheus_client.parser import text_string_to_metric_families

from stampflow.training.synth import synthesise

STAMPFLOW = str(Path(sys.executable).parent / "stampflow")


def good_packets(n: int, seed: int = 7) -> list[bytes]:
    """``n`` valid synthetic packets (no broken ones)."""
    return [
        packet for _name, packet, _row in synthesise(n, seed, broken_fraction=0.0, progress=False)
    ]


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    partitions: int,
    *,
    max_message_bytes: int | None = None,
) -> list[tuple[int, int]]:
    """Publish ``values`` round-robin over ``partitions``; returns (partition, offset) of each.

    ``max_message_bytes`` raises the producer's own limit (1,000,000 by default), to publish
    packets up to what the broker takes.
    """
    settings: dict[str, str | int | bool] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
    }
    if max_message_bytes is not None:
        settings["message.max.bytes"] = max_message_bytes
    producer = Producer(settings)
    coords: list[tuple[int, int] | None] = [None] * len(values)

    def ack(index: int):
        def delivered(error, message) -> None:
            assert error is None, error
            coords[index] = (message.partition(), message.offset())

        return delivered

    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions, on_delivery=ack(i))
        producer.poll(0)
    assert producer.flush(30) == 0
    return [c for c in coords if c is not None]


def rewritten(
    packet: bytes,
    edit_schema: Callable[[dict], None],
    edit_record: Callable[[dict], None] = lambda record: None,
) -> bytes:
    """``packet`` written again by plain fastavro after editing its writer schema and record."""
    reader = fastavro.reader(io.BytesIO(packet))
    schema = json.loads(reader.metadata["avro.schema"])
    records = list(reader)
    edit_schema(schema)
    for record in records:
        edit_record(record)
    out = io.BytesIO()
    fastavro.writer(out, schema, records)
    return out.getvalue()


def with_stampflow_type(packet: bytes) -> bytes:
    """A valid ZTF-like packet whose writer schema already defines ``stampflow.Annotation``."""
    own = {"type": "record", "name": "Annotation", "namespace": "stampflow", "fields": [
        {"name": "note", "type": "string"}
    ]}  # fmt: skip

    def schema(s: dict) -> None:
        s["fields"].append({"name": "extra", "type": ["null", own], "default": None})

    return rewritten(packet, schema, lambda record: record.update(extra={"note": "theirs"}))


def with_stampflow_field(packet: bytes) -> bytes:
    """A packet with a field named ``stampflow`` whose type another field refers to by name."""
    own = {"type": "record", "name": "Annotation", "namespace": "stampflow", "fields": [
        {"name": "note", "type": "string"}
    ]}  # fmt: skip

    def schema(s: dict) -> None:
        s["fields"] += [
            {"name": "stampflow", "type": own},
            {"name": "again", "type": "stampflow.Annotation"},
        ]

    def record(r: dict) -> None:
        r.update(stampflow={"note": "a"}, again={"note": "b"})

    return rewritten(packet, schema, record)


def oversized(packet: bytes, size: int, seed: int = 3) -> bytes:
    """A valid packet of about ``size`` bytes: its science stamp padded with random bytes.

    Random bytes do not compress, so the output is as large on the wire; with no classifier
    configured the stamp is never decoded, so the packet is good up to the producer.
    """
    grow = size - len(packet)
    noise = random.Random(seed).randbytes(max(0, grow))

    def record(r: dict) -> None:
        r["cutoutScience"]["stampData"] += noise

    return rewritten(packet, lambda s: None, record)


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    value: bytes
    headers: dict[str, bytes]
    key: bytes | None = None

    @property
    def source(self) -> tuple[int, int]:
        """(partition, offset) of the input packet this output came from."""
        return int(self.headers["stampflow.source.partition"]), int(
            self.headers["stampflow.source.offset"]
        )


def read_topic(
    bootstrap: str,
    topic: str,
    expect: int,
    timeout_s: float = 60,
    *,
    isolation: str = "read_committed",
) -> list[Record]:
    """Every record of ``topic`` from the start, waiting until at least ``expect`` arrived.

    ``read_committed`` (librdkafka's default, said here): records of aborted transactions
    are skipped; ``read_uncommitted`` sees them too.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{os.getpid()}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    while time.monotonic() < deadline:
        batch = consumer.consume(500, timeout=0.5)
        for m in batch:
            if m.error() is None:
                headers = {k: v for k, v in (m.headers() or [])}
                records.append(
                    Record(m.partition(), m.offset(), m.value() or b"", headers, m.key())
                )
        if len(records) >= expect:
            # Linger a moment: duplicates may still be arriving.
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return records


def decode_output(value: bytes) -> list[dict]:
    """Output records with a plain fastavro reader (no stampflow code)."""
    return list(fastavro.reader(io.BytesIO(value)))


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    consumer.close()
    return {tp.partition: tp.offset for tp in offsets}


class Daemon:
    """``stampflow run`` as a real subprocess, so SIGKILL and SIGTERM are real."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topics: str,
        output: str,
        dead: str,
        group: str,
        extra: tuple[str, ...] = (),
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.args = [
            STAMPFLOW,
            "run",
            f"--bootstrap={bootstrap}",
            f"--topics={topics}",
            f"--output-topic={output}",
            f"--dead-letter-topic={dead}",
            f"--group-id={group}",
            "--classifiers=",
            f"--metrics-port={self.port}",
            "--drain-timeout=20",
            # One process, whatever the cores and partitions (workers: auto); a test's own
            # --workers=N in ``extra`` comes later and wins.
            "--workers=1",
            *extra,
        ]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Daemon:
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env
        )
        return self

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            if http_status(self.port, "/readyz") == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"daemon not ready in {timeout_s} s\n{self.log_tail()}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples
        }

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self, timeout_s: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""


def start_daemon(
    daemons: list[Daemon],
    bootstrap: str,
    source: str,
    output: str,
    dead: str,
    *extra: str,
    group: str | None = None,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> Daemon:
    """Start ``stampflow run`` from ``source`` (group ``g-<source>`` unless given) and add it
    to ``daemons`` (the fixture kills whatever a test leaves running)."""
    daemon = Daemon(
        bootstrap,
        topics=source,
        output=output,
        dead=dead,
        group=group or f"g-{source}",
        extra=extra,
        log_path=log_path,
        env=env,
    ).start()
    daemons.append(daemon)
    return daemon


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> bool:
    """Whether ``condition()`` became true within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()
