"""Avro object container files, read and written by hand around fastavro's record codec.

Reading the header ourselves lets the codec cache the parsed writer schema by its bytes
(the schema is half of every ZTF packet) and decode each record with fastavro's
``schemaless_reader``; every length read from the packet is checked against what is left
(and against hard caps) before anything is allocated, so hostile bytes cannot make us
allocate gigabytes or loop for ever.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import cramjam

from stampflow.schemas.errors import PacketError

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
# Caps far above any real alert (records are 23-82 KB) but far below what a hostile length
# field could claim.
MAX_BLOCK_BYTES = 64 * 1024 * 1024
MAX_METADATA_ENTRIES = 64
SUPPORTED_CODECS = ("null", "deflate", "snappy")


@dataclass(frozen=True, slots=True)
class Block:
    """One data block: ``count`` records in ``data`` (already decompressed)."""

    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Header:
    """A container's header: the writer schema's bytes, its codec, and the sync marker."""

    schema_bytes: bytes
    codec: str
    sync: bytes
    end: int  # offset of the first data block


def read_long(data: bytes | memoryview, pos: int, what: str) -> tuple[int, int]:
    """Decode one zig-zag varint at ``pos``; return (value, next position)."""
    shift = 0
    accum = 0
    end = len(data)
    while True:
        if pos >= end:
            raise PacketError("truncated", f"packet ends inside the {what}")
        byte = data[pos]
        pos += 1
        accum |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (accum >> 1) ^ -(accum & 1), pos
        shift += 7
        if shift > 63:
            raise PacketError("corrupt", f"the {what} is not a valid Avro long")


def encode_long(value: int) -> bytes:
    """Zig-zag varint encoding of one Avro long."""
    accum = (value << 1) ^ (value >> 63)
    out = bytearray()
    while accum & ~0x7F:
        out.append((accum & 0x7F) | 0x80)
        accum >>= 7
    out.append(accum)
    return bytes(out)


def _read_bytes(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    size, pos = read_long(data, pos, f"length of {what}")
    if size < 0:
        raise PacketError("corrupt", f"negative length ({size}) for {what}")
    if pos + size > len(data):
        raise PacketError("truncated", f"{what} claims {size} bytes, {len(data) - pos} left")
    return data[pos : pos + size], pos + size


def read_header(data: bytes) -> Header:
    """Parse the container header; PacketError when it is missing or broken."""
    if not data:
        raise PacketError("empty", "the message has no bytes")
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise PacketError("truncated", f"only {len(data)} bytes of a container header")
        hint = (
            "; it starts like the Confluent wire format (magic byte 0): decode it with a registry"
            if data[0] == 0 and len(data) > 5
            else "; bare Avro records without their writer schema cannot be decoded"
        )
        raise PacketError(
            "no_container_header", "no Avro object container header (magic 'Obj\\x01')" + hint
        )
    meta: dict[str, bytes] = {}
    pos = len(MAGIC)
    while True:
        count, pos = read_long(data, pos, "header metadata count")
        if count == 0:
            break
        if count < 0:  # a negative count is followed by the block's size in bytes
            count = -count
            _, pos = read_long(data, pos, "header metadata block size")
        if len(meta) + count > MAX_METADATA_ENTRIES:
            raise PacketError("corrupt", f"header claims over {MAX_METADATA_ENTRIES} entries")
        for _ in range(count):
            key, pos = _read_bytes(data, pos, "a header metadata key")
            value, pos = _read_bytes(data, pos, "a header metadata value")
            meta[key.decode("utf-8", "replace")] = value
    if pos + SYNC_SIZE > len(data):
        raise PacketError("truncated", "packet ends inside the header's sync marker")
    schema = meta.get("avro.schema")
    if not schema:
        raise PacketError("corrupt", "container header has no avro.schema", field="avro.schema")
    codec = meta.get("avro.codec", b"null").decode("utf-8", "replace") or "null"
    if codec not in SUPPORTED_CODECS:
        raise PacketError(
            "unsupported_codec", f"block codec {codec!r} is not one of {SUPPORTED_CODECS}"
        )
    return Header(schema, codec, data[pos : pos + SYNC_SIZE], pos + SYNC_SIZE)


def _decompress(codec: str, raw: bytes, index: int) -> bytes:
    try:
        if codec == "null":
            return raw
        if codec == "deflate":
            inflater = zlib.decompressobj(-15)
            out = inflater.decompress(raw, MAX_BLOCK_BYTES)
            if inflater.unconsumed_tail:
                raise PacketError("corrupt", f"block {index} inflates past {MAX_BLOCK_BYTES} bytes")
            return out
        # snappy: raw snappy data followed by the big-endian CRC32 of the uncompressed bytes.
        body, crc = raw[:-4], raw[-4:]
        size = _snappy_length(body)
        if size > MAX_BLOCK_BYTES:
            raise PacketError("corrupt", f"block {index} claims {size} uncompressed bytes")
        out = bytes(cramjam.snappy.decompress_raw(body))
    except PacketError:
        raise
    except Exception as exc:  # zlib.error, cramjam's DecompressionError
        raise PacketError("corrupt", f"block {index} does not decompress ({codec}): {exc}") from exc
    if len(crc) != 4 or zlib.crc32(out) != int.from_bytes(crc, "big"):
        raise PacketError("corrupt", f"block {index} fails its snappy CRC32 check")
    return out


def _snappy_length(body: bytes) -> int:
    """Snappy's uncompressed-length preamble (a plain varint), checked before decompressing."""
    value = 0
    for shift, byte in zip(range(0, 35, 7), body, strict=False):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
    raise PacketError("corrupt", "snappy block has no valid length preamble")


