"""The stellar blend classifier (ZTF template stamps, MuyGPs): spec, model, plugin."""

from pathlib import Path

from stampflow.classifiers.blend.spec import SPEC
from stampflow.classifiers.registry import ClassifierEntry

ENTRY = ClassifierEntry(
    spec=SPEC,
    plugin="stampflow.classifiers.blend.plugin:BlendClassifier",
    bundle=Path(__file__).resolve().parent / "shipped",
    training="stampflow.training.blend.jobs",
)
