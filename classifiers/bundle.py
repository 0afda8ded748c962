"""Model bundles on disk: plain arrays in safetensors plus a typed JSON manifest. No pickle.

A bundle is a directory holding ``weights.safetensors`` and ``manifest.json``, and for a
network served by ONNX Runtime its graph, ``model.onnx``. Every model's manifest has the same
layout::

    {"format": 1, "name": "blend", "version": "1.0.0",
     "weights": "weights.safetensors", "sha256": "<of the weights file>",
     "onnx": "model.onnx", "onnx_sha256": "<of the ONNX file>",  # only in bundles with one
     "serving":  {"spec": {...}, ...},   # what predict needs: the model's typed serving settings
     "training": {...},                  # the training config that produced it (provenance)
     "metrics":  {...}}                  # what that run measured

``serving`` is read back into the model's frozen serving dataclass (whose ``spec`` field is
the model's ``ClassifierSpec``); every problem (a missing directory or file, bad JSON, a
missing or mistyped key, a checksum or model-name mismatch, a missing array, a spec whose
input contract differs from the code's) is one ``BundleError`` line naming the file and key.
Bundles saved before ONNX export have no ``onnx`` key and still load (``Bundle.onnx_path``
is None); a plugin that serves the ONNX graph refuses them in one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from stampflow.classifiers.base import ClassifierSpec
from stampflow.classifiers.typed import TypedError, from_dict, to_dict

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
ONNX = "model.onnx"
FORMAT = 1

S = TypeVar("S")


class BundleError(RuntimeError):
    """A model bundle that is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    sha256: str
    serving: dict[str, Any]
    training: dict[str, Any]
    metrics: dict[str, Any]
    weights: str = WEIGHTS
    format: int = FORMAT
    onnx: str | None = None  # the network's ONNX graph, for models served by ONNX Runtime
    onnx_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise ValueError(
                f"format {self.format} is not supported (this stampflow reads {FORMAT})"
            )
        for key, name in (("weights", self.weights), ("onnx", self.onnx)):
            if name is not None and ("/" in name or name.startswith(".")):
                raise ValueError(f"{key} must be a file name in the bundle, got {name!r}")
        if (self.onnx is None) != (self.onnx_sha256 is None):
            raise ValueError("onnx and onnx_sha256 come together")


@dataclass(frozen=True)
class Bundle(Generic[S]):
    directory: Path
    manifest: Manifest
    serving: S
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @property
    def onnx_path(self) -> Path | None:
        """The checked ONNX graph, or None for a bundle without one."""
        return None if self.manifest.onnx is None else self.directory / self.manifest.onnx

    def array(self, key: str) -> np.ndarray:
        """One weights array, or a ``BundleError`` naming the file and the missing key."""
        try:
            return self.arrays[key]
        except KeyError:
            raise BundleError(
                f"{self.directory / self.manifest.weights}: array {key!r} missing "
                f"(has {', '.join(sorted(self.arrays)) or 'none'})"
            ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(
    directory: Path,
    *,
    version: str,
    serving: Any,
    arrays: dict[str, np.ndarray],
    training: Any,
    metrics: dict[str, Any],
    onnx: bytes | None = None,
) -> Path:
    """Write ``arrays`` and the manifest to ``directory``. ``serving`` is the model's serving
    dataclass (its ``spec`` names the model); ``training`` its training config; ``onnx`` a
    serialised ONNX graph of the network, written as ``model.onnx`` when given."""
    spec = serving.spec
    if not isinstance(spec, ClassifierSpec):
        raise TypeError(f"serving.spec must be a ClassifierSpec, got {type(spec).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(weights))
    manifest = Manifest(
        name=spec.name,
        version=version,
        sha256=sha256_of(weights),
        serving=to_dict(serving),
        training=to_dict(training),
        metrics=to_dict(metrics),
    )
    if onnx is not None:
        manifest = _with_onnx(directory, manifest, onnx)
    _write_manifest(directory, manifest)
    return directory


def add_onnx(directory: Path, onnx: bytes) -> Path:
    """Write (or replace) the ONNX graph of the bundle in ``directory`` and record it in its
    manifest; the weights file and every other manifest key stay as they are."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    try:
        manifest = from_dict(Manifest, json.loads(manifest_path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypedError) as exc:
        raise BundleError(f"{manifest_path}: {exc}") from None
    _write_manifest(directory, _with_onnx(directory, manifest, onnx))
    return directory


def _with_onnx(directory: Path, manifest: Manifest, onnx: bytes) -> Manifest:
    (directory / ONNX).write_bytes(onnx)
    return replace(manifest, onnx=ONNX, onnx_sha256=sha256_of(directory / ONNX))


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    data = to_dict(manifest)
    for key in ("onnx", "onnx_sha256"):  # bundles without a graph keep the old layout
        if data[key] is None:
            del data[key]
    (directory / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_bundle(directory: Path, serving_type: type[S], spec: ClassifierSpec) -> Bundle[S]:
    """Read and check the bundle in ``directory`` of the model that ``spec`` describes."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise BundleError(f"model bundle {directory} {what}")
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: missing (a bundle holds {MANIFEST} and {WEIGHTS})")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest = from_dict(Manifest, raw)
        serving = from_dict(serving_type, manifest.serving, "serving")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not JSON ({exc})") from None
    except TypedError as exc:
        raise BundleError(f"{manifest_path}: {exc}") from None
    if manifest.name != spec.name:
        raise BundleError(
            f"{manifest_path}: name: holds model {manifest.name!r}, not {spec.name!r}"
        )
    _check_spec(manifest_path, getattr(serving, "spec", None), spec)
    weights = directory / manifest.weights
    if not weights.is_file():
        raise BundleError(f"{weights}: missing (named by {MANIFEST} key 'weights')")
    actual = sha256_of(weights)
    if actual != manifest.sha256:
        raise BundleError(
            f"{weights}: sha256 is {actual}, {MANIFEST} key 'sha256' says {manifest.sha256}"
        )
    if manifest.onnx is not None:
        graph = directory / manifest.onnx
        if not graph.is_file():
            raise BundleError(f"{graph}: missing (named by {MANIFEST} key 'onnx')")
        actual = sha256_of(graph)
        if actual != manifest.onnx_sha256:
            raise BundleError(
                f"{graph}: sha256 is {actual}, {MANIFEST} key 'onnx_sha256' says "
                f"{manifest.onnx_sha256}"
            )
    try:
        arrays = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{weights}: not a readable safetensors file ({exc})") from None
    return Bundle(directory, manifest, serving, arrays)


def _check_spec(path: Path, found: Any, expected: ClassifierSpec) -> None:
    """The bundle's input contract must be the one this code serves (its version may differ)."""
    if not isinstance(found, type(expected)):
        raise BundleError(f"{path}: serving.spec: missing")
    for f in fields(expected):
        if f.name != "version" and getattr(found, f.name) != getattr(expected, f.name):
            raise BundleError(
                f"{path}: serving.spec.{f.name}: the bundle was trained for "
                f"{getattr(found, f.name)!r}, this stampflow serves {getattr(expected, f.name)!r}"
            )
