"""The morphology CNN's architecture settings, without torch: the manifest's ``serving.net``.

Serving reads them to check the ONNX graph's shapes; training (``net.py``) builds the torch
module from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from stampflow.classifiers.morphology.spec import SPEC

N_BANDS = len(SPEC.filters)


@dataclass(frozen=True)
class NetConfig:
    """Channel widths of the stem and of each stride-2 residual stage."""

    stem: int = 16
    stages: tuple[int, ...] = (24, 48, 96)
    se_reduction: int = 4
    dropout: float = 0.2
    n_classes: int = len(SPEC.labels)

    def __post_init__(self) -> None:
        if self.stem <= 0 or not self.stages or min(self.stages) <= 0:
            raise ValueError(f"channel widths must be positive: {self}")
        if not 0.0 <= self.dropout < 1.0 or self.n_classes < 2 or self.se_reduction < 1:
            raise ValueError(f"invalid dropout, class count or SE reduction: {self}")
