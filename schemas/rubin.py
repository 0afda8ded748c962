"""One decoded Rubin (LSST) alert, schema versions 7.x to 11.x.

A Rubin alert is one ``diaSource`` (the detection on a difference image) with its history
(``prvDiaSources``, ``prvDiaForcedSources``), its ``diaObject`` or solar-system source, and
three optional cutouts, each a whole FITS file (bytes). What moved between versions:

* the alert's id is ``alertId`` in 7.x and the top-level ``diaSourceId`` from 8.0;
* ``ssObject`` (7.x) became ``ssSource`` and ``MPCORB`` (8.0, 9.0), then ``mpc_orbits``.

The classifier-facing fields come from ``diaSource`` (the same names in every version), so
``view`` needs no per-version code; the record is kept exactly as decoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stampflow.schemas.errors import PacketError
from stampflow.schemas.survey import (
    CUTOUT_KINDS,
    PIXEL_SCALE,
    Cutout,
    SurveyAlert,
    ab_magnitude,
    ab_magnitude_err,
)
from stampflow.schemas.writer_schema import DecodedRecord, WriterSchema

RUBIN_CUTOUT_FIELDS = {
    "science": "cutoutScience",
    "template": "cutoutTemplate",
    "difference": "cutoutDifference",
}
REQUIRED_DIA_SOURCE = ("ra", "dec", "midpointMjdTai")


class RubinAlert(DecodedRecord):
    """A Rubin alert decoded from one Avro record (Confluent wire format or a container):
    ``DecodedRecord``'s fields, cutouts still FITS bytes in ``record``."""

    survey = "rubin"
    __slots__ = ("_cutouts", "_view")

    def __init__(
        self,
        raw: bytes,
        record: dict[str, Any],
        writer_schema: WriterSchema,
        record_bytes: bytes | None = None,
        schema_id: int | None = None,
    ) -> None:
        super().__init__(raw, record, writer_schema, record_bytes, schema_id)
        self._cutouts: dict[str, Cutout] | None = None
        self._view: SurveyAlert | None = None

    @property
    def schema_version(self) -> str | None:
        """``7.1``, ``11.0``, ...: from the schema's record name (``lsst.v7_1.alert``)."""
        return self.writer_schema.version

    @property
    def dia_source(self) -> dict[str, Any]:
        return self.record["diaSource"]

    @property
    def alert_id(self) -> int:
        """``alertId`` (7.x) or the top-level ``diaSourceId`` (8.0 and later)."""
        alert_id = self.record.get("alertId")
        return self.record["diaSourceId"] if alert_id is None else alert_id

    @property
    def candid(self) -> int:
        """``alert_id`` under ZTF's name, so code that names alerts by ``candid`` (error
        messages, the pipeline finding the alert an error names) works for both surveys."""
        return self.alert_id

    @property
    def object_id(self) -> int | None:
        """``diaObjectId``, else ``ssObjectId`` (a solar-system source); None when neither."""
        source = self.dia_source
        for name in ("diaObjectId", "ssObjectId"):
            value = source.get(name)
            if value:  # Rubin writes 0 as well as null for "none"
                return value
        return None

    @property
    def ra(self) -> float:
        return self.dia_source["ra"]

    @property
    def dec(self) -> float:
        return self.dia_source["dec"]

    @property
    def mjd(self) -> float:
        return self.dia_source["midpointMjdTai"]

    @property
    def band(self) -> str | None:
        return self.dia_source.get("band")

    @property
    def cutouts(self) -> dict[str, Cutout]:
        """The cutouts the packet carries, by kind; each decodes on first use."""
        if self._cutouts is None:
            self._cutouts = {
                kind: Cutout(kind, field, blob, default_pixel_scale=PIXEL_SCALE["rubin"])
                for kind, field in RUBIN_CUTOUT_FIELDS.items()
                if (blob := self.record.get(field))
            }
        return self._cutouts

    def has_stamp(self, which: str) -> bool:
        """Whether the packet carries the ``which`` (science|template|difference) cutout."""
        return _check_kind(which) in self.cutouts

    def stamp(self, which: str) -> np.ndarray:
        """The ``which`` cutout's image as float32, read-only, decoded once (as ``Alert``'s)."""
        cutout = self.cutouts.get(_check_kind(which))
        if cutout is None:
            field = RUBIN_CUTOUT_FIELDS[which]
            raise PacketError("missing_field", "the packet carries no such cutout", field=field)
        return cutout.data

    @property
    def view(self) -> SurveyAlert:
        if self._view is None:
            source = self.dia_source
            flux, flux_err = source.get("psfFlux"), source.get("psfFluxErr")
            object_id = self.object_id
            self._view = SurveyAlert(
                survey="rubin",
                schema_version=self.schema_version,
                alert_id=self.alert_id,
                object_id=None if object_id is None else str(object_id),
                ra=self.ra,
                dec=self.dec,
                mjd=self.mjd,
                band=self.band,
                magnitude=ab_magnitude(flux),
                magnitude_err=ab_magnitude_err(flux, flux_err),
                flux=flux,
                flux_err=flux_err,
                cutouts=self.cutouts,
                record=self.record,
            )
        return self._view

    def __repr__(self) -> str:
        return f"RubinAlert(alert_id={self.alert_id}, version={self.schema_version!r})"


def make_rubin_alert(
    raw: bytes,
    record: dict[str, Any],
    record_bytes: bytes,
    schema: WriterSchema,
    where: str,
    schema_id: int | None = None,
) -> RubinAlert:
    """Check that ``record`` has what the daemon needs, and wrap it; PacketError otherwise."""
    if not isinstance(record.get("alertId", record.get("diaSourceId")), int):
        raise PacketError(
            "missing_field", f"{where} has no alertId/diaSourceId integer", field="alertId"
        )
    source = record.get("diaSource")
    if not isinstance(source, dict):
        raise PacketError("missing_field", f"{where} has no diaSource record", field="diaSource")
    for name in REQUIRED_DIA_SOURCE:
        if not isinstance(source.get(name), int | float):
            raise PacketError(
                "missing_field",
                f"{where} has no numeric diaSource.{name}",
                field=f"diaSource.{name}",
            )
    return RubinAlert(raw, record, schema, record_bytes, schema_id)


def _check_kind(which: str) -> str:
    if which not in CUTOUT_KINDS:
        raise ValueError(f"stamp must be one of {sorted(CUTOUT_KINDS)}, got {which!r}")
    return which
