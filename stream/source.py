"""What the checkpoint loop needs from any source of packets, and how a worker decodes them.

``Source`` is the protocol of the Kafka and archive sources; ``survey_codec`` builds the
packet decoder (``SurveyDecoder``: ZTF containers and, with ``input.schema_registry``,
Confluent wire-format messages such as Rubin's) and the output encoder that go with a config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from stampflow.schemas.codec import Decoded, decode_packet
from stampflow.schemas.encode import SUBJECT_PREFIX, OutputEncoder
from stampflow.schemas.registry import RetryingRegistry, SchemaRegistry
from stampflow.stream.messages import SourceMessage

if TYPE_CHECKING:
    from stampflow.stream.config import DaemonConfig
    from stampflow.stream.metrics import DaemonMetrics

# Called by a source when partitions are taken away, before they go: the loop finishes and
# commits the batch in hand (see ``checkpoint.py``).
RevokeHook = Callable[[], None]


class Source(Protocol):
    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        """Up to ``max_messages`` messages, waiting at most ``timeout_s`` for the first."""
        ...

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        """Mark ``messages`` done (every output acknowledged): their offsets move on."""
        ...

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        """Deliver ``messages`` again (their outputs were not all acknowledged)."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when no message will ever come again (an archive read to its end)."""
        ...

    @property
    def ready(self) -> bool:
        """True when the source can deliver (Kafka: partitions assigned)."""
        ...

    def set_revoke_hook(self, hook: RevokeHook) -> None: ...

    def close(self) -> None: ...


class SurveyDecoder:
    """The decode stage's packet decoder for the daemon: ``decode_packet`` with the
    configured schema registry, wrapped in a ``RetryingRegistry`` (a registry that is down
    holds the batch back with back-off instead of dead-lettering it), counting the alerts by
    survey and schema version in ``metrics`` (``stampflow_alerts_decoded_total``). It skips
    ZTF history (``skip_history``): no classifier reads ``prv_candidates`` or ``fp_hists``,
    and the published output, made from the record's bytes, keeps them.

    ``registry`` None decodes Avro containers only (ZTF packets, Rubin sample files): a
    wire-format message is then ``no_container_header``.
    """

    def __init__(self, registry: SchemaRegistry | None, metrics: DaemonMetrics | None = None):
        self.registry = registry
        self._counter = metrics.input_metrics().decoded if metrics is not None else None

    def __call__(self, data: bytes) -> Decoded:
        decoded = decode_packet(data, registry=self.registry, skip_history=True)
        if self._counter is not None:
            for alert in decoded.alerts:
                version = alert.schema_version or "unknown"
                self._counter.labels(survey=alert.survey, schema_version=version).inc()
        return decoded


def survey_codec(
    config: DaemonConfig,
    metrics: DaemonMetrics | None = None,
    *,
    beat: Callable[[], None] | None = None,
) -> tuple[SurveyDecoder, OutputEncoder]:
    """The decoder and encoder of one worker, both on the registry ``config`` names
    (``input.schema_registry``): wire-format input decodes with it, annotated Rubin
    schemas are registered with it under ``<output.topic>-<record name>``.

    A registry that cannot be reached (at decoding or registering) is retried with back-off
    (``stampflow_schema_registry_retries_total``, ``stampflow_schema_registry_up``) while
    ``beat`` keeps the worker's heartbeat going; the batch waits, nothing is dead-lettered.
    Without a registry configured, alerts decode from Avro containers and leave as such.
    """
    settings = config.input.schema_registry
    inner = settings.open()
    registry: SchemaRegistry | None = None
    if inner is not None:
        if metrics is not None:
            found = metrics.input_metrics()
            found.registry_up.set(1)

            def retrying(seconds: float, _error: Exception) -> None:
                found.registry_retries.inc()
                found.registry_up.set(0)

            def answered() -> None:
                found.registry_up.set(1)

        registry = RetryingRegistry(
            inner,
            on_retry=retrying if metrics is not None else None,
            on_answer=answered if metrics is not None else None,
            beat=beat,
        )
    prefix = config.output.topic if config.kafka_mode else SUBJECT_PREFIX
    encoder = OutputEncoder(registry=registry, subject_prefix=prefix)
    return SurveyDecoder(registry, metrics if inner is not None else None), encoder
