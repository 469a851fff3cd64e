"""Typed Python functions as OpenAI tools: JSON schema from signatures and docstrings,
and the pure (I/O-free) helpers the tool loop uses to run a call and format its result.

Supported annotations: str, int, float, bool, None / Optional / ``X | None``, list / Sequence,
dict[str, X], tuple, set, Literal, Enum, dataclasses, TypedDict, ``Annotated[X, "description"]``,
Union, Any, NewType, and pydantic models when pydantic happens to be installed (not a dependency).

Schema conventions: a nullable type is ``{"anyOf": [X, {"type": "null"}]}``; every object schema
has a ``required`` list (possibly empty, in declaration order); a recursive dataclass/TypedDict
goes into ``$defs`` at the root of ``parameters`` and is referenced with ``$ref``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from ._exceptions import ToolSchemaError

__all__ = [
    "ToolSet",
    "format_exception",
    "format_result",
    "is_async_tool",
    "parse_docstring",
    "tool",
]

_NoneType = type(None)
_NULL: dict[str, Any] = {"type": "null"}
_JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number",
                                _NoneType: "null"}
_MISSING: Any = object()


class _FunctionTool(dict[str, Any]):
    """The dict ``tool(fn)`` returns: a plain tool dict that also remembers ``fn``, so that
    ``ToolSet([tool(fn, strict=True)])`` can still run it."""

    fn: Callable[..., Any]


# -- docstrings --------------------------------------------------------------------------------

_GOOGLE_HEAD = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Kwargs|Other Parameters"
    r"|Attributes)\s*:\s*$")
_ANY_GOOGLE_HEAD = re.compile(r"^\s*[A-Z][A-Za-z ]{1,30}:\s*$")
_NUMPY_HEADS = ("Parameters", "Other Parameters", "Attributes", "Arguments", "Args")
_NUMPY_RULE = re.compile(r"^\s*-{3,}\s*$")
_GOOGLE_ITEM = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\((?:[^()]|\([^()]*\))*\))?\s*:(.*)$")
_REST_PARAM = re.compile(
    r"^\s*:(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*?\s+)?\*{0,2}(\w+)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _squash(parts: Iterable[str]) -> str:
    return " ".join(" ".join(parts).split())


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """``(summary, {parameter: description})`` from a Google, NumPy or reST/Sphinx docstring.

    The summary is the first paragraph, whitespace-normalised (None when there is none).
    """
    if not doc or not doc.strip():
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith(":") or _ANY_GOOGLE_HEAD.match(line):
            break
        if i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1]):
            break  # a NumPy section heading
        summary.append(text)
    params: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _REST_PARAM.match(line)
        if m:  # reST: ":param [type] name: text", continuation lines indented
            name, text_parts = m.group(1), [m.group(2)]
            i += 1
            while i < len(lines) and lines[i][:1].isspace() and not lines[i].strip().startswith(":"):
                text_parts.append(lines[i])
                i += 1
            params[name] = _squash(text_parts)
            continue
        if _GOOGLE_HEAD.match(line):  # Google: "name (type): text" indented under "Args:"
            base = _indent(line) if i else -1  # cleandoc loses the first line's indentation
            i += 1
            current: str | None = None
            item_indent: int | None = None
            while i < len(lines):
                ln = lines[i]
                if ln.strip():
                    ind = _indent(ln)
                    if ind <= base:
                        break
                    if item_indent is None:
                        item_indent = ind
                    m2 = _GOOGLE_ITEM.match(ln) if ind <= item_indent else None
                    if m2:
                        current = m2.group(1)
                        params[current] = _squash([m2.group(2)])
                    elif current is not None:
                        params[current] = _squash([params[current], ln])
                i += 1
            continue
        if line.strip() in _NUMPY_HEADS and i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1]):
            i += 2  # NumPy: "name : type" lines, descriptions indented below
            names: list[str] = []
            while i < len(lines):
                ln = lines[i]
                if i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1]):
                    break  # the next section
                if ln.strip() and not ln[:1].isspace():
                    names = [n.strip().lstrip("*") for n in ln.split(":", 1)[0].split(",") if n.strip()]
                    for n in names:
                        params[n] = ""
                elif ln.strip():
                    for n in names:
                        params[n] = _squash([params[n], ln])
                i += 1
            continue
        i += 1
    return _squash(summary) or None, params


def _class_doc(tp: type) -> str | None:
    """A class's own docstring (not the ``Name(field: type, ...)`` one dataclasses invent)."""
    doc = tp.__dict__.get("__doc__")
    if not isinstance(doc, str) or doc.startswith(tp.__name__ + "("):
        return None
    return doc


