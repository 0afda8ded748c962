"""The loop that polls and processes batches; each one ends at a ``Checkpoint``.

The order of the steps (poll, decode, classify, encode, then the checkpoint's send, wait
and commit) is written down once, in ``checkpoint.py``; so is what ``overlap`` changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from stampflow.classifiers.base import Classifier
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.encode import OutputEncoder
from stampflow.stream.batch_result import Recorder, RunTotals
from stampflow.stream.batcher import IDLE_CLOSE_MS, MicroBatcher
from stampflow.stream.checkpoint import Checkpoint, Commits
from stampflow.stream.dead_letters import DeadLetterSink
from stampflow.stream.encode_stage import encode_batch
from stampflow.stream.health import Heartbeat
from stampflow.stream.messages import DeadLetter, EncodedOutput, SourceMessage
from stampflow.stream.metrics import DaemonMetrics
from stampflow.stream.pipeline import Decoder, classify_batch, decode_batch
from stampflow.stream.sinks import Sink
from stampflow.stream.source import Source


@dataclass
class _Prepared:
    """Steps 2-3 done for one batch: what its checkpoint will send."""

    batch: list[SourceMessage]
    outputs: list[EncodedOutput]
    dead: list[DeadLetter]
    stages: dict[str, float] = field(default_factory=dict)
    classifier_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Sent:
    """A batch whose checkpoint has sent everything (step 4), not yet waited for."""

    checkpoint: Checkpoint
    prepared: _Prepared


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
        decode: Decoder = decode_packet,  # e.g. source.SurveyDecoder: with a schema registry
        commits: Commits | None = None,
        idle_ms: float | None = IDLE_CLOSE_MS,
        overlap: bool = False,
    ) -> None:
        """``commits``: how batches commit (default: the source's offsets, at-least-once).

        ``idle_ms``: a batch closes once the source has had nothing for that long (None:
        only at ``max_batch`` or ``max_wait_ms``). ``overlap``: prepare the next batch while
        the last one's acknowledgements are on their way (``checkpoint.py``).
        """
        self._source = source
        self._commits = commits
        self._sink = sink
        self._dead_letters = dead_letters
        self._classifiers = list(classifiers)
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._recorder = Recorder(metrics)
        self._batcher = MicroBatcher(
            source, max_batch=max_batch, max_wait_ms=max_wait_ms, idle_ms=idle_ms
        )
        self._mode = mode
        self._encoder = encoder or OutputEncoder()
        self._decode = decode
        self._drain_timeout_s = drain_timeout_s
        self._overlap = overlap
        self._in_flight: _Sent | None = None  # overlap: the batch sent and not yet committed
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
        try:
            while True:
                ready = self._source.ready
                self._heartbeat.set_ready(ready)
                self._metrics.ready.set(1 if ready else 0)
                batch = self._batcher.next_batch(self._stop.is_set, self._beat)  # step 1
                if batch:
                    self._process(batch)
                else:
                    self._finish_in_flight()  # a quiet moment: nothing to overlap with
                    if self._stop.is_set() or self._source.exhausted:
                        break
        finally:
            self.totals.seconds = time.monotonic() - started
        return self.totals

    def finish_batch_in_hand(self) -> None:
        """Called on revocation, inside a poll: the batch sent and not yet committed
        (overlap) is waited for and committed first, then steps 2-6 run on the partly
        filled batch. If the first one fails, the partly filled one is rewound with it."""
        partial = self._batcher.take_pending()
        if not self._finish_in_flight(rewind_also=partial):
            return
        if partial:
            self._send(self._prepare(partial))
            self._finish_in_flight()

    def _process(self, batch: list[SourceMessage]) -> None:
        prepared = self._prepare(batch)  # steps 2-3, while the last batch's acks come in
        if not self._finish_in_flight(rewind_also=batch):
            return  # the last batch was rewound, and this one with it: nothing was sent
        self._send(prepared)  # step 4
        if not self._overlap or self._stop.is_set():
            self._finish_in_flight()  # steps 5-6 now
        self._beat()

    def _prepare(self, batch: list[SourceMessage]) -> _Prepared:
        """Steps 2-3: decode, classify, encode; nothing is sent yet."""
        self._heartbeat.batch_in_hand()
        batch_started = time.perf_counter()
        prepared = _Prepared(batch, [], [])
        stages = prepared.stages

        decoded, dead = decode_batch(batch, self._decode)  # step 2
        classify_started = time.perf_counter()
        stages["decode"] = classify_started - batch_started

        annotated, failed = classify_batch(  # step 3
            decoded,
            self._classifiers,
            batch_started=batch_started,
            on_classifier_time=prepared.classifier_seconds.__setitem__,
        )
        encode_started = time.perf_counter()
        stages["classify"] = encode_started - classify_started
        outputs, unencodable = encode_batch(
            annotated, self._encoder, mode=self._mode, containers=self._sink.containers
        )
        stages["encode"] = time.perf_counter() - encode_started
        prepared.outputs = outputs
        prepared.dead = [*dead, *failed, *unencodable]
        return prepared

    def _send(self, prepared: _Prepared) -> None:
        """Step 4: a checkpoint for the batch, every output and dead letter sent."""
        assert self._in_flight is None, "one batch in flight at a time"
        checkpoint = Checkpoint(
            prepared.batch,
            source=self._source,
            sink=self._sink,
            dead_letters=self._dead_letters,
            commits=self._commits,
        )
        for output in prepared.outputs:
            checkpoint.add_output(output)
        for letter in prepared.dead:
            checkpoint.add_dead_letter(letter)
        self._in_flight = _Sent(checkpoint, prepared)

    def _finish_in_flight(self, rewind_also: Sequence[SourceMessage] = ()) -> bool:
        """Steps 5-6 for the batch in flight, if any; False if it was not committed.

        ``rewind_also``: what was polled after it (unsent): rewound with it on a failure.
        """
        sent, self._in_flight = self._in_flight, None
        if sent is None:
            return True
        result = sent.checkpoint.commit(
            beat=self._beat,
            deadline=self._stop_deadline,
            rewind=not self._stop.is_set(),
            stage_seconds=sent.prepared.stages,
            classifier_seconds=sent.prepared.classifier_seconds,
            rewind_also=rewind_also,
        )
        self._recorder.record(result)
        self._heartbeat.batch_done(committed=result.committed)
        self._beat()
        return result.committed

    def _beat(self) -> None:
        self._heartbeat.beat()
        self._metrics.stuck.set(0 if self._heartbeat.stuck() is None else 1)
