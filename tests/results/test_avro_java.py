"""stampflow's output read by Apache Avro's own Java implementation (avro-tools).

The jar comes from Maven Central (``deploy/avro/avro.sh fetch``, ``make avro-jars``). With it:
the schema in an output file's header is the published one (by Avro's parsing canonical
form, computed by Java), ``tojson`` reads every record and the same annotations as fastavro,
an older published slim schema reads newer output as Avro's reader schema, and every
published ``.avsc`` parses in Java, whose random records fastavro then reads back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import fastavro
import pytest
from results_helpers import VERDICTS, annotated_file

from stampflow.schemas import published

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AVRO_SH = REPO / "deploy" / "avro" / "avro.sh"
FETCH = "run `make avro-jars` (or `deploy/avro/avro.sh fetch`) first"


@pytest.fixture(scope="module")
def avro_tools() -> Any:
    """``avro_tools(*args) -> stdout`` runs ``java -jar avro-tools-<version>.jar args``.

    Never skips: without the jar (or java) the test fails saying how to fetch it.
    """
    found = subprocess.run([AVRO_SH, "jar"], capture_output=True, text=True, check=False)
    jar = Path(found.stdout.strip())
    if found.returncode != 0 or not jar.is_file():
        pytest.fail(
            f"Apache Avro's avro-tools jar is not in deploy/avro/lib: {FETCH}", pytrace=False
        )
    java = shutil.which("java")
    if java is None:
        pytest.fail("java not found: avro-tools needs a Java runtime (11 or newer)", pytrace=False)

    def run(*args: str | Path) -> str:
        done = subprocess.run(
            [java, "-Xmx256m", "-jar", str(jar), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"avro-tools {args[0]} failed:\n{done.stderr[-3000:]}"
        return done.stdout

    return run


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Archive-mode output files (full and slim) of the alerts in ``VERDICTS``."""
    where = tmp_path_factory.mktemp("java-avro")
    return {
        "full": annotated_file(where / "annotated-full-x.avro"),
        "slim": annotated_file(where / "annotated-slim-slim.avro", mode="slim"),
    }


def latest(kind: str) -> str:
    return published.versions(kind)[-1]


def java_canonical(avro_tools: Any, schema: dict[str, Any] | Path, where: Path) -> str:
    """Avro Java's parsing canonical form of ``schema`` (a dict or an ``.avsc`` file)."""
    if isinstance(schema, dict):
        path = where / f"schema-{len(list(where.iterdir()))}.avsc"
        path.write_text(json.dumps(schema))
        schema = path
    return avro_tools("canonical", schema, "-").strip()


def fastavro_records(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return list(fastavro.reader(handle))


def json_lines(text: str) -> list[dict[str, Any]]:
    """avro-tools' tojson output: one JSON record a line. Bytes (the stamps) come out as
    ISO-8859-1 characters, U+0085 among them, so only ``\\n`` separates records."""
    return [json.loads(line) for line in text.split("\n") if line]


def unwrap(value: Any, branch: str = "stampflow.StampflowInfo") -> Any:
    """Avro's JSON encoding writes a non-null union value as ``{"<branch>": value}``."""
    if isinstance(value, dict) and list(value) == [branch]:
        return value[branch]
    return value


def verdicts(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each annotation as (classifier, modelVersion, label, probabilities, uncertainty,
    ambiguous), from a fastavro record or from one of avro-tools' JSON lines."""
    block = unwrap(record["stampflow"])
    return [
        (
            a["classifier"],
            a["modelVersion"],
            a["label"],
            {k: pytest.approx(v) for k, v in a["probabilities"].items()},
            pytest.approx(a["uncertainty"]),
            a["ambiguous"],
        )
        for a in block["annotations"]
    ]


def test_getschema_of_a_slim_output_file_is_the_published_slim_schema(
    avro_tools, outputs, tmp_path
):
    header = json.loads(avro_tools("getschema", outputs["slim"]))
    expected = published.canonical(published.published("slim", latest("slim")))
    assert header["name"] == "SlimAlert" and header["namespace"] == "stampflow"
    assert java_canonical(avro_tools, header, tmp_path) == expected


def test_getschema_of_a_full_output_file_carries_the_published_annotation_schema(
    avro_tools, outputs, tmp_path
):
    header = json.loads(avro_tools("getschema", outputs["full"]))
    assert f"{header['namespace']}.{header['name']}" == "ztf.alert"  # the survey's own schema
    last = header["fields"][-1]
    assert last["name"] == "stampflow" and "default" in last and last["default"] is None
    null, info = last["type"]
    assert null == "null"
    expected = published.canonical(published.published("annotation", latest("annotation")))
    assert java_canonical(avro_tools, info, tmp_path) == expected


@pytest.mark.parametrize("mode", ["full", "slim"])
def test_tojson_reads_every_record_and_the_annotations_fastavro_reads(avro_tools, outputs, mode):
    java = json_lines(avro_tools("tojson", outputs[mode]))
    python = fastavro_records(outputs[mode])
    assert len(java) == len(python) == len(VERDICTS)
    for from_java, from_python, expected in zip(java, python, VERDICTS, strict=True):
        assert from_java["objectId"] == from_python["objectId"]
        assert verdicts(from_java) == verdicts(from_python)
        seen = unwrap(from_java["stampflow"])["annotations"]
        assert [(a["classifier"], a["label"], a["ambiguous"]) for a in seen] == [
            (v.classifier, v.label, v.ambiguous) for v in expected
        ]
        assert [a["probabilities"][a["label"]] for a in seen] == [
            pytest.approx(v.probabilities[v.label]) for v in expected
        ]
        if mode == "full":  # the stamps too: Avro JSON writes bytes as ISO-8859-1 text
            stamp = unwrap(from_java["cutoutScience"], "ztf.alert.cutout")["stampData"]
            assert stamp.encode("latin-1") == from_python["cutoutScience"]["stampData"]


def test_older_slim_schemas_read_the_output_as_avro_java_reader_schemas(avro_tools, outputs):
    older = published.versions("slim")[:-1]
    assert older, "only one published slim version: nothing to read with"
    python = fastavro_records(outputs["slim"])
    for version in older:
        reader = json.dumps(published.published("slim", version))
        records = json_lines(avro_tools("tojson", "--reader-schema", reader, outputs["slim"]))
        fields = {field["name"] for field in published.published("slim", version)["fields"]}
        assert [set(r) for r in records] == [fields] * len(python), version
        assert [verdicts(r) for r in records] == [verdicts(r) for r in python], version


@pytest.mark.parametrize(
    ("kind", "version"),
    [(kind, version) for kind in published.KINDS for version in published.versions(kind)],
)
def test_published_avsc_parses_in_java_and_its_random_records_read_in_python(
    avro_tools, tmp_path, kind, version
):
    schema = published.published(kind, version)
    with as_file(files("stampflow.schemas").joinpath(f"{kind}-{version}.avsc")) as avsc:
        assert avro_tools("canonical", avsc, "-").strip() == published.canonical(schema)
        data = tmp_path / f"random-{kind}-{version}.avro"
        avro_tools("random", "--schema-file", avsc, "--count", "3", "--seed", "14", data)
    with data.open("rb") as handle:
        reader = fastavro.reader(handle)
        records = list(reader)
    assert len(records) == 3
    assert published.canonical(reader.writer_schema) == published.canonical(schema)
    parsed = fastavro.parse_schema(schema)
    assert all(fastavro.validation.validate(record, parsed) for record in records)
