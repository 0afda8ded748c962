"""Input packets in stampflow's own schema (``alert.avsc``), for simulators and tests."""

from __future__ import annotations

import io
import json
from functools import cache
from typing import Any

import fastavro

from stampflow.schemas.avsc import input_alert_schema
from stampflow.schemas.container import header_prefix, new_sync, single_block

SCHEMA_VERSION = "4.02"
PUBLISHER = "stampflow"
# The candidate's non-nullable fields, with values a real mid-2024 ZTF r-band detection of a
# ~18 mag point source would carry; everything nullable defaults to null.
_CANDIDATE_DEFAULTS: dict[str, Any] = {
    "jd": 2460500.5,
    "fid": 2,
    "pid": 0,
    "programid": 1,
    "candid": 0,
    "isdiffpos": "t",
    "ra": 180.0,
    "dec": 30.0,
    "magpsf": 18.0,
    "sigmapsf": 0.05,
    "ranr": 180.0,
    "decnr": 30.0,
    "ndethist": 1,
    "ncovhist": 1,
    "nmtchps": 0,
    "rfid": 0,
    "jdstartref": 2458200.5,
    "jdendref": 2458300.5,
    "nframesref": 15,
    "rbversion": "t17_f5_c3",
    "nmatches": 0,
    "drbversion": "d6_m7",
}


@cache
def _writer() -> tuple[Any, bytes]:
    schema = input_alert_schema()
    header = header_prefix(json.dumps(schema, separators=(",", ":")).encode())
    return fastavro.parse_schema(schema), header


@cache
def _candidate_fields() -> tuple[str, ...]:
    schema = input_alert_schema()
    candidate = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
    return tuple(field["name"] for field in candidate["fields"])


def minimal_candidate(**fields: Any) -> dict[str, Any]:
    """A complete 4.02 candidate record: ``fields`` over sensible defaults, the rest null."""
    unknown = set(fields) - set(_candidate_fields())
    if unknown:
        raise ValueError(f"not ZTF 4.02 candidate fields: {sorted(unknown)}")
    candidate: dict[str, Any] = dict.fromkeys(_candidate_fields())
    candidate.update(_CANDIDATE_DEFAULTS)
    candidate.update(fields)
    return candidate


def write_alert_packet(record: dict[str, Any]) -> bytes:
    """One Avro object container (null codec) holding ``record`` under ``alert.avsc``.

    ``record`` needs ``objectId``, ``candid`` and ``candidate`` (see ``minimal_candidate``);
    ``schemavsn`` and ``publisher`` default to "4.02" and "stampflow", and the optional fields
    (previous candidates, cutouts, ``cutoutMultiband``) to null. Cutouts are
    ``{"fileName": str, "stampData": encode_stamp(array)}``; the multiband record is
    ``{"filters": [...], "pixelScale": [...], "stampData": [encode_stamp(...), ...]}``.
    """
    parsed, header = _writer()
    full = {
        "schemavsn": SCHEMA_VERSION,
        "publisher": PUBLISHER,
        "prv_candidates": None,
        "fp_hists": None,
        "cutoutScience": None,
        "cutoutTemplate": None,
        "cutoutDifference": None,
        "cutoutMultiband": None,
        **record,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, full)
    sync = new_sync()
    return single_block(header + sync, sync, body.getvalue())
