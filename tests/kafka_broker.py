"""A real single-node Apache Kafka broker for the integration tests.

`LocalKafka` drives ``deploy/kafka/kafka.sh`` (the same launcher developers use by hand), so
the broker a test talks to is the Apache Kafka broker from Maven Central, not a mock. It can be
stopped and started again keeping its data directory and ports, for broker-outage tests.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
KAFKA_LIB = REPO / "deploy" / "kafka" / "lib"


class KafkaUnavailable(RuntimeError):
    """The local broker cannot run here (jars missing) or did not start (log tail attached)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jars_present() -> bool:
    return any(KAFKA_LIB.glob("kafka_2.13-*.jar"))


class LocalKafka:
    """One KRaft node (broker + controller) on loopback, with its data under ``workdir``.

    Ports are chosen once, at construction, so a restarted broker comes back at the same
    bootstrap address and clients reconnect on their own.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        partitions: int = 1,
        start_timeout_s: int = 90,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.partitions = partitions
        self.start_timeout_s = start_timeout_s

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _options(self) -> list[str]:
        return ["--dir", str(self.workdir)]

    def start(self) -> LocalKafka:
        """Start (formatting the log dir the first time) and return once clients can connect."""
        if not jars_present():
            raise KafkaUnavailable(
                f"Apache Kafka jars not found in {KAFKA_LIB}: run `make kafka-jars` "
                "(Maven fetches them once), or set KAFKA_BOOTSTRAP to use a running broker"
            )
        command = [
            str(KAFKA_SH),
            "start",
            *self._options(),
            "--port",
            str(self.port),
            "--controller-port",
            str(self.controller_port),
            "--partitions",
            str(self.partitions),
            "--timeout",
            str(self.start_timeout_s),
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=self.start_timeout_s + 60
        )
        if done.returncode != 0:
            # kafka.sh prints the broker's log tail on failure; hand it to the test report.
            raise KafkaUnavailable(
                f"local Kafka broker failed to start at {self.bootstrap} "
                f"(dir {self.workdir}):\n{done.stderr}"
            )
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Controlled shutdown (or SIGKILL, a crash, with ``kill=True``); data is kept."""
        command = [str(KAFKA_SH), "stop", *self._options()]
        if kill:
            command.append("--kill")
        subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)

    def running(self) -> bool:
        done = subprocess.run(
            [str(KAFKA_SH), "status", *self._options()], capture_output=True, text=True
        )
        return done.returncode == 0


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    timeout_s: float = 30,
    config: dict[str, str] | None = None,
) -> str:
    """Create ``name`` with ``partitions`` partitions (replication 1) and wait for it.

    ``config`` holds topic settings, e.g. ``{"max.message.bytes": "200000"}``.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    futures[name].result(timeout=timeout_s)
    # The controller acknowledges creation before the broker serves the new metadata.
    deadline = time.monotonic() + timeout_s
    while True:
        topic = admin.list_topics(name, timeout=timeout_s).topics[name]
        leaders = [p.leader for p in topic.partitions.values()]
        if topic.error is None and len(leaders) == partitions and min(leaders) >= 0:
            return name
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {name} not ready after {timeout_s} s: {topic.error}")
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: list[str], timeout_s: float = 30) -> None:
    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names, operation_timeout=timeout_s).values():
        future.result(timeout=timeout_s)


def unique_topic(prefix: str) -> str:
    """``prefix`` plus a random suffix: tests never see each other's data on a shared broker."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
