"""The daemon's one configuration object: a YAML file plus ``STAMPFLOW_...`` environment overrides.

Layout of the file (every key optional; see ``deploy/`` and the README for full examples)::

    input:
      bootstrap: localhost:9092      # Kafka mode when set; otherwise ``archive`` is read
      topics: [ztf-alerts]
      group_id: stampflow
      archive: ./night.tar.gz        # a directory, a glob or a nightly .tar.gz of packets
      schema_registry:               # writer schemas of Confluent wire-format messages (Rubin)
        url: https://registry:8081   # a Confluent-compatible registry, or:
        local: rubin                 # offline: Rubin's schemas (ids 700...), or a dir of <id>.avsc
        config: {basic.auth.user.info: user:secret, timeout: 10}   # SchemaRegistryClient's
    output:
      topic: stampflow-annotated     # Kafka mode
      dir: ./out/annotated           # archive mode: Avro container files
      mode: full                     # full | slim
      compression: lz4               # none | gzip | snappy | lz4 | zstd
    dead_letter:
      topic: stampflow-dead-letters  # Kafka mode
      dir: ./out/dead-letters        # archive mode (unset: dead-letters beside output.dir)
    batching: {max_batch: 256, max_wait_ms: 100}
    classifiers:                     # an empty list is valid: alerts pass through unannotated
      - name: blend
        model_dir: null              # null: the bundle shipped with stampflow
    metrics: {port: 9108, host: 127.0.0.1}   # /metrics, /healthz, /readyz; port null: none
    shutdown: {drain_timeout_s: 30}
    liveness: {stuck_after_s: 600, max_rewinds: 10}   # when /healthz calls the worker stuck
    workers: auto                    # Kafka: the cores, at most the input partitions; archive: 1
    threads: auto                    # per worker: torch/OpenMP/BLAS threads; auto: cores/workers
    device: cpu                      # auto | cpu | cuda: where the morphology CNN runs
    backpressure: {max_in_flight: 10000, prefetch_kbytes: 32768, prefetch_messages: 1000,
                   fetch_backoff_ms: 10}
    processing: at_least_once        # or exactly_once (Kafka transactions; see stream/README.md)
    kafka: {security.protocol: SASL_SSL, sasl.password: ...}   # librdkafka pass-through

Environment overrides: ``STAMPFLOW_<SECTION>__<KEY>=value`` (for example
``STAMPFLOW_BATCHING__MAX_BATCH=64``, ``STAMPFLOW_INPUT__TOPICS=a,b``, ``STAMPFLOW_WORKERS=4``)
and ``STAMPFLOW_KAFKA__<property>`` for any librdkafka property (``STAMPFLOW_KAFKA__SASL_PASSWORD``
and ``STAMPFLOW_KAFKA__SASL__PASSWORD`` both become ``sasl.password``); the schema registry
client's settings likewise: ``STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__BASIC_AUTH_USER_INFO``
is ``input.schema_registry.config`` ``basic.auth.user.info`` (and
``STAMPFLOW_INPUT__SCHEMA_REGISTRY__URL`` the url).

Values are never coerced by YAML: the file is read with every scalar as text (so an unquoted
password ``012345``, ``yes`` or ``~`` stays exactly what was written), environment values are
text too, and each typed key is converted here, an error naming the key. ``null``, ``~`` or
nothing means "unset" only for keys that may be unset (``input.bootstrap``, ``metrics.port``,
``classifiers[].model_dir``, ...); the ``kafka`` section is passed through verbatim. Secrets
are never shown: not in the ``repr``, not in a log line, not in an error (a YAML syntax
error gives its line and column, never the line's text).
"""

from __future__ import annotations

import math
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

import yaml

from stampflow.classifiers import registry
from stampflow.classifiers.device import DEVICES

ENV_PREFIX = "STAMPFLOW_"
OUTPUT_MODES = ("full", "slim")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
AT_LEAST_ONCE = "at_least_once"
EXACTLY_ONCE = "exactly_once"
PROCESSING_MODES = (AT_LEAST_ONCE, EXACTLY_ONCE)
# Substrings of property names whose values must never be printed (sasl.password,
# ssl.key.password, ssl.keystore.password, sasl.oauthbearer.client.secret, ssl.key.pem, ...).
_SECRET_MARKERS = (
    "password",
    "secret",
    "token",
    "credential",
    "private",
    "key.pem",
    "ssl.key",
    "ssl_key",
    "keystore",
    "oauthbearer.config",
    "auth.user.info",  # the schema registry's basic.auth.user.info (user:password)
    "bearer.auth",
)
REDACTED = "***"
FILE_KEY = "<file>"  # the key of errors about the config file itself
# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
# What YAML would read as null; "unset" for keys that may be unset, text everywhere else.
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class ConfigError(ValueError):
    """A config value that cannot be used; ``key`` is its dotted path (``batching.max_batch``)."""

    def __init__(self, key: str, why: str) -> None:
        self.key = key
        self.why = why
        super().__init__(why if key == FILE_KEY else f"config key {key!r}: {why}")


