"""On the real broker and the real schema registry (Apicurio): a Rubin stream and a ZTF stream
through one ``stampflow run``; every alert out once, annotated by the models that apply (the
ZTF blend model: ZTF alerts only), Rubin's read back by confluent-kafka's AvroDeserializer
against the registry; an unknown schema id is a dead letter with that reason; a registry
that is down holds the Rubin messages back instead of dead-lettering them; one that comes
back after an outage (stopped and started again) resumes the stream, every alert out once,
also after an outage longer than max.poll.interval.ms (``KafkaSource.keep_alive``)."""

from __future__ import annotations

import dataclasses
import io
import time
import uuid
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry
from registry_server import LocalRegistry, RegistryUnavailable, free_port, serve_registry
from stream_helpers import (
    Daemon,
    committed,
    good_packets,
    metric,
    produce,
    read_topic,
    start_daemon,
    wait_for,
)

from stampflow.schemas.codec import decode_packet
from stampflow.schemas.registry import LocalSchemas, rubin_schema_id, rubin_versions
from stampflow.schemas.wire import WIRE_HEADER, frame
from stampflow.stream.config import load_config
from stampflow.stream.kafka_source import KafkaSource
from stampflow.stream.metrics import DaemonMetrics
from stampflow.training.synth import synthesise_rubin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def schema_registry_url(tmp_path_factory):
    yield from serve_registry(tmp_path_factory)


def _register_rubin(url: str) -> dict[int, int]:
    """Every Rubin schema registered in the real registry: Rubin's id -> the server's."""
    client = SchemaRegistryClient({"url": url})
    run = uuid.uuid4().hex[:8]
    return {
        rubin_id: client.register_schema(
            f"lsst-alerts-{run}-{rubin_id}-value", Schema(text, "AVRO")
        )
        for rubin_id, text in LocalSchemas.rubin().items()
    }


def _rubin_stream(ids: dict[int, int]) -> tuple[list[bytes], list[int]]:
    """Every lsst-alert-packet sample, and a synthetic night with FITS cutouts, framed with
    the server's ids as a Rubin producer would; and their alert ids (the samples share one)."""
    messages, alert_ids = [], []
    for version, primary in rubin_versions().items():
        sample = (primary.parent / "sample_data" / "fakeAlert.avro").read_bytes()
        (alert,) = decode_packet(sample).alerts
        messages.append(frame(ids[rubin_schema_id(version)], alert.record_bytes))
        alert_ids.append(alert.alert_id)
    for _name, message, row in synthesise_rubin(12, 5, broken_fraction=0.0, progress=False):
        messages.append(frame(ids[row["schema_id"]], message[WIRE_HEADER:]))
        alert_ids.append(row["diaSourceId"])
    return messages, alert_ids


def test_a_rubin_and_a_ztf_stream_through_one_daemon(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path, schema_registry_url
) -> None:
    ids = _register_rubin(schema_registry_url)
    rubin_in, ztf_in, output, dead = (make_topic(p, 1) for p in ("rubin", "ztf", "out", "dead"))
    rubin, rubin_ids = _rubin_stream(ids)
    unknown = frame(max(ids.values()) + 50_000, rubin[0][WIRE_HEADER:])
    ztf = good_packets(10, seed=21)
    produce(kafka_bootstrap, rubin_in, [*rubin, unknown], 1)
    produce(kafka_bootstrap, ztf_in, ztf, 1)
    daemon = start_daemon(
        daemons, kafka_bootstrap, f"{rubin_in},{ztf_in}", output, dead,
        f"--schema-registry={schema_registry_url}", "--classifiers=blend",
        "--max-batch=16", "--max-wait-ms=200",
        group=f"g-{rubin_in}", log_path=tmp_path / "d.log",
    )  # fmt: skip
    daemon.wait_ready(timeout_s=120)
    records = read_topic(kafka_bootstrap, output, len(rubin) + len(ztf), timeout_s=120)
    letters = read_topic(kafka_bootstrap, dead, 1)
    samples = daemon.metrics()
    assert daemon.stop() == 0, daemon.log_tail()

    assert len(records) == len(rubin) + len(ztf), daemon.log_tail()
    client = SchemaRegistryClient({"url": schema_registry_url})
    deserialize = AvroDeserializer(client)  # a schema-registry-aware consumer's reader
    context = SerializationContext(output, MessageField.VALUE)
    rubin_out, ztf_out = [], []
    for record in records:
        if record.value[:1] == b"\x00":  # the Confluent wire format: Rubin's
            rubin_out.append(deserialize(record.value, context))
        else:
            (value,) = fastavro.reader(io.BytesIO(record.value))
            ztf_out.append(value)
    # nothing lost, nothing twice
    assert sorted(r["diaSourceId"] if "diaSourceId" in r else r["alertId"] for r in rubin_out) == (
        sorted(rubin_ids)
    )
    expected_ztf = sorted(next(fastavro.reader(io.BytesIO(p)))["candid"] for p in ztf)
    assert sorted(r["candid"] for r in ztf_out) == expected_ztf
    # annotated by the models that apply: blend (ZTF's) on ZTF alerts, none on Rubin's yet
    for value in rubin_out:
        assert value["stampflow"]["annotations"] == [] and "diaSource" in value
    for value in ztf_out:
        assert [a["classifier"] for a in value["stampflow"]["annotations"]] == ["blend"]
    # the annotated Rubin schemas were registered under <output topic>-<record name>
    subjects = client.get_subjects()
    assert any(s.startswith(f"{output}-lsst.v11_0.alert") for s in subjects), subjects

    assert len(letters) == 1
    assert letters[0].headers["stampflow.reason"] == b"unknown_schema_id"
    assert letters[0].value == unknown  # byte for byte
    assert metric(samples, "stampflow_alerts_decoded_total", survey="ztf", schema_version="4.02")
    rubin_counted = sum(
        v for (name, labels), v in samples.items()
        if name == "stampflow_alerts_decoded_total" and ("survey", "rubin") in labels
    )  # fmt: skip
    assert rubin_counted == len(rubin)
    assert metric(samples, "stampflow_schema_registry_up") == 1


