"""RemoteRegistry against a real schema registry server (Apicurio Registry, started by the
fixture), and against a port nobody listens on (a registry that is down)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from registry_server import free_port, serve_registry

from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.registry import (
    LocalSchemas,
    RegistryUnavailable,
    RemoteRegistry,
    rubin_schema_id,
    rubin_versions,
)
from stampflow.schemas.rubin import RubinAlert
from stampflow.schemas.wire import frame

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory):
    yield from serve_registry(tmp_path_factory)


def _sample_record_bytes(version: str) -> bytes:
    data = (rubin_versions()[version].parent / "sample_data" / "fakeAlert.avro").read_bytes()
    return decode_packet(data).alerts[0].record_bytes


def test_rubin_schemas_registered_in_a_real_registry_decode_framed_alerts(schema_registry_url):
    local = LocalSchemas.rubin()
    client = SchemaRegistryClient({"url": schema_registry_url})
    run = uuid.uuid4().hex[:8]
    # One subject per version, as Rubin's topic-name strategy does (lsst-alerts-v7.1-value).
    version_of = {rubin_schema_id(version): version for version in rubin_versions()}
    registered = {
        local_id: client.register_schema(
            f"lsst-alerts-v{version_of[local_id]}-{run}-value", Schema(text, "AVRO")
        )
        for local_id, text in local.items()
    }
    assert len(set(registered.values())) == len(local)  # a distinct id per version

    remote = RemoteRegistry(schema_registry_url, {"timeout": 10})
    for local_id, server_id in registered.items():
        version = version_of[local_id]
        body = _sample_record_bytes(version)
        message = frame(server_id, body)  # what a Rubin producer would send: bytes only
        (alert,) = decode_packet(message, registry=remote).alerts
        assert isinstance(alert, RubinAlert)
        assert alert.schema_id == server_id and alert.schema_version == version
        assert alert.record_bytes == body
        assert alert.view.band == "r" and alert.view.ra == pytest.approx(351.570546978)
    # Cached by id: asking again is no request and the same object.
    some_id = next(iter(registered.values()))
    assert remote.lookup(some_id) is remote.lookup(some_id)

    unknown = max(registered.values()) + 10_000
    with pytest.raises(PacketError, match=str(unknown)) as caught:
        decode_packet(frame(unknown, _sample_record_bytes("11.0")), registry=remote)
    assert caught.value.reason == "unknown_schema_id"


def test_register_through_remote_registry_returns_the_servers_id(schema_registry_url):
    local = LocalSchemas.rubin()
    remote = RemoteRegistry(schema_registry_url)
    subject = f"stampflow-test-{uuid.uuid4().hex[:8]}-value"
    schema_id = remote.register(subject, local[1100])
    assert remote.register(subject, local[1100]) == schema_id  # idempotent
    fresh = RemoteRegistry(schema_registry_url)
    message = frame(schema_id, _sample_record_bytes("11.0"))
    assert decode_packet(message, registry=fresh).alerts[0].schema_version == "11.0"


def test_a_registry_that_is_down_is_registry_unavailable_not_a_bad_packet():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = RemoteRegistry(url, {"max.retries": 0, "timeout": 2})
    message = frame(701, _sample_record_bytes("7.1"))
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        decode_packet(message, registry=remote)
