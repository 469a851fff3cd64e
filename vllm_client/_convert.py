"""Decoded JSON -> the declared Python types, validated: how tool arguments reach a Python
function and how structured output becomes a typed object.

Scalars are checked (a string where an ``int`` is declared fails; ``3.0`` is accepted as the
int 3, an int as a float), Literal and Enum values must be known, objects for dataclasses and
TypedDicts may have neither unknown nor missing required keys, ``null`` only where the type
accepts None (or, in an object, for a field with a default: strict mode's "not given").
Containers (list, tuple, set, dict[str, X]) and unions are followed; pydantic models are
validated by pydantic. Every problem found is reported, with its location, in one
``ConversionError``.
"""

from __future__ import annotations

import dataclasses
import enum
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
    _name,
    _NoneType,
    _strip_annotated,
    _typeddict_key,
    container_kind,
)

__all__ = ["_convert", "_matches", "_json_kind", "ConversionError"]

_BAD: Any = object()  # "did not convert" (the reason is in the error list)
Loc = tuple[Any, ...]


class ConversionError(ValueError):
    """A decoded JSON value that is not of the declared type. ``errors``: one dict per problem,
    ``{"loc": [key or index, ...], "msg": "..."}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(_describe(e) for e in errors[:10])
                         + (f"; and {len(errors) - 10} more" if len(errors) > 10 else ""))


def _describe(error: dict[str, Any]) -> str:
    loc = error.get("loc") or ()
    where = ".".join(str(x) for x in loc)
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


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
        return any(_literal_equal(value, a) for a in typing.get_args(tp))
    if _is_union(origin):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if _is_enum(tp):
        return any(_literal_equal(value, m) for m in tp) or (isinstance(value, str) and value in tp.__members__)
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


def _literal_equal(value: Any, lit: Any) -> bool:
    """``value`` (decoded JSON) is the Literal / Enum value ``lit``: equal and of the same JSON
    kind (``True`` is not ``1``, ``1`` is not ``"1"``)."""
    if isinstance(lit, enum.Enum):
        lit = lit.value
    return bool(value == lit and isinstance(value, bool) == isinstance(lit, bool))


def _convert(value: Any, tp: Any) -> Any:
    """A decoded JSON value -> the declared Python type (Enum members, dataclass / TypedDict /
    pydantic instances, tuples, sets; nested), validated; raises ``ConversionError``."""
    errors: list[dict[str, Any]] = []
    out = _conv(value, tp, (), errors)
    if errors:
        raise ConversionError(errors)
    return out


def _fail(errors: list[dict[str, Any]], loc: Loc, msg: str) -> Any:
    errors.append({"loc": list(loc), "msg": msg})
    return _BAD


def _expected(errors: list[dict[str, Any]], loc: Loc, what: str, value: Any) -> Any:
    kind = _json_kind(value)
    shown = kind if isinstance(value, (dict, list)) else f"{kind} {value!r:.60}"
    return _fail(errors, loc, f"expected {what}, got {shown}")


def _conv(value: Any, tp: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    tp = _strip_annotated(tp)
    if tp is Any or tp is object:
        return value
    if value is None:
        if _accepts_none(tp):
            return None
        return _fail(errors, loc, f"expected {_name(tp)}, got null")
    if tp is None or tp is _NoneType:
        return _expected(errors, loc, "null", value)
    cls = value.__class__
    if tp is str:
        return value if cls is str or isinstance(value, str) else _expected(errors, loc, "a string", value)
    if tp is int:
        if cls is int or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _expected(errors, loc, "an integer", value)
    if tp is float:
        if cls is float:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return _expected(errors, loc, "a number", value)
    if tp is bool:
        return value if isinstance(value, bool) else _expected(errors, loc, "a boolean", value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(origin):
        arms = [a for a in args if a is not _NoneType and _matches(value, a)]
        if not arms:
            return _expected(errors, loc, _name(tp), value)
        first: list[dict[str, Any]] | None = None
        for a in arms:
            errs: list[dict[str, Any]] = []
            out = _conv(value, a, loc, errs)
            if not errs:
                return out
            first = first if first is not None else errs
        errors.extend(first or ())
        return _BAD
    if origin is typing.Literal:
        for a in args:
            if _literal_equal(value, a):
                return a
        return _fail(errors, loc, f"{value!r:.60} is not one of "
                                  f"{[a.value if isinstance(a, enum.Enum) else a for a in args]!r}")
    if _is_enum(tp):
        for m in tp:
            if _literal_equal(value, m):
                return m
        if isinstance(value, str) and value in tp.__members__:
            return tp[value]
        return _fail(errors, loc, f"{value!r:.60} is not one of {[m.value for m in tp]!r}")
    if _isclass(tp) and dataclasses.is_dataclass(tp):
        return _dataclass(value, tp, loc, errors)
    if _is_typeddict(tp):
        return _typeddict(value, tp, loc, errors)
    if _is_pydantic(tp) and callable(getattr(tp, "model_validate", None)):
        return _pydantic(value, tp, loc, errors)
    kind = container_kind(tp)
    if kind is None:
        return value  # a type the schema converter would have refused: passed through
    if kind == "mapping":
        if not isinstance(value, dict):
            return _expected(errors, loc, "an object", value)
        if len(args) != 2:
            return value
        vt = args[1]
        out_map = {k: _conv(v, vt, (*loc, k), errors) for k, v in value.items()}
        return _BAD if _BAD in out_map.values() else out_map
    if not isinstance(value, list):
        return _expected(errors, loc, "an array", value)
    if kind == "tuple":
        if len(args) == 2 and args[1] is Ellipsis:
            items = [_conv(v, args[0], (*loc, i), errors) for i, v in enumerate(value)]
        elif not args or args == ((),):
            items = list(value)
        else:
            if len(value) != len(args):
                return _fail(errors, loc, f"expected {len(args)} items, got {len(value)}")
            items = [_conv(v, a, (*loc, i), errors) for i, (v, a) in enumerate(zip(value, args, strict=True))]
        return _BAD if _BAD in items else tuple(items)
    item = args[0] if args else Any
    items = [_conv(v, item, (*loc, i), errors) for i, v in enumerate(value)]
    if any(x is _BAD for x in items):
        return _BAD
    if kind == "set":
        try:
            return frozenset(items) if (origin or tp) is frozenset else set(items)
        except TypeError as e:  # unhashable items
            return _fail(errors, loc, f"cannot be a set: {e}")
    return items


def _dataclass(value: Any, tp: type, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if not isinstance(value, dict):
        return _expected(errors, loc, f"an object for {tp.__name__}", value)
    hints = _class_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    kwargs: dict[str, Any] = {}
    bad = False
    for k, v in value.items():
        f = fields.get(k)
        if f is None:
            _fail(errors, (*loc, k), f"{tp.__name__} has no field {k!r} (its fields: {', '.join(fields)})")
            bad = True
            continue
        hint = hints.get(k, Any)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if v is None and has_default and not _accepts_none(hint):
            continue  # strict mode sends null for "not given"
        out = _conv(v, hint, (*loc, k), errors)
        if out is _BAD:
            bad = True
        kwargs[k] = out
    missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        _fail(errors, loc, f"{tp.__name__} is missing the field(s) {', '.join(map(repr, missing))}")
        bad = True
    if bad:
        return _BAD
    try:
        return tp(**kwargs)
    except Exception as e:  # __post_init__ checks
        return _fail(errors, loc, f"{tp.__name__}(...) raised {type(e).__name__}: {e}")


def _typeddict(value: Any, tp: type, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if not isinstance(value, dict):
        return _expected(errors, loc, f"an object for {tp.__name__}", value)
    hints = _class_hints(tp)
    required_keys = getattr(tp, "__required_keys__", None)
    total = bool(getattr(tp, "__total__", True))
    out: dict[str, Any] = {}
    bad = False
    for k, v in value.items():
        if k not in hints:
            _fail(errors, (*loc, k), f"{tp.__name__} has no key {k!r} (its keys: {', '.join(hints)})")
            bad = True
            continue
        hint, flag = _typeddict_key(hints[k])
        required = flag if flag is not None else (k in required_keys if required_keys is not None else total)
        if v is None and not required and not _accepts_none(hint):
            continue  # null for "not given"
        got = _conv(v, hint, (*loc, k), errors)
        if got is _BAD:
            bad = True
        out[k] = got
    missing = []
    for k, hint in hints.items():
        _, flag = _typeddict_key(hint)
        required = flag if flag is not None else (k in required_keys if required_keys is not None else total)
        if required and k not in value:
            missing.append(k)
    if missing:
        _fail(errors, loc, f"{tp.__name__} is missing the key(s) {', '.join(map(repr, missing))}")
        bad = True
    return _BAD if bad else out


def _pydantic(value: Any, tp: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    try:
        return tp.model_validate(value)
    except Exception as e:
        found = getattr(e, "errors", None)
        if callable(found):
            for err in found(include_url=False):
                errors.append({**err, "loc": [*loc, *err.get("loc", ())]})
            return _BAD
        return _fail(errors, loc, f"{type(e).__name__}: {e}")
