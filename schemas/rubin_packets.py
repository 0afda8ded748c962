"""Rubin alert records and messages built from the vendored schemas, for simulators and tests.

``rubin_record(schema_id, ...)`` is a complete record of that Rubin schema version: every
field its default, null or an empty value, then the fields a classifier reads set
(``diaSource`` id, object, position, time, band, PSF flux; the alert id where the version
keeps it) and the cutouts. ``rubin_message`` frames it in the Confluent wire format under
Rubin's id (major*100+minor), as Rubin's alert stream does. ``rubin_cutout`` writes one
cutout as Rubin's pipelines do: astropy ``CCDData`` (image in nJy, WCS, variance) as FITS.
"""

from __future__ import annotations

import copy
import io
import json
from functools import cache
from typing import Any

import numpy as np

from stampflow.schemas.registry import LocalSchemas, rubin_schema_id
from stampflow.schemas.rubin import RUBIN_CUTOUT_FIELDS
from stampflow.schemas.wire import encode_wire

DEFAULT_VERSION = "11.0"
PIXEL_SCALE = 0.2  # arcsec/px, Rubin's LSSTCam


@cache
def _schema(schema_id: int) -> dict[str, Any]:
    return json.loads(LocalSchemas.rubin().lookup(schema_id))


def named_types(schema: Any, names: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined in ``schema``, by its short name."""
    names = {} if names is None else names
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            names[str(schema["name"]).rpartition(".")[2]] = schema
        if kind == "record":
            for field in schema["fields"]:
                named_types(field["type"], names)
        elif kind == "array":
            named_types(schema["items"], names)
        elif kind == "map":
            named_types(schema["values"], names)
        elif isinstance(kind, dict | list):
            named_types(kind, names)
    return names


def empty_value(schema: Any, names: dict[str, Any]) -> Any:
    """The simplest valid value of an Avro type (a union: null if it may be, else its first)."""
    if isinstance(schema, list):
        return None if "null" in schema else empty_value(schema[0], names)
    if isinstance(schema, str):
        simple = {"null": None, "boolean": False, "int": 0, "long": 0, "float": 0.0}
        simple |= {"double": 0.0, "string": "", "bytes": b""}
        if schema in simple:
            return simple[schema]
        return empty_value(names[schema.rpartition(".")[2]], names)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        names[schema["name"].rpartition(".")[2]] = schema
    if kind == "record":
        return {
            field["name"]: copy.deepcopy(field["default"])
            if "default" in field
            else empty_value(field["type"], names)
            for field in schema["fields"]
        }
    if kind == "array":
        return []
    if kind == "map":
        return {}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\0" * schema["size"]
    return empty_value(kind, names)  # {"type": "long", "logicalType": ...}


def rubin_record(
    schema_id: int = rubin_schema_id(DEFAULT_VERSION),
    *,
    alert_id: int,
    object_id: int | None,
    ra: float,
    dec: float,
    mjd: float,
    band: str,
    flux: float,
    flux_err: float,
    cutouts: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """A complete record of Rubin schema ``schema_id`` (700, 701, ... 1100) with these values.

    ``alert_id`` is the diaSource id (and ``alertId`` in 7.x); ``cutouts`` maps kinds
    (science, template, difference) to FITS bytes.
    """
    schema = _schema(schema_id)
    names = named_types(schema)
    record = empty_value(schema, names)
    source = record["diaSource"]
    source.update(
        diaSourceId=alert_id,
        diaObjectId=object_id,
        ra=ra,
        dec=dec,
        midpointMjdTai=mjd,
        band=band,
        psfFlux=flux,
        psfFluxErr=flux_err,
    )
    for name in ("alertId", "diaSourceId"):
        if name in record:
            record[name] = alert_id
    if "diaObject" in record and object_id is not None:
        record["diaObject"] = empty_value(names["diaObject"], names)
        record["diaObject"].update(diaObjectId=object_id, ra=ra, dec=dec)
    for kind, blob in (cutouts or {}).items():
        record[RUBIN_CUTOUT_FIELDS[kind]] = blob
    return record


def rubin_message(record: dict[str, Any], schema_id: int) -> bytes:
    """``record`` in the Confluent wire format under Rubin's id ``schema_id``."""
    return encode_wire(record, _schema(schema_id), schema_id)


def rubin_cutout(image: np.ndarray, ra: float, dec: float, *, variance: float = 1.0) -> bytes:
    """One cutout as Rubin's pipelines write it: astropy CCDData (image in nJy, a TAN WCS
    centred on ``ra``, ``dec`` at 0.2"/px, a variance plane) as FITS bytes."""
    from astropy.nddata import CCDData, VarianceUncertainty
    from astropy.wcs import WCS

    height, width = image.shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(width + 1) / 2, (height + 1) / 2]
    scale = PIXEL_SCALE / 3600
    wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    ccd = CCDData(
        image.astype(np.float32),
        unit="nJy",
        wcs=wcs,
        uncertainty=VarianceUncertainty(np.full(image.shape, variance, dtype=np.float32)),
    )
    out = io.BytesIO()
    ccd.write(out, format="fits")
    return out.getvalue()
