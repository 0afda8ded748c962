"""The morphology classifier behind the daemon's ``Classifier`` interface.

Applies to alerts carrying the ``cutoutMultiband`` extension with the four NIRCam filters
the network was trained on. Each stamp is brought to the network's grid (``preprocess``),
the batch runs through the CNN at once (the bundle's ``model.onnx`` on ONNX Runtime: its CPU
provider, or CUDA with ``device``, see ``stampflow.classifiers.device``; serving never
imports torch), its outputs averaged over the stamp's quarter turns and flips as the bundle
says (``views.py``), and the temperature-scaled probabilities give the
label and the uncertainty (entropy normalised to [0, 1]). The ambiguous flag rises when
either the entropy is above its threshold (near a class boundary) or the penultimate features
are far from every class seen in training (``ood.py``: Mahalanobis distance above its
threshold: an input unlike the training data, however confident the softmax). Both
thresholds were chosen on held-out families (see ``stampflow.training.morphology.ood``).
Two rules flag whatever the scores (``unreadable``): no source in the stamp, and ``no_gas``
around a star saturated where dust shines.

ONNX Runtime's intra-op threads: ``load(threads=...)``, else the environment variable
``STAMPFLOW_MORPHOLOGY_THREADS``, else 1 (the daemon runs one batch at a time per process).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import onnxruntime as ort

from stampflow.classifiers.bundle import MANIFEST, BundleError, load_bundle
from stampflow.classifiers.device import (
    DeviceError,
    requested_device,
    session_device,
    start_session,
)
from stampflow.classifiers.morphology import ENTRY
from stampflow.classifiers.morphology.netconfig import N_BANDS, NetConfig
from stampflow.classifiers.morphology.ood import MEANS_KEY, PRECISION_KEY, OodModel, OodServing
from stampflow.classifiers.morphology.preprocess import (
    detected,
    preprocess,
    saturated_core,
    to_grid,
)
from stampflow.classifiers.morphology.spec import SPEC, MorphologySpec
from stampflow.classifiers.morphology.views import averaged, check
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.errors import PacketError

if TYPE_CHECKING:
    from stampflow.schemas.alert import Alert


@dataclass(frozen=True)
class MorphologyServing:
    """The manifest's ``serving`` section: everything but the weights."""

    spec: MorphologySpec
    net: NetConfig
    temperature: float
    ambiguous_threshold: float
    ood: OodServing | None = None  # None: the flag is the entropy's alone
    # Distance-aware calibration: the temperature grows with the OOD score s (distance over
    # threshold) as temperature + temperature_slope * s, so inputs unlike the training data
    # get softer probabilities; 0 without an OOD model.
    temperature_slope: float = 0.0
    # The network's outputs are averaged over this many quarter turns and flips of each
    # stamp (``views.py``); the temperature and thresholds were fitted on those averages.
    views: int = 1

    def __post_init__(self) -> None:
        check(self.views)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.temperature_slope < 0 or (self.temperature_slope and self.ood is None):
            raise ValueError("temperature_slope must be >= 0 and needs an OOD model")
        if self.net.n_classes != len(self.spec.labels):
            raise ValueError(
                f"net.n_classes {self.net.n_classes} != {len(self.spec.labels)} labels"
            )
        if self.ood is not None and self.ood.feature_dim != self.net.stages[-1]:
            raise ValueError(
                f"ood.feature_dim {self.ood.feature_dim} != the net's {self.net.stages[-1]}"
            )


@dataclass(frozen=True)
class Prediction:
    """One batch through the network: calibrated probabilities, the OOD score (distance /
    threshold; zeros without an OOD model), whether each stamp holds a source at all
    (``preprocess.detected``) and whether its target's core is saturated at the dust's
    wavelengths (``preprocess.saturated_core``)."""

    probabilities: np.ndarray
    ood_score: np.ndarray
    detected: np.ndarray
    saturated: np.ndarray

    @property
    def entropy(self) -> np.ndarray:
        return normalised_entropy(self.probabilities)


