"""``MicroBatcher``: closes a batch at ``max_batch`` messages or ``max_wait_ms``, whichever first.

The wait starts with the batch's first message, so a quiet stream still sees each alert out
within ``max_wait_ms`` plus processing, and a busy one fills whole batches. The batch being
filled is held here (``pending``) so a partition revocation can take it and finish it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stampflow.stream.messages import SourceMessage
from stampflow.stream.source import Source

# Longest single wait inside the source: bounds how late a stop request or a heartbeat is.
POLL_SLICE_S = 0.25


class MicroBatcher:
    def __init__(self, source: Source, *, max_batch: int, max_wait_ms: int) -> None:
        self._source = source
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000.0
        self._pending: list[SourceMessage] = []
        self._deadline: float | None = None

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
            wait = (
                POLL_SLICE_S if self._deadline is None else min(POLL_SLICE_S, self._deadline - now)
            )
            room = self._max_batch - len(self._pending)
            got = self._source.poll(room, max(0.0, wait))
            if got and not self._pending:
                self._deadline = time.monotonic() + self._max_wait_s
            self._pending.extend(got)
            if len(self._pending) >= self._max_batch:
                return self.take_pending()
            if not self._pending:
                return []  # idle: let the loop look around (stop flag, health) before waiting again
