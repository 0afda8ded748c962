"""Archive mode with Rubin: a synthetic Rubin night and a ZTF night through one daemon with
the offline registry, annotated Avro files out (Rubin's schema plus stampflow), the broken
Rubin messages in the dead letters with their reasons; the config keys and flags."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import fastavro
import pytest

from stampflow.stream.cli import main
from stampflow.stream.config import ConfigError, load_config
from stampflow.training.synth import TRUTH_NAME


def _truth(night: Path) -> list[dict]:
    return [json.loads(line) for line in (night / TRUTH_NAME).read_text().splitlines()]


def _index(dead: Path) -> list[dict]:
    return [json.loads(line) for line in (dead / "index.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory holding a ZTF night and a Rubin night (synth), without truth tables."""
    root = tmp_path_factory.mktemp("nights")
    rubin, ztf, both = root / "rubin", root / "ztf", root / "both"
    argv = ["synth", "--n=24", "--seed=3", "--broken-fraction=0.3", "--quiet"]
    assert main([*argv[:1], str(rubin), *argv[1:], "--survey=rubin", "--rubin-version=9.0"]) == 0
    assert main([*argv[:1], str(ztf), "--n=12", "--seed=4", "--broken-fraction=0", "--quiet"]) == 0
    both.mkdir()
    for night in (rubin, ztf):
        for packet in night.iterdir():
            if packet.name != TRUTH_NAME:
                shutil.copy(packet, both / packet.name)
    return root


def test_a_rubin_and_a_ztf_night_through_one_daemon(nights: Path, tmp_path: Path) -> None:
    code = main([
        "run", f"--archive={nights / 'both'}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=blend", "--schema-dir=rubin",
        "--metrics-port=0", "--max-batch=16",
    ])  # fmt: skip
    assert code == 0
    rubin, ztf = _truth(nights / "rubin"), _truth(nights / "ztf")
    records = []
    for path in sorted((tmp_path / "out").glob("*.avro")):
        with path.open("rb") as handle:
            records.extend(fastavro.reader(handle))  # a plain Avro reader opens every file
    rubin_out = [r for r in records if "diaSource" in r]
    ztf_out = [r for r in records if "candidate" in r]
    assert len(rubin_out) + len(ztf_out) == len(records)
    assert sorted(r["diaSourceId"] for r in rubin_out) == sorted(
        row["diaSourceId"] for row in rubin if row["broken"] is None
    )
    assert sorted(r["candid"] for r in ztf_out) == sorted(row["candid"] for row in ztf)
    # the ZTF blend model annotates ZTF alerts only; no shipped model takes Rubin's yet
    assert all(r["stampflow"]["annotations"] == [] for r in rubin_out)
    assert all(
        [a["classifier"] for a in r["stampflow"]["annotations"]] == ["blend"] for r in ztf_out
    )
    assert all(r["cutoutTemplate"][:6] == b"SIMPLE" for r in rubin_out)  # FITS kept as sent

    index = [
        json.loads(line) for line in (tmp_path / "dead" / "index.jsonl").read_text().splitlines()
    ]
    assert Counter(entry["reason"] for entry in index) == Counter(
        row["expected_reason"] for row in rubin if row["broken"]
    )
    assert "unknown_schema_id" in {entry["reason"] for entry in index}


def test_without_a_registry_rubin_messages_are_dead_letters(nights: Path, tmp_path: Path) -> None:
    code = main([
        "run", f"--archive={nights / 'rubin'}", f"--output-dir={tmp_path / 'out'}",
        f"--dead-letter-dir={tmp_path / 'dead'}", "--classifiers=", "--metrics-port=0",
    ])  # fmt: skip
    assert code == 0
    index = [
        json.loads(line) for line in (tmp_path / "dead" / "index.jsonl").read_text().splitlines()
    ]
    assert len(index) == 24
    assert {entry["reason"] for entry in index} <= {"no_container_header", "empty"}


def test_schema_registry_config_keys_env_and_flags(tmp_path: Path, monkeypatch) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(
        "input:\n  archive: x\n  schema_registry:\n    url: https://sr.example:8081\n"
        "    config: {timeout: '10', basic.auth.user.info: 'me:012345'}\n"
    )
    env = {"STAMPFLOW_INPUT__SCHEMA_REGISTRY__CONFIG__BASIC_AUTH_USER_INFO": "me:s3cret"}
    config = load_config(file, env=env)
    registry = config.input.schema_registry
    assert registry.url == "https://sr.example:8081"
    assert registry.config == {"timeout": 10, "basic.auth.user.info": "me:s3cret"}
    assert "s3cret" not in repr(config) and "012345" not in repr(config)
    with pytest.raises(ConfigError, match="not both"):
        load_config(file, overrides={"input.schema_registry.local": "rubin"})
    with pytest.raises(ConfigError, match="neither 'rubin' nor a directory"):
        load_config(overrides={"input.archive": "x", "input.schema_registry.local": "/nope"})
    with pytest.raises(ConfigError, match="http"):
        load_config(overrides={"input.archive": "x", "input.schema_registry.url": "sr:8081"})
    local = load_config(overrides={"input.archive": "x", "input.schema_registry.local": "rubin"})
    assert 1100 in local.input.schema_registry.open()
