"""Where wire-format messages' writer schemas come from: a schema registry, by schema id.

``SchemaRegistry`` is what ``codec.decode_packet(data, registry=...)`` asks; two kinds:

* ``LocalSchemas``: offline, a set of schemas by id: ``LocalSchemas.rubin()`` holds every
  Rubin alert schema 7.0 and later (id major*100+minor, e.g. 701 for 7.1, each resolved into
  one self-contained schema), vendored in ``schemas/rubin/<id>.avsc`` so serving needs no
  lsst package (``python -m stampflow.schemas.vendor_rubin`` regenerates them from
  ``lsst-alert-packet``); ``from_directory`` reads ``<id>.avsc`` files;
* ``RemoteRegistry``: a Confluent-compatible registry server through confluent-kafka's
  ``SchemaRegistryClient`` (url and auth settings passed through: basic auth as
  ``basic.auth.user.info`` ``user:password`` or in the URL, ``https://user:password@host``),
  cached by id. Its password is never shown: not in its ``url``, ``repr`` or errors.

Both can ``register(subject, schema)`` (the annotated output schemas): the server assigns
the id; ``LocalSchemas`` derives a deterministic one from the schema (``local_schema_id``)
and learns it, so its own output decodes again.

An id the registry does not have is ``PacketError("unknown_schema_id")`` (dead-letter the
message); a registry that cannot answer is ``RegistryUnavailable`` (retry later: the message
is fine). ``RetryingRegistry`` wraps either and retries ``RegistryUnavailable`` with
back-off, for the daemon; ``open_registry`` builds the one the settings name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit

from stampflow.schemas.errors import PacketError

RUBIN_MIN_MAJOR = 7  # the first version with the alert layout the daemon reads
RUBIN_SUBJECT = "alert-packet"  # the subject Rubin registers every version under
VENDORED_RUBIN = "rubin"  # schemas/rubin/<id>.avsc: Rubin's schemas, shipped with stampflow
RUBIN_LOCAL = "rubin"  # the ``local`` setting naming them (else a directory path)
# Deterministic ids of schemas registered with ``LocalSchemas`` (stampflow's annotated
# output): in [2**30, 2**31), far from Rubin's major*100+minor and from server-assigned ids.
LOCAL_ID_BASE = 2**30

log = logging.getLogger(__name__)


class RegistryUnavailable(RuntimeError):
    """The registry could not be asked (down, timeout, auth refused, server error)."""


@runtime_checkable
class SchemaRegistry(Protocol):
    """Schema id to the writer schema (its JSON text, or the parsed dict)."""

    def lookup(self, schema_id: int) -> str | dict[str, Any]:
        """The schema for ``schema_id``.

        Raises ``PacketError`` ``unknown_schema_id`` when the registry has no such id and
        ``RegistryUnavailable`` when it cannot be asked.
        """
        ...


# user:password@ up to the authority's last "@" (an unescaped "@" in a password included)
_USERINFO_PASSWORD = re.compile(r"(//[^/@:\s]*):[^/\s]*@")
MASK = "***"
# SchemaRegistryClient settings whose values are credentials (shown as ***).
_SECRET_SETTINGS = ("basic.auth.user.info", "ssl.key.password", "bearer.auth.token")


def redact_url(url: str) -> str:
    """``url`` safe to show: ``https://user:secret@host`` becomes ``https://user:***@host``."""
    return _USERINFO_PASSWORD.sub(rf"\1:{MASK}@", url)


