"""Output records as stampflow writes them, with annotations chosen by the test."""

from __future__ import annotations

from pathlib import Path

from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import decode_alert
from stampflow.schemas.encode import OutputEncoder
from stampflow.training.synth import synthesise


def blend(label: str, p: float, ambiguous: bool = False) -> Annotation:
    other = "single" if label == "blend" else "blend"
    return Annotation("blend", "2.0.0", label, {label: p, other: 1 - p}, 0.01, ambiguous)


def morphology(label: str, p: float) -> Annotation:
    return Annotation("morphology", "1.0.0", label, {label: p, "no_gas": 1 - p}, 0.1, False)


# alert index -> its annotations
VERDICTS: list[tuple[Annotation, ...]] = [
    (blend("single", 0.97),),
    (blend("blend", 0.91), morphology("spiral", 0.8)),
    (blend("blend", 0.55, ambiguous=True),),
    (),  # no classifier applied
]


def alerts(n: int = len(VERDICTS), seed: int = 5) -> list:
    packets = synthesise(n, seed, broken_fraction=0.0, progress=False)
    return [decode_alert(packet) for _name, packet, _row in packets]


def annotated_containers(mode: str = "full") -> list[bytes]:
    """One Avro container per alert, as the Kafka sink publishes them."""
    encoder = OutputEncoder()
    return [
        encoder.encode(alert, verdicts, mode=mode, processing_time_ms=1.0)
        for alert, verdicts in zip(alerts(), VERDICTS, strict=True)
    ]


def annotated_file(path: Path, mode: str = "full") -> Path:
    """All alerts in one container file, as archive mode writes them."""
    items = list(zip(alerts(), VERDICTS, strict=True))
    path.write_bytes(OutputEncoder().encode_many(items, mode=mode, processing_time_ms=1.0))
    return path
