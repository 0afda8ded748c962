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


class Heartbeat:
    """Liveness and readiness of one in-process worker loop."""

    def __init__(self, stall_s: float = DEFAULT_STALL_S) -> None:
        self._stall_s = stall_s
        self._last = time.monotonic()
        self._ready = False

    def beat(self) -> None:
        self._last = time.monotonic()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    def healthy(self) -> bool:
        return time.monotonic() - self._last < self._stall_s

    def ready(self) -> bool:
        return self._ready


class HealthServer:
    """A small threaded HTTP server; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "0.0.0.0",
        port: int = 0,
    ) -> None:
        handler = _make_handler(registry, healthy, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
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
    registry: CollectorRegistry, healthy: Callable[[], bool], ready: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = healthy()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"loop stalled\n")
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
