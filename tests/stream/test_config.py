"""The daemon's config: YAML plus environment, validated, errors naming the key, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampflow.stream.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stampflow.yaml"
    path.write_text(text)
    return path


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
input: {bootstrap: "broker:9092", topics: [a, b], group_id: brokers}
output: {topic: annotated, mode: slim}
batching: {max_batch: 64}
classifiers: [blend, {name: morphology, model_dir: /models/m}]
""",
    )
    env = {
        "STAMPFLOW_BATCHING__MAX_WAIT_MS": "250",
        "STAMPFLOW_BATCHING__MAX_BATCH": "32",
        "STAMPFLOW_WORKERS": "3",
        "HOME": "/root",
    }
    config = load_config(path, env=env, overrides={"batching.max_batch": 16})
    assert config.kafka_mode
    assert config.input.topics == ("a", "b")
    assert config.output.mode == "slim"
    assert config.batching.max_batch == 16  # flag beats environment beats file
    assert config.batching.max_wait_ms == 250
    assert config.workers == 3
    assert [c.name for c in config.classifiers] == ["blend", "morphology"]
    assert config.classifiers[1].model_dir == "/models/m"


def test_no_classifiers_is_a_valid_mode(tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"input.archive": str(tmp_path), "classifiers": ""})
    assert config.classifiers == ()
    assert not config.kafka_mode


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("batching: {max_batch: 0}", "batching.max_batch"),
        ("batching: {max_batch: lots}", "batching.max_batch"),
        ("batching: {idle_ms: -1}", "batching.idle_ms"),
        ("batching: {overlap: sometimes}", "batching.overlap"),
        ("output: {mode: medium}", "output.mode"),
        ("output: {compresion: zstd}", "output.compresion"),
        ("workers: -1", "workers"),
        ("device: gpu", "device"),
        ("colour: blue", "colour"),
        ("metrics: {port: 70000}", "metrics.port"),
        ("classifiers: [blnd]", "classifiers[0]"),
        ("input: {bootstrap: 'b:1', topics: []}", "input.topics"),
    ],
)
def test_errors_name_the_bad_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text + "\n" + ("" if "input" in text else "input: {archive: x}\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.key == key
    assert key in str(caught.value)


def test_a_misspelt_environment_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={"STAMPFLOW_BATCHNG__MAX_BATCH": "8"}, overrides={"input.archive": "x"})
    assert caught.value.key == "STAMPFLOW_BATCHNG__MAX_BATCH"
    with pytest.raises(ConfigError) as caught:
        load_config(env={"STAMPFLOW_BATCHING__MAX_BACH": "8"}, overrides={"input.archive": "x"})
    assert caught.value.key == "batching.max_bach"


def test_neither_broker_nor_archive_is_an_error() -> None:
    with pytest.raises(ConfigError, match="input"):
        load_config(env={})


def test_librdkafka_pass_through_with_secrets_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, "input: {bootstrap: 'b:9093'}\nkafka: {security.protocol: SASL_SSL}\n")
    env = {
        "STAMPFLOW_KAFKA__SASL_PASSWORD": "hunter2",
        "STAMPFLOW_KAFKA__SASL_USERNAME": "alice",
        "STAMPFLOW_KAFKA__ssl.key.pem": "-----BEGIN PRIVATE KEY-----",
    }
    config = load_config(path, env=env)
    assert config.kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.password": "hunter2",
        "sasl.username": "alice",
        "ssl.key.pem": "-----BEGIN PRIVATE KEY-----",
    }
    shown = repr(config) + str(config)
    assert "hunter2" not in shown and "PRIVATE KEY" not in shown
    assert "alice" in shown


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"input.archive": str(tmp_path)})
    with pytest.raises(AttributeError):
        config.workers = 2  # type: ignore[misc]


def test_the_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "stream" / "stampflow.example.yaml"
    config = load_config(example, env={})
    assert config.kafka_mode
    assert config.classifiers == ()
    # Batches close early on a quiet input and overlap with the previous batch's acks.
    assert (config.batching.idle_ms, config.batching.overlap) == (5, True)


def test_early_close_and_overlap_can_be_turned_off(tmp_path: Path) -> None:
    path = write(tmp_path, "input: {archive: x}\nbatching: {idle_ms: 0, overlap: false}\n")
    config = load_config(path, env={})
    assert (config.batching.idle_ms, config.batching.overlap) == (0, False)


