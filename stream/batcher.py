"""``MicroBatcher``: closes a batch when the stream pauses, at ``max_batch`` messages, or at
``max_wait_ms``, whichever comes first.

The batch starts with its first message (waited for in slices of ``POLL_SLICE_S``). Then
the batcher keeps taking what the source has; the batch closes:

1. at ``max_batch`` messages (a busy stream, a backlog: whole batches);
2. as soon as the source has had nothing more for ``idle_ms`` (a few ms: the stream is
   quiet, so waiting would only add latency; what arrives meanwhile starts the next
   batch, while this one is processed);
3. at the latest ``max_wait_ms`` after the first message (a steady trickle that never
   pauses for ``idle_ms``).

``idle_ms=None`` leaves rule 2 out (a batch then waits the whole ``max_wait_ms`` unless it
fills). The batch being filled is held here (``pending``) so a partition revocation can take
it and finish it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stampflow.stream.messages import SourceMessage
from stampflow.stream.source import Source

# Longest single wait inside the source: bounds how late a stop request or a heartbeat is.
POLL_SLICE_S = 0.25
# How long a started batch waits for more before it closes (rule 2). librdkafka hands a
# fetch response over all at once, so a busy stream has no gap this long between messages.
IDLE_CLOSE_MS = 5


class MicroBatcher:
    def __init__(
        self,
        source: Source,
        *,
        max_batch: int,
        max_wait_ms: int,
        idle_ms: float | None = IDLE_CLOSE_MS,
    ) -> None:
        self._source = source
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000.0
        self._idle_s = None if idle_ms is None else max(0.0, idle_ms / 1000.0)
        self._pending: list[SourceMessage] = []
        self._deadline: float | None = None

    @property
    def pending(self) -> int:
        """Messages of the batch being filled."""
        return len(self._pending)

    def take_pending(self) -> list[SourceMessage]:
        """The partly filled batch, handed over (the batcher starts afresh)."""
        batch, self._pending, self._deadline = self._pending, [], None
        return batch

    def next_batch(
        self, should_stop: Callable[[], bool], beat: Callable[[], None]
    ) -> list[SourceMessage]:
        """A closed batch; may be empty after an idle poll slice or when the source ends."""
        while True:
            beat()
            if should_stop() or self._source.exhausted:
                return self.take_pending()
            now = time.monotonic()
            # A deadline is set exactly while messages are pending.
            if self._deadline is not None and now >= self._deadline:
                return self.take_pending()
            if self._deadline is None:
                wait = POLL_SLICE_S
            else:
                wait = min(POLL_SLICE_S, self._deadline - now)
                if self._idle_s is not None:
                    wait = min(wait, self._idle_s)
            room = self._max_batch - len(self._pending)
            got = self._source.poll(room, max(0.0, wait))
            if got and not self._pending:
                self._deadline = time.monotonic() + self._max_wait_s
            elif not got and self._pending and self._idle_s is not None:
                return self.take_pending()  # nothing more for idle_ms: the stream is quiet
            self._pending.extend(got)
            if len(self._pending) >= self._max_batch:
                return self.take_pending()
            if not self._pending:
                return []  # idle: let the loop look around (stop flag, health) before waiting again