def is_secret(property_name: str) -> bool:
    """True for librdkafka properties whose values are credentials."""
    lowered = property_name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def redact(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``properties`` safe to log: credential values replaced by ``***``."""
    return {k: (REDACTED if is_secret(k) else v) for k, v in properties.items()}


def check_topic_name(key: str, name: str) -> None:
    """Kafka's rule: 1-249 characters of ``[a-zA-Z0-9._-]``, and neither ``.`` nor ``..``."""
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            key,
            f"{name!r} is not a valid Kafka topic name "
            "(1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-'; not '.' or '..')",
        )


# SchemaRegistryClient settings it wants as numbers (text from the file is converted).
_REGISTRY_NUMBERS = (
    "timeout",
    "cache.capacity",
    "cache.latest.ttl.sec",
    "max.retries",
    "retries.wait.ms",
    "retries.max.wait.ms",
)
RUBIN_SCHEMAS = "rubin"  # input.schema_registry.local: the Rubin schemas stampflow ships


@dataclass(frozen=True)
class SchemaRegistryConfig:
    """Where wire-format messages' writer schemas come from (``input.schema_registry``).

    ``url``: a Confluent-compatible registry (Confluent, Apicurio's ``/apis/ccompat/v7``,
    Karapace), ``config`` passed to confluent-kafka's ``SchemaRegistryClient`` as is
    (``basic.auth.user.info``, ``ssl.ca.location``, ``timeout``, ...; secrets from
    ``STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__...`` like the Kafka settings). ``local``:
    offline, ``rubin`` (Rubin's schemas 7.0 onwards under Rubin's ids, 700...) or a
    directory of ``<id>.avsc`` files. Neither: only Avro container packets (ZTF) decode.
    """

    url: str | None = None
    local: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        key = "input.schema_registry"
        if self.url is not None and self.local is not None:
            raise ConfigError(key, "set either url (a registry) or local (offline), not both")
        if self.url is not None and not re.match(r"https?://[^/\s]+", self.url):
            raise ConfigError(f"{key}.url", "must be an http:// or https:// URL")
        if self.local is not None and self.local != RUBIN_SCHEMAS:
            folder = Path(self.local)
            if not folder.is_dir():
                raise ConfigError(
                    f"{key}.local", f"{self.local!r} is neither 'rubin' nor a directory"
                )
            if not any(f.stem.isdigit() for f in folder.glob("*.avsc")):
                raise ConfigError(f"{key}.local", f"no <id>.avsc schema files in {self.local}")
        if self.config and self.url is None:
            raise ConfigError(f"{key}.config", "needs input.schema_registry.url")
        if "url" in self.config:
            raise ConfigError(f"{key}.config.url", "set input.schema_registry.url instead")

    @property
    def enabled(self) -> bool:
        return self.url is not None or self.local is not None

    def open(self) -> Any:
        """The ``SchemaRegistry`` these settings name (``schemas.registry.open_registry``),
        or None when neither url nor local is set."""
        from stampflow.schemas.registry import open_registry

        return open_registry(self.url, self.config, self.local)

    def __repr__(self) -> str:
        url = re.sub(r"//[^/@]*@", f"//{REDACTED}@", self.url) if self.url else None
        return (
            f"SchemaRegistryConfig(url={url!r}, local={self.local!r}, "
            f"config={redact(self.config)!r})"
        )


@dataclass(frozen=True)
class InputConfig:
    bootstrap: str | None = None
    topics: tuple[str, ...] = ("ztf-alerts",)
    group_id: str = "stampflow"
    archive: str | None = None
    schema_registry: SchemaRegistryConfig = field(default_factory=SchemaRegistryConfig)

    def __post_init__(self) -> None:
        if self.bootstrap is not None and not self.topics:
            raise ConfigError("input.topics", "Kafka mode needs at least one input topic")
        for topic in self.topics:
            check_topic_name("input.topics", topic)
        if not self.group_id:
            raise ConfigError("input.group_id", "must not be empty")


