"""Basic auth to the schema registry: ``basic.auth.user.info`` (confluent-kafka's setting) or
``user:password@`` in the URL, through ``RemoteRegistry``, ``stampflow consume`` and
``api.consume``, against a tiny local HTTP server that answers 401 without the credentials
and 200 with them; the password never shows (not in ``url``, ``repr``, errors or output)."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stampflow import api
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.registry import (
    LocalSchemas,
    RegistryUnavailable,
    RemoteRegistry,
    redact_url,
)
from stampflow.schemas.wire import WIRE_HEADER, frame
from stampflow.stream.cli import main
from stampflow.stream.consume_cmd import open_output_registry, registry_settings
from stampflow.training.synth import synthesise_rubin

USER, PASSWORD = "reader", "S3cr-t:pw%41"  # a colon and a %-escape: both must survive
SCHEMA_ID = 31  # the server's id for Rubin's 11.0 schema


class AuthRegistry:
    """A Confluent-compatible ``GET /schemas/ids/<id>`` that demands HTTP basic auth."""

    def __init__(self, schemas: dict[int, str]) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                seen.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != expected:
                    return self._reply(401, {"error_code": 401, "message": "Unauthorized"})
                found = re.fullmatch(r"/schemas/ids/(\d+)(\?.*)?", self.path)
                schema = schemas.get(int(found[1])) if found else None
                if schema is None:
                    return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                return self._reply(200, {"schema": schema, "schemaType": "AVRO"})

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="registry"')
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url_with(self, user: str, password: str) -> str:
        from urllib.parse import quote

        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:" + str(
            self.server.server_address[1]
        )


@pytest.fixture(scope="module")
def registry() -> Iterator[AuthRegistry]:
    server = AuthRegistry({SCHEMA_ID: LocalSchemas.rubin()[1100]})
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(scope="module")
def message() -> bytes:
    """One synthetic Rubin 11.0 alert framed under the server's id."""
    ((_name, packet, _row),) = synthesise_rubin(1, 5, broken_fraction=0.0, progress=False)
    return frame(SCHEMA_ID, packet[WIRE_HEADER:])


FAST = {"max.retries": 0, "timeout": 5}


def test_without_credentials_the_registry_answers_401_and_says_why(registry, message):
    remote = RemoteRegistry(registry.url, FAST)
    with pytest.raises(RegistryUnavailable, match="HTTP 401.*credentials") as caught:
        decode_packet(message, registry=remote)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert registry.requests[-1][1] is None  # nothing was sent


def test_basic_auth_user_info_is_sent_and_never_shown(registry, message):
    config = {**FAST, "basic.auth.user.info": f"{USER}:{PASSWORD}"}
    remote = RemoteRegistry(registry.url, config)
    (alert,) = decode_packet(message, registry=remote).alerts
    assert alert.survey == "rubin" and alert.schema_version == "11.0"
    assert PASSWORD not in repr(remote) and "'basic.auth.user.info': '***'" in repr(remote)

    wrong = RemoteRegistry(registry.url, {**FAST, "basic.auth.user.info": f"{USER}:{PASSWORD}x"})
    with pytest.raises(RegistryUnavailable, match="HTTP 401") as caught:
        wrong.lookup(SCHEMA_ID)
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(wrong)


def test_credentials_in_the_url_are_sent_and_masked(registry, message):
    remote = RemoteRegistry(registry.url_with(USER, PASSWORD), FAST)
    assert decode_packet(message, registry=remote).alerts[0].survey == "rubin"
    assert remote.url == f"http://{USER}:***@127.0.0.1:{registry.server.server_address[1]}"
    assert PASSWORD not in repr(remote)
    assert "%41" not in repr(remote)  # neither the decoded nor the escaped form

    down = RemoteRegistry(
        f"http://{USER}:{PASSWORD.replace(':', '%3A')}@127.0.0.1:9/", {**FAST, "timeout": 1}
    )  # port 9 (discard): nobody listens
    with pytest.raises(RegistryUnavailable, match="unreachable") as caught:
        down.lookup(SCHEMA_ID)
    assert "S3cr" not in str(caught.value) and f"{USER}:***@" in str(caught.value)