class Network(Protocol):
    """The CNN as the plugin runs it: (n, 4, 64, 64) preprocessed float32 ->
    (penultimate features (n, d), logits (n, classes)). ``OnnxNetwork`` serves; training
    wraps its torch module (``net.TorchNetwork``)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


INPUT, LOGITS, FEATURES = "stamps", "logits", "features"  # the ONNX graph's names
THREADS_ENV = "STAMPFLOW_MORPHOLOGY_THREADS"


class OnnxNetwork:
    """The exported graph on ONNX Runtime; ``device`` (auto, cpu, cuda) picks the provider
    and ``self.device`` says which ran."""

    def __init__(self, path: Path, threads: int = 1, device: str = "cpu") -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no start-up chatter in the daemon's log
        self.path = Path(path)
        self.threads = threads
        self.session = start_session(
            lambda providers: ort.InferenceSession(str(path), options, providers=providers),
            device,
            ort.get_available_providers(),
        )
        self.device = session_device(device, self.session)

    def shapes(self) -> dict[str, list[int | str | None]]:
        """The graph's input and output shapes by name (symbolic dims as their names)."""
        nodes = [*self.session.get_inputs(), *self.session.get_outputs()]
        return {node.name: list(node.shape) for node in nodes}

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, logits = self.session.run(
            [FEATURES, LOGITS], {INPUT: np.ascontiguousarray(x, dtype=np.float32)}
        )
        return features, logits


