"""Typed Python functions as OpenAI tools: JSON schema from signatures and docstrings,
and the pure helpers the tool loop uses to run a call and format its result.

Supported annotations: str, int, float, bool, None / Optional / ``X | None``, list / Sequence,
dict[str, X], tuple, set, Literal, Enum, dataclasses, TypedDict, ``Annotated[X, "description"]``,
Union, Any, and pydantic models when pydantic happens to be installed (not a dependency).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from ._exceptions import InvalidRequestError

__all__ = ["tool", "ToolSet", "ToolSchemaError", "format_result", "format_exception", "is_async_tool"]

_NoneType = type(None)


class ToolSchemaError(InvalidRequestError, TypeError):
    """A function cannot be turned into a tool (an unsupported or missing annotation, ``*args``...)."""


# -- docstrings --------------------------------------------------------------------------------

_GOOGLE_HEAD = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_SECTION_HEAD = re.compile(r"^\s*(Returns?|Raises|Yields|Examples?|Notes?|See Also|Attributes)\s*:?\s*$")
_NUMPY_RULE = re.compile(r"^\s*-{3,}\s*$")
_REST_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """(summary, {parameter: description}) from a Google, NumPy or reST docstring."""
    if not doc:
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _GOOGLE_HEAD.match(line) or _REST_PARAM.match(line) or line.strip().startswith(":"):
            break
        if _NUMPY_RULE.match(line):
            summary_lines = summary_lines[:-1]
            break
        summary_lines.append(line.strip())
    summary = " ".join(summary_lines) or None
    params: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _REST_PARAM.match(line)
        if m:
            name, text = m.group(1), [m.group(2).strip()]
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and not lines[i].strip().startswith(":"):
                text.append(lines[i].strip())
                i += 1
            params[name] = " ".join(t for t in text if t)
            continue
        if _GOOGLE_HEAD.match(line):  # Google: "name (type): text" indented under "Args:"
            base = len(line) - len(line.lstrip())
            i += 1
            current: str | None = None
            item_indent: int | None = None
            while i < len(lines):
                ln = lines[i]
                if not ln.strip():
                    i += 1
                    continue
                indent = len(ln) - len(ln.lstrip())
                if indent <= base:
                    break
                if item_indent is None:
                    item_indent = indent
                if indent == item_indent:
                    m2 = re.match(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", ln)
                    if m2:
                        current = m2.group(1)
                        params[current] = m2.group(2).strip()
                elif current is not None:
                    params[current] = (params[current] + " " + ln.strip()).strip()
                i += 1
            continue
        if line.strip() in ("Parameters", "Arguments", "Args") and i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1]):
            i += 2  # NumPy: "name : type" then indented text
            current = None
            while i < len(lines):
                ln = lines[i]
                if i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1]):
                    break  # the next section
                if ln.strip() and not ln.startswith((" ", "\t")):
                    current = ln.split(":", 1)[0].strip()
                    params[current] = ""
                elif ln.strip() and current is not None:
                    params[current] = (params[current] + " " + ln.strip()).strip()
                i += 1
            continue
        i += 1
    return summary, params


# -- annotations -> JSON schema ----------------------------------------------------------------

def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__annotations__") and hasattr(
        tp, "__total__")


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and callable(getattr(tp, "model_json_schema", None)) and "pydantic" in sys.modules


class _Converter:
    def __init__(self, where: str) -> None:
        self.where = where
        self.stack: list[Any] = []

    def fail(self, tp: Any, why: str = "is not supported") -> ToolSchemaError:
        return ToolSchemaError(f"{self.where}: annotation {_name(tp)} {why}; use str, int, float, bool, list, dict, "
                               "tuple, Literal, Enum, a dataclass, a TypedDict or Optional of those")

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is _NoneType:
            return {"type": "null"}
        if tp is str:
            return {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            inner = self.schema(args[0])
            for meta in args[1:]:
                if isinstance(meta, str):
                    inner = {**inner, "description": meta}
            return inner
        if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
            non_null = [a for a in args if a is not _NoneType]
            parts = [self.schema(a) for a in non_null]
            if len(non_null) < len(args):
                parts.append({"type": "null"})
            return parts[0] if len(parts) == 1 else {"anyOf": parts}
        if origin is typing.Literal:
            values = list(args)
            out: dict[str, Any] = {"enum": values}
            kinds = {type(v) for v in values}
            if len(kinds) == 1:
                k = kinds.pop()
                out = {"type": {str: "string", int: "integer", bool: "boolean", float: "number"}.get(k, "string"),
                       **out}
            return out
        if origin in (list, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable):
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (set, frozenset, collections.abc.Set):
            return {"type": "array", "items": self.schema(args[0]) if args else {}, "uniqueItems": True}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            if not args:
                return {"type": "array"}
            return {"type": "array", "prefixItems": [self.schema(a) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
            if args and args[0] is not str:
                raise self.fail(tp, "has non-string keys (JSON object keys are strings)")
            return {"type": "object", "additionalProperties": self.schema(args[1]) if args else {}}
        if tp in (list, tuple, set):
            return {"type": "array"}
        if tp is dict:
            return {"type": "object"}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            values = [m.value for m in tp]
            out = {"enum": values}
            kinds = {type(v) for v in values}
            if kinds == {str}:
                out = {"type": "string", **out}
            elif kinds == {int}:
                out = {"type": "integer", **out}
            return out
        if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or _is_typeddict(tp)):
            return self.object_schema(tp)
        if _is_pydantic(tp):
            result: dict[str, Any] = tp.model_json_schema()
            return result
        raise self.fail(tp)

    def object_schema(self, tp: Any) -> dict[str, Any]:
        if tp in self.stack:
            raise self.fail(tp, "refers to itself (recursive models are not supported)")
        self.stack.append(tp)
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
            props: dict[str, Any] = {}
            required: list[str] = []
            if dataclasses.is_dataclass(tp):
                for f in dataclasses.fields(tp):
                    if not f.init:
                        continue
                    props[f.name] = self.schema(hints.get(f.name, Any))
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                        required.append(f.name)
            else:
                marks = {getattr(typing, "Required", None): True, getattr(typing, "NotRequired", None): False}
                marks.pop(None, None)
                for name, hint in hints.items():
                    h, is_required = hint, bool(tp.__total__)
                    if typing.get_origin(h) in marks:  # Required[...] / NotRequired[...] override total=
                        is_required = marks[typing.get_origin(h)]
                        h = typing.get_args(h)[0]
                    props[name] = self.schema(h)
                    if is_required:
                        required.append(name)
            out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
            summary, _ = parse_docstring(tp.__doc__) if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "(") \
                else (None, {})
            if summary:
                out["description"] = summary
            return out
        finally:
            self.stack.pop()


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _strictify(schema: dict[str, Any], optional: bool = False) -> dict[str, Any]:
    """OpenAI strict mode: every object closed and listing all its properties as required;
    properties that were optional become nullable."""
    s = dict(schema)
    if s.get("type") == "object" and "properties" in s:
        req = set(s.get("required", []))
        props = {}
        for k, v in s["properties"].items():
            sub = _strictify(v)
            if k not in req and not _nullable(sub):
                sub = {"anyOf": [sub, {"type": "null"}]}
            props[k] = sub
        s["properties"] = props
        s["required"] = list(props)
        s["additionalProperties"] = False
    for key in ("items",):
        if isinstance(s.get(key), dict):
            s[key] = _strictify(s[key])
    if "anyOf" in s:
        s["anyOf"] = [_strictify(x) for x in s["anyOf"]]
    if "prefixItems" in s:
        s["prefixItems"] = [_strictify(x) for x in s["prefixItems"]]
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = _strictify(s["additionalProperties"])
    return s


def _nullable(s: dict[str, Any]) -> bool:
    return s.get("type") == "null" or any(x.get("type") == "null" for x in s.get("anyOf", []))


def tool(fn: Callable[..., Any] | dict[str, Any], *, strict: bool = False, name: str | None = None,
         description: str | None = None) -> dict[str, Any]:
    """The OpenAI tool dict for a typed function (or an existing tool dict, checked and returned).

    Name: the function's name; description: its docstring's summary; parameter descriptions
    from Google / NumPy / reST docstring sections or ``Annotated[..., "text"]``; ``required``:
    the parameters without defaults. Every parameter needs an annotation. ``strict=True`` gives
    an OpenAI strict-mode schema. Raises ``ToolSchemaError`` for what cannot be described.
    """
    if isinstance(fn, dict):
        f = fn.get("function")
        if fn.get("type") != "function" or not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise ToolSchemaError("a tool dict needs {'type': 'function', 'function': {'name': ..., 'parameters': ...}}")
        return fn
    if not callable(fn):
        raise ToolSchemaError(f"tool({fn!r}): expected a function or a tool dict")
    fname = name or getattr(fn, "__name__", None)
    if not fname or fname == "<lambda>":
        raise ToolSchemaError("tool(...): give a named function (or name=...)")
    where = f"tool {fname!r}"
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as e:
        raise ToolSchemaError(f"{where}: cannot read its signature ({e})") from None
    summary, param_docs = parse_docstring(inspect.getdoc(fn))
    conv = _Converter(where)
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, p in sig.parameters.items():
        if pname in ("self", "cls") and p.annotation is inspect.Parameter.empty:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolSchemaError(f"{where}: *{pname} / **{pname} cannot be described as a JSON schema")
        if pname not in hints:
            raise ToolSchemaError(f"{where}: parameter {pname!r} has no type annotation")
        conv.where = f"{where}, parameter {pname!r}"
        s = conv.schema(hints[pname])
        if pname in param_docs and param_docs[pname] and "description" not in s:
            s = {**s, "description": param_docs[pname]}
        props[pname] = s
        if p.default is inspect.Parameter.empty:
            required.append(pname)
    params: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if strict:
        params = _strictify(params)
    function: dict[str, Any] = {"name": fname}
    desc = description if description is not None else summary
    if desc:
        function["description"] = desc
    function["parameters"] = params
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


# -- running calls -------------------------------------------------------------------------------

def is_async_tool(fn: Any) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    call = type(fn).__dict__.get("__call__") if not inspect.isroutine(fn) else None
    return inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call))


def _convert(value: Any, tp: Any) -> Any:
    """JSON value -> the declared Python type where that is what the function expects."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _convert(value, args[0])
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        if value is None:
            return None
        for a in args:
            if a is not _NoneType:
                try:
                    return _convert(value, a)
                except (TypeError, ValueError):
                    continue
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp, include_extras=True)
        return tp(**{k: _convert(v, hints.get(k, Any)) for k, v in value.items()})
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True)) if args else tuple(value)
    if origin in (list, collections.abc.Sequence) and isinstance(value, list) and args:
        return [_convert(v, args[0]) for v in value]
    if origin in (set, frozenset) and isinstance(value, list):
        return origin(_convert(v, args[0]) if args else v for v in value)
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _convert(v, args[1]) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class ToolSet:
    """Tools for one request: the schemas to send and the Python functions to run."""

    def __init__(self, tools: Iterable[Callable[..., Any] | Mapping[str, Any]]) -> None:
        self.schemas: list[dict[str, Any]] = []
        self.functions: dict[str, Callable[..., Any]] = {}
        for t in tools:
            schema = tool(dict(t) if isinstance(t, Mapping) else t)
            name = schema["function"]["name"]
            if any(s["function"]["name"] == name for s in self.schemas):
                raise ToolSchemaError(f"two tools are named {name!r}")
            self.schemas.append(schema)
            if not isinstance(t, Mapping):
                self.functions[name] = t

    def prepare(self, name: str, arguments: str) -> Callable[[], Any] | str:
        """A zero-argument callable running the tool with the decoded arguments, or an
        ``"error: ..."`` message for the model (unknown tool, bad JSON, wrong arguments)."""
        fn = self.functions.get(name)
        if fn is None:
            known = ", ".join(self.functions) or "none"
            return f"error: unknown tool {name!r}; the tools you can call are: {known}"
        text = (arguments or "").strip()
        try:
            args = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError as e:
            return f"error: the arguments for {name!r} are not valid JSON ({e}); send a JSON object"
        if not isinstance(args, dict):
            return f"error: the arguments for {name!r} must be a JSON object, got {type(args).__name__}"
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        unexpected = [k for k in args if k not in sig.parameters]
        if unexpected:
            return f"error: {name!r} has no parameter(s) {', '.join(map(repr, unexpected))}"
        missing = [p for p, prm in sig.parameters.items()
                   if prm.default is inspect.Parameter.empty and p not in args
                   and prm.kind not in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD)]
        if missing:
            return f"error: {name!r} is missing required argument(s) {', '.join(map(repr, missing))}"
        try:
            kwargs = {k: _convert(v, hints.get(k, Any)) for k, v in args.items()}
        except (TypeError, ValueError) as e:
            return f"error: bad argument for {name!r}: {e}"
        return lambda: fn(**kwargs)


def format_result(value: Any) -> str:
    """A tool's result as the tool message text: a str unchanged, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_PASSTHROUGH_DATACLASS).decode()
    except TypeError:
        return str(value)


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    return str(obj)


def format_exception(exc: BaseException) -> str:
    """An exception raised by a tool, as the tool message text the model sees."""
    return f"error: {type(exc).__name__}: {exc}"
