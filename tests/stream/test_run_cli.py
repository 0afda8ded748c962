"""`stampflow run` as a user meets it: help for every option, dead letters beside the output,
a progress bar on a terminal and none in logs."""

from __future__ import annotations

import argparse
import io

import pytest
from stream_helpers import good_packets

from stampflow.stream.cli import build_parser, main
from stampflow.stream.config import load_config


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["run", "demo", "consume", "inspect"])
def test_every_option_has_help(command):
    parser = _subparsers()[command]
    missing = [
        a.option_strings or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and not a.help
    ]
    assert missing == []


def test_config_help_points_at_the_documented_example():
    parser = _subparsers()["run"]
    (config,) = [a for a in parser._actions if "--config" in a.option_strings]
    assert "stampflow.example.yaml" in config.help and "README" in config.help
    assert ".py" not in config.help


def test_dead_letters_default_beside_the_output_dir(tmp_path):
    env: dict[str, str] = {}
    beside = load_config(
        overrides={"input.archive": "x", "output.dir": str(tmp_path / "a")}, env=env
    )
    assert beside.dead_letter.dir == str(tmp_path / "dead-letters")
    given = {"input.archive": "x", "output.dir": "a", "dead_letter.dir": str(tmp_path / "d")}
    assert load_config(overrides=given, env=env).dead_letter.dir == str(tmp_path / "d")
    assert load_config(overrides={"input.archive": "x"}, env=env).dead_letter.dir == (
        "out/dead-letters"
    )
    from_env = load_config(env={"STAMPFLOW_INPUT__ARCHIVE": "x", "STAMPFLOW_OUTPUT__DIR": "n1/o"})
    assert from_env.dead_letter.dir == "n1/dead-letters"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def night(tmp_path):
    packets = tmp_path / "night"
    packets.mkdir()
    for i, packet in enumerate([*good_packets(5), b"garbage"]):
        (packets / f"{i}.avro").write_bytes(packet)
    return packets


def _run_archive(night, tmp_path) -> int:
    return main(
        [
            "run",
            f"--archive={night}",
            f"--output-dir={tmp_path / 'results' / 'annotated'}",
            "--classifiers=",
            "--metrics-port=0",
            "--max-batch=2",
        ]
    )


def test_dead_letters_land_beside_the_output_not_in_cwd(night, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run_archive(night, tmp_path) == 0
    assert (tmp_path / "results" / "dead-letters" / "index.jsonl").read_text().count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_progress_bar_on_a_terminal_only(night, tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert _run_archive(night, tmp_path) == 0
    assert "6/6" in terminal.getvalue() and "packet" in terminal.getvalue()

    piped = io.StringIO()  # a log file or a pipe: no bar, so logs do not fill with it
    monkeypatch.setattr("sys.stderr", piped)
    assert _run_archive(night, tmp_path / "again") == 0
    assert "packet/s" not in piped.getvalue() and "6/6" not in piped.getvalue()


def test_a_device_that_cannot_be_used_stops_the_start_with_the_reason(
    night, tmp_path, monkeypatch, capsys
):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: the refusal is for installs without it")
    monkeypatch.delenv("STAMPFLOW_DEVICE", raising=False)
    out = tmp_path / "results" / "annotated"
    args = ["run", f"--archive={night}", f"--output-dir={out}", "--metrics-port=0"]
    assert main([*args, "--classifiers=morphology", "--device=cuda"]) == 2
    assert "device cuda: this ONNX Runtime has no CUDA provider" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # nothing was read, nothing written
    # auto falls back to the CPU and runs.
    assert main([*args, "--classifiers=morphology", "--device=auto"]) == 0
