"""``workers: auto``: one worker per core, never more than the input's partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampflow.stream.config import ConfigError, DaemonConfig, load_config
from stampflow.stream.worker_count import default_workers, input_partitions, resolve_workers

KAFKA = {"input.bootstrap": "broker:9092", "input.topics": "a,b"}


def _never(config: DaemonConfig) -> int:
    raise AssertionError("the partitions were counted")


@pytest.mark.parametrize(
    ("cores", "partitions", "workers"),
    [(2, 4, 2), (16, 12, 12), (4, 4, 4), (8, 1, 1), (1, 24, 1), (4, 0, 1)],
)
def test_default_is_the_cores_at_most_the_partitions(cores, partitions, workers) -> None:
    assert default_workers(cores, partitions) == workers


def test_auto_is_the_default_and_may_be_written(tmp_path: Path) -> None:
    assert load_config(env={}, overrides=KAFKA).workers is None
    assert load_config(env={"STAMPFLOW_WORKERS": "auto"}, overrides=KAFKA).workers is None
    assert load_config(env={"STAMPFLOW_WORKERS": "3"}, overrides=KAFKA).workers == 3
    with pytest.raises(ConfigError, match="workers"):
        load_config(env={"STAMPFLOW_WORKERS": "many"}, overrides=KAFKA)


def test_auto_in_kafka_mode_counts_the_partitions() -> None:
    config = load_config(env={}, overrides=KAFKA)
    counted: list[tuple[str, ...]] = []

    def partitions(given: DaemonConfig) -> int:
        counted.append(given.input.topics)
        return 6

    assert resolve_workers(config, cores=4, partitions=partitions).workers == 4
    assert resolve_workers(config, cores=16, partitions=partitions).workers == 6
    assert counted == [("a", "b"), ("a", "b")]


def test_an_explicit_number_is_kept_and_archive_mode_has_one(tmp_path: Path) -> None:
    for workers in (1, 3, 64):
        config = load_config(env={}, overrides={**KAFKA, "workers": workers})
        assert resolve_workers(config, cores=2, partitions=_never) is config
    archive = load_config(env={}, overrides={"input.archive": str(tmp_path)})
    assert resolve_workers(archive, cores=8, partitions=_never).workers == 1


def test_the_run_flag_sets_an_explicit_number() -> None:
    from stampflow.stream.cli import build_parser
    from stampflow.stream.run_cmd import config_from_args

    args = build_parser().parse_args(["run", "--bootstrap=b:1", "--topics=t", "--workers=3"])
    assert config_from_args(args).workers == 3
    args = build_parser().parse_args(["run", "--bootstrap=b:1", "--topics=t"])
    assert config_from_args(args).workers is None


@pytest.mark.integration
def test_the_partitions_of_every_input_topic_are_counted(kafka_bootstrap: str, make_topic) -> None:
    inputs = [make_topic("in", 3), make_topic("in", 2)]
    output, dead = make_topic("out"), make_topic("dead")
    config = load_config(
        env={},
        overrides={
            "input.bootstrap": kafka_bootstrap,
            "input.topics": ",".join(inputs),
            "output.topic": output,
            "dead_letter.topic": dead,
        },
    )
    assert input_partitions(config) == 5
    assert resolve_workers(config, cores=64).workers == 5
    assert resolve_workers(config, cores=2).workers == 2
