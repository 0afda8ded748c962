"""MicroBatcher closes a batch at max_batch messages or max_wait_ms after its first one."""

from __future__ import annotations

import time

from stampflow.stream.batcher import MicroBatcher
from stampflow.stream.messages import SourceMessage


class TrickleSource:
    """Hands out one message per poll, forever."""

    exhausted = False
    ready = True

    def __init__(self) -> None:
        self.offset = 0

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        time.sleep(min(timeout_s, 0.01))
        self.offset += 1
        return [SourceMessage(b"x", "t", 0, self.offset)]


class FloodSource(TrickleSource):
    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        out = [SourceMessage(b"x", "t", 0, self.offset + i) for i in range(max_messages)]
        self.offset += max_messages
        return out


def never() -> bool:
    return False


def test_a_busy_stream_fills_whole_batches() -> None:
    batcher = MicroBatcher(FloodSource(), max_batch=50, max_wait_ms=60_000)
    assert [len(batcher.next_batch(never, lambda: None)) for _ in range(3)] == [50, 50, 50]


def test_a_quiet_stream_closes_batches_at_the_deadline() -> None:
    batcher = MicroBatcher(TrickleSource(), max_batch=10_000, max_wait_ms=100)
    batch = batcher.next_batch(never, lambda: None)
    assert 1 <= len(batch) < 10_000  # closed by time, not size
    offsets = [m.offset for m in batch]
    assert offsets == sorted(offsets)


def test_a_stop_request_hands_over_the_partial_batch() -> None:
    polls = []
    batcher = MicroBatcher(TrickleSource(), max_batch=10_000, max_wait_ms=60_000)

    def stop_after_three() -> bool:
        polls.append(1)
        return len(polls) > 3

    assert len(batcher.next_batch(stop_after_three, lambda: None)) == 3
    assert batcher.take_pending() == []
