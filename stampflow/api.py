"""stampflow from Python: decode packets, classify them, look at the result as a table.

    from stampflow import api
    alerts = api.decode(packet_bytes)                 # list[Alert] (ZTF) / list[RubinAlert]
    records = api.classify(packets, ("morphology",))  # the records stampflow would publish
    frame = api.to_dataframe(records)                 # one row per alert (needs pandas)
    for record in api.consume("localhost:9092", "stampflow-annotated"):  # the output topic
        print(record["objectId"], record["stampflow"]["annotations"])

    rubin = api.decode(message, registry="rubin")     # Confluent wire format, Rubin's ids
    alert.view.object_id, alert.view.band             # the survey-neutral fields, any survey

``registry`` (``decode`` and ``classify``) reads Confluent wire-format messages (Rubin's):
``"rubin"`` (Rubin's schemas, shipped with stampflow, under Rubin's ids), a directory of
``<id>.avsc`` files, a registry URL (``http://...``), or a ``schemas.registry`` object.

``classify`` runs the daemon's own stages (decode, then each classifier on the alerts it
applies to) with the shipped models from the registry, and returns each output record as a
dict: the full alert plus its ``stampflow`` block (``mode="full"``) or the slim record
(``mode="slim"``), exactly what ``stampflow run`` writes (see ``schemas/README.md``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from stampflow.classifiers.base import Classifier
from stampflow.classifiers.registry import load_classifier
from stampflow.schemas.codec import AnyAlert, decode_packet
from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.errors import PacketError
from stampflow.schemas.registry import SchemaRegistry, open_registry
from stampflow.stream.messages import DeadLetter, SourceMessage
from stampflow.stream.pipeline import classify_batch, decode_batch
from stampflow.stream.results import Record, flatten

DEFAULT_CLASSIFIERS = ("blend", "morphology")


class ClassifyError(ValueError):
    """Packets that could not be decoded or classified; ``failures`` says which and why."""

    def __init__(self, failures: list[DeadLetter]) -> None:
        self.failures = failures
        shown = "; ".join(
            f"packet {f.message.offset}: {f.stage} {f.reason}: {f.error}" for f in failures[:3]
        )
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        super().__init__(
            f"{len(failures)} packet(s) failed: {shown}{more}; pass skip_bad=True to skip them"
        )


RegistryLike = SchemaRegistry | str | Path | None


def _registry(registry: RegistryLike) -> SchemaRegistry | None:
    """``"rubin"``, a directory, an ``http(s)://`` URL, or a registry object as is."""
    if registry is None or not isinstance(registry, str | Path):
        return registry
    text = str(registry)
    if text.startswith(("http://", "https://")):
        return _remote(text)
    return _local(text)


@functools.cache
def _remote(url: str) -> SchemaRegistry | None:
    return open_registry(url)  # one client (and its cache) per URL and process


@functools.cache
def _local(where: str) -> SchemaRegistry | None:
    return open_registry(local=where)


def decode(packet: bytes, *, registry: RegistryLike = None) -> list[AnyAlert]:
    """Every alert in one packet (an Avro container, or with ``registry`` a Confluent
    wire-format message). Raises PacketError with its reason.

    A packet whose tail is broken after some good records raises too: use
    ``stampflow.schemas.codec.decode_packet`` to keep the good records.
    """
    decoded = decode_packet(packet, registry=_registry(registry))
    if decoded.error is not None:
        raise decoded.error
    return decoded.alerts


@functools.cache
def _classifier(name: str) -> Classifier:
    return load_classifier(name)  # shipped bundle; loaded once per process


