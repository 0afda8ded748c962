"""``--workers N``: N consumer processes in one group, their metrics served on one port.

The parent spawns the workers (``multiprocessing`` spawn: fresh interpreters, no forked
librdkafka state), serves ``/metrics`` from prometheus_client's multiprocess directory plus
``/healthz`` (every worker alive) and ``/readyz`` (some worker has partitions), forwards
SIGTERM/SIGINT to the workers and waits for them to drain. A worker that dies on its own is
started again, so the group keeps its size; the commit order makes that safe. A parent that
dies (SIGKILL) takes its workers with it (Linux: ``PR_SET_PDEATHSIG``), as one process would
go: none is left consuming, orphaned, beside the daemon started in its place.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from confluent_kafka import KafkaException

from stampflow.stream.config import DaemonConfig
from stampflow.stream.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = 1.0
JOIN_GRACE_S = 15.0
STARTUP_FAILURE_S = 20.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` dies (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: not Linux
        return
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)


def _worker_main(config: DaemonConfig, index: int, log_level: int, parent: int) -> None:
    _die_with_parent(parent)
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{index} %(name)s: %(message)s")
    from stampflow.stream.daemon import run_worker  # imported in the child, after the env is set

    try:
        result = run_worker(config, serve_http=False, worker_index=index)
    except (ValueError, OSError, KafkaException) as exc:  # missing topic, model dir, ...
        log.error("worker %d cannot start: %s", index, exc)
        sys.exit(2)
    totals = result.totals
    log.info("worker %d done: %d consumed, %d published", index, totals.consumed, totals.published)


def run_workers(config: DaemonConfig) -> int:
    """Run ``config.workers`` worker processes until SIGTERM/SIGINT; returns an exit code."""
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="stampflow-metrics-")
    # Imported after the env var is set, so this process's own metric values (none are
    # created here) and the collector agree on multiprocess mode.
    from prometheus_client import multiprocess

    from stampflow.stream.health import HealthServer
    from stampflow.stream.metrics import ready_value, serving_registry
    from stampflow.stream.threads import thread_environment, threads_per_worker

    # Inherited by the spawned workers, which read it before importing numpy or torch.
    threads = threads_per_worker(config.threads, config.workers)
    thread_environment(threads, explicit=config.threads is not None)
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_worker_main,
            args=(config, index, level, os.getpid()),
            name=f"stampflow-worker-{index}",
        )
        process.start()
        return process

    workers: list[BaseProcess] = []
    registry = serving_registry()
    server = None
    if config.metrics.port is not None:  # bound first: a port in use must not orphan workers
        server = HealthServer(
            registry,
            healthy=lambda: all(p.is_alive() for p in workers),
            ready=lambda: ready_value(registry) >= 1,
            host=config.metrics.host,
            port=config.metrics.port,
        )
    workers.extend(start(i) for i in range(config.workers))
    started_at = [time.monotonic()] * config.workers
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if server is not None:
        server.start()
        log.info("metrics and probes of %d workers on port %d", config.workers, server.port)
    try:
        while not stopping:
            for i, process in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                multiprocess.mark_process_dead(process.pid)
                if time.monotonic() - started_at[i] < STARTUP_FAILURE_S:
                    # Dying at start-up (missing topic, bad model dir) would only repeat.
                    log.error("worker %d failed at start-up; stopping the group", i)
                    on_signal(signal.SIGTERM, None)
                    break
                log.warning("worker %d exited with %s; starting it again", i, process.exitcode)
                time.sleep(RESTART_BACKOFF_S)
                workers[i] = start(i)
                started_at[i] = time.monotonic()
            time.sleep(0.2)
        deadline = time.monotonic() + config.shutdown.drain_timeout_s + JOIN_GRACE_S
        for process in workers:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %s did not drain in time; killing it", process.name)
                process.kill()
                process.join()
            multiprocess.mark_process_dead(process.pid)
    finally:
        if server is not None:
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if all(p.exitcode == 0 for p in workers) else 1
