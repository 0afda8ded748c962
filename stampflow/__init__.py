"""stampflow: a streaming classification daemon for astronomical survey alerts.

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