def _is_secret_setting(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_SETTINGS or any(
        marker in lowered for marker in ("password", "secret", "token")
    )


def redact_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``SchemaRegistryClient`` settings safe to show: credentials as ``***``."""
    return {k: (MASK if _is_secret_setting(k) else v) for k, v in config.items()}


def _secrets(url: str, config: Mapping[str, Any]) -> list[str]:
    """Every credential text in ``url`` and ``config``, longest first (to mask in errors)."""
    found: set[str] = set()
    parsed = urlsplit(url.split(",")[0].strip())
    for part in (parsed.password, unquote(parsed.password or "")):
        if part:
            found.add(part)
    for name, value in config.items():
        if _is_secret_setting(name) and isinstance(value, str) and value:
            found.add(value)
            if name.lower() == "basic.auth.user.info" and ":" in value:
                found.add(value.split(":", 1)[1])
    return sorted((s for s in found if s), key=len, reverse=True)


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """``url`` (one or several, comma-separated) without userinfo, and the first one's as
    ``user:password`` (%-escapes decoded, as the client decodes them), or None."""
    plain, found = [], None
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.username is not None or parts.password is not None:
            if found is None:
                found = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            netloc = parts.netloc.rpartition("@")[2]
            one = urlunsplit(parts._replace(netloc=netloc))
        plain.append(one.strip())
    return ",".join(plain), found


def unknown_schema_id(schema_id: int, where: str = "the registry") -> PacketError:
    return PacketError("unknown_schema_id", f"schema id {schema_id} is not in {where}")


def local_schema_id(schema: str | dict[str, Any]) -> int:
    """The id ``LocalSchemas.register`` gives ``schema``: from its parsing canonical form, so
    the same schema gets the same id in every process and on every machine."""
    from fastavro import parse_schema
    from fastavro.schema import to_parsing_canonical_form

    parsed = json.loads(schema) if isinstance(schema, str) else schema
    canonical = to_parsing_canonical_form(parse_schema(parsed, _write_hint=False))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return LOCAL_ID_BASE + int.from_bytes(digest[:4], "big") % LOCAL_ID_BASE


def rubin_schema_id(version: str) -> int:
    """Rubin's registry id of a schema version: ``"7.1"`` -> 701, ``"11.0"`` -> 1100."""
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit() and int(minor) < 100):
        raise ValueError(f"a Rubin schema version is MAJOR.MINOR, got {version!r}")
    return int(major) * 100 + int(minor)


class LocalSchemas(Mapping[int, str]):
    """A fixed set of schemas by id, held as JSON text; also a read-only mapping."""

    def __init__(
        self,
        schemas: Mapping[int, str | dict[str, Any]],
        where: str = "",
        *,
        directory: Path | None = None,
    ) -> None:
        self._schemas = {
            int(schema_id): schema if isinstance(schema, str) else json.dumps(schema)
            for schema_id, schema in schemas.items()
        }
        self.where = where or f"the local schemas ({len(self._schemas)} ids)"
        # from_directory: registered schemas are written there too (other readers find them)
        self.directory = directory
        self._lock = threading.Lock()

    def register(self, subject: str, schema: str | dict[str, Any]) -> int:
        """Learn ``schema`` under its deterministic id (``local_schema_id``) and return it.

        ``subject`` is accepted for symmetry with ``RemoteRegistry`` (ids are per schema).
        With a directory (``from_directory``), the schema is also written there as
        ``<id>.avsc``, so another process reading the directory decodes what was framed.
        """
        text = schema if isinstance(schema, str) else json.dumps(schema)
        schema_id = local_schema_id(text)
        with self._lock:
            known = self._schemas.get(schema_id)
            if known is not None and json.loads(known) != json.loads(text):
                raise ValueError(f"schema id {schema_id} already holds another schema")
            self._schemas[schema_id] = text
        if self.directory is not None and known is None:
            file = self.directory / f"{schema_id}.avsc"
            if not file.exists():
                try:
                    partial = file.with_suffix(".avsc.part")
                    partial.write_text(text + "\n", encoding="utf-8")
                    partial.replace(file)
                except OSError as exc:  # a read-only directory: known in this process only
                    log.warning("cannot write %s: %s", file, exc)
        return schema_id

    def lookup(self, schema_id: int) -> str:
        schema = self._schemas.get(schema_id)
        if schema is None:
            raise unknown_schema_id(schema_id, self.where)
        return schema

    def __getitem__(self, schema_id: int) -> str:
        return self._schemas[schema_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._schemas)

    def __len__(self) -> int:
        return len(self._schemas)

    @classmethod
    def rubin(cls) -> LocalSchemas:
        """Every Rubin alert schema 7.0 and later, as vendored in ``schemas/rubin/`` (a fresh
        object: what one registers is not seen by another)."""
        vendored = _vendored_rubin()
        return cls(dict(vendored.items()), vendored.where)

    @classmethod
    def from_directory(cls, path: str | Path) -> LocalSchemas:
        """``<id>.avsc`` (or ``<id>.json``) files, one schema each, e.g. ``701.avsc``."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"schema directory {folder} does not exist")
        schemas: dict[int, str] = {}
        for file in sorted(folder.iterdir()):
            if file.suffix in (".avsc", ".json") and file.stem.isdigit():
                text = file.read_text(encoding="utf-8")
                json.loads(text)  # a broken file fails here, at start-up, naming itself
                schemas[int(file.stem)] = text
        if not schemas:
            raise ValueError(f"no <id>.avsc schema files in {folder}")
        return cls(schemas, f"the schema directory {folder}", directory=folder)

    def write_directory(self, path: str | Path) -> list[Path]:
        """Write every schema as ``<id>.avsc`` (what ``from_directory`` reads back)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for schema_id, text in sorted(self._schemas.items()):
            file = folder / f"{schema_id}.avsc"
            file.write_text(text + "\n", encoding="utf-8")
            written.append(file)
        return written


