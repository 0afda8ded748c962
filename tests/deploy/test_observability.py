"""The dashboard and alert rules against a real daemon and a real Prometheus server.

One `stampflow run` subprocess consumes a small stream (good packets plus garbage) from the
test broker; then (1) its /metrics is scraped and every metric the dashboard and the rules use
must be one it exports, and (2) Debian's Prometheus server scrapes it on loopback, loads the
alert rules, and answers every dashboard query.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer
from kafka_broker import create_topic, delete_topics, free_port, unique_topic
from prometheus_client.parser import text_string_to_metric_families

from stampflow.training.synth import synthesise

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stampflow.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
STAMPFLOW = str(Path(sys.executable).parent / "stampflow")
GOOD = 24
GARBAGE = [b"not an avro packet at all", b"Obj\x01" + bytes(64)]
# Series that exist only when classifiers run; the daemon here runs none (pass-through), so
# for these the scrape must declare the family (# TYPE) without holding samples yet.
CLASSIFIER_ONLY = {
    "stampflow_classifications_total",
    "stampflow_ambiguous_total",
    "stampflow_model_info",
    "stampflow_classifier_duration_seconds_sum",
    "stampflow_classifier_duration_seconds_count",
    "stampflow_classifier_duration_seconds_bucket",
}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
METRIC = re.compile(r"\b((?:stampflow|process|python)_[a-zA-Z0-9_]+)\b")


@dataclass(frozen=True)
class RunningDaemon:
    metrics_port: int
    consumed: int
    published: int
    dead_letters: int

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target, with Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$job", "stampflow")
            queries.append((panel["title"], expr))
    return queries


def rule_expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metric_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC.findall(expr)}


def counter_value(text: str, family_name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def send(bootstrap: str, topic: str, packets: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for index, packet in enumerate(packets):
        producer.produce(topic, packet, partition=index % 2)
    assert producer.flush(30) == 0


@pytest.fixture(scope="module")
def daemon(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    source, output, dead = (unique_topic(p) for p in ("deploy-in", "deploy-out", "deploy-dead"))
    for topic, partitions in ((source, 2), (output, 2), (dead, 1)):
        create_topic(kafka_bootstrap, topic, partitions)
    good = [p for _n, p, _r in synthesise(GOOD, seed=11, broken_fraction=0.0, progress=False)]
    send(kafka_bootstrap, source, good + GARBAGE)

    port = free_port()
    log_path = tmp_path_factory.mktemp("daemon") / "stampflow.log"
    command = [
        STAMPFLOW, "run", "--bootstrap", kafka_bootstrap, "--topics", source,
        "--group-id", unique_topic("deploy"), "--output-topic", output,
        "--dead-letter-topic", dead, "--classifiers", "", "--metrics-port", str(port),
        "--max-wait-ms", "200",
        # One process, as in the manifests (workers: 1): auto would run one per core here.
        "--workers", "1",
        # With a schema registry (Rubin's offline one) the survey and registry metrics exist.
        "--schema-dir", "rubin",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    running = RunningDaemon(port, len(good) + len(GARBAGE), len(good), len(GARBAGE))
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"stampflow run exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                text = running.scrape()
            except OSError:
                text = ""
            done = counter_value(text, "stampflow_alerts_published") == running.published
            dead_done = counter_value(text, "stampflow_dead_letters") == running.dead_letters
            if done and dead_done:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"daemon did not process the stream in 90 s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        delete_topics(kafka_bootstrap, [source, output, dead])


def test_every_metric_the_dashboard_and_rules_use_is_exported(daemon):
    text = daemon.scrape()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    with_samples = {s.name for f in families.values() for s in f.samples}
    declared = {
        family.name + suffix
        for family in families.values()
        for suffix in SUFFIXES.get(family.type, ("",))
    }
    used = metric_names([expr for _title, expr in dashboard_queries()] + rule_expressions())
    assert used, "no metric names found in the dashboard and rules"
    assert used <= declared, f"not exported by the daemon: {sorted(used - declared)}"
    missing_samples = used - with_samples - CLASSIFIER_ONLY
    assert not missing_samples, f"declared but never observed: {sorted(missing_samples)}"

    # The other way round: every stampflow metric the daemon exports is on the dashboard
    # (prometheus_client's *_created gauges are creation timestamps, not metrics of their own).
    on_dashboard = metric_names([expr for _title, expr in dashboard_queries()])
    for name, family in families.items():
        if name.startswith("stampflow_") and not name.endswith("_created"):
            forms = {name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
            assert forms & on_dashboard, f"{name} is exported but on no dashboard panel"


def test_counters_agree_with_what_was_sent(daemon):
    text = daemon.scrape()
    assert counter_value(text, "stampflow_alerts_consumed") == daemon.consumed
    assert counter_value(text, "stampflow_alerts_published") == daemon.published
    assert counter_value(text, "stampflow_dead_letters") == daemon.dead_letters


class PrometheusServer:
    """Debian's Prometheus server on loopback, scraping one target every second."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus missing: run deploy/install-tools.sh (Debian's package)")
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "stampflow",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                if check():
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus: {what} not seen in {timeout_s} s")
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def prometheus(daemon, tmp_path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path, daemon.metrics_port)
    try:
        yield server
    finally:
        server.stop()


def test_real_prometheus_scrapes_the_daemon(daemon, prometheus):
    def consumed_seen() -> bool:
        result = prometheus.query('sum(stampflow_alerts_consumed_total{job="stampflow"})')
        return bool(result) and float(result[0]["value"][1]) == daemon.consumed

    prometheus.wait_for("the daemon's consumed counter", consumed_seen)
    (up,) = prometheus.query('up{job="stampflow"}')
    assert up["value"][1] == "1"
    reasons = prometheus.query("sum by (stage, reason) (stampflow_dead_letters_total)")
    assert sum(float(r["value"][1]) for r in reasons) == daemon.dead_letters
    assert all(r["metric"]["stage"] == "decode" for r in reasons)

    # The alert rules load and evaluate cleanly against the live series.
    def rules_evaluated() -> bool:
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return bool(rules) and all(rule.get("lastEvaluation", "").startswith("2") for rule in rules)

    prometheus.wait_for("an evaluation of every alert rule", rules_evaluated)
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # A healthy daemon that has caught up fires nothing.
    assert not [r["name"] for r in rules if r["state"] == "firing"]


def test_every_dashboard_query_runs_on_prometheus(daemon, prometheus):
    queries = dashboard_queries()
    expecting_data = [
        (title, expr) for title, expr in queries if not metric_names([expr]) & CLASSIFIER_ONLY
    ]

    missing = list(expecting_data)

    def all_answer() -> bool:
        missing[:] = [(title, expr) for title, expr in missing if not prometheus.query(expr)]
        return not missing

    # rate() needs two scrapes inside its window; a second or two after the first scrape.
    prometheus.wait_for(f"data for every dashboard panel (missing: {missing})", all_answer, 45)
    for _title, expr in queries:
        prometheus.query(expr)  # classifier panels: valid PromQL, no data in pass-through mode
