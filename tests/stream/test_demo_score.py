"""The demo's scoring against the synthetic night's truth table."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro

from stampflow.stream.cli import main
from stampflow.stream.demo_score import score_run


def _write_annotated(path: Path, notes_by_candid: dict[int, list[dict]]) -> None:
    annotation = {
        "type": "record",
        "name": "Annotation",
        "fields": [
            {"name": "classifier", "type": "string"},
            {"name": "label", "type": "string"},
            {"name": "ambiguous", "type": "boolean"},
        ],
    }
    schema = {
        "type": "record",
        "name": "Slim",
        "fields": [
            {"name": "candid", "type": "long"},
            {
                "name": "stampflow",
                "type": {
                    "type": "record",
                    "name": "Info",
                    "fields": [
                        {"name": "annotations", "type": {"type": "array", "items": annotation}}
                    ],
                },
            },
        ],
    }
    records = [{"candid": c, "stampflow": {"annotations": n}} for c, n in notes_by_candid.items()]
    with path.open("wb") as handle:
        fastavro.writer(handle, schema, records)


def test_scores_count_right_answers_and_caught_broken_packets(tmp_path: Path) -> None:
    truth = [
        {"file": "1.avro", "candid": 1, "answers": {"blend": "blend", "morphology": "shell"},
         "broken": None, "expected_reason": None},
        {"file": "2.avro", "candid": 2, "answers": {"blend": "single"},
         "broken": None, "expected_reason": None},
        {"file": "3.avro", "candid": 3, "answers": {"blend": "single"},
         "broken": "truncated", "expected_reason": "truncated"},
        {"file": "4.avro", "candid": 4, "answers": {"blend": "single"},
         "broken": "empty", "expected_reason": "empty"},
    ]  # fmt: skip
    (tmp_path / "truth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in truth))
    (tmp_path / "out").mkdir()
    _write_annotated(
        tmp_path / "out" / "part.avro",
        {
            1: [
                {"classifier": "blend", "label": "blend", "ambiguous": False},
                {"classifier": "morphology", "label": "spiral", "ambiguous": True},
            ],
            2: [{"classifier": "blend", "label": "blend", "ambiguous": True}],
        },
    )
    (tmp_path / "dead").mkdir()
    (tmp_path / "dead" / "index.jsonl").write_text(
        json.dumps({"key": "3.avro", "reason": "truncated"}) + "\n"
        + json.dumps({"key": "4.avro", "reason": "no_container_header"}) + "\n"
    )  # fmt: skip

    lines = score_run(tmp_path / "truth.jsonl", tmp_path / "out", tmp_path / "dead")

    assert "blend        1/2 right (50.0%); not ambiguous: 1/1 right, 50.0% flagged" in lines[1]
    assert "morphology   0/1 right (0.0%); not ambiguous: none kept, 100.0% flagged" in lines[2]
    assert lines[3].endswith("expected reason: 1/2")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().split("\n") if x]


def test_demo_reports_how_many_it_got_right(tmp_path: Path, capsys) -> None:
    assert main(["demo", f"--out={tmp_path}", "--n=60", "--seed=3", "--rubin-n=16"]) == 0
    out = capsys.readouterr().out
    ztf = _rows(tmp_path / "packets" / "truth.jsonl")
    rubin = _rows(tmp_path / "packets" / "rubin" / "truth.jsonl")
    assert {row["survey"] for row in rubin} == {"rubin"} and len(rubin) == 16
    broken = sum(1 for row in [*ztf, *rubin] if row["broken"])
    assert any(row["broken"] for row in rubin)  # the Rubin night's dead letters count too
    assert f"broken packets caught with the expected reason: {broken}/{broken}" in out
    summary = out.split("against the truth table")[1]
    assert "blend " in summary
    good = sum(1 for row in rubin if row["broken"] is None)
    assert f"blend_rubin  {good} Rubin alert(s) annotated" in summary

    # every good Rubin alert came out annotated by the Rubin blend model (its surveys), and
    # by nothing else; the ZTF ones by the ZTF models only
    records = []
    for path in sorted((tmp_path / "annotated").glob("*.avro")):
        with path.open("rb") as handle:
            records.extend(fastavro.reader(handle))
    rubin_out = [r for r in records if "diaSource" in r]
    assert sorted(r["diaSource"]["diaSourceId"] for r in rubin_out) == sorted(
        row["diaSourceId"] for row in rubin if row["broken"] is None
    )
    for record in rubin_out:
        (note,) = record["stampflow"]["annotations"]
        assert note["classifier"] == "blend_rubin" and note["label"] in ("single", "blend")
    ztf_notes = {
        a["classifier"] for r in records if "candidate" in r for a in r["stampflow"]["annotations"]
    }
    assert "blend" in ztf_notes and "blend_rubin" not in ztf_notes
