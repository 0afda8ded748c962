"""Overlap: batch N+1 is polled and prepared while batch N's acknowledgements come in.

Offsets still move only after their outputs are acknowledged, outputs go out in order, and
a failure of the batch in flight takes the prepared one back with it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from stream_helpers import good_packets
from test_checkpoint import (
    ListSource,
    RecordingDeadLetters,
    RecordingSink,
    RecordingTransactions,
)

from stampflow.stream.health import Heartbeat
from stampflow.stream.loop import ProcessingLoop
from stampflow.stream.messages import SourceMessage
from stampflow.stream.metrics import DaemonMetrics


def overlapping_loop(source, sink, dead_letters, *, max_batch=3, commits=None, registry=None):
    return ProcessingLoop(
        source=source,
        sink=sink,
        dead_letters=dead_letters,
        classifiers=[],
        metrics=DaemonMetrics(registry or CollectorRegistry()),
        heartbeat=Heartbeat(),
        max_batch=max_batch,
        max_wait_ms=60_000,
        drain_timeout_s=5,
        commits=commits,
        overlap=True,
    )


def assert_commit_order(events: list) -> None:
    """Every commit comes after the acknowledgement of every output below its offset; no
    output is sent twice without a rewind between; sends go out in offset order."""
    unacked: set[int] = set()
    sent: list[int] = []
    for event in events:
        kind = event[0]
        if kind in ("send", "dead"):
            unacked.add(event[1])
            sent.append(event[1])
        elif event == ("acks", "ok"):
            unacked.clear()
        elif kind in ("commit", "commit transaction"):
            assert not [o for o in unacked if o < event[1]], (event, unacked)
            assert set(range(event[1])) <= set(sent), event  # everything below it was sent
        elif kind == "rewind":
            unacked.clear()
            assert sent == sorted(sent), sent
            sent = [o for o in sent if o < min(event[1])]  # those go again
    assert sent == sorted(sent), sent


def test_the_next_batch_is_prepared_before_the_last_one_is_acknowledged() -> None:
    events: list = []
    loop = overlapping_loop(
        ListSource(good_packets(7), events), RecordingSink(events), RecordingDeadLetters(events)
    )
    totals = loop.run()
    assert events == [
        ("poll", [0, 1, 2]),
        *[("send", i) for i in (0, 1, 2)],
        ("poll", [3, 4, 5]),  # polled (and classified) while 0-2 are on their way
        ("acks", "ok"),
        ("dead acks", "ok"),
        ("commit", 3),
        *[("send", i) for i in (3, 4, 5)],  # sent only after 0-2 are committed
        ("poll", [6]),
        ("acks", "ok"),
        ("dead acks", "ok"),
        ("commit", 6),
        ("send", 6),
        ("acks", "ok"),  # the source ended: the last batch is finished before run returns
        ("dead acks", "ok"),
        ("commit", 7),
    ]
    assert_commit_order(events)
    assert (totals.consumed, totals.published, totals.batches) == (7, 7, 3)


def test_a_failure_in_flight_rewinds_the_prepared_batch_with_it_and_loses_nothing() -> None:
    events: list = []
    registry = CollectorRegistry()
    loop = overlapping_loop(
        ListSource(good_packets(7), events),
        RecordingSink(events, fail_first=1),
        RecordingDeadLetters(events),
        registry=registry,
    )
    totals = loop.run()
    failed = events.index(("acks", "failed"))
    assert events[: failed + 2] == [
        ("poll", [0, 1, 2]),
        *[("send", i) for i in (0, 1, 2)],
        ("poll", [3, 4, 5]),
        ("acks", "failed"),
        ("rewind", [0, 1, 2, 3, 4, 5]),  # from the lowest offset of both batches
    ]
    assert [e for e in events if e[0] == "commit"] == [("commit", 3), ("commit", 6), ("commit", 7)]
    sends = [e[1] for e in events[failed:] if e[0] == "send"]
    assert sends == list(range(7))  # after the rewind every output goes out, in order
    assert_commit_order(events)
    assert (totals.rewinds, totals.published, totals.consumed) == (1, 7, 7)
    assert registry.get_sample_value("stampflow_rewinds_total") == 1


class BurstThenRevoke(ListSource):
    """Polls hand out ``sizes[i]`` messages; the poll numbered ``revoke_at`` revokes first."""

    def __init__(self, values, events, sizes, revoke_at) -> None:
        super().__init__(values, events)
        self.sizes, self.revoke_at, self.polls = list(sizes), revoke_at, 0

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        self.polls += 1
        if self.polls == self.revoke_at:
            self.events.append(("revoke", None))
            self.hook()
        size = self.sizes.pop(0) if self.sizes else max_messages
        return super().poll(min(size, max_messages), timeout_s)


def test_a_revocation_commits_the_batch_in_flight_first_then_the_one_in_hand() -> None:
    events: list = []
    loop = overlapping_loop(
        BurstThenRevoke(good_packets(4), events, sizes=[2, 1, 1], revoke_at=3),
        RecordingSink(events),
        RecordingDeadLetters(events),
        max_batch=2,
    )
    loop._batcher._idle_s = None  # the batch in hand closes only through the revocation
    loop.run()
    revoked = events.index(("revoke", None))
    assert events[:revoked] == [("poll", [0, 1]), ("send", 0), ("send", 1), ("poll", [2])]
    assert events[revoked + 1 : revoked + 8] == [
        ("acks", "ok"), ("dead acks", "ok"), ("commit", 2),  # in flight: 0-1
        ("send", 2), ("acks", "ok"), ("dead acks", "ok"), ("commit", 3),  # in hand: 2
    ]  # fmt: skip
    assert events[-1] == ("commit", 4)
    assert_commit_order(events)


def test_a_revocation_whose_batch_in_flight_fails_rewinds_the_one_in_hand_too() -> None:
    events: list = []
    loop = overlapping_loop(
        BurstThenRevoke(good_packets(4), events, sizes=[2, 1, 1], revoke_at=3),
        RecordingSink(events, fail_first=1),
        RecordingDeadLetters(events),
        max_batch=2,
    )
    loop._batcher._idle_s = None
    totals = loop.run()
    revoked = events.index(("revoke", None))
    assert events[revoked + 1 : revoked + 3] == [("acks", "failed"), ("rewind", [0, 1, 2])]
    assert ("send", 2) not in events[: revoked + 3]  # the batch in hand was never sent
    assert events[-1] == ("commit", 4)
    assert_commit_order(events)
    assert totals.published == 4


class StopAfterPolls(ListSource):
    def __init__(self, values, events, n: int) -> None:
        super().__init__(values, events)
        self.n, self.polls = n, 0

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        self.polls += 1
        if self.polls > self.n:
            self.loop.request_stop()
        return super().poll(max_messages, timeout_s)

    @property
    def exhausted(self) -> bool:
        return False  # a stream: only the stop ends it


def test_a_stop_finishes_the_batch_in_flight_and_the_one_in_hand() -> None:
    events: list = []
    source = StopAfterPolls(good_packets(9), events, n=2)
    loop = overlapping_loop(source, RecordingSink(events), RecordingDeadLetters(events))
    source.loop = loop
    loop.run()
    commits = [e for e in events if e[0] == "commit"]
    polled = max(o for e in events if e[0] == "poll" for o in e[1]) + 1
    assert commits[-1] == ("commit", polled)  # everything taken was committed before leaving
    assert events[-1] == commits[-1]
    assert_commit_order(events)


def test_in_a_transaction_the_next_batch_begins_only_after_the_last_commits() -> None:
    events: list = []
    dead = RecordingDeadLetters(events)
    packets = good_packets(5)
    packets[3] = b""  # a dead letter in the second batch
    loop = overlapping_loop(
        ListSource(packets, events),
        RecordingSink(events, refuse=(1,)),
        dead,
        commits=RecordingTransactions(events),
    )
    totals = loop.run()
    state = "closed"
    for event in events:  # one transaction at a time, every send inside one
        if event == ("begin",):
            assert state == "closed", events
            state = "open"
        elif event[0] in ("commit transaction", "abort"):
            assert state == "open", events
            state = "closed"
        elif event[0] in ("send", "dead"):
            assert state == "open", events
    assert [e for e in events if e[0] == "commit transaction"] == [
        ("commit transaction", 3),
        ("commit transaction", 5),
    ]
    assert events.index(("poll", [3, 4])) < events.index(("commit transaction", 3))
    assert totals.published == 3  # 1 refused for good, 3 not a packet
    assert sorted(letter.message.offset for letter in dead.letters) == [1, 3]