def classify(
    packets: Iterable[bytes],
    classifiers: Sequence[str] = DEFAULT_CLASSIFIERS,
    *,
    mode: str = "full",
    skip_bad: bool = False,
    registry: RegistryLike = None,
) -> list[dict[str, Any]]:
    """The output record of every alert in ``packets``, annotated by ``classifiers``.

    Names are checked against the registry first; ``registry`` (as for ``decode``) reads
    wire-format packets; each classifier annotates the alerts of the surveys it takes
    (blend and morphology: ZTF). A packet that fails to decode or to
    classify raises ``ClassifyError`` naming it (its index in ``packets``), unless
    ``skip_bad``, which leaves it out.
    """
    if isinstance(classifiers, str):
        raise TypeError(f"classifiers is a sequence of names, e.g. ({classifiers!r},)")
    loaded = [_classifier(name) for name in classifiers]
    messages = [SourceMessage(bytes(p), "api", 0, i) for i, p in enumerate(packets)]
    started = time.perf_counter()
    schemas = _registry(registry)
    decoded, dead = decode_batch(
        messages, functools.partial(decode_packet, registry=schemas) if schemas else decode_packet
    )
    annotated, failed = classify_batch(
        decoded, loaded, batch_started=started, on_classifier_time=lambda _name, _s: None
    )
    failures = sorted([*dead, *failed], key=lambda letter: letter.message.offset)
    if failures and not skip_bad:
        raise ClassifyError(failures)
    encoder = OutputEncoder()
    records = []
    for item in annotated:
        try:
            records.append(
                encoder.record(
                    item.alert,
                    item.annotations,
                    mode=mode,
                    processing_time_ms=item.processing_time_ms,
                )
            )
        except PacketError:
            if not skip_bad:
                raise
    return records


def to_dataframe(records: Iterable[Record]) -> Any:
    """A pandas DataFrame, one row per record (ZTF or Rubin, full or slim): the slim 1.1 ids
    objectId, candid, ra, dec, jd, fid, survey, band (Rubin's from ``diaSource``, as its slim
    record holds them: ``results.identity``), then ``<classifier>_label``, ``_probability``,
    ``_ambiguous``, ``_uncertainty`` and ``_model_version`` per classifier (missing where it
    did not apply)."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "to_dataframe needs the pandas package, which is not installed: "
            "pip install 'stampflow[dataframe]'"
        ) from None
    return pandas.DataFrame.from_records([flatten(record) for record in records])


def consume(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = True,
    timeout: float | None = 10.0,
    max_records: int | None = None,
    properties: dict[str, str] | None = None,
    registry: str | None = None,
    registry_config: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """The records stampflow published on ``topic``, as dicts (what ``classify`` returns).

    Reads every partition read_committed, as ``stampflow consume --bootstrap`` does: records
    of aborted transactions never show. Starts at the earliest record (``from_beginning=False``:
    only records published from now on) and ends after ``timeout`` seconds without a new
    record (``None``: never) or after ``max_records``. Nothing is committed, so no consumer
    group's offsets move. ``properties`` are librdkafka settings (e.g.
    ``{"security.protocol": "SASL_SSL"}``). A missing topic or an unreachable broker raises
    ``stampflow.stream.results.ResultsError`` on the first ``next``. The consumer closes when
    the iterator ends or is closed. Annotated Rubin output (Confluent wire format) needs
    ``registry``: a schema registry URL, ``"rubin"`` or a directory, as ``--schema-registry``
    and ``--schema-dir`` name them. A registry that wants basic auth takes it in the URL
    (``https://user:password@host``) or in ``registry_config``, confluent-kafka's
    ``SchemaRegistryClient`` settings (``{"basic.auth.user.info": "user:password"}``, TLS,
    ``timeout``) as the daemon's ``input.schema_registry.config``; the password is never
    shown (not in the registry's ``repr``, nor in an error).
    """
    if max_records is not None and max_records < 1:
        raise ValueError(f"max_records must be at least 1, got {max_records}")
    from stampflow.stream.consume_cmd import open_output_registry, read_topic

    is_url = registry is not None and registry.startswith(("http://", "https://"))
    if registry_config and not is_url:
        raise ValueError("registry_config needs registry to be a schema registry URL")
    records = read_topic(
        bootstrap,
        topic,
        from_beginning=from_beginning,
        idle_timeout_s=timeout,
        properties=properties,
        registry=open_output_registry(
            registry if is_url else None,
            None if is_url or registry is None else registry,
            config=dict(registry_config) if registry_config else None,
        ),
    )
    return _at_most(records, max_records)


def _at_most(records: Iterator[dict[str, Any]], limit: int | None) -> Iterator[dict[str, Any]]:
    try:
        for count, record in enumerate(records, 1):
            yield record
            if limit is not None and count >= limit:
                return
    finally:
        getattr(records, "close", lambda: None)()  # read_topic's generator closes the consumer
