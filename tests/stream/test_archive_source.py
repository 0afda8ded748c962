"""ArchiveSource reads directories, globs and nightly tarballs (streamed), in packet order."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampflow.stream.archive_source import ArchiveError, ArchiveSource
from stampflow.training.synth import synthesise, write_archive


@pytest.fixture(scope="module")
def packets() -> list[tuple[str, bytes, dict]]:
    return synthesise(12, seed=3, broken_fraction=0.0, progress=False)


def drain(source: ArchiveSource, chunk: int = 5) -> list[bytes]:
    out = []
    while not source.exhausted:
        out.extend(m.value for m in source.poll(chunk, 0))
    return out


@pytest.mark.parametrize("tar", [False, True])
def test_directory_and_tarball_give_every_packet_in_order(
    tmp_path: Path, packets, tar: bool
) -> None:
    where = write_archive(tmp_path, packets, tar=tar)
    source = ArchiveSource(where)
    assert drain(source) == [p for _n, p, _r in packets]  # truth.jsonl is not a packet
    source.close()


def test_glob(tmp_path: Path, packets) -> None:
    write_archive(tmp_path, packets, tar=False)
    source = ArchiveSource(str(tmp_path / "*.avro"))
    assert len(drain(source)) == len(packets)


def test_rewind_delivers_the_same_messages_again(tmp_path: Path, packets) -> None:
    source = ArchiveSource(write_archive(tmp_path, packets, tar=True))
    first = source.poll(4, 0)
    source.rewind(first)
    again = source.poll(6, 0)
    assert [m.offset for m in again] == [0, 1, 2, 3, 4, 5]
    assert again[:4] == first


def test_missing_archive_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="nowhere"):
        ArchiveSource(tmp_path / "nowhere").poll(1, 0)
