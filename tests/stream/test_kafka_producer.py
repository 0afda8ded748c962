"""The shared producer, on librdkafka's mock cluster: bounded in flight, permanent errors apart."""

from __future__ import annotations

from stampflow.stream.kafka_producer import AckingProducer


def test_produce_waits_at_the_in_flight_bound() -> None:
    producer = AckingProducer(
        {"test.mock.num.brokers": 1, "linger.ms": 50, "enable.idempotence": True}, max_in_flight=5
    )
    acked: list[int] = []
    seen = []
    for i in range(60):
        producer.produce(
            "bounded", b"x" * 1000, key=None, headers=[], partition=None,
            on_ack=lambda _m, i=i: acked.append(i),
        )  # fmt: skip
        seen.append(producer.in_flight)
    producer.wait_for_acks(beat=lambda: None, deadline=None)
    assert max(seen) <= 5
    assert sorted(acked) == list(range(60))
    assert producer.in_flight == 0


def test_a_message_too_large_is_rejected_not_failed() -> None:
    producer = AckingProducer(
        {"test.mock.num.brokers": 1, "message.max.bytes": 10_000}, max_in_flight=10
    )
    acked, rejected = [], []
    for size in (100, 50_000, 200):
        producer.produce(
            "sizes", b"x" * size, key=None, headers=[], partition=None,
            on_ack=lambda _m, size=size: acked.append(size),
            on_reject=lambda error, size=size: rejected.append((size, error.name())),
        )  # fmt: skip
    producer.wait_for_acks(beat=lambda: None, deadline=None)  # no DeliveryFailed
    assert sorted(acked) == [100, 200]
    assert rejected == [(50_000, "MSG_SIZE_TOO_LARGE")]
