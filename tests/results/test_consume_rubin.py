"""`stampflow consume` and `to_dataframe` on Rubin output: archive-mode files (Rubin's schema
plus `stampflow`, from a real `stampflow run --schema-dir rubin`), wire-format messages
framed under the deterministic local ids, and the output topic on the real broker with the
real schema registry (Apicurio): survey-neutral ids on every row, filters and --save."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Producer
from results_helpers import VERDICTS, annotated_containers

from stampflow import api
from stampflow.schemas.encode import OutputEncoder
from stampflow.schemas.registry import LocalSchemas
from stampflow.schemas.wire import frame
from stampflow.stream.cli import main
from stampflow.stream.results import identity, read_files
from stampflow.training.synth import TRUTH_NAME, synthesise_rubin

JD_MINUS_MJD = 2400000.5


def consume(argv: list[str], capsys) -> tuple[int, list[str], str]:
    code = main(["consume", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines()[1:], captured.err  # [1:]: past the header


def _truth(night: Path) -> list[dict]:
    return [json.loads(line) for line in (night / TRUTH_NAME).read_text().splitlines()]


@pytest.fixture(scope="module")
def archive_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A Rubin night (9.0, some broken) and a ZTF night through one archive-mode run with
    the offline registry; the output directory and the Rubin truth rows of the good alerts."""
    root = tmp_path_factory.mktemp("rubin-consume")
    rubin, ztf, both = root / "rubin", root / "ztf", root / "both"
    synth = ["--seed=3", "--quiet"]
    assert main(["synth", str(rubin), "--n=10", *synth, "--survey=rubin", "--rubin-version=9.0",
                 "--broken-fraction=0.2"]) == 0  # fmt: skip
    assert main(["synth", str(ztf), "--n=4", *synth, "--broken-fraction=0"]) == 0
    both.mkdir()
    for night in (rubin, ztf):
        for packet in night.iterdir():
            if packet.name != TRUTH_NAME:
                shutil.copy(packet, both / packet.name)
    out = root / "out"
    assert main([
        "run", f"--archive={both}", f"--output-dir={out}", f"--dead-letter-dir={root / 'dead'}",
        "--classifiers=", "--schema-dir=rubin", "--metrics-port=0",
    ]) == 0  # fmt: skip
    return out, [row for row in _truth(rubin) if row["broken"] is None]


def test_archive_output_rows_carry_rubin_ids(archive_output, capsys):
    out, rubin = archive_output
    code, rows, err = consume([str(out)], capsys)
    assert code == 0, err
    rubin_rows = [row for row in rows if " rubin " in row]
    assert len(rubin_rows) == len(rubin) and len(rows) == len(rubin) + 4
    by_candid = {int(row.split()[1]): row.split() for row in rubin_rows}
    assert set(by_candid) == {r["diaSourceId"] for r in rubin}
    for truth in rubin:
        cells = by_candid[truth["diaSourceId"]]
        assert cells[0] == str(truth["diaObjectId"])
        assert cells[4:7] == ["rubin", truth["band"], "(none)"]  # no shipped model takes Rubin
    ztf_rows = [row.split() for row in rows if " ztf " in row]
    assert len(ztf_rows) == 4 and all(cells[0].startswith("ZTF") for cells in ztf_rows)


def test_archive_output_saved_and_as_a_dataframe(archive_output, tmp_path, capsys):
    out, rubin = archive_output
    expected = {r["diaSourceId"]: r for r in rubin}
    slim_path, table_path = tmp_path / "all.avro", tmp_path / "all.csv"
    assert main(["consume", str(out), "--save", str(slim_path), "--quiet"]) == 0
    assert main(["consume", str(out), "--save", str(table_path), "--quiet"]) == 0
    with slim_path.open("rb") as handle:
        slim = [r for r in fastavro.reader(handle) if r["survey"] == "rubin"]
    assert {r["candid"] for r in slim} == set(expected)
    for record in slim:
        truth = expected[record["candid"]]
        assert (record["objectId"], record["band"], record["fid"]) == (
            str(truth["diaObjectId"]),
            truth["band"],
            0,
        )
    rows = [r for r in csv.DictReader(table_path.open()) if r["survey"] == "rubin"]
    assert {int(r["candid"]) for r in rows} == set(expected)
    assert all(r["objectId"] and r["band"] and r["ra"] and r["jd"] for r in rows)

    pytest.importorskip("pandas")
    frame = api.to_dataframe(read_files([out]))
    rubin_frame = frame[frame["survey"] == "rubin"]
    assert set(rubin_frame["candid"]) == set(expected)
    assert rubin_frame[["objectId", "ra", "dec", "jd", "band"]].notna().all().all()
    assert set(frame["survey"]) == {"rubin", "ztf"}


def test_identity_agrees_with_the_survey_view():
    """Full output records of every layout (7.x alertId, 8.0+ diaSourceId) give the ids of
    ``alert.view``, and the same as the slim record of the same alert."""
    encoder = OutputEncoder()
    for version in ("7.1", "9.0", "11.0"):
        (_name, message, _row), *_ = synthesise_rubin(1, 8, version=version, progress=False)
        (alert,) = api.decode(message, registry="rubin")
        view = alert.view
        full = encoder.record(alert, (), mode="full", processing_time_ms=1.0)
        slim = encoder.record(alert, (), mode="slim", processing_time_ms=1.0)
        ids = identity(full)
        assert ids == {k: slim[k] for k in ids}
        assert (ids["objectId"], ids["candid"], ids["band"]) == (
            view.object_id,
            view.alert_id,
            view.band,
        )
        assert (ids["ra"], ids["dec"], ids["jd"]) == (view.ra, view.dec, view.mjd + JD_MINUS_MJD)
    assert identity({"candidate": {"candid": 5, "fid": 2}, "objectId": "ZTF1"})["band"] == "r"


