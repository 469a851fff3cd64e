"""Typed Python functions as OpenAI tools: ``tool(fn)`` (schema from the signature and the
docstring, by ``_schema``), ``ToolSet`` (the tools of one request: schemas to send, functions
to run, arguments converted by ``_convert``), and the formatting of a call's result or error.
All pure: the clients run the calls (``_conversation.call_tool``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from . import _json
from ._annotations import _accepts_none, _annotated_description
from ._convert import _convert, _json_kind
from ._exceptions import ToolSchemaError
from ._schema import _Converter, _describe, _inspect_function, _strictify, parse_docstring

__all__ = [
    "ToolSet",
    "format_exception",
    "format_result",
    "is_async_tool",
    "parse_docstring",
    "tool",
]

_MISSING: Any = object()


class _FunctionTool(dict[str, Any]):
    """The dict ``tool(fn)`` returns: a plain tool dict that also remembers ``fn``, so that
    ``ToolSet([tool(fn, strict=True)])`` can still run it."""

    fn: Callable[..., Any]


def tool(fn: Callable[..., Any] | Mapping[str, Any], *, strict: bool = False, name: str | None = None,
         description: str | None = None) -> dict[str, Any]:
    """The OpenAI tool dict for a typed function (or an existing tool dict, checked and returned).

    Name: ``fn.__name__``; description: the docstring's first paragraph; parameter descriptions
    from ``Annotated[X, "text"]`` or Google / NumPy / reST docstring sections; ``required``: the
    parameters without defaults (always present, signature order). Every parameter needs an
    annotation (``Any`` for anything); ``*args`` / ``**kwargs`` are refused. ``strict=True`` gives
    an OpenAI strict-mode schema (all objects closed, every property required, optional ones
    nullable; ``dict[str, X]`` maps keep their value schema). Raises ``ToolSchemaError``.
    """
    if isinstance(fn, Mapping):
        f = fn.get("function")
        if fn.get("type") != "function" or not isinstance(f, Mapping) or not isinstance(f.get("name"), str) \
                or not f["name"]:
            raise ToolSchemaError("a tool dict needs {'type': 'function', 'function': {'name': ..., "
                                  f"'parameters': {{...}}}}, got {dict(fn)!r:.200}")
        if "parameters" in f and not isinstance(f["parameters"], Mapping):
            raise ToolSchemaError(f"tool {f['name']!r}: 'parameters' must be a JSON schema object")
        if strict or name is not None or description is not None:
            raise ToolSchemaError(f"tool {f['name']!r}: strict= / name= / description= apply to functions, "
                                  "not to tool dicts")
        return fn if isinstance(fn, dict) else dict(fn)
    if not callable(fn):
        raise ToolSchemaError(f"tool({fn!r:.100}): expected a function or a tool dict")
    fname = name if name is not None else getattr(fn, "__name__", None)
    if not isinstance(fname, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fname):
        raise ToolSchemaError(f"tool({fn!r:.100}): a tool needs a name of 1-64 letters, digits, '_' or '-' "
                              f"(got {fname!r}); pass name=...")
    where = f"tool {fname!r}"
    sig, hints = _inspect_function(fn, where)
    summary, param_docs = parse_docstring(inspect.getdoc(fn))
    conv = _Converter(where)
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, p in sig.parameters.items():
        hint = hints[pname]
        conv.where = f"{where}, parameter {pname!r}"
        s = conv.schema(hint)
        text = param_docs.get(pname)
        if text and _annotated_description(hint) is None:
            s = _describe(s, text)
        props[pname] = s
        if p.default is inspect.Parameter.empty:
            required.append(pname)
    params: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if conv.defs:
        params["$defs"] = conv.defs
    if strict:
        params = _strictify(params, conv.defs)
    function: dict[str, Any] = {"name": fname}
    desc = description if description is not None else summary
    if desc:
        function["description"] = desc
    function["parameters"] = params
    if strict:
        function["strict"] = True
    out = _FunctionTool(type="function", function=function)
    out.fn = fn
    return out


# -- running calls -----------------------------------------------------------------------------

def is_async_tool(fn: Any) -> bool:
    """True for ``async def`` functions (also partials of them) and objects whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isroutine(fn) or isinstance(fn, (type, functools.partial)):
        return False
    return callable(fn) and inspect.iscoroutinefunction(type(fn).__call__)


@dataclasses.dataclass(frozen=True)
class _Runnable:
    fn: Callable[..., Any]
    sig: inspect.Signature
    hints: dict[str, Any]


