"""What the SDK knows about Python type annotations, shared by the JSON-schema generator
(``_schema``) and the typed conversion of decoded JSON (``_convert``): one place that says
what a sequence, a set, a mapping, a TypedDict or a pydantic model is."""

from __future__ import annotations

import collections.abc
import enum
import functools
import sys
import types
import typing
from typing import Any, Literal

__all__ = ["container_kind"]

_NoneType = type(None)

# The container types, by the JSON shape they take: one table for schema, matching and conversion.
_SEQUENCES: tuple[Any, ...] = (list, collections.abc.Sequence, collections.abc.MutableSequence,
                               collections.abc.Iterable, collections.abc.Collection)
_SETS: tuple[Any, ...] = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPPINGS: tuple[Any, ...] = (dict, collections.abc.Mapping, collections.abc.MutableMapping)

ContainerKind = Literal["sequence", "set", "tuple", "mapping"]


def container_kind(tp: Any) -> ContainerKind | None:
    """``list[int]`` / ``Sequence[str]`` -> "sequence", ``set[X]`` -> "set", ``tuple[...]`` ->
    "tuple", ``dict[str, X]`` / ``Mapping`` -> "mapping"; None for anything else."""
    origin = typing.get_origin(tp) or tp
    if origin is tuple:
        return "tuple"
    if origin in _SEQUENCES:
        return "sequence"
    if origin in _SETS:
        return "set"
    if origin in _MAPPINGS:
        return "mapping"
    return None


def _isclass(tp: Any) -> typing.TypeGuard[type]:
    """A real class (``list[int]`` passes ``isinstance(_, type)`` on 3.10 but breaks issubclass)."""
    return isinstance(tp, type) and not isinstance(tp, types.GenericAlias)


def _is_enum(tp: Any) -> bool:
    return _isclass(tp) and issubclass(tp, enum.Enum)


def _name(tp: Any) -> str:
    if _isclass(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "").replace("collections.abc.", "")


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _is_typeddict(tp: Any) -> bool:
    return _isclass(tp) and issubclass(tp, dict) and hasattr(tp, "__total__") and hasattr(
        tp, "__annotations__")


def _is_pydantic(tp: Any) -> bool:
    """A pydantic v2 model class (duck-typed: pydantic is not imported here)."""
    return _isclass(tp) and callable(getattr(tp, "model_json_schema", None))


def _special_forms(name: str) -> tuple[Any, ...]:
    mods = (typing, sys.modules.get("typing_extensions"))
    return tuple({id(f): f for m in mods if m is not None
                  for f in [getattr(m, name, None)] if f is not None}.values())


def _unalias(tp: Any) -> Any:
    """Look through NewType and ``type X = ...`` aliases."""
    while True:
        if hasattr(tp, "__supertype__"):  # NewType
            tp = tp.__supertype__
        elif type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            tp = tp.__value__
        else:
            return tp


def _annotated_description(tp: Any) -> str | None:
    if typing.get_origin(tp) is typing.Annotated:
        for meta in tp.__metadata__:
            if isinstance(meta, str):
                return meta
    return None


def _strip_annotated(tp: Any) -> Any:
    tp = _unalias(tp)
    while typing.get_origin(tp) is typing.Annotated:
        tp = _unalias(typing.get_args(tp)[0])
    return tp


def _accepts_none(tp: Any) -> bool:
    tp = _strip_annotated(tp)
    if tp is Any or tp is object or tp is None or tp is _NoneType:
        return True
    origin = typing.get_origin(tp)
    if _is_union(origin):
        return any(_accepts_none(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return None in typing.get_args(tp)
    return False


def _typeddict_key(hint: Any) -> tuple[Any, bool | None]:
    """Strip ``Required[...]`` / ``NotRequired[...]`` (also inside Annotated); (type, required?)."""
    origin = typing.get_origin(hint)
    if origin in _special_forms("Required"):
        return _typeddict_key(typing.get_args(hint)[0])[0], True
    if origin in _special_forms("NotRequired"):
        return _typeddict_key(typing.get_args(hint)[0])[0], False
    if origin is typing.Annotated:
        inner, flag = _typeddict_key(typing.get_args(hint)[0])
        if flag is not None:
            annotated: Any = typing.Annotated
            params = (inner, *hint.__metadata__)
            return annotated[params], flag
    return hint, None


@functools.lru_cache(maxsize=512)
def _class_hints(tp: type) -> dict[str, Any]:
    return typing.get_type_hints(tp, include_extras=True)
