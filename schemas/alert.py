"""One decoded alert: the Avro record as written, with lazily decoded, cached stamps."""

from __future__ import annotations

from typing import Any

import numpy as np

from stampflow.schemas.errors import PacketError
from stampflow.schemas.stamps import decode_stamp
from stampflow.schemas.survey import PIXEL_SCALE, Cutout, SurveyAlert
from stampflow.schemas.writer_schema import DecodedRecord, WriterSchema

STAMP_FIELDS = {
    "science": "cutoutScience",
    "template": "cutoutTemplate",
    "difference": "cutoutDifference",
}
MULTIBAND_FIELD = "cutoutMultiband"
ZTF_BANDS = {1: "g", 2: "r", 3: "i"}  # candidate.fid
JD_MINUS_MJD = 2400000.5


class MultibandCutout:
    """The optional ``cutoutMultiband`` field: one gzip FITS stamp per filter, same shape."""

    __slots__ = ("filters", "pixel_scale", "_data", "_stamps")

    def __init__(self, value: Any) -> None:
        try:
            self.filters = tuple(str(name) for name in value["filters"])
            self.pixel_scale = tuple(float(scale) for scale in value["pixelScale"])
            self._data = tuple(bytes(blob) for blob in value["stampData"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PacketError(
                "bad_stamp", f"malformed multiband record: {exc}", field=MULTIBAND_FIELD
            ) from exc
        if not self.filters or not (len(self.filters) == len(self.pixel_scale) == len(self._data)):
            raise PacketError(
                "bad_stamp",
                f"{len(self.filters)} filters, {len(self.pixel_scale)} pixel scales and "
                f"{len(self._data)} stamps: one of each per filter expected",
                field=MULTIBAND_FIELD,
            )
        self._stamps: np.ndarray | None = None

    def stamps(self) -> np.ndarray:
        """(n_filters, H, W) float32, decoded on first call and cached (read-only)."""
        if self._stamps is None:
            planes = [decode_stamp(blob, MULTIBAND_FIELD) for blob in self._data]
            shapes = {plane.shape for plane in planes}
            if len(shapes) != 1:
                raise PacketError(
                    "bad_stamp",
                    f"per-filter stamps differ in shape: {sorted(shapes)}",
                    field=MULTIBAND_FIELD,
                )
            stack = np.stack(planes)
            stack.flags.writeable = False
            self._stamps = stack
        return self._stamps

    def __repr__(self) -> str:
        return f"MultibandCutout(filters={self.filters}, pixel_scale={self.pixel_scale})"


class Alert(DecodedRecord):
    """A ZTF-style alert decoded from one Avro record (``DecodedRecord``'s fields); ``view``
    is the survey-neutral ``SurveyAlert``."""

    survey = "ztf"
    __slots__ = ("_stamps", "_multiband", "_multiband_read", "_view")

    def __init__(
        self,
        raw: bytes,
        record: dict[str, Any],
        writer_schema: WriterSchema,
        record_bytes: bytes | None = None,
        schema_id: int | None = None,
    ) -> None:
        super().__init__(raw, record, writer_schema, record_bytes, schema_id)
        self._stamps: dict[str, np.ndarray] = {}
        self._multiband: MultibandCutout | None = None
        self._multiband_read = False
        self._view: SurveyAlert | None = None

    @property
    def schema_version(self) -> str | None:
        """``schemavsn`` from the record (absent in early 2018 packets), else the schema's."""
        version = self.record.get("schemavsn")
        return str(version) if version else self.writer_schema.version

    @property
    def object_id(self) -> str:
        return self.record["objectId"]

    @property
    def candid(self) -> int:
        """Top-level ``candid``; broker re-written packets keep it in the candidate only."""
        candid = self.record.get("candid")
        return self.record["candidate"]["candid"] if candid is None else candid

    @property
    def alert_id(self) -> int:
        """The survey-neutral name of ``candid`` (``view.alert_id``)."""
        return self.candid

    @property
    def candidate(self) -> dict[str, Any]:
        return self.record["candidate"]

    @property
    def jd(self) -> float:
        return self.record["candidate"]["jd"]

    @property
    def fid(self) -> int:
        return self.record["candidate"]["fid"]

    @property
    def ra(self) -> float:
        return self.record["candidate"]["ra"]

    @property
    def dec(self) -> float:
        return self.record["candidate"]["dec"]

    @property
    def magpsf(self) -> float:
        return self.record["candidate"]["magpsf"]

    @property
    def prv_candidates(self) -> list[dict[str, Any]]:
        return self.record.get("prv_candidates") or []

    def has_stamp(self, which: str) -> bool:
        """Whether the packet carries the ``which`` (science|template|difference) stamp."""
        cutout = self.record.get(_stamp_field(which))
        return bool(cutout and cutout.get("stampData"))

    def stamp(self, which: str) -> np.ndarray:
        """The ``which`` stamp as float32 (its real shape, NaN kept), decoded once and cached.

        The array is read-only: every classifier sees the same one, so none may edit it in
        place (copy first).
        """
        cached = self._stamps.get(which)
        if cached is None:
            field = _stamp_field(which)
            cutout = self.record.get(field)
            if not cutout or not cutout.get("stampData"):
                raise PacketError("missing_field", "the packet carries no such stamp", field=field)
            cached = decode_stamp(cutout["stampData"], field)
            cached.flags.writeable = False
            self._stamps[which] = cached
        return cached

    @property
    def multiband(self) -> MultibandCutout | None:
        """The ``cutoutMultiband`` extension, or None when the packet has none."""
        if not self._multiband_read:
            value = self.record.get(MULTIBAND_FIELD)
            self._multiband = MultibandCutout(value) if value else None
            self._multiband_read = True
        return self._multiband

    @property
    def view(self) -> SurveyAlert:
        """The survey-neutral fields; its cutouts share this alert's decoded stamps."""
        if self._view is None:
            candidate = self.candidate
            cutouts = {
                which: Cutout(
                    which,
                    field,
                    bytes(self.record[field]["stampData"]),
                    default_pixel_scale=PIXEL_SCALE["ztf"],
                    pixels=lambda which=which: self.stamp(which),
                )
                for which, field in STAMP_FIELDS.items()
                if self.has_stamp(which)
            }
            self._view = SurveyAlert(
                survey="ztf",
                schema_version=self.schema_version,
                alert_id=self.candid,
                object_id=self.object_id,
                ra=self.ra,
                dec=self.dec,
                mjd=self.jd - JD_MINUS_MJD,
                band=ZTF_BANDS.get(self.fid),
                magnitude=self.magpsf,
                magnitude_err=candidate.get("sigmapsf"),
                flux=None,
                flux_err=None,
                cutouts=cutouts,
                record=self.record,
            )
        return self._view

    def __repr__(self) -> str:
        return f"Alert(objectId={self.object_id!r}, candid={self.candid})"


def _stamp_field(which: str) -> str:
    try:
        return STAMP_FIELDS[which]
    except KeyError:
        raise ValueError(f"stamp must be one of {sorted(STAMP_FIELDS)}, got {which!r}") from None
