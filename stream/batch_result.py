"""What one batch came to (``BatchResult``), and the one place that counts it (``Recorder``).

The checkpoint answers every batch with a ``BatchResult``; ``Recorder.record`` turns it into
both the Prometheus metrics and the run's totals, so the two can never disagree.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from stampflow.stream.messages import AnnotatedAlert, DeadLetter, SourceMessage
from stampflow.stream.metrics import DaemonMetrics


@dataclass(frozen=True)
class BatchResult:
    """One batch, committed or rewound.

    A rewound batch (``committed`` False) publishes and dead-letters nothing as far as the
    counts go: it is delivered again and counted then.
    """

    messages: tuple[SourceMessage, ...]
    committed: bool
    output: str  # the sink's label (topic or directory)
    published: tuple[AnnotatedAlert, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    classifier_seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass
class RunTotals:
    """What a run did, for the command's summary."""

    consumed: int = 0
    published: int = 0
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason)
    labels: Counter[tuple[str, str]] = field(default_factory=Counter)  # (classifier, label)
    batches: int = 0
    rewinds: int = 0
    seconds: float = 0.0


class Recorder:
    """Feeds metrics and totals from batch results, and from nowhere else."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self.metrics = metrics
        self.totals = RunTotals()

    def record(self, result: BatchResult) -> None:
        metrics, totals = self.metrics, self.totals
        metrics.batch_size.observe(len(result.messages))
        for topic, count in Counter(m.topic for m in result.messages).items():
            metrics.consumed.labels(topic).inc(count)  # read, whatever became of them
        for stage, seconds in result.stage_seconds.items():
            metrics.stage_duration.labels(stage).observe(seconds)
        for name, seconds in result.classifier_seconds.items():
            metrics.classifier_duration.labels(name).observe(seconds)
        if not result.committed:
            metrics.rewinds.inc()
            totals.rewinds += 1
            return

        now = time.time()
        metrics.published.labels(result.output).inc(len(result.published))
        for item in result.published:
            for annotation in item.annotations:
                metrics.classifications.labels(annotation.classifier, annotation.label).inc()
                if annotation.ambiguous:
                    metrics.ambiguous.labels(annotation.classifier).inc()
                totals.labels[(annotation.classifier, annotation.label)] += 1
            if item.message.timestamp_ms is not None:
                latency = now - item.message.timestamp_ms / 1000.0
                metrics.end_to_end_latency.observe(max(0.0, latency))
        for dead in result.dead_letters:
            metrics.dead_letters.labels(dead.stage, dead.reason).inc()
            totals.dead_letters[(dead.stage, dead.reason)] += 1
        metrics.last_batch_timestamp.set(now)
        totals.batches += 1
        totals.consumed += len(result.messages)
        totals.published += len(result.published)
