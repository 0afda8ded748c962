"""``stampflow inspect PACKET... [--png DIR]``: what is in an alert packet, for people.

Prints one summary per alert (schema version, objectId, candid, time, band, magnitude,
stamp shapes, previous candidates, multiband filters, and stampflow's annotations when the
packet is stampflow output; Rubin alerts the same from ``alert.view``: diaObjectId,
diaSourceId, flux and its AB magnitude, cutouts with their pixel scale) and, with
``--png``, draws the three stamps side by side, the multiband cutouts in a row below when
the alert has them. A PACKET may be a file, a directory or a nightly ``.tar.gz`` of
packets (read as ``stampflow run --archive`` does). A bad packet prints its error and the
command goes on; it exits 1 at the end if any failed. An existing PNG is never overwritten
without ``--force``. Confluent wire-format messages (Rubin's, and stampflow's annotated
Rubin output) need ``--schema-registry URL`` or ``--schema-dir DIR|rubin``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from stampflow.schemas.alert import JD_MINUS_MJD, STAMP_FIELDS, Alert
from stampflow.schemas.codec import AnyAlert, decode_packet
from stampflow.schemas.errors import PacketError
from stampflow.schemas.registry import RegistryUnavailable
from stampflow.schemas.rubin import RubinAlert
from stampflow.stream.archive_source import TAR_SUFFIXES, ArchiveError, ArchiveSource
from stampflow.stream.results import top_probability

BANDS = {1: "g", 2: "r", 3: "i"}
UNIX_EPOCH_JD = 2440587.5
# Some real ZTF templates fill missing pixels with -3.4e38 (-FLT_MAX) instead of NaN.
FILL_LIMIT = 1e30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "packets",
        nargs="+",
        type=Path,
        metavar="PACKET",
        help="Avro packet files, directories of them or nightly .tar.gz archives",
    )
    parser.add_argument(
        "--png", type=Path, metavar="DIR", help="write the stamps of each alert as a PNG in DIR"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing PNGs in DIR")
    from stampflow.stream.run_cmd import add_registry_arguments

    add_registry_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from stampflow.stream.run_cmd import open_registry_from_args

    try:
        registry = open_registry_from_args(args)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"stampflow inspect: {exc}", file=sys.stderr)
        return 2
    failures = total = 0
    for path in args.packets:
        for name, data in _packets(path):
            total += 1
            failures += not _inspect(name, data, args.png, force=args.force, registry=registry)
    if failures:
        print(f"{failures} of {total} packet(s) had errors", file=sys.stderr)
    return 1 if failures else 0


def _packets(path: Path) -> Iterator[tuple[str, bytes | OSError]]:
    """(name, bytes) of each packet ``path`` holds; a read error stands in for the bytes."""
    if not (path.is_dir() or str(path).endswith(TAR_SUFFIXES)):
        try:
            yield str(path), path.read_bytes()
        except OSError as exc:
            yield str(path), exc
        return
    try:
        source = ArchiveSource(path)
        while not source.exhausted:
            for message in source.poll(256, 0.0):
                member = (message.key or b"").decode()
                yield f"{path}:{member}" if path.is_file() else str(path / member), message.value
    except ArchiveError as exc:
        yield str(path), OSError(str(exc))


def _inspect(
    name: str, data: bytes | OSError, png: Path | None, *, force: bool, registry: Any = None
) -> bool:
    """Print one packet's summary (and draw its PNGs); False when anything failed."""
    if isinstance(data, OSError):
        print(f"{name}: cannot read: {data.strerror or data}")
        return False
    try:
        decoded = decode_packet(data, registry=registry)
    except (PacketError, RegistryUnavailable) as exc:
        print(f"{name}: error {exc}")
        return False
    ok = True
    count = len(decoded.alerts)
    print(f"{name}: {count} alert{'s' if count != 1 else ''}")
    for alert in decoded.alerts:
        print(summarise(alert))
        if png is not None:
            try:
                print(f"    png        {write_png(alert, png, force=force)}")
            except FileExistsError as exc:
                print(f"    png        error: {exc}")
                ok = False
    if decoded.error is not None:
        print(f"  error after {count} alert(s): {decoded.error}")
        ok = False
    return ok


