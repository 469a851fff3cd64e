"""Decoded JSON -> the declared Python types (Enum members, dataclass / TypedDict / pydantic
instances, tuples, sets; nested): how tool arguments reach a Python function."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from ._annotations import (
    _accepts_none,
    _class_hints,
    _is_enum,
    _is_pydantic,
    _is_typeddict,
    _is_union,
    _isclass,
    _NoneType,
    _strip_annotated,
    _typeddict_key,
    container_kind,
)

__all__ = ["_convert", "_matches", "_json_kind"]


def _json_kind(value: Any) -> str:
    for py, js in ((bool, "boolean"), (str, "string"), (int, "number"), (float, "number"),
                   (list, "array"), (dict, "object"), (_NoneType, "null")):
        if isinstance(value, py):
            return js
    return type(value).__name__


def _matches(value: Any, tp: Any) -> bool:
    """Whether a decoded JSON value plausibly belongs to the (non-None) union arm ``tp``."""
    tp = _strip_annotated(tp)
    if tp is Any or tp is object:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if _is_union(origin):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if _is_enum(tp):
        return any(m.value == value for m in tp) or (isinstance(value, str) and value in tp.__members__)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    kind = container_kind(tp)
    if isinstance(value, list):
        return kind in ("sequence", "set", "tuple")
    if isinstance(value, dict):
        return kind == "mapping" or (
            _isclass(tp) and (dataclasses.is_dataclass(tp) or _is_typeddict(tp) or _is_pydantic(tp)))
    return False


def _convert(value: Any, tp: Any) -> Any:
    """A decoded JSON value -> the declared Python type, where that is what the function expects
    (Enum members, dataclass / pydantic instances, tuples, sets; nested). Raises on a mismatch."""
    tp = _strip_annotated(tp)
    if value is None or tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(origin):
        arms = [a for a in args if a is not _NoneType and _matches(value, a)]
        error: Exception | None = None
        for a in arms:
            try:
                return _convert(value, a)
            except Exception as e:
                error = error or e
        if error is not None:
            raise error
        return value
    if _is_enum(tp):
        try:
            return tp(value)
        except ValueError:
            if isinstance(value, str) and value in tp.__members__:
                return tp[value]
            raise ValueError(f"{value!r} is not one of {[m.value for m in tp]}") from None
    if _isclass(tp) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp.__name__}, got {_json_kind(value)}")
        hints = _class_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        kwargs: dict[str, Any] = {}
        for k, v in value.items():
            f = fields.get(k)
            if f is None:
                raise TypeError(f"{tp.__name__} has no field {k!r} (its fields: {', '.join(fields)})")
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if v is None and has_default and not _accepts_none(hints.get(k, Any)):
                continue  # strict mode sends null for "not given"
            kwargs[k] = _convert(v, hints.get(k, Any))
        missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise TypeError(f"{tp.__name__} is missing the field(s) {', '.join(map(repr, missing))}")
        return tp(**kwargs)
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp.__name__}, got {_json_kind(value)}")
        hints = _class_hints(tp)
        out: dict[str, Any] = {}
        for k, v in value.items():
            hint, flag = _typeddict_key(hints.get(k, Any))
            if v is None and flag is not True and not _accepts_none(hint) and (
                    flag is False or k not in getattr(tp, "__required_keys__", ())):
                continue
            out[k] = _convert(v, hint)
        return out
    if _is_pydantic(tp) and callable(getattr(tp, "model_validate", None)):
        return tp.model_validate(value)
    if isinstance(value, list):
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0]) for v in value)
            if not args:
                return tuple(value)
            if len(value) != len(args):
                raise ValueError(f"expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
        if tp is tuple:
            return tuple(value)
        item = args[0] if args else Any
        if container_kind(tp) == "set":
            if origin is frozenset or tp is frozenset:
                return frozenset(_convert(v, item) for v in value)
            return {_convert(v, item) for v in value}
        if args:
            return [_convert(v, item) for v in value]
        return value
    if isinstance(value, dict) and len(args) == 2 and container_kind(tp) == "mapping":
        return {k: _convert(v, args[1]) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
