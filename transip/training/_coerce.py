"""Type-checked values: a configuration value against its dataclass annotation, table-driven.

Strings from the command line are parsed; YAML values are checked. Scalars go through
:data:`_SCALARS`; ``Literal``, ``X | None`` and ``tuple[...]`` annotations recurse into them.
"""

from __future__ import annotations

import contextlib
import difflib
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration problem, reported before a run starts (names the key and the file)."""


def suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Mismatch(Exception):
    """A value that does not fit its annotation: what was expected, and the value that did not fit."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(expected)
        self.expected, self.value = expected, value


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in _TRUE + _FALSE:
        return v.lower() in _TRUE
    raise TypeError


def _to_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        return int(v)
    raise TypeError


def _to_float(v: Any) -> float:
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return float(v)
    raise TypeError


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise TypeError


#: annotation -> (what the error message says it expects, the parser; strings come from the command line)
_SCALARS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    bool: ("a boolean (true/false)", _to_bool),
    int: ("an integer", _to_int),
    float: ("a number", _to_float),
    str: ("a string", _to_str),
}


def _convert(value: Any, tp: Any) -> Any:
    """``value`` as the annotation ``tp`` wants it, or :class:`_Mismatch`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS:
        expected, parse = _SCALARS[tp]
        try:
            return parse(value)
        except (TypeError, ValueError):
            raise _Mismatch(expected, value) from None
    if origin is Literal:
        if value not in args:
            raise _Mismatch("one of " + ", ".join(repr(c) for c in args), value)
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        for arg in (a for a in args if a is not type(None)):
            with contextlib.suppress(_Mismatch):
                return _convert(value, arg)
        raise _Mismatch(" or ".join(str(a) for a in args), value)
    if origin is tuple:
        items = yaml.safe_load(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise _Mismatch(f"a list {tp}", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in items)
        if len(items) != len(args):
            raise _Mismatch(f"a list of {len(args)} values", value)
        return tuple(_convert(v, a) for v, a in zip(items, args, strict=True))
    if isinstance(value, tp):
        return value
    raise _Mismatch(str(tp), value)


def coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; strings from the command line are parsed."""
    try:
        return _convert(value, tp)
    except _Mismatch as e:
        raise ConfigError(f"{where}: {key} expects {e.expected}, got {e.value!r}") from None
