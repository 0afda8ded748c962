"""Decode and classify never raise for bad input: failures become dead letters, the rest flows."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Sequence
from pathlib import Path

from stream_helpers import good_packets

from stampflow.schemas.annotation import Annotation
from stampflow.schemas.errors import PacketError
from stampflow.stream.messages import SourceMessage
from stampflow.stream.pipeline import CLASSIFIER_ERROR, classify_batch, decode_batch


def messages(values: list[bytes]) -> list[SourceMessage]:
    return [SourceMessage(v, "in", 0, i) for i, v in enumerate(values)]


class PickyClassifier:
    """Labels every alert 'star' but fails on the candids it is told to hate."""

    name = "picky"
    version = "1"
    sha256 = "0" * 64

    def __init__(self, hated: set[int], *, packet_error: bool = False, named: bool = False) -> None:
        self.hated = hated
        self.packet_error = packet_error
        self.named = named  # the PacketError names the alert, as the protocol asks
        self.calls: list[int] = []

    def applies_to(self, alert) -> bool:
        return True

    def classify(self, alerts: Sequence) -> list[Annotation]:
        self.calls.append(len(alerts))
        for alert in alerts:
            if alert.candid in self.hated:
                if self.named:
                    who = f"alert {alert.object_id} candid {alert.candid}"
                    raise PacketError("bad_stamp", f"{who}: unreadable", field="cutoutScience")
                if self.packet_error:
                    raise PacketError("bad_stamp", "unreadable", field="cutoutScience")
                raise RuntimeError("boom")
        return [Annotation(self.name, self.version, "star", {"star": 1.0}) for _ in alerts]


def test_decode_dead_letters_each_bad_packet_and_keeps_the_good(shared_alerts: Path) -> None:
    good = good_packets(3)
    legacy = sorted((shared_alerts / "legacy").iterdir())[0].read_bytes()
    damaged = (shared_alerts / "damaged" / "ztf_4.02_truncated_tail.avro").read_bytes()
    decoded, dead = decode_batch(messages([good[0], b"", legacy, good[1], damaged, good[2]]))
    assert [d.message.offset for d in decoded] == [0, 3, 4, 5]  # damaged: its good record
    assert [(d.message.offset, d.stage) for d in dead] == [
        (1, "decode"),
        (2, "decode"),
        (4, "decode"),
    ]
    assert dead[0].reason == "empty"
    assert all(d.reason and d.error for d in dead)


def test_a_failing_batch_is_retried_down_to_single_alerts() -> None:
    decoded, _ = decode_batch(messages(good_packets(5)))
    hated = {decoded[1].alert.candid, decoded[3].alert.candid}
    picky = PickyClassifier(hated)
    annotated, dead = classify_batch(
        decoded, [picky], batch_started=0.0, on_classifier_time=lambda name, s: None
    )
    assert picky.calls[0] == 5 and min(picky.calls) == 1  # the batch, then smaller parts
    assert [a.message.offset for a in annotated] == [0, 2, 4]
    assert all(a.annotations[0].label == "star" for a in annotated)
    assert sorted(d.message.offset for d in dead) == [1, 3]
    assert {(d.stage, d.reason) for d in dead} == {("classify", CLASSIFIER_ERROR)}


def test_a_packet_error_naming_its_alert_splits_the_batch_there() -> None:
    decoded, _ = decode_batch(messages(good_packets(12)))
    bad = [2, 7, 8]
    picky = PickyClassifier({decoded[i].alert.candid for i in bad}, named=True)
    annotated, dead = classify_batch(
        decoded, [picky], batch_started=0.0, on_classifier_time=lambda n, s: None
    )
    assert sorted(d.message.offset for d in dead) == bad
    assert [a.message.offset for a in annotated] == [i for i in range(12) if i not in bad]
    assert {(d.reason, d.field) for d in dead} == {("bad_stamp", "cutoutScience")}
    assert len(picky.calls) <= 3 * len(bad) + 1
    halving = PickyClassifier(picky.hated, packet_error=True)  # names no alert
    classify_batch(decoded, [halving], batch_started=0.0, on_classifier_time=lambda n, s: None)
    assert len(picky.calls) < len(halving.calls)


def test_a_packet_error_keeps_its_reason_and_field() -> None:
    decoded, _ = decode_batch(messages(good_packets(2)))
    picky = PickyClassifier({decoded[0].alert.candid}, packet_error=True)
    _, dead = classify_batch(
        decoded, [picky], batch_started=0.0, on_classifier_time=lambda n, s: None
    )
    assert [(d.reason, d.field) for d in dead] == [("bad_stamp", "cutoutScience")]


def test_no_classifiers_passes_alerts_through() -> None:
    decoded, _ = decode_batch(messages(good_packets(2)))
    annotated, dead = classify_batch(
        decoded, [], batch_started=0.0, on_classifier_time=lambda n, s: None
    )
    assert [a.annotations for a in annotated] == [(), ()]
    assert dead == []


class _Held:
    """Stands for what a classify call's frame holds (its batch's stamps and records)."""


class KeepingClassifier(PickyClassifier):
    """Keeps every exception it raises, as a classifier with a retry memo does."""

    def __init__(self, hated: set[int]) -> None:
        super().__init__(hated, named=True)
        self.kept: list[BaseException] = []
        self.frames: list[weakref.ref] = []

    def classify(self, alerts: Sequence) -> list[Annotation]:
        held = _Held()
        self.frames.append(weakref.ref(held))
        try:
            return super().classify(alerts)
        except PacketError as exc:
            self.kept.append(exc)
            raise


def test_a_kept_classifier_error_does_not_keep_its_batch_alive() -> None:
    """A caught error's traceback holds the call's frames, so the whole batch: a reference
    cycle only a full collection frees (the blend worker's RSS grew by ~300 MB per 9,000
    alerts). Without the collector, every call's frame must go once classify_batch returns."""
    decoded, _ = decode_batch(messages(good_packets(6)))
    keeping = KeepingClassifier({decoded[2].alert.candid})
    gc.disable()
    try:
        annotated, dead = classify_batch(
            decoded, [keeping], batch_started=0.0, on_classifier_time=lambda name, s: None
        )
        assert [d.message.offset for d in dead] == [2] and len(annotated) == 5
        assert len(keeping.kept) >= 2  # the batch's error and the lone alert's
        assert all(exc.__traceback__ is None for exc in keeping.kept)
        assert [ref() for ref in keeping.frames] == [None] * len(keeping.frames)
    finally:
        gc.enable()