def lsst_schema_root() -> Path:
    """The ``schema/`` folder of the installed lsst-alert-packet (``<major>/<minor>/...``).

    Found without importing the package (which pulls in lsst.resources and more).
    """
    try:
        spec = importlib.util.find_spec("lsst.alert.packet")
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "lsst-alert-packet is not installed: it ships Rubin's alert schemas "
            "(pip install lsst-alert-packet)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "schema"


def rubin_versions(root: Path | None = None) -> dict[str, Path]:
    """Version ("7.1") to its primary schema file, for each version 7.0+ in ``root``."""
    root = lsst_schema_root() if root is None else root
    versions: dict[str, Path] = {}
    for primary in root.glob("*/*/lsst.v*_*.alert.avsc"):
        found = re.fullmatch(r"lsst\.v(\d+)_(\d+)\.alert\.avsc", primary.name)
        if found and int(found[1]) >= RUBIN_MIN_MAJOR:
            versions[f"{int(found[1])}.{int(found[2])}"] = primary
    return dict(sorted(versions.items(), key=lambda item: rubin_schema_id(item[0])))


@cache
def _vendored_rubin() -> LocalSchemas:
    folder = files("stampflow.schemas").joinpath(VENDORED_RUBIN)
    schemas = {
        int(entry.name.removesuffix(".avsc")): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".avsc") and entry.name.removesuffix(".avsc").isdigit()
    }
    if not schemas:
        raise RuntimeError(f"no vendored Rubin schemas in {folder}")
    return LocalSchemas(schemas, "stampflow's Rubin schemas (7.0 onwards)")


def lsst_rubin_schemas() -> LocalSchemas:
    """Every Rubin alert schema (7.0 and later) the installed lsst-alert-packet ships: what
    ``schemas/rubin/`` is regenerated from (``vendor_rubin``)."""
    return _lsst_rubin_schemas()


@cache
def _lsst_rubin_schemas() -> LocalSchemas:
    from fastavro.schema import load_schema

    root = lsst_schema_root()
    schemas = {}
    for version, primary in rubin_versions(root).items():
        # load_schema resolves the references to lsst.vM_m.diaSource etc. from the files
        # beside it. Kept whole, not in the parsing canonical form Rubin's own registry
        # serves: that form drops logical types (8.0's timestamp-micros), defaults and docs,
        # which decoding and the output schema (Rubin's plus a field) need. Both forms read
        # the same bytes.
        schemas[rubin_schema_id(version)] = json.dumps(load_schema(str(primary), _write_hint=False))
    if not schemas:
        raise RuntimeError(f"no Rubin alert schemas (7.0 or later) under {root}")
    return LocalSchemas(schemas, "the Rubin schemas of lsst-alert-packet")


