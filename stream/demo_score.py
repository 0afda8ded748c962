"""How many alerts of a synthetic night the classifiers got right, from its truth table.

``stampflow synth`` writes ``truth.jsonl`` beside its packets, each row holding the right
label per classifier under ``answers``; this reads it back (one table per night: the demo's
ZTF and Rubin nights) with the annotated Avro files and the dead-letter index that
``stampflow run`` wrote in archive mode. Any classifier with answers in the table is
scored, with no per-model code here; one whose annotations have no answer (the Rubin blend
model on synth's Rubin night, whose rows carry none yet) is counted by label instead.
Records of either survey are matched to their row by the alert's id (``results.identity``:
ZTF's candid, Rubin's diaSourceId).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from stampflow.stream.results import identity


@dataclass
class Score:
    classifier: str
    scored: int = 0
    correct: int = 0
    kept: int = 0  # not flagged ambiguous
    kept_correct: int = 0
    unanswered: Counter[str] = field(default_factory=Counter)  # label -> alerts, no answer
    unanswered_ambiguous: int = 0
    surveys: set[str] = field(default_factory=set)  # of the alerts it annotated

    def line(self) -> str:
        lines = []
        if self.scored:
            flagged = 1 - self.kept / self.scored
            kept = f"{self.kept_correct}/{self.kept} right" if self.kept else "none kept"
            lines.append(
                f"    {self.classifier:<12} {self.correct}/{self.scored} right "
                f"({self.correct / self.scored:.1%}); not ambiguous: {kept}, {flagged:.1%} flagged"
            )
        if self.unanswered:
            total = sum(self.unanswered.values())
            labels = ", ".join(f"{label} {n}" for label, n in sorted(self.unanswered.items()))
            where = "/".join(sorted(self.surveys)).replace("ztf", "ZTF").replace("rubin", "Rubin")
            lines.append(
                f"    {self.classifier:<12} {total} {where} alert(s) annotated, no answer in the "
                f"truth table: {labels}; {self.unanswered_ambiguous} flagged ambiguous"
            )
        if not lines:
            return f"    {self.classifier:<12} no alert with a known answer"
        return "\n".join(lines)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle if line.strip())


def _row_id(row: dict[str, Any]) -> Any:
    """A truth row's alert id: ZTF's ``candid``, Rubin's ``diaSourceId``."""
    return row["candid"] if "candid" in row else row.get("diaSourceId")


def score_run(truth_path: Path | Sequence[Path], annotated_dir: Path, dead_dir: Path) -> list[str]:
    """Summary lines: per classifier right/scored (or, without answers, its labels), and dead
    letters against the broken packets. ``truth_path``: one truth table, or several (nights
    of different surveys through the same output and dead-letter directories)."""
    paths = [truth_path] if isinstance(truth_path, Path) else list(truth_path)
    rows = [row for path in paths for row in _jsonl(path)]
    truth = {_row_id(row): row for row in rows}
    scores: dict[str, Score] = {}
    for path in sorted(annotated_dir.glob("*.avro")):
        with path.open("rb") as handle:
            for record in fastavro.reader(handle):
                ids = identity(record)
                answers = truth.get(ids["candid"], {}).get("answers") or {}
                for note in (record.get("stampflow") or {}).get("annotations", []):
                    score = scores.setdefault(note["classifier"], Score(note["classifier"]))
                    score.surveys.add(str(ids["survey"]))
                    answer = answers.get(note["classifier"])
                    if answer is None:
                        score.unanswered[note["label"]] += 1
                        score.unanswered_ambiguous += bool(note["ambiguous"])
                        continue
                    right = note["label"] == answer
                    score.scored += 1
                    score.correct += right
                    if not note["ambiguous"]:
                        score.kept += 1
                        score.kept_correct += right

    broken = {row["file"]: row["expected_reason"] for row in rows if row["broken"]}
    index = dead_dir / "index.jsonl"
    dead = {entry["key"]: entry["reason"] for entry in _jsonl(index)} if index.exists() else {}
    caught = sum(dead.get(name) == reason for name, reason in broken.items())
    return [
        "against the truth table",
        *(scores[name].line() for name in sorted(scores)),
        f"    broken packets caught with the expected reason: {caught}/{len(broken)}",
    ]
