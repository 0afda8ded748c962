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
        ("output: {mode: medium}", "output.mode"),
        ("output: {compresion: zstd}", "output.compresion"),
        ("workers: -1", "workers"),
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
