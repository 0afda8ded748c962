"""A tiny Markdown report writer: sections, tables and PNG figures in one folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Report:
    """Collects Markdown parts; figures are saved beside ``report.md`` by the caller."""

    def __init__(self, directory: Path, title: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.parts: list[str] = [f"# {title}\n"]

    def figure_path(self, name: str) -> Path:
        return self.directory / name

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"\n{'#' * level} {text}\n")

    def text(self, markdown: str) -> None:
        self.parts.append(markdown.strip() + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        def cell(value: Any) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
        self.parts.append("\n".join(lines) + "\n")

    def image(self, filename: str, caption: str) -> None:
        self.parts.append(f"\n![{caption}]({filename})\n\n*{caption}*\n")

    def write(self) -> Path:
        path = self.directory / "report.md"
        path.write_text("\n".join(self.parts))
        return path
