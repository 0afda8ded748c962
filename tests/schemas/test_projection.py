"""Decoding without the history (``skip_history``): the same candidate and stamps, the same
published output, on every real packet."""

from __future__ import annotations

import io
import json

import fastavro
import numpy as np
import pytest
from fastavro.utils import generate_many

from stampflow.schemas import projection
from stampflow.schemas.alert import STAMP_FIELDS
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.avsc import input_alert_schema
from stampflow.schemas.codec import decode_alert, decode_packet
from stampflow.schemas.container import header_prefix, new_sync, single_block
from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.errors import PacketError
from stampflow.schemas.projection import HISTORY_FIELDS, full_record
from stampflow.schemas.registry import rubin_versions
from stampflow.stream.source import SurveyDecoder

from .helpers import alert_record

ANNOTATIONS = [Annotation("blend", "1.0.0", "single", {"single": 0.9, "blend": 0.1}, 0.02)]


def _without_history(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in HISTORY_FIELDS}


def _read(container: bytes) -> list[dict]:
    return list(fastavro.reader(io.BytesIO(container)))


# Some real ZTF stamps pad the SIMPLE card oddly; the stamp decoder's fallback warns.
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_projected_decode_has_the_candidate_and_stamps_of_the_full_one(ztf_packets):
    with_history = 0
    for name, data in ztf_packets.items():
        full = decode_packet(data)
        lean = decode_packet(data, skip_history=True)
        assert lean.error is None and len(lean.alerts) == len(full.alerts), name
        for whole, projected in zip(full.alerts, lean.alerts, strict=True):
            assert projected.record == _without_history(whole.record), name
            assert list(projected.record) == list(_without_history(whole.record)), name
            assert not set(HISTORY_FIELDS) & set(projected.record), name
            assert projected.candidate == whole.candidate, name
            assert projected.record_bytes == whole.record_bytes, name
            for which in STAMP_FIELDS:
                assert projected.has_stamp(which) == whole.has_stamp(which), (name, which)
                if whole.has_stamp(which):
                    np.testing.assert_array_equal(projected.stamp(which), whole.stamp(which))
            assert full_record(projected) == whole.record, name
            with_history += bool(whole.prv_candidates)
    assert with_history >= 50  # most real packets carry prv_candidates worth skipping


def test_published_output_of_a_projected_alert_is_the_whole_alert(ztf_packets):
    encoder = OutputEncoder(stampflow_version="9.9.9")
    for name, data in ztf_packets.items():
        (expected,) = _read(data)
        alert = decode_alert(data, skip_history=True)
        out = encoder.encode(alert, ANNOTATIONS, mode="full", processing_time_ms=1.0)
        (record,) = _read(out)
        assert record.pop("stampflow")["annotations"][0]["label"] == "single", name
        assert record == expected, name  # prv_candidates (and fp_hists) included
        assert record.get("prv_candidates") == expected.get("prv_candidates"), name


def test_re_annotating_a_projected_output_keeps_the_history(ztf_packets):
    """Our own output is re-encoded from the record dict, not spliced: the history skipped
    at decoding comes back from the record's bytes."""
    encoder = OutputEncoder(stampflow_version="9.9.9")
    data = next(d for d in ztf_packets.values() if decode_alert(d).prv_candidates)
    (expected,) = _read(data)
    first = encoder.encode(decode_alert(data), ANNOTATIONS, mode="full", processing_time_ms=1.0)
    again = decode_alert(first, skip_history=True)
    assert "prv_candidates" not in again.record
    out = encoder.encode(again, ANNOTATIONS, mode="full", processing_time_ms=2.0)
    (record,) = _read(out)
    assert record["prv_candidates"] == expected["prv_candidates"]
    assert record["stampflow"]["processingTimeMs"] == 2.0


def test_one_projection_per_writer_schema_and_none_for_rubin(ztf_packets):
    projection.projection.cache_clear()
    alerts = [decode_alert(data, skip_history=True) for data in ztf_packets.values()]
    schemas = {alert.writer_schema for alert in alerts}
    assert projection.projection.cache_info().misses == len(schemas)
    for schema in schemas:
        found = projection.projection(schema)
        assert found is not None and found.skipped[0] == "prv_candidates"
    assert any(
        found.skipped == HISTORY_FIELDS for s in schemas if (found := projection.projection(s))
    )
    sample = next(iter(rubin_versions().values())).parent / "sample_data" / "fakeAlert.avro"
    rubin = decode_packet(sample.read_bytes(), skip_history=True).alerts[0]
    assert projection.projection(rubin.writer_schema) is None
    assert full_record(rubin) is rubin.record


def test_the_daemon_decoder_skips_the_history(ztf_packets):
    data = next(d for d in ztf_packets.values() if decode_alert(d).prv_candidates)
    (alert,) = SurveyDecoder(None)(data).alerts
    assert "prv_candidates" not in alert.record
    assert alert.candidate == decode_alert(data).candidate


def _packet(schema: dict, record: dict, keep: int | None = None) -> bytes:
    """One container of one record; ``keep``: only the record's first bytes (cut short)."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    sync = new_sync()
    header = header_prefix(json.dumps(schema).encode()) + sync
    return single_block(header, sync, body.getvalue()[:keep])


def test_history_fields_apart_are_skipped_and_the_field_between_kept():
    schema = input_alert_schema()
    fields = {f["name"]: f for f in schema["fields"]}
    order = ["objectId", "prv_candidates", "candid", "fp_hists", "candidate", "cutoutScience"]
    schema["fields"] = [fields[name] for name in order]
    record = alert_record(7)
    items = fastavro.parse_schema(fields["prv_candidates"]["type"][1]["items"])
    record["prv_candidates"] = list(generate_many(items, 20))
    kept = {name: record[name] for name in order}
    data = _packet(schema, kept)
    whole = decode_alert(data)
    lean = decode_alert(data, skip_history=True)
    assert len(whole.prv_candidates) == 20
    assert lean.record == _without_history(whole.record)
    assert list(lean.record) == ["objectId", "candid", "candidate", "cutoutScience"]
    assert full_record(lean) == whole.record
    size = len(whole.record_bytes)
    for keep in (40, size // 2, size - 100):  # cut in the history, ..., in the stamp
        with pytest.raises(PacketError) as caught:
            decode_alert(_packet(schema, kept, keep), skip_history=True)
        assert caught.value.reason in ("truncated", "corrupt"), keep
