"""Small builders shared by the codec tests."""

from __future__ import annotations

import numpy as np

from stampflow.schemas.packets import minimal_candidate
from stampflow.schemas.stamps import encode_stamp


def stamp_image(seed: int, shape: tuple[int, int] = (63, 63)) -> np.ndarray:
    """A noisy float32 stamp with one NaN pixel."""
    image = np.random.default_rng(seed).normal(100.0, 5.0, size=shape).astype(np.float32)
    image[0, 0] = np.nan
    return image


def alert_record(candid: int, *, stamps: bool = True) -> dict:
    """A complete input record for ``write_alert_packet`` / ``alert.avsc``."""
    cutouts = {
        field: {"fileName": f"{field}.fits.gz", "stampData": encode_stamp(stamp_image(candid + i))}
        for i, field in enumerate(("cutoutScience", "cutoutTemplate", "cutoutDifference"))
    }
    return {
        "schemavsn": "4.02",
        "publisher": "tests",
        "objectId": f"ZTF24test{candid:04d}",
        "candid": candid,
        "candidate": minimal_candidate(candid=candid, jd=2460500.5 + candid, fid=1 + candid % 3),
        "prv_candidates": None,
        "fp_hists": None,
        "cutoutScience": cutouts["cutoutScience"] if stamps else None,
        "cutoutTemplate": cutouts["cutoutTemplate"] if stamps else None,
        "cutoutDifference": cutouts["cutoutDifference"] if stamps else None,
        "cutoutMultiband": None,
    }