@pytest.mark.parametrize(
    ("line", "at"),
    [
        ("  sasl.password: %Pct-S3cret", "line 3, column 18"),  # no token starts with '%'
        ("  sasl.password: *Star-S3cret", "line 3, column 18"),  # an alias; yaml quotes it
        ("  sasl.password: 'Quo-S3cret", "line 4, column 1"),  # an unclosed quote
    ],
)
def test_a_yaml_syntax_error_never_shows_the_secret(tmp_path: Path, line: str, at: str) -> None:
    path = write(tmp_path, f"input: {{bootstrap: 'b:9093'}}\nkafka:\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"config file {path}: YAML syntax error at {at}")
    assert "S3cret" not in message
    # Nothing chained either: a traceback would print yaml's own message, which quotes the line.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_environment_values_are_never_parsed_as_yaml(tmp_path: Path) -> None:
    text = "%Pct-S3cret: [*x"  # invalid YAML, and a password someone may well have
    env = {
        "STAMPFLOW_KAFKA__SASL__PASSWORD": text,  # the double underscore form is the same key
        "STAMPFLOW_INPUT__GROUP_ID": "0755",
        "STAMPFLOW_OUTPUT__TOPIC": "2024",
    }
    config = load_config(env=env, overrides={"input.bootstrap": "b:9093"})
    assert config.kafka["sasl.password"] == text
    assert config.input.group_id == "0755"
    assert config.output.topic == "2024"


@pytest.mark.parametrize("written", ["012345", "yes", "~", "null", "0x1F", "1e3", "on", "1_000"])
def test_unquoted_values_of_text_keys_stay_as_written(tmp_path: Path, written: str) -> None:
    path = write(
        tmp_path,
        f"input: {{bootstrap: 'b:9093', group_id: {written}}}\n"
        f"kafka:\n  sasl.password: {written}\n  session.timeout.ms: 6000\n",
    )
    config = load_config(path, env={})
    assert config.kafka == {"sasl.password": written, "session.timeout.ms": "6000"}
    if written not in ("~", "null"):  # group_id may not be unset, but "~" is still its text
        assert config.input.group_id == written


def test_typed_keys_are_converted_and_may_be_unset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "input: {archive: x}\nbatching: {max_batch: 64, max_wait_ms: '250'}\n"
        "metrics: {port: ~}\nshutdown: {drain_timeout_s: 12.5}\n"
        "classifiers: [{name: blend, model_dir: null}]\n",
    )
    config = load_config(path, env={"STAMPFLOW_WORKERS": "1"})
    assert (config.batching.max_batch, config.batching.max_wait_ms) == (64, 250)
    assert config.metrics.port is None
    assert config.shutdown.drain_timeout_s == 12.5
    assert config.classifiers[0].model_dir is None
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"STAMPFLOW_BATCHING__MAX_BATCH": "yes"})
    assert caught.value.key == "batching.max_batch"


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("input.topics", "bad topic!"),
        ("input.topics", "ok,.."),
        ("output.topic", "x" * 250),
        ("dead_letter.topic", "."),
        ("output.topic", ""),
    ],
)
def test_topic_names_follow_kafkas_rules(key: str, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, overrides={"input.bootstrap": "b:9093", key: name})
    assert caught.value.key == key
    assert "not a valid Kafka topic name" in str(caught.value)


def test_bad_topic_flag_is_an_immediate_error(capsys) -> None:
    from stampflow.stream.cli import main

    assert main(["run", "--bootstrap", "127.0.0.1:1", "--topics", "bad topic!"]) == 2
    assert "config key 'input.topics': 'bad topic!' is not a valid Kafka topic name" in (
        capsys.readouterr().err
    )


def test_metrics_listen_on_loopback_unless_told() -> None:
    config = load_config(env={}, overrides={"input.archive": "x"})
    assert config.metrics.host == "127.0.0.1"
    config = load_config(
        env={"STAMPFLOW_METRICS__HOST": "0.0.0.0"}, overrides={"input.archive": "x"}
    )
    assert config.metrics.host == "0.0.0.0"


def test_exactly_once_needs_kafka_and_a_stable_identity() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, overrides={"input.archive": "x", "processing": "exactly_once"})
    assert caught.value.key == "processing"
    kafka = {"input.bootstrap": "b:9093", "processing": "exactly_once"}
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, overrides=kafka)
    assert caught.value.key == "kafka.group.instance.id"
    config = load_config(env={"STAMPFLOW_KAFKA__GROUP_INSTANCE_ID": "stampflow-0"}, overrides=kafka)
    assert config.exactly_once
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, overrides={"input.archive": "x", "processing": "exactly-once"})
    assert caught.value.key == "processing"


def test_each_worker_of_several_gets_its_own_stable_identity() -> None:
    from stampflow.stream.daemon import worker_config
    from stampflow.stream.transactions import transactional_id

    config = load_config(
        env={"STAMPFLOW_KAFKA__GROUP_INSTANCE_ID": "stampflow-0"},
        overrides={"input.bootstrap": "b:9093", "workers": 2, "processing": "exactly_once"},
    )
    # Two members sharing a static id, or two producers a transactional id, fence each other.
    ids = [transactional_id(worker_config(config, i)) for i in range(2)]
    assert ids == ["stampflow-stampflow-0-0", "stampflow-stampflow-0-1"]
    assert transactional_id(worker_config(config, 1)) == ids[1]  # the same after a restart
