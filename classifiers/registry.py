"""Classifier names the daemon's config may list, and how each one is loaded."""

from __future__ import annotations

from pathlib import Path

from stampflow.classifiers.base import Classifier

KNOWN_CLASSIFIERS = ("blend", "morphology")


def load_classifier(name: str, model_dir: Path | None = None) -> Classifier:
    """Load a classifier by name from ``model_dir`` (default: the bundle shipped with stampflow)."""
    if name == "blend":
        from stampflow.classifiers.blend import BlendClassifier

        return BlendClassifier.load(model_dir)
    if name == "morphology":
        from stampflow.classifiers.morphology import MorphologyClassifier

        return MorphologyClassifier.load(model_dir)
    raise ValueError(f"unknown classifier {name!r}; known: {', '.join(KNOWN_CLASSIFIERS)}")
