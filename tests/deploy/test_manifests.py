"""The deployment files: Kubernetes manifests render and hang together; compose and the image
definition carry what operators rely on; every daemon config shipped here passes the daemon's
own validation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from stampflow.stream.config import DaemonConfig, load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"


def render(kustomization: Path) -> dict[tuple[str, str], dict]:
    """Render with `kubectl kustomize` (or `kustomize build`), keyed by (kind, name)."""
    if shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(kustomization)]
    elif shutil.which("kustomize"):
        command = ["kustomize", "build", str(kustomization)]
    else:
        pytest.fail("no kustomize renderer: run deploy/install-tools.sh (needs kubectl)")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def daemon_config(rendered: dict[tuple[str, str], dict], tmp_path: Path) -> DaemonConfig:
    (config_map,) = [d for (kind, _), d in rendered.items() if kind == "ConfigMap"]
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    return load_config(path, env={})


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def rendered(request) -> dict[tuple[str, str], dict]:
    return render(K8S / request.param)


def test_rendered_config_is_valid_for_the_daemon(rendered, tmp_path):
    config = daemon_config(rendered, tmp_path)
    assert config.kafka_mode
    # One consumer per pod: the pod name is its static group member id.
    assert config.workers == 1


def test_statefulset_probes_resources_and_graceful_stop(rendered, tmp_path):
    workload = rendered[("StatefulSet", "stampflow")]
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    config = daemon_config(rendered, tmp_path)
    assert port == config.metrics.port
    # The probes and Prometheus come from outside the pod: loopback would fail them all.
    assert config.metrics.host == "0.0.0.0"

    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert pod["terminationGracePeriodSeconds"] > config.shutdown.drain_timeout_s
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["args"] == ["--config", "/etc/stampflow/config.yaml"]

    # The config volume names the generated (hash-suffixed) ConfigMap that really exists.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert ("ConfigMap", volumes["config"]["configMap"]["name"]) in rendered
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/stampflow"
    (secret_ref,) = container["envFrom"]
    assert ("Secret", secret_ref["secretRef"]["name"]) in rendered


def test_static_group_membership_comes_from_the_pod_name(rendered):
    workload = rendered[("StatefulSet", "stampflow")]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env = container["env"]
    names = [e["name"] for e in env]
    pod_name = env[names.index("POD_NAME")]
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The daemon maps STAMPFLOW_KAFKA__GROUP_INSTANCE_ID to librdkafka's group.instance.id.
    instance = names.index("STAMPFLOW_KAFKA__GROUP_INSTANCE_ID")
    assert env[instance]["value"] == "$(POD_NAME)"
    assert names.index("POD_NAME") < instance, "Kubernetes expands only earlier variables"
    # Stable names (stampflow-0, -1, ...) are what make the membership static across restarts.
    assert workload["kind"] == "StatefulSet"
    assert workload["spec"]["serviceName"] in {name for kind, name in rendered if kind == "Service"}


def test_service_and_scrape_config_select_the_pods(rendered):
    workload = rendered[("StatefulSet", "stampflow")]
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    service = rendered[("Service", "stampflow")]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    monitor = rendered[("ServiceMonitor", "stampflow")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"


def test_keda_scales_the_consumer_group_up_to_the_partition_count(rendered, tmp_path):
    config = daemon_config(rendered, tmp_path)
    scaled = rendered[("ScaledObject", "stampflow")]
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) in rendered
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    # KEDA must watch the group and topic the daemon really consumes.
    assert meta["consumerGroup"] == config.input.group_id
    assert meta["topic"] in config.input.topics
    assert meta["bootstrapServers"] == config.input.bootstrap
    assert meta["allowIdleConsumers"] == "false"
    # Members beyond the input partition count would idle: that count is the cap.
    partitions = int(scaled["metadata"]["annotations"]["stampflow.io/input-partitions"])
    assert scaled["spec"]["maxReplicaCount"] == partitions
    assert 1 <= scaled["spec"]["minReplicaCount"] <= partitions
    if "authenticationRef" in trigger:
        assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in rendered


def test_overlay_credentials_reach_both_daemon_and_keda():
    rendered = render(K8S / "overlays" / "example")
    secret = rendered[("Secret", "stampflow-kafka")]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    auth = rendered[("TriggerAuthentication", "stampflow-kafka")]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == "stampflow-kafka"
        assert ref["key"] in keys
    # Every credential is a STAMPFLOW_KAFKA__ override, so the daemon reads it from the env.
    assert all(k.startswith("STAMPFLOW_KAFKA__") for k in keys)
    assert {o["metadata"].get("namespace") for o in rendered.values()} == {"stampflow-ztf", None}


def test_compose_stack():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "stampflow", "prometheus", "grafana", "replay"} <= set(services)

    # The compose broker is the same Apache Kafka release the tests run.
    pom = ET.parse(DEPLOY / "kafka" / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    kafka_version = pom.find("m:properties/m:kafka.version", ns).text
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version}"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"

    daemon = services["stampflow"]
    mounted = dict(v.split(":")[:2] for v in daemon["volumes"])
    config = load_config(
        DEPLOY / [k for k, v in mounted.items() if v.endswith("config.yaml")][0], env={}
    )
    grace = int(daemon["stop_grace_period"].rstrip("s"))
    assert config.metrics.host == "0.0.0.0"  # scraped from the prometheus container
    assert grace > config.shutdown.drain_timeout_s
    assert f"{config.metrics.port}:{config.metrics.port}" in daemon["ports"]

    # Every file compose mounts from the repository exists.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source

    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"stampflow:{config.metrics.port}"]


def test_dockerfile_image_contract():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .+$", text, flags=re.M)
    assert len(stages) >= 2, "multi-stage build"
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and not users[-1].startswith(("root", "0")), "runs as a non-root user"
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["stampflow", "run"\]', text, flags=re.M)
    instructions = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("torch" in line for line in instructions), "the serving image needs no torch"
    # Everything the build copies exists in the repository.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for item in source.split():
            assert (REPO / item).exists(), item


def test_grafana_dashboard_has_the_panels_operators_need():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "stampflow.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in panels}
    assert {
        "Throughput in and out",
        "Dead letters by stage and reason",
        "End-to-end latency percentiles",
        "Time per batch by stage (mean)",
        "Batch size",
        "Consumer lag per partition",
        "Classifications by label",
        "Ambiguous fraction",
        "Model versions",
    } <= titles
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            # The datasource is a dashboard variable: the JSON imports into any Grafana.
            assert target["datasource"]["uid"] == "${datasource}"
    provisioning = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "stampflow.yml").read_text()
    )
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
