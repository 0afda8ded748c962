"""``ArchiveSource``: packets from a directory, a glob, or a ZTF-style nightly ``.tar.gz``.

Tarballs are streamed member by member (``tarfile`` stream mode), never extracted to disk,
so a 70 GB night needs no more memory or disk than one packet. Packets come out in a stable
order: sorted file names for directories and globs, archive order for tarballs.
"""

from __future__ import annotations

import glob
import tarfile
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from stampflow.stream.messages import SourceMessage
from stampflow.stream.source import RevokeHook

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
# Files in a packet directory that are not packets (synth's truth table, notes).
SKIPPED_SUFFIXES = (".csv", ".jsonl", ".json", ".md", ".txt")


class ArchiveError(ValueError):
    """An archive path that cannot be read."""


class ArchiveSource:
    """Packets in order: each message's ``topic`` is the archive path, ``offset`` its index."""

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        self._packets = _iter_packets(self.location)
        self._returned: deque[SourceMessage] = deque()
        self._offset = 0
        self._done = False
        self.committed = 0  # messages committed so far (the archive's "offset")

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        out: list[SourceMessage] = []
        while self._returned and len(out) < max_messages:
            out.append(self._returned.popleft())
        while len(out) < max_messages and not self._done:
            try:
                name, data = next(self._packets)
            except StopIteration:
                self._done = True
                break
            out.append(SourceMessage(data, self.location, 0, self._offset, None, name.encode()))
            self._offset += 1
        return out

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        self.committed += len(messages)

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        self._returned.extendleft(reversed(messages))

    @property
    def exhausted(self) -> bool:
        return self._done and not self._returned

    @property
    def ready(self) -> bool:
        return True

    def set_revoke_hook(self, hook: RevokeHook) -> None:
        return  # nothing is ever revoked from an archive

    def close(self) -> None:
        self._packets.close()


def _iter_packets(location: str) -> Iterator[tuple[str, bytes]]:
    path = Path(location)
    if path.is_file() and location.endswith(TAR_SUFFIXES):
        yield from _iter_tar(path)
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is_packet_name(p.name))
        for file in files:
            yield file.name, file.read_bytes()
    elif path.is_file():
        yield path.name, path.read_bytes()
    else:
        matches = sorted(glob.glob(location))
        if not matches:
            raise ArchiveError(f"archive {location!r}: no such file, directory or glob match")
        for match in matches:
            if Path(match).is_file():
                yield Path(match).name, Path(match).read_bytes()


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or not _is_packet_name(member.name):
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"archive {path}: cannot read the tarball: {exc}") from exc


def _is_packet_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and not base.endswith(SKIPPED_SUFFIXES)


def check_archive(location: str | Path) -> None:
    """Fail early, naming the path, when ``location`` matches nothing."""
    text = str(location)
    if not Path(text).exists() and not glob.glob(text):
        raise ArchiveError(f"archive {text!r}: no such file, directory or glob match")
