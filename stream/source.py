"""What the checkpoint loop needs from any source of packets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from stampflow.stream.messages import SourceMessage

# Called by a source when partitions are taken away, before they go: the loop finishes and
# commits the batch in hand (see ``checkpoint.py``).
RevokeHook = Callable[[], None]


class Source(Protocol):
    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        """Up to ``max_messages`` messages, waiting at most ``timeout_s`` for the first."""
        ...

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        """Mark ``messages`` done (every output acknowledged): their offsets move on."""
        ...

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        """Deliver ``messages`` again (their outputs were not all acknowledged)."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when no message will ever come again (an archive read to its end)."""
        ...

    @property
    def ready(self) -> bool:
        """True when the source can deliver (Kafka: partitions assigned)."""
        ...

    def set_revoke_hook(self, hook: RevokeHook) -> None: ...

    def close(self) -> None: ...
