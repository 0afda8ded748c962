"""Before anything else in Kafka mode: can we reach the cluster, log in, and do our topics exist?

Each failure has its own message: an address nothing answers at, a name that does not
resolve, a TLS handshake or a SASL login that fails, a topic that is not there (naming its
config key). The topics are looked up in the metadata of *all* topics: asking the broker
about one topic by name creates it where ``auto.create.topics.enable`` is on (the default),
and a mistyped output topic would then be silently created and written to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from stampflow.stream.config import ConfigError
from stampflow.stream.kafka_log import KafkaLog

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0  # a broker that is starting gets this long to answer
_SLICE_S = 1.0
_AUTH_ERRORS = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
    }
)


class ClusterUnusable(ConnectionError):
    """The cluster cannot be reached or logged into; the message says which and why."""


def check_cluster(
    properties: Mapping[str, object],
    topics: Mapping[str, Iterable[str]],
    *,
    timeout_s: float | None = None,
) -> ClusterMetadata:
    """Raise ``ClusterUnusable`` or ``ConfigError`` (``topics``: config key -> topic names);
    the metadata of all topics when every one is there."""
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    errors: list[KafkaError] = []
    quiet = KafkaLog("admin", log)  # the errors are summed up below, not logged one by one
    # Admin clients take the producer's settings but are no transactional producer.
    skip = ("error_cb", "logger", "transactional.id")
    settings = {k: v for k, v in properties.items() if k not in skip}
    admin = AdminClient({**settings, "error_cb": errors.append, "logger": quiet})
    bootstrap = str(properties.get("bootstrap.servers", ""))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = admin.list_topics(timeout=_SLICE_S)
            break
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            login = [e for e in errors if e.code() in _AUTH_ERRORS or e.code() == KafkaError._SSL]
            if login:  # more waiting will not fix credentials
                raise ClusterUnusable(_login_failed(bootstrap, properties, login[-1])) from None
            if time.monotonic() > deadline:
                raise ClusterUnusable(_unreachable(bootstrap, timeout_s, errors, exc)) from None
    for key, names in topics.items():
        for name in names:
            found = metadata.topics.get(name)
            if found is None:
                raise ConfigError(
                    key,
                    f"topic {name!r} does not exist on the cluster at {bootstrap}; "
                    "create it first (stampflow never creates topics)",
                )
            if found.error is not None:
                raise ConfigError(key, f"topic {name!r} is not usable: {found.error.str()}")
    return metadata


def _login_failed(bootstrap: str, properties: Mapping[str, object], error: KafkaError) -> str:
    if error.code() == KafkaError._SSL:
        return (
            f"TLS handshake with the Kafka cluster at {bootstrap} failed: {error.str()}; "
            "check kafka.ssl.* and security.protocol"
        )
    settings = ", ".join(
        f"{name}={properties[name]}"
        for name in ("security.protocol", "sasl.mechanism", "sasl.username")
        if name in properties
    )
    return (
        f"authentication with the Kafka cluster at {bootstrap} failed ({settings}): "
        f"{error.str()}; check the credentials (kafka.sasl.username, kafka.sasl.password), "
        "sasl.mechanism and security.protocol"
    )


def _unreachable(
    bootstrap: str, timeout_s: float, errors: list[KafkaError], exc: KafkaException
) -> str:
    resolve = [e for e in errors if e.code() == KafkaError._RESOLVE]
    transport = [e for e in errors if e.code() == KafkaError._TRANSPORT]
    if resolve:
        why = f"cannot resolve the address: {resolve[-1].str()}"
    elif transport:
        why = f"nothing answers: {transport[-1].str()}"
    else:
        why = f"no answer: {exc.args[0].str()}"
    return (
        f"the Kafka cluster at {bootstrap} is unreachable ({why}; waited {timeout_s:.0f} s); "
        "check input.bootstrap, the network, and that the brokers run"
    )
