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


def _synthetic_night(tmp_path: Path, n: int = 4) -> Path:
    from stampflow.training.synth import synthesise, write_archive

    packets = synthesise(n, 11, broken_fraction=0.0, multiband_fraction=1.0, progress=False)
    return write_archive(tmp_path / "night", packets, tar=True)


def test_tarballs_are_read_like_run_does(tmp_path, capsys):
    archive = _synthetic_night(tmp_path)
    assert _run([str(archive)]) == 0
    out = capsys.readouterr().out
    assert "no_container_header" not in out
    assert out.count(f"{archive}:") == 4 and "multiband  F200W, F277W, F356W, F444W" in out


def test_annotations_of_stampflow_output_are_shown(tmp_path, capsys):
    from stampflow.schemas.annotation import Annotation
    from stampflow.schemas.codec import decode_alert
    from stampflow.schemas.encode import OutputEncoder
    from stampflow.training.synth import synthesise

    ((_name, packet, _row),) = synthesise(1, 2, broken_fraction=0.0, progress=False)
    verdict = Annotation("blend", "2.0.0", "blend", {"blend": 0.62, "single": 0.38}, 0.3, True)
    output = tmp_path / "annotated.avro"
    output.write_bytes(
        OutputEncoder("9.9").encode(decode_alert(packet), [verdict], processing_time_ms=1)
    )
    assert _run([str(output)]) == 0
    out = capsys.readouterr().out
    assert "stampflow  9.9: 1 annotation(s)" in out
    assert "blend 2.0.0: blend p=0.620 uncertainty=0.3  AMBIGUOUS" in out


def _png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")  # IHDR width


def test_pngs_are_never_overwritten_without_force(tmp_path, capsys):
    archive = _synthetic_night(tmp_path, n=1)
    pngs = tmp_path / "png"
    assert _run([str(archive), "--png", str(pngs)]) == 0
    (png,) = pngs.glob("*.png")
    png.write_bytes(b"mine")
    assert _run([str(archive), "--png", str(pngs)]) == 1
    assert "exists; pass --force to overwrite it" in capsys.readouterr().out
    assert png.read_bytes() == b"mine"
    assert _run([str(archive), "--png", str(pngs), "--force"]) == 0
    # four multiband panels below the three ZTF stamps: four columns wide, not three
    assert png.read_bytes().startswith(b"\x89PNG") and _png_width(png) == 4 * 350
