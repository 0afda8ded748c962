"""``stampflow synth``: an archive of synthetic ZTF-style alert packets, with a truth table.

The real packets in ``../shared/alerts`` are not on a user's machine, so the demo and the
benchmarks stream these instead. Each packet is written with the codec's own input schema
(``schemas/alert.avsc``, ZTF 4.02 field names) and carries science, template and difference
stamps; a share of the packets is deliberately broken in several ways (``BROKEN_KINDS``)
so the dead-letter path is exercised.

The ZTF stamps come from the blend simulator (``blend.sim.ztf_cutouts``: single stars and
blends in the template, a transient on top in the science image); ``multiband_records`` adds
the morphology simulator's JWST cutouts (``cutoutMultiband``) to a share of the packets. The
truth of both is written beside the packets, so a run can be scored.

``--survey rubin`` writes a synthetic Rubin night instead (``synthesise_rubin``): each
packet one Confluent wire-format message under Rubin's schema id (``--rubin-version``,
default 11.0: id 1100), its record complete for that version, with science, template and
difference cutouts written as Rubin's pipelines write them (astropy CCDData: image in nJy,
WCS at 0.2"/px, variance) of a point source under seeing of 0.5-1.2"; a share is broken
(``RUBIN_BROKEN_KINDS``). Read it with ``stampflow run --schema-dir rubin``.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stampflow.schemas.container import read_header, read_long
from stampflow.schemas.packets import minimal_candidate, write_alert_packet
from stampflow.schemas.registry import rubin_schema_id
from stampflow.schemas.stamps import encode_stamp
from stampflow.training.blend.sim import ztf_cutouts

FIRST_JD = 2460500.65
CANDID_BASE = 2_900_000_000_000_000_000
TRUTH_NAME = "truth.jsonl"
# How a broken packet is broken, and the dead-letter reason the daemon should give it.
BROKEN_KINDS = {
    "truncated": "truncated",  # the packet cut in half
    "garbage": "no_container_header",  # random bytes
    "empty": "empty",  # a zero-byte message
    "bare_record": "no_container_header",  # the record without its container header
    "bad_stamp": "bad_stamp",  # the stamps are not gzip FITS (found when classifying)
}

# Rubin: how a broken message is broken, and the dead-letter reason it should get.
RUBIN_BROKEN_KINDS = {
    "unknown_schema_id": "unknown_schema_id",  # framed under an id no registry has
    "truncated": "truncated",  # the wire header alone
    "empty": "empty",
}
RUBIN_FIRST_MJD = 61000.1
RUBIN_ID_BASE = 3_000_000_000_000
RUBIN_BANDS = ("u", "g", "r", "i", "z", "y")
RUBIN_STAMP = 31  # px on a side (Rubin's cutouts are about 30 x 30)
UNKNOWN_SCHEMA_ID = 4242

Cutouts = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[dict[str, Any]]]


def alert_record(
    index: int,
    rng: np.random.Generator,
    stamps: tuple[np.ndarray, np.ndarray, np.ndarray],
    mag: float,
    *,
    multiband: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One alert record in the input schema; ``multiband`` fills ``cutoutMultiband``."""
    candid = CANDID_BASE + index
    letters = "".join(chr(ord("a") + int(c)) for c in rng.integers(0, 26, size=7))
    ra, dec = float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-0.5, 1.0))))
    candidate = minimal_candidate(
        jd=FIRST_JD + index * 1e-5,
        fid=int(rng.integers(1, 3)),
        candid=candid,
        ra=ra,
        dec=dec,
        magpsf=mag,
        sigmapsf=float(rng.uniform(0.02, 0.2)),
        ranr=ra,
        decnr=dec,
    )
    names = ("Science", "Template", "Difference")
    return {
        "objectId": f"ZTF24{letters}",
        "candid": candid,
        "candidate": candidate,
        **{
            f"cutout{name}": {
                "fileName": f"candid{candid}_{name.lower()}.fits.gz",
                "stampData": encode_stamp(s),
            }
            for name, s in zip(names, stamps, strict=True)
        },
        "cutoutMultiband": multiband,
    }


