"""Input checks shared by every builder: each names the setter and the bad value."""

from __future__ import annotations

import math
from typing import Any

from ._exceptions import InvalidRequestError


def _bad(setter: str, value: Any, expected: str) -> InvalidRequestError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidRequestError(f"{setter}({shown}): expected {expected}")


def number(setter: str, value: Any, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False) -> float | int:
    """A finite int/float within [lo, hi] (or (lo, hi] with lo_open)."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(setter, value, "a number")
    if not math.isfinite(value):
        raise _bad(setter, value, "a finite number")
    if lo is not None and (value <= lo if lo_open else value < lo):
        rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{']' if hi is not None else ')'}"
        raise _bad(setter, value, f"a number in {rng}")
    if hi is not None and value > hi:
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi}]"
        raise _bad(setter, value, f"a number in {rng}")
    return value


def integer(setter: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """An int (not bool) within [lo, hi]."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(setter, value, "an integer")
    if lo is not None and value < lo:
        raise _bad(setter, value, f"an integer >= {lo}")
    if hi is not None and value > hi:
        raise _bad(setter, value, f"an integer <= {hi}")
    return value


def boolean(setter: str, value: Any) -> bool:
    """A real bool."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if not isinstance(value, bool):
        raise _bad(setter, value, "True or False")
    return value


def string(setter: str, value: Any, *, empty_ok: bool = False) -> str:
    """A str (non-empty unless allowed)."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if not isinstance(value, str) or (not empty_ok and not value):
        raise _bad(setter, value, "a non-empty string" if not empty_ok else "a string")
    return value


def mapping(setter: str, value: Any) -> dict[str, Any]:
    """A dict with str keys."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _bad(setter, value, "a dict with string keys")
    return value


def str_or_str_list(setter: str, value: Any) -> str | list[str]:
    """A string or a list of strings."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return list(value)
    raise _bad(setter, value, "a string or a list of strings")


def int_list(setter: str, value: Any) -> list[int]:
    """A list of ints."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return list(value)
    raise _bad(setter, value, "a list of integers")


def messages(setter: str, value: Any) -> list[dict[str, Any]]:
    """A list of message dicts, each with a string ``role``."""
    if value is None:  # None removes the field
        return value  # type: ignore[return-value]
    if not isinstance(value, list):
        raise _bad(setter, value, "a list of message dicts such as [{'role': 'user', 'content': 'Hi'}]")
    for i, m in enumerate(value):
        if m.__class__ is dict:  # the common case, checked inline; anything else gets message()'s verdict
            role = m.get("role")
            content = m.get("content")
            if role and role.__class__ is str and (content is None or content.__class__ is str
                                                   or content.__class__ is list):
                continue
        message(f"{setter}[{i}]", m)
    return value


def message(setter: str, m: Any) -> dict[str, Any]:
    """One message dict with a string ``role`` and a str / list / None ``content``."""
    if not isinstance(m, dict):
        raise _bad(setter, m, "a message dict such as {'role': 'user', 'content': 'Hi'}")
    role = m.get("role")
    if not isinstance(role, str) or not role:
        raise InvalidRequestError(f"{setter}: message has no 'role' (got keys {sorted(map(str, m))})")
    content = m.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise InvalidRequestError(f"{setter}: 'content' must be a string, a list of parts or None, "
                                  f"got {type(content).__name__}")
    return m


def json_value(setter: str, value: Any) -> Any:
    """A JSON value: dicts with string keys, lists, strings, numbers, booleans, None."""
    def ok(x: Any, depth: int) -> bool:
        if x is None or isinstance(x, (str, int, float)):
            return True
        if depth > 200:
            return False
        if isinstance(x, dict):
            return all(isinstance(k, str) and ok(val, depth + 1) for k, val in x.items())
        if isinstance(x, (list, tuple)):
            return all(ok(val, depth + 1) for val in x)
        return False

    if not ok(value, 0):
        raise _bad(setter, value, "a JSON value (dicts with string keys, lists, strings, numbers, booleans, None)")
    check_finite(value, setter)
    return value


def check_finite(value: Any, path: str = "body") -> None:
    """Refuse NaN / +-Inf anywhere in a JSON-bound value (orjson would send them as null),
    and values nested too deeply to be JSON (or that contain themselves)."""
    try:
        ok = _all_finite((value,))
    except RecursionError:
        raise InvalidRequestError(f"{path} is nested too deeply (or contains itself) to be sent as JSON") from None
    if not ok:
        _raise_nonfinite(value, path)  # only now work out where


def _all_finite(container: Any) -> bool:
    for x in (container.values() if isinstance(container, dict) else container):
        cls = x.__class__
        if cls is str or cls is int or x is None or cls is bool:
            continue
        if cls is float:
            if x - x != 0.0:  # NaN or +-inf
                return False
        elif cls is dict or cls is list or cls is tuple or isinstance(x, (dict, list, tuple)):
            if not _all_finite(x):
                return False
        elif isinstance(x, float) and not math.isfinite(x):  # numpy.float64 and other float subclasses
            return False
    return True


def _raise_nonfinite(v: Any, p: str) -> None:
    """Find the first NaN / infinity in ``v`` and raise with its path."""
    if isinstance(v, float):
        if not math.isfinite(v):
            raise InvalidRequestError(f"{p} = {v!r}: NaN and infinity cannot be sent as JSON")
    elif isinstance(v, dict):
        for k, x in v.items():
            _raise_nonfinite(x, f"{p}.{k}")
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _raise_nonfinite(x, f"{p}[{i}]")


