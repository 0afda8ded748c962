"""How large a message each destination topic takes, read from the broker at start-up.

A message over the limit is refused for ever, so sending it would only fail; the sinks check
each message against its topic's ``max.message.bytes`` (capped by the producer's own
``message.max.bytes``) before producing, and dead-letter (or shrink) what does not fit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from stampflow.stream.kafka_log import KafkaLog

log = logging.getLogger(__name__)

TOO_LARGE = "too_large"
# librdkafka's default message.max.bytes (the broker's topic default is 1,048,588).
PRODUCER_DEFAULT_MAX_BYTES = 1_000_000
# Room for the record batch header (61 bytes) and the record's own framing (varints of the
# lengths, attributes, timestamp and offset deltas, one pair per header).
RECORD_OVERHEAD_BYTES = 256
TOPIC_LIMIT = "max.message.bytes"


def message_size(
    value: bytes | None, key: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> int:
    """An upper bound on what one message weighs against a size limit."""
    size = RECORD_OVERHEAD_BYTES + len(value or b"") + len(key or b"")
    return size + sum(len(name) + len(data) + 10 for name, data in headers)


def producer_max_bytes(properties: Mapping[str, object]) -> int:
    return int(str(properties.get("message.max.bytes", PRODUCER_DEFAULT_MAX_BYTES)))


def topic_message_limits(
    properties: Mapping[str, str | int | bool], topics: Iterable[str], timeout_s: float = 10.0
) -> dict[str, int]:
    """Per topic: ``max.message.bytes`` capped by the producer's ``message.max.bytes``.

    A topic whose configuration cannot be read (no DescribeConfigs permission, say) gets
    the producer's cap, with a warning: the broker still refuses what is over its limit,
    and that refusal is dead-lettered too, only later.
    """
    cap = producer_max_bytes(properties)
    names = list(dict.fromkeys(topics))
    limits = dict.fromkeys(names, cap)
    # Admin clients take the producer's settings but are no transactional producer.
    skip = ("error_cb", "logger", "transactional.id")
    settings = {k: v for k, v in properties.items() if k not in skip}
    admin = AdminClient({**settings, **KafkaLog("admin", log).properties()})
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    try:
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
    except KafkaException as exc:
        log.warning("cannot read topic limits (%s): using message.max.bytes=%d", exc, cap)
        return limits
    for resource, future in futures.items():
        try:
            entry = future.result(timeout=timeout_s).get(TOPIC_LIMIT)
            if entry is not None and entry.value is not None:
                limits[resource.name] = min(cap, int(entry.value))
        except (KafkaException, ValueError, TimeoutError) as exc:
            log.warning(
                "cannot read %s of topic %r (%s): using %d", TOPIC_LIMIT, resource.name, exc, cap
            )
    log.info("message size limits: %s", limits)
    return limits


def bounded_batches(
    properties: Mapping[str, str | int | bool], limits: Mapping[str, int]
) -> dict[str, str | int | bool]:
    """``properties`` with ``batch.size`` at most the smallest topic limit.

    librdkafka packs many small messages into one record batch of up to ``batch.size``
    (1,000,000 bytes); a broker whose topic takes less refuses the whole batch, and every
    message in it would be dead-lettered as too large. A user's own ``batch.size`` is kept.
    """
    smallest = min(limits.values(), default=None)
    if smallest is None or "batch.size" in properties or smallest >= producer_max_bytes(properties):
        return dict(properties)
    return {**properties, "batch.size": smallest}
