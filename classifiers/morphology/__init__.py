"""The JWST NIRCam morphology CNN (gas around binaries): spec, network, plugin."""

from pathlib import Path

from stampflow.classifiers.morphology.spec import SPEC
from stampflow.classifiers.registry import ClassifierEntry

ENTRY = ClassifierEntry(
    spec=SPEC,
    plugin="stampflow.classifiers.morphology.plugin:MorphologyClassifier",
    bundle=Path(__file__).resolve().parent / "shipped",
    training="stampflow.training.morphology.jobs",
)
