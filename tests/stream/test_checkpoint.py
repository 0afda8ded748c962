"""The commit order: offsets move only after every output and dead letter is acknowledged."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from stream_helpers import good_packets

from stampflow.stream.health import Heartbeat
from stampflow.stream.kafka_producer import DeliveryFailed
from stampflow.stream.loop import ProcessingLoop
from stampflow.stream.messages import SourceMessage
from stampflow.stream.metrics import DaemonMetrics


class ListSource:
    ready = True

    def __init__(self, values: list[bytes], events: list) -> None:
        self.queue = [SourceMessage(v, "in", 0, i) for i, v in enumerate(values)]
        self.events = events

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        out, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        if out:
            self.events.append(("poll", [m.offset for m in out]))
        return out

    def commit(self, messages) -> None:
        self.events.append(("commit", max(m.offset for m in messages) + 1))

    def rewind(self, messages) -> None:
        self.events.append(("rewind", [m.offset for m in messages]))
        self.queue = list(messages) + self.queue

    @property
    def exhausted(self) -> bool:
        return not self.queue

    def set_revoke_hook(self, hook) -> None:
        self.hook = hook

    def close(self) -> None:
        pass


class RecordingSink:
    """Acknowledges on ``wait_for_acks``; fails the first ``fail_first`` waits; refuses for
    good (as a broker does a too-large record) the outputs of the offsets in ``refuse``."""

    label = "out"
    containers = True

    def __init__(self, events: list, fail_first: int = 0, refuse: tuple[int, ...] = ()) -> None:
        self.events = events
        self.fail_first = fail_first
        self.refuse = refuse
        self.unacked: list = []

    def send(self, output, on_reject) -> None:
        self.events.append(("send", output.message.offset))
        self.unacked.append((output, on_reject))

    def wait_for_acks(self, *, beat, deadline) -> None:
        unacked, self.unacked = self.unacked, []
        if self.fail_first:
            self.fail_first -= 1
            self.events.append(("acks", "failed"))
            raise DeliveryFailed("broker went away")
        for output, on_reject in unacked:
            if output.message.offset in self.refuse:
                on_reject("msg_size_too_large", "Broker: Message size too large")
        self.events.append(("acks", "ok"))

    def close(self) -> None:
        pass


class RecordingDeadLetters:
    def __init__(self, events: list) -> None:
        self.events = events
        self.letters: list = []

    def send(self, dead) -> None:
        self.events.append(("dead", dead.message.offset))
        self.letters.append(dead)

    def wait_for_acks(self, *, beat, deadline) -> None:
        self.events.append(("dead acks", "ok"))

    def close(self) -> None:
        pass


def make_loop(
    source, sink, dead_letters, *, max_batch=3, heartbeat=None, registry=None, commits=None
):
    return ProcessingLoop(
        source=source,
        sink=sink,
        dead_letters=dead_letters,
        classifiers=[],
        metrics=DaemonMetrics(registry or CollectorRegistry()),
        heartbeat=heartbeat or Heartbeat(),
        max_batch=max_batch,
        max_wait_ms=50,
        drain_timeout_s=5,
        commits=commits,
    )


def batches_of(events: list) -> list[list]:
    """The events split at each poll."""
    out: list[list] = []
    for event in events:
        if event[0] == "poll":
            out.append([])
        out[-1].append(event)
    return out


def test_each_batch_is_acknowledged_before_its_commit_and_before_the_next_poll() -> None:
    events: list = []
    good = good_packets(4)
    dead = RecordingDeadLetters(events)
    loop = make_loop(
        ListSource([good[0], b"", good[1], good[2], good[3]], events), RecordingSink(events), dead
    )
    totals = loop.run()
    first, second = batches_of(events)
    assert first[0] == ("poll", [0, 1, 2]) and second[0] == ("poll", [3, 4])
    for batch, commit in ((first, ("commit", 3)), (second, ("commit", 5))):
        assert batch[-1] == commit  # the commit ends the batch: the next poll comes after it
        sends = [i for i, e in enumerate(batch) if e[0] in ("send", "dead")]
        acks = [i for i, e in enumerate(batch) if e[0] in ("acks", "dead acks")]
        assert sends and max(sends) < min(acks)  # everything sent, then waited for
    assert ("dead", 1) in first  # the empty packet, dead-lettered within its batch
    assert dead.letters[0].reason == "empty"
    assert (totals.consumed, totals.published, sum(totals.dead_letters.values())) == (5, 4, 1)


def test_an_unacknowledged_batch_is_rewound_not_committed() -> None:
    events: list = []
    registry = CollectorRegistry()
    loop = make_loop(
        ListSource(good_packets(2), events),
        RecordingSink(events, fail_first=1),
        RecordingDeadLetters(events),
        registry=registry,
    )
    totals = loop.run()
    commits = [e for e in events if e[0] == "commit"]
    assert events.index(("rewind", [0, 1])) < events.index(commits[0])
    assert commits == [("commit", 2)]
    assert (totals.rewinds, totals.published, totals.consumed) == (1, 2, 2)  # counted once
    assert registry.get_sample_value("stampflow_rewinds_total") == 1
    assert registry.get_sample_value("stampflow_alerts_published_total", {"topic": "out"}) == 2


def test_an_output_refused_for_good_is_dead_lettered_and_the_batch_committed() -> None:
    events: list = []
    dead = RecordingDeadLetters(events)
    registry = CollectorRegistry()
    loop = make_loop(
        ListSource(good_packets(3), events),
        RecordingSink(events, refuse=(1,)),
        dead,
        registry=registry,
    )
    totals = loop.run()
    # The refusal became a dead letter, waited for, before the commit.
    assert events.index(("acks", "ok")) < events.index(("dead", 1))
    assert events[-3:] == [("dead", 1), ("dead acks", "ok"), ("commit", 3)]
    (letter,) = dead.letters
    assert (letter.stage, letter.reason, letter.message.offset) == (
        "produce",
        "msg_size_too_large",
        1,
    )
    assert "alert " in letter.error and "Message size too large" in letter.error
    assert totals.published == 2
    assert totals.dead_letters == {("produce", "msg_size_too_large"): 1}
    produce_dead = {"stage": "produce", "reason": "msg_size_too_large"}
    assert registry.get_sample_value("stampflow_dead_letters_total", produce_dead) == 1
    assert registry.get_sample_value("stampflow_alerts_published_total", {"topic": "out"}) == 2


class RevokingSource(ListSource):
    """One message per poll; the third poll revokes the partition first, as librdkafka does."""

    polls = 0

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        self.polls += 1
        if self.polls == 3:
            self.events.append(("revoke", None))
            self.hook()
        return super().poll(1, timeout_s)


def test_revocation_finishes_the_batch_in_hand() -> None:
    events: list = []
    loop = make_loop(
        RevokingSource(good_packets(3), events),
        RecordingSink(events),
        RecordingDeadLetters(events),
        max_batch=100,
    )
    loop._batcher._max_wait_s = 60.0  # the batch closes only through the revocation
    loop.run()
    revoked = events.index(("revoke", None))
    # The two messages in hand were produced, acknowledged and committed inside the revocation.
    assert events[revoked + 1 : revoked + 6] == [
        ("send", 0), ("send", 1), ("acks", "ok"), ("dead acks", "ok"), ("commit", 2)
    ]  # fmt: skip
    assert events[-1] == ("commit", 3)


class ForeverFailingSink(RecordingSink):
    def wait_for_acks(self, *, beat, deadline) -> None:
        self.events.append(("acks", "failed"))
        raise DeliveryFailed("refused for ever")


class StopAfter(ListSource):
    """Stops the loop after ``n`` polls (the source itself never ends: a rewound batch)."""

    def __init__(self, values, events, n: int) -> None:
        super().__init__(values, events)
        self.n = n

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        if sum(1 for e in self.events if e[0] == "poll") >= self.n:
            self.loop.request_stop()
            return []
        return super().poll(max_messages, timeout_s)


def test_a_batch_rewound_again_and_again_makes_the_worker_unhealthy() -> None:
    events: list = []
    heartbeat = Heartbeat(max_rewinds=3)
    registry = CollectorRegistry()
    source = StopAfter(good_packets(2), events, n=3)
    loop = make_loop(
        source, ForeverFailingSink(events), RecordingDeadLetters(events),
        heartbeat=heartbeat, registry=registry,
    )  # fmt: skip
    source.loop = loop
    loop.run()
    assert [e for e in events if e[0] == "commit"] == []
    assert registry.get_sample_value("stampflow_rewinds_total") == 3
    assert not heartbeat.healthy()
    assert "3 rewinds in a row" in heartbeat.problem()
    assert registry.get_sample_value("stampflow_stuck") == 1
    heartbeat.batch_done(committed=True)  # progress clears it
    assert heartbeat.healthy()


class RecordingTransactions:
    """Exactly-once's commit strategy, as events: begin, commit (offsets with it), abort."""

    atomic = True

    def __init__(self, events: list) -> None:
        self.events = events
        self.open = False

    def begin(self) -> None:
        if not self.open:
            self.events.append(("begin",))
            self.open = True

    def commit(self, batch, *, beat, deadline) -> None:
        self.events.append(("commit transaction", max(m.offset for m in batch) + 1))
        self.open = False

    def abort(self) -> None:
        if self.open:
            self.events.append(("abort",))
            self.open = False