def test_the_http_clients_request_log_holds_no_password(registry, message, caplog):
    caplog.set_level("DEBUG")  # httpx logs every request's URL at INFO
    remote = RemoteRegistry(registry.url_with(USER, PASSWORD), FAST)
    assert decode_packet(message, registry=remote).alerts
    remote = RemoteRegistry(registry.url, {**FAST, "basic.auth.user.info": f"{USER}:{PASSWORD}"})
    assert decode_packet(message, registry=remote).alerts
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/schemas/ids/31" in logged  # the requests were logged...
    assert "S3cr" not in logged and f"{USER}:" not in logged  # ...without the credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@ss@host:1/x", "https://u:***@host:1/x"),  # an unescaped @ in it
        ("https://u:pw@h/a@b", "https://u:***@h/a@b"),
        ("http://h:8081/apis/ccompat/v7", "http://h:8081/apis/ccompat/v7"),
        ("https://u:p@h1,https://v:q@h2", "https://u:***@h1,https://v:***@h2"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_both_forms_at_once_is_refused_without_the_password(registry):
    with pytest.raises(ValueError, match="both in the URL and in basic.auth.user.info") as caught:
        RemoteRegistry(registry.url_with(USER, PASSWORD), {"basic.auth.user.info": "a:b"})
    assert "S3cr" not in str(caught.value)


def test_consume_settings_come_from_flags_over_the_daemons_variables():
    env = {
        "STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__BASIC_AUTH_USER_INFO": "env:pw",
        "STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__TIMEOUT": "7",
        "STAMPFLOW_OTHER": "x",
    }
    assert registry_settings([], env, url="http://r") == {
        "basic.auth.user.info": "env:pw",
        "timeout": 7,
    }
    flags = ["basic.auth.user.info=flag:pw=with=equals"]
    assert registry_settings(flags, env, url="http://r")["basic.auth.user.info"] == (
        "flag:pw=with=equals"
    )
    assert registry_settings([], env, url=None) == {}  # no registry URL: the variables wait
    with pytest.raises(ValueError, match="KEY=VALUE") as caught:
        registry_settings([f"{PASSWORD}"], {}, url="http://r")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ValueError, match="need a schema registry URL"):
        open_output_registry(None, "rubin", config={"basic.auth.user.info": "a:b"})


def test_stampflow_consume_reads_with_basic_auth(registry, message, tmp_path: Path, capsys):
    file = tmp_path / "alert.wire"  # one wire-format message in a file: read_files reads it
    file.write_bytes(message)
    base = ["consume", str(file), "--schema-registry", registry.url]

    assert main([*base, "--schema-registry-config", "max.retries=0"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "credentials" in err

    auth = f"basic.auth.user.info={USER}:{PASSWORD}"
    assert main([*base, "--schema-registry-config", auth]) == 0
    captured = capsys.readouterr()
    assert "rubin" in captured.out and "1 matching record(s)" in captured.err
    assert PASSWORD not in captured.out + captured.err

    wrong = f"basic.auth.user.info={USER}:{PASSWORD}-wrong"
    assert main([*base, "--schema-registry-config", wrong, "--schema-registry-config",
                 "max.retries=0"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "HTTP 401" in err and PASSWORD not in err


def test_stampflow_consume_takes_the_daemons_variable(
    registry, message, tmp_path: Path, capsys, monkeypatch
):
    file = tmp_path / "alert.wire"
    file.write_bytes(message)
    monkeypatch.setenv(
        "STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__BASIC_AUTH_USER_INFO", f"{USER}:{PASSWORD}"
    )
    assert main(["consume", str(file), "--schema-registry", registry.url]) == 0
    assert "1 matching record(s)" in capsys.readouterr().err


def test_api_consume_refuses_settings_without_a_registry_url():
    with pytest.raises(ValueError, match="registry_config needs"):
        api.consume("127.0.0.1:1", "t", registry="rubin", registry_config={"timeout": 1})


@pytest.mark.integration
def test_api_consume_reads_rubin_output_with_basic_auth(
    registry, message, kafka_bootstrap: str, make_topic
):
    from confluent_kafka import Producer

    topic = make_topic("auth-out")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, message)
    assert producer.flush(30) == 0

    config = {"basic.auth.user.info": f"{USER}:{PASSWORD}", **FAST}
    (record,) = api.consume(
        kafka_bootstrap, topic, timeout=5, registry=registry.url, registry_config=config
    )
    assert "diaSource" in record
    (record,) = api.consume(
        kafka_bootstrap, topic, timeout=5, registry=registry.url_with(USER, PASSWORD)
    )
    assert "diaSource" in record
    with pytest.raises(Exception, match="HTTP 401") as caught:
        list(api.consume(kafka_bootstrap, topic, timeout=5, registry=registry.url))
    assert PASSWORD not in str(caught.value)
