"""The Rubin stellar blend classifier (Rubin template cutouts, 0.2"/px, MuyGPs).

The ZTF blend model's code (``stampflow.classifiers.blend``: preprocessing, PCA, MuyGPs,
calibration, ambiguity flag) with Rubin's input contract (``spec.py``) and its own bundle,
trained on the GalSim sky simulator configured for Rubin (``stampflow.training.blend_rubin``).
"""

from pathlib import Path

from stampflow.classifiers.blend_rubin.spec import SPEC
from stampflow.classifiers.registry import ClassifierEntry

ENTRY = ClassifierEntry(
    spec=SPEC,
    plugin="stampflow.classifiers.blend_rubin.plugin:RubinBlendClassifier",
    bundle=Path(__file__).resolve().parent / "shipped",
    training="stampflow.training.blend_rubin.jobs",
)
