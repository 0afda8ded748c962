"""One HTTP port: /metrics in Prometheus text, /healthz and /readyz as probes."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from stream_helpers import http_status

from stampflow.stream.config import ConfigError, load_config
from stampflow.stream.health import HealthServer, Heartbeat
from stampflow.stream.metrics import DaemonMetrics, serving_registry


def test_probes_and_metrics() -> None:
    registry = serving_registry()
    metrics = DaemonMetrics(registry)
    metrics.consumed.labels("alerts").inc(3)
    metrics.set_models([("blend", "1.0", "ab" * 32, "cpu")])
    heartbeat = Heartbeat(stall_s=60)
    server = HealthServer(
        registry, healthy=heartbeat.healthy, ready=heartbeat.ready, host="127.0.0.1", port=0
    ).start()
    try:
        assert http_status(server.port, "/healthz") == 200
        assert http_status(server.port, "/readyz") == 503
        heartbeat.set_ready(True)
        assert http_status(server.port, "/readyz") == 200
        assert http_status(server.port, "/nope") == 404
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics").read().decode()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("stampflow_alerts_consumed_total", (("topic", "alerts"),))] == 3
        info = (
            ("classifier", "blend"),
            ("device", "cpu"),
            ("sha256", "ab" * 32),
            ("version", "1.0"),
        )
        assert samples[("stampflow_model_info", info)] == 1
        assert any(name.startswith("process_") for name, _ in samples)
    finally:
        server.close()


def test_a_stalled_loop_is_unhealthy() -> None:
    heartbeat = Heartbeat(stall_s=0.0)
    assert not heartbeat.healthy()


def test_no_commit_for_too_long_with_a_batch_in_hand_is_unhealthy_and_says_why() -> None:
    heartbeat = Heartbeat(stuck_after_s=0.05)
    server = HealthServer(
        DaemonMetrics(CollectorRegistry()).registry,
        healthy=heartbeat.healthy,
        ready=heartbeat.ready,
        problem=heartbeat.problem,
        host="127.0.0.1",
        port=0,
    ).start()
    try:
        time.sleep(0.1)
        assert http_status(server.port, "/healthz") == 200  # idle: nothing waits
        heartbeat.batch_in_hand()
        time.sleep(0.1)
        heartbeat.beat()  # beating, yet going nowhere
        assert http_status(server.port, "/healthz") == 503
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz")
        except urllib.error.HTTPError as exc:
            assert b"stuck: no commit for" in exc.read()
        heartbeat.batch_done(committed=True)
        assert http_status(server.port, "/healthz") == 200
    finally:
        server.close()


def test_liveness_limits_are_configurable_and_checked() -> None:
    config = load_config(
        None, env={"STAMPFLOW_LIVENESS__STUCK_AFTER_S": "120"}, overrides={"input.archive": "x"}
    )
    assert (config.liveness.stuck_after_s, config.liveness.max_rewinds) == (120, 10)
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={}, overrides={"input.archive": "x", "liveness.max_rewinds": 0})
    assert caught.value.key == "liveness.max_rewinds"
