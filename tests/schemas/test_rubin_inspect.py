"""``stampflow inspect`` reads Rubin wire-format messages with a registry, and draws them."""

from __future__ import annotations

from stampflow.stream.cli import main
from stampflow.training.synth import synthesise_rubin, write_archive


def test_inspect_summarises_and_draws_rubin_alerts(tmp_path, capsys):
    packets = synthesise_rubin(3, 2, version="8.0", broken_fraction=0.0, progress=False)
    night = write_archive(tmp_path / "night", packets, tar=False)
    assert main(["inspect", str(night), "--schema-dir=rubin", f"--png={tmp_path / 'png'}"]) == 0
    out = capsys.readouterr().out
    row = packets[0][2]
    assert f"{row['diaObjectId']}  diaSource {row['diaSourceId']}   (Rubin)" in out
    assert "schema     8.0 (lsst.v8_0.alert, schema id 800)" in out
    assert 'science 31x31 (0.2"/px)' in out
    assert len(list((tmp_path / "png").glob("*.png"))) == 3
    assert main(["inspect", str(night)]) == 1  # no registry: each message is an error
    assert "no_container_header" in capsys.readouterr().out