@dataclass(frozen=True)
class OutputConfig:
    topic: str = "stampflow-annotated"
    dir: str = "out/annotated"
    mode: str = "full"
    compression: str = "lz4"  # cheap on CPU; the stamps inside are gzip already

    def __post_init__(self) -> None:
        if self.mode not in OUTPUT_MODES:
            raise ConfigError("output.mode", f"{self.mode!r} is not one of {OUTPUT_MODES}")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(
                "output.compression", f"{self.compression!r} is not one of {COMPRESSIONS}"
            )
        check_topic_name("output.topic", self.topic)


DEAD_LETTER_DIR_NAME = "dead-letters"


@dataclass(frozen=True)
class DeadLetterConfig:
    topic: str = "stampflow-dead-letters"
    # Unset in the file, it follows output.dir: beside it, named DEAD_LETTER_DIR_NAME.
    dir: str = f"out/{DEAD_LETTER_DIR_NAME}"

    def __post_init__(self) -> None:
        check_topic_name("dead_letter.topic", self.topic)


@dataclass(frozen=True)
class BatchingConfig:
    max_batch: int = 256
    max_wait_ms: int = 100  # the longest a batch waits after its first packet (p99 at 333/s:
    # 0.54 s at 100 ms, 0.85 s at 500 ms in bench_throughput; a backlog fills batches anyway)
    idle_ms: int = 5  # ... but it closes once the input has had nothing this long; 0: off
    overlap: bool = True  # prepare batch N+1 while N's acknowledgements come in

    def __post_init__(self) -> None:
        _check_int("batching.max_batch", self.max_batch, low=1, high=100_000)
        _check_int("batching.max_wait_ms", self.max_wait_ms, low=1, high=600_000)
        _check_int("batching.idle_ms", self.idle_ms, low=0, high=60_000)


@dataclass(frozen=True)
class ClassifierSpec:
    name: str
    model_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("classifiers[].name", "must not be empty")


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = 9108  # None: no HTTP server; 0: an ephemeral port (tests)
    # Loopback unless asked: in a pod (Prometheus, kubelet probes) set 0.0.0.0.
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.port is not None:
            _check_int("metrics.port", self.port, low=0, high=65535)


@dataclass(frozen=True)
class ShutdownConfig:
    drain_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.drain_timeout_s, int | float) or self.drain_timeout_s <= 0:
            raise ConfigError("shutdown.drain_timeout_s", "must be a positive number of seconds")


@dataclass(frozen=True)
class LivenessConfig:
    # /healthz fails (and stampflow_stuck is 1) when no batch is committed for this long
    # with one in hand, or after this many rewinds in a row: a worker going nowhere.
    stuck_after_s: float = 600.0
    max_rewinds: int = 10

    def __post_init__(self) -> None:
        if (
            isinstance(self.stuck_after_s, bool)
            or not isinstance(self.stuck_after_s, int | float)
            or self.stuck_after_s <= 0
        ):
            raise ConfigError("liveness.stuck_after_s", "must be a positive number of seconds")
        _check_int("liveness.max_rewinds", self.max_rewinds, low=1, high=1_000_000)


@dataclass(frozen=True)
class BackpressureConfig:
    # Messages produced but not yet acknowledged; producing blocks (serving delivery
    # callbacks) at this bound instead of queueing more.
    max_in_flight: int = 10_000
    # librdkafka's consumer prefetch per worker, in bytes (queued.max.messages.kbytes) and
    # messages (queued.min.messages): fetching stops at whichever bound is reached first.
    # 32 MB holds about two 256-packet batches of ZTF alerts (~68 KB each).
    prefetch_kbytes: int = 32_768
    prefetch_messages: int = 1_000
    # How long librdkafka pauses fetching once the prefetch is full (fetch.queue.backoff.ms).
    # Its default, 1,000 ms, stalls the fetch for a second each time a batch empties a full
    # prefetch: that alone capped the daemon near 470 alerts/s.
    fetch_backoff_ms: int = 10

    def __post_init__(self) -> None:
        _check_int("backpressure.max_in_flight", self.max_in_flight, low=1, high=10_000_000)
        _check_int("backpressure.prefetch_kbytes", self.prefetch_kbytes, low=64, high=2_097_151)
        _check_int("backpressure.prefetch_messages", self.prefetch_messages, low=1, high=10_000_000)
        _check_int("backpressure.fetch_backoff_ms", self.fetch_backoff_ms, low=0, high=300_000)


