"""One HTTP port for operators: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` (probes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

# The loop beats at least once per poll slice (well under a second); a minute of silence
# means it is stuck, not busy.
DEFAULT_STALL_S = 60.0
# A loop can beat and still go nowhere: a batch rewound for ever, or acknowledgements that
# never come. Past these, the worker is stuck and a restart (or an operator) is needed.
DEFAULT_STUCK_AFTER_S = 600.0
DEFAULT_MAX_REWINDS = 10


class Heartbeat:
    """Liveness and readiness of one in-process worker loop.

    Alive means: beating (not blocked), and making progress: fewer than ``max_rewinds``
    rewinds in a row, and a commit within ``stuck_after_s`` of taking a batch in hand.
    """

    def __init__(
        self,
        stall_s: float = DEFAULT_STALL_S,
        *,
        stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
        max_rewinds: int = DEFAULT_MAX_REWINDS,
    ) -> None:
        self._stall_s = stall_s
        self._stuck_after_s = stuck_after_s
        self._max_rewinds = max_rewinds
        self._last = time.monotonic()
        self._ready = False
        self._reachable: Callable[[], bool] = lambda: True
        self._waiting_since: float | None = None  # first uncommitted batch taken in hand
        self._rewinds = 0  # in a row, without a commit

    def beat(self) -> None:
        self._last = time.monotonic()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    def watch_reachability(self, reachable: Callable[[], bool]) -> None:
        """Readiness also asks ``reachable`` (the input cluster) at every probe: the loop may
        be waiting for acknowledgements and not look for a while."""
        self._reachable = reachable

    def batch_in_hand(self) -> None:
        """A batch was taken: the no-commit clock runs until a commit."""
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()

    def batch_done(self, *, committed: bool) -> None:
        if committed:
            self._waiting_since = None
            self._rewinds = 0
        else:
            self._rewinds += 1

    def stuck(self) -> str | None:
        """Why the loop makes no progress, or None while it does."""
        if self._rewinds >= self._max_rewinds:
            return f"stuck: {self._rewinds} rewinds in a row without a commit"
        since = self._waiting_since
        if since is not None and time.monotonic() - since > self._stuck_after_s:
            return f"stuck: no commit for {time.monotonic() - since:.0f} s with input in hand"
        return None

    def problem(self) -> str | None:
        """Why the worker is not alive (``/healthz`` says it), or None."""
        silent = time.monotonic() - self._last
        if silent >= self._stall_s:
            return f"loop stalled: no heartbeat for {silent:.0f} s"
        return self.stuck()

    def healthy(self) -> bool:
        return self.problem() is None

    def ready(self) -> bool:
        return self._ready and self._reachable()


class BindError(OSError):
    """The metrics port cannot be listened on; the message names host, port and config keys."""


class HealthServer:
    """A small threaded HTTP server; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        problem: Callable[[], str | None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """``problem`` (optional) explains an unhealthy answer in the reply's body."""
        handler = _make_handler(registry, healthy, ready, problem)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise BindError(
                f"metrics server cannot listen on {host}:{port} (metrics.host, metrics.port): "
                f"{exc.strerror or exc}"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="stampflow-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(
    registry: CollectorRegistry,
    healthy: Callable[[], bool],
    ready: Callable[[], bool],
    problem: Callable[[], str | None] | None,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = healthy()
                why = (problem() if problem is not None else None) or "loop stalled"
                self._reply(200 if ok else 503, b"ok\n" if ok else f"{why}\n".encode())
            elif path == "/readyz":
                ok = ready()
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

        def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # Prometheus scrapes every few seconds; access logs would drown the daemon's own.
            return

    return Handler
