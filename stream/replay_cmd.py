"""``stampflow replay ARCHIVE --to TOPIC``: publish an archive of packets into Kafka.

Packets go out in archive order, round-robin over the topic's partitions (so each
partition keeps archive order), at ``--rate`` packets/s or as fast as the broker takes
them, with a progress bar. The topic is created with ``--partitions`` when missing. Each
message's timestamp is its send time, which the daemon's end-to-end latency starts from.

Rubin-style streams: packets already in the Confluent wire format (``stampflow synth
--survey rubin``) are sent as they are. ``--frame`` turns Rubin alerts in Avro containers
(lsst-alert-packet's sample files, Rubin archives) into wire-format messages, one per
record, as Rubin's stream carries them: under Rubin's id (major*100+minor, what
``--schema-dir rubin`` knows), or with ``--schema-registry URL`` under the id that registry
gives the writer schema (registered under ``<topic>-<record name>``). ZTF packets are sent
unchanged either way.
"""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from tqdm import tqdm

from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.registry import RegistryUnavailable, rubin_schema_id
from stampflow.schemas.rubin import RubinAlert
from stampflow.schemas.wire import frame
from stampflow.stream.archive_source import ArchiveError, ArchiveSource, check_archive

READ_CHUNK = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", help="a directory, glob or nightly .tar.gz of packets")
    parser.add_argument("--to", required=True, dest="topic", help="topic to publish to")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="packets/s (0: as fast as possible)"
    )
    parser.add_argument(
        "--partitions", type=int, default=1, help="partitions if the topic must be created (1)"
    )
    parser.add_argument("--limit", type=int, default=0, help="stop after this many packets")
    parser.add_argument(
        "-X",
        dest="properties",
        action="append",
        default=[],
        metavar="PROP=VALUE",
        help="a librdkafka producer property (repeatable), e.g. -X security.protocol=SSL",
    )
    parser.add_argument(
        "--frame",
        action="store_true",
        help="send Rubin alerts read from Avro containers in the Confluent wire format "
        "(Rubin's ids, or --schema-registry's)",
    )
    parser.add_argument(
        "--schema-registry",
        metavar="URL",
        help="with --frame: register each Rubin writer schema there and frame with its id",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def ensure_topic(bootstrap: str, topic: str, partitions: int, extra: dict[str, str]) -> int:
    """Create ``topic`` when missing; return its partition count."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **extra})
    existing = admin.list_topics(timeout=15).topics.get(topic)
    if existing is not None and existing.error is None:
        return len(existing.partitions)
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return partitions


def replay(
    archive: str,
    topic: str,
    bootstrap: str,
    *,
    rate: float = 0.0,
    partitions: int = 1,
    limit: int = 0,
    properties: dict[str, str] | None = None,
    progress: bool = True,
    rubin_frame: bool = False,
    registry: object = None,
) -> int:
    """Publish the archive; returns the number of messages acknowledged by the broker.

    ``rubin_frame``: Rubin records in containers go out one wire-format message each
    (``Framer``); ``registry`` (a ``RemoteRegistry``) assigns their ids.
    """
    framer = Framer(topic, registry) if rubin_frame else None
    extra = dict(properties or {})
    check_archive(archive)
    n_partitions = ensure_topic(bootstrap, topic, partitions, extra)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 10,
            "compression.type": "lz4",
            **extra,
        }
    )
    acked = 0
    failed: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        nonlocal acked
        if error is None:
            acked += 1
        else:
            failed.append(str(error))

    source = ArchiveSource(archive)
    sent = 0
    started = time.monotonic()
    with tqdm(desc=f"replay -> {topic}", unit="packet", disable=not progress) as bar:
        while not source.exhausted and not (limit and sent >= limit):
            chunk = source.poll(READ_CHUNK if not limit else min(READ_CHUNK, limit - sent), 0)
            for message in chunk:
                values = [message.value] if framer is None else framer(message.value)
                for value in values:
                    if rate > 0:
                        ahead = started + sent / rate - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
                    _produce(producer, topic, value, message.key, sent % n_partitions, delivered)
                    sent += 1
                    bar.update(1)
    source.close()
    producer.flush()
    if failed:
        raise RuntimeError(f"{len(failed)} of {sent} packets were not delivered: {failed[0]}")
    return acked


class Framer:
    """Rubin records of an Avro container as wire-format messages; anything else as it is.

    The id is Rubin's (major*100+minor) unless ``registry`` is given: then the writer
    schema is registered there (``<topic>-<record full name>``, once per schema) and its id
    frames the record.
    """

    def __init__(self, topic: str, registry: object = None) -> None:
        self.topic = topic
        self.registry = registry
        self._ids: dict[str, int] = {}

    def __call__(self, value: bytes) -> list[bytes]:
        try:
            decoded = decode_packet(value)
        except PacketError:
            return [value]  # not a container (already framed, or broken): sent untouched
        alerts = decoded.alerts
        if decoded.error is not None or not all(isinstance(a, RubinAlert) for a in alerts):
            return [value]
        return [frame(self._schema_id(alert), alert.record_bytes) for alert in alerts]

    def _schema_id(self, alert: RubinAlert) -> int:
        schema = alert.writer_schema
        known = self._ids.get(schema.fingerprint)
        if known is None:
            if self.registry is None:
                known = rubin_schema_id(schema.version or "")
            else:
                subject = f"{self.topic}-{schema.fullname}"
                known = self.registry.register(subject, schema.schema)  # type: ignore[attr-defined]
            self._ids[schema.fingerprint] = known
        return known


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    partition: int,
    callback: object,
) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key, partition=partition, on_delivery=callback)
            producer.poll(0)
            return
        except BufferError:  # the producer's queue is full: wait for acknowledgements
            producer.poll(0.1)


def run(args: argparse.Namespace) -> int:
    try:
        properties = dict(_split_property(p) for p in args.properties)
        if args.schema_registry and not args.frame:
            raise ValueError("--schema-registry is for --frame (framing Rubin containers)")
        registry = None
        if args.schema_registry:
            from stampflow.schemas.registry import RemoteRegistry

            registry = RemoteRegistry(args.schema_registry)
        started = time.monotonic()
        acked = replay(
            args.archive,
            args.topic,
            args.bootstrap,
            rate=args.rate,
            partitions=args.partitions,
            limit=args.limit,
            properties=properties,
            progress=not args.quiet,
            rubin_frame=args.frame,
            registry=registry,
        )
    except (ArchiveError, ValueError, RuntimeError, KafkaException, RegistryUnavailable) as exc:
        print(f"stampflow replay: {exc}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    print(f"replayed {acked} packets to {args.topic} in {seconds:.1f} s")
    return 0


def _split_property(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"-X expects PROP=VALUE, got {text!r}")
    return name.strip(), value