@dataclass(frozen=True)
class DaemonConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    classifiers: tuple[ClassifierSpec, ...] = ()
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    # Consumer processes (None: auto, resolved at start-up by ``worker_count.resolve_workers``:
    # in Kafka mode the cores, at most the input topics' partitions; in archive mode 1).
    workers: int | None = None
    # Threads per worker for torch, OpenMP and BLAS (None: auto, the cores over the workers).
    threads: int | None = None
    # Where models run (``stampflow.classifiers.device``): cpu, cuda, or auto (cuda if usable).
    device: str = "cpu"
    backpressure: BackpressureConfig = field(default_factory=BackpressureConfig)
    processing: str = AT_LEAST_ONCE
    kafka: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers is not None:
            _check_int("workers", self.workers, low=1, high=256)
        if self.threads is not None:
            _check_int("threads", self.threads, low=1, high=256)
        if not self.kafka_mode and not self.input.archive:
            raise ConfigError("input", "set either input.bootstrap (Kafka) or input.archive")
        if self.device not in DEVICES:
            raise ConfigError("device", f"{self.device!r} is not one of {DEVICES}")
        if self.processing not in PROCESSING_MODES:
            raise ConfigError("processing", f"{self.processing!r} is not one of {PROCESSING_MODES}")
        if self.exactly_once:
            if not self.kafka_mode:
                raise ConfigError("processing", "exactly_once needs Kafka (input.bootstrap)")
            if not self.kafka.get("group.instance.id"):
                # The transactional id is built from it: a restarted worker must get the
                # same one to abort its predecessor's open transaction and fence it.
                raise ConfigError(
                    "kafka.group.instance.id",
                    "exactly_once needs a stable identity per worker, kept across restarts "
                    "(static membership; STAMPFLOW_KAFKA__GROUP_INSTANCE_ID=$(POD_NAME))",
                )
        names = [c.name for c in self.classifiers]
        if len(set(names)) != len(names):
            raise ConfigError("classifiers", f"a classifier is listed twice: {names}")
        for i, name in enumerate(names):
            try:
                registry.get(name)
            except registry.RegistryError as exc:
                raise ConfigError(f"classifiers[{i}]", str(exc)) from None
        if self.workers is not None and self.workers > 1 and not self.kafka_mode:
            raise ConfigError("workers", "several workers need Kafka input (a consumer group)")

    @property
    def kafka_mode(self) -> bool:
        return self.input.bootstrap is not None

    @property
    def exactly_once(self) -> bool:
        return self.processing == EXACTLY_ONCE

    def __repr__(self) -> str:
        # The generated repr would print credentials from ``kafka``.
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "kafka"]
        parts.append(f"kafka={redact(self.kafka)!r}")
        return f"DaemonConfig({', '.join(parts)})"

    __str__ = __repr__


def _check_int(key: str, value: object, *, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low} and {high}, got {value}")