class RemoteRegistry:
    """A Confluent-compatible schema registry (Confluent, Apicurio's ccompat API, Karapace).

    ``config`` is passed to confluent-kafka's ``SchemaRegistryClient`` as it is, e.g.
    ``{"basic.auth.user.info": "user:secret", "ssl.ca.location": "...", "timeout": 10}``;
    basic auth may also be the URL's userinfo (``https://user:secret@host``), not both.
    ``url`` is the URL as it may be shown (its password ``***``); neither ``repr`` nor an
    error message holds a credential. A registry refusing the credentials (HTTP 401/403)
    is ``RegistryUnavailable``, saying so.

    Schemas are immutable once registered, so every schema fetched is kept for good;
    unknown ids are remembered for ``unknown_ttl_s`` so a flood of them does not become a
    flood of requests.
    """

    def __init__(
        self,
        url: str,
        config: Mapping[str, Any] | None = None,
        *,
        unknown_ttl_s: float = 30.0,
        client: Any = None,
    ) -> None:
        self.url = redact_url(url)
        self._shown_config = redact_settings(config or {})
        self._secrets = _secrets(url, config or {})
        settings = dict(config or {})
        # Credentials in the URL go to the client as basic.auth.user.info, the URL without
        # them: the HTTP client logs every request's URL (at INFO), never its auth header.
        url, userinfo = _split_userinfo(url)
        if userinfo is not None:
            if "basic.auth.user.info" in settings:
                raise ValueError(
                    f"schema registry {self.url}: credentials both in the URL and in "
                    "basic.auth.user.info; give them once"
                )
            settings["basic.auth.user.info"] = userinfo
        if client is None:
            try:
                from confluent_kafka.schema_registry import SchemaRegistryClient
            except ImportError as exc:
                raise RuntimeError(
                    "the schema registry client needs confluent-kafka's schemaregistry extra "
                    f"(pip install 'confluent-kafka[schemaregistry]'): {exc}"
                ) from exc
            try:
                client = SchemaRegistryClient({**settings, "url": url})
            except (ValueError, TypeError) as exc:  # a setting it refuses, said without secrets
                raise type(exc)(f"schema registry {self.url}: {self._mask(str(exc))}") from None
        self.client = client
        self.unknown_ttl_s = unknown_ttl_s
        self._schemas: dict[int, str] = {}
        self._unknown: dict[int, float] = {}  # id -> monotonic time it was found missing
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteRegistry(url={self.url!r}, config={self._shown_config!r})"

    def _mask(self, text: str) -> str:
        """``text`` with every credential of this registry replaced by ``***``."""
        text = redact_url(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def lookup(self, schema_id: int) -> str:
        schema = self._schemas.get(schema_id)
        if schema is not None:
            return schema
        with self._lock:
            schema = self._schemas.get(schema_id)
            if schema is not None:
                return schema
            missing_since = self._unknown.get(schema_id)
            if missing_since is not None and time.monotonic() - missing_since < self.unknown_ttl_s:
                raise unknown_schema_id(schema_id, f"the registry at {self.url}")
            schema = self._fetch(schema_id)
            self._unknown.pop(schema_id, None)
            self._schemas[schema_id] = schema
            return schema

    def _fetch(self, schema_id: int) -> str:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            found = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                if len(self._unknown) > 10_000:  # hostile ids must not grow memory
                    self._unknown.clear()
                self._unknown[schema_id] = time.monotonic()
                raise unknown_schema_id(schema_id, f"the registry at {self.url}") from exc
            raise RegistryUnavailable(
                f"schema registry {self.url} answered HTTP {exc.http_status_code} for schema "
                f"id {schema_id}{_auth_hint(exc.http_status_code)}: "
                f"{self._mask(str(exc.error_message))}"
            ) from None
        except Exception as exc:  # connection refused, timeout, TLS: whatever httpx raises
            raise RegistryUnavailable(
                f"schema registry {self.url} unreachable for schema id {schema_id}: "
                f"{type(exc).__name__}: {self._mask(str(exc))}"
            ) from None
        kind = (found.schema_type or "AVRO").upper()
        if kind != "AVRO":
            raise PacketError(
                "unknown_schema", f"schema id {schema_id} is a {kind} schema, not Avro"
            )
        return found.schema_str

    def register(self, subject: str, schema: str | dict[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent) and return its id."""
        from confluent_kafka.schema_registry import Schema

        text = schema if isinstance(schema, str) else json.dumps(schema)
        try:
            schema_id = self.client.register_schema(subject, Schema(text, "AVRO"))
        except Exception as exc:
            status = getattr(exc, "http_status_code", None)
            raise RegistryUnavailable(
                f"schema registry {self.url} refused to register {subject}"
                f"{_auth_hint(status)}: {self._mask(str(exc))}"
            ) from None
        with self._lock:
            self._schemas.setdefault(schema_id, text)
            self._unknown.pop(schema_id, None)
        return schema_id


def _auth_hint(status: int | None) -> str:
    if status == 401:
        return " (credentials missing or refused: basic.auth.user.info or user:password@host)"
    if status == 403:
        return " (these credentials may not do that)"
    return ""


class RetryingRegistry:
    """A registry whose ``RegistryUnavailable`` is retried, with back-off, until it answers.

    For the daemon: a registry that is down is nobody's fault, so the message waits instead
    of becoming a dead letter, and the worker does not crash. ``on_retry(seconds, error)``
    is told of each wait (a metric, a log line); ``beat()`` is called while waiting (the
    liveness heartbeat), and ``stopping()`` ends the waiting by re-raising the error (the
    batch is then not committed, so it comes again). ``unknown_schema_id`` is passed on at
    once: that one is the message's fault.

    The waits double from ``first_wait_s`` up to ``max_wait_s``: a registry back after an
    outage is asked again within ``max_wait_s``, which bounds the latency the outage adds
    past its end (10 s: well inside Rubin's minute from exposure to alert).
    """

    def __init__(
        self,
        inner: SchemaRegistry,
        *,
        first_wait_s: float = 0.5,
        max_wait_s: float = 10.0,
        on_retry: Callable[[float, RegistryUnavailable], None] | None = None,
        on_answer: Callable[[], None] | None = None,
        beat: Callable[[], None] | None = None,
        stopping: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.on_retry = on_retry
        self.on_answer = on_answer
        self.beat = beat
        self.stopping = stopping
        self._sleep = sleep

    @property
    def where(self) -> str:
        return str(getattr(self.inner, "where", None) or getattr(self.inner, "url", "registry"))

    def lookup(self, schema_id: int) -> str | dict[str, Any]:
        return self._retried(lambda: self.inner.lookup(schema_id))

    def register(self, subject: str, schema: str | dict[str, Any]) -> int:
        register = getattr(self.inner, "register", None)
        if register is None:
            raise TypeError(f"{type(self.inner).__name__} cannot register schemas")
        return self._retried(lambda: register(subject, schema))

    def _retried(self, call: Callable[[], Any]) -> Any:
        wait = self.first_wait_s
        failed = False
        while True:
            try:
                answer = call()
            except RegistryUnavailable as exc:
                if self.stopping is not None and self.stopping():
                    raise
                failed = True
                if self.on_retry is not None:
                    self.on_retry(wait, exc)
                log.warning("%s; retrying in %.1f s", exc, wait)
                self._wait(wait)
                wait = min(self.max_wait_s, wait * 2)
                continue
            if failed and self.on_answer is not None:
                self.on_answer()
            return answer

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            if self.beat is not None:
                self.beat()
            left = end - time.monotonic()
            if left <= 0 or (self.stopping is not None and self.stopping()):
                return
            self._sleep(min(left, 1.0))


def open_registry(
    url: str | None = None,
    config: Mapping[str, Any] | None = None,
    local: str | Path | None = None,
) -> SchemaRegistry | None:
    """The registry the settings name: ``RemoteRegistry(url, config)``, or with ``local``
    ``LocalSchemas.rubin()`` (``"rubin"``) or ``LocalSchemas.from_directory(local)``; None
    when neither is set. Both set is a ``ValueError``: ids of one mean nothing to the other."""
    if url and local:
        raise ValueError("set either a schema registry url or a local schema directory, not both")
    if url:
        return RemoteRegistry(url, config)
    if local is None or str(local) == "":
        return None
    if str(local) == RUBIN_LOCAL:
        return LocalSchemas.rubin()
    return LocalSchemas.from_directory(local)