def _rubin_alerts(n: int = len(VERDICTS)) -> list:
    messages = synthesise_rubin(n, 9, broken_fraction=0.0, version="9.0", progress=False)
    return [api.decode(message, registry="rubin")[0] for _name, message, _row in messages]


def _wire_messages(encoder: OutputEncoder) -> list[bytes]:
    """Annotated Rubin output as the Kafka sink publishes it: the wire format under the id
    the encoder's registry gave the annotated schema."""
    return [
        encoder.message(encoder.encode_record(alert, notes, processing_time_ms=1.0))
        for alert, notes in zip(_rubin_alerts(), VERDICTS, strict=True)
    ]


def test_wire_format_files_with_the_local_rubin_ids(tmp_path, capsys):
    """A ``local: rubin`` daemon frames under deterministic ids it writes nowhere;
    ``--schema-dir rubin`` knows them. Filters and the slim save work on Rubin alerts."""
    messages = _wire_messages(OutputEncoder(registry=LocalSchemas.rubin()))
    assert all(m[:1] == b"\x00" for m in messages)
    for index, message in enumerate(messages):
        (tmp_path / f"m{index}.avro").write_bytes(message)

    assert main(["consume", str(tmp_path)]) == 2  # without a registry
    assert "--schema-dir DIR|rubin" in capsys.readouterr().err
    code, rows, _err = consume([str(tmp_path), "--schema-dir", "rubin"], capsys)
    assert code == 0 and len(rows) == 4 and all(" rubin " in row for row in rows)
    assert rows[1].endswith("blend blend 0.910; morphology spiral 0.800")
    code, rows, _err = consume([str(tmp_path), "--schema-dir=rubin", "--label=blend"], capsys)
    assert code == 0 and len(rows) == 2

    saved = tmp_path / "kept" / "blends.avro"
    argv = ["consume", str(tmp_path), "--schema-dir=rubin", "--ambiguous", "--save", str(saved)]
    assert main(argv) == 0
    with saved.open("rb") as handle:
        (record,) = fastavro.reader(handle)
    assert record["survey"] == "rubin" and record["stampflow"]["annotations"][0]["ambiguous"]


@pytest.fixture(scope="module")
def schema_registry_url(tmp_path_factory):
    from registry_server import serve_registry

    yield from serve_registry(tmp_path_factory)


@pytest.mark.integration
def test_the_rubin_output_topic_with_the_real_registry(
    kafka_bootstrap, make_topic, schema_registry_url, capsys
):
    """ZTF containers and Rubin wire-format messages in one output topic, the annotated
    Rubin schema registered in the real registry as the daemon's sink does; an id the
    registry lacks is skipped with a warning, the rest read."""
    from stampflow.schemas.registry import RemoteRegistry

    topic = make_topic("consume-rubin")
    encoder = OutputEncoder(registry=RemoteRegistry(schema_registry_url), subject_prefix=topic)
    rubin = _wire_messages(encoder)
    assert rubin[0][:1] == b"\x00"
    unknown_id = int.from_bytes(rubin[0][1:5], "big") + 50_000
    unknown = frame(unknown_id, rubin[0][5:])
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in [*annotated_containers(), *rubin]:
        producer.produce(topic, value)
    assert producer.flush(30) == 0

    argv = ["--bootstrap", kafka_bootstrap, "--topic", topic, "--from-beginning", "--timeout=3"]
    code, rows, err = consume(argv, capsys)  # no registry: the Rubin message is named
    assert code == 2 and "--schema-registry URL" in err and "wire-format" in err
    code, rows, err = consume([*argv, "--schema-registry", schema_registry_url], capsys)
    assert code == 0, err
    assert [row.split()[4] for row in rows] == ["ztf"] * 4 + ["rubin"] * 4
    alerts = _rubin_alerts()
    for row, alert in zip(rows[4:], alerts, strict=True):
        cells = row.split()
        assert cells[:2] == [alert.view.object_id, str(alert.view.alert_id)]
        assert cells[5] == alert.view.band
    assert rows[5].endswith("blend blend 0.910; morphology spiral 0.800")
    assert rows[1].endswith("blend blend 0.910; morphology spiral 0.800")  # ZTF's

    code, rows, err = consume(
        [*argv, "--schema-registry", schema_registry_url, "--label", "blend"], capsys
    )
    assert code == 0 and len(rows) == 4  # two ZTF, two Rubin

    # The Python API reads the same topic with the same registry.
    records = list(api.consume(kafka_bootstrap, topic, timeout=3, registry=schema_registry_url))
    assert len(records) == 8
    rubin_records = [record for record in records if "diaSource" in record]
    assert [r["diaSource"]["diaSourceId"] for r in rubin_records] == [
        a.record["diaSource"]["diaSourceId"] for a in alerts
    ]
    assert [bool(r["stampflow"]["annotations"]) for r in rubin_records] == [
        bool(notes) for notes in VERDICTS
    ]

    producer.produce(topic, unknown)
    assert producer.flush(30) == 0
    code, rows, err = consume([*argv, "--schema-registry", schema_registry_url], capsys)
    assert code == 1 and len(rows) == 8
    assert f"schema id {unknown_id}" in err and "1 unreadable message(s) skipped" in err
