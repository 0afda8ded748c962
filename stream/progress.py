"""A progress bar for archive runs: packets done, on stderr, only when stderr is a terminal.

``CountingSource`` wraps a source and reports every committed batch (outputs and dead
letters durable), so the bar counts packets finished, not packets read ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from tqdm import tqdm

from stampflow.stream.archive_source import TAR_SUFFIXES, _is_packet_name
from stampflow.stream.messages import SourceMessage
from stampflow.stream.source import RevokeHook, Source

OnCommitted = Callable[[int], None]


class CountingSource:
    """``source`` as it is, with ``on_committed(n)`` called after each commit of n messages."""

    def __init__(self, source: Source, on_committed: OnCommitted) -> None:
        self._source = source
        self._on_committed = on_committed

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        return self._source.poll(max_messages, timeout_s)

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        self._source.commit(messages)
        self._on_committed(len(messages))

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        self._source.rewind(messages)

    @property
    def exhausted(self) -> bool:
        return self._source.exhausted

    @property
    def ready(self) -> bool:
        return self._source.ready

    def set_revoke_hook(self, hook: RevokeHook) -> None:
        self._source.set_revoke_hook(hook)

    def close(self) -> None:
        self._source.close()


def archive_total(location: str) -> int | None:
    """Packets in a directory archive (cheap to count); None for tarballs and globs, which
    would have to be read through once to know."""
    path = Path(location)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and _is_packet_name(p.name))
    if path.is_file() and not location.endswith(TAR_SUFFIXES):
        return 1
    return None


def progress_bar(total: int | None, stream: IO[str]) -> tqdm:
    """A packet counter on ``stream``, disabled unless it is a terminal (logs stay clean)."""
    isatty = getattr(stream, "isatty", None)
    return tqdm(
        total=total,
        unit="packet",
        desc="run",
        file=stream,
        disable=not (callable(isatty) and isatty()),
        dynamic_ncols=True,
    )
