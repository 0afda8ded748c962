"""librdkafka's error callbacks and log lines, one warning per kind per window, with a count.

A broker outage makes every client report each failed reconnect (every broker connection,
every backoff): hundreds of identical lines in a minute that bury the one that matters.
``KafkaLog`` logs the first report of a kind (an error code, a log facility) at once, then at
most one line per ``window_s`` for that kind, saying how many more came meanwhile; ``flush``
(at close) says what is still untold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError

WINDOW_S = 30.0
# librdkafka's syslog levels: 0-3 are errors, 4 warnings, 5-6 notices and info, 7 debug.
_LEVELS = {0: logging.ERROR, 1: logging.ERROR, 2: logging.ERROR, 3: logging.ERROR}


@dataclass
class _Kind:
    last_logged: float
    suppressed: int = 0
    latest: str = ""


class KafkaLog:
    """The ``error_cb`` and ``logger`` of one librdkafka client (``client``: its role)."""

    def __init__(
        self,
        client: str,
        logger: logging.Logger,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._logger = logger
        self._window_s = window_s
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def error_cb(self, error: KafkaError) -> None:
        level = logging.ERROR if error.fatal() else logging.WARNING
        self._report(f"error {error.name()}", level, error.str())

    def log(self, level: int, message: str, *args: object) -> None:
        """librdkafka's log lines (the client's ``logger`` property calls this)."""
        text = message % args if args else message
        facility = text.split(" ", 1)[0]
        python_level = _LEVELS.get(level, logging.WARNING if level == 4 else logging.DEBUG)
        if python_level == logging.DEBUG:
            self._logger.debug("kafka %s: %s", self._client, text)
            return
        self._report(f"log {facility}", python_level, text)

    def flush(self) -> None:
        """Log, once, every kind with reports not yet told."""
        for kind in self._kinds.values():
            if kind.suppressed:
                self._tell(logging.WARNING, kind)
        self._kinds.clear()

    def _report(self, key: str, level: int, text: str) -> None:
        now = self._clock()
        kind = self._kinds.get(key)
        if kind is None:
            self._kinds[key] = _Kind(last_logged=now)
            self._logger.log(level, "kafka %s: %s", self._client, text)
            return
        kind.suppressed += 1
        kind.latest = text
        if now - kind.last_logged >= self._window_s:
            self._tell(level, kind)
            kind.last_logged = now

    def _tell(self, level: int, kind: _Kind) -> None:
        self._logger.log(
            level,
            "kafka %s: %s (%d like it in the last %.0f s)",
            self._client,
            kind.latest,
            kind.suppressed,
            self._clock() - kind.last_logged,
        )
        kind.suppressed = 0

    def properties(self) -> dict[str, object]:
        """The client properties that route its reports here."""
        return {"error_cb": self.error_cb, "logger": self}