# -- annotations -------------------------------------------------------------------------------

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


def _describe(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {**schema, "description": text}


class _Converter:
    """Annotation -> JSON schema for one tool; collects ``$defs`` (recursive models, pydantic's)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.path: list[str] = []
        self.stack: list[Any] = []
        self.def_names: dict[Any, str] = {}
        self.defs: dict[str, dict[str, Any]] = {}

    def fail(self, tp: Any, why: str = "is not supported") -> ToolSchemaError:
        at = f" (at {' -> '.join(self.path)})" if self.path else ""
        return ToolSchemaError(
            f"{self.where}{at}: annotation {_name(tp)} {why}; supported: str, int, float, bool, None, "
            "list[X], dict[str, X], tuple, set, Literal, Enum, dataclasses, TypedDict, Annotated, "
            "Union / Optional, Any (and pydantic models)")

    def _def_name(self, tp: Any) -> str:
        name = self.def_names.get(tp)
        if name is None:
            base = name = getattr(tp, "__name__", "Model")
            n = 1
            while name in self.defs or name in self.def_names.values():
                n += 1
                name = f"{base}{n}"
            self.def_names[tp] = name
        return name

    def schema(self, tp: Any) -> dict[str, Any]:
        tp = _unalias(tp)
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is _NoneType:
            return dict(_NULL)
        if tp in (str, bool, int, float):
            return {"type": _JSON_TYPES[tp]}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            inner = self.schema(args[0])
            text = _annotated_description(tp)
            return _describe(inner, text) if text is not None else inner
        if _is_union(origin):
            parts = [self.schema(a) for a in args if a is not _NoneType]
            if any(p == {} for p in parts):
                return {}
            if len(parts) < len(args):
                parts.append(dict(_NULL))
            return parts[0] if len(parts) == 1 else {"anyOf": parts}
        if origin is typing.Literal:
            return self._enum(tp, [a.value if isinstance(a, enum.Enum) else a for a in args])
        if _is_enum(tp):
            return self._enum(tp, [m.value for m in tp])
        if origin in (list, collections.abc.Sequence, collections.abc.MutableSequence,
                      collections.abc.Iterable, collections.abc.Collection) or tp is list:
            return {"type": "array", "items": self.schema(args[0])} if args else {"type": "array"}
        if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet) or tp in (set, frozenset):
            out: dict[str, Any] = {"type": "array"}
            if args:
                out["items"] = self.schema(args[0])
            out["uniqueItems"] = True
            return out
        if origin is tuple or tp is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            if not args:
                return {"type": "array"}
            return {"type": "array", "prefixItems": [self.schema(a) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping) or tp is dict:
            if not args:
                return {"type": "object"}
            if _strip_annotated(args[0]) is not str:
                raise self.fail(tp, "has non-string keys (JSON object keys are strings)")
            return {"type": "object", "additionalProperties": self.schema(args[1])}
        if _isclass(tp) and (dataclasses.is_dataclass(tp) or _is_typeddict(tp)):
            return self.object_schema(tp)
        if _is_pydantic(tp):
            return self.pydantic_schema(tp)
        raise self.fail(tp)

    def _enum(self, tp: Any, values: list[Any]) -> dict[str, Any]:
        kinds = set()
        for v in values:
            if type(v) not in _JSON_TYPES:
                raise self.fail(tp, f"has the value {v!r}, which is not a JSON scalar")
            kinds.add(_JSON_TYPES[type(v)])
        out: dict[str, Any] = {}
        if len(kinds) == 1:
            out["type"] = kinds.pop()
        out["enum"] = values
        return out

    def object_schema(self, tp: type) -> dict[str, Any]:
        if tp in self.stack:  # recursive: describe it once in $defs, refer to it
            return {"$ref": f"#/$defs/{self._def_name(tp)}"}
        if tp in self.def_names and self.def_names[tp] in self.defs:
            return {"$ref": f"#/$defs/{self.def_names[tp]}"}
        self.stack.append(tp)
        try:
            try:
                hints = _class_hints(tp)
            except Exception as e:  # an unresolvable forward reference, typically
                raise self.fail(tp, f"cannot have its annotations resolved ({type(e).__name__}: {e})") from None
            doc = _class_doc(tp)
            summary, field_docs = parse_docstring(doc)
            props: dict[str, Any] = {}
            required: list[str] = []
            if dataclasses.is_dataclass(tp):
                for f in dataclasses.fields(tp):
                    if not f.init:
                        continue
                    hint = hints.get(f.name, f.type)
                    text = f.metadata.get("description") or field_docs.get(f.name)
                    props[f.name] = self._field(tp, f.name, hint, text)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                        required.append(f.name)
            else:
                required_keys = getattr(tp, "__required_keys__", None)
                for key, hint in hints.items():
                    hint, flag = _typeddict_key(hint)
                    if flag is None:
                        flag = key in required_keys if required_keys is not None else bool(
                            getattr(tp, "__total__", True))
                    props[key] = self._field(tp, key, hint, field_docs.get(key))
                    if flag:
                        required.append(key)
            out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
            if summary:
                out["description"] = summary
        finally:
            self.stack.pop()
        if tp in self.def_names:  # it referred to itself while being described
            self.defs[self.def_names[tp]] = out
            return {"$ref": f"#/$defs/{self.def_names[tp]}"}
        return out

    def _field(self, owner: type, name: str, hint: Any, text: str | None) -> dict[str, Any]:
        self.path.append(f"{owner.__qualname__}.{name}")
        try:
            s = self.schema(hint)
        finally:
            self.path.pop()
        if text and _annotated_description(hint) is None:
            s = _describe(s, text)
        return s

    def pydantic_schema(self, tp: Any) -> dict[str, Any]:
        try:
            s = dict(tp.model_json_schema())
        except Exception as e:
            raise self.fail(tp, f"failed model_json_schema() ({type(e).__name__}: {e})") from None
        defs = s.pop("$defs", None) or {}
        renames: dict[str, str] = {}
        for key, sub in defs.items():  # hoist into the root $defs; rename on a clash
            new = key
            n = 1
            while (new in self.defs and self.defs[new] != sub) or (
                    new not in self.defs and new in self.def_names.values()):
                n += 1
                new = f"{key}{n}"
            renames[key] = new
        if any(k != v for k, v in renames.items()):
            defs = {k: _rewrite_refs(v, renames) for k, v in defs.items()}
            s = _rewrite_refs(s, renames)
        for key, sub in defs.items():
            self.defs[renames[key]] = sub
        return s


def _rewrite_refs(obj: Any, renames: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        out = {k: _rewrite_refs(v, renames) for k, v in obj.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/$defs/" + renames.get(ref[8:], ref[8:])
        return out
    if isinstance(obj, list):
        return [_rewrite_refs(v, renames) for v in obj]
    return obj


# -- strict mode -------------------------------------------------------------------------------

def _is_nullable(s: dict[str, Any]) -> bool:
    t = s.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t) or s == {}:
        return True
    if "enum" in s and None in s["enum"]:
        return True
    return any(isinstance(x, dict) and _is_nullable(x) for x in s.get("anyOf", ()))


def _make_nullable(s: dict[str, Any]) -> dict[str, Any]:
    if _is_nullable(s):
        return s
    if "anyOf" in s:
        return {**s, "anyOf": [*s["anyOf"], dict(_NULL)]}
    inner = {k: v for k, v in s.items() if k != "description"}
    out: dict[str, Any] = {"anyOf": [inner, dict(_NULL)]}
    if "description" in s:
        out["description"] = s["description"]
    return out


def _strictify(schema: Any, defs: Mapping[str, Any]) -> Any:
    """OpenAI strict mode: every object with properties is closed (``additionalProperties:
    false``) and lists all of them in ``required``; the ones that were optional become nullable.
    A ``$ref`` with sibling keys is inlined (the API rejects those); ``"default": null`` is dropped."""
    if isinstance(schema, list):
        return [_strictify(x, defs) for x in schema]
    if not isinstance(schema, dict):
        return schema
    s = dict(schema)
    ref = s.get("$ref")
    if isinstance(ref, str) and len(s) > 1 and ref.startswith("#/$defs/") and ref[8:] in defs:
        del s["$ref"]
        s = {**defs[ref[8:]], **s}
    if "default" in s and s["default"] is None:
        del s["default"]
    for key in ("$defs", "definitions"):
        if isinstance(s.get(key), dict):
            s[key] = {k: _strictify(v, defs) for k, v in s[key].items()}
    if isinstance(s.get("properties"), dict):
        req = set(s.get("required") or ())
        props: dict[str, Any] = {}
        for k, v in s["properties"].items():
            v = _strictify(v, defs)
            props[k] = v if k in req or not isinstance(v, dict) else _make_nullable(v)
        s["properties"] = props
        s["required"] = list(props)
        s["additionalProperties"] = False
    elif isinstance(s.get("additionalProperties"), dict):  # dict[str, X]: a map stays a map
        s["additionalProperties"] = _strictify(s["additionalProperties"], defs)
    for key in ("items", "not"):
        if isinstance(s.get(key), dict):
            s[key] = _strictify(s[key], defs)
    for key in ("prefixItems", "anyOf", "oneOf", "allOf"):
        if isinstance(s.get(key), list):
            s[key] = _strictify(s[key], defs)
    return s


# -- functions ---------------------------------------------------------------------------------

def _hints_target(fn: Any) -> Any:
    """What holds the annotations of ``fn``'s parameters."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn):
        return fn
    if isinstance(fn, type):
        return fn.__init__  # type: ignore[misc]
    return type(fn).__call__


def _function_hints(fn: Any, where: str) -> dict[str, Any]:
    target = _hints_target(fn)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        pass
    # one bad annotation (perhaps just the return type): resolve the parameters one by one
    raw = dict(getattr(target, "__annotations__", None) or {})
    globalns = getattr(inspect.unwrap(target), "__globals__", {})
    hints: dict[str, Any] = {}
    for pname, ann in raw.items():
        if pname == "return":
            continue
        holder = types.SimpleNamespace(__annotations__={pname: ann})
        try:
            hints[pname] = typing.get_type_hints(holder, globalns=globalns, include_extras=True)[pname]
        except Exception as e:
            raise ToolSchemaError(
                f"{where}, parameter {pname!r}: cannot resolve the annotation {ann!r} "
                f"({type(e).__name__}: {e}); define the types it names at module level") from None
    return hints


def _inspect_function(fn: Callable[..., Any], where: str) -> tuple[inspect.Signature, dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise ToolSchemaError(f"{where}: cannot read its signature ({e})") from None
    hints = _function_hints(fn, where)
    for pname, p in sig.parameters.items():
        if p.kind is p.VAR_POSITIONAL:
            raise ToolSchemaError(f"{where}: *{pname} cannot be described as a JSON schema; use a list parameter")
        if p.kind is p.VAR_KEYWORD:
            raise ToolSchemaError(f"{where}: **{pname} cannot be described as a JSON schema; "
                                  "name the parameters (or take one dict[str, X] parameter)")
        if pname not in hints:
            raise ToolSchemaError(f"{where}: parameter {pname!r} has no type annotation "
                                  "(every parameter needs one; use Any for anything)")
    return sig, hints


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
    if isinstance(value, list):
        return origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.MutableSequence,
                          collections.abc.Iterable, collections.abc.Collection, collections.abc.Set,
                          collections.abc.MutableSet) or tp in (list, tuple, set, frozenset)
    if isinstance(value, dict):
        return origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping) or tp is dict or (
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
        if origin in (set, collections.abc.Set, collections.abc.MutableSet) or tp is set:
            return {_convert(v, item) for v in value}
        if origin is frozenset or tp is frozenset:
            return frozenset(_convert(v, item) for v in value)
        if args:
            return [_convert(v, item) for v in value]
        return value
    if isinstance(value, dict) and len(args) == 2 and origin in (
            dict, collections.abc.Mapping, collections.abc.MutableMapping):
        return {k: _convert(v, args[1]) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


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
                args = orjson.loads(text) if text.strip() else {}
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
    return str(value)


def format_exception(exc: BaseException) -> str:
    """An exception raised by a tool as the tool message text: ``"error: <ExcType>: <message>"``."""
    message = str(exc)
    return f"error: {type(exc).__name__}: {message}" if message else f"error: {type(exc).__name__}"