def break_packet(kind: str, packet: bytes, rng: np.random.Generator) -> bytes:
    """``packet`` broken the ``kind`` way (see ``BROKEN_KINDS``)."""
    if kind == "truncated":
        return packet[: len(packet) // 2]
    if kind == "garbage":
        return rng.bytes(int(rng.integers(16, 4096)))
    if kind == "empty":
        return b""
    if kind == "bare_record":
        # The record bytes alone, without the container around them, like the 2017 packets.
        header = read_header(packet)
        _count, pos = read_long(packet, header.end, "record count")
        size, pos = read_long(packet, pos, "block size")
        return packet[pos : pos + size]
    raise ValueError(f"unknown broken kind {kind!r}; known: {sorted(BROKEN_KINDS)}")


def multiband_records(seed: int, n: int, fraction: float) -> dict[int, tuple[dict, dict]]:
    """Packet index -> (``cutoutMultiband`` record, truth) for about ``fraction`` of ``n``.

    JWST NIRCam cutouts from the morphology simulator, drawn from their own random stream
    so adding them leaves every other field of a seed's packets unchanged.
    """
    if fraction <= 0.0:
        return {}
    from stampflow.training.morphology.sim import multiband_cutouts

    rng = np.random.default_rng([seed, 1])
    chosen = np.flatnonzero(rng.random(n) < fraction)
    if chosen.size == 0:
        return {}
    images, filters, scales, rows = multiband_cutouts(rng, int(chosen.size))
    return {
        int(index): (
            {
                "filters": list(filters),
                "pixelScale": [float(s) for s in scales],
                "stampData": [encode_stamp(plane) for plane in images[k]],
            },
            rows[k],
        )
        for k, index in enumerate(chosen)
    }


def synthesise(
    n: int,
    seed: int,
    *,
    broken_fraction: float = 0.05,
    multiband_fraction: float = 0.0,
    cutouts: Callable[[np.random.Generator, int], Cutouts] = ztf_cutouts,
    progress: bool = True,
) -> list[tuple[str, bytes, dict[str, Any]]]:
    """``n`` packets as (file name, bytes, truth row), reproducible from ``seed``.

    ``multiband_fraction`` of them also carry JWST multiband cutouts (truth under
    ``multiband`` in their row).
    """
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    for name, value in (("broken", broken_fraction), ("multiband", multiband_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--{name}-fraction must be within [0, 1], got {value}")
    rng = np.random.default_rng(seed)
    science, template, difference, truth = cutouts(rng, n)
    multiband = multiband_records(seed, n, multiband_fraction)
    kinds = sorted(BROKEN_KINDS)
    broken = rng.random(n) < broken_fraction
    out = []
    for i in tqdm(range(n), desc="synth", unit="packet", disable=not progress):
        row = dict(truth[i])
        stamps = (science[i], template[i], difference[i])
        extra, extra_truth = multiband.get(i, (None, None))
        record = alert_record(i, rng, stamps, row["transient_mag"], multiband=extra)
        kind = kinds[int(rng.integers(len(kinds)))] if broken[i] else None
        if kind == "bad_stamp":
            for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
                record[name]["stampData"] = rng.bytes(512)
        packet = write_alert_packet(record)
        if kind is not None and kind != "bad_stamp":
            packet = break_packet(kind, packet, rng)
        row.update(
            shape=list(science[i].shape),
            objectId=record["objectId"],
            candid=record["candid"],
            broken=kind,
            expected_reason=BROKEN_KINDS.get(kind) if kind else None,
            multiband=extra_truth,
            # The right label per classifier (demo scoring reads this, by classifier name).
            answers={
                "blend": row["label"],
                **({"morphology": extra_truth["cls"]} if extra_truth else {}),
            },
        )
        out.append((f"{record['candid']}.avro", packet, row))
    return out


def rubin_images(
    rng: np.random.Generator, flux: float, host: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(science, template, difference) in nJy, and the seeing FWHM [arcsec]: a host of
    ``host`` nJy in the template (a deep coadd: less noise), the transient of ``flux`` nJy
    on top in the science image, the difference their difference plus noise."""
    fwhm = float(rng.uniform(0.5, 1.2))
    sigma_px = fwhm / 2.3548 / 0.2
    centre = (RUBIN_STAMP - 1) / 2
    y, x = np.mgrid[0:RUBIN_STAMP, 0:RUBIN_STAMP]
    offset = rng.normal(0.0, 0.5, size=2)
    psf = np.exp(
        -((x - centre - offset[0]) ** 2 + (y - centre - offset[1]) ** 2) / (2 * sigma_px**2)
    )
    psf /= psf.sum()
    noise = 60.0  # nJy per pixel in one 30 s visit
    template = host * psf + rng.normal(0.0, noise / 4, psf.shape)
    science = (host + flux) * psf + rng.normal(0.0, noise, psf.shape)
    difference = flux * psf + rng.normal(0.0, noise, psf.shape)
    return science, template, difference, fwhm


def synthesise_rubin(
    n: int,
    seed: int,
    *,
    version: str = "11.0",
    broken_fraction: float = 0.05,
    progress: bool = True,
) -> list[tuple[str, bytes, dict[str, Any]]]:
    """``n`` Rubin wire-format messages as (file name, bytes, truth row), from ``seed``."""
    from stampflow.schemas.rubin_packets import rubin_cutout, rubin_message, rubin_record

    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if not 0.0 <= broken_fraction <= 1.0:
        raise ValueError(f"--broken-fraction must be within [0, 1], got {broken_fraction}")
    try:
        schema_id = rubin_schema_id(version)
    except ValueError as exc:
        raise ValueError(f"--rubin-version: {exc}") from None
    from stampflow.schemas.registry import LocalSchemas

    if schema_id not in LocalSchemas.rubin():
        known = ", ".join(f"{i // 100}.{i % 100}" for i in sorted(LocalSchemas.rubin()))
        raise ValueError(f"--rubin-version {version} is not a Rubin schema stampflow has: {known}")
    rng = np.random.default_rng([seed, 13])
    kinds = sorted(RUBIN_BROKEN_KINDS)
    out = []
    for i in tqdm(range(n), desc="synth rubin", unit="packet", disable=not progress):
        alert_id = RUBIN_ID_BASE + i
        object_id = int(rng.integers(1, 2**40))
        ra, dec = float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1.0, 0.3))))
        magnitude = float(rng.uniform(17.0, 24.0))
        flux = float(10 ** ((31.4 - magnitude) / 2.5))
        host = float(10 ** ((31.4 - rng.uniform(18.0, 23.0)) / 2.5))
        science, template, difference, fwhm = rubin_images(rng, flux, host)
        band = RUBIN_BANDS[int(rng.integers(len(RUBIN_BANDS)))]
        mjd = RUBIN_FIRST_MJD + i * 1e-5
        record = rubin_record(
            schema_id,
            alert_id=alert_id,
            object_id=object_id,
            ra=ra,
            dec=dec,
            mjd=mjd,
            band=band,
            flux=flux,
            flux_err=float(60.0 * 2 * np.sqrt(np.pi) * fwhm / 2.3548 / 0.2),
            cutouts={
                "science": rubin_cutout(science, ra, dec, variance=60.0**2),
                "template": rubin_cutout(template, ra, dec, variance=15.0**2),
                "difference": rubin_cutout(difference, ra, dec, variance=60.0**2),
            },
        )
        packet = rubin_message(record, schema_id)
        kind = kinds[int(rng.integers(len(kinds)))] if rng.random() < broken_fraction else None
        if kind == "unknown_schema_id":
            packet = bytes([0]) + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + packet[5:]
        elif kind == "truncated":
            packet = packet[:5]
        elif kind == "empty":
            packet = b""
        row = {
            "survey": "rubin",
            "schema_version": version,
            "schema_id": schema_id,
            "diaSourceId": alert_id,
            "diaObjectId": object_id,
            "band": band,
            "magnitude": magnitude,
            "seeing_arcsec": fwhm,
            "shape": [RUBIN_STAMP, RUBIN_STAMP],
            "broken": kind,
            "expected_reason": RUBIN_BROKEN_KINDS.get(kind) if kind else None,
            "answers": {},  # no shipped model takes Rubin alerts yet (the Rubin blend model)
        }
        out.append((f"{alert_id}.wire", packet, row))
    return out


def write_archive(
    out_dir: Path, packets: list[tuple[str, bytes, dict[str, Any]]], *, tar: bool
) -> Path:
    """Packets as files in ``out_dir`` (or one ``alerts.tar.gz`` there) plus ``truth.jsonl``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / TRUTH_NAME).open("w", encoding="utf-8") as truth:
        for name, _packet, row in packets:
            truth.write(json.dumps({"file": name, **row}) + "\n")
    if not tar:
        for name, packet, _row in packets:
            (out_dir / name).write_bytes(packet)
        return out_dir
    archive = out_dir / "alerts.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for name, packet, _row in packets:
            info = tarfile.TarInfo(name)
            info.size = len(packet)
            bundle.addfile(info, io.BytesIO(packet))
    return archive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output directory (packets + truth.jsonl)")
    parser.add_argument("--n", type=int, default=1000, help="packets to write (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--broken-fraction", type=float, default=0.05, help="share of broken packets (0.05)"
    )
    parser.add_argument(
        "--multiband-fraction",
        type=float,
        default=0.0,
        help="share of packets that also carry JWST multiband cutouts (0)",
    )
    parser.add_argument("--tar", action="store_true", help="bundle packets as alerts.tar.gz")
    parser.add_argument(
        "--survey",
        choices=("ztf", "rubin"),
        default="ztf",
        help="ztf: ZTF-style Avro containers (default); rubin: Rubin wire-format messages "
        "with FITS cutouts (read with --schema-dir rubin)",
    )
    parser.add_argument(
        "--rubin-version",
        default="11.0",
        help="--survey rubin: the Rubin schema version to write (11.0, id 1100)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        if args.survey == "rubin":
            packets = synthesise_rubin(
                args.n,
                args.seed,
                version=args.rubin_version,
                broken_fraction=args.broken_fraction,
                progress=not args.quiet,
            )
        else:
            packets = synthesise(
                args.n,
                args.seed,
                broken_fraction=args.broken_fraction,
                multiband_fraction=args.multiband_fraction,
                progress=not args.quiet,
            )
    except ValueError as exc:
        print(f"stampflow synth: {exc}")
        return 2
    where = write_archive(args.out, packets, tar=args.tar)
    n_broken = sum(1 for _n, _p, row in packets if row["broken"])
    print(f"wrote {len(packets)} packets ({n_broken} deliberately broken) to {where}")
    print(f"truth table: {args.out / TRUTH_NAME}")
    return 0
