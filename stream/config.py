"""The daemon's one configuration object: a YAML file plus ``STAMPFLOW_...`` environment overrides.

Layout of the file (every key optional; see ``deploy/`` and the README for full examples)::

    input:
      bootstrap: localhost:9092      # Kafka mode when set; otherwise ``archive`` is read
      topics: [ztf-alerts]
      group_id: stampflow
      archive: ./night.tar.gz        # a directory, a glob or a nightly .tar.gz of packets
    output:
      topic: stampflow-annotated     # Kafka mode
      dir: ./out/annotated           # archive mode: Avro container files
      mode: full                     # full | slim
      compression: lz4               # none | gzip | snappy | lz4 | zstd
    dead_letter:
      topic: stampflow-dead-letters  # Kafka mode
      dir: ./out/dead-letters        # archive mode
    batching: {max_batch: 256, max_wait_ms: 500}
    classifiers:                     # an empty list is valid: alerts pass through unannotated
      - name: blend
        model_dir: null              # null: the bundle shipped with stampflow
    metrics: {port: 9108}            # /metrics, /healthz, /readyz; null disables the server
    shutdown: {drain_timeout_s: 30}
    liveness: {stuck_after_s: 600, max_rewinds: 10}   # when /healthz calls the worker stuck
    workers: 1
    backpressure: {max_in_flight: 10000, prefetch_kbytes: 16384}
    kafka: {security.protocol: SASL_SSL, sasl.password: ...}   # librdkafka pass-through

Environment overrides: ``STAMPFLOW_<SECTION>__<KEY>=value`` (for example
``STAMPFLOW_BATCHING__MAX_BATCH=64``, ``STAMPFLOW_INPUT__TOPICS=a,b``, ``STAMPFLOW_WORKERS=4``)
and ``STAMPFLOW_KAFKA__<property>`` for any librdkafka property (``STAMPFLOW_KAFKA__SASL_PASSWORD``
becomes ``sasl.password``). Values are parsed as YAML scalars. Secrets are never shown: the
``repr`` of the config and every log line redact them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from stampflow.classifiers import registry

ENV_PREFIX = "STAMPFLOW_"
OUTPUT_MODES = ("full", "slim")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
# Substrings of librdkafka property names whose values must never be printed.
_SECRET_MARKERS = ("password", "secret", "token", "key.pem", "keystore", "oauthbearer.config")
REDACTED = "***"


class ConfigError(ValueError):
    """A config value that cannot be used; ``key`` is its dotted path (``batching.max_batch``)."""

    def __init__(self, key: str, why: str) -> None:
        self.key = key
        self.why = why
        super().__init__(f"config key {key!r}: {why}")


def is_secret(property_name: str) -> bool:
    """True for librdkafka properties whose values are credentials."""
    lowered = property_name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def redact(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``properties`` safe to log: credential values replaced by ``***``."""
    return {k: (REDACTED if is_secret(k) else v) for k, v in properties.items()}


@dataclass(frozen=True)
class InputConfig:
    bootstrap: str | None = None
    topics: tuple[str, ...] = ("ztf-alerts",)
    group_id: str = "stampflow"
    archive: str | None = None

    def __post_init__(self) -> None:
        if self.bootstrap is not None and not self.topics:
            raise ConfigError("input.topics", "Kafka mode needs at least one input topic")
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
        if not self.topic:
            raise ConfigError("output.topic", "must not be empty")


@dataclass(frozen=True)
class DeadLetterConfig:
    topic: str = "stampflow-dead-letters"
    dir: str = "out/dead-letters"

    def __post_init__(self) -> None:
        if not self.topic:
            raise ConfigError("dead_letter.topic", "must not be empty")


