"""Walks over Avro schema JSON: the named types a schema defines, and default repair.

ZTF schemas before 3.5 declare unions such as ``["float", "null"]`` with default ``null``,
and 4.01 ``tooflag`` as ``["null", "int"]`` with default ``0``; the Avro spec says a union's
default must match its first branch, and strict readers (the ``avro`` package) refuse such
schemas. Published output must be readable by any implementation, so invalid defaults are
dropped. Defaults only matter when a reader resolves a field the writer lacks; dropping them
leaves the binary encoding unchanged, so the encoder can copy the input record's bytes.
"""

from __future__ import annotations

from typing import Any

NAMED = ("record", "error", "enum", "fixed")
PRIMITIVE_DEFAULTS: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "string": (str,),
    "bytes": (str,),
    "enum": (str,),
    "fixed": (str,),
    "record": (dict,),
    "map": (dict,),
    "array": (list,),
}


def defined_names(schema: Any, namespace: str = "") -> set[str]:
    """Full names of every named type defined (not merely referenced) in ``schema``."""
    names: set[str] = set()
    if isinstance(schema, list):
        for branch in schema:
            names |= defined_names(branch, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED:
            name = str(schema.get("name", ""))
            if "." in name:
                fullname = name
            else:
                space = schema.get("namespace", namespace) or ""
                fullname = f"{space}.{name}" if space else name
            names.add(fullname)
            namespace = fullname.rpartition(".")[0]
        if kind in ("record", "error"):
            for field in schema.get("fields", []):
                names |= defined_names(field.get("type"), namespace)
        elif kind == "array":
            names |= defined_names(schema.get("items"), namespace)
        elif kind == "map":
            names |= defined_names(schema.get("values"), namespace)
        elif isinstance(kind, dict | list):
            names |= defined_names(kind, namespace)
    return names


def repair_defaults(schema: Any) -> None:
    """In place: drop every field default that does not match the field's (first) type."""
    if isinstance(schema, list):
        for branch in schema:
            repair_defaults(branch)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error"):
        for field in schema.get("fields", []):
            field_type = field.get("type")
            if "default" in field:
                first = field_type[0] if isinstance(field_type, list) and field_type else field_type
                if not _accepts(first, field["default"]):
                    del field["default"]
            repair_defaults(field_type)
    elif kind == "array":
        repair_defaults(schema.get("items"))
    elif kind == "map":
        repair_defaults(schema.get("values"))
    elif isinstance(kind, dict | list):
        repair_defaults(kind)


def _accepts(branch: Any, default: Any) -> bool:
    kind = branch.get("type") if isinstance(branch, dict) else branch
    allowed = PRIMITIVE_DEFAULTS.get(kind) if isinstance(kind, str) else None
    if allowed is None:  # a reference to a named type: only a record/enum/fixed default fits
        return isinstance(default, dict | str)
    if bool in allowed:
        return isinstance(default, bool)
    return isinstance(default, allowed) and not isinstance(default, bool)
