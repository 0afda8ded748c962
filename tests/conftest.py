"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

# Test modules import the broker helper as `kafka_broker` (the tests folder is no package).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka_broker import (  # noqa: E402
    KafkaUnavailable,
    LocalKafka,
    create_topic,
    delete_topics,
    unique_topic,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_ALERTS = REPO.parent / "shared" / "alerts"
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the run with pytest's own exit status once every report is written, skipping the
    interpreter's teardown of native libraries (torch's and scikit-learn's OpenMP runtimes,
    librdkafka, ONNX Runtime). One CI rehearsal in four segfaulted there, after all 602
    tests had passed. Every fixture, the Kafka broker's included, is already torn down by
    then."""
    if _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


@pytest.fixture(scope="session")
def shared_alerts() -> Path:
    """The real public alert packets in ``../shared/alerts`` (never copied into the repo)."""
    if not (SHARED_ALERTS / "ztf").is_dir():
        pytest.skip(f"real alert packets not found at {SHARED_ALERTS} (../shared/alerts)")
    return SHARED_ALERTS


@contextmanager
def _local_kafka(workdir: Path) -> Iterator[LocalKafka]:
    """A started local broker, stopped on exit; one that cannot start fails the test."""
    broker = LocalKafka(workdir)
    try:
        broker.start()
    except KafkaUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


def _testcontainers_requested() -> bool:
    """Whether ``STAMPFLOW_TEST_KAFKA=testcontainers`` asks for a Kafka container.

    Only on request: a Docker engine answering (say, one started to build the image) must not
    make every Kafka test pull a broker image from a registry that may be unreachable.
    """
    return os.environ.get("STAMPFLOW_TEST_KAFKA", "").strip().lower() == "testcontainers"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Apache Kafka broker shared by the whole test session.

    In order: ``KAFKA_BOOTSTRAP`` when set; a testcontainers Kafka when
    ``STAMPFLOW_TEST_KAFKA=testcontainers`` asks for one (it needs a Docker engine and a
    reachable image registry); otherwise the local KRaft broker from ``deploy/kafka`` (stopped
    at session end), even where a Docker engine answers. Never skips: without jars it fails,
    telling to run ``make kafka-jars``.
    """
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    if _testcontainers_requested():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    with _local_kafka(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap


@pytest.fixture
def restartable_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A private local broker, already started, that a test may stop (or kill) and start again.

    Its ports and data directory stay the same across restarts. Stopped after the test.
    """
    with _local_kafka(tmp_path / "kafka") as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str):
    """An AdminClient connected to the session broker."""
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """``make_topic(prefix, partitions=1) -> name``: a fresh topic on the session broker.

    Names get a random suffix so tests never see each other's data; the topics are deleted
    after the test.
    """
    created: list[str] = []

    def make(prefix: str, partitions: int = 1) -> str:
        name = create_topic(kafka_bootstrap, unique_topic(prefix), partitions)
        created.append(name)
        return name

    yield make
    delete_topics(kafka_bootstrap, created)
