"""`stampflow consume`: filters, the table, --save, and reading the output topic."""

from __future__ import annotations

import csv

import fastavro
import pytest
from confluent_kafka import Producer
from results_helpers import annotated_containers, annotated_file

from stampflow.stream.cli import main


def consume(argv: list[str], capsys) -> tuple[int, list[str], str]:
    code = main(["consume", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines()[1:], captured.err  # [1:]: past the header


def test_every_record_is_a_table_row_with_its_verdicts(output_file, capsys):
    code, rows, err = consume([str(output_file)], capsys)
    assert code == 0 and len(rows) == 4 and "4 matching record(s)" in err
    assert rows[0].startswith("ZTF24") and "2900000000000000000" in rows[0]
    assert rows[0].endswith("blend single 0.970")
    assert rows[1].endswith("blend blend 0.910; morphology spiral 0.800")
    assert rows[2].endswith("blend blend 0.550*")  # * marks ambiguous
    assert rows[3].endswith("(none)")


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        (["--classifier", "morphology"], [1]),
        (["--label", "blend"], [1, 2]),
        (["--label", "spiral"], [1]),
        (["--classifier", "blend", "--label", "spiral"], []),  # one annotation meets all
        (["--min-probability", "0.95"], [0]),
        (["--classifier", "blend", "--min-probability", "0.9", "--not-ambiguous"], [0, 1]),
        (["--ambiguous"], [2]),
    ],
)
def test_filters(output_file, capsys, filters, kept):
    code, rows, _err = consume([str(output_file), *filters], capsys)
    assert code == 0
    assert [int(row.split()[1]) - 2900000000000000000 for row in rows] == kept


def test_a_directory_is_read_and_max_stops_early(output_file, capsys):
    code, rows, _err = consume([str(output_file.parent), "--max", "2"], capsys)
    assert code == 0 and len(rows) == 2


def test_save_csv_and_slim_avro(output_file, tmp_path, capsys):
    table = tmp_path / "blends.csv"
    assert main(["consume", str(output_file), "--label", "blend", "--save", str(table)]) == 0
    rows = list(csv.DictReader(table.open()))
    assert [r["blend_label"] for r in rows] == ["blend", "blend"]
    assert rows[0]["morphology_label"] == "spiral" and rows[1]["morphology_label"] == ""
    assert float(rows[0]["blend_probability"]) == pytest.approx(0.91)
    assert {"objectId", "candid", "ra", "dec", "blend_ambiguous"} <= set(rows[0])

    saved = tmp_path / "all.avro"
    assert main(["consume", str(output_file), "--save", str(saved), "--quiet"]) == 0
    with saved.open("rb") as handle:
        reader = fastavro.reader(handle)
        records = list(reader)
    assert reader.writer_schema["name"] == "stampflow.SlimAlert"
    assert len(records) == 4 and "cutoutScience" not in records[0]
    assert records[1]["stampflow"]["annotations"][1]["classifier"] == "morphology"


def test_save_refuses_to_overwrite_and_unknown_formats(output_file, tmp_path, capsys):
    existing = tmp_path / "out.csv"
    existing.write_text("mine")
    assert main(["consume", str(output_file), "--save", str(existing)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and existing.read_text() == "mine"
    assert main(["consume", str(output_file), "--save", str(existing), "--force"]) == 0
    assert existing.read_text().startswith("objectId,")
    assert main(["consume", str(output_file), "--save", str(tmp_path / "x.xlsx")]) == 2
    assert "unknown format '.xlsx'" in capsys.readouterr().err


def test_parquet_without_pyarrow_names_the_package(output_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    assert main(["consume", str(output_file), "--save", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "needs the pyarrow package" in err and "stampflow[parquet]" in err


def test_parquet(output_file, tmp_path):
    parquet = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "x.parquet"
    assert main(["consume", str(output_file), "--save", str(path)]) == 0
    table = parquet.read_table(path).to_pylist()
    assert [row["blend_label"] for row in table] == ["single", "blend", "blend", None]


def test_bad_input_is_named(tmp_path, capsys):
    not_avro = tmp_path / "notes.avro"
    not_avro.write_text("hello")
    for argv, why in (
        ([str(tmp_path / "missing")], "no such file or directory"),
        ([str(not_avro)], "not an Avro container file"),
        ([], "nothing to read"),
        ([str(tmp_path), "--bootstrap", "x:1"], "not both"),
        ([str(tmp_path), "--min-probability", "2"], "--min-probability"),
    ):
        assert main(["consume", *argv]) == 2
        assert why in capsys.readouterr().err


@pytest.mark.integration
def test_the_output_topic_read_committed(kafka_bootstrap, make_topic, capsys):
    topic = make_topic("consume-out")
    values = annotated_containers()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in values[:3]:
        producer.produce(topic, value)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, values[3])  # aborted: a read_committed reader never sees it
    producer.flush(30)
    producer.abort_transaction(30)

    argv = ["--bootstrap", kafka_bootstrap, "--topic", topic, "--from-beginning"]
    code, rows, err = consume([*argv, "--timeout", "3"], capsys)
    assert code == 0 and len(rows) == 3 and "3 matching record(s)" in err
    code, rows, _err = consume([*argv, "--label", "blend", "--max", "1"], capsys)
    assert code == 0 and len(rows) == 1 and "blend blend 0.910" in rows[0]
    assert main(["consume", "--bootstrap", kafka_bootstrap, "--topic", "no-such-topic-x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_slim_output_files_read_alike(tmp_path, capsys):
    path = annotated_file(tmp_path / "annotated-slim-slim.avro", mode="slim")
    code, rows, _err = consume([str(path), "--classifier", "morphology"], capsys)
    assert code == 0 and len(rows) == 1 and "morphology spiral 0.800" in rows[0]
