"""The Avro schemas stampflow writes, loaded from the ``.avsc`` files beside this module."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from typing import Any

INFO_NAME = "stampflow.StampflowInfo"


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads(files("stampflow.schemas").joinpath(name).read_text(encoding="utf-8"))


def input_alert_schema() -> dict[str, Any]:
    """``alert.avsc``: ZTF 4.02 plus the optional ``cutoutMultiband`` record (a fresh copy)."""
    return copy.deepcopy(_load("alert.avsc"))


def stampflow_info_schema() -> dict[str, Any]:
    """``annotation.avsc``: the ``stampflow`` block added to every output record."""
    return copy.deepcopy(_load("annotation.avsc"))


def slim_schema() -> dict[str, Any]:
    """``slim.avsc`` with its reference to the ``stampflow`` block expanded in place."""
    schema = copy.deepcopy(_load("slim.avsc"))
    for field in schema["fields"]:
        if field["type"] == INFO_NAME:
            field["type"] = stampflow_info_schema()
    return schema