def test_in_a_transaction_a_refused_output_aborts_it_and_the_rest_goes_again() -> None:
    events: list = []
    dead = RecordingDeadLetters(events)
    loop = make_loop(
        ListSource(good_packets(3), events),
        RecordingSink(events, refuse=(1,)),
        dead,
        commits=RecordingTransactions(events),
    )
    totals = loop.run()
    # One refusal fails a whole transaction: abort, then the other two outputs and the new
    # dead letter in a fresh one, acknowledged, and the offsets committed with them.
    assert events == [
        ("poll", [0, 1, 2]),
        ("begin",),
        *[("send", i) for i in range(3)],
        ("acks", "ok"),
        ("dead acks", "ok"),
        ("abort",),
        ("begin",),
        ("send", 0),
        ("send", 2),
        ("dead", 1),
        ("acks", "ok"),
        ("dead acks", "ok"),
        ("commit transaction", 3),
    ]
    assert [letter.message.offset for letter in dead.letters] == [1]
    assert totals.published == 2
    assert totals.dead_letters == {("produce", "msg_size_too_large"): 1}


def test_in_a_transaction_a_failed_delivery_aborts_and_rewinds() -> None:
    events: list = []
    loop = make_loop(
        ListSource(good_packets(2), events),
        RecordingSink(events, fail_first=1),
        RecordingDeadLetters(events),
        commits=RecordingTransactions(events),
    )
    loop.run()
    first, second = batches_of(events)
    assert first[-3:] == [("acks", "failed"), ("abort",), ("rewind", [0, 1])]
    assert second[-1] == ("commit transaction", 2)
    assert ("commit", 2) not in events  # the consumer never commits on its own
