"""``stampflow consume``: read what stampflow published, filter it, print it as a table.

From Kafka (``--bootstrap``; the output topic, read_committed, so records of aborted
transactions never show) or from output Avro files and directories (archive mode's
``annotated-*.avro``). Filters keep records with one annotation meeting all of
``--classifier``, ``--label``, ``--min-probability`` and ``--ambiguous/--not-ambiguous``;
``--save`` also writes the kept records to ``.avro``, ``.csv`` or ``.parquet``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro

from stampflow.stream.results import Filter, ResultsError, annotations, identity, read_files
from stampflow.stream.results import top_probability as probability
from stampflow.stream.results_save import SaveError, check_destination, save

DEFAULT_TOPIC = "stampflow-annotated"
POLL_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="output Avro files or directories of them (instead of --bootstrap)",
    )
    kafka = parser.add_argument_group("Kafka")
    kafka.add_argument("--bootstrap", help="Kafka bootstrap servers: read the output topic")
    kafka.add_argument(
        "--topic", default=DEFAULT_TOPIC, help=f"output topic to read ({DEFAULT_TOPIC})"
    )
    kafka.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the topic's earliest record (default: only records published from now)",
    )
    kafka.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop after S seconds without a new record (default: run until Ctrl-C)",
    )
    kafka.add_argument(
        "-X",
        dest="properties",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable)",
    )
    keep = parser.add_argument_group("filters (all must hold for one annotation)")
    keep.add_argument("--classifier", help="only this classifier's annotations count")
    keep.add_argument("--label", help="the annotation's label is this one")
    keep.add_argument(
        "--min-probability", type=float, metavar="P", help="the label's probability is at least P"
    )
    flag = keep.add_mutually_exclusive_group()
    flag.add_argument(
        "--ambiguous", dest="ambiguous", action="store_const", const=True, help="flagged ambiguous"
    )
    flag.add_argument(
        "--not-ambiguous",
        dest="ambiguous",
        action="store_const",
        const=False,
        help="not flagged ambiguous",
    )
    parser.add_argument("--max", type=int, metavar="N", help="stop after N matching records")
    parser.add_argument(
        "--save",
        type=Path,
        metavar="FILE",
        help="also write the matching records to FILE: .avro (slim records), .csv or .parquet",
    )
    parser.add_argument("--force", action="store_true", help="overwrite the --save file")
    parser.add_argument("--quiet", action="store_true", help="no table, only the count")


def run(args: argparse.Namespace) -> int:
    kept: list[dict[str, Any]] = []
    try:
        wanted = _filter(args)
        if args.save is not None:
            check_destination(args.save, force=args.force)
        if not args.quiet:
            print(header())
        try:
            for record in _source(args):
                if not wanted.keeps(record):
                    continue
                kept.append(record)
                if not args.quiet:
                    print(row(record), flush=True)
                if args.max is not None and len(kept) >= args.max:
                    break
        except KeyboardInterrupt:
            pass  # tailing a topic ends with Ctrl-C: what was kept is still saved
        if args.save is not None:
            save(kept, args.save)
    except (ResultsError, SaveError, ValueError, OSError) as exc:
        print(f"stampflow consume: {exc}", file=sys.stderr)
        return 2
    saved = f", saved to {args.save}" if args.save is not None else ""
    print(f"{len(kept)} matching record(s){saved}", file=sys.stderr)
    return 0


def _filter(args: argparse.Namespace) -> Filter:
    if args.max is not None and args.max < 1:
        raise ValueError(f"--max must be at least 1, got {args.max}")
    if args.bootstrap and args.paths:
        raise ValueError("give either --bootstrap (a topic) or output files, not both")
    if not args.bootstrap and not args.paths:
        raise ValueError("nothing to read: give output files or directories, or --bootstrap")
    try:
        return Filter(args.classifier, args.label, args.min_probability, args.ambiguous)
    except ValueError as exc:
        raise ValueError(f"--min-probability: {exc}") from None


def _source(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if args.bootstrap:
        return read_topic(
            args.bootstrap,
            args.topic,
            from_beginning=args.from_beginning,
            idle_timeout_s=args.timeout,
            properties=_properties(args.properties),
        )
    return read_files(args.paths)


def _properties(pairs: list[str]) -> dict[str, str]:
    properties = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-X {pair!r}: expected KEY=VALUE")
        properties[key] = value
    return properties


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    idle_timeout_s: float | None,
    properties: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records of ``topic`` as they are committed; ends after ``idle_timeout_s`` of quiet."""
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        KafkaException,
        TopicPartition,
    )

    consumer = Consumer(
        {
            **(properties or {}),
            "bootstrap.servers": bootstrap,
            # A throwaway group id: nothing is committed, so nobody's offsets move.
            "group.id": f"stampflow-consume-{os.getpid()}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise ResultsError(f"topic {topic!r} does not exist on {bootstrap}")
        # Assigned, not subscribed: no group join to wait for, and every partition is read.
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(found.partitions)])
        quiet_since = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - quiet_since < idle_timeout_s:
            message = consumer.poll(POLL_S)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().fatal():
                    raise ResultsError(f"reading {topic}: {message.error()}")
                continue
            quiet_since = time.monotonic()
            yield from fastavro.reader(io.BytesIO(message.value() or b""))
    except KafkaException as exc:
        raise ResultsError(f"cannot read {topic} from {bootstrap}: {exc}") from None
    finally:
        consumer.close()


COLUMNS = (("objectId", 14), ("candid", 20), ("ra", 11), ("dec", 11))


def header() -> str:
    names = "  ".join(f"{name:<{width}}" for name, width in COLUMNS)
    return f"{names}  annotations (classifier label probability, * = ambiguous)"


def row(record: dict[str, Any]) -> str:
    """One table line: identity, then every annotation as ``classifier label p[*]``."""
    ids = identity(record)
    cells = [
        f"{ids['objectId']:<14}",
        f"{ids['candid']!s:<20}",
        f"{ids['ra']:>11.6f}" if ids["ra"] is not None else f"{'-':>11}",
        f"{ids['dec']:>+11.6f}" if ids["dec"] is not None else f"{'-':>11}",
    ]
    verdicts = [
        f"{a.get('classifier')} {a.get('label')} {probability(a):.3f}"
        + ("*" if a.get("ambiguous") else "")
        for a in annotations(record)
    ]
    return "  ".join(cells) + "  " + ("; ".join(verdicts) or "(none)")
