"""Codec throughput on the real ZTF packets in ../shared/alerts/ztf: prints packets/s.

    .venv/bin/python bench/bench_codec.py [--repeat N]

Rows: decode without touching stamps; decode plus the three stamps (this codec's fast FITS
path); encode full and slim; and, as reference points, fastavro.reader, astropy stamps, and
a full encode that re-encodes the record dict instead of copying the input record's bytes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import fastavro
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

from stampflow.schemas.alert import STAMP_FIELDS
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.encode import OutputEncoder

PACKETS = Path(__file__).resolve().parents[1].parent / "shared" / "alerts" / "ztf"
ANNOTATIONS = [
    Annotation("blend", "1.0.0", "single", {"single": 0.9, "blend": 0.1}, 0.02, False),
    Annotation("morphology", "1.0.0", "spiral", {"spiral": 0.7, "shell": 0.3}, 0.4, True),
]


def _rate(packets: list[bytes], repeat: int, work: Callable[[bytes], object]) -> float:
    for data in packets[:5]:  # warm caches (parsed schemas) as a running daemon would have
        work(data)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for data in packets:
            work(data)
        best = min(best, time.perf_counter() - start)
    return len(packets) / best


def _decode(data: bytes) -> object:
    return decode_packet(data).alerts


def _decode_with_stamps(data: bytes) -> object:
    alert = decode_packet(data).alerts[0]
    return [alert.stamp(which) for which in STAMP_FIELDS if alert.has_stamp(which)]


def _fastavro_reader(data: bytes) -> object:
    return list(fastavro.reader(io.BytesIO(data)))


def _fastavro_astropy(data: bytes) -> object:
    record = next(iter(fastavro.reader(io.BytesIO(data))))
    return [
        fits.getdata(io.BytesIO(gzip.decompress(record[field]["stampData"])))
        for field in STAMP_FIELDS.values()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed passes; the best is kept")
    args = parser.parse_args()
    # A few real ZTF stamps pad their SIMPLE card oddly; astropy (the reference) warns.
    warnings.filterwarnings("ignore", category=VerifyWarning)
    packets = [path.read_bytes() for path in sorted(PACKETS.glob("*.avro"))]
    if not packets:
        raise SystemExit(f"no packets in {PACKETS}")
    alerts = [decode_packet(data).alerts[0] for data in packets]
    encoder = OutputEncoder()
    by_alert = dict(zip(packets, alerts, strict=True))

    def reencode_full(data: bytes) -> object:
        alert = by_alert[data]
        record = encoder.record(alert, ANNOTATIONS, mode="full", processing_time_ms=1.0)
        fastavro.writer(io.BytesIO(), encoder.schema_for(alert, "full"), [record])
        return record

    def encode(mode: str) -> Callable[[bytes], object]:
        return lambda data: encoder.encode(
            by_alert[data], ANNOTATIONS, mode=mode, processing_time_ms=1.0
        )

    rows = [
        ("decode, no stamps", _decode),
        ("decode + 3 stamps", _decode_with_stamps),
        ("ref: fastavro.reader, no stamps", _fastavro_reader),
        ("ref: fastavro.reader + astropy stamps", _fastavro_astropy),
        ("encode full", encode("full")),
        ("encode slim", encode("slim")),
        ("ref: encode full via fastavro.writer", reencode_full),
    ]
    mean_kb = sum(map(len, packets)) / len(packets) / 1024
    print(f"{len(packets)} real ZTF packets (mean {mean_kb:.1f} KB), best of {args.repeat}")
    print(f"{'operation':<40}{'packets/s':>12}{'us/packet':>12}")
    for name, work in rows:
        rate = _rate(packets, args.repeat, work)
        print(f"{name:<40}{rate:>12,.0f}{1e6 / rate:>12,.0f}")


if __name__ == "__main__":
    main()
