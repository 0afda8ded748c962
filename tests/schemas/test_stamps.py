"""The fast gzip-FITS stamp path against astropy, and its errors."""

from __future__ import annotations

import gzip
import io
import zlib

import numpy as np
import pytest
from astropy.io import fits

from stampflow.schemas.errors import PacketError
from stampflow.schemas.stamps import MAX_UNZIPPED, decode_stamp, encode_stamp

from .helpers import stamp_image


def _fits_bytes(hdu: fits.PrimaryHDU) -> bytes:
    out = io.BytesIO()
    hdu.writeto(out)
    return out.getvalue()


def _reference(data: bytes) -> np.ndarray:
    return fits.getdata(io.BytesIO(gzip.decompress(data))).astype(np.float32)


@pytest.mark.parametrize("shape", [(63, 63), (63, 47), (41, 63), (1, 5)])
def test_encoded_stamps_decode_to_the_same_array_and_astropy_agrees(shape):
    image = stamp_image(1, shape)
    data = encode_stamp(image)
    decoded = decode_stamp(data, "cutoutScience")
    np.testing.assert_array_equal(decoded, image)
    np.testing.assert_array_equal(_reference(data), image)
    assert np.isnan(decoded[0, 0]) and decoded.dtype == np.float32
    assert encode_stamp(image) == data  # reproducible bytes


@pytest.mark.parametrize(
    ("dtype", "scale", "zero"),
    [(np.int16, 0.5, 1000.0), (np.int32, 1.0, 0.0), (np.uint8, 2.0, -3.0), (np.float64, 1, 0)],
)
def test_other_bitpix_and_scaling_match_astropy(dtype, scale, zero):
    raw = np.arange(35, dtype=dtype).reshape(5, 7)
    hdu = fits.PrimaryHDU(raw)
    if scale != 1 or zero != 0:
        hdu.header["BSCALE"] = scale
        hdu.header["BZERO"] = zero
    data = gzip.compress(_fits_bytes(hdu))
    np.testing.assert_allclose(decode_stamp(data, "cutoutScience"), _reference(data), rtol=1e-6)


def test_integer_blank_pixels_become_nan():
    raw = np.arange(12, dtype=np.int16).reshape(3, 4)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = 5
    decoded = decode_stamp(gzip.compress(_fits_bytes(hdu)), "cutoutTemplate")
    assert np.isnan(decoded[1, 1]) and int(np.isnan(decoded).sum()) == 1


def test_uncompressed_fits_is_accepted():
    image = stamp_image(2)
    plain = gzip.decompress(encode_stamp(image))
    np.testing.assert_array_equal(decode_stamp(plain, "cutoutScience"), image)


def _error(data: bytes) -> PacketError:
    with pytest.raises(PacketError) as caught:
        decode_stamp(data, "cutoutDifference")
    assert caught.value.field == "cutoutDifference"
    return caught.value


def test_broken_stamps_are_bad_stamp_errors_naming_the_field():
    good = encode_stamp(stamp_image(3))
    plain = gzip.decompress(good)
    assert _error(good[: len(good) // 2]).reason == "bad_stamp"  # truncated gzip
    assert _error(good[:10] + bytes(200)).reason == "bad_stamp"  # corrupt deflate data
    assert _error(b"hello").reason == "bad_stamp"
    assert _error(gzip.compress(plain[:3000])).reason == "bad_stamp"  # FITS data cut short
    assert _error(gzip.compress(plain[:2000])).reason == "bad_stamp"  # header cut short
    three_d = _fits_bytes(fits.PrimaryHDU(np.zeros((2, 3, 4), dtype=np.float32)))
    assert "NAXIS" in _error(gzip.compress(three_d)).detail
    no_end = plain[:2880].replace(b"END" + b" " * 77, b" " * 80)
    assert _error(gzip.compress(no_end)).reason == "bad_stamp"


def test_jpeg_stamps_are_unsupported():
    assert _error(b"\xff\xd8\xff\xe0\x00\x10JFIF").reason == "unsupported_stamp"


def test_a_gzip_bomb_is_refused_without_inflating_it():
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [deflater.compress(b"SIMPLE  =")]
    parts += [deflater.compress(chunk) for _ in range((MAX_UNZIPPED >> 20) + 2)]
    bomb = b"".join(parts) + deflater.flush()
    assert len(bomb) < 100_000
    assert "unzips past" in _error(bomb).detail
