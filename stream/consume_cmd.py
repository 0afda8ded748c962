"""``stampflow consume``: read what stampflow published, filter it, print it as a table.

From Kafka (``--bootstrap``; the output topic, read_committed, so records of aborted
transactions never show) or from output Avro files and directories (archive mode's
``annotated-*.avro``). ZTF and Rubin alike: one row per alert with the survey-neutral ids of
the slim 1.1 record (objectId, candid, ra, dec, survey, band; ``results.identity``).
Annotated Rubin alerts on Kafka are Confluent wire-format messages whose schema id is in
the daemon's registry: ``--schema-registry URL`` (the daemon's), or ``--schema-dir DIR``
(the daemon's ``local: DIR``, where it wrote them) or ``--schema-dir rubin`` (Rubin's
schemas, and the deterministic ids of their annotated forms a ``local: rubin`` daemon
frames with). A message whose id the registry lacks is skipped with a warning (exit 1).
A registry that wants basic auth takes it as the daemon's does: ``user:password@`` in the
URL, or ``--schema-registry-config basic.auth.user.info=user:password`` (any
``SchemaRegistryClient`` setting, repeatable), or the daemon's environment variables
``STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__...`` (``..._BASIC_AUTH_USER_INFO``), which keep
the password off the command line; the password is never printed.

Filters keep records with one annotation meeting all of ``--classifier``, ``--label``,
``--min-probability`` and ``--ambiguous/--not-ambiguous``; ``--save`` also writes the kept
records to ``.avro`` (slim 1.1 records, any survey), ``.csv`` or ``.parquet``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fastavro

from stampflow.schemas.errors import PacketError
from stampflow.schemas.registry import RUBIN_LOCAL, LocalSchemas, RegistryUnavailable
from stampflow.stream.results import (
    WIRE_HINT,
    Filter,
    ResultsError,
    annotations,
    identity,
    is_wire_format,
    read_files,
    read_message,
)
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
    schemas = parser.add_argument_group("schema registry (annotated Rubin output on Kafka)")
    schemas.add_argument(
        "--schema-registry",
        metavar="URL",
        help="the Confluent-compatible registry the daemon registered its output schemas in",
    )
    schemas.add_argument(
        "--schema-registry-config",
        dest="registry_config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SchemaRegistryClient setting, e.g. basic.auth.user.info=USER:PASSWORD "
        "(repeatable; also from STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__<KEY>)",
    )
    schemas.add_argument(
        "--schema-dir",
        metavar="DIR|rubin",
        help="offline: the daemon's local schema directory, or 'rubin' for a daemon run "
        "with --schema-dir rubin",
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
    skipped: list[str] = []
    try:
        wanted = _filter(args)
        if args.save is not None:
            check_destination(args.save, force=args.force)
        settings = registry_settings(args.registry_config, os.environ, url=args.schema_registry)
        registry = open_output_registry(args.schema_registry, args.schema_dir, config=settings)
        if not args.quiet:
            print(header())
        try:
            for record in _source(args, registry, skipped):
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
    except (ResultsError, SaveError, ValueError, OSError, RuntimeError) as exc:
        print(f"stampflow consume: {exc}", file=sys.stderr)
        return 2
    saved = f", saved to {args.save}" if args.save is not None else ""
    unread = f"; {len(skipped)} unreadable message(s) skipped" if skipped else ""
    print(f"{len(kept)} matching record(s){saved}{unread}", file=sys.stderr)
    return 1 if skipped else 0


def open_output_registry(
    url: str | None, local: str | None, *, config: Mapping[str, Any] | None = None
) -> Any:
    """The registry ``--schema-registry``/``--schema-dir`` name (None without either).

    ``config``: ``SchemaRegistryClient`` settings of the ``url`` registry (basic auth as
    ``basic.auth.user.info``, TLS, timeouts), as the daemon's ``input.schema_registry.config``.
    ``rubin`` also learns the annotated form of every Rubin schema (Rubin's plus the
    ``stampflow`` field) under the deterministic id a ``local: rubin`` daemon frames its
    output with (``registry.local_schema_id``): that daemon writes them nowhere.
    """
    from stampflow.schemas.registry import open_registry

    if config and not url:
        raise ValueError("schema registry settings need a schema registry URL")
    registry = open_registry(url, config or None, local)
    if isinstance(registry, LocalSchemas) and str(local) == RUBIN_LOCAL:
        _learn_annotated(registry)
    return registry


REGISTRY_ENV_PREFIX = "STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__"


def registry_settings(
    pairs: list[str], env: Mapping[str, str], *, url: str | None = None
) -> dict[str, Any]:
    """``SchemaRegistryClient`` settings: ``KEY=VALUE`` pairs over the daemon's
    ``STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__<KEY>`` variables (``BASIC_AUTH_USER_INFO``
    is ``basic.auth.user.info``), typed as the daemon's config types them. The variables
    count only with a ``url`` (they are the daemon's, and need not be this reader's).
    No value is ever part of an error."""
    from stampflow.stream.config import _registry_client_config

    settings: dict[str, str] = {}
    for name, text in env.items() if url else ():
        if name.startswith(REGISTRY_ENV_PREFIX) and len(name) > len(REGISTRY_ENV_PREFIX):
            parts = name[len(REGISTRY_ENV_PREFIX) :].split("__")
            key = ".".join(p if "." in p else p.lower().replace("_", ".") for p in parts)
            settings[key] = text
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError("--schema-registry-config: expected KEY=VALUE")  # no value shown
        if key.strip() == "url":
            raise ValueError("--schema-registry-config url: give it as --schema-registry")
        settings[key.strip()] = value
    return _registry_client_config(settings) if settings else {}


def _learn_annotated(registry: LocalSchemas) -> None:
    from types import SimpleNamespace

    from stampflow.schemas import writer_schema
    from stampflow.schemas.encode import OutputEncoder

    encoder = OutputEncoder()
    for text in list(registry.values()):
        schema = writer_schema.from_registry(text)
        if schema.survey == "rubin":  # the encoder asks an alert for its writer schema only
            annotated = encoder.schema_for(SimpleNamespace(writer_schema=schema), "full")
            registry.register("annotated", annotated)


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


def _source(
    args: argparse.Namespace, registry: Any, skipped: list[str]
) -> Iterator[dict[str, Any]]:
    if args.bootstrap:
        return read_topic(
            args.bootstrap,
            args.topic,
            from_beginning=args.from_beginning,
            idle_timeout_s=args.timeout,
            properties=_properties(args.properties),
            registry=registry,
            skipped=skipped,
        )
    return _registry_errors(read_files(args.paths, registry))


def _registry_errors(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from records
    except RegistryUnavailable as exc:
        raise ResultsError(str(exc)) from None


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
    registry: Any = None,
    skipped: list[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records of ``topic`` as they are committed; ends after ``idle_timeout_s`` of quiet.

    A message is one Avro container (ZTF output, slim records) or a Confluent wire-format
    message (annotated Rubin output), read with ``registry``; without one a wire-format
    message is a ``ResultsError`` naming the flags. A wire-format message the registry
    cannot read (an unknown id, corrupt bytes) is warned about, added to ``skipped`` and
    passed over; a registry that cannot be reached is a ``ResultsError``.
    """
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
            value = message.value() or b""
            if not is_wire_format(value):
                yield from fastavro.reader(io.BytesIO(value))
                continue
            where = f"{topic}[{message.partition()}]@{message.offset()}"
            if registry is None:
                raise ResultsError(f"{where}: {WIRE_HINT}")
            try:
                yield read_message(value, registry)
            except PacketError as exc:
                print(f"stampflow consume: skipped {where}: {exc}", file=sys.stderr)
                if skipped is not None:
                    skipped.append(where)
    except KafkaException as exc:
        raise ResultsError(f"cannot read {topic} from {bootstrap}: {exc}") from None
    except RegistryUnavailable as exc:
        raise ResultsError(f"reading {topic}: {exc}") from None
    finally:
        consumer.close()


COLUMNS = (
    ("objectId", 19),
    ("candid", 20),
    ("ra", 11),
    ("dec", 11),
    ("survey", 6),
    ("band", 4),
)


def header() -> str:
    names = "  ".join(f"{name:<{width}}" for name, width in COLUMNS)
    return f"{names}  annotations (classifier label probability, * = ambiguous)"


def row(record: dict[str, Any]) -> str:
    """One table line: identity (any survey), then every annotation as
    ``classifier label p[*]``."""
    ids = identity(record)
    cells = [
        f"{ids['objectId'] or '-':<19}",
        f"{ids['candid']!s:<20}",
        f"{ids['ra']:>11.6f}" if ids["ra"] is not None else f"{'-':>11}",
        f"{ids['dec']:>+11.6f}" if ids["dec"] is not None else f"{'-':>11}",
        f"{ids['survey']:<6}",
        f"{ids['band'] or '-':<4}",
    ]
    verdicts = [
        f"{a.get('classifier')} {a.get('label')} {probability(a):.3f}"
        + ("*" if a.get("ambiguous") else "")
        for a in annotations(record)
    ]
    return "  ".join(cells) + "  " + ("; ".join(verdicts) or "(none)")