def jd_to_iso(jd: float) -> str:
    """Julian date to an ISO 8601 UTC timestamp (millisecond precision)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=jd - UNIX_EPOCH_JD)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarise(alert: AnyAlert) -> str:
    """The multi-line, human-readable summary of one alert (ZTF or Rubin)."""
    if isinstance(alert, RubinAlert):
        return _summarise_rubin(alert)
    candidate = alert.candidate
    band = BANDS.get(alert.fid, f"fid={alert.fid}")
    sigma = candidate.get("sigmapsf")
    magnitude = f"{alert.magpsf:.3f}" + (f" ± {sigma:.3f}" if sigma is not None else "")
    schema = alert.schema_version or "unknown"
    lines = [
        f"  {alert.object_id}  candid {alert.candid}",
        f"    schema     {schema} ({alert.writer_schema.fullname})",
        f"    time       {jd_to_iso(alert.jd)} (JD {alert.jd:.5f})",
        f"    band       {band}   magpsf {magnitude}",
        f"    position   ra {alert.ra:.6f}  dec {alert.dec:+.6f}",
        f"    stamps     {_stamp_shapes(alert)}",
        f"    previous   {len(alert.prv_candidates)} prv_candidates",
    ]
    if alert.multiband is not None:
        lines.append(f"    multiband  {', '.join(alert.multiband.filters)}")
    lines.extend(_annotation_lines(alert))
    return "\n".join(lines)


def _summarise_rubin(alert: RubinAlert) -> str:
    view = alert.view
    jd = view.mjd + JD_MINUS_MJD
    flux = "flux n/a" if view.flux is None else f"psfFlux {view.flux:.1f}"
    if view.flux is not None and view.flux_err is not None:
        flux += f" ± {view.flux_err:.1f} nJy"
    if view.magnitude is not None:
        err = f" ± {view.magnitude_err:.3f}" if view.magnitude_err is not None else ""
        flux += f" (AB {view.magnitude:.3f}{err})"
    framed = "container" if alert.schema_id is None else f"schema id {alert.schema_id}"
    record = alert.record
    history = ", ".join(
        f"{len(record.get(name) or [])} {name}" for name in ("prvDiaSources", "prvDiaForcedSources")
    )
    lines = [
        f"  {view.object_id or 'no object'}  diaSource {view.alert_id}   (Rubin)",
        f"    schema     {view.schema_version} ({alert.writer_schema.fullname}, {framed})",
        f"    time       {jd_to_iso(jd)} (MJD TAI {view.mjd:.5f}, midpoint)",
        f"    band       {view.band}   {flux}",
        f"    position   ra {view.ra:.6f}  dec {view.dec:+.6f}",
        f"    stamps     {_stamp_shapes(alert)}",
        f"    previous   {history}",
    ]
    lines.extend(_annotation_lines(alert))
    return "\n".join(lines)


def _annotation_lines(alert: AnyAlert) -> list[str]:
    """stampflow's verdicts, for a packet that is stampflow output (a ``stampflow`` field)."""
    block = alert.record.get("stampflow")
    if not isinstance(block, dict):
        return []
    version = block.get("stampflowVersion", "?")
    notes = block.get("annotations") or []
    lines = [f"    stampflow  {version}: {len(notes)} annotation(s)"]
    for note in notes:
        flag = "  AMBIGUOUS" if note.get("ambiguous") else ""
        lines.append(
            f"      {note.get('classifier')} {note.get('modelVersion')}: {note.get('label')} "
            f"p={top_probability(note):.3f} uncertainty={note.get('uncertainty', 0.0):.3g}{flag}"
        )
    return lines