_SECTIONS: dict[str, type] = {
    "input": InputConfig,
    "output": OutputConfig,
    "dead_letter": DeadLetterConfig,
    "batching": BatchingConfig,
    "metrics": MetricsConfig,
    "shutdown": ShutdownConfig,
    "liveness": LivenessConfig,
    "backpressure": BackpressureConfig,
}
_TOP_LEVEL = {"classifiers", "workers", "threads", "device", "processing", "kafka", *_SECTIONS}


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> DaemonConfig:
    """Read ``path`` (YAML), apply environment then ``overrides`` (dotted keys), validate.

    ``overrides`` carries command-line flags such as ``{"input.bootstrap": "host:9092"}``;
    they win over the environment, which wins over the file.
    """
    raw: dict[str, Any] = {} if path is None else _read_file(Path(path))
    for key, value in _env_overrides(os.environ if env is None else env).items():
        _set_dotted(raw, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
    return _build(raw)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(FILE_KEY, f"config file {path}: cannot read it: {exc.strerror}") from None
    try:
        # BaseLoader: every scalar is text, exactly as written; typed keys are converted below.
        loaded = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        # ``from None``: yaml's own message quotes the offending line (a password, maybe).
        raise ConfigError(FILE_KEY, _syntax_error(path, exc)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(FILE_KEY, f"config file {path}: must hold a mapping at top level")
    return loaded


def _syntax_error(path: Path, exc: yaml.YAMLError) -> str:
    """Where the error is and what kind, without any of the file's text."""
    message = f"config file {path}: YAML syntax error"
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        message += f" at line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None)
    if problem:
        # yaml quotes the token it stopped at ('Star-S3cret', '%'); token kinds ('<scalar>')
        # are no text of the file and stay.
        problem = re.sub(r"\s*'(?!<)[^']*'|\s*\"[^\"]*\"", "", problem).strip()
        message += f": {problem}"
    return message


def _env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """Dotted key -> the variable's text, never parsed (typed keys are converted later)."""
    found: dict[str, str] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].split("__")
        section = path[0].lower()
        if path[:3] == ["INPUT", "SCHEMA_REGISTRY", "CONFIG"] and len(path) >= 4:
            prop = ".".join(p if "." in p else p.lower().replace("_", ".") for p in path[3:])
            found[f"input.schema_registry.config.{prop}"] = text
            continue
        if section == "kafka" and len(path) >= 2:
            # SASL_PASSWORD and SASL__PASSWORD are both sasl.password; dotted names pass as is.
            parts = path[1:]
            prop = ".".join(p if "." in p else p.lower().replace("_", ".") for p in parts)
            found[f"kafka.{prop}"] = text
            continue
        if section not in _TOP_LEVEL:
            if len(path) > 1:  # shaped like a config path: a typo, not someone else's variable
                raise ConfigError(name, f"unknown section {section!r}; known: {sorted(_TOP_LEVEL)}")
            continue  # e.g. STAMPFLOW_LOG_LEVEL belongs to someone else
        found[".".join(p.lower() for p in path)] = text
    return found


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        raw[head] = value
        return
    if head in ("kafka", "config"):  # property names contain dots themselves
        if not isinstance(raw.get(head), dict):
            raw[head] = {}
        raw[head][rest] = value
        return
    section = raw.get(head)
    if section is None or _is_null(section):
        section = raw[head] = {}
    if not isinstance(section, dict):
        raise ConfigError(head, "must be a mapping")
    _set_dotted(section, rest, value)


def _build(raw: Mapping[str, Any]) -> DaemonConfig:
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ConfigError(
            sorted(unknown)[0], f"unknown key; known: {', '.join(sorted(_TOP_LEVEL))}"
        )
    raw = _dead_letters_beside_output(raw)
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name in raw:
            kwargs[name] = _build_section(name, cls, raw[name])
    if "classifiers" in raw:
        kwargs["classifiers"] = _build_classifiers(raw["classifiers"])
    if "workers" in raw:
        kwargs["workers"] = _as_auto("workers", raw["workers"])
    if "threads" in raw:
        kwargs["threads"] = _as_auto("threads", raw["threads"])
    if "device" in raw:
        kwargs["device"] = _as_text("device", raw["device"]).strip()
    if "processing" in raw:
        kwargs["processing"] = _as_text("processing", raw["processing"])
    if "kafka" in raw:
        kwargs["kafka"] = _build_kafka(raw["kafka"])
    return DaemonConfig(**kwargs)


def _dead_letters_beside_output(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``dead_letter.dir`` defaults to a ``dead-letters`` folder beside ``output.dir``, so a
    run with its output elsewhere never drops its dead letters into ``./out``."""
    output, dead = raw.get("output"), raw.get("dead_letter")
    out_dir = output.get("dir") if isinstance(output, dict) else None
    if out_dir is None or not isinstance(out_dir, str) or _is_null(out_dir):
        return raw
    if isinstance(dead, dict) and "dir" in dead:
        return raw
    if dead is not None and not _is_null(dead) and not isinstance(dead, dict):
        return raw  # not a mapping: _build_section says so
    beside = str(Path(out_dir.rstrip("/") or "/").parent / DEAD_LETTER_DIR_NAME)
    return {**raw, "dead_letter": {**(dead if isinstance(dead, dict) else {}), "dir": beside}}


def _build_section(name: str, cls: type, value: Any) -> Any:
    if _is_null(value):
        return cls()
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a mapping, got {value!r}")
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    converted: dict[str, Any] = {}
    for key, item in value.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"unknown key; known: {', '.join(known)}")
        converted[key] = _typed(f"{name}.{key}", item, hints[key])
    return cls(**converted)


def _typed(key: str, value: Any, hint: Any) -> Any:
    """``value`` (text from the file or the environment, or a flag's value) as ``hint``."""
    options = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in options and _is_null(value):
        return None
    base = next(t for t in options if t is not type(None))
    if base is str:
        return _as_text(key, value)
    if base is bool:
        return _as_bool(key, value)
    if base is int:
        return _as_int(key, value)
    if base is float:
        return _as_float(key, value)
    if key == "input.topics":
        return _as_topics(value)
    if key == "input.schema_registry":
        return _build_schema_registry(value)
    raise TypeError(f"no conversion for {key} ({hint})")  # a new field needs one here


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value in _NULLS)


def _as_text(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # a flag's number
        return str(value)
    raise ConfigError(key, "must be a single value (text), not a list or mapping")


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise ConfigError(key, f"must be true or false, got {_shown(key, value)}")


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9][0-9_]*", value.strip()):
        return int(value.strip().replace("_", ""))
    raise ConfigError(key, f"must be an integer, got {_shown(key, value)}")


def _as_auto(key: str, value: Any) -> int | None:
    """``workers`` and ``threads``: an integer, or None for ``auto`` (or null)."""
    if _is_null(value) or (isinstance(value, str) and value.strip() == "auto"):
        return None
    try:
        return _as_int(key, value)
    except ConfigError:
        raise ConfigError(
            key, f"must be 'auto' or an integer between 1 and 256, got {value!r}"
        ) from None


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(key, f"must be a number, got {_shown(key, value)}")
    return number


def _shown(key: str, value: Any) -> str:
    return REDACTED if is_secret(key) else repr(value)


def _as_topics(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [t for t in value.split(",") if t.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise ConfigError("input.topics", f"must be a list of topic names, got {value!r}")
    return tuple(t.strip() for t in value)


def _build_classifiers(value: Any) -> tuple[ClassifierSpec, ...]:
    if _is_null(value):
        return ()
    if isinstance(value, str):  # env/flag form: "blend,morphology"
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError("classifiers", f"must be a list, got {value!r}")
    specs = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            specs.append(ClassifierSpec(name=item))
        elif isinstance(item, dict) and set(item) <= {"name", "model_dir"} and "name" in item:
            key = f"classifiers[{i}]"
            model_dir = item.get("model_dir")
            specs.append(
                ClassifierSpec(
                    _as_text(f"{key}.name", item["name"]),
                    None if _is_null(model_dir) else _as_text(f"{key}.model_dir", model_dir),
                )
            )
        else:
            raise ConfigError(
                f"classifiers[{i}]", f"must be a name or {{name, model_dir}}: {item!r}"
            )
    return tuple(specs)


def _build_schema_registry(value: Any) -> SchemaRegistryConfig:
    key = "input.schema_registry"
    if _is_null(value):
        return SchemaRegistryConfig()
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a mapping with url, local and config")
    unknown = set(value) - {"url", "local", "config"}
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown key; known: url, local, config")
    url, local = value.get("url"), value.get("local")
    return SchemaRegistryConfig(
        url=None if _is_null(url) else _as_text(f"{key}.url", url),
        local=None if _is_null(local) else _as_text(f"{key}.local", local),
        config=_registry_client_config(value.get("config")),
    )


def _registry_client_config(value: Any) -> dict[str, Any]:
    """``SchemaRegistryClient`` settings: text as written, numbers where it wants numbers."""
    key = "input.schema_registry.config"
    if _is_null(value):
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a mapping of SchemaRegistryClient settings")
    settings: dict[str, Any] = {}
    for name, item in value.items():
        name = str(name)
        if isinstance(item, dict | list):
            raise ConfigError(f"{key}.{name}", "must be a single value, not a list or mapping")
        if name in _REGISTRY_NUMBERS:
            item = _as_float(f"{key}.{name}", item)
            item = int(item) if item.is_integer() else item
        elif isinstance(item, str) and item in ("true", "false") and name == "ssl.ca.location":
            item = item == "true"  # the client's "verify" switch
        settings[name] = item
    return settings


def _build_kafka(value: Any) -> dict[str, str]:
    """librdkafka properties, verbatim: every value is the text the user wrote."""
    if _is_null(value):
        return {}
    if not isinstance(value, dict):
        raise ConfigError("kafka", "must be a mapping of librdkafka properties")
    properties = {}
    for name, item in value.items():
        if isinstance(item, bool):  # from Python callers only; librdkafka wants the word
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            raise ConfigError(f"kafka.{name}", "must be a single value, not a list or mapping")
        properties[str(name)] = item
    return properties
