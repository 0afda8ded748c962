"""Every lsst-alert-packet sample alert (schema 7.0 to 11.x) through the daemon with the Rubin
blend model: the samples carry no cutouts, so each gets the three a Rubin pipeline writes
(a point source in the template), is framed under its Rubin schema id, classified by
``blend_rubin`` in archive mode and read back from the output Avro files by fastavro."""

from __future__ import annotations

import os
from pathlib import Path

import fastavro
import numpy as np

from stampflow.schemas.codec import decode_packet
from stampflow.schemas.registry import LocalSchemas, rubin_schema_id, rubin_versions
from stampflow.schemas.rubin_packets import rubin_cutout
from stampflow.schemas.wire import encode_wire
from stampflow.stream.cli import main
from stampflow.stream.threads import THREAD_VARIABLES
from stampflow.training.synth import rubin_images


def _with_cutouts(record: dict, rng: np.random.Generator) -> dict:
    ra, dec = record["diaSource"]["ra"], record["diaSource"]["dec"]
    science, template, difference, _ = rubin_images(rng, flux=2e4, host=3e5)
    return {
        **record,
        "cutoutScience": rubin_cutout(science, ra, dec, variance=60.0**2),
        "cutoutTemplate": rubin_cutout(template, ra, dec, variance=15.0**2),
        "cutoutDifference": rubin_cutout(difference, ra, dec, variance=60.0**2),
    }


def test_every_sample_version_comes_out_annotated_by_the_rubin_model(
    tmp_path: Path, monkeypatch
) -> None:
    for name in THREAD_VARIABLES:  # the in-process run sets them; undone after the test
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    registry = LocalSchemas.rubin()
    rng = np.random.default_rng(11)
    night = tmp_path / "night"
    night.mkdir()
    sent = {}
    for version, schema_file in rubin_versions().items():
        sample = (schema_file.parent / "sample_data" / "fakeAlert.avro").read_bytes()
        record = decode_packet(sample).alerts[0].record
        schema_id = rubin_schema_id(version)
        message = encode_wire(_with_cutouts(record, rng), registry[schema_id], schema_id)
        (night / f"{version}.wire").write_bytes(message)
        sent[version] = record["diaSource"]["diaSourceId"]
    assert {"7.0", "8.0", "9.0", "10.0", "11.0"} <= set(sent)

    code = main([
        "run", f"--archive={night}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=blend_rubin",
        "--schema-dir=rubin", "--metrics-port=0",
    ])  # fmt: skip
    assert code == 0
    records, namespaces = [], set()
    for path in sorted((tmp_path / "out").glob("*.avro")):
        with path.open("rb") as handle:
            reader = fastavro.reader(handle)
            namespaces.add(reader.writer_schema["name"].rsplit(".", 1)[0])
            records.extend(reader)
    assert len(records) == len(sent)  # none went to dead letters
    # Each annotated alert keeps its own Rubin schema version (plus the stampflow field).
    assert namespaces == {"lsst.v" + v.replace(".", "_") for v in sent}
    for record in records:
        (annotation,) = record["stampflow"]["annotations"]
        assert annotation["classifier"] == "blend_rubin"
        assert annotation["label"] in ("single", "blend")
