"""The morphology classifier plugin: gas around binaries in JWST NIRCam multiband stamps.

Applies to alerts carrying the ``cutoutMultiband`` extension with the four NIRCam filters
the network was trained on. Each stamp is brought to the network's grid (0.063"/px, 64x64:
block-averaged when it is at an integer fraction of that scale, as F200W at 0.031"/px is,
bilinearly resampled otherwise, then centre-cropped or NaN-padded), the batch runs through the
CNN at once, and the temperature-scaled probabilities give the label, the uncertainty
(entropy normalised to [0, 1]) and the ambiguous flag (entropy above a threshold chosen on
validation data, see ``stampflow.training.morphology_train``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from stampflow.classifiers.bundle import BundleError, load_model_bundle
from stampflow.classifiers.morphology_net import (
    INPUT_SIZE,
    MorphologyNet,
    NetConfig,
    arrays_to_model,
    preprocess,
)
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.errors import PacketError

if TYPE_CHECKING:
    from stampflow.schemas.alert import Alert

NAME = "morphology"
FILTERS = ("F200W", "F277W", "F356W", "F444W")
GRID_SCALE = 0.063  # arcsec/px of the network's input
MULTIBAND_FIELD = "cutoutMultiband"
_SCALE_TOLERANCE = 0.03  # relative; NIRCam SW 0.031 vs half of 0.063 is within it


def to_grid(stamp: np.ndarray, pixel_scale: float, size: int = INPUT_SIZE) -> np.ndarray:
    """One band (H, W) at ``pixel_scale`` arcsec/px -> (size, size) at 0.063"/px."""
    if pixel_scale <= 0 or not np.isfinite(pixel_scale):
        raise ValueError(f"pixel scale must be a positive number, got {pixel_scale}")
    image = np.asarray(stamp, dtype=np.float32)
    ratio = GRID_SCALE / pixel_scale
    factor = round(ratio)
    if factor >= 1 and abs(ratio - factor) / ratio < _SCALE_TOLERANCE:
        if factor > 1:  # block average (surface brightness is an average over the area)
            h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
            image = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
            image = np.nanmean(image, axis=(1, 3))
    else:
        h, w = image.shape
        out_h, out_w = max(round(h / ratio), 1), max(round(w / ratio), 1)
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        image = F.interpolate(tensor, size=(out_h, out_w), mode="bilinear", align_corners=False)
        image = image[0, 0].numpy()
    return _centre(image, size)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of each row of (n, classes) probabilities, divided by its maximum: in [0, 1]."""
    p = np.clip(probabilities, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    out = np.full((size, size), np.nan, dtype=np.float32)
    h, w = image.shape
    src_y, src_x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    dst_y, dst_x = max((size - h) // 2, 0), max((size - w) // 2, 0)
    ch, cw = min(h, size), min(w, size)
    out[dst_y : dst_y + ch, dst_x : dst_x + cw] = image[src_y : src_y + ch, src_x : src_x + cw]
    return out


class MorphologyClassifier:
    """The shipped CNN with its calibration, behind the ``Classifier`` interface."""

    name = NAME

    def __init__(
        self,
        model: MorphologyNet,
        *,
        version: str,
        sha256: str,
        labels: tuple[str, ...],
        temperature: float,
        ambiguous_threshold: float,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.model = model.eval()
        self.version = version
        self.sha256 = sha256
        self.labels = labels
        self.temperature = temperature
        self.ambiguous_threshold = ambiguous_threshold

    @classmethod
    def load(cls, model_dir: Path | None = None) -> MorphologyClassifier:
        """Load a bundle (default: the shipped one); weights from safetensors, never pickle."""
        bundle = load_model_bundle(NAME, model_dir)
        try:
            extra = bundle.extra
            model = arrays_to_model(bundle.arrays, NetConfig.from_dict(extra["net"]))
            return cls(
                model,
                version=bundle.version,
                sha256=bundle.sha256,
                labels=tuple(extra["labels"]),
                temperature=float(extra["temperature"]),
                ambiguous_threshold=float(extra["ambiguous_threshold"]),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BundleError(f"morphology bundle {model_dir or 'shipped'}: {exc}") from exc

    def applies_to(self, alert: Alert) -> bool:
        try:
            multiband = alert.multiband
        except PacketError:
            return True  # broken extension: classify() reports it for this alert
        return multiband is not None and set(FILTERS) <= set(multiband.filters)

    def stamps_of(self, alert: Alert) -> np.ndarray:
        """(4, 64, 64) float32 on the network grid, or PacketError naming the alert."""
        try:
            multiband = alert.multiband
            if multiband is None:
                raise PacketError("bad_stamp", "no multiband stamps", field=MULTIBAND_FIELD)
            missing = set(FILTERS) - set(multiband.filters)
            if missing:
                raise PacketError(
                    "bad_stamp", f"filters {sorted(missing)} missing", field=MULTIBAND_FIELD
                )
            planes = multiband.stamps()
            index = [multiband.filters.index(f) for f in FILTERS]
            return np.stack([to_grid(planes[i], multiband.pixel_scale[i]) for i in index])
        except PacketError as exc:
            raise PacketError(
                exc.reason, f"alert {alert.object_id}/{alert.candid}: {exc.detail}", field=exc.field
            ) from exc
        except ValueError as exc:
            raise PacketError(
                "bad_stamp", f"alert {alert.object_id}/{alert.candid}: {exc}", field=MULTIBAND_FIELD
            ) from exc

    def probabilities(self, stamps: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for (n, 4, 64, 64) stamps on the network grid."""
        with torch.no_grad():
            logits = self.model(preprocess(stamps)) / self.temperature
            return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        if not alerts:
            return []
        probabilities = self.probabilities(np.stack([self.stamps_of(a) for a in alerts]))
        entropy = normalised_entropy(probabilities)
        return [
            Annotation(
                classifier=self.name,
                model_version=self.version,
                label=self.labels[int(np.argmax(row))],
                probabilities={label: float(v) for label, v in zip(self.labels, row, strict=True)},
                uncertainty=float(h),
                ambiguous=bool(h > self.ambiguous_threshold),
            )
            for row, h in zip(probabilities, entropy, strict=True)
        ]
