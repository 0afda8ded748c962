"""``stampflow inspect PACKET... [--png DIR]``: what is in an alert packet, for people.

Prints one summary per alert (schema version, objectId, candid, time, band, magnitude,
stamp shapes, previous candidates) and, with ``--png``, draws the three stamps side by side.
A bad packet prints its error and the command goes on; it exits 1 at the end if any failed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from stampflow.schemas.alert import STAMP_FIELDS, Alert
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError

BANDS = {1: "g", 2: "r", 3: "i"}
UNIX_EPOCH_JD = 2440587.5
# Some real ZTF templates fill missing pixels with -3.4e38 (-FLT_MAX) instead of NaN.
FILL_LIMIT = 1e30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("packets", nargs="+", type=Path, metavar="PACKET", help="Avro packet files")
    parser.add_argument(
        "--png", type=Path, metavar="DIR", help="write the stamps of each alert as a PNG in DIR"
    )


def run(args: argparse.Namespace) -> int:
    failures = 0
    for path in args.packets:
        try:
            decoded = decode_packet(path.read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}")
            failures += 1
            continue
        except PacketError as exc:
            print(f"{path}: error {exc}")
            failures += 1
            continue
        count = len(decoded.alerts)
        print(f"{path}: {count} alert{'s' if count != 1 else ''}")
        for alert in decoded.alerts:
            print(summarise(alert))
            if args.png is not None:
                print(f"    png        {write_png(alert, args.png)}")
        if decoded.error is not None:
            print(f"  error after {count} alert(s): {decoded.error}")
            failures += 1
    if failures:
        print(f"{failures} of {len(args.packets)} packet(s) had errors", file=sys.stderr)
    return 1 if failures else 0


def jd_to_iso(jd: float) -> str:
    """Julian date to an ISO 8601 UTC timestamp (millisecond precision)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=jd - UNIX_EPOCH_JD)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarise(alert: Alert) -> str:
    """The multi-line, human-readable summary of one alert."""
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
    return "\n".join(lines)


def _stamp_shapes(alert: Alert) -> str:
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
        parts.append(f"{which} {height}x{width}" + (f" ({', '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def write_png(alert: Alert, directory: Path) -> Path:
    """Draw science, template and difference side by side; NaN and fill pixels in magenta."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    from astropy.visualization import ZScaleInterval

    directory.mkdir(parents=True, exist_ok=True)
    cmap = plt.get_cmap("gray").with_extremes(bad="magenta")
    figure, axes = plt.subplots(1, 3, figsize=(10.5, 4.0), constrained_layout=True)
    for axis, which in zip(axes, STAMP_FIELDS, strict=True):
        axis.set_xticks([])
        axis.set_yticks([])
        try:
            image = alert.stamp(which) if alert.has_stamp(which) else None
        except PacketError as exc:
            image, note = None, f"broken: {exc.reason}"
        else:
            note = "absent"
        if image is None:
            axis.text(0.5, 0.5, note, ha="center", va="center", transform=axis.transAxes)
            axis.set_title(which)
            continue
        # Fill values become NaN too, so they neither skew the stretch nor overflow the colormap.
        shown = np.where(np.abs(image) >= FILL_LIMIT, np.nan, image)
        valid = shown[np.isfinite(shown)]
        low, high = ZScaleInterval().get_limits(valid) if valid.size else (0.0, 1.0)
        axis.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=low, vmax=high, origin="lower")
        axis.set_title(f"{which} {image.shape[0]}x{image.shape[1]}")
    band = BANDS.get(alert.fid, str(alert.fid))
    figure.suptitle(
        f"{alert.object_id}  candid {alert.candid}  {jd_to_iso(alert.jd)}  "
        f"{band} {alert.magpsf:.2f} mag   (magenta: NaN or fill)"
    )
    path = directory / f"{alert.object_id}_{alert.candid}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
