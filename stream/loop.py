"""The loop that polls and processes batches; each one ends at a ``Checkpoint``.

The order of the steps (poll, decode, classify, encode, then the checkpoint's send, wait
and commit) is written down once, in ``checkpoint.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from stampflow.classifiers.base import Classifier
from stampflow.schemas.encode import OutputEncoder
from stampflow.stream.batch_result import Recorder, RunTotals
from stampflow.stream.batcher import MicroBatcher
from stampflow.stream.checkpoint import Checkpoint, Commits
from stampflow.stream.dead_letters import DeadLetterSink
from stampflow.stream.encode_stage import encode_batch
from stampflow.stream.health import Heartbeat
from stampflow.stream.messages import SourceMessage
from stampflow.stream.metrics import DaemonMetrics
from stampflow.stream.pipeline import classify_batch, decode_batch
from stampflow.stream.sinks import Sink
from stampflow.stream.source import Source


class ProcessingLoop:
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
        mode: str = "full",
        encoder: OutputEncoder | None = None,
        commits: Commits | None = None,
    ) -> None:
        """``commits``: how batches commit (default: the source's offsets, at-least-once)."""
        self._source = source
        self._commits = commits
        self._sink = sink
        self._dead_letters = dead_letters
        self._classifiers = list(classifiers)
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._recorder = Recorder(metrics)
        self._batcher = MicroBatcher(source, max_batch=max_batch, max_wait_ms=max_wait_ms)
        self._mode = mode
        self._encoder = encoder or OutputEncoder()
        self._drain_timeout_s = drain_timeout_s
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        source.set_revoke_hook(self.finish_batch_in_hand)

    @property
    def totals(self) -> RunTotals:
        return self._recorder.totals

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
            batch = self._batcher.next_batch(self._stop.is_set, self._beat)  # step 1
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
        self._heartbeat.batch_in_hand()
        batch_started = time.perf_counter()
        stages: dict[str, float] = {}
        classifier_seconds: dict[str, float] = {}

        decoded, dead = decode_batch(batch)  # step 2
        classify_started = time.perf_counter()
        stages["decode"] = classify_started - batch_started

        annotated, failed = classify_batch(  # step 3
            decoded,
            self._classifiers,
            batch_started=batch_started,
            on_classifier_time=classifier_seconds.__setitem__,
        )
        encode_started = time.perf_counter()
        stages["classify"] = encode_started - classify_started
        outputs, unencodable = encode_batch(
            annotated, self._encoder, mode=self._mode, containers=self._sink.containers
        )
        stages["encode"] = time.perf_counter() - encode_started

        checkpoint = Checkpoint(  # steps 4-6
            batch,
            source=self._source,
            sink=self._sink,
            dead_letters=self._dead_letters,
            commits=self._commits,
        )
        for output in outputs:
            checkpoint.add_output(output)
        for letter in (*dead, *failed, *unencodable):
            checkpoint.add_dead_letter(letter)
        result = checkpoint.commit(
            beat=self._beat,
            deadline=self._stop_deadline,
            rewind=not self._stop.is_set(),
            stage_seconds=stages,
            classifier_seconds=classifier_seconds,
        )
        self._recorder.record(result)
        self._heartbeat.batch_done(committed=result.committed)
        self._beat()

    def _beat(self) -> None:
        self._heartbeat.beat()
        self._metrics.stuck.set(0 if self._heartbeat.stuck() is None else 1)
