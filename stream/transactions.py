"""``processing: exactly_once``: a batch's outputs, dead letters and offsets in one transaction.

The second commit strategy of the ``Checkpoint`` (the first, ``SourceCommits``, commits the
consumer's offsets after the outputs are acknowledged). Here each batch is one Kafka
transaction of the shared producer:

1. ``begin``: ``begin_transaction`` before the batch's first output is produced;
2. the checkpoint produces outputs and dead letters and waits for them, as always;
3. ``commit``: ``send_offsets_to_transaction`` (the batch's highest offset + 1 per partition,
   under the consumer's group metadata, so a member fenced by a rebalance cannot commit) and
   ``commit_transaction``: outputs and offsets become visible together, or not at all;
4. ``abort`` on any failure: ``abort_transaction``, and the checkpoint rewinds the batch.

A consumer reading the output with ``isolation.level=read_committed`` sees every input once.
The ``transactional.id`` is stable per worker (``transactional_id``): a restarted worker's
``init_transactions`` aborts what its killed predecessor left open and fences it, so a
zombie's late commit fails with ``Fenced`` and that worker exits. A transaction spans one
cluster: input, output and dead-letter topics must all be on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException

from stampflow.stream.config import DaemonConfig
from stampflow.stream.kafka_producer import AckingProducer, DeliveryFailed, Fenced
from stampflow.stream.kafka_source import KafkaSource
from stampflow.stream.messages import SourceMessage

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 10.0  # one librdkafka transaction call; retried while retriable
INIT_TIMEOUT_S = 60.0  # init_transactions may wait for a predecessor's transaction to abort
RETRY_PAUSE_S = 0.5
_FENCED = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


def transactional_id(config: DaemonConfig) -> str:
    """``<group id>-<group.instance.id>``: one per worker, the same after a restart."""
    return f"{config.input.group_id}-{config.kafka['group.instance.id']}"


class TransactionalCommits:
    """The ``Checkpoint``'s commit strategy for exactly-once (see the module's steps)."""

    atomic = True  # a refused message fails the whole transaction, not just itself

    def __init__(self, producer: AckingProducer, source: KafkaSource, name: str) -> None:
        self._producer = producer
        self._kafka = producer.transactions
        self._source = source
        self._name = name
        self._open = False
        log.info("transactional producer %r: initialising (fences any predecessor)", name)
        self._call("init_transactions", lambda t: self._kafka.init_transactions(t), None)

    def begin(self) -> None:
        if not self._open:
            self._call("begin_transaction", lambda _t: self._kafka.begin_transaction(), None)
            self._open = True

    def commit(
        self,
        batch: Sequence[SourceMessage],
        *,
        beat: Callable[[], None],
        deadline: float | None,
    ) -> None:
        """Offsets into the transaction, then commit it; ``DeliveryFailed`` if it must abort."""
        self.begin()
        offsets = self._source.offsets_after(batch)
        if offsets:
            metadata = self._source.group_metadata()
            self._call(
                "send_offsets_to_transaction",
                lambda t: self._kafka.send_offsets_to_transaction(offsets, metadata, t),
                deadline,
                beat,
            )
        commit = self._kafka.commit_transaction
        self._call("commit_transaction", lambda t: commit(t), deadline, beat)
        self._open = False

    def abort(self) -> None:
        """Abort the open transaction (if any): none of its messages is ever read committed."""
        if not self._open:
            return
        try:
            self._call("abort_transaction", lambda t: self._kafka.abort_transaction(t), None)
        except DeliveryFailed as exc:
            # Nothing else is safe now; a restarted worker's init_transactions aborts it.
            raise RuntimeError(f"cannot abort the transaction: {exc}") from None
        self._producer.forget_failures()
        self._open = False

    def _call(
        self,
        what: str,
        call: Callable[[float], object],
        deadline: float | None,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        """``call(timeout)``, again while librdkafka says the error is retriable."""
        started = time.monotonic()
        limit = INIT_TIMEOUT_S if what == "init_transactions" else CALL_TIMEOUT_S
        while True:
            try:
                call(limit)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() in _FENCED:
                    raise Fenced(
                        f"transactional id {self._name!r} belongs to a newer worker "
                        f"({error.name()} at {what}): this one stops"
                    ) from None
                if error.fatal():
                    raise
                if error.txn_requires_abort():
                    raise DeliveryFailed(f"{what}: {error.str()} (aborting)") from None
                now = time.monotonic()
                past = deadline is not None and now > deadline
                if not error.retriable() or past or now - started > 10 * limit:
                    raise DeliveryFailed(f"{what}: {error.str()}") from None
                log.info("%s: %s; trying again", what, error.str())
                beat()
                time.sleep(RETRY_PAUSE_S)
