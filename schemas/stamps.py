"""Image stamps: gzip-compressed single-HDU FITS to float32 arrays, and back.

astropy takes ~330 us per stamp; this reads only the header cards it needs and wraps the
pixels with ``np.frombuffer`` (~110 us, most of it gzip). The gzip is inflated by ISA-L
(``isal``, the same bytes as zlib, 1.8x faster on real ZTF stamps: 15,300 against 8,600
stamps/s on one core). astropy stays the reference the tests compare against.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
from isal import isal_zlib

from stampflow.schemas.errors import PacketError

CARD = 80
BLOCK = 2880
GZIP_MAGIC = b"\x1f\x8b"
JPEG_MAGIC = b"\xff\xd8\xff"
# 2048 x 2048 float64 is far beyond any stamp (ZTF's are 63 x 63); larger claims are hostile
# or broken, and are refused before they are inflated.
MAX_SIDE = 2048
MAX_HEADER_BLOCKS = 64
MAX_UNZIPPED = MAX_SIDE * MAX_SIDE * 8 + MAX_HEADER_BLOCKS * BLOCK
_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def sniff_format(data: bytes) -> str:
    """'gzip', 'fits' (uncompressed), 'jpeg' or 'unknown', from the first bytes."""
    if data.startswith(GZIP_MAGIC):
        return "gzip"
    if data.startswith(b"SIMPLE  ="):
        return "fits"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return "unknown"


def decode_stamp(data: bytes, field: str) -> np.ndarray:
    """Decode one stamp to a native float32 2-D array of its real shape (NaN kept).

    ``field`` names the packet field (``cutoutScience`` ...) for the error message.
    Raises PacketError ``unsupported_stamp`` for JPEG stamps and ``bad_stamp`` otherwise.
    """
    kind = sniff_format(data)
    if kind == "jpeg":
        raise PacketError(
            "unsupported_stamp", "JPEG stamp (2017 prototype format); FITS expected", field=field
        )
    if kind == "gzip":
        fits = _gunzip(data, field)
    elif kind == "fits":
        fits = data
    else:
        raise PacketError("bad_stamp", "neither gzip-compressed nor plain FITS", field=field)
    return _parse_fits(fits, field)


def _gunzip(data: bytes, field: str) -> bytes:
    inflater = isal_zlib.decompressobj(31)  # 31: gzip wrapper
    try:
        out = inflater.decompress(data, MAX_UNZIPPED)
    except isal_zlib.error as exc:
        raise PacketError("bad_stamp", f"broken gzip stream: {exc}", field=field) from exc
    if inflater.unconsumed_tail:
        raise PacketError("bad_stamp", f"unzips past {MAX_UNZIPPED} bytes", field=field)
    if not inflater.eof:
        raise PacketError("bad_stamp", "gzip stream is truncated", field=field)
    return out


def _parse_fits(fits: bytes, field: str) -> np.ndarray:
    cards, end_of_header = _read_header(fits, field)
    return _image(fits, cards, end_of_header, field)


@dataclass(frozen=True, slots=True)
class FitsImage:
    """The first 2-D image of a FITS file: its pixels and its header."""

    pixels: np.ndarray  # float32, native byte order, NaN kept
    cards: dict[str, str]  # ``KEY = value`` cards of the image's header (first occurrence wins)
    header: bytes  # that header as written, for astropy (``fits.Header.fromstring``)


def decode_fits_image(data: bytes, field: str) -> FitsImage:
    """Decode a (gzip or plain) FITS file of several HDUs, as Rubin writes its cutouts.

    The image is the primary HDU's, or the first extension's when the primary holds no data
    (``NAXIS = 0``); later HDUs (Rubin's mask and variance planes) are not read. Errors as
    ``decode_stamp``'s.
    """
    kind = sniff_format(data)
    if kind == "jpeg":
        raise PacketError("unsupported_stamp", "JPEG cutout; FITS expected", field=field)
    if kind == "gzip":
        fits = _gunzip(data, field)
    elif kind == "fits":
        fits = data
    else:
        raise PacketError("bad_stamp", "neither gzip-compressed nor plain FITS", field=field)
    cards, end_of_header = _read_header(fits, field)
    start = 0
    if _int_card(cards, "NAXIS", field) == 0:
        start = end_of_header
        cards, end_of_header = _read_header(fits, field, start, first=b"XTENSION=")
        if cards.get("XTENSION", "").strip("' ") != "IMAGE":
            raise PacketError(
                "bad_stamp",
                f"empty primary HDU followed by a {cards.get('XTENSION')} extension, "
                "an IMAGE expected",
                field=field,
            )
    pixels = _image(fits, cards, end_of_header, field)
    return FitsImage(pixels, cards, fits[start:end_of_header])


def pixel_scale_arcsec(cards: dict[str, str]) -> float | None:
    """Pixel scale [arcsec/px] from a celestial WCS's CD (or PC + CDELT) matrix, else None.

    The square root of the matrix's determinant: the mean scale for a non-square pixel.
    """
    if "CTYPE1" not in cards or "CTYPE2" not in cards:
        return None

    def number(key: str, default: float) -> float:
        try:
            return float(cards[key].replace("D", "E")) if key in cards else default
        except ValueError:
            return default

    elements = ((1, 1), (1, 2), (2, 1), (2, 2))
    if any(f"CD{i}_{j}" in cards for i, j in elements):
        m11, m12, m21, m22 = (number(f"CD{i}_{j}", 0.0) for i, j in elements)
    elif "CDELT1" in cards and "CDELT2" in cards:
        p11, p12, p21, p22 = (number(f"PC{i}_{j}", float(i == j)) for i, j in elements)
        d1, d2 = number("CDELT1", 0.0), number("CDELT2", 0.0)
        m11, m12, m21, m22 = d1 * p11, d1 * p12, d2 * p21, d2 * p22
    else:
        return None
    scale = abs(m11 * m22 - m12 * m21) ** 0.5 * 3600.0
    return scale if scale > 0 else None


def _image(fits: bytes, cards: dict[str, str], end_of_header: int, field: str) -> np.ndarray:
    bitpix = _int_card(cards, "BITPIX", field)
    if bitpix not in _DTYPES:
        raise PacketError("bad_stamp", f"unsupported BITPIX {bitpix}", field=field)
    naxis = _int_card(cards, "NAXIS", field)
    if naxis != 2:
        raise PacketError("bad_stamp", f"NAXIS is {naxis}, a 2-D image expected", field=field)
    width = _int_card(cards, "NAXIS1", field)
    height = _int_card(cards, "NAXIS2", field)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise PacketError("bad_stamp", f"implausible shape {height}x{width}", field=field)
    dtype = np.dtype(_DTYPES[bitpix])
    size = width * height * dtype.itemsize
    if end_of_header + size > len(fits):
        raise PacketError(
            "bad_stamp",
            f"FITS data truncated: {height}x{width} BITPIX {bitpix} needs {size} bytes, "
            f"{len(fits) - end_of_header} present",
            field=field,
        )
    raw = np.frombuffer(fits, dtype=dtype, count=width * height, offset=end_of_header)
    raw = raw.reshape(height, width)
    scale = _float_card(cards, "BSCALE", 1.0, field)
    zero = _float_card(cards, "BZERO", 0.0, field)
    if scale != 1.0 or zero != 0.0:
        pixels = (raw * scale + zero).astype(np.float32)
    else:
        pixels = raw.astype(np.float32)  # a native-endian, writable copy
    if bitpix > 0 and "BLANK" in cards:  # integer images mark missing pixels with BLANK
        pixels[raw == _int_card(cards, "BLANK", field)] = np.nan
    return pixels


def _read_header(
    fits: bytes, field: str, offset: int = 0, first: bytes = b"SIMPLE  ="
) -> tuple[dict[str, str], int]:
    """The header's ``KEY = value`` cards (first occurrence wins) and where the data starts.

    ``offset`` is where the header begins: 0 for the primary HDU, later for an extension,
    whose first card is ``first`` (``XTENSION=``).
    """
    if not fits.startswith(first, offset):
        if offset == 0:
            raise PacketError("bad_stamp", "not a FITS file (no SIMPLE card)", field=field)
        raise PacketError("bad_stamp", "no FITS extension after the primary HDU", field=field)
    cards: dict[str, str] = {}
    for block in range(MAX_HEADER_BLOCKS):
        start = offset + block * BLOCK
        chunk = fits[start : start + BLOCK]
        if len(chunk) < BLOCK:
            raise PacketError("bad_stamp", "FITS header is truncated", field=field)
        for offset in range(0, BLOCK, CARD):
            card = chunk[offset : offset + CARD]
            key = card[:8].rstrip().decode("ascii", "replace")
            if key == "END":
                return cards, start + BLOCK
            if card[8:10] == b"= " and key not in cards:
                value = card[10:].split(b"/", 1)[0].strip()
                cards[key] = value.decode("ascii", "replace")
    raise PacketError("bad_stamp", f"no END card in {MAX_HEADER_BLOCKS} header blocks", field=field)


def _int_card(cards: dict[str, str], key: str, field: str) -> int:
    if key not in cards:
        raise PacketError("bad_stamp", f"FITS header lacks {key}", field=field)
    try:
        return int(cards[key])
    except ValueError as exc:
        raise PacketError("bad_stamp", f"FITS {key} = {cards[key]!r}", field=field) from exc


def _float_card(cards: dict[str, str], key: str, default: float, field: str) -> float:
    if key not in cards:
        return default
    try:
        return float(cards[key].replace("D", "E"))  # FITS allows Fortran 1.0D0 exponents
    except ValueError as exc:
        raise PacketError("bad_stamp", f"FITS {key} = {cards[key]!r}", field=field) from exc


def encode_stamp(array: np.ndarray) -> bytes:
    """gzip-compressed single-HDU FITS, big-endian float32, as ZTF writes its stamps."""
    image = np.asarray(array, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"a stamp is 2-D, got shape {image.shape}")
    height, width = image.shape
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                  -32",
        "NAXIS   =                    2",
        f"NAXIS1  = {width:>20}",
        f"NAXIS2  = {height:>20}",
        "END",
    ]
    header = "".join(card.ljust(CARD) for card in cards).encode("ascii")
    header += b" " * (-len(header) % BLOCK)
    data = image.astype(">f4").tobytes()
    data += b"\0" * (-len(data) % BLOCK)
    # mtime=0: the same array always gives the same bytes (reproducible synthetic streams).
    return gzip.compress(header + data, compresslevel=6, mtime=0)