@dataclass(frozen=True)
class BatchingConfig:
    max_batch: int = 256
    max_wait_ms: int = 500

    def __post_init__(self) -> None:
        _check_int("batching.max_batch", self.max_batch, low=1, high=100_000)
        _check_int("batching.max_wait_ms", self.max_wait_ms, low=1, high=600_000)


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
    host: str = "0.0.0.0"

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
    # librdkafka's consumer prefetch queue per worker (queued.max.messages.kbytes).
    prefetch_kbytes: int = 16_384

    def __post_init__(self) -> None:
        _check_int("backpressure.max_in_flight", self.max_in_flight, low=1, high=10_000_000)
        _check_int("backpressure.prefetch_kbytes", self.prefetch_kbytes, low=64, high=2_097_151)


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
    workers: int = 1
    backpressure: BackpressureConfig = field(default_factory=BackpressureConfig)
    kafka: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_int("workers", self.workers, low=1, high=256)
        if not self.kafka_mode and not self.input.archive:
            raise ConfigError("input", "set either input.bootstrap (Kafka) or input.archive")
        names = [c.name for c in self.classifiers]
        if len(set(names)) != len(names):
            raise ConfigError("classifiers", f"a classifier is listed twice: {names}")
        for i, name in enumerate(names):
            try:
                registry.get(name)
            except registry.RegistryError as exc:
                raise ConfigError(f"classifiers[{i}]", str(exc)) from None
        if self.workers > 1 and not self.kafka_mode:
            raise ConfigError("workers", "several workers need Kafka input (a consumer group)")

    @property
    def kafka_mode(self) -> bool:
        return self.input.bootstrap is not None

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
_TOP_LEVEL = {"classifiers", "workers", "kafka", *_SECTIONS}


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
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError("<file>", f"cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError("<file>", f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("<file>", f"{path} must hold a mapping at top level")
        raw = loaded or {}
    for key, value in _env_overrides(os.environ if env is None else env).items():
        _set_dotted(raw, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
    return _build(raw)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].split("__")
        section = path[0].lower()
        if section == "kafka" and len(path) == 2:
            prop = path[1] if "." in path[1] else path[1].lower().replace("_", ".")
            # librdkafka properties are strings; never YAML-parse a password.
            found[f"kafka.{prop}"] = text
            continue
        if section not in _TOP_LEVEL:
            if len(path) > 1:  # shaped like a config path: a typo, not someone else's variable
                raise ConfigError(name, f"unknown section {section!r}; known: {sorted(_TOP_LEVEL)}")
            continue  # e.g. STAMPFLOW_LOG_LEVEL belongs to someone else
        found[".".join(p.lower() for p in path)] = _parse_scalar(name, text)
    return found


def _parse_scalar(name: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(name, f"cannot parse {text!r}: {exc}") from exc


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        raw[head] = value
        return
    if head == "kafka":  # property names contain dots themselves
        raw.setdefault("kafka", {})
        raw["kafka"][rest] = value
        return
    section = raw.setdefault(head, {})
    if not isinstance(section, dict):
        raise ConfigError(head, f"must be a mapping, got {section!r}")
    _set_dotted(section, rest, value)


def _build(raw: Mapping[str, Any]) -> DaemonConfig:
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ConfigError(
            sorted(unknown)[0], f"unknown key; known: {', '.join(sorted(_TOP_LEVEL))}"
        )
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name in raw:
            kwargs[name] = _build_section(name, cls, raw[name])
    if "classifiers" in raw:
        kwargs["classifiers"] = _build_classifiers(raw["classifiers"])
    if "workers" in raw:
        kwargs["workers"] = raw["workers"]
    if "kafka" in raw:
        kafka = raw["kafka"] or {}
        if not isinstance(kafka, dict):
            raise ConfigError("kafka", "must be a mapping of librdkafka properties")
        kwargs["kafka"] = {str(k): _kafka_value(v) for k, v in kafka.items()}
    return DaemonConfig(**kwargs)


def _build_section(name: str, cls: type, value: Any) -> Any:
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a mapping, got {value!r}")
    known = {f.name: f for f in fields(cls)}
    for key in value:
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"unknown key; known: {', '.join(known)}")
    values = dict(value)
    if name == "input" and "topics" in values:
        values["topics"] = _as_topics(values["topics"])
    for key in ("bootstrap", "archive"):
        if name == "input" and values.get(key) is not None:
            values[key] = str(values[key])
    return cls(**values)


def _as_topics(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [t for t in value.split(",") if t.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise ConfigError("input.topics", f"must be a list of topic names, got {value!r}")
    return tuple(t.strip() for t in value)


def _build_classifiers(value: Any) -> tuple[ClassifierSpec, ...]:
    if value is None:
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
            model_dir = item.get("model_dir")
            specs.append(
                ClassifierSpec(str(item["name"]), None if model_dir is None else str(model_dir))
            )
        else:
            raise ConfigError(
                f"classifiers[{i}]", f"must be a name or {{name, model_dir}}: {item!r}"
            )
    return tuple(specs)


def _kafka_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
