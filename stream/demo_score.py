"""How many alerts of a synthetic night the classifiers got right, from its truth table.

``stampflow synth`` writes ``truth.jsonl`` beside its packets, each row holding the right
label per classifier under ``answers``; this reads it back with the annotated Avro files and
the dead-letter index that ``stampflow run`` wrote in archive mode. Any classifier with
answers in the table is scored, with no per-model code here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro


@dataclass
class Score:
    classifier: str
    scored: int = 0
    correct: int = 0
    kept: int = 0  # not flagged ambiguous
    kept_correct: int = 0

    def line(self) -> str:
        if not self.scored:
            return f"    {self.classifier:<12} no alert with a known answer"
        flagged = 1 - self.kept / self.scored
        kept = f"{self.kept_correct}/{self.kept} right" if self.kept else "none kept"
        return (
            f"    {self.classifier:<12} {self.correct}/{self.scored} right "
            f"({self.correct / self.scored:.1%}); not ambiguous: {kept}, {flagged:.1%} flagged"
        )


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle if line.strip())


def score_run(truth_path: Path, annotated_dir: Path, dead_dir: Path) -> list[str]:
    """Summary lines: per classifier right/scored, and dead letters against the broken packets."""
    truth = {row["candid"]: row for row in _jsonl(truth_path)}
    scores: dict[str, Score] = {}
    for path in sorted(annotated_dir.glob("*.avro")):
        with path.open("rb") as handle:
            for record in fastavro.reader(handle):
                answers = truth.get(record["candid"], {}).get("answers") or {}
                for note in (record.get("stampflow") or {}).get("annotations", []):
                    answer = answers.get(note["classifier"])
                    if answer is None:
                        continue
                    score = scores.setdefault(note["classifier"], Score(note["classifier"]))
                    right = note["label"] == answer
                    score.scored += 1
                    score.correct += right
                    if not note["ambiguous"]:
                        score.kept += 1
                        score.kept_correct += right

    broken = {row["file"]: row["expected_reason"] for row in truth.values() if row["broken"]}
    index = dead_dir / "index.jsonl"
    dead = {entry["key"]: entry["reason"] for entry in _jsonl(index)} if index.exists() else {}
    caught = sum(dead.get(name) == reason for name, reason in broken.items())
    return [
        "against the truth table",
        *(scores[name].line() for name in sorted(scores)),
        f"    broken packets caught with the expected reason: {caught}/{len(broken)}",
    ]
