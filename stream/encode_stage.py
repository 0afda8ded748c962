"""The encode stage: annotated alerts to output bytes, through the one ``OutputEncoder``.

Like decode and classify it never raises for bad input: an alert that cannot be encoded
(its writer schema already defines stampflow's names, an annotation Avro cannot hold, a
codec bug) becomes a ``DeadLetter`` at stage ``encode`` naming the alert and why, and the
rest of the batch carries on. Sinks then only move the bytes made here.

With ``containers`` (the Kafka sink) each output's message value is made here too:
``OutputEncoder.message``, one Avro container, or for a Rubin alert in full mode with a
schema registry the Confluent wire format under its annotated schema's registered id. A
registry that cannot be reached while registering is retried by the encoder's
``RetryingRegistry`` (the daemon's); a bare registry's ``RegistryUnavailable`` is raised,
never turned into a dead letter: the alert is fine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stampflow.schemas.encode import OutputEncoder, describe
from stampflow.schemas.errors import PacketError
from stampflow.schemas.registry import RegistryUnavailable
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
            container = encoder.message(encoded) if containers else None
        except RegistryUnavailable:
            raise
        except PacketError as exc:
            where = describe(alert)
            detail = exc.detail if where in exc.detail else f"{where}: {exc.detail}"
            text = f"{exc.reason}: {detail}"
            dead.append(DeadLetter(item.message, "encode", exc.reason, text, exc.field))
            continue
        except Exception as exc:  # an encoder bug must not stop the stream either
            log.exception("encoder crashed on %r", alert)
            text = f"{ENCODER_CRASH}: {describe(alert)}: {exc!r}"
            dead.append(DeadLetter(item.message, "encode", ENCODER_CRASH, text))
            continue
        # The Kafka key: the object (ZTF objectId; Rubin diaObjectId or ssObjectId, as text).
        key = None if object_id is None else str(object_id).encode()
        outputs.append(EncodedOutput(item, encoded, key, container))
    return outputs, dead
