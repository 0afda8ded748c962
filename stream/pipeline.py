"""The two pure stages of a batch: decode packets, then run the classifiers on the alerts.

Neither stage ever raises for bad input: a packet or alert that fails becomes a
``DeadLetter`` naming the stage and reason, and the rest of the batch carries on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from stampflow.classifiers.base import Classifier
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import Decoded, decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.stream.messages import AnnotatedAlert, DeadLetter, DecodedAlert, SourceMessage

log = logging.getLogger(__name__)

CLASSIFIER_ERROR = "classifier_error"
Decoder = Callable[[bytes], Decoded]


def decode_batch(
    messages: Sequence[SourceMessage], decode: Decoder = decode_packet
) -> tuple[list[DecodedAlert], list[DeadLetter]]:
    """Every alert of every packet; a broken packet (or broken tail) becomes a dead letter."""
    alerts: list[DecodedAlert] = []
    dead: list[DeadLetter] = []
    for message in messages:
        started = time.perf_counter()
        try:
            decoded = decode(message.value)
        except PacketError as exc:
            dead.append(DeadLetter(message, "decode", exc.reason, str(exc), exc.field))
            continue
        except Exception as exc:  # a codec bug must not stop the stream either
            log.exception(
                "decoder crashed on %s[%d]@%d", message.topic, message.partition, message.offset
            )
            dead.append(DeadLetter(message, "decode", "decoder_crash", repr(exc)))
            continue
        share = (time.perf_counter() - started) / max(1, len(decoded.alerts))
        alerts.extend(DecodedAlert(message, alert, share) for alert in decoded.alerts)
        if decoded.error is not None:
            # The good records flow; the packet's broken rest is reported with the whole packet.
            err = decoded.error
            dead.append(DeadLetter(message, "decode", err.reason, str(err), err.field))
    return alerts, dead


ClassifierTimer = Callable[[str, float], None]


def classify_batch(
    items: Sequence[DecodedAlert],
    classifiers: Sequence[Classifier],
    *,
    batch_started: float,
    on_classifier_time: ClassifierTimer,
) -> tuple[list[AnnotatedAlert], list[DeadLetter]]:
    """Run each classifier on the alerts it applies to.

    A classifier that raises on a batch is retried on smaller and smaller parts of it, down
    to alert by alert; only the alerts that fail on their own are dead-lettered (and
    withheld from the output), the others keep their annotations. ``batch_started``
    (perf_counter) dates ``processing_time_ms``.
    """
    annotations: list[list[Annotation]] = [[] for _ in items]
    failed: dict[int, DeadLetter] = {}
    for classifier in classifiers:
        started = time.perf_counter()
        chosen = _applicable(classifier, items, failed)
        if chosen:
            results: dict[int, Annotation] = {}
            _classify_or_split(classifier, [items[i] for i in chosen], chosen, failed, results)
            for index, annotation in results.items():
                annotations[index].append(annotation)
        on_classifier_time(classifier.name, time.perf_counter() - started)
    done = time.perf_counter()
    out = [
        AnnotatedAlert(
            item.message,
            item.alert,
            tuple(annotations[i]),
            processing_time_ms=(done - batch_started + item.decode_s) * 1000.0,
        )
        for i, item in enumerate(items)
        if i not in failed
    ]
    return out, list(failed.values())


def _applicable(
    classifier: Classifier, items: Sequence[DecodedAlert], failed: dict[int, DeadLetter]
) -> list[int]:
    chosen = []
    for i, item in enumerate(items):
        if i in failed:
            continue
        try:
            if classifier.applies_to(item.alert):
                chosen.append(i)
        except Exception as exc:
            failed[i] = _dead(item, classifier, exc)
    return chosen


def _classify_or_split(
    classifier: Classifier,
    subset: list[DecodedAlert],
    indices: list[int],
    failed: dict[int, DeadLetter],
    results: dict[int, Annotation],
) -> None:
    """Classify ``subset``; on an exception retry in parts, down to single alerts.

    A ``PacketError`` that names one alert of ``subset`` (its candid, as the classifier
    protocol asks) splits the batch there: that alert alone (dead-lettered only if it fails
    on its own), the alerts before it, the alerts after it. A classifier that checks its
    stamps in order before any model work then prepares each alert about twice, whatever
    the number of broken ones, in 3k+1 calls for k broken alerts (k+1 of them doing model
    work; halving does about 2 log2(n) per broken alert). Any other exception
    halves the batch: about 2 log2(n) calls per bad alert instead of n one-alert calls (a
    vectorised model pays a fixed cost per call).
    """
    try:
        results.update(zip(indices, _checked(classifier, subset), strict=True))
        return
    except Exception as exc:
        # Its traceback holds the call's frames and so the whole batch, and a classifier may
        # keep the exception (the blend plugin's retry memo does): a cycle that only a full
        # garbage collection frees (RSS grew ~300 MB per 9,000 alerts). Dropped once caught.
        exc.__traceback__ = None
        if len(subset) == 1:
            failed[indices[0]] = _dead(subset[0], classifier, exc)
            return
        named = _named(exc, subset)
        log.debug(
            "%s failed on %d alerts (%s); retrying %s",
            classifier.name,
            len(subset),
            exc,
            "in halves" if named is None else "around the alert it names",
        )
    if named is not None:
        parts = [(named, named + 1), (0, named), (named + 1, len(subset))]
    else:
        middle = len(subset) // 2
        parts = [(0, middle), (middle, len(subset))]
    for start, end in parts:
        if start < end:
            part = subset[start:end]
            _classify_or_split(classifier, part, indices[start:end], failed, results)


def _named(exc: Exception, subset: list[DecodedAlert]) -> int | None:
    """The one alert of ``subset`` a ``PacketError`` names by its candid, if exactly one."""
    if not isinstance(exc, PacketError):
        return None
    text = str(exc)
    found = None
    for i, item in enumerate(subset):
        try:
            candid = str(item.alert.candid)
        except (KeyError, TypeError):
            continue
        if candid in text:
            if found is not None:
                return None  # ambiguous: halve instead
            found = i
    return found


def _checked(classifier: Classifier, subset: list[DecodedAlert]) -> list[Annotation]:
    result = classifier.classify([item.alert for item in subset])
    if len(result) != len(subset):
        raise RuntimeError(
            f"{classifier.name} returned {len(result)} annotations for {len(subset)} alerts"
        )
    return result


def _dead(item: DecodedAlert, classifier: Classifier, exc: Exception) -> DeadLetter:
    alert = item.alert
    where = f"{classifier.name} on {alert.object_id}/{alert.candid}"
    if isinstance(exc, PacketError):
        return DeadLetter(item.message, "classify", exc.reason, f"{where}: {exc}", exc.field)
    return DeadLetter(
        item.message, "classify", CLASSIFIER_ERROR, f"{where}: {type(exc).__name__}: {exc}"
    )
