"""The morphology CNN to ONNX: what the plugin serves with ONNX Runtime, without torch.

``onnx_bytes`` exports the eval-mode network (dropout the identity, batch norm on its running
statistics) with a dynamic batch axis; the graph takes the preprocessed ``stamps``
(batch, 4, 64, 64) and gives both the ``logits`` and the penultimate ``features`` (the OOD
score's Mahalanobis distance needs them). ``train.save`` writes it into every new bundle;
``export_bundle`` adds it to a bundle saved before, from its own safetensors weights, leaving
the weights and every other manifest key as they were::

    python -m stampflow.training.morphology.export classifiers/morphology/shipped
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from stampflow.classifiers.bundle import BundleError, add_onnx, load_bundle
from stampflow.classifiers.morphology.net import MorphologyNet, arrays_to_model
from stampflow.classifiers.morphology.netconfig import N_BANDS
from stampflow.classifiers.morphology.ood import OOD_KEYS
from stampflow.classifiers.morphology.plugin import (
    FEATURES,
    INPUT,
    LOGITS,
    MorphologyServing,
)
from stampflow.classifiers.morphology.spec import SPEC

OPSET = 18


class _LogitsAndFeatures(nn.Module):
    """The network with both outputs the plugin reads, in the graph's output order."""

    def __init__(self, net: MorphologyNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.features(x)
        return self.net.head(self.net.dropout(features)), features


def onnx_bytes(net: MorphologyNet) -> bytes:
    """The eval-mode ``net`` as a serialised ONNX graph (opset ``OPSET``, dynamic batch)."""
    was_training = net.training
    module = _LogitsAndFeatures(net).eval()
    example = torch.zeros(2, N_BANDS, SPEC.input_size, SPEC.input_size)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[INPUT],
                output_names=[LOGITS, FEATURES],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        buffer = io.BytesIO()
        program.save(buffer)
        return buffer.getvalue()
    finally:
        quiet.setLevel(level)
        net.train(was_training)


def load_net(directory: Path) -> MorphologyNet:
    """The torch network of the bundle in ``directory``, from its safetensors weights."""
    bundle = load_bundle(directory, MorphologyServing, SPEC)
    weights = {k: v for k, v in bundle.arrays.items() if k not in OOD_KEYS}
    try:
        return arrays_to_model(weights, bundle.serving.net)
    except RuntimeError as exc:  # torch names the missing or misshapen tensors
        first = str(exc).strip().splitlines()
        raise BundleError(
            f"{bundle.directory / bundle.manifest.weights}: does not fit serving.net: "
            + " ".join(line.strip() for line in first[:3])
        ) from None


def export_bundle(directory: Path) -> Path:
    """Write ``model.onnx`` into the bundle in ``directory`` from its own weights and record
    it in the manifest (file name and sha256); nothing else in the bundle changes."""
    return add_onnx(Path(directory), onnx_bytes(load_net(directory)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="+", help="morphology bundle directories")
    args = parser.parse_args(argv)
    for directory in args.bundle:
        try:
            export_bundle(directory)
        except BundleError as exc:
            print(f"export: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {directory / 'model.onnx'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
