"""The broker fixtures give the tests a real Apache Kafka broker that keeps its data."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer
from kafka_broker import KAFKA_SH, LocalKafka, create_topic

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for index, value in enumerate(values):
        producer.produce(topic, value, partition=index % 2)
    assert producer.flush(30) == 0, "messages still unacknowledged after 30 s"


def consume(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_produce_and_consume_through_session_broker(kafka_bootstrap, make_topic):
    topic = make_topic("smoke", partitions=2)
    sent = [f"alert-{i}".encode() for i in range(50)]
    produce(kafka_bootstrap, topic, sent)
    received = consume(kafka_bootstrap, topic, len(sent), group=f"{topic}-reader")
    assert sorted(received) == sorted(sent)


def test_make_topic_creates_requested_partitions(kafka_admin, make_topic):
    topic = make_topic("parts", partitions=3)
    metadata = kafka_admin.list_topics(topic, timeout=10)
    assert sorted(metadata.topics[topic].partitions) == [0, 1, 2]


def test_restarted_broker_keeps_messages_and_offsets(restartable_kafka):
    broker = restartable_kafka
    create_topic(broker.bootstrap, "survives", partitions=2)
    produce(broker.bootstrap, "survives", [f"before-{i}".encode() for i in range(20)])
    # The group reads (and commits) the first 20 before the outages.
    assert len(consume(broker.bootstrap, "survives", 20, group="reader")) == 20

    # A controlled shutdown, then a crash: same address and same data after each.
    for outage, kill in (("stop", False), ("kill", True)):
        pending = [f"{outage}-{i}".encode() for i in range(10)]
        produce(broker.bootstrap, "survives", pending)
        broker.stop(kill=kill)
        assert not broker.running()
        broker.start()
        resumed = consume(broker.bootstrap, "survives", len(pending), group="reader")
        assert sorted(resumed) == sorted(pending), f"after {outage}"

    everything = consume(broker.bootstrap, "survives", 40, group="fresh-reader")
    assert len(everything) == 40


def test_missing_jars_give_a_clear_error(tmp_path, monkeypatch):
    import kafka_broker

    monkeypatch.setattr(kafka_broker, "KAFKA_LIB", tmp_path / "no-jars")
    with pytest.raises(kafka_broker.KafkaUnavailable, match="make kafka-jars"):
        LocalKafka(tmp_path / "kafka").start()


def test_start_failure_reports_the_broker_log(tmp_path):
    # A port already taken by another listener makes the broker exit during start-up.
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = LocalKafka(tmp_path / "kafka", port=taken.getsockname()[1], start_timeout_s=60)
        with pytest.raises(Exception, match="failed to start") as failure:
            broker.start()
    assert "kafka.log" in str(failure.value)
    assert KAFKA_SH.exists()
