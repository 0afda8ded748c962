"""The one exception type the codec raises for input it cannot use."""

from __future__ import annotations


class PacketError(ValueError):
    """A packet (or one of its stamps) that cannot be decoded or used.

    ``reason`` is a short, stable, snake_case code meant for metrics labels and dead-letter
    headers (for example ``no_container_header``, ``truncated``, ``unknown_schema``,
    ``bad_stamp``); ``field`` names the offending field when there is one (for example
    ``cutoutScience``); ``detail`` is the human sentence.
    """

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.detail = detail
        where = f" [{field}]" if field else ""
        super().__init__(f"{reason}{where}: {detail}")
