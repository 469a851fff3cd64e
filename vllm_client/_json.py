"""JSON, exact: orjson on the fast path; the standard library where orjson would change or refuse
a value a server (or a model) may send.

orjson reads an integer beyond 64 bits as a float (``12345678901234567890123`` becomes
``1.2345678901234568e+22``) and refuses ``NaN`` / ``Infinity`` (and numbers beyond a double's
range) altogether. ``loads`` parses with orjson, then with the standard library (exact
integers; ``NaN`` / ``Infinity`` as floats) only when orjson refused, or when the text holds a
run of 19 or more digits (the only way to write such an integer). The check is one
``bytes.translate`` and a substring search: a fraction of orjson's own time. An integer of
more than 4300 digits (Python's limit) is refused, as invalid JSON.

``loads`` is for the model's own JSON (tool arguments, structured outputs) and batch files.
Response bodies go through ``loads_body``: orjson, and the standard library only when orjson
refused (``NaN`` / ``Infinity`` then become floats). The digit-run check costs about 7,000
instructions on a 600-byte chat body (a third of ``orjson.loads``, 8 % of a whole request), and
the servers' own fields (ids, counts, token ids, timestamps) never need it.

``dumps`` writes with orjson, and with the standard library when a value holds such an
integer (orjson refuses them).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["loads", "loads_body", "dumps", "has_long_number", "exact_loads"]

JSONDecodeError = orjson.JSONDecodeError
_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19
# an integer (not the digits of a fraction or an exponent) of 19 digits or more
_LONG_INT = re.compile(r"(?<![0-9.eE])-?[0-9]{19,}(?![0-9.eE])")
_LONG_INT_B = re.compile(rb"(?<![0-9.eE])-?[0-9]{19,}(?![0-9.eE])")


def has_long_number(data: bytes | str) -> bool:
    """Whether ``data`` holds an integer of 19 digits or more (one orjson may not keep exact)."""
    if isinstance(data, bytes):
        if data.translate(_ZEROS).find(_RUN) < 0:
            return False
        return _LONG_INT_B.search(data) is not None
    return _LONG_INT.search(data) is not None


def exact_loads(data: bytes | bytearray | memoryview | str, error: JSONDecodeError | None = None) -> Any:
    """Parse with the standard library: integers exact, ``NaN`` / ``Infinity`` as floats.
    Raises ``error`` (orjson's, when it refused the text) or a ``JSONDecodeError`` when the
    standard library refuses it too."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # (JSONDecodeError, UnicodeDecodeError, > 4300 digits)
        if error is not None:
            raise error from None
        doc = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        raise JSONDecodeError(f"{e}", doc, getattr(e, "pos", 0)) from None


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads``, but exact: see the module's docstring. Raises ``orjson.JSONDecodeError``."""
    try:
        value = _orjson_loads(data)
    except JSONDecodeError as e:
        return exact_loads(data, e)
    if has_long_number(data if isinstance(data, (bytes, str)) else bytes(data)):
        return exact_loads(data)
    return value


def loads_body(data: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads``; what orjson refuses (``NaN``, ``Infinity``, a number beyond a double)
    read by the standard library. Raises ``orjson.JSONDecodeError``."""
    try:
        return _orjson_loads(data)
    except JSONDecodeError as e:
        return exact_loads(data, e)


def _stdlib_dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise orjson.JSONEncodeError(str(e)) from None


def dumps(value: Any) -> bytes:
    """``orjson.dumps``; an integer beyond 64 bits (which orjson refuses) written exactly by
    the standard library. Raises ``orjson.JSONEncodeError`` (a ``TypeError``)."""
    try:
        return _orjson_dumps(value)
    except orjson.JSONEncodeError as e:
        if "64-bit" not in str(e):
            raise
    return _stdlib_dumps(value)
