"""The encode stage: annotated alerts to output bytes, through the one ``OutputEncoder``.

Like decode and classify it never raises for bad input: an alert that cannot be encoded
(its writer schema already defines stampflow's names, an annotation Avro cannot hold, a
codec bug) becomes a ``DeadLetter`` at stage ``encode`` naming the alert and why, and the
rest of the batch carries on. Sinks then only move the bytes made here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.errors import PacketError
from stampflow.stream.messages import AnnotatedAlert, DeadLetter, EncodedOutput

log = logging.getLogger(__name__)

ENCODER_CRASH = "encoder_crash"


def encode_batch(
    items: Sequence[AnnotatedAlert],
    encoder: OutputEncoder,
    *,
    mode: str,
    containers: bool,
) -> tuple[list[EncodedOutput], list[DeadLetter]]:
    """Each alert's output record (plus its own container when ``containers``)."""
    outputs: list[EncodedOutput] = []
    dead: list[DeadLetter] = []
    for item in items:
        alert = item.alert
        try:
            encoded = encoder.encode_record(
                alert,
                item.annotations,
                mode=mode,
                processing_time_ms=item.processing_time_ms,
            )
            object_id = alert.object_id
        except PacketError as exc:
            where = f"alert {alert.object_id}/{alert.candid}"
            detail = exc.detail if where in exc.detail else f"{where}: {exc.detail}"
            text = f"{exc.reason}: {detail}"
            dead.append(DeadLetter(item.message, "encode", exc.reason, text, exc.field))
            continue
        except Exception as exc:  # an encoder bug must not stop the stream either
            log.exception("encoder crashed on %r", alert)
            text = f"{ENCODER_CRASH}: alert {alert.object_id}/{alert.candid}: {exc!r}"
            dead.append(DeadLetter(item.message, "encode", ENCODER_CRASH, text))
            continue
        key = object_id.encode() if isinstance(object_id, str) else None
        container = encoded.container() if containers else None
        outputs.append(EncodedOutput(item, encoded, key, container))
    return outputs, dead
