"""`stampflow demo` refuses bad names before any work and never deletes what is not its own."""

from __future__ import annotations

import time

from stampflow.stream.cli import main
from stampflow.stream.demo_cmd import MARKER_NAME


def test_an_unknown_classifier_is_refused_before_synthesising(tmp_path, capsys):
    started = time.monotonic()
    assert main(["demo", f"--out={tmp_path}", "--classifiers=morphology,foo"]) == 2
    assert time.monotonic() - started < 5  # not 2,000 packets synthesised first
    err = capsys.readouterr().err
    assert "unknown classifier 'foo'" in err and "known:" in err
    assert not (tmp_path / "packets").exists()


def test_work_dirs_not_made_by_a_demo_are_kept_unless_forced(tmp_path, capsys):
    mine = tmp_path / "annotated" / "night-1.avro"  # `stampflow run`'s default output dir
    mine.parent.mkdir()
    mine.write_bytes(b"results")
    demo = ["demo", f"--out={tmp_path}", "--n=6", "--classifiers=", "--multiband-fraction=0",
            "--rubin-n=3"]  # fmt: skip
    assert main(demo) == 2
    assert "pass --force" in capsys.readouterr().err and mine.read_bytes() == b"results"

    assert main([*demo, "--force"]) == 0
    assert not mine.exists() and (tmp_path / MARKER_NAME).is_file()
    assert main(demo) == 0  # its own earlier run: replaced without asking
    # one file per writer schema: the ZTF night's and the Rubin night's, not twice each
    assert len(list((tmp_path / "annotated").glob("*.avro"))) == 2


def test_without_rubin_alerts_the_demo_is_ztf_only(tmp_path, capsys):
    demo = ["demo", f"--out={tmp_path}", "--n=6", "--classifiers=", "--multiband-fraction=0"]
    assert main([*demo, "--rubin-n=-1"]) == 2
    assert "--rubin-n must be 0 or more" in capsys.readouterr().err
    assert main([*demo, "--rubin-n=0"]) == 0
    out = capsys.readouterr().out
    assert "1/2 synthesising" in out and "Rubin" not in out
    assert not (tmp_path / "packets" / "rubin").exists()
    assert len(list((tmp_path / "annotated").glob("*.avro"))) == 1
