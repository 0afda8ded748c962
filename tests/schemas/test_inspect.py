"""`stampflow inspect`: readable summaries, PNGs, and errors that do not stop the run."""

from __future__ import annotations

import argparse
from pathlib import Path

from stampflow.stream import inspect_cmd


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    inspect_cmd.add_arguments(parser)
    return inspect_cmd.run(parser.parse_args(argv))


def test_summary_of_a_real_packet(shared_alerts: Path, capsys):
    packet = shared_alerts / "ztf" / "forcedphot_test_1660293514215020000_2021-07-21.avro"
    assert _run([str(packet)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "ZTF18abstqbv",
        "candid 1660293514215020000",
        "schema     3.5 (ztf.alert)",
        "2021-07-19T07:02:",
        "band       r   magpsf 16.622 ± 0.040",
        "science 63x63, template 63x63, difference 63x63",
        "18 prv_candidates",
    ):
        assert expected in out


def test_edge_cut_stamps_and_nan_counts_are_shown(shared_alerts: Path, capsys):
    assert _run([str(shared_alerts / "ztf" / "000010512502623516.avro")]) == 0
    assert "science 63x54 (329 NaN)" in capsys.readouterr().out


def test_fill_values_are_counted_apart_from_nan(shared_alerts: Path, tmp_path, capsys):
    packet = shared_alerts / "ztf" / "000010512225241827.avro"  # template filled with -3.4e38
    assert _run([str(packet), "--png", str(tmp_path)]) == 0
    assert "template 63x63 (841 NaN, 1114 fill ±3.4e38)" in capsys.readouterr().out


def test_bad_packets_print_their_error_and_fail_only_at_the_end(shared_alerts, tmp_path, capsys):
    good = shared_alerts / "ztf" / "000010510007802576.avro"
    legacy = shared_alerts / "legacy" / "2017-04-04_87704463155000.avro"
    damaged = shared_alerts / "damaged" / "ztf_4.02_truncated_tail.avro"
    missing = tmp_path / "absent.avro"
    assert _run([str(legacy), str(damaged), str(missing), str(good)]) == 1
    captured = capsys.readouterr()
    assert "unsupported_stamp [cutoutScience]" in captured.out
    assert "ZTF21aapuacc" in captured.out and "error after 1 alert(s)" in captured.out
    assert "cannot read" in captured.out
    assert "ZTF18acdjhss" in captured.out  # the packet after the bad ones is still summarised
    assert "3 of 4 packet(s) had errors" in captured.err


def test_png_shows_the_three_stamps(shared_alerts: Path, tmp_path, capsys):
    packet = shared_alerts / "ztf" / "000010510007802576.avro"
    assert _run([str(packet), "--png", str(tmp_path)]) == 0
    (png,) = tmp_path.glob("*.png")
    assert png.name == "ZTF18acdjhss_675208700015010000.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert str(png) in capsys.readouterr().out


def test_julian_dates_become_iso_utc():
    assert inspect_cmd.jd_to_iso(2440587.5) == "1970-01-01T00:00:00.000Z"
    assert inspect_cmd.jd_to_iso(2451545.0) == "2000-01-01T12:00:00.000Z"
