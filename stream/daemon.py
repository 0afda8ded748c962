"""One worker: wires config to source, classifiers, sinks and metrics, and runs the loop."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry

from stampflow.classifiers.base import Classifier
from stampflow.classifiers.device import DEVICE_ENV
from stampflow.classifiers.registry import load_classifier
from stampflow.stream.archive_source import ArchiveSource, check_archive
from stampflow.stream.batch_result import RunTotals
from stampflow.stream.checkpoint import Commits
from stampflow.stream.cluster_check import check_cluster
from stampflow.stream.config import DaemonConfig
from stampflow.stream.dead_letters import DeadLetterSink, DirectoryDeadLetters, KafkaDeadLetters
from stampflow.stream.health import HealthServer, Heartbeat
from stampflow.stream.kafka_producer import AckingProducer, Fenced, producer_properties
from stampflow.stream.kafka_source import KafkaSource
from stampflow.stream.loop import ProcessingLoop
from stampflow.stream.metrics import DaemonMetrics, multiprocess_enabled, serving_registry
from stampflow.stream.progress import CountingSource, OnCommitted
from stampflow.stream.sinks import AvroFileSink, KafkaSink, Sink
from stampflow.stream.source import Source, survey_codec
from stampflow.stream.threads import (
    ONNX_THREADS_VARIABLE,
    limit_pools,
    thread_environment,
    threads_per_worker,
)
from stampflow.stream.topic_limits import bounded_batches, topic_message_limits
from stampflow.stream.transactions import TransactionalCommits, transactional_id

log = logging.getLogger(__name__)

# Past the drain timeout, a worker stuck inside a C call is ended hard: the commit order
# makes that safe (uncommitted work is delivered again).
HARD_EXIT_GRACE_S = 10.0
HARD_EXIT_CODE = 3


@dataclass(frozen=True)
class WorkerResult:
    totals: RunTotals
    output: str  # the output topic or directory
    dead_letters: str
    classifiers: tuple[str, ...]


def load_classifiers(config: DaemonConfig) -> list[Classifier]:
    """The configured models, each on ``config.device`` where it has a choice (plugins read
    it from $STAMPFLOW_DEVICE; a device that cannot be used fails here, at start-up)."""
    os.environ[DEVICE_ENV] = config.device
    return [
        load_classifier(spec.name, Path(spec.model_dir) if spec.model_dir else None)
        for spec in config.classifiers
    ]


def worker_config(config: DaemonConfig, worker_index: int | None) -> DaemonConfig:
    """``config`` for worker ``worker_index`` of several: its own static member id.

    Two members of a group may not share a ``group.instance.id`` (the newer fences the
    older), nor two producers a ``transactional.id``; ``-<index>`` keeps each apart and the
    same across restarts.
    """
    instance = config.kafka.get("group.instance.id")
    if worker_index is None or config.workers == 1 or not instance:
        return config
    kafka = {**config.kafka, "group.instance.id": f"{instance}-{worker_index}"}
    return dataclasses.replace(config, kafka=kafka)


def run_worker(
    config: DaemonConfig,
    *,
    serve_http: bool = True,
    worker_index: int | None = None,
    on_committed: OnCommitted | None = None,
) -> WorkerResult:
    """Run one worker until its source ends (archive) or SIGTERM/SIGINT (Kafka).

    ``on_committed(n)`` is told of every n packets done in archive mode (a progress bar).
    """
    config = worker_config(config, worker_index)
    registry = serving_registry() if not multiprocess_enabled() else CollectorRegistry()
    metrics = DaemonMetrics(registry)
    heartbeat = Heartbeat(
        stuck_after_s=config.liveness.stuck_after_s, max_rewinds=config.liveness.max_rewinds
    )
    server = None
    if serve_http and config.metrics.port is not None:
        server = HealthServer(
            registry,
            healthy=heartbeat.healthy,
            ready=heartbeat.ready,
            problem=heartbeat.problem,
            host=config.metrics.host,
            port=config.metrics.port,
        ).start()
        log.info("metrics and probes on port %d", server.port)

    threads = threads_per_worker(config.threads, config.workers)
    # Read when the morphology plugin loads (ONNX Runtime's threads). ``stampflow run`` set
    # it already; this covers a worker started in process. ``threads: auto`` keeps the user's.
    thread_environment(threads, explicit=config.threads is not None, names=(ONNX_THREADS_VARIABLE,))
    classifiers = load_classifiers(config)
    log.info("thread pools limited to %d per worker: %s", threads, limit_pools(threads) or "none")
    metrics.set_models(
        (c.name, c.version, c.sha256, getattr(c, "device", "cpu")) for c in classifiers
    )
    if not classifiers:
        log.info("no classifiers configured: alerts pass through with empty annotations")

    source: Source
    sink: Sink
    dead_letters: DeadLetterSink
    producer = None
    commits: Commits | None = None
    if config.kafka_mode:
        name = transactional_id(config) if config.exactly_once else None
        properties = producer_properties(config, name)
        output, dead = config.output.topic, config.dead_letter.topic
        keys = {"input.topics": config.input.topics, "output.topic": [output]}
        check_cluster(properties, {**keys, "dead_letter.topic": [dead]})
        limits = topic_message_limits(properties, (output, dead))
        producer = AckingProducer(
            bounded_batches(properties, limits), config.backpressure.max_in_flight
        )
        sink = KafkaSink(producer, output, max_message_bytes=limits[output])
        dead_letters = KafkaDeadLetters(producer, dead, max_message_bytes=limits[dead])
        kafka_source = KafkaSource(config, metrics)
        heartbeat.watch_reachability(kafka_source.reachable)
        source = kafka_source
        if name is not None:
            commits = TransactionalCommits(producer, kafka_source, name)
    else:
        check_archive(config.input.archive or "")
        sink = AvroFileSink(config.output.dir, mode=config.output.mode)
        dead_letters = DirectoryDeadLetters(config.dead_letter.dir)
        source = ArchiveSource(config.input.archive or "")
        if on_committed is not None:
            source = CountingSource(source, on_committed)

    # Input schema registry (Rubin's wire format) for decoding and the annotated output.
    # While a batch waits for it, the consumer is kept in its group (polled, paused).
    decode, encoder = survey_codec(config, metrics, beat=_waiting_beat(heartbeat, source))
    loop = ProcessingLoop(
        source=source,
        sink=sink,
        dead_letters=dead_letters,
        classifiers=classifiers,
        metrics=metrics,
        heartbeat=heartbeat,
        max_batch=config.batching.max_batch,
        max_wait_ms=config.batching.max_wait_ms,
        drain_timeout_s=config.shutdown.drain_timeout_s,
        mode=config.output.mode,
        encoder=encoder,
        decode=decode,
        commits=commits,
        idle_ms=config.batching.idle_ms or None,
        overlap=config.batching.overlap,
    )
    restore = _install_signal_handlers(loop, config.shutdown.drain_timeout_s)
    try:
        totals = loop.run()
    except Fenced as exc:
        # A newer worker with our transactional id took over: ours is a zombie, and stops
        # without committing anything more.
        log.error("%s", exc)
        totals = loop.totals
    finally:
        source.close()  # leaves the consumer group (one last, empty, revocation)
        sink.close()
        dead_letters.close()
        if producer is not None:
            left = producer.close(config.shutdown.drain_timeout_s)
            if left:
                log.warning("%d messages undelivered at exit (their input is uncommitted)", left)
        if server is not None:
            server.close()
        restore()
    output = config.output.topic if config.kafka_mode else config.output.dir
    dead = config.dead_letter.topic if config.kafka_mode else config.dead_letter.dir
    return WorkerResult(totals, output, dead, tuple(c.name for c in classifiers))


def _waiting_beat(heartbeat: Heartbeat, source: Source) -> Callable[[], None]:
    """What a batch waiting for the schema registry calls: the liveness heartbeat and, for
    Kafka, ``KafkaSource.keep_alive`` (the group would drop a member that stops polling)."""
    if not isinstance(source, KafkaSource):
        return heartbeat.beat
    keep_alive = source.keep_alive

    def beat() -> None:
        heartbeat.beat()
        keep_alive()

    return beat


def _install_signal_handlers(loop: ProcessingLoop, drain_timeout_s: float) -> Callable[[], None]:
    """SIGTERM/SIGINT: drain and stop; a watchdog ends the process if draining hangs."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals can only be handled in the main thread (tests)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in hand, then leaving", signum)
        if not loop.stopping:
            watchdog = threading.Timer(
                drain_timeout_s + HARD_EXIT_GRACE_S, os._exit, args=(HARD_EXIT_CODE,)
            )
            watchdog.daemon = True
            watchdog.start()
        loop.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
