"""Throughput settings: consumer prefetch and fetch backoff, thread pools per worker."""

from __future__ import annotations

import pytest

from stampflow.stream import threads
from stampflow.stream.config import ConfigError, load_config
from stampflow.stream.kafka_source import consumer_properties

KAFKA = {"input.bootstrap": "broker:9092"}


def test_consumer_defaults_never_stall_the_fetch() -> None:
    props = consumer_properties(load_config(env={}, overrides=KAFKA))
    assert props["fetch.queue.backoff.ms"] == 10  # librdkafka's 1,000 stalls a full prefetch
    assert props["queued.min.messages"] == 1000
    assert props["queued.max.messages.kbytes"] == 32768


def test_backpressure_keys_set_the_consumer() -> None:
    env = {
        "STAMPFLOW_BACKPRESSURE__FETCH_BACKOFF_MS": "50",
        "STAMPFLOW_BACKPRESSURE__PREFETCH_MESSAGES": "300",
    }
    props = consumer_properties(load_config(env=env, overrides=KAFKA))
    assert (props["fetch.queue.backoff.ms"], props["queued.min.messages"]) == (50, 300)


def test_the_users_kafka_properties_win() -> None:
    env = {
        "STAMPFLOW_KAFKA__FETCH_QUEUE_BACKOFF_MS": "1000",
        "STAMPFLOW_KAFKA__QUEUED_MIN_MESSAGES": "100000",
    }
    props = consumer_properties(load_config(env=env, overrides=KAFKA))
    assert props["fetch.queue.backoff.ms"] == "1000"
    assert props["queued.min.messages"] == "100000"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"STAMPFLOW_BACKPRESSURE__FETCH_BACKOFF_MS": "fast"}, "backpressure.fetch_backoff_ms"),
        ({"STAMPFLOW_BACKPRESSURE__FETCH_BACKOFF_MS": "-1"}, "backpressure.fetch_backoff_ms"),
        ({"STAMPFLOW_BACKPRESSURE__PREFETCH_MESSAGES": "0"}, "backpressure.prefetch_messages"),
        ({"STAMPFLOW_THREADS": "many"}, "threads"),
        ({"STAMPFLOW_THREADS": "0"}, "threads"),
    ],
)
def test_a_bad_value_is_one_clear_line(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env=env, overrides=KAFKA)
    assert caught.value.key == key
    assert "\n" not in str(caught.value) and key in str(caught.value)


def test_threads_default_to_auto_and_take_a_number() -> None:
    assert load_config(env={}, overrides=KAFKA).threads is None
    assert load_config(env={"STAMPFLOW_THREADS": "auto"}, overrides=KAFKA).threads is None
    assert load_config(env={"STAMPFLOW_THREADS": "3"}, overrides=KAFKA).threads == 3


def test_auto_shares_the_cores_out_over_the_workers() -> None:
    assert threads.threads_per_worker(None, 2, cores=2) == 1
    assert threads.threads_per_worker(None, 1, cores=8) == 8
    assert threads.threads_per_worker(None, 4, cores=2) == 1  # never 0
    assert threads.threads_per_worker(3, 2, cores=2) == 3  # the user's number wins


def test_auto_keeps_the_users_variables_an_explicit_number_does_not() -> None:
    env = {"OMP_NUM_THREADS": "4"}
    threads.thread_environment(1, explicit=False, env=env)
    assert env["OMP_NUM_THREADS"] == "4"
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    threads.thread_environment(2, explicit=True, env=env)
    assert all(env[name] == "2" for name in threads.THREAD_VARIABLES)


def test_limit_pools_limits_what_is_loaded() -> None:
    torch = pytest.importorskip("torch")  # loaded by the classifiers in a worker
    before = torch.get_num_threads()
    try:
        assert threads.limit_pools(1).get("torch") == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        while threads._LIMITS:
            threads._LIMITS.pop().restore_original_limits()
