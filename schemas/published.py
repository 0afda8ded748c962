"""stampflow's published output schemas, by version, and the compatibility check they obey.

``annotation-<version>.avsc`` is the ``stampflow`` block (``stampflow.StampflowInfo``);
``slim-<version>.avsc`` the slim record, self-contained. ``annotation.avsc`` and ``slim.avsc``
are what the encoder writes now; they must equal the latest published version (docs aside)
and every version must be fully compatible with the one before it (see ``problems``): a
consumer on 1.x reads data of any other 1.x version.
"""

from __future__ import annotations

import io
import json
import re
from functools import cache
from importlib.resources import files
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form
from fastavro.utils import generate_many

from stampflow.schemas.avsc import slim_schema, stampflow_info_schema

KINDS = ("annotation", "slim")
_FILE = re.compile(r"(?P<kind>[a-z]+)-(?P<version>\d+\.\d+)\.avsc")
SAMPLES = 200  # random records per direction: every union branch and optional field is hit


def versions(kind: str) -> list[str]:
    """Published versions of ``kind`` (``annotation`` or ``slim``), oldest first."""
    _check_kind(kind)
    found = [
        match["version"]
        for entry in files("stampflow.schemas").iterdir()
        if (match := _FILE.fullmatch(entry.name)) and match["kind"] == kind
    ]
    return sorted(found, key=lambda v: tuple(int(part) for part in v.split(".")))


@cache
def _published_text(kind: str, version: str) -> str:
    return files("stampflow.schemas").joinpath(f"{kind}-{version}.avsc").read_text("utf-8")


def published(kind: str, version: str) -> dict[str, Any]:
    """The published schema ``kind`` at ``version`` (a fresh dict)."""
    if version not in versions(kind):
        raise ValueError(f"no published {kind} schema {version!r}; published: {versions(kind)}")
    return json.loads(_published_text(kind, version))


def current(kind: str) -> dict[str, Any]:
    """The schema the encoder writes today."""
    _check_kind(kind)
    return stampflow_info_schema() if kind == "annotation" else slim_schema()


def canonical(schema: dict[str, Any]) -> str:
    """Avro's parsing canonical form: what decides the bytes (docs and extra keys dropped)."""
    return to_parsing_canonical_form(fastavro.parse_schema(schema, _write_hint=False))


def problems(writer: dict[str, Any], reader: dict[str, Any], *, seed: int = 0) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader``; empty when it can.

    Empirical, with fastavro's own schema resolution: ``SAMPLES`` random records valid
    under ``writer`` are written and read back with ``reader`` as the reader schema. A
    reader field the writer lacks needs a default, a type change must be an Avro promotion.
    """
    try:
        write = fastavro.parse_schema(writer, _write_hint=False)
        read = fastavro.parse_schema(reader, _write_hint=False)
    except Exception as exc:
        return [f"schema does not parse: {exc}"]
    found: list[str] = []
    for index, record in enumerate(generate_many(write, SAMPLES)):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, write, record)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, write, read)
        except Exception as exc:  # SchemaResolutionError, or a reader tripping on the bytes
            found.append(f"record {index}: {type(exc).__name__}: {exc}")
            break  # one is enough to say why
    return found


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"schema kind must be one of {KINDS}, got {kind!r}")
