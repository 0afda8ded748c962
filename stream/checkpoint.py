"""The daemon's commit order, in one place.

Every batch goes through these steps, strictly in order, and the next batch is polled only
after step 6:

1. **poll**: the ``MicroBatcher`` fills a batch from the source (``max_batch`` messages or
   ``max_wait_ms`` after the first one);
2. **decode** every packet; a packet that fails becomes a dead letter (stage ``decode``);
3. **classify** the decoded alerts with each configured classifier that applies; an alert a
   classifier fails on becomes a dead letter (stage ``classify``) after a retry of the
   failing batch in halves, down to that one alert;
4. **encode and produce** each annotated alert to the sink (an alert that fails to encode
   becomes a dead letter, stage ``encode``), and every dead letter to the dead-letter sink;
5. **flush and wait** until every output and every dead letter of the batch is acknowledged;
   an output the broker refuses for good (too large, invalid) becomes a dead letter (stage
   ``produce``) and is waited for in turn; if any other delivery failed (broker gone past
   ``message.timeout.ms``), the batch is **rewound** (delivered again from its first offset)
   and nothing is committed;
6. **store and commit** the offsets: per partition, the batch's highest offset + 1.

So an offset is committed only when everything derived from it is durable: a crash at any
point loses nothing, and re-delivers at most the one batch in hand (at-least-once,
duplicates bounded by one batch per worker). On partition revocation the source calls
``finish_batch_in_hand`` before the partitions go; on SIGTERM/SIGINT ``request_stop`` makes
the loop close the batch it is filling, run steps 2-6 on it within the drain timeout, and
return (the caller then closes the source, leaving the group).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from stampflow.classifiers.base import Classifier
from stampflow.stream.batcher import MicroBatcher
from stampflow.stream.dead_letters import DeadLetterSink
from stampflow.stream.health import Heartbeat
from stampflow.stream.kafka_producer import DeliveryFailed
from stampflow.stream.messages import AnnotatedAlert, DeadLetter, SourceMessage
from stampflow.stream.metrics import DaemonMetrics
from stampflow.stream.pipeline import classify_batch, decode_batch
from stampflow.stream.sinks import Sink
from stampflow.stream.source import Source

log = logging.getLogger(__name__)

ENCODE_FAILED = "encode_failed"


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


class CheckpointLoop:
    def __init__(
        self,
        *,
        source: Source,
        sink: Sink,
        dead_letters: DeadLetterSink,
        classifiers: Sequence[Classifier],
        metrics: DaemonMetrics,
        heartbeat: Heartbeat,
        max_batch: int,
        max_wait_ms: int,
        drain_timeout_s: float,
    ) -> None:
        self._source = source
        self._sink = sink
        self._dead_letters = dead_letters
        self._classifiers = list(classifiers)
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._batcher = MicroBatcher(source, max_batch=max_batch, max_wait_ms=max_wait_ms)
        self._drain_timeout_s = drain_timeout_s
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        self.totals = RunTotals()
        source.set_revoke_hook(self.finish_batch_in_hand)

    def request_stop(self) -> None:
        """Ask the loop to finish the batch in hand and return (signal-handler safe)."""
        if not self._stop.is_set():
            self._stop_deadline = time.monotonic() + self._drain_timeout_s
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> RunTotals:
        """Process batches until the source ends or a stop is requested."""
        started = time.monotonic()
        while True:
            ready = self._source.ready
            self._heartbeat.set_ready(ready)
            self._metrics.ready.set(1 if ready else 0)
            batch = self._batcher.next_batch(self._stop.is_set, self._heartbeat.beat)  # step 1
            if batch:
                self._process(batch)
            elif self._stop.is_set() or self._source.exhausted:
                break
        self.totals.seconds = time.monotonic() - started
        return self.totals

    def finish_batch_in_hand(self) -> None:
        """Steps 2-6 on the partly filled batch (called on revocation, inside a poll)."""
        batch = self._batcher.take_pending()
        if batch:
            self._process(batch)

    def _process(self, batch: list[SourceMessage]) -> None:
        batch_started = time.perf_counter()
        self._metrics.batch_size.observe(len(batch))
        for topic, count in Counter(message.topic for message in batch).items():
            self._metrics.consumed.labels(topic).inc(count)

        with self._metrics.stage_duration.labels("decode").time():  # step 2
            decoded, dead = decode_batch(batch)

        with self._metrics.stage_duration.labels("classify").time():  # step 3
            annotated, failed = classify_batch(
                decoded,
                self._classifiers,
                batch_started=batch_started,
                on_classifier_time=self._classifier_time,
            )
        dead.extend(failed)

        outputs = []
        with self._metrics.stage_duration.labels("encode").time():  # step 4a
            for item in annotated:
                try:
                    outputs.append((item, self._sink.encode(item)))
                except Exception as exc:
                    dead.append(DeadLetter(item.message, "encode", _reason(exc), str(exc)))

        with self._metrics.stage_duration.labels("produce").time():  # steps 4b and 5
            for item, encoded in outputs:
                self._sink.send(item, encoded)
            for letter in dead:
                self._send_dead_letter(letter)
            try:
                self._sink.wait_for_acks(beat=self._heartbeat.beat, deadline=self._stop_deadline)
                for item, reason, error in self._sink.take_rejected():
                    # Refused for good (e.g. too large): dead-letter it rather than retry.
                    letter = DeadLetter(item.message, "produce", reason, error)
                    self._send_dead_letter(letter)
                    dead.append(letter)
                    outputs = [(i, e) for i, e in outputs if i is not item]
                self._dead_letters.wait_for_acks(
                    beat=self._heartbeat.beat, deadline=self._stop_deadline
                )
            except DeliveryFailed as exc:
                log.warning(
                    "batch of %d not acknowledged (%s): delivering it again", len(batch), exc
                )
                self.totals.rewinds += 1
                if not self._stop.is_set():
                    self._source.rewind(batch)
                return  # no commit: the offsets stay where they were

        with self._metrics.stage_duration.labels("commit").time():  # step 6
            self._source.commit(batch)
        self._metrics.last_batch_timestamp.set(time.time())
        self._count(batch, dead, [item for item, _ in outputs])

    def _send_dead_letter(self, letter: DeadLetter) -> None:
        source = letter.message
        log.warning(
            "dead letter %s[%d]@%d at %s: %s",
            source.topic,
            source.partition,
            source.offset,
            letter.stage,
            letter.error,  # it names the reason, the field (if any) and why
        )
        self._dead_letters.send(letter)

    def _classifier_time(self, name: str, seconds: float) -> None:
        self._metrics.classifier_duration.labels(name).observe(seconds)

    def _count(
        self, batch: list[SourceMessage], dead: list[DeadLetter], published: list[AnnotatedAlert]
    ) -> None:
        totals = self.totals
        totals.batches += 1
        totals.consumed += len(batch)
        totals.published += len(published)
        totals.dead_letters.update((d.stage, d.reason) for d in dead)
        for item in published:
            totals.labels.update((a.classifier, a.label) for a in item.annotations)


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or ENCODE_FAILED
