"""``KafkaSource``: one consumer-group member with manual offset storage and commits.

Auto-commit and auto offset store are off: offsets move only when the checkpoint loop calls
``commit`` after every output of a batch was acknowledged. Rebalance callbacks run inside
``poll``; on revocation the source first lets the loop finish the batch in hand (the revoke
hook), so the partitions leave with their work committed.

While the batch in hand waits (a schema registry that is down), ``keep_alive`` polls the
consumer with its partitions paused, so the member stays in the group past
``max.poll.interval.ms`` without consuming; the next ``poll`` resumes them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from stampflow.stream.config import DaemonConfig, redact
from stampflow.stream.kafka_log import KafkaLog
from stampflow.stream.kafka_producer import Fenced
from stampflow.stream.messages import SourceMessage
from stampflow.stream.metrics import DaemonMetrics, multiprocess_enabled
from stampflow.stream.source import RevokeHook

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
LAG_RETRY_S = 0.5
# While the cluster is unreachable, readiness asks it for metadata at most this often.
REACHABILITY_RETRY_S = 3.0
REACHABILITY_TIMEOUT_S = 1.0
COMMIT_ATTEMPTS = 5
# While the batch in hand waits, ``keep_alive`` polls the consumer once the last poll is
# this share of max.poll.interval.ms ago (librdkafka's default of that: 300 s).
KEEP_ALIVE_SHARE = 0.5
MAX_POLL_INTERVAL_MS = 300_000


def consumer_properties(config: DaemonConfig) -> dict[str, str | int | bool]:
    """librdkafka consumer settings: ours first, then the user's pass-through properties."""
    props: dict[str, str | int | bool] = {
        "bootstrap.servers": config.input.bootstrap or "",
        "group.id": config.input.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Input written in transactions (ours, MirrorMaker's): aborted records are skipped.
        "isolation.level": "read_committed",
        "queued.max.messages.kbytes": config.backpressure.prefetch_kbytes,
        "queued.min.messages": config.backpressure.prefetch_messages,
        "fetch.queue.backoff.ms": config.backpressure.fetch_backoff_ms,
        # One fetch should not overshoot the prefetch bound by much; librdkafka insists on
        # at least message.max.bytes (1 MB by default, about 20 packets).
        "fetch.max.bytes": max(
            1_000_000, min(52_428_800, config.backpressure.prefetch_kbytes * 1024)
        ),
    }
    props.update(config.kafka)
    return props


class KafkaSource:
    def __init__(self, config: DaemonConfig, metrics: DaemonMetrics) -> None:
        self._metrics = metrics
        props = consumer_properties(config)
        log.info("consumer settings: %s", redact(props))
        self._log = KafkaLog("consumer", log)
        self._consumer = Consumer(
            {**props, **self._log.properties(), "error_cb": self._on_client_error}
        )
        self._assigned: set[tuple[str, int]] = set()
        self._brokers_down_since: float | None = None  # readiness: the cluster unreachable
        self._reachability_due = 0.0
        self._revoke_hook: RevokeHook | None = None
        self._lag_due = 0.0
        # keep_alive: partitions it paused (resumed by the next poll once assigned), what its
        # polls returned (handed out first by the next poll), when it polls; _polling:
        # inside a librdkafka call that may run rebalance callbacks (poll is not re-entered)
        self._paused: set[tuple[str, int]] = set()
        self._held: list[Message] = []
        self._keep_alive_after_s = KEEP_ALIVE_SHARE * _max_poll_interval_s(props)
        self._last_poll = time.monotonic()
        self._polling = False
        self._keeping_alive = False
        self._consumer.subscribe(
            list(config.input.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    # -- the Source protocol -------------------------------------------------------------

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        """Up to ``max_messages``, waiting at most ``timeout_s`` for the first one only.

        librdkafka's ``consume(n, timeout)`` waits until it has ``n`` messages or the
        timeout passes; the batcher needs what is there now instead (it closes a batch when
        the stream pauses). So: what is queued, else wait for one, then what came with it.
        """
        if self._paused:
            self._resume()
        messages, self._held = self._held[:max_messages], self._held[max_messages:]
        room = max_messages - len(messages)
        consume = self._consumer.consume
        self._polling = True
        try:
            if room > 0:
                got = consume(num_messages=room, timeout=0)
                if not got and not messages and timeout_s > 0:
                    got = consume(num_messages=1, timeout=timeout_s)
                    if got and room > 1:
                        got.extend(consume(num_messages=room - 1, timeout=0))
                messages.extend(got)
        finally:
            self._polling = False
            self._last_poll = time.monotonic()
        out: list[SourceMessage] = []
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.fatal() or error.code() == KafkaError._FATAL:
                    # librdkafka hands a fatal error over as _FATAL, the cause only in words.
                    if "fenced" in error.str().lower():
                        raise Fenced(f"a newer member took this one's group.instance.id: {error}")
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", error)
                continue
            kind, stamp = msg.timestamp()
            out.append(
                SourceMessage(
                    value=msg.value() or b"",
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    timestamp_ms=stamp if kind != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
                    key=msg.key(),
                )
            )
        self._maybe_refresh_lag()
        return out

    def offsets_after(self, messages: Sequence[SourceMessage]) -> list[TopicPartition]:
        """Per partition still assigned: the highest offset + 1 of ``messages``."""
        return [
            TopicPartition(topic, partition, offset + 1)
            for (topic, partition), offset in _highest_offsets(messages).items()
            if (topic, partition) in self._assigned
        ]

    def group_metadata(self) -> object:
        """The group generation a transaction's offsets are committed under (KIP-447)."""
        return self._consumer.consumer_group_metadata()

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        """Store then commit, per partition, the highest offset + 1 of ``messages``."""
        offsets = self.offsets_after(messages)
        if not offsets:
            return  # partitions already gone: their new owner redoes the work
        self._consumer.store_offsets(offsets=offsets)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self._consumer.commit(asynchronous=False)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError._NO_OFFSET:
                    return
                if attempt == COMMIT_ATTEMPTS or not error.retriable():
                    # Outputs are acknowledged; a lost commit costs duplicates, never data.
                    log.warning("commit failed (the batch may be delivered again): %s", error)
                    return
                time.sleep(0.2 * attempt)

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        lowest: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            lowest[key] = min(lowest.get(key, m.offset), m.offset)
        rewound = {key: offset for key, offset in lowest.items() if key in self._assigned}
        # held by keep_alive, after these: fetched again from the new position
        self._drop_held(lambda t, p, o: (t, p) in rewound and o >= rewound[(t, p)])
        for (topic, partition), offset in rewound.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    def keep_alive(self) -> None:
        """Keep the group membership alive while the batch in hand waits (for the schema
        registry), consuming nothing. Called from that wait (every second or so), it polls
        once the last poll is half of ``max.poll.interval.ms`` ago, so a rebalance that
        comes during a short wait still waits for the batch to be finished (the revoke
        hook), as it would without this.

        librdkafka drops a member that has not polled for ``max.poll.interval.ms``, and its
        partitions, with the waiting batch uncommitted, go to another member (or back to
        this one) that publishes the batch again. So: the assigned partitions are paused
        and the consumer polled; the next ``poll`` resumes them, and fetching goes on from
        the application's position (after the last message handed out). A message the
        poll returns anyway (fetched before the pause took effect) is held, not lost: the
        next ``poll`` hands it out first. Offsets are neither stored nor committed here.

        A rebalance callback run by this poll only forgets the partitions that go: the
        revoke hook (finish the batch in hand) is not called, since the batch in hand is
        the one waiting, halfway through its steps, and the batch sent before it (overlap)
        has to commit or rewind in the loop's own order, with the waiting one. What they
        hold for the partitions that left is not committed; the new owner does it again
        (duplicates, never a loss). Called from inside a rebalance callback or a poll (the
        revoke hook waiting for the registry), this does nothing: librdkafka is busy there.
        """
        if self._polling or time.monotonic() - self._last_poll < self._keep_alive_after_s:
            return
        self._polling = self._keeping_alive = True
        try:
            self._pause_assigned()
            message = self._consumer.poll(0)
            if message is not None:
                self._held.append(message)  # errors too: the next poll reports them
            self._pause_assigned()  # any assigned by that poll
        except Exception as exc:  # never into the decoder that waits: that would dead-letter
            log.warning("consumer keep-alive poll failed: %s", exc)
        finally:
            self._polling = self._keeping_alive = False
            self._last_poll = time.monotonic()

    def _pause_assigned(self) -> None:
        """Pause every assigned partition, again too (one given back by a rebalance may
        come unpaused); say so for those not paused yet."""
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        if not partitions:
            return
        self._consumer.pause(partitions)
        fresh = [p for p in partitions if (p.topic, p.partition) not in self._paused]
        self._paused.update((p.topic, p.partition) for p in partitions)
        if fresh:
            log.info("paused %s while the batch in hand waits", _names(fresh))

    def _resume(self) -> None:
        """Resume what ``keep_alive`` paused and is assigned; the rest waits until it is
        assigned again (librdkafka may keep a partition paused across a reassignment)."""
        partitions = [TopicPartition(t, p) for t, p in sorted(self._paused & self._assigned)]
        if not partitions:
            return
        try:
            self._consumer.resume(partitions)
        except KafkaException as exc:
            log.warning(
                "could not resume %s (retried at the next poll): %s", _names(partitions), exc
            )
            return
        self._paused.difference_update((p.topic, p.partition) for p in partitions)
        log.info("resumed %s", _names(partitions))

    def _drop_held(self, drop: Callable[[str, int, int], bool]) -> None:
        """Forget held messages (``drop(topic, partition, offset)``): fetched again, or
        another member's now; a held error stays (it belongs to no partition's position)."""
        if self._held:
            self._held = [
                m
                for m in self._held
                if m.error() is not None or not drop(m.topic(), m.partition(), m.offset())
            ]

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def ready(self) -> bool:
        return bool(self._assigned) and self.reachable()

    def reachable(self) -> bool:
        """After librdkafka reported every broker down, the cluster counts as unreachable
        until a metadata request (at most every few seconds) is answered again."""
        if self._brokers_down_since is not None:
            now = time.monotonic()
            if now >= self._reachability_due:
                self._reachability_due = now + REACHABILITY_RETRY_S
                try:
                    self._consumer.list_topics(timeout=REACHABILITY_TIMEOUT_S)
                    self._brokers_down_since = None
                    log.info("consumer: the cluster answers again")
                except KafkaException:
                    pass
        return self._brokers_down_since is None

    def _on_client_error(self, error: KafkaError) -> None:
        self._log.error_cb(error)
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self._brokers_down_since is None:
            self._brokers_down_since = time.monotonic()
            self._reachability_due = 0.0

    def set_revoke_hook(self, hook: RevokeHook) -> None:
        self._revoke_hook = hook

    def close(self) -> None:
        """Leave the group (this triggers a last revocation, with nothing left in hand)."""
        self._polling = True
        try:
            self._consumer.close()
        finally:
            self._polling = False
        self._log.flush()

    # -- rebalances and lag ---------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((p.topic, p.partition) for p in partitions)
        self._metrics.assigned_partitions.set(len(self._assigned))
        self._lag_due = 0.0
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._keeping_alive:
            log.warning(
                "revoking %s while the batch in hand waits: its new owner redoes that work",
                _names(partitions),
            )
            self._forget(partitions)
            return
        log.info("revoking %s: finishing the batch in hand first", _names(partitions))
        if self._revoke_hook is not None:
            self._revoke_hook()
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (not revoked): commits would fail; the new owner redoes uncommitted work.
        log.warning("lost %s", _names(partitions))
        self._forget(partitions)
        if self._revoke_hook is not None and not self._keeping_alive:  # see keep_alive
            self._revoke_hook()

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        self._drop_held(lambda t, p, _o: (t, p) in gone)
        for p in partitions:
            self._assigned.discard((p.topic, p.partition))
            if multiprocess_enabled():
                continue  # no label removal there; the new owner's value is the most recent
            with contextlib.suppress(KeyError):  # no lag reported yet for this one
                self._metrics.consumer_lag.remove(p.topic, str(p.partition))
        self._metrics.assigned_partitions.set(len(self._assigned))

    def _maybe_refresh_lag(self) -> None:
        now = time.monotonic()
        if now < self._lag_due or not self._assigned:
            return
        # Until a partition has been fetched from there is nothing to report: look again
        # soon rather than a whole refresh period later (a short stream may be done by then).
        self._lag_due = now + LAG_RETRY_S
        partitions = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        try:
            positions = self._consumer.position(partitions)
            for tp in positions:
                # Cached: the high watermark arrives with every fetch response; asking the
                # broker would queue behind the long-polling fetch on the same connection.
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), cached=True
                )
                if tp.offset == OFFSET_INVALID or tp.offset < 0 or high < 0:
                    continue  # nothing consumed or fetched yet on this partition
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - tp.offset)
                )
                self._lag_due = now + LAG_REFRESH_S
        except KafkaException as exc:
            log.debug("lag refresh skipped: %s", exc)


def _max_poll_interval_s(props: Mapping[str, object]) -> float:
    try:
        return float(str(props.get("max.poll.interval.ms", MAX_POLL_INTERVAL_MS))) / 1000.0
    except ValueError:  # librdkafka refused it already
        return MAX_POLL_INTERVAL_MS / 1000.0


def _highest_offsets(messages: Sequence[SourceMessage]) -> Mapping[tuple[str, int], int]:
    highest: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        highest[key] = max(highest.get(key, m.offset), m.offset)
    return highest


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
