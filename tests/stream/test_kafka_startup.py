"""Start-up failures an operator must tell apart at a glance, and librdkafka's noise kept down."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from confluent_kafka.admin import AdminClient
from kafka_broker import free_port, unique_topic

from stampflow.stream import cluster_check
from stampflow.stream.cli import main
from stampflow.stream.kafka_log import KafkaLog
from stampflow.stream.kafka_producer import AckingProducer

SECRET = "Star-S3cret"


def run(*args: str) -> int:
    return main(["run", "--classifiers=", "--metrics-port=0", *args])


@pytest.mark.integration
def test_a_mistyped_output_topic_is_reported_and_not_created(
    kafka_bootstrap: str, make_topic, capsys
) -> None:
    source, dead = make_topic("in"), make_topic("dead")
    typo = unique_topic("anotated")
    code = run(
        f"--bootstrap={kafka_bootstrap}",
        f"--topics={source}",
        f"--output-topic={typo}",
        f"--dead-letter-topic={dead}",
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"config key 'output.topic': topic {typo!r} does not exist" in err
    time.sleep(1)  # an auto-created topic would show up in the metadata by now
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert typo not in admin.list_topics(timeout=10).topics


@pytest.mark.integration
def test_a_failed_sasl_handshake_says_authentication_and_shows_no_secret(
    kafka_bootstrap: str, make_topic, monkeypatch, capfd, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("STAMPFLOW_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STAMPFLOW_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("STAMPFLOW_KAFKA__SASL_USERNAME", "alice")
    monkeypatch.setenv("STAMPFLOW_KAFKA__SASL_PASSWORD", SECRET)
    started = time.monotonic()
    code = run(f"--bootstrap={kafka_bootstrap}", f"--topics={make_topic('in')}")
    assert code == 2
    assert time.monotonic() - started < 10, "a bad login needs no waiting for a broker"
    out = capfd.readouterr()
    assert f"authentication with the Kafka cluster at {kafka_bootstrap} failed" in out.err
    assert "sasl.username=alice" in out.err and "unreachable" not in out.err
    assert SECRET not in out.err + out.out + caplog.text


def test_an_unreachable_bootstrap_says_so(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cluster_check, "CONNECT_TIMEOUT_S", 2.0)
    address = f"127.0.0.1:{free_port()}"
    assert run(f"--bootstrap={address}") == 2
    err = capsys.readouterr().err
    assert f"the Kafka cluster at {address} is unreachable (nothing answers" in err
    assert "authentication" not in err


def test_a_metrics_port_in_use_names_host_and_port(tmp_path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", f"--archive={tmp_path}", f"--metrics-port={port}"]) == 2
    err = capsys.readouterr().err
    assert f"metrics server cannot listen on 127.0.0.1:{port} (metrics.host, metrics.port)" in err


def test_an_outage_logs_one_line_per_kind_per_window_with_a_count(caplog) -> None:
    now = [0.0]
    logger = logging.getLogger("test.kafka")
    reports = KafkaLog("producer", logger, window_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.kafka")
    for i in range(150):  # a 30 s outage: a failed reconnect every 0.2 s
        now[0] = i * 0.2
        reports.log(3, "FAIL [rdkafka#producer-1] connect to broker %d failed", i % 3)
    reports.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # the first at once, one per 10 s, the rest at close
    assert lines[0].endswith("connect to broker 0 failed")
    assert [line.split("(")[-1] for line in lines[1:]] == [
        "50 like it in the last 10 s)",
        "50 like it in the last 10 s)",
        "49 like it in the last 10 s)",
    ]


def test_a_real_client_facing_a_dead_broker_stays_quiet(caplog, capfd) -> None:
    caplog.set_level(logging.INFO)
    settings = {
        "bootstrap.servers": f"127.0.0.1:{free_port()}",
        "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 20,
    }
    producer = AckingProducer(settings, max_in_flight=10)
    producer.produce("t", b"x", key=None, headers=[], partition=None, on_ack=lambda m: None)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        producer.transactions.poll(0.1)  # serves error_cb and librdkafka's log lines
    kafka_lines = [r for r in caplog.records if r.getMessage().startswith("kafka producer")]
    assert 1 <= len(kafka_lines) <= 3, [r.getMessage() for r in kafka_lines]
    assert "%3|" not in capfd.readouterr().err  # librdkafka's own stderr lines go through us