def test_a_registry_that_is_down_holds_rubin_messages_back(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, 1) for p in ("in", "out", "dead"))
    (alert,) = decode_packet(
        (rubin_versions()["11.0"].parent / "sample_data" / "fakeAlert.avro").read_bytes()
    ).alerts
    produce(kafka_bootstrap, source, [frame(7, alert.record_bytes)], 1)
    nobody = f"http://127.0.0.1:{free_port()}"
    daemon = start_daemon(
        daemons, kafka_bootstrap, source, output, dead, f"--schema-registry={nobody}",
        "--max-wait-ms=100", "--drain-timeout=2", log_path=tmp_path / "d.log",
    )  # fmt: skip
    # Not waiting for /readyz: the first batch may be held before the loop reported ready.
    deadline = time.monotonic() + 90
    while _retries(daemon) < 2:
        assert time.monotonic() < deadline, daemon.log_tail()
        time.sleep(0.5)
    samples = daemon.metrics()
    assert metric(samples, "stampflow_schema_registry_up") == 0
    assert not any(name == "stampflow_dead_letters_total" and v for (name, _), v in samples.items())
    assert read_topic(kafka_bootstrap, dead, 1, timeout_s=3) == []
    assert read_topic(kafka_bootstrap, output, 1, timeout_s=1) == []
    # Still waiting at SIGTERM: ended after the drain timeout, uncommitted, so the message
    # is delivered again to the next daemon.
    daemon.stop()
    assert "unreachable" in daemon.log_tail()


def _retries(daemon: Daemon) -> float:
    try:
        return metric(daemon.metrics(), "stampflow_schema_registry_retries_total")
    except OSError:  # the metrics server is not up yet
        return 0.0


@pytest.fixture
def restartable_registry(tmp_path: Path):
    """A private Apicurio Registry with its storage on disk, that a test stops and starts:
    it comes back on the same port with every schema under the same id."""
    registry = LocalRegistry(tmp_path / "registry", persistent=True)
    try:
        registry.start()
    except RegistryUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    yield registry
    registry.stop(kill=True)


def _sample(version: str) -> tuple[bytes, int]:
    """The record bytes and alert id of lsst-alert-packet's sample alert of ``version``."""
    primary = rubin_versions()[version]
    (alert,) = decode_packet(
        (primary.parent / "sample_data" / "fakeAlert.avro").read_bytes()
    ).alerts
    return alert.record_bytes, alert.alert_id


def test_a_registry_that_comes_back_after_an_outage_resumes_the_stream(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path, restartable_registry
) -> None:
    """The daemon has 11.0's schema cached; the registry stops; alerts of every other Rubin
    version arrive (ids it has not cached), then more 11.0 ones behind them. The daemon
    retries (schema_registry_up 0), publishes nothing of that batch, dead-letters nothing
    and commits no offset past the first waiting alert; the registry starts again and every
    alert comes out once, readable against the registry, the offsets at the end."""
    _outage_and_back(kafka_bootstrap, make_topic, daemons, tmp_path, restartable_registry)


