"""A dead letter always gets out: one too large for its topic goes without its payload."""

from __future__ import annotations

import hashlib

import pytest
from confluent_kafka import KafkaError
from kafka_broker import create_topic, delete_topics

from stampflow.stream.dead_letters import KafkaDeadLetters
from stampflow.stream.kafka_producer import DeliveryFailed
from stampflow.stream.messages import DeadLetter, SourceMessage
from stampflow.stream.topic_limits import bounded_batches, topic_message_limits


class FakeProducer:
    """Records what is produced; refuses (for good) values over ``refuse_over`` bytes."""

    def __init__(self, refuse_over: int) -> None:
        self.refuse_over = refuse_over
        self.produced: list[tuple[bytes, dict]] = []
        self.pending: list = []

    def partition_count(self, topic: str) -> int:
        return 1

    def produce(self, topic, value, *, key, headers, partition, on_ack, on_reject=None) -> None:
        self.produced.append((value, dict(headers)))
        self.pending.append((len(value) > self.refuse_over, on_ack, on_reject))

    def wait_for_acks(self, *, beat, deadline) -> None:
        pending, self.pending = self.pending, []
        for refused, on_ack, on_reject in pending:
            if refused:
                on_reject(
                    KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
                )
            else:
                on_ack(None)


def letter(size: int) -> DeadLetter:
    value = bytes(range(256)) * (size // 256)
    return DeadLetter(
        SourceMessage(value, "in", 2, 41, 1_700_000_000_000, b"k"), "produce", "too_large", "x"
    )


def test_a_letter_over_the_topic_limit_goes_without_payload_at_once() -> None:
    producer = FakeProducer(refuse_over=10**9)
    sink = KafkaDeadLetters(producer, "dead", max_message_bytes=50_000)
    big, small = letter(60_000), letter(1_000)
    sink.send(big)
    sink.send(small)
    sink.wait_for_acks(beat=lambda: None, deadline=None)
    (value, headers), (small_value, small_headers) = producer.produced
    assert value == b"" and small_value == small.message.value
    assert headers["stampflow.payload"] == b"omitted"
    assert int(headers["stampflow.source.size"]) == len(big.message.value)
    assert (
        headers["stampflow.source.sha256"] == hashlib.sha256(big.message.value).hexdigest().encode()
    )
    assert (headers["stampflow.source.partition"], headers["stampflow.source.offset"]) == (
        b"2",
        b"41",
    )
    assert headers["stampflow.reason"] == b"too_large" and headers["stampflow.stage"] == b"produce"
    assert "stampflow.payload" not in small_headers


def test_a_letter_the_broker_refuses_goes_again_without_payload() -> None:
    producer = FakeProducer(refuse_over=5_000)  # the broker's limit is lower than we read
    sink = KafkaDeadLetters(producer, "dead", max_message_bytes=1_000_000)
    sink.send(letter(20_000))
    sink.wait_for_acks(beat=lambda: None, deadline=None)  # no DeliveryFailed: it got out
    (first, _), (second, headers) = producer.produced
    assert first == letter(20_000).message.value  # tried in full first
    assert second == b"" and headers["stampflow.payload"] == b"omitted"
    assert b"MSG_SIZE_TOO_LARGE" in headers["stampflow.payload.omitted"]


def test_a_letter_refused_even_without_payload_fails_the_batch() -> None:
    producer = FakeProducer(refuse_over=-1)  # refuses everything, even empty values
    sink = KafkaDeadLetters(producer, "dead", max_message_bytes=1_000_000)
    sink.send(letter(1_000))
    with pytest.raises(DeliveryFailed, match="even without its payload"):
        sink.wait_for_acks(beat=lambda: None, deadline=None)


@pytest.mark.integration
def test_topic_limits_come_from_the_broker_capped_by_the_producer(
    kafka_bootstrap, make_topic
) -> None:
    plain = make_topic("plain")
    small = create_topic(kafka_bootstrap, f"small-{plain}", config={"max.message.bytes": "200000"})
    try:
        limits = topic_message_limits({"bootstrap.servers": kafka_bootstrap}, [plain, small])
        assert limits == {plain: 1_000_000, small: 200_000}  # 1,048,588 capped by the producer
        raised = {"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 5_000_000}
        assert topic_message_limits(raised, [plain])[plain] == 1_048_588
    finally:
        delete_topics(kafka_bootstrap, [small])


def test_producer_batches_stay_within_the_smallest_topic_limit() -> None:
    assert bounded_batches({"linger.ms": 5}, {"out": 200_000, "dead": 1_000_000}) == {
        "linger.ms": 5,
        "batch.size": 200_000,
    }
    assert "batch.size" not in bounded_batches({}, {"out": 1_000_000, "dead": 1_000_000})
    assert bounded_batches({"batch.size": 50}, {"out": 200_000})["batch.size"] == 50
