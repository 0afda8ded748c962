"""Thread pools per worker (``threads``), so N workers do not fight over the cores.

torch, OpenMP, OpenBLAS/MKL and scikit-learn each start one thread per core by default:
with ``--workers 2`` on two cores that is four or more busy threads per core, spinning
against each other. Each worker limits its pools to ``threads`` (``auto``: the cores this
process may run on, divided by the workers, at least 1):

1. ``thread_environment``: ``OMP_NUM_THREADS`` and friends, set before the worker imports
   numpy or torch (the parent sets them before spawning; the libraries read them once,
   at load), and ``STAMPFLOW_MORPHOLOGY_THREADS``, which the morphology plugin reads when
   it creates its ONNX Runtime session (``intra_op_num_threads``; ONNX Runtime follows
   neither the OpenMP variables nor threadpoolctl). With ``threads: auto`` a variable the
   user set already is kept;
2. ``limit_pools``: what is loaded already, at run time: ``torch.set_num_threads`` and
   threadpoolctl's limits (OpenMP, BLAS) when threadpoolctl is installed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping, Sequence

log = logging.getLogger(__name__)

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    # ONNX Runtime ignores the OpenMP variables and threadpoolctl: the morphology plugin
    # gives its session this many intra-op threads (classifiers/morphology/plugin.py).
    ONNX_THREADS_VARIABLE := "STAMPFLOW_MORPHOLOGY_THREADS",
)
_LIMITS: list[object] = []  # threadpoolctl limiters, kept alive for the process's life


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_worker(threads: int | None, workers: int | None, cores: int | None = None) -> int:
    """``threads`` when set, else (``auto``) the cores shared out over the workers (``None``,
    not resolved yet: one worker)."""
    if threads is not None:
        return threads
    return max(1, (cores or available_cores()) // max(1, workers or 1))


def thread_environment(
    n: int,
    *,
    explicit: bool,
    env: MutableMapping[str, str] | None = None,
    names: Sequence[str] = THREAD_VARIABLES,
) -> None:
    """Set the thread-count variables ``names`` to ``n`` (``explicit``: over the user's own
    too)."""
    env = os.environ if env is None else env
    for name in names:
        if explicit or name not in env:
            env[name] = str(n)


def limit_pools(n: int) -> dict[str, int]:
    """Limit the pools already loaded in this process to ``n`` threads; what was limited."""
    done: dict[str, int] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(n)
            done["torch"] = n
        except RuntimeError as exc:  # pragma: no cover - a torch that refuses
            log.warning("cannot limit torch's threads: %s", exc)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return done
    _LIMITS.append(threadpool_limits(limits=n))
    done["openmp/blas"] = n
    return done
