"""Model bundles on disk: plain arrays in safetensors plus a JSON manifest. No pickle anywhere.

A bundle is a directory holding ``weights.safetensors`` and ``manifest.json``. The manifest
records the model name and version, the sha256 of the weights file, the training config and
the validation metrics, so a loaded model can be traced to the command that produced it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
SHIPPED_MODELS = Path(__file__).resolve().parent / "models"


class BundleError(RuntimeError):
    """A model bundle that is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class Bundle:
    name: str
    version: str
    arrays: dict[str, np.ndarray]
    sha256: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(
    directory: Path,
    *,
    name: str,
    version: str,
    arrays: dict[str, np.ndarray],
    config: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Bundle:
    """Write ``arrays`` and a manifest to ``directory``; returns the bundle as loaded back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(weights))
    manifest = {
        "name": name,
        "version": version,
        "weights": WEIGHTS,
        "sha256": sha256_of(weights),
        "config": config,
        "metrics": metrics,
        "extra": extra or {},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return load_bundle(directory)


def load_bundle(directory: Path) -> Bundle:
    """Read a bundle, checking the weights against the manifest's sha256."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"no {MANIFEST} in model bundle {directory}")
    manifest = json.loads(manifest_path.read_text())
    weights = directory / manifest.get("weights", WEIGHTS)
    if not weights.is_file():
        raise BundleError(f"model bundle {directory} lacks its weights file {weights.name}")
    actual = sha256_of(weights)
    if actual != manifest.get("sha256"):
        raise BundleError(
            f"model bundle {directory}: {weights.name} has sha256 {actual}, "
            f"manifest says {manifest.get('sha256')}"
        )
    return Bundle(
        name=manifest["name"],
        version=manifest["version"],
        arrays=load_file(str(weights)),
        sha256=actual,
        config=manifest.get("config", {}),
        metrics=manifest.get("metrics", {}),
        extra=manifest.get("extra", {}),
    )


def load_model_bundle(name: str, model_dir: Path | None = None) -> Bundle:
    """The bundle of model ``name`` in ``model_dir`` (default: the one shipped with stampflow)."""
    directory = Path(model_dir) if model_dir else SHIPPED_MODELS / name
    bundle = load_bundle(directory)
    if bundle.name != name:
        raise BundleError(f"bundle {directory} holds model {bundle.name!r}, not {name!r}")
    return bundle