def _threads(threads: int | None) -> int:
    """``threads``, else $STAMPFLOW_MORPHOLOGY_THREADS, else 1; at least 1."""
    where = "threads"
    if threads is None:
        where, text = THREADS_ENV, os.environ.get(THREADS_ENV, "1").strip() or "1"
        try:
            threads = int(text)
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be an integer, got {text!r}") from None
    if threads < 1:
        raise ValueError(f"{where} must be at least 1, got {threads}")
    return threads


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes) scores."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _check_graph(path: Path, shapes: dict[str, list[int | str | None]], net: NetConfig) -> None:
    """The graph must take (batch, 4, 64, 64) and give features and logits of the widths
    ``serving.net`` names: a graph exported from another network is refused in one line."""
    size = SPEC.input_size
    expected = {
        INPUT: [N_BANDS, size, size],
        FEATURES: [net.stages[-1]],
        LOGITS: [net.n_classes],
    }
    for name, dims in expected.items():
        if name not in shapes:
            raise BundleError(
                f"{path}: no {'input' if name == INPUT else 'output'} {name!r} "
                f"(has {', '.join(sorted(shapes))})"
            )
        if shapes[name][1:] != dims:
            raise BundleError(
                f"{path}: does not fit serving.net: {name} is {shapes[name]}, "
                f"serving.net makes [batch, {', '.join(map(str, dims))}]"
            )


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of each row of (n, classes) probabilities, divided by its maximum: in [0, 1]."""
    p = np.clip(probabilities, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


class MorphologyClassifier:
    """The CNN with its calibration; ``load`` for a bundle (ONNX Runtime), the constructor
    for training (any ``Network``, e.g. a torch module in ``net.TorchNetwork``)."""

    name = SPEC.name
    labels = SPEC.labels

    def __init__(
        self,
        model: Network,
        serving: MorphologyServing,
        *,
        version: str,
        sha256: str,
        ood: OodModel | None = None,
    ) -> None:
        if (ood is None) != (serving.ood is None):
            raise ValueError("serving.ood and the OOD arrays come together")
        self.model = model
        self.serving = serving
        self.version = version
        self.sha256 = sha256
        self.ood = ood

    @classmethod
    def load(
        cls, model_dir: Path | None = None, *, threads: int | None = None, device: str | None = None
    ) -> MorphologyClassifier:
        """Load a bundle: the network from its ONNX graph, the OOD statistics from
        safetensors, never pickle. ``threads``: ONNX Runtime's intra-op threads; ``device``:
        auto, cpu or cuda (default $STAMPFLOW_DEVICE, else cpu); a device that cannot be
        used is a ``DeviceError``."""
        bundle = load_bundle(model_dir or ENTRY.bundle, MorphologyServing, SPEC)
        graph = bundle.onnx_path
        if graph is None:
            raise BundleError(
                f"{bundle.directory / MANIFEST}: onnx: missing (a bundle saved before ONNX "
                f"serving; add it: python -m stampflow.training.morphology.export "
                f"{bundle.directory})"
            )
        threads, device = _threads(threads), requested_device(device)
        try:
            model = OnnxNetwork(graph, threads, device)
        except DeviceError:
            raise
        except Exception as exc:  # onnxruntime's own errors: an unreadable or invalid graph
            why = " ".join(str(exc).split())[:300]
            raise BundleError(f"{graph}: not a loadable ONNX model ({why})") from None
        _check_graph(graph, model.shapes(), bundle.serving.net)
        ood = None
        if bundle.serving.ood is not None:
            try:
                ood = OodModel(
                    bundle.serving.ood, bundle.array(MEANS_KEY), bundle.array(PRECISION_KEY)
                )
            except ValueError as exc:
                raise BundleError(f"{bundle.directory / bundle.manifest.weights}: {exc}") from None
        return cls(model, bundle.serving, version=bundle.version, sha256=bundle.sha256, ood=ood)

    @property
    def device(self) -> str:
        """Where the network runs: ``cuda`` or ``cpu`` (a training-side network: ``cpu``)."""
        return getattr(self.model, "device", "cpu")

    @property
    def temperature(self) -> float:
        return self.serving.temperature

    @property
    def ambiguous_threshold(self) -> float:
        return self.serving.ambiguous_threshold

    def applies_to(self, alert: Alert) -> bool:
        if not SPEC.takes_survey(alert):  # ZTF-style packets only (the multiband extension)
            return False
        try:
            multiband = alert.multiband
        except PacketError:
            return True  # broken extension: classify() reports it for this alert
        return multiband is not None and set(SPEC.filters) <= set(multiband.filters)

    def stamps_of(self, alert: Alert) -> np.ndarray:
        """(4, 64, 64) float32 on the network grid, or PacketError naming the alert."""
        who = f"alert {alert.object_id}/{alert.candid}"
        try:
            multiband = alert.multiband
            if multiband is None:
                raise PacketError("bad_stamp", "no multiband stamps", field=SPEC.cutout)
            missing = set(SPEC.filters) - set(multiband.filters)
            if missing:
                raise PacketError(
                    "bad_stamp", f"filters {sorted(missing)} missing", field=SPEC.cutout
                )
            planes = multiband.stamps()
            index = [multiband.filters.index(f) for f in SPEC.filters]
            return np.stack([to_grid(planes[i], multiband.pixel_scale[i]) for i in index])
        except PacketError as exc:
            raise PacketError(exc.reason, f"{who}: {exc.detail}", field=exc.field) from exc
        except ValueError as exc:
            raise PacketError("bad_stamp", f"{who}: {exc}", field=SPEC.cutout) from exc

    def predict(self, stamps: np.ndarray, batch_size: int = 256) -> Prediction:
        """Probabilities and OOD scores for (n, 4, 64, 64) stamps: one network call per
        batch, all of its views at once."""
        probabilities, scores, found = [], [], []
        step = max(1, batch_size // self.serving.views)  # the network sees every view at once
        for start in range(0, len(stamps), step):
            x = preprocess(stamps[start : start + step])
            found.append(detected(x))
            features, logits = averaged(self.model.run, x, self.serving.views)
            score = np.zeros(len(logits))
            if self.ood is not None:
                score = self.ood.score(features)
                scores.append(score)
            temperature = self.temperature + self.serving.temperature_slope * score
            probabilities.append(softmax(np.asarray(logits, np.float64) / temperature[:, None]))
        if not probabilities:
            none = np.zeros(0, bool)
            return Prediction(np.zeros((0, len(self.labels))), np.zeros(0), none, none)
        p = np.concatenate(probabilities).astype(np.float64)
        ood = np.concatenate(scores) if scores else np.zeros(len(p))
        return Prediction(p, ood, np.concatenate(found), saturated_core(stamps))

    def probabilities(self, stamps: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Calibrated class probabilities for (n, 4, 64, 64) stamps on the network grid."""
        return self.predict(stamps, batch_size).probabilities

    def flags(self, prediction: Prediction) -> np.ndarray:
        """The ambiguous flag: near a class boundary, unlike the training data, or one of
        the ``unreadable`` cases."""
        return (
            (prediction.entropy > self.ambiguous_threshold)
            | (prediction.ood_score > 1.0)
            | self.unreadable(prediction)
        )

    def unreadable(self, prediction: Prediction) -> np.ndarray:
        """Flagged whatever the scores: no source in the stamp to read a morphology from,
        or ``no_gas`` called around a star saturated where dust shines (faint dust there
        hides under the PSF's wings: absence is not established)."""
        no_gas = prediction.probabilities.argmax(axis=1) == self.labels.index("no_gas")
        return ~prediction.detected | (no_gas & prediction.saturated)

    def annotate(self, stamps: np.ndarray) -> list[Annotation]:
        """Annotations for stamps on the network grid: what ``classify`` returns."""
        prediction = self.predict(stamps)
        probabilities, entropy = prediction.probabilities, prediction.entropy
        flagged = self.flags(prediction)
        return [
            Annotation(
                classifier=self.name,
                model_version=self.version,
                label=self.labels[int(np.argmax(row))],
                probabilities={label: float(v) for label, v in zip(self.labels, row, strict=True)},
                uncertainty=float(h),
                ambiguous=bool(flag),
            )
            for row, h, flag in zip(probabilities, entropy, flagged, strict=True)
        ]

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        if not alerts:
            return []
        return self.annotate(np.stack([self.stamps_of(a) for a in alerts]))
