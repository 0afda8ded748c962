"""stampflow: a streaming classification daemon for astronomical survey alerts.

``stampflow.decode``, ``stampflow.classify`` and ``stampflow.to_dataframe`` are the Python
API (``stampflow/api.py``).

The subpackages live at the repository root (see pyproject.toml):
``stampflow.schemas`` (Avro schemas and the codec), ``stampflow.classifiers`` (serve-time
models), ``stampflow.stream`` (the daemon) and ``stampflow.training`` (simulators, training,
studies).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stampflow")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

# The Python API (``stampflow.api``), importable as ``stampflow.decode`` and so on; loaded
# on first use so ``import stampflow`` stays light and the CLI's import order is unchanged.
_API = ("decode", "classify", "to_dataframe")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:
        from stampflow import api

        return getattr(api, name)
    raise AttributeError(f"module 'stampflow' has no attribute {name!r}")
