"""A real schema registry for the integration tests: Apicurio Registry, on loopback.

`LocalRegistry` drives ``deploy/registry/registry.sh`` (the launcher developers use by hand),
so the registry a test talks to is Apicurio Registry from Maven Central serving the
Confluent-compatible API (``/apis/ccompat/v7``), not a mock. Its storage is in memory: a
restarted registry is empty, and it assigns its own schema ids (1, 2, ...), not Rubin's.

``LocalRegistry(..., persistent=True)`` keeps its storage in an H2 database file under its
work dir instead (Apicurio's own SQL storage, pointed at a file): a registry a test stops and
starts again comes back with every schema under the same id, as a production registry does.

``serve_registry`` yields the URL of ``SCHEMA_REGISTRY_URL`` when set (any
Confluent-compatible registry), else of a local registry it starts and stops: the body of a
fixture (``schema_registry_url``, session-scoped, is one a conftest can import).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REGISTRY_SH = REPO / "deploy" / "registry" / "registry.sh"
REGISTRY_LIB = REPO / "deploy" / "registry" / "lib"


class RegistryUnavailable(RuntimeError):
    """The local registry cannot run here (not fetched) or did not start (log tail attached)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetched() -> bool:
    return (REGISTRY_LIB / "quarkus-run.jar").exists() or any(
        REGISTRY_LIB.glob("apicurio-registry-app-*-runner.jar")
    )


class LocalRegistry:
    """One Apicurio Registry process on ``127.0.0.1:port``, its log under ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        start_timeout_s: int = 120,
        persistent: bool = False,
    ):
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port()
        self.start_timeout_s = start_timeout_s
        self.persistent = persistent

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.persistent:
            # registry.sh passes REGISTRY_HEAP_OPTS to java as they are: the place for one more
            # system property. Apicurio's default storage is SQL on an in-memory H2 database;
            # the same on a file survives a restart.
            database = (self.workdir / "storage" / "registry").resolve()
            if " " in str(database):
                raise RegistryUnavailable(f"persistent storage path has a space: {database}")
            heap = env.get("REGISTRY_HEAP_OPTS", "-Xms64m -Xmx512m")
            env["REGISTRY_HEAP_OPTS"] = f"{heap} -Dapicurio.datasource.url=jdbc:h2:file:{database}"
        return env

    @property
    def url(self) -> str:
        """The Confluent-compatible API, what ``SchemaRegistryClient`` takes as ``url``."""
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    def _options(self) -> list[str]:
        return ["--dir", str(self.workdir)]

    def start(self) -> LocalRegistry:
        """Start and return once the Confluent-compatible API answers."""
        if not fetched():
            raise RegistryUnavailable(
                f"Apicurio Registry not found in {REGISTRY_LIB}: run "
                f"`{REGISTRY_SH.relative_to(REPO)} fetch` (Maven fetches it once), or set "
                "SCHEMA_REGISTRY_URL to use a running Confluent-compatible registry"
            )
        command = [
            str(REGISTRY_SH),
            "start",
            *self._options(),
            "--port",
            str(self.port),
            "--timeout",
            str(self.start_timeout_s),
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=self.start_timeout_s + 60,
            env=self._env(),
        )
        if done.returncode != 0:
            raise RegistryUnavailable(
                f"local schema registry failed to start at {self.url} "
                f"(dir {self.workdir}):\n{done.stderr}"
            )
        return self

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with ``kill=True``); the in-memory schemas are gone after
        (a ``persistent`` registry keeps them for its next start)."""
        command = [str(REGISTRY_SH), "stop", *self._options()]
        if kill:
            command.append("--kill")
        subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)

    def running(self) -> bool:
        done = subprocess.run(
            [str(REGISTRY_SH), "status", *self._options()], capture_output=True, text=True
        )
        return done.returncode == 0


def serve_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the URL of a real Confluent-compatible schema registry; the body of a fixture.

    ``SCHEMA_REGISTRY_URL`` when set; otherwise a local Apicurio Registry, stopped after.
    Never skips: without the fetched distribution it fails, saying how to fetch it.
    """
    if os.environ.get("SCHEMA_REGISTRY_URL"):
        yield os.environ["SCHEMA_REGISTRY_URL"]
        return
    registry = LocalRegistry(tmp_path_factory.mktemp("registry"))
    try:
        registry.start()
    except RegistryUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's registry URL (``serve_registry``), for a conftest to import."""
    yield from serve_registry(tmp_path_factory)