def _stamp_shapes(alert: AnyAlert) -> str:
    parts = []
    for which in STAMP_FIELDS:
        if not alert.has_stamp(which):
            parts.append(f"{which} absent")
            continue
        try:
            image = alert.stamp(which)
        except PacketError as exc:
            parts.append(f"{which} BROKEN ({exc.reason}: {exc.detail})")
            continue
        height, width = image.shape
        nan = int(np.isnan(image).sum())
        fill = int((np.abs(image) >= FILL_LIMIT).sum())
        notes = [f"{nan} NaN"] * bool(nan) + [f"{fill} fill ±3.4e38"] * bool(fill)
        if isinstance(alert, RubinAlert):
            notes.append(f'{alert.view.cutout(which).pixel_scale:.3g}"/px')
        parts.append(f"{which} {height}x{width}" + (f" ({', '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def write_png(alert: AnyAlert, directory: Path, *, force: bool = False) -> Path:
    """Draw science, template and difference side by side, and the multiband cutouts (one
    panel per filter) in a row below when present; NaN and fill pixels in magenta.

    Raises FileExistsError when the PNG exists, unless ``force``.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    view = alert.view
    path = directory / f"{view.object_id}_{view.alert_id}.png"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    cmap = plt.get_cmap("gray").with_extremes(bad="magenta")
    bands = _multiband_planes(alert)
    columns = max(len(STAMP_FIELDS), len(bands))
    rows = 2 if bands else 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.5 * columns, 4.0 * rows), constrained_layout=True, squeeze=False
    )
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_axis_off()
    for axis, which in zip(axes[0], STAMP_FIELDS, strict=False):
        try:
            image = alert.stamp(which) if alert.has_stamp(which) else None
        except PacketError as exc:
            image, note = None, f"broken: {exc.reason}"
        else:
            note = "absent"
        _panel(axis, image, which, note, cmap)
    for axis, (title, image, note) in zip(axes[1] if bands else [], bands, strict=False):
        _panel(axis, image, title, note, cmap)
    magnitude = "" if view.magnitude is None else f" {view.magnitude:.2f} mag"
    figure.suptitle(
        f"{view.object_id}  {'diaSource' if view.survey == 'rubin' else 'candid'} "
        f"{view.alert_id}  {jd_to_iso(view.mjd + JD_MINUS_MJD)}  "
        f"{view.band}{magnitude}   (magenta: NaN or fill)"
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _multiband_planes(alert: AnyAlert) -> list[tuple[str, np.ndarray | None, str]]:
    """(title, image or None, why none) per multiband filter; empty without multiband."""
    if not isinstance(alert, Alert):
        return []
    try:
        multiband = alert.multiband
        if multiband is None:
            return []
        stack = multiband.stamps()
    except PacketError as exc:
        return [("multiband", None, f"broken: {exc.reason}")]
    return [
        (f'{name} ({scale:g}"/px)', stack[k], "")
        for k, (name, scale) in enumerate(
            zip(multiband.filters, multiband.pixel_scale, strict=True)
        )
    ]


def _panel(axis: Any, image: np.ndarray | None, title: str, note: str, cmap: Any) -> None:
    from astropy.visualization import ZScaleInterval

    axis.set_axis_on()
    axis.set_xticks([])
    axis.set_yticks([])
    if image is None:
        axis.text(0.5, 0.5, note, ha="center", va="center", transform=axis.transAxes)
        axis.set_title(title)
        return
    # Fill values become NaN too, so they neither skew the stretch nor overflow the colormap.
    shown = np.where(np.abs(image) >= FILL_LIMIT, np.nan, image)
    valid = shown[np.isfinite(shown)]
    low, high = ZScaleInterval().get_limits(valid) if valid.size else (0.0, 1.0)
    axis.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=low, vmax=high, origin="lower")
    axis.set_title(f"{title} {image.shape[0]}x{image.shape[1]}")