def test_an_outage_longer_than_max_poll_interval_publishes_every_alert_once(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path, restartable_registry
) -> None:
    """The same outage, made longer than the consumer's max.poll.interval.ms (7 s here, the
    shortest the broker's group.min.session.timeout.ms of 6 s allows)."""
    _outage_and_back(
        kafka_bootstrap, make_topic, daemons, tmp_path, restartable_registry,
        kafka={"max.poll.interval.ms": "7000", "session.timeout.ms": "6000"}, hold_s=12,
    )  # fmt: skip


def _outage_and_back(
    kafka_bootstrap: str,
    make_topic,
    daemons: list[Daemon],
    tmp_path: Path,
    registry: LocalRegistry,
    *,
    kafka: dict[str, str] | None = None,
    hold_s: float = 0.0,
) -> None:
    """The body of the outage tests: ``hold_s`` more seconds of outage once the daemon is
    seen retrying; ``kafka``: librdkafka settings of the daemon."""
    started = time.monotonic()
    ids = _register_rubin(registry.url)
    source, output, dead = (make_topic(p, 1) for p in ("in", "out", "dead"))
    night = synthesise_rubin(7, 8, broken_fraction=0.0, progress=False)
    framed = [
        (frame(ids[row["schema_id"]], m[WIRE_HEADER:]), row["diaSourceId"]) for _n, m, row in night
    ]
    first = framed[:4]  # 11.0: decoded before the outage, so its schema id is cached
    others = [v for v in rubin_versions() if v != "11.0"]
    assert len(others) >= 4, others
    waiting = [(frame(ids[rubin_schema_id(v)], _sample(v)[0]), _sample(v)[1]) for v in others]
    behind = framed[4:]  # 11.0 again, queued behind alerts that wait for the registry

    env = {  # the client's own retries short (1, after 100 ms): the daemon's back-off is tested
        "STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__MAX_RETRIES": "1",
        "STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__RETRIES_WAIT_MS": "100",
        **{f"STAMPFLOW_KAFKA__{k}": v for k, v in (kafka or {}).items()},
    }
    produce(kafka_bootstrap, source, [m for m, _id in first], 1)
    daemon = start_daemon(
        daemons, kafka_bootstrap, source, output, dead, f"--schema-registry={registry.url}",
        "--max-batch=64", "--max-wait-ms=200", log_path=tmp_path / "d.log", env=env,
    )  # fmt: skip
    group = f"g-{source}"
    daemon.wait_ready(timeout_s=120)
    assert len(read_topic(kafka_bootstrap, output, len(first), timeout_s=60)) == len(first)
    assert wait_for(lambda: committed(kafka_bootstrap, group, source, 1)[0] == len(first), 30)
    before_outage = time.monotonic()

    registry.stop()
    outage_started = time.monotonic()
    produce(kafka_bootstrap, source, [m for m, _id in [*waiting, *behind]], 1)
    assert wait_for(lambda: _retries(daemon) >= 2, 60), daemon.log_tail()
    samples = daemon.metrics()
    assert metric(samples, "stampflow_schema_registry_up") == 0, daemon.log_tail()
    assert not any(name == "stampflow_dead_letters_total" and v for (name, _), v in samples.items())
    # nothing of the waiting batch out, nothing dead, no offset past the first waiting alert
    assert len(read_topic(kafka_bootstrap, output, len(first) + 1, timeout_s=2)) == len(first)
    assert read_topic(kafka_bootstrap, dead, 1, timeout_s=1) == []
    assert committed(kafka_bootstrap, group, source, 1)[0] == len(first)
    time.sleep(hold_s)

    registry.start()  # the same port, the same storage: every schema under its id
    outage_s = time.monotonic() - outage_started
    total = len(first) + len(waiting) + len(behind)
    records = read_topic(kafka_bootstrap, output, total, timeout_s=90)
    resumed_s = time.monotonic() - outage_started
    assert wait_for(lambda: committed(kafka_bootstrap, group, source, 1)[0] == total, 30)
    samples = daemon.metrics()
    assert daemon.stop() == 0, daemon.log_tail()

    assert len(records) == total, daemon.log_tail()
    client = SchemaRegistryClient({"url": registry.url})
    deserialize = AvroDeserializer(client)  # the output schemas resolve in the registry
    context = SerializationContext(output, MessageField.VALUE)
    values = [deserialize(r.value, context) for r in records]
    out_ids = [v["diaSourceId"] if "diaSourceId" in v else v["alertId"] for v in values]
    assert sorted(out_ids) == sorted(i for _m, i in [*first, *waiting, *behind])  # once each
    # in order within the partition: the ones behind the outage did not overtake it
    assert [r.source[1] for r in records] == list(range(total))
    assert read_topic(kafka_bootstrap, dead, 1, timeout_s=1) == []
    assert metric(samples, "stampflow_schema_registry_up") == 1
    assert not any(name == "stampflow_dead_letters_total" and v for (name, _), v in samples.items())
    print(
        f"outage {outage_s:.1f} s, stream resumed {resumed_s - outage_s:.1f} s after the "
        f"registry was back; before the outage {before_outage - started:.1f} s; "
        f"test {time.monotonic() - started:.1f} s"
    )


