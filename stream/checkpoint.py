"""The daemon's commit order, in one place.

Every batch goes through these steps, strictly in order. The loop (``loop.py``) does steps
1-3; a ``Checkpoint`` does steps 4-6:

1. **poll**: the ``MicroBatcher`` fills a batch from the source (``max_batch`` messages, or
   once the source has had nothing for ``idle_ms``, or ``max_wait_ms`` after the first);
2. **decode** every packet; a packet that fails becomes a dead letter (stage ``decode``);
3. **classify** the decoded alerts with each configured classifier that applies (an alert a
   classifier fails on becomes a dead letter, stage ``classify``, after a retry of the
   failing batch in halves, down to that one alert), then **encode** each annotated alert
   to output bytes (an alert that fails becomes a dead letter, stage ``encode``);
4. **send** every output to the sink and every dead letter to the dead-letter sink; an
   output the sink refuses at once (over the topic's size limit) is set aside;
5. **wait once** until every output and every dead letter of the batch is acknowledged.
   Outputs the destination refused for good (too large, invalid) become dead letters
   (stage ``produce``), sent and waited for in turn; a dead letter too large for its topic
   goes without its payload. If any other delivery failed (broker gone past
   ``message.timeout.ms``), the batch is **rewound** (delivered again from its first
   offset) and nothing is committed;
6. **store and commit** the offsets: per partition, the batch's highest offset + 1.

Sequentially (``overlap`` off), the next batch is polled only after step 6. With
``overlap`` (the daemon's default) steps 1-3 of batch N+1 run while batch N's
acknowledgements are on their way: N is sent (step 4), N+1 polled, decoded, classified and
encoded, then N waited for and committed (steps 5-6), and only then N+1 sent. So each wait
still covers exactly one batch's messages, outputs leave in input order, and at most one
batch is in flight. If N fails (step 5), N+1 was never sent: it is dropped and rewound with
N, from the lowest offset per partition of both (``rewind_also``), so nothing after N is
skipped. A revocation first finishes N, then the partly filled batch (rewound with N if N
failed); a stop, the end of an archive or an idle poll finish N at once. In exactly-once
mode the same holds: N's transaction is committed before N+1's begins.

So an offset is committed only when everything derived from it is durable: a crash at any
point loses nothing, and re-delivers at most the batches in hand (two with ``overlap``), of
which only one was sent (at-least-once, duplicates bounded by one batch per worker). How
step 6 commits is the checkpoint's ``Commits`` strategy: ``SourceCommits`` (``processing:
at_least_once``) commits the consumer's offsets; ``TransactionalCommits``
(``exactly_once``, ``transactions.py``) runs steps 4-6 inside one Kafka transaction, the
offsets sent into it, so outputs and offsets become visible together or not at all (a
refused output then aborts the transaction and the batch's messages are sent again without
it, before the commit).

On partition revocation the source calls ``finish_batch_in_hand`` before the partitions
go; on SIGTERM/SIGINT ``request_stop`` makes the loop close the batch it is filling, run
steps 2-6 on it within the drain timeout, and return (the caller then closes the source,
leaving the group). Each batch ends in one
``BatchResult``, the only input of the metrics and the run's totals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from stampflow.stream.batch_result import BatchResult
from stampflow.stream.dead_letters import DeadLetterSink
from stampflow.stream.kafka_producer import DeliveryFailed
from stampflow.stream.messages import DeadLetter, EncodedOutput, SourceMessage
from stampflow.stream.sinks import Sink
from stampflow.stream.source import Source

log = logging.getLogger(__name__)


class Commits(Protocol):
    """How step 6 commits a batch (see the module's docstring)."""

    atomic: bool  # True: one refused message fails the batch's whole transaction

    def begin(self) -> None: ...

    def commit(
        self, batch: Sequence[SourceMessage], *, beat: Callable[[], None], deadline: float | None
    ) -> None: ...  # raises DeliveryFailed when the batch must be delivered again

    def abort(self) -> None: ...


class SourceCommits:
    """At-least-once: the source commits the offsets once the outputs are acknowledged."""

    atomic = False

    def __init__(self, source: Source) -> None:
        self._source = source

    def begin(self) -> None:
        return

    def commit(
        self, batch: Sequence[SourceMessage], *, beat: Callable[[], None], deadline: float | None
    ) -> None:
        self._source.commit(batch)

    def abort(self) -> None:
        return  # what was acknowledged stays; the rewound batch makes duplicates, not losses


class Checkpoint:
    """Steps 4-6 for one batch: send, wait once for every acknowledgement, commit.

    1. ``add_output`` / ``add_dead_letter`` send as they are added (step 4);
    2. ``commit`` waits for the sink and the dead-letter sink (step 5);
    3. outputs refused for good become dead letters here, sent and waited for;
    4. any other delivery failure rewinds the batch (unless stopping) and commits nothing;
    5. otherwise the source commits the batch's offsets (step 6).

    ``commit`` never raises for a delivery failure: it answers with a ``BatchResult``.
    """

    def __init__(
        self,
        batch: Sequence[SourceMessage],
        *,
        source: Source,
        sink: Sink,
        dead_letters: DeadLetterSink,
        commits: Commits | None = None,
    ) -> None:
        self._batch = tuple(batch)
        self._source = source
        self._sink = sink
        self._dead_letters = dead_letters
        self._commits = commits or SourceCommits(source)
        self._outputs: list[EncodedOutput] = []
        self._dead: list[DeadLetter] = []
        self._rejected: list[DeadLetter] = []
        self._rejected_ids: set[int] = set()
        self._send_s = 0.0

    def add_output(self, output: EncodedOutput) -> None:
        started = time.perf_counter()
        self._commits.begin()
        self._outputs.append(output)
        self._send_output(output)
        self._send_s += time.perf_counter() - started

    def add_dead_letter(self, letter: DeadLetter) -> None:
        started = time.perf_counter()
        self._commits.begin()
        _log(letter)
        self._dead.append(letter)
        self._dead_letters.send(letter)
        self._send_s += time.perf_counter() - started

    def _send_output(self, output: EncodedOutput) -> None:
        def rejected(reason: str, error: str) -> None:
            alert = output.item.alert
            text = f"{reason}: alert {alert.object_id}/{alert.candid}: {error}"
            self._rejected.append(DeadLetter(output.message, "produce", reason, text))
            self._rejected_ids.add(id(output))

        self._sink.send(output, rejected)

    def _wait(self, beat: Callable[[], None], deadline: float | None) -> None:
        self._sink.wait_for_acks(beat=beat, deadline=deadline)
        self._dead_letters.wait_for_acks(beat=beat, deadline=deadline)
        while self._rejected:  # each round has fewer outputs: it ends
            refused, self._rejected = self._rejected, []
            if self._commits.atomic:
                # The refusal failed the transaction: a new one, with the rest sent again.
                self._commits.abort()
                self._commits.begin()
                for output in self._outputs:
                    if id(output) not in self._rejected_ids:
                        self._send_output(output)
                for letter in self._dead:
                    self._dead_letters.send(letter)
            for letter in refused:  # refused for good: retrying would fail for ever
                self.add_dead_letter(letter)
            if self._commits.atomic:
                self._sink.wait_for_acks(beat=beat, deadline=deadline)
            self._dead_letters.wait_for_acks(beat=beat, deadline=deadline)

    def commit(
        self,
        *,
        beat: Callable[[], None],
        deadline: float | None,
        rewind: bool,
        stage_seconds: Mapping[str, float],
        classifier_seconds: Mapping[str, float],
        rewind_also: Sequence[SourceMessage] = (),
    ) -> BatchResult:
        """Wait for every acknowledgement, then commit; or rewind (when ``rewind``).

        ``rewind_also``: messages polled after this batch and not sent yet (the next batch,
        when the loop overlaps): a rewind takes them back too, from the lowest offset per
        partition of both, so nothing after the failed batch is skipped.
        """
        started = time.perf_counter()
        stages = dict(stage_seconds)
        committing = None
        try:
            self._commits.begin()
            self._wait(beat, deadline)
            committing = time.perf_counter()
            stages["produce"] = self._send_s + committing - started
            self._commits.commit(self._batch, beat=beat, deadline=deadline)
        except DeliveryFailed as exc:
            log.warning(
                "batch of %d not %s (%s): %s",
                len(self._batch),
                "acknowledged" if committing is None else "committed",
                exc,
                "delivering it again" if rewind else "stopping; it is delivered again later",
            )
            self._commits.abort()
            if rewind:
                self._source.rewind((*self._batch, *rewind_also))
            stages["produce"] = self._send_s + time.perf_counter() - started
            return self._result(False, stages, classifier_seconds)
        stages["commit"] = time.perf_counter() - committing
        return self._result(True, stages, classifier_seconds)

    def _result(
        self, committed: bool, stages: Mapping[str, float], classifiers: Mapping[str, float]
    ) -> BatchResult:
        published = tuple(o.item for o in self._outputs if id(o) not in self._rejected_ids)
        return BatchResult(
            messages=self._batch,
            committed=committed,
            output=self._sink.label,
            published=published if committed else (),
            dead_letters=tuple(self._dead) if committed else (),
            stage_seconds=stages,
            classifier_seconds=classifiers,
        )


def _log(letter: DeadLetter) -> None:
    source = letter.message
    log.warning(
        "dead letter %s[%d]@%d at %s: %s",
        source.topic,
        source.partition,
        source.offset,
        letter.stage,
        letter.error,  # it names the reason, the field (if any) and why
    )
