"""The daemon's Prometheus metrics: exactly the names operators' dashboards and alerts use.

With several workers (``--workers N``) each worker process writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` and the parent serves them all on one port
(prometheus_client's multiprocess mode); gauges then say how worker values combine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_STAGE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def serving_registry() -> CollectorRegistry:
    """The registry the HTTP endpoint serves: this process's metrics, or all workers' files."""
    registry = CollectorRegistry()
    if multiprocess_enabled():
        MultiProcessCollector(registry)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class DaemonMetrics:
    """Every metric one worker updates, registered on ``registry``.

    In multiprocess mode the registry only keeps the objects alive: the values live in the
    shared directory and the parent's ``serving_registry()`` reads them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.consumed = Counter(
            "stampflow_alerts_consumed_total",
            "Input packets read from the source",
            ["topic"],
            registry=registry,
        )
        self.published = Counter(
            "stampflow_alerts_published_total",
            "Annotated alerts acknowledged by the sink",
            ["topic"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "stampflow_dead_letters_total",
            "Packets sent to the dead letters, by stage and reason",
            ["stage", "reason"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "stampflow_batch_size",
            "Input packets per micro-batch",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.stage_duration = Histogram(
            "stampflow_stage_duration_seconds",
            "Time per batch spent in each stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.classifier_duration = Histogram(
            "stampflow_classifier_duration_seconds",
            "Time per batch spent in each classifier",
            ["classifier"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "stampflow_end_to_end_latency_seconds",
            "From the input message's Kafka timestamp to the output's acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "stampflow_consumer_lag",
            "High watermark minus committed offset, per input partition",
            ["topic", "partition"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "stampflow_assigned_partitions",
            "Input partitions assigned to this daemon",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.classifications = Counter(
            "stampflow_classifications_total",
            "Annotations published, by classifier and label",
            ["classifier", "label"],
            registry=registry,
        )
        self.ambiguous = Counter(
            "stampflow_ambiguous_total",
            "Annotations flagged ambiguous, by classifier",
            ["classifier"],
            registry=registry,
        )
        self.model_info = Gauge(
            "stampflow_model_info",
            "Loaded models (value 1) and the device each runs on",
            ["classifier", "version", "sha256", "device"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.last_batch_timestamp = Gauge(
            "stampflow_last_batch_timestamp_seconds",
            "Unix time of the last committed batch",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.rewinds = Counter(
            "stampflow_rewinds_total",
            "Batches delivered again because not every output was acknowledged",
            registry=registry,
        )
        self.stuck = Gauge(
            "stampflow_stuck",
            "1 while the worker makes no progress: a batch rewound again and again, or no "
            "commit for liveness.stuck_after_s with a batch in hand (/healthz fails too)",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.ready = Gauge(
            "stampflow_ready",
            "1 when models are loaded and input partitions are assigned",
            multiprocess_mode="livemax",
            registry=registry,
        )

        self._input: InputMetrics | None = None

    def input_metrics(self) -> InputMetrics:
        """The schema registry's and the surveys' metrics, registered on first use: only a
        worker with ``input.schema_registry`` configured exports them."""
        if self._input is None:
            self._input = InputMetrics(self.registry)
        return self._input

    def set_models(self, models: Iterable[tuple[str, str, str, str]]) -> None:
        """Export ``(classifier, version, sha256, device)`` of every loaded model."""
        for name, version, sha256, device in models:
            self.model_info.labels(
                classifier=name, version=version, sha256=sha256, device=device
            ).set(1)


class InputMetrics:
    """What a worker reading wire-format messages (Rubin) adds: alerts by survey, and the
    schema registry's health."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decoded = Counter(
            "stampflow_alerts_decoded_total",
            "Alerts decoded, by survey (ztf, rubin) and schema version",
            ["survey", "schema_version"],
            registry=registry,
        )
        self.registry_retries = Counter(
            "stampflow_schema_registry_retries_total",
            "Waits (with back-off) on a schema registry that could not be reached; the "
            "batch is held back, not dead-lettered",
            registry=registry,
        )
        self.registry_up = Gauge(
            "stampflow_schema_registry_up",
            "0 while the schema registry cannot be reached, 1 once it answers",
            multiprocess_mode="livemin",
            registry=registry,
        )


def ready_value(registry: CollectorRegistry) -> float:
    """The ``stampflow_ready`` value as the served registry reports it (0 when absent)."""
    for family in registry.collect():
        if family.name == "stampflow_ready":
            return max((s.value for s in family.samples), default=0.0)
    return 0.0