def iter_blocks(data: bytes, header: Header) -> Iterator[Block]:
    """Yield the data blocks after ``header``; PacketError on a broken or truncated block."""
    pos = header.end
    index = 0
    while pos < len(data):
        count, pos = read_long(data, pos, f"record count of block {index}")
        size, pos = read_long(data, pos, f"byte size of block {index}")
        if count <= 0 or size < 0 or size > MAX_BLOCK_BYTES or count > max(size, 1):
            raise PacketError(
                "corrupt", f"block {index} has an impossible shape ({count} records, {size} bytes)"
            )
        if pos + size + SYNC_SIZE > len(data):
            raise PacketError(
                "truncated",
                f"block {index} claims {size} bytes plus sync, {len(data) - pos} left",
            )
        raw = data[pos : pos + size]
        pos += size
        if data[pos : pos + SYNC_SIZE] != header.sync:
            raise PacketError("corrupt", f"block {index} is not followed by the sync marker")
        pos += SYNC_SIZE
        yield Block(count, _decompress(header.codec, raw, index))
        index += 1


def header_prefix(schema_json: bytes, codec: str = "null") -> bytes:
    """A container header up to (without) its sync marker: cached once per schema."""
    out = bytearray(MAGIC)
    out += encode_long(2)
    for key, value in ((b"avro.schema", schema_json), (b"avro.codec", codec.encode())):
        out += encode_long(len(key)) + key + encode_long(len(value)) + value
    out += encode_long(0)
    return bytes(out)


def header_bytes(schema_json: bytes, sync: bytes, codec: str = "null") -> bytes:
    """The whole header of a container holding ``schema_json``, ending in ``sync``."""
    return header_prefix(schema_json, codec) + sync


def single_block(header: bytes, sync: bytes, body: bytes, count: int = 1) -> bytes:
    """A whole uncompressed container: cached header plus one block of ``count`` records."""
    return b"".join((header, encode_long(count), encode_long(len(body)), body, sync))


def new_sync() -> bytes:
    """A fresh random sync marker (one per written header)."""
    return os.urandom(SYNC_SIZE)
