"""``AvroFileSink`` appends the encoder's record bytes to real Avro container files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import avro.datafile
import avro.io
import fastavro
from stream_helpers import good_packets

from stampflow.schemas.encode import OutputEncoder
from stampflow.stream.encode_stage import encode_batch
from stampflow.stream.messages import AnnotatedAlert, SourceMessage
from stampflow.stream.pipeline import decode_batch
from stampflow.stream.sinks import AvroFileSink


def outputs(packets: list[bytes], mode: str, *, first_offset: int = 0) -> list:
    messages = [SourceMessage(p, "in", 0, first_offset + i) for i, p in enumerate(packets)]
    decoded, _ = decode_batch(messages)
    items = [AnnotatedAlert(d.message, d.alert, (), 1.0) for d in decoded]
    encoded, dead = encode_batch(items, OutputEncoder(), mode=mode, containers=False)
    assert dead == []
    return encoded


def write(directory: Path, batches: list[list], mode: str = "full") -> list[Path]:
    sink = AvroFileSink(directory, mode=mode)
    for batch in batches:
        for output in batch:
            sink.send(output, lambda reason, error: None)
        sink.wait_for_acks(beat=lambda: None, deadline=None)
    files = sink.files
    sink.close()
    return files


def read_both(path: Path) -> tuple[list[dict], list[dict]]:
    with path.open("rb") as handle:
        with_fastavro = list(fastavro.reader(handle))
    with avro.datafile.DataFileReader(path.open("rb"), avro.io.DatumReader()) as reader:
        with_avro = list(reader)
    return with_fastavro, with_avro


def test_batches_and_runs_append_to_one_file_any_reader_opens(tmp_path: Path) -> None:
    packets = good_packets(7, seed=41)
    write(tmp_path, [outputs(packets[:3], "full"), outputs(packets[3:5], "full")])
    (path,) = write(tmp_path, [outputs(packets[5:], "full")])  # a second run, same file
    expected = [fastavro_record(p)["candid"] for p in packets]
    with_fastavro, with_avro = read_both(path)
    assert [r["candid"] for r in with_fastavro] == expected
    assert [r["candid"] for r in with_avro] == expected
    assert all(r["stampflow"]["annotations"] == [] for r in with_fastavro)
    original = fastavro_record(packets[0])
    assert {k: v for k, v in with_fastavro[0].items() if k != "stampflow"} == original
    assert path.name.startswith("annotated-full-")


def test_slim_files_and_a_file_fastavro_wrote_are_appended_to(tmp_path: Path) -> None:
    packets = good_packets(4, seed=42)
    first = outputs(packets[:2], "slim")
    schema = json.loads(first[0].encoded.schema_json)
    path = tmp_path / "annotated-slim-slim.avro"
    with path.open("wb") as handle:  # as the fastavro Writer of earlier versions left it
        records = [fastavro.schemaless_reader(io.BytesIO(o.encoded.record), schema) for o in first]
        fastavro.writer(handle, schema, records)
    assert write(tmp_path, [outputs(packets[2:], "slim")], mode="slim") == [path]
    with_fastavro, with_avro = read_both(path)
    expected = [fastavro_record(p)["objectId"] for p in packets]
    assert [r["objectId"] for r in with_fastavro] == expected == [r["objectId"] for r in with_avro]


def test_a_file_of_another_schema_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "annotated-slim-slim.avro"
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    with path.open("wb") as handle:
        fastavro.writer(handle, other, [{"x": 1}])
    before = path.read_bytes()
    files = write(tmp_path, [outputs(good_packets(2, seed=43), "slim")], mode="slim")
    assert path.read_bytes() == before
    (new,) = [f for f in files if f != path]
    assert new.name.startswith("annotated-slim-slim-")
    assert len(read_both(new)[1]) == 2


def fastavro_record(packet: bytes) -> dict:
    (record,) = fastavro.reader(io.BytesIO(packet))
    return record
