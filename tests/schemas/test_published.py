"""The published output schemas: what the encoder writes, and compatible version to version."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from stampflow.schemas import published
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import decode_alert
from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.packets import minimal_candidate, write_alert_packet


@pytest.mark.parametrize("kind", published.KINDS)
def test_the_encoder_writes_the_latest_published_version(kind):
    latest = published.versions(kind)[-1]
    assert published.published(kind, latest)["version"] == latest
    assert published.canonical(published.current(kind)) == published.canonical(
        published.published(kind, latest)
    ), f"{kind}.avsc changed: publish it as a new version ({kind}-X.Y.avsc) first"


@pytest.mark.parametrize("kind", published.KINDS)
def test_every_version_reads_the_others_data(kind):
    schemas = [published.published(kind, v) for v in published.versions(kind)]
    schemas.append(published.current(kind))
    for old, new in zip(schemas, schemas[1:], strict=False):
        assert published.problems(old, new) == [], "backward: new readers read old data"
        assert published.problems(new, old) == [], "forward: old readers read new data"


def _with(schema: dict, **field: object) -> dict:
    changed = json.loads(json.dumps(schema))
    changed["fields"].append(field)
    return changed


def test_the_check_catches_breaking_changes():
    info = published.current("annotation")
    required = _with(info, name="score", type="double")
    assert "No default value for field score" in published.problems(info, required)[0]
    assert published.problems(required, info) == []  # old data lacks it: only new readers fail
    optional = _with(info, name="score", type=["null", "double"], default=None)
    assert published.problems(info, optional) == published.problems(optional, info) == []
    retyped = json.loads(json.dumps(info))
    retyped["fields"][1]["type"] = "string"  # processingTimeMs: double -> string
    assert published.problems(info, retyped) and published.problems(retyped, info)
    with pytest.raises(ValueError, match="no published slim schema '0.1'"):
        published.published("slim", "0.1")


def test_published_schemas_read_real_output():
    record = {
        "objectId": "ZTF24abcdefg",
        "candid": 1,
        "candidate": minimal_candidate(jd=2460500.6, fid=1, candid=1, ra=1.0, dec=2.0, magpsf=18),
    }
    alert = decode_alert(write_alert_packet(record))
    encoder = OutputEncoder()
    verdict = Annotation("blend", "2.0.0", "blend", {"blend": 0.9, "single": 0.1}, 0.02, True)
    slim_bytes = encoder.encode(alert, [verdict], mode="slim", processing_time_ms=2.0)
    reader = published.published("slim", published.versions("slim")[-1])
    (read,) = fastavro.reader(io.BytesIO(slim_bytes), reader_schema=reader)
    assert read["stampflow"]["annotations"][0]["label"] == "blend"

    full = fastavro.reader(io.BytesIO(encoder.encode(alert, [verdict], processing_time_ms=2.0)))
    field = next(f for f in full.writer_schema["fields"] if f["name"] == "stampflow")
    info = published.published("annotation", published.versions("annotation")[-1])
    assert field["type"][0] == "null" and published.canonical(field["type"][1]) == (
        published.canonical(info)
    )
