"""The one list of classifiers: built-in model packages plus those other packages install.

Every caller (config validation, the CLI, demo scoring, ``train`` and ``study``) asks this
module. A classifier is known by a ``ClassifierEntry``:

- **built in**: each subpackage of ``stampflow.classifiers`` that defines ``ENTRY`` (so a new
  model is one new package, ``classifiers/<name>/``, and nothing else);
- **installed**: any distribution that declares an entry point in the group
  ``stampflow.classifiers`` whose object is a ``ClassifierEntry`` (or a function returning
  one), e.g. in its ``pyproject.toml``::

      [project.entry-points."stampflow.classifiers"]
      brightness = "my_broker.brightness:ENTRY"

Entries are light (a spec and dotted names); the model code is imported on ``load``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from stampflow.classifiers.base import Classifier, ClassifierSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "stampflow.classifiers"


class RegistryError(ValueError):
    """An unknown classifier name, or a plugin that cannot be loaded."""


@dataclass(frozen=True)
class ClassifierEntry:
    """How the registry knows one model.

    ``plugin`` is ``"module:Class"``, a class with ``load(bundle_dir: Path | None)``
    returning a ``Classifier``; ``bundle`` the shipped bundle directory (None: a model that
    needs none, or one whose bundle the user always names); ``training`` the module holding
    the model's training interface (see ``stampflow.training.model_cmd``), if it has one.
    """

    spec: ClassifierSpec
    plugin: str
    bundle: Path | None = None
    training: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self, model_dir: Path | None = None) -> Classifier:
        module, _, attr = self.plugin.partition(":")
        plugin_class: Any = getattr(importlib.import_module(module), attr)
        return plugin_class.load(Path(model_dir) if model_dir else self.bundle)


@functools.cache
def _discover() -> tuple[dict[str, ClassifierEntry], dict[str, str]]:
    """(entries by name, plugins that failed to load by name with why)."""
    import stampflow.classifiers as package

    found: dict[str, ClassifierEntry] = {}
    broken: dict[str, str] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            entry = getattr(
                importlib.import_module(f"{package.__name__}.{module.name}"), "ENTRY", None
            )
            if isinstance(entry, ClassifierEntry):
                found[entry.name] = entry
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry = point.load()
            entry = entry() if callable(entry) else entry
            if not isinstance(entry, ClassifierEntry):
                raise TypeError(f"{point.value} is a {type(entry).__name__}, not a ClassifierEntry")
            if entry.name != point.name:
                raise ValueError(f"entry point {point.name!r} holds classifier {entry.name!r}")
            if entry.name in found:
                raise ValueError(f"{entry.name!r} is already a classifier")
        except Exception as exc:  # a broken plugin must not take the built-in models down
            broken[point.name] = f"{point.value}: {type(exc).__name__}: {exc}"
            log.warning("classifier plugin %s not loaded: %s", point.name, broken[point.name])
            continue
        found[entry.name] = entry
    return dict(sorted(found.items())), broken


def entries() -> dict[str, ClassifierEntry]:
    return dict(_discover()[0])


def names() -> tuple[str, ...]:
    return tuple(_discover()[0])


def get(name: str) -> ClassifierEntry:
    found, broken = _discover()
    if name in found:
        return found[name]
    if name in broken:
        raise RegistryError(f"classifier plugin {name!r} failed to load: {broken[name]}")
    raise RegistryError(f"unknown classifier {name!r}; known: {', '.join(found) or 'none'}")


def load_classifier(name: str, model_dir: Path | None = None) -> Classifier:
    """Load a classifier by name from ``model_dir`` (default: its shipped bundle)."""
    return get(name).load(model_dir)


def refresh() -> None:
    """Forget what was discovered (after installing a plugin into a running interpreter)."""
    _discover.cache_clear()
