"""stampflow's container image, built here from the debootstrapped base and run.

``deploy/image/build.sh --build-only`` builds it (a Docker engine is installed and started
when none answers: Debian's ``docker.io``; the base from ``debootstrap`` and
``docker import``); then the image runs as its non-root user on ``--help``, on ``demo`` and,
on the host network, as the daemon against the session's local Kafka broker, whose output
topic is read back from the host.

Skipped only where no engine can be had (``engine.sh`` exit 10: no dockerd and none
installable; 11: dockerd installed but it does not start), with its reason. Where an engine
answers, a build that breaks fails.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Consumer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "deploy" / "image"
IMAGE = os.environ.get("STAMPFLOW_IMAGE", "stampflow:0.1.0")
NO_ENGINE = {10: "no Docker engine installable", 11: "dockerd does not start"}


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    return done


def in_image(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``stampflow ARGS`` in a fresh container on the host network."""
    return docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--entrypoint",
        "stampflow",
        IMAGE,
        *args,
        timeout=timeout,
    )


def in_image_shell(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """A shell script in a fresh container on the host network, as the image's user."""
    return docker(
        "run", "--rm", "--network", "host", "--entrypoint", "sh", IMAGE, "-c", script,
        timeout=timeout,
    )  # fmt: skip


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """A Docker engine that answers (said how); one this fixture started is stopped after."""
    engine_sh = str(IMAGE_DIR / "engine.sh")
    if subprocess.run([engine_sh, "status"], capture_output=True, timeout=60).returncode == 0:
        yield "a running Docker engine"
        return
    started = time.monotonic()
    done = subprocess.run([engine_sh, "start"], capture_output=True, text=True, timeout=900)
    if done.returncode in NO_ENGINE:
        pytest.skip(
            f"{NO_ENGINE[done.returncode]} on this machine, so the image is not built here:\n"
            + _tail(done.stderr)
        )
    if done.returncode != 0:
        pytest.fail(f"engine.sh start exited {done.returncode}:\n{done.stderr}", pytrace=False)
    try:
        yield f"dockerd installed/started in {time.monotonic() - started:.0f} s"
    finally:
        subprocess.run([engine_sh, "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def image(engine: str, request: pytest.FixtureRequest, tmp_path_factory) -> str:
    """The image, built (base and all, cached) by build.sh; its size and build time shown."""
    log = tmp_path_factory.mktemp("image") / "build.log"
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [str(IMAGE_DIR / "build.sh"), "--build-only", "--keep-engine"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "STAMPFLOW_IMAGE": IMAGE},
            timeout=1500,
        )
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        pytest.fail(
            f"the Docker engine answers but the image build failed "
            f"(build.sh exited {done.returncode}; log {log}):\n{_tail(text, 60)}",
            pytrace=False,
        )
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"\nimage {IMAGE}: {size / 1e6:.0f} MB; {engine}; base + image "
            f"{time.monotonic() - started:.0f} s (log {log})"
        )
    return IMAGE


def test_image_runs_as_a_non_root_user(image: str) -> None:
    user = docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.strip()
    assert user and user.split(":")[0] not in ("", "0", "root"), user
    uid = docker("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid != "0"
    # The package is installed, not writable by that user.
    touch = docker("run", "--rm", "--entrypoint", "touch", image, "/opt/stampflow/x", check=False)
    assert touch.returncode != 0


def test_stampflow_help(image: str) -> None:
    commands = in_image("--help").stdout
    for command in ("run", "consume", "demo", "inspect", "replay"):
        assert re.search(rf"^\s+{command}\s", commands, flags=re.M), commands
    # The entry point is `stampflow run` (compose and the StatefulSet pass only its options).
    assert "usage: stampflow run" in docker("run", "--rm", image, "--help").stdout


def test_demo_prints_its_scores(image: str) -> None:
    done = in_image("demo", "--n", "300", timeout=600)
    out = done.stdout
    assert "against the truth table" in out, _tail(out + done.stderr)
    assert re.search(r"^\s+blend\s+\d+/\d+ right \(", out, flags=re.M), out
    assert re.search(r"^\s+morphology\s+\d+/\d+ right \(", out, flags=re.M), out
    assert re.search(r"broken packets caught with the expected reason: (\d+)/\1$", out, flags=re.M)


def _read_outputs(bootstrap: str, topic: str, expect: int, timeout_s: float) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"image-test-{os.getpid()}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expect and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return messages


def test_daemon_in_the_image_classifies_a_topic_on_the_local_broker(
    image: str, kafka_bootstrap: str, make_topic
) -> None:
    n = 30
    alerts, annotated, dead = (make_topic(p) for p in ("img-alerts", "img-out", "img-dead"))
    # The packets come from the image too (synth + replay), so this test needs nothing of the
    # checkout's code on the host: only a broker and a Kafka client to read the outputs.
    in_image_shell(
        f"stampflow synth /tmp/night --n {n} --seed 5 --broken-fraction 0 "
        f"--multiband-fraction 0.3 --quiet && stampflow replay /tmp/night --to {alerts} "
        f"--bootstrap {kafka_bootstrap} --quiet"
    )

    name = f"stampflow-image-test-{os.getpid()}"
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        image,
        f"--bootstrap={kafka_bootstrap}",
        f"--topics={alerts}",
        f"--output-topic={annotated}",
        f"--dead-letter-topic={dead}",
        "--group-id=image-test",
        "--classifiers=blend,morphology",
        "--metrics-port=0",
    )
    try:
        messages = _read_outputs(kafka_bootstrap, annotated, n, timeout_s=240)
        stop = docker("stop", "-t", "45", name, timeout=90)
        logged = docker("logs", name)
        logs = logged.stdout + logged.stderr
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    finally:
        docker("rm", "-f", name, check=False)

    assert len(messages) == n, f"{len(messages)} of {n} outputs; daemon log:\n{_tail(logs)}"
    assert stop.returncode == 0 and code == "0", f"exit {code}:\n{_tail(logs)}"
    sources = set()
    morphology = 0
    for message in messages:
        headers = dict(message.headers() or [])
        sources.add(int(headers["stampflow.source.offset"]))
        (record,) = fastavro.reader(io.BytesIO(message.value()))
        by_classifier = {a["classifier"]: a for a in record["stampflow"]["annotations"]}
        assert by_classifier["blend"]["label"] in ("blend", "single"), by_classifier
        morphology += "morphology" in by_classifier
    assert sources == set(range(n))  # one output per input, from the container
    assert morphology > 0  # the multiband packets got the CNN's annotation too
    assert "stampflow run summary" in logs
