"""The Python API: decode, classify with the shipped models, to_dataframe; and the README's
example, run as written against a synthetic night."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

import stampflow
from stampflow import api
from stampflow.classifiers.registry import RegistryError
from stampflow.schemas.errors import PacketError
from stampflow.training.synth import synthesise, write_archive

README = Path(__file__).resolve().parents[1] / "README.md"
MORPHOLOGY_LABELS = {"spiral", "shell", "bipolar", "irregular", "no_gas"}


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    rows = synthesise(3, 21, broken_fraction=0.0, multiband_fraction=1.0, progress=False)
    return [packet for _name, packet, _row in rows]


def test_decode_gives_alerts_or_a_reason(packets):
    (alert,) = stampflow.decode(packets[0])
    assert alert.object_id.startswith("ZTF24") and alert.stamp("science").shape == (63, 63)
    with pytest.raises(PacketError) as caught:
        api.decode(b"not a packet")
    assert caught.value.reason == "no_container_header"


def test_classify_returns_the_records_stampflow_publishes(packets):
    records = stampflow.classify(packets, classifiers=("morphology",))
    assert [r["objectId"] for r in records] == [api.decode(p)[0].object_id for p in packets]
    for record in records:
        (note,) = record["stampflow"]["annotations"]
        assert note["classifier"] == "morphology" and note["label"] in MORPHOLOGY_LABELS
        assert math.isclose(sum(note["probabilities"].values()), 1.0, abs_tol=1e-4)
        assert "cutoutScience" in record  # full mode: the whole alert
    (slim,) = api.classify(packets[:1], classifiers=(), mode="slim")
    assert set(slim) == {
        "objectId",
        "candid",
        "ra",
        "dec",
        "jd",
        "fid",
        "survey",
        "band",
        "stampflow",
    }
    assert slim["stampflow"]["annotations"] == []


def test_bad_input_is_named(packets):
    with pytest.raises(RegistryError, match="unknown classifier 'foo'; known: .*morphology"):
        api.classify(packets, classifiers=("foo",))
    with pytest.raises(TypeError, match=r"sequence of names, e.g. \('morphology',\)"):
        api.classify(packets, classifiers="morphology")
    mixed = [packets[0], b"garbage", packets[1]]
    with pytest.raises(api.ClassifyError, match="packet 1: decode no_container_header"):
        api.classify(mixed, classifiers=())
    assert len(api.classify(mixed, classifiers=(), skip_bad=True)) == 2


def test_to_dataframe(packets):
    pytest.importorskip("pandas")
    frame = api.to_dataframe(api.classify(packets, classifiers=("morphology",)))
    assert len(frame) == 3
    assert {"objectId", "candid", "ra", "dec", "morphology_label", "morphology_probability"} <= set(
        frame.columns
    )
    assert frame["morphology_probability"].between(0, 1).all()


def test_to_dataframe_without_pandas_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"needs the pandas package.*stampflow\[dataframe\]"):
        api.to_dataframe([])


def _readme_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    rows = synthesise(6, 4, broken_fraction=0.2, multiband_fraction=0.5, progress=False)
    write_archive(tmp_path / "night", rows, tar=False)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), scope)
    good = [row for _name, _packet, row in rows if not row["broken"]]
    frame = scope["frame"]
    assert len(frame) == len(good) and set(frame["objectId"]) == {r["objectId"] for r in good}
    assert set(frame["blend_label"]) <= {"single", "blend"}
    assert frame["morphology_label"].notna().sum() == sum(1 for r in good if r["multiband"])
    assert (tmp_path / "night.csv").is_file()
    assert good[0]["objectId"] in capsys.readouterr().out


def test_rubin_messages_decode_and_classify_with_a_registry(packets, tmp_path):
    from stampflow.schemas.registry import LocalSchemas
    from stampflow.training.synth import synthesise_rubin

    (_name, message, row), *_ = synthesise_rubin(1, 3, broken_fraction=0.0, progress=False)
    with pytest.raises(PacketError) as caught:
        api.decode(message)  # a wire-format message needs a registry
    assert caught.value.reason == "no_container_header"
    (alert,) = api.decode(message, registry="rubin")
    assert alert.view.survey == "rubin" and alert.view.alert_id == row["diaSourceId"]
    LocalSchemas.rubin().write_directory(tmp_path)
    assert api.decode(message, registry=tmp_path)[0].view.object_id == str(row["diaObjectId"])
    # ZTF and Rubin in one call: the ZTF models annotate the ZTF alert only
    records = api.classify([packets[0], message], ("blend",), registry="rubin")
    assert [a["classifier"] for a in records[0]["stampflow"]["annotations"]] == ["blend"]
    assert records[1]["stampflow"]["annotations"] == [] and "diaSource" in records[1]
    slim = api.classify([message], (), mode="slim", registry="rubin")
    assert (slim[0]["survey"], slim[0]["candid"]) == ("rubin", row["diaSourceId"])