class ToolSet:
    """Tools for one request: the schemas to send (``schemas``) and the Python functions to run
    (``functions``, by name; tool dicts given as such have none)."""

    def __init__(self, tools: Iterable[Callable[..., Any] | Mapping[str, Any]]) -> None:
        if isinstance(tools, (str, bytes, Mapping)) or callable(tools) or not isinstance(tools, Iterable):
            raise ToolSchemaError(f"ToolSet({tools!r:.100}): expected a list of functions and/or tool dicts")
        self.schemas: list[dict[str, Any]] = []
        self.functions: dict[str, Callable[..., Any]] = {}
        self._runnable: dict[str, _Runnable] = {}
        for t in tools:
            schema = tool(t)
            name = schema["function"]["name"]
            if any(s["function"]["name"] == name for s in self.schemas):
                raise ToolSchemaError(f"two tools are named {name!r}")
            self.schemas.append(dict(schema))  # a plain dict
            fn = t if not isinstance(t, Mapping) else getattr(t, "fn", None)
            if fn is not None:
                self.functions[name] = fn

    def __repr__(self) -> str:
        return f"ToolSet({[s['function']['name'] for s in self.schemas]!r})"

    def _lookup(self, name: str) -> _Runnable | None:
        fn = self.functions.get(name)
        if fn is None:
            return None
        r = self._runnable.get(name)
        if r is None or r.fn is not fn:
            sig, hints = _inspect_function(fn, f"tool {name!r}")
            r = self._runnable[name] = _Runnable(fn, sig, hints)
        return r

    def prepare(self, name: str, arguments: str) -> Callable[[], Any] | str:
        """A zero-argument callable running the tool with the decoded, converted arguments,
        or an ``"error: ..."`` text for the model (unknown tool, bad JSON, wrong arguments).

        ``""`` counts as ``{}``. Calling the callable may return an awaitable (``async def``
        tools); the caller awaits it. A ``null`` for a parameter with a default that does not
        accept None (what strict mode sends for "not given") means the default.
        """
        try:
            r = self._lookup(name)
        except ToolSchemaError as e:
            return f"error: tool {name!r} cannot be run: {e}"
        if r is None:
            known = ", ".join(self.functions) or "none"
            if any(s["function"]["name"] == name for s in self.schemas):
                return f"error: tool {name!r} has no Python function to run here; the tools you can call are: {known}"
            return f"error: unknown tool {name!r}; the tools you can call are: {known}"
        if isinstance(arguments, Mapping):
            args: Any = dict(arguments)
        else:
            text = arguments.decode("utf-8", "replace") if isinstance(arguments, (bytes, bytearray)) else (arguments or "")
            try:
                args = _json.loads(text) if text.strip() else {}
            except orjson.JSONDecodeError as e:
                return f"error: the arguments for {name!r} are not valid JSON ({e}); send a JSON object"
        if not isinstance(args, dict):
            return f"error: the arguments for {name!r} must be a JSON object, got {_json_kind(args)}"
        params = r.sig.parameters
        unexpected = [k for k in args if k not in params]
        if unexpected:
            return (f"error: {name!r} got unexpected argument(s) {', '.join(map(repr, unexpected))}; "
                    f"its parameters are: {', '.join(params) or 'none'}")
        values: dict[str, Any] = {}
        for k, v in args.items():
            hint = r.hints.get(k, Any)
            if v is None and not _accepts_none(hint):
                if params[k].default is not inspect.Parameter.empty:
                    continue  # null for "not given" (strict mode): the default
                return f"error: invalid value for argument {k!r} of {name!r}: null is not allowed"
            try:
                values[k] = _convert(v, hint)
            except Exception as e:
                return f"error: invalid value for argument {k!r} of {name!r}: {e}"
        missing = [p for p, prm in params.items() if prm.default is inspect.Parameter.empty and p not in values]
        if missing:
            return f"error: {name!r} is missing required argument(s) {', '.join(map(repr, missing))}"
        positional: list[Any] = []
        pending: list[Any] = []  # defaults of skipped positional-only parameters
        for p, prm in params.items():
            if prm.kind is not prm.POSITIONAL_ONLY:
                break
            if p in values:
                positional += pending
                positional.append(values.pop(p))
                pending = []
            else:
                pending.append(prm.default)
        return functools.partial(r.fn, *positional, **values)


# -- results -----------------------------------------------------------------------------------

def _known_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        try:
            return dump(mode="json")
        except TypeError:
            return dump()
    if type(obj).__name__ == "Decimal":
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _lenient_default(obj: Any) -> Any:
    try:
        return _known_default(obj)
    except TypeError:
        return str(obj)


_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def format_result(value: Any) -> str:
    """A tool's result as the tool message text: a str unchanged, anything else JSON-encoded
    (dataclasses, Enums, sets, pydantic models included); a value that is not serialisable
    becomes ``str(value)`` (inside a dict / list: that item becomes its str)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=_known_default, option=_DUMP_OPTIONS).decode()
    except TypeError:
        pass
    if isinstance(value, (dict, list, tuple)):
        try:
            return orjson.dumps(value, default=_lenient_default, option=_DUMP_OPTIONS).decode()
        except TypeError:
            pass
        try:  # an integer beyond 64 bits (orjson refuses it): written exactly
            return _json.dumps(value).decode()
        except TypeError:
            pass
    return str(value)


def format_exception(exc: BaseException) -> str:
    """An exception raised by a tool as the tool message text: ``"error: <ExcType>: <message>"``."""
    message = str(exc)
    return f"error: {type(exc).__name__}: {message}" if message else f"error: {type(exc).__name__}"
