"""Frozen dataclasses to and from JSON-able dicts, with errors that name the key.

Specs, serving settings and training configs are frozen dataclasses; manifests and
``--set key=value`` overrides are plain dicts. ``from_dict`` checks every key against the
dataclass's fields and types (an int where a float is expected is fine, a bool or a string
is not) and raises ``TypedError`` with the dotted path of the first bad key.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class TypedError(ValueError):
    """A value that does not fit its dataclass; ``key`` is the dotted path to it."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}" if key else why)
        self.key = key
        self.why = why


def to_dict(obj: Any) -> Any:
    """A dataclass (recursively) as plain dicts, lists and scalars."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys take the field's default."""
    if not isinstance(data, Mapping):
        raise TypedError(where, f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise TypedError(
                _join(where, str(key)), f"unknown key (known: {', '.join(sorted(names))})"
            )
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = _join(where, f.name)
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TypedError(key, "missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TypedError(where, str(exc)) from exc


def with_overrides(obj: T, assignments: list[str]) -> T:
    """A copy of dataclass ``obj`` with ``key.sub=value`` assignments (values read as JSON,
    else as strings), validated like ``from_dict``."""
    data = to_dict(obj)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise TypedError(assignment, "an override is key=value (e.g. n_train=2000)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise TypedError(".".join(parts[: i + 1]), "is not a section")
            node = node[part]
        if parts[-1] not in node:
            raise TypedError(key, f"unknown key (known: {', '.join(sorted(node))})")
        node[parts[-1]] = value
    return from_dict(type(obj), data)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except TypedError as exc:
                errors.append(exc.why)
        raise TypedError(where, "; ".join(errors))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise TypedError(where, f"must be a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise TypedError(where, f"must have {len(args)} items, got {len(value)}")
        return tuple(
            _coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise TypedError(where, f"must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypedError(where, f"must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypedError(where, f"must be an integer, got {value!r}")
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise TypedError(where, f"must be a {tp.__name__}, got {value!r}")
        return value
    raise TypedError(where, f"unsupported field type {tp!r}")
