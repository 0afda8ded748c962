"""``api.consume``: the output topic read from Python, as ``stampflow consume`` reads it."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from results_helpers import VERDICTS, annotated_containers

from stampflow import api
from stampflow.stream.results import ResultsError, annotations

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def output_topic(kafka_bootstrap: str) -> str:
    """An output topic holding four annotated records: three committed, the fourth aborted."""
    from kafka_broker import create_topic, delete_topics, unique_topic

    topic = create_topic(kafka_bootstrap, unique_topic("api-consume"), 2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    values = annotated_containers()
    producer.begin_transaction()
    for index, value in enumerate(values[:3]):
        producer.produce(topic, value, partition=index % 2)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, values[3], partition=0)  # aborted: read_committed never sees it
    producer.flush(30)
    producer.abort_transaction(30)
    yield topic
    delete_topics(kafka_bootstrap, [topic])


def verdicts(record) -> list[tuple[str, str, float, bool]]:
    return [
        (a["classifier"], a["label"], round(a["probabilities"][a["label"]], 6), a["ambiguous"])
        for a in annotations(record)
    ]


def expected(index: int) -> list[tuple[str, str, float, bool]]:
    return [
        (v.classifier, v.label, round(v.probabilities[v.label], 6), v.ambiguous)
        for v in VERDICTS[index]
    ]


def test_every_committed_record_comes_back_with_its_annotations(kafka_bootstrap, output_topic):
    started = time.monotonic()
    records = list(api.consume(kafka_bootstrap, output_topic, timeout=3))
    took = time.monotonic() - started
    assert len(records) == 3  # the aborted fourth never shows
    by_candid = sorted(records, key=lambda r: r["candid"])  # two partitions: any order
    assert [verdicts(r) for r in by_candid] == [expected(i) for i in range(3)]
    assert all(r["stampflow"]["stampflowVersion"] for r in records)
    assert "cutoutScience" in records[0]  # full records, the alert as sent
    assert 3 <= took < 30  # ended by the timeout: three seconds without a new record


def test_max_records_stops_early_and_the_records_make_a_dataframe(kafka_bootstrap, output_topic):
    started = time.monotonic()
    records = list(api.consume(kafka_bootstrap, output_topic, timeout=30, max_records=2))
    assert len(records) == 2 and time.monotonic() - started < 25  # not the 30 s timeout
    frame = api.to_dataframe(records)
    assert len(frame) == 2 and set(frame["blend_label"]) <= {"single", "blend"}


def test_from_now_on_sees_nothing_already_published(kafka_bootstrap, output_topic):
    assert list(api.consume(kafka_bootstrap, output_topic, from_beginning=False, timeout=1)) == []


def test_a_missing_topic_and_a_bad_max_are_named(kafka_bootstrap):
    with pytest.raises(ResultsError, match="does not exist"):
        next(api.consume(kafka_bootstrap, "no-such-topic-api", timeout=1))
    with pytest.raises(ValueError, match="max_records"):
        api.consume(kafka_bootstrap, "x", max_records=0)
