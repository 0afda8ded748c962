"""The Prometheus alert rules pass promtool's checks and its unit tests on synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
EXPECTED_ALERTS = {
    "StampflowConsumerLagGrowing",
    "StampflowNotProcessing",
    "StampflowDeadLetterRateHigh",
    "StampflowLatencyHigh",
    "StampflowWorkerDown",
    "StampflowWorkerNotReady",
    "StampflowWorkerStuck",
    "StampflowSchemaRegistryDown",
}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool missing: run deploy/install-tools.sh (Debian's prometheus package)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules():
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_pass():
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_and_has_a_runbook():
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    assert set(alerts) == EXPECTED_ALERTS
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == EXPECTED_ALERTS, "every alert has a unit test where it fires"
    readme = (PROMETHEUS_DIR.parent / "README.md").read_text().lower()
    for name, rule in alerts.items():
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor == name.lower()
        assert f"### {name.lower()}" in readme, f"deploy/README.md has no runbook for {name}"


def test_compose_prometheus_config_is_valid(tmp_path):
    # The compose file mounts the rules at /etc/prometheus; point the copy at the repo's file.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = promtool("check", "config", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
