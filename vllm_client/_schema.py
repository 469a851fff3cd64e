"""Python annotations -> JSON schema: the one converter behind ``tool(fn)`` (and every other
place the SDK turns a type into a schema), docstring parameter sections, and OpenAI's
strict mode.

Supported annotations: str, int, float, bool, None / Optional / ``X | None``, list / Sequence,
dict[str, X], tuple, set, Literal, Enum, dataclasses, TypedDict, ``Annotated[X, "description"]``,
Union, Any, NewType, and pydantic models when pydantic happens to be installed (not a dependency).

Schema conventions: a nullable type is ``{"anyOf": [X, {"type": "null"}]}``; every object schema
has a ``required`` list (possibly empty, in declaration order); a recursive dataclass/TypedDict
goes into ``$defs`` at the root and is referenced with ``$ref``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._annotations import (
    _annotated_description,
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
    _unalias,
    container_kind,
)
from ._exceptions import ToolSchemaError

__all__ = ["parse_docstring", "type_schema"]

_NULL: dict[str, Any] = {"type": "null"}
_JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number",
                                _NoneType: "null"}


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
        kind = container_kind(tp)
        if kind == "sequence":
            return {"type": "array", "items": self.schema(args[0])} if args else {"type": "array"}
        if kind == "set":
            out: dict[str, Any] = {"type": "array"}
            if args:
                out["items"] = self.schema(args[0])
            out["uniqueItems"] = True
            return out
        if kind == "tuple":
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            if not args:
                return {"type": "array"}
            return {"type": "array", "prefixItems": [self.schema(a) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        if kind == "mapping":
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
    false``) and lists all of them in ``required``; the ones that were optional become nullable
    (except those with a ``default``, which keep their type).
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
            # an optional property becomes nullable (null: "not given"), unless it has a default
            # (pydantic's schemas say so): then the model always sends a value of its type
            props[k] = v if k in req or not isinstance(v, dict) or "default" in v else _make_nullable(v)
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


def type_schema(tp: Any, *, strict: bool = True, where: str = "type") -> dict[str, Any]:
    """The JSON schema of a type (``$defs`` at its root), strict-mode when ``strict``."""
    conv = _Converter(where)
    schema = conv.schema(tp)
    if conv.defs:
        schema = {**schema, "$defs": conv.defs}
    return _strictify(schema, conv.defs) if strict else schema


# -- functions ---------------------------------------------------------------------------------

def _hints_target(fn: Any) -> Any:
    """What holds the annotations of ``fn``'s parameters."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn):
        return fn
    if isinstance(fn, type):  # a class as a tool: its fields are the arguments
        return fn if _is_pydantic(fn) else fn.__init__  # type: ignore[misc]
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