def _short_interval_source(
    bootstrap: str, topic: str, group: str
) -> tuple[KafkaSource, list[float]]:
    """A KafkaSource on ``topic`` with max.poll.interval.ms 7 s, and the times its revoke
    hook was called."""
    config = load_config(
        overrides={
            "input.bootstrap": bootstrap,
            "input.topics": topic,
            "input.group_id": group,
            "output.topic": "unused",
            "dead_letter.topic": "unused-dead",
        }
    )
    kafka = {"max.poll.interval.ms": "7000", "session.timeout.ms": "6000"}
    source = KafkaSource(
        dataclasses.replace(config, kafka={**config.kafka, **kafka}),
        DaemonMetrics(CollectorRegistry()),
    )
    revoked: list[float] = []
    source.set_revoke_hook(lambda: revoked.append(time.monotonic()))
    return source, revoked


def _first_batch(source: KafkaSource) -> list:
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "nothing polled"
        if batch := source.poll(3, 0.25):
            return batch


def test_keep_alive_holds_the_partitions_past_max_poll_interval_consuming_nothing(
    kafka_bootstrap: str, make_topic
) -> None:
    """What the daemon does while a batch waits for the registry, on the source alone: a
    batch polled, then only ``keep_alive`` for longer than max.poll.interval.ms (7 s) while
    more arrives. No revocation, nothing lost or twice, each partition in order after it."""
    topic = make_topic("keep", 2)
    produce(kafka_bootstrap, topic, [b"%d" % i for i in range(20)], 2)
    source, revoked = _short_interval_source(kafka_bootstrap, topic, f"keep-{uuid.uuid4().hex[:8]}")
    try:
        batch = _first_batch(source)
        produce(kafka_bootstrap, topic, [b"%d" % i for i in range(20, 30)], 2)
        waiting_until = time.monotonic() + 10  # the batch waits: no poll, only keep_alive
        while time.monotonic() < waiting_until:
            source.keep_alive()
            time.sleep(0.2)
        assert not revoked
        rest = []
        deadline = time.monotonic() + 60
        while len(batch) + len(rest) < 30 and time.monotonic() < deadline:
            rest.extend(source.poll(64, 0.25))
        rest.extend(source.poll(64, 0.5))  # nothing more: none of it twice
        assert not revoked
    finally:
        source.close()
    seen = [*batch, *rest]
    assert sorted(int(m.value) for m in seen) == list(range(30))
    for partition in (0, 1):
        assert [m.offset for m in seen if m.partition == partition] == list(range(15))


def test_a_rebalance_during_keep_alive_leaves_the_batch_in_hand_alone(
    kafka_bootstrap: str, make_topic, caplog
) -> None:
    """A member joins while the batch waits: keep_alive's poll takes the revocation without
    the revoke hook (the waiting batch cannot be finished from inside its own wait), and
    the partition this member is given back is resumed by the next poll and read from its
    committed offset (none here: the start), in order, nothing skipped."""
    topic = make_topic("keep", 2)
    produce(kafka_bootstrap, topic, [b"%d" % i for i in range(20)], 2)
    group = f"keep-{uuid.uuid4().hex[:8]}"
    source, revoked = _short_interval_source(kafka_bootstrap, topic, group)
    other = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    try:
        _first_batch(source)  # the batch in hand, waiting
        other.subscribe([topic])
        deadline = time.monotonic() + 60
        with caplog.at_level("WARNING", logger="stampflow.stream.kafka_source"):
            while not (
                "while the batch in hand waits" in caplog.text
                and other.assignment()
                and source.ready
            ):
                assert time.monotonic() < deadline, caplog.text
                source.keep_alive()
                other.poll(0.2)
        assert not revoked
        (kept,) = {p.partition for p in source._consumer.assignment()}
        mine = []
        deadline = time.monotonic() + 60
        while len(mine) < 10 and time.monotonic() < deadline:
            other.poll(0.05)  # stays in the group
            mine.extend(m for m in source.poll(64, 0.25) if m.partition == kept)
        assert not revoked
        assert [m.offset for m in mine] == list(range(10))
    finally:
        other.close()
        source.close()
