"""Check the shape of a parsed JSON file before it is used, so a hand-edited or corrupt file is
one line naming the file, the field and the fix rather than a traceback deep in the code.

A shape is a Python type (`str`, `int`, `bool`, `dict`, `list`), ``NUMBER`` (an int or float,
not a bool, not NaN; infinities allowed), ``Optional(shape)`` (null or absent),
``ListOf(shape, length=None)``,
``MapOf(shape)`` (a dict whose values have `shape`) or a dict ``{field: shape}`` (those fields
required, others allowed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collapseguard.errors import CollapseguardError

NUMBER = "number"


@dataclass(frozen=True)
class Optional:
    shape: object


@dataclass(frozen=True)
class ListOf:
    shape: object
    length: int | None = None


@dataclass(frozen=True)
class MapOf:
    shape: object


def is_number(value) -> bool:
    """An int or float that is not a bool and not NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))


def is_version(value, version: int) -> bool:
    """A format version field: exactly the integer `version` (true is not 1)."""
    return type(value) is int and value == version


def _describe(shape) -> str:
    if shape is NUMBER:
        return "a number (not NaN)"
    if isinstance(shape, Optional):
        return f"null or {_describe(shape.shape)}"
    if isinstance(shape, ListOf):
        return "a list" if shape.length is None else f"a list of {shape.length}"
    if isinstance(shape, (MapOf, dict)):
        return "an object"
    return {str: "a string", int: "an integer", bool: "true or false"}.get(shape, f"a {shape.__name__}")


def _fits(value, shape) -> bool:
    if shape is NUMBER:
        return is_number(value)
    if shape is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(shape, ListOf):
        return isinstance(value, list) and shape.length in (None, len(value))
    if isinstance(shape, (MapOf, dict)):
        return isinstance(value, dict)
    return isinstance(value, shape)


def check_shape(value, shape, source, fix: str, field: str = "") -> None:
    """Raise CollapseguardError naming `source`, the field and `fix` where `value` has not `shape`."""
    if isinstance(shape, Optional):
        if value is not None:
            check_shape(value, shape.shape, source, fix, field)
        return
    if not _fits(value, shape):
        name = field or "the file"
        raise CollapseguardError(f"{source}: {name} must be {_describe(shape)}, got {str(value)[:60]!r}; {fix}")
    prefix = f"{field}." if field else ""
    if isinstance(shape, ListOf):
        for i, item in enumerate(value):
            check_shape(item, shape.shape, source, fix, f"{field}[{i}]")
    elif isinstance(shape, MapOf):
        for key, item in value.items():
            check_shape(item, shape.shape, source, fix, f"{prefix}{key}")
    elif isinstance(shape, dict):
        for key, sub in shape.items():
            if key not in value and not isinstance(sub, Optional):
                raise CollapseguardError(f"{source}: {prefix}{key} is missing; {fix}")
            check_shape(value.get(key), sub, source, fix, f"{prefix}{key}")
