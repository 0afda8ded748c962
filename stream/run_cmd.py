"""``stampflow run``: the classification daemon.

With ``input.bootstrap`` (or ``--bootstrap``) it is a Kafka consumer-group member that runs
until SIGTERM/SIGINT; without, it reads an archive (``--archive``) into Avro files and
prints a summary. Flags override the config file, which environment variables override
(see ``stream/config.py``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException

from stampflow.classifiers.bundle import BundleError
from stampflow.classifiers.device import DEVICES
from stampflow.stream.archive_source import ArchiveError
from stampflow.stream.config import ConfigError, DaemonConfig, load_config
from stampflow.stream.progress import archive_total, progress_bar
from stampflow.stream.summary import format_summary

if TYPE_CHECKING:
    from stampflow.stream.daemon import WorkerResult

log = logging.getLogger("stampflow")

# flag dest -> dotted config key
_FLAG_KEYS = {
    "bootstrap": "input.bootstrap",
    "topics": "input.topics",
    "group_id": "input.group_id",
    "archive": "input.archive",
    "schema_registry": "input.schema_registry.url",
    "schema_dir": "input.schema_registry.local",
    "output_topic": "output.topic",
    "output_dir": "output.dir",
    "mode": "output.mode",
    "compression": "output.compression",
    "dead_letter_topic": "dead_letter.topic",
    "dead_letter_dir": "dead_letter.dir",
    "max_batch": "batching.max_batch",
    "max_wait_ms": "batching.max_wait_ms",
    "classifiers": "classifiers",
    "metrics_port": "metrics.port",
    "drain_timeout": "shutdown.drain_timeout_s",
    "workers": "workers",
    "threads": "threads",
    "device": "device",
    "group_instance_id": "kafka.group.instance.id",
    "max_in_flight": "backpressure.max_in_flight",
    "processing": "processing",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="YAML config file; every key with its default: stream/stampflow.example.yaml, "
        "explained in stream/README.md (Configuration). Flags override it",
    )
    src = parser.add_argument_group("input")
    src.add_argument("--bootstrap", help="Kafka bootstrap servers (Kafka mode)")
    src.add_argument("--topics", help="input topics, comma separated")
    src.add_argument("--group-id", help="consumer group id")
    src.add_argument("--archive", help="archive mode: a directory, glob or nightly .tar.gz")
    add_registry_arguments(src)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output-topic", help="Kafka mode: topic for annotated alerts (stampflow-annotated)"
    )
    out.add_argument(
        "--output-dir", help="archive mode: where Avro output files go (out/annotated)"
    )
    out.add_argument(
        "--mode",
        choices=("full", "slim"),
        help="full: the whole alert plus annotations; slim: ids, position, time, annotations",
    )
    out.add_argument(
        "--compression",
        choices=("none", "gzip", "snappy", "lz4", "zstd"),
        help="Kafka mode: producer compression of outputs and dead letters (lz4)",
    )
    out.add_argument(
        "--dead-letter-topic",
        help="Kafka mode: topic for packets that fail, bytes untouched (stampflow-dead-letters)",
    )
    out.add_argument(
        "--dead-letter-dir",
        help="archive mode: directory for packets that fail (default: dead-letters beside "
        "the output directory)",
    )
    tune = parser.add_argument_group("tuning")
    tune.add_argument(
        "--max-batch", type=int, help="close a micro-batch at this many packets (256)"
    )
    tune.add_argument(
        "--max-wait-ms",
        type=int,
        help="... or this many milliseconds after its first packet arrived (500)",
    )
    tune.add_argument(
        "--classifiers",
        help="comma-separated classifier names; an empty string runs none (pass-through)",
    )
    tune.add_argument("--metrics-port", type=int, help="port for /metrics /healthz /readyz")
    tune.add_argument("--drain-timeout", type=float, help="seconds allowed to drain on shutdown")
    tune.add_argument(
        "--workers",
        type=int,
        help="consumer processes in the group (Kafka); default: the cores, at most the input "
        "partitions",
    )
    tune.add_argument(
        "--threads",
        help="torch/OpenMP/BLAS threads per worker; auto (default): the cores over the workers",
    )
    tune.add_argument(
        "--device",
        choices=DEVICES,
        help="where the morphology CNN runs: cpu (default), cuda (refused at start-up when "
        "unusable) or auto (cuda when usable)",
    )
    tune.add_argument(
        "--group-instance-id",
        help="static group membership (kafka group.instance.id; -<n> added per worker): a "
        "restarted worker gets its partitions back at once, without a rebalance",
    )
    tune.add_argument("--max-in-flight", type=int, help="unacknowledged outputs at most")
    tune.add_argument(
        "--processing",
        choices=("at_least_once", "exactly_once"),
        help="exactly_once: Kafka transactions (needs kafka group.instance.id)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_registry_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """``--schema-registry URL`` and ``--schema-dir DIR|rubin`` (run, replay, inspect)."""
    group.add_argument(
        "--schema-registry",
        metavar="URL",
        help="Confluent-compatible schema registry for wire-format messages (Rubin), e.g. "
        "http://registry:8081 (input.schema_registry.url; auth via its config)",
    )
    group.add_argument(
        "--schema-dir",
        metavar="DIR|rubin",
        help="offline schemas for wire-format messages: 'rubin' (Rubin's schemas, ids "
        "700...) or a directory of <id>.avsc files (input.schema_registry.local)",
    )


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    overrides = {key: getattr(args, dest) for dest, key in _FLAG_KEYS.items()}
    # One flag replaces the other kind the file may set: ids of one mean nothing to the other.
    if args.schema_registry is not None:
        overrides["input.schema_registry.local"] = "null"
    elif args.schema_dir is not None:
        overrides["input.schema_registry.url"] = "null"
        overrides["input.schema_registry.config"] = "null"
    return load_config(args.config, overrides=overrides)


def open_registry_from_args(args: argparse.Namespace) -> object:
    """The registry ``--schema-registry``/``--schema-dir`` name (None without either), for
    the commands without a config file (replay, inspect)."""
    from stampflow.schemas.registry import open_registry

    return open_registry(args.schema_registry, None, args.schema_dir)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"stampflow run: {exc}", file=sys.stderr)
        return 2
    log.info("config: %r", config)
    from stampflow.stream.threads import thread_environment, threads_per_worker
    from stampflow.stream.worker_count import resolve_workers

    try:
        config = resolve_workers(config)  # workers: auto asks the cluster for the partitions
    except (ConfigError, OSError, KafkaException) as exc:  # ClusterUnusable is an OSError
        print(f"stampflow run: {exc}", file=sys.stderr)
        return 2
    # Before the worker imports torch (workers inherit the environment when spawned).
    threads = threads_per_worker(config.threads, config.workers)
    thread_environment(threads, explicit=config.threads is not None)
    from stampflow.stream.daemon import run_worker
    from stampflow.stream.workers import run_workers

    try:
        if config.workers is not None and config.workers > 1:
            return run_workers(config)
        result = run_worker(config) if config.kafka_mode else _run_archive(config)
    except (ArchiveError, BundleError, ConfigError, ValueError, OSError, KafkaException) as exc:
        print(f"stampflow run: {exc}", file=sys.stderr)
        return 2
    print(format_summary(result))
    return 0


def _run_archive(config: DaemonConfig) -> WorkerResult:
    """Archive mode with a packet counter on stderr (only when it is a terminal)."""
    from stampflow.stream.daemon import run_worker

    total = archive_total(config.input.archive or "")
    with progress_bar(total, sys.stderr) as bar:
        return run_worker(config, on_committed=bar.update)
