"""The encode stage: the encoder's bytes, unchanged; an alert that cannot be encoded is a
dead letter naming it and why, and the rest of the batch goes on."""

from __future__ import annotations

import io

import fastavro
import pytest
from stream_helpers import good_packets, with_stampflow_field, with_stampflow_type

from stampflow.schemas import encode as encode_module
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.encode import OutputEncoder
from stampflow.stream.encode_stage import encode_batch
from stampflow.stream.messages import AnnotatedAlert, SourceMessage
from stampflow.stream.pipeline import decode_batch

ANNOTATION = Annotation("blend", "1.0", "single", {"single": 0.75, "blend": 0.25}, 0.1, False)


def annotated(packets: list[bytes]) -> list[AnnotatedAlert]:
    decoded, dead = decode_batch([SourceMessage(p, "in", 0, i) for i, p in enumerate(packets)])
    assert dead == []
    return [
        AnnotatedAlert(d.message, d.alert, (ANNOTATION,), 12.5 + i) for i, d in enumerate(decoded)
    ]


def test_kafka_containers_are_byte_for_byte_what_the_encoder_writes(monkeypatch) -> None:
    monkeypatch.setattr(encode_module, "new_sync", lambda: b"S" * 16)
    items = annotated(good_packets(3))
    encoder = OutputEncoder(stampflow_version="1.2.3")
    outputs, dead = encode_batch(items, encoder, mode="full", containers=True)
    assert dead == []
    for output, item in zip(outputs, items, strict=True):
        reference = encoder.encode_many(
            [(item.alert, item.annotations)],
            mode="full",
            processing_time_ms=item.processing_time_ms,
        )  # the container the Kafka sink published before encoding became a stage
        assert output.container == reference
        assert output.key == item.alert.object_id.encode()
        (record,) = fastavro.reader(io.BytesIO(output.container))
        assert record["stampflow"]["annotations"][0]["label"] == "single"


def test_file_outputs_carry_record_bytes_without_a_container() -> None:
    items = annotated(good_packets(2))
    outputs, _ = encode_batch(items, OutputEncoder(), mode="slim", containers=False)
    assert [o.container for o in outputs] == [None, None]
    assert {o.encoded.key for o in outputs} == {"slim"}


@pytest.mark.parametrize("poison", [with_stampflow_type, with_stampflow_field])
def test_a_schema_conflict_is_a_dead_letter_naming_the_alert(poison) -> None:
    good = good_packets(3, seed=4)
    items = annotated([good[0], poison(good[1]), good[2]])
    outputs, dead = encode_batch(items, OutputEncoder(), mode="full", containers=True)
    assert [o.message.offset for o in outputs] == [0, 2]
    (letter,) = dead
    assert (letter.stage, letter.reason, letter.message.offset) == ("encode", "schema_conflict", 1)
    alert = items[1].alert
    assert letter.error.startswith("schema_conflict: ")
    assert f"alert {alert.object_id}/{alert.candid}" in letter.error
    assert "stampflow.Annotation" in letter.error


def test_the_slim_mode_takes_a_conflicting_schema() -> None:
    items = annotated([with_stampflow_type(good_packets(1)[0])])
    outputs, dead = encode_batch(items, OutputEncoder(), mode="slim", containers=True)
    assert len(outputs) == 1 and dead == []
