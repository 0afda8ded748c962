"""The commit order: offsets move only after every output and dead letter is acknowledged."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from stream_helpers import good_packets

from stampflow.stream.checkpoint import CheckpointLoop
from stampflow.stream.health import Heartbeat
from stampflow.stream.kafka_producer import DeliveryFailed
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
    label = "out"

    def __init__(self, events: list, fail_first: int = 0) -> None:
        self.events = events
        self.fail_first = fail_first

    def encode(self, item) -> bytes:
        return b"encoded"

    def send(self, item, encoded) -> None:
        self.events.append(("send", item.message.offset))

    def wait_for_acks(self, *, beat, deadline) -> None:
        if self.fail_first:
            self.fail_first -= 1
            self.events.append(("acks", "failed"))
            raise DeliveryFailed("broker went away")
        self.events.append(("acks", "ok"))

    def take_rejected(self) -> list:
        return []

    def close(self) -> None:
        pass


class RejectingSink(RecordingSink):
    """Refuses the alert from offset 1 for good, as a broker does with a too-large record."""

    def send(self, item, encoded) -> None:
        super().send(item, encoded)
        if item.message.offset == 1:
            self.rejected = [(item, "msg_size_too_large", "Broker: Message size too large")]

    def take_rejected(self) -> list:
        rejected, self.rejected = getattr(self, "rejected", []), []
        return rejected


class RecordingDeadLetters(RecordingSink):
    def send(self, dead) -> None:
        self.events.append(("dead", dead.message.offset))


def make_loop(values, events, *, fail_first=0, max_batch=3) -> CheckpointLoop:
    return CheckpointLoop(
        source=ListSource(values, events),
        sink=RecordingSink(events, fail_first),
        dead_letters=RecordingDeadLetters(events),
        classifiers=[],
        metrics=DaemonMetrics(CollectorRegistry()),
        heartbeat=Heartbeat(),
        max_batch=max_batch,
        max_wait_ms=50,
        drain_timeout_s=5,
    )


def test_each_batch_is_acknowledged_before_its_commit_and_before_the_next_poll() -> None:
    events: list = []
    good = good_packets(4)
    totals = make_loop([good[0], b"", good[1], good[2], good[3]], events).run()
    assert events == [
        ("poll", [0, 1, 2]),
        ("send", 0), ("send", 2), ("dead", 1),
        ("acks", "ok"), ("acks", "ok"),
        ("commit", 3),
        ("poll", [3, 4]),
        ("send", 3), ("send", 4),
        ("acks", "ok"), ("acks", "ok"),
        ("commit", 5),
    ]  # fmt: skip
    assert (totals.consumed, totals.published, sum(totals.dead_letters.values())) == (5, 4, 1)


def test_an_unacknowledged_batch_is_rewound_not_committed() -> None:
    events: list = []
    totals = make_loop(good_packets(2), events, fail_first=1).run()
    commits = [e for e in events if e[0] == "commit"]
    assert events.index(("rewind", [0, 1])) < events.index(commits[0])
    assert commits == [("commit", 2)]
    assert totals.rewinds == 1


def test_an_output_refused_for_good_is_dead_lettered_and_the_batch_committed() -> None:
    events: list = []
    loop = CheckpointLoop(
        source=ListSource(good_packets(3), events),
        sink=RejectingSink(events),
        dead_letters=RecordingDeadLetters(events),
        classifiers=[],
        metrics=DaemonMetrics(CollectorRegistry()),
        heartbeat=Heartbeat(),
        max_batch=3,
        max_wait_ms=50,
        drain_timeout_s=5,
    )
    totals = loop.run()
    assert events[-4:] == [("acks", "ok"), ("dead", 1), ("acks", "ok"), ("commit", 3)]
    assert totals.published == 2
    assert totals.dead_letters == {("produce", "msg_size_too_large"): 1}


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
    source = RevokingSource(good_packets(3), events)
    loop = CheckpointLoop(
        source=source,
        sink=RecordingSink(events),
        dead_letters=RecordingDeadLetters(events),
        classifiers=[],
        metrics=DaemonMetrics(CollectorRegistry()),
        heartbeat=Heartbeat(),
        max_batch=100,
        max_wait_ms=60_000,
        drain_timeout_s=5,
    )
    loop.run()
    revoked = events.index(("revoke", None))
    # The two messages in hand were produced, acknowledged and committed inside the revocation.
    assert events[revoked + 1 : revoked + 6] == [
        ("send", 0), ("send", 1), ("acks", "ok"), ("acks", "ok"), ("commit", 2)
    ]  # fmt: skip
    assert events[-1] == ("commit", 3)
