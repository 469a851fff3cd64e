"""tool(fn): JSON schemas from typed functions, each compared with a hand-written one;
ToolSet.prepare, is_async_tool, format_result, format_exception.

This module has ``from __future__ import annotations`` (every annotation is a string);
tests/_tool_fixtures.py has the same kind of functions with evaluated annotations.
"""

# ruff: noqa: UP006, UP007, UP035, UP045  (typing.List / Dict / Tuple / Optional / Union are tested on purpose)

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import (
    Annotated,
    Any,
    Dict,
    List,
    Literal,
    NewType,
    Optional,
    Tuple,
    TypedDict,
    Union,
)

import orjson
import pytest

if sys.version_info >= (3, 11):
    from typing import NotRequired, Required
else:  # typing_extensions comes with mypy (a test dependency)
    from typing_extensions import NotRequired, Required

from vllm_client import tool as exported_tool
from vllm_client._exceptions import InvalidRequestError
from vllm_client._tools import (
    ToolSchemaError,
    ToolSet,
    format_exception,
    format_result,
    is_async_tool,
    parse_docstring,
    tool,
)

from . import _tool_fixtures as fx

# -- a structural check of every schema the tests make (no jsonschema dependency) ---------------

_TYPES = {"string", "integer", "number", "boolean", "null", "array", "object"}
_KEYS = {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
         "maxItems", "uniqueItems", "enum", "anyOf", "description", "$ref", "$defs", "title", "default"}


def check_schema(s: Any, root: dict[str, Any]) -> None:
    """Valid JSON Schema shape: known keywords with values of the right kind, refs that resolve."""
    assert isinstance(s, dict), s
    assert set(s) <= _KEYS, set(s) - _KEYS
    if "type" in s:
        types_ = s["type"] if isinstance(s["type"], list) else [s["type"]]
        assert set(types_) <= _TYPES, s
    if "properties" in s:
        assert s.get("type") == "object" and isinstance(s["properties"], dict)
        for v in s["properties"].values():
            check_schema(v, root)
    if "required" in s:
        assert isinstance(s["required"], list) and len(set(s["required"])) == len(s["required"])
        assert set(s["required"]) <= set(s.get("properties", {})), s
    if "additionalProperties" in s:
        ap = s["additionalProperties"]
        if not isinstance(ap, bool):
            check_schema(ap, root)
    if "items" in s:
        assert s.get("type") == "array"
        check_schema(s["items"], root)
    for key in ("prefixItems", "anyOf"):
        if key in s:
            assert isinstance(s[key], list) and s[key]
            for v in s[key]:
                check_schema(v, root)
    for key in ("minItems", "maxItems"):
        if key in s:
            assert isinstance(s[key], int) and s[key] >= 0
    if "enum" in s:
        assert isinstance(s["enum"], list) and s["enum"]
    if "description" in s:
        assert isinstance(s["description"], str) and s["description"]
    if "$ref" in s:
        ref = s["$ref"]
        assert ref.startswith("#/$defs/") and ref[8:] in root.get("$defs", {}), ref
    if "$defs" in s:
        assert s is root
        for v in s["$defs"].values():
            check_schema(v, root)


def T(fn: Any, **kw: Any) -> dict[str, Any]:
    """tool(fn, **kw), checked for shape and JSON-encodability."""
    t = tool(fn, **kw)
    assert orjson.loads(orjson.dumps(t)) == t
    assert t["type"] == "function" and set(t) == {"type", "function"}
    f = t["function"]
    assert set(f) <= {"name", "description", "parameters", "strict"}
    params = f["parameters"]
    assert params["type"] == "object"
    check_schema(params, params)
    if kw.get("strict"):
        _assert_strict(params)
    return t


def P(fn: Any, **kw: Any) -> dict[str, Any]:
    """Just the parameters schema."""
    params: dict[str, Any] = T(fn, **kw)["function"]["parameters"]
    return params


def _assert_strict(s: Any) -> None:
    if isinstance(s, dict):
        if "properties" in s:
            assert s["additionalProperties"] is False and s["required"] == list(s["properties"]), s
        for v in s.values():
            _assert_strict(v)
    elif isinstance(s, list):
        for v in s:
            _assert_strict(v)


def obj(props: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, **extra}


def nullable(s: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [s, {"type": "null"}]}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
NULL = {"type": "null"}


# -- types used below ----------------------------------------------------------------------------

class Unit(enum.Enum):
    C = "c"
    F = "f"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mixed(enum.Enum):
    A = 1
    B = "b"


class Bad(enum.Enum):
    A = (1, 2)


@dataclass
class Point:
    """A point."""

    x: float
    y: float = 0.0


@dataclass
class Shape:
    name: str
    points: list[Point]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Documented:
    """A documented record.

    Attributes:
        a: From the Attributes section.
        b: Overridden by Annotated.
    """

    a: int
    b: Annotated[str, "From Annotated"]
    c: bool = field(default=False, metadata={"description": "From field metadata"})
    hidden: int = field(default=0, init=False)


class Movie(TypedDict):
    """A film."""

    title: str
    year: NotRequired[int]


class Loose(TypedDict, total=False):
    a: int
    b: Required[str]


@dataclass
class Node:
    """A tree node."""

    value: int
    children: list[Node] = field(default_factory=list)


@dataclass
class Ping:
    pong: Optional[Pong] = None


@dataclass
class Pong:
    ping: Ping


class Tree(TypedDict):
    label: str
    kids: list[Tree]


class Thing:
    pass


UserId = NewType("UserId", int)


# -- docstrings ----------------------------------------------------------------------------------

def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather
    for a city.

    More prose that is not the summary.

    Args:
        city: The city name.
        unit (str, optional): Temperature unit,
            Celsius or Fahrenheit.

    Returns:
        The weather.
    """
    return f"sunny in {city} ({unit})"


def test_google_docstring() -> None:
    assert T(get_weather) == {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": obj({
            "city": {"type": "string", "description": "The city name."},
            "unit": {"type": "string", "enum": ["c", "f"], "description": "Temperature unit, Celsius or Fahrenheit."},
        }, ["city"])}}


def google_variants(a: int, b: dict[str, int], c: str = "") -> None:
    """Summary only.

    Arguments:
        a (int): First.
        b (Dict(str, int)): Second: with a colon.
        c: Third,

            after a blank line.
    Raises:
        ValueError: not a parameter.
    """


def test_google_variants() -> None:
    assert T(google_variants)["function"] == {
        "name": "google_variants", "description": "Summary only.",
        "parameters": obj({
            "a": {"type": "integer", "description": "First."},
            "b": {"type": "object", "additionalProperties": INT, "description": "Second: with a colon."},
            "c": {"type": "string", "description": "Third, after a blank line."},
        }, ["a", "b"])}


def numpy_style(a: int, b: list[float], *, c: bool = True) -> float:
    """Add things up.

    Longer text that is not the summary.

    Parameters
    ----------
    a : int
        The first.
    b : list of float
        The rest,
        all of them.
    c : bool, optional
        A flag.

    Returns
    -------
    float
        Not a parameter.
    """
    return 0.0


def test_numpy_docstring() -> None:
    assert T(numpy_style)["function"] == {
        "name": "numpy_style", "description": "Add things up.",
        "parameters": obj({
            "a": {"type": "integer", "description": "The first."},
            "b": {"type": "array", "items": NUM, "description": "The rest, all of them."},
            "c": {"type": "boolean", "description": "A flag."},
        }, ["a", "b"])}


def rest_style(path: str, mode: Optional[str] = None, size: int = 0) -> None:
    """Open a file.

    :param path: Where it is,
        on disk.
    :type path: str
    :param str mode: How to open it.
    :param int size: Buffer size.
    :returns: nothing
    """


def test_rest_docstring() -> None:
    assert T(rest_style)["function"] == {
        "name": "rest_style", "description": "Open a file.",
        "parameters": obj({
            "path": {"type": "string", "description": "Where it is, on disk."},
            "mode": {"anyOf": [STR, NULL], "description": "How to open it."},
            "size": {"type": "integer", "description": "Buffer size."},
        }, ["path"])}


def test_parse_docstring_edge_cases() -> None:
    assert parse_docstring(None) == (None, {})
    assert parse_docstring("   ") == (None, {})
    assert parse_docstring("Just a summary\n   spanning  lines.") == ("Just a summary spanning lines.", {})
    assert parse_docstring("Args:\n    x: only params") == (None, {"x": "only params"})
    assert parse_docstring("Summary.\nArgs:\n    x: no blank line") == ("Summary.", {"x": "no blank line"})
    assert parse_docstring(":param x: first\n:param y: second") == (None, {"x": "first", "y": "second"})
    assert parse_docstring("Sum.\n\nParameters\n----------\nx, y : int\n    Both.\n") == (
        "Sum.", {"x": "Both.", "y": "Both."})
    assert parse_docstring("Sum.\n\nArgs:\n    **kw: Extra.\n    n (list[int]): Ns.") == (
        "Sum.", {"kw": "Extra.", "n": "Ns."})


def no_doc(x: int) -> None:
    pass


def test_no_docstring_omits_description_and_overrides() -> None:
    assert T(no_doc) == {"type": "function", "function": {"name": "no_doc", "parameters": obj({"x": INT}, ["x"])}}
    assert T(get_weather, name="weather", description="W")["function"]["name"] == "weather"
    assert T(get_weather, description="W")["function"]["description"] == "W"
    assert "description" not in T(get_weather, description="")["function"]
    assert exported_tool is tool


# -- types ---------------------------------------------------------------------------------------

def scalars(s: str, i: int, f: float, b: bool, n: None, a: Any, uid: UserId) -> None:
    """Scalars."""


def test_scalars() -> None:
    assert P(scalars) == obj({"s": STR, "i": INT, "f": NUM, "b": BOOL, "n": NULL, "a": {}, "uid": INT},
                             ["s", "i", "f", "b", "n", "a", "uid"])


def optionals(a: Optional[int] = None, b: int | None = None, c: Union[int, str] = 0,
              d: Union[int, str, None] = None, e: Optional[Any] = None, f: str | None = "x") -> None:
    """Optionals and unions."""


def test_optional_and_union() -> None:
    assert P(optionals) == obj({
        "a": nullable(INT), "b": nullable(INT), "c": {"anyOf": [INT, STR]},
        "d": {"anyOf": [INT, STR, NULL]}, "e": {}, "f": nullable(STR),
    }, [])


def containers(a: list[int], b: List[str], c: Sequence[float], d: dict[str, bool], e: Dict[str, list[int]],
               f: tuple[int, str], g: Tuple[float, ...], h: set[str], i: frozenset[int],
               j: list, k: dict, m: tuple[int, ...] = ()) -> None:  # type: ignore[type-arg]
    """Containers."""


def test_containers() -> None:
    assert P(containers) == obj({
        "a": {"type": "array", "items": INT},
        "b": {"type": "array", "items": STR},
        "c": {"type": "array", "items": NUM},
        "d": {"type": "object", "additionalProperties": BOOL},
        "e": {"type": "object", "additionalProperties": {"type": "array", "items": INT}},
        "f": {"type": "array", "prefixItems": [INT, STR], "minItems": 2, "maxItems": 2},
        "g": {"type": "array", "items": NUM},
        "h": {"type": "array", "items": STR, "uniqueItems": True},
        "i": {"type": "array", "items": INT, "uniqueItems": True},
        "j": {"type": "array"},
        "k": {"type": "object"},
        "m": {"type": "array", "items": INT},
    }, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"])


def choices(u: Unit, lv: Level, mx: Mixed, l1: Literal[1, 2, 3], l2: Literal["a", 1],
            l3: Literal[True], l4: Literal[Unit.F, "k"], l5: Literal["x", None] = None) -> None:
    """Choices."""


def test_enums_and_literals() -> None:
    assert P(choices) == obj({
        "u": {"type": "string", "enum": ["c", "f"]},
        "lv": {"type": "integer", "enum": [1, 2]},
        "mx": {"enum": [1, "b"]},
        "l1": {"type": "integer", "enum": [1, 2, 3]},
        "l2": {"enum": ["a", 1]},
        "l3": {"type": "boolean", "enum": [True]},
        "l4": {"type": "string", "enum": ["f", "k"]},
        "l5": {"enum": ["x", None]},
    }, ["u", "lv", "mx", "l1", "l2", "l3", "l4"])


def annotated(a: Annotated[str, "Described via Annotated"], b: Annotated[int, 42, "Text", "ignored"],
              c: list[Annotated[int, "each"]], d: Annotated[Optional[int], "maybe"] = None,
              e: Annotated[float, object()] = 0.0) -> None:
    """Annotated.

    Args:
        a: Loses to Annotated.
        e: From the docstring.
    """


def test_annotated_descriptions() -> None:
    assert P(annotated) == obj({
        "a": {"type": "string", "description": "Described via Annotated"},
        "b": {"type": "integer", "description": "Text"},
        "c": {"type": "array", "items": {"type": "integer", "description": "each"}},
        "d": {"anyOf": [INT, NULL], "description": "maybe"},
        "e": {"type": "number", "description": "From the docstring."},
    }, ["a", "b", "c"])


POINT = obj({"x": NUM, "y": NUM}, ["x"], description="A point.")
SHAPE = obj({"name": STR, "points": {"type": "array", "items": POINT},
             "tags": {"type": "object", "additionalProperties": STR}}, ["name", "points"])


def nested(shapes: dict[str, list[Shape]], origin: Point, doc: Documented) -> None:
    """Nested models.

    Args:
        origin: The param's text beats the class docstring.
    """


def test_nested_dataclass_in_list_in_dict() -> None:
    assert P(nested) == obj({
        "shapes": {"type": "object", "additionalProperties": {"type": "array", "items": SHAPE}},
        "origin": {**POINT, "description": "The param's text beats the class docstring."},
        "doc": obj({
            "a": {"type": "integer", "description": "From the Attributes section."},
            "b": {"type": "string", "description": "From Annotated"},
            "c": {"type": "boolean", "description": "From field metadata"},
        }, ["a", "b"], description="A documented record."),
    }, ["shapes", "origin", "doc"])


def typed_dicts(m: Movie, lo: Loose) -> None:
    """TypedDicts."""


def test_typeddict_total_required_notrequired() -> None:
    assert P(typed_dicts) == obj({
        "m": obj({"title": STR, "year": INT}, ["title"], description="A film."),
        "lo": obj({"a": INT, "b": STR}, ["b"]),
    }, ["m", "lo"])


class Wrapped(TypedDict):
    a: Annotated[NotRequired[int], "A, Annotated outside"]
    b: NotRequired[Annotated[int, "B, Annotated inside"]]
    c: str


def wrapped(w: Wrapped) -> dict[str, Any]:
    """Wrapped keys."""
    return dict(w)


def test_typeddict_wrappers_inside_and_outside_annotated() -> None:
    assert P(wrapped) == obj({"w": obj({
        "a": {"type": "integer", "description": "A, Annotated outside"},
        "b": {"type": "integer", "description": "B, Annotated inside"},
        "c": STR}, ["c"])}, ["w"])
    assert P(wrapped, strict=True)["properties"]["w"] == {"type": "object", "properties": {
        "a": {"anyOf": [INT, NULL], "description": "A, Annotated outside"},
        "b": {"anyOf": [INT, NULL], "description": "B, Annotated inside"},
        "c": STR}, "required": ["a", "b", "c"], "additionalProperties": False}
    call = ToolSet([tool(wrapped, strict=True)]).prepare("wrapped", '{"w": {"a": null, "b": 2, "c": "s"}}')
    assert callable(call) and call() == {"b": 2, "c": "s"}  # null for a NotRequired key: left out


def test_evaluated_annotations_and_typing_aliases() -> None:
    item = obj({"sku": STR, "qty": {"type": "integer", "description": "How many"}}, ["sku"],
               description="One line of an order.")
    assert T(fx.place_order)["function"] == {
        "name": "place_order", "description": "Place an order.",
        "parameters": obj({
            "order": obj({"items": {"type": "array", "items": item},
                          "notes": {"type": "object", "additionalProperties": STR}},
                         ["items"], description="What to order."),
            "color": {"anyOf": [{"type": "string", "enum": ["red", "green"]}, NULL],
                      "description": "Wrapping colour."},
            "size": {"type": "array", "prefixItems": [INT, INT], "minItems": 2, "maxItems": 2},
            "code": {"anyOf": [INT, STR]},
        }, ["order"])}
    # an unresolvable return annotation does not matter; an unresolvable parameter does
    assert P(fx.unresolvable_return) == obj({"x": INT}, ["x"])
    with pytest.raises(ToolSchemaError, match=r"tool 'unresolvable_param', parameter 'x'.*AlsoNotDefined"):
        tool(fx.unresolvable_param)


# -- recursion -----------------------------------------------------------------------------------

def walk(root: Node, depth: int = 3) -> int:
    """Walk a tree."""
    return depth


NODE_DEF = obj({"value": INT, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}, ["value"],
               description="A tree node.")


def test_recursive_dataclass_uses_defs() -> None:
    assert P(walk) == {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}, "depth": INT},
                       "required": ["root"], "$defs": {"Node": NODE_DEF}}


def two_trees(a: Node, b: list[Node], t: Tree) -> None:
    """Two kinds of trees."""


def test_recursive_reused_and_typeddict() -> None:
    assert P(two_trees) == {"type": "object", "properties": {
        "a": {"$ref": "#/$defs/Node"},
        "b": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        "t": {"$ref": "#/$defs/Tree"},
    }, "required": ["a", "b", "t"], "$defs": {
        "Node": NODE_DEF,
        "Tree": obj({"label": STR, "kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
                    ["label", "kids"]),
    }}


def ping(p: Ping) -> None:
    """Mutual recursion."""


def test_mutual_recursion() -> None:
    pong = obj({"ping": {"$ref": "#/$defs/Ping"}}, ["ping"])
    assert P(ping) == {"type": "object", "properties": {"p": {"$ref": "#/$defs/Ping"}}, "required": ["p"],
                       "$defs": {"Ping": obj({"pong": {"anyOf": [pong, NULL]}}, [])}}


def documented_walk(root: Node) -> None:
    """Walk.

    Args:
        root: The root.
    """


def test_recursive_strict_inlines_refs_with_siblings() -> None:
    node_strict = {"type": "object", "properties": {
        "value": INT,
        "children": nullable({"type": "array", "items": {"$ref": "#/$defs/Node"}})},
        "required": ["value", "children"], "description": "A tree node.", "additionalProperties": False}
    assert P(documented_walk) == {"type": "object", "properties": {
        "root": {"$ref": "#/$defs/Node", "description": "The root."}}, "required": ["root"],
        "$defs": {"Node": NODE_DEF}}
    assert P(documented_walk, strict=True) == {"type": "object", "properties": {
        "root": {**node_strict, "description": "The root."}}, "required": ["root"],
        "$defs": {"Node": node_strict}, "additionalProperties": False}


# -- strict mode ---------------------------------------------------------------------------------

def strict_nested(shape: Shape, level: Optional[Level] = None, note: Annotated[str, "A note"] = "",
                  movie: Movie | None = None) -> None:
    """Strict."""


def test_strict_nested_model() -> None:
    point = {"type": "object", "properties": {"x": NUM, "y": nullable(NUM)}, "required": ["x", "y"],
             "description": "A point.", "additionalProperties": False}
    assert T(strict_nested, strict=True) == {"type": "function", "function": {
        "name": "strict_nested", "description": "Strict.", "strict": True,
        "parameters": {"type": "object", "properties": {
            "shape": {"type": "object", "properties": {
                "name": STR,
                "points": {"type": "array", "items": point},
                "tags": nullable({"type": "object", "additionalProperties": STR}),
            }, "required": ["name", "points", "tags"], "additionalProperties": False},
            "level": nullable({"type": "integer", "enum": [1, 2]}),
            "note": {"anyOf": [STR, NULL], "description": "A note"},
            "movie": nullable({"type": "object", "properties": {"title": STR, "year": nullable(INT)},
                               "required": ["title", "year"], "description": "A film.",
                               "additionalProperties": False}),
        }, "required": ["shape", "level", "note", "movie"], "additionalProperties": False}}}


def test_strict_without_parameters() -> None:
    def ping_() -> str:
        """Ping."""
        return "pong"
    assert T(ping_, strict=True)["function"] == {
        "name": "ping_", "description": "Ping.", "strict": True,
        "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False}}


# -- errors at tool() time -------------------------------------------------------------------------

def bad_class(x: Thing) -> None: ...
def bad_callable(cb: Callable[[int], str]) -> None: ...
def bad_bytes(data: bytes) -> None: ...
def bad_keys(d: dict[int, str]) -> None: ...
def bad_nested(s: list[Optional[dict[str, Thing]]]) -> None: ...
def bad_enum(e: Bad) -> None: ...
def no_annotation(x, y: int) -> None: ...  # type: ignore[no-untyped-def]
def star_args(*args: int) -> None: ...
def star_kwargs(a: int, **kw: int) -> None: ...


@dataclass
class HasThing:
    thing: Thing


def bad_field(h: HasThing) -> None: ...


def test_errors_at_tool_time() -> None:
    cases: list[tuple[Any, str]] = [
        (bad_class, r"^tool 'bad_class', parameter 'x': annotation Thing is not supported"),
        (bad_callable, r"^tool 'bad_callable', parameter 'cb': annotation Callable\[\[int\], str\] is not supported"),
        (bad_bytes, r"parameter 'data': annotation bytes is not supported"),
        (bad_keys, r"parameter 'd': annotation dict\[int, str\] has non-string keys"),
        (bad_nested, r"parameter 's': annotation Thing is not supported"),
        (bad_enum, r"parameter 'e': annotation Bad has the value \(1, 2\), which is not a JSON scalar"),
        (bad_field, r"parameter 'h' \(at HasThing.thing\): annotation Thing is not supported"),
        (no_annotation, r"^tool 'no_annotation': parameter 'x' has no type annotation"),
        (star_args, r"\*args cannot be described"),
        (star_kwargs, r"\*\*kw cannot be described"),
        (lambda x: x, r"needs a name"),
        (42, r"expected a function or a tool dict"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ToolSchemaError, match=pattern):
            tool(fn)
    with pytest.raises(TypeError):  # a TypeError, and the SDK's InvalidRequestError
        tool(bad_class)
    with pytest.raises(InvalidRequestError):
        tool(bad_class)
    with pytest.raises(ToolSchemaError, match="needs a name"):
        tool(get_weather, name="has space")
    with pytest.raises(ToolSchemaError, match="parameter 'x' has no type annotation"):
        tool(lambda x: x, name="ident")


def test_tool_dicts_pass_through() -> None:
    d = {"type": "function", "function": {"name": "x", "parameters": {"type": "object", "properties": {}}}}
    assert tool(d) is d
    assert tool({"type": "function", "function": {"name": "y"}}) == {"type": "function", "function": {"name": "y"}}
    bads: list[dict[str, Any]] = [{"name": "x"}, {"type": "function"}, {"type": "function", "function": {"name": ""}},
                                  {"type": "function", "function": {"name": "x", "parameters": "nope"}}]
    for bad in bads:
        with pytest.raises(ToolSchemaError):
            tool(bad)
    with pytest.raises(ToolSchemaError, match="apply to functions"):
        tool(d, strict=True)


# -- other callables, pydantic-like models -----------------------------------------------------------

class Service:
    def lookup(self, key: str, limit: int = 10) -> list[str]:
        """Look a key up."""
        return [key] * limit


class AsyncCallable:
    """Search the web."""

    async def __call__(self, query: str) -> str:
        return query


def test_methods_partials_callable_objects() -> None:
    assert T(Service().lookup)["function"] == {"name": "lookup", "description": "Look a key up.",
                                               "parameters": obj({"key": STR, "limit": INT}, ["key"])}
    part = functools.partial(get_weather, unit="f")
    assert P(part, name="weather_f") == obj({"city": STR, "unit": {"type": "string", "enum": ["c", "f"]}},
                                            ["city"])
    assert T(AsyncCallable(), name="search")["function"] == {
        "name": "search", "description": "Search the web.", "parameters": obj({"query": STR}, ["query"])}
    with pytest.raises(ToolSchemaError, match="needs a name"):
        tool(AsyncCallable())


class FakeModel:
    """Duck-typed like a pydantic v2 BaseModel (pydantic is not a dependency)."""

    def __init__(self, **data: Any) -> None:
        self.data = data

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        return {"type": "object", "title": "FakeModel",
                "properties": {"sub": {"$ref": "#/$defs/Sub"}, "n": {"type": "integer", "default": None}},
                "required": ["sub"],
                "$defs": {"Sub": {"type": "object", "properties": {"a": STR}, "required": ["a"], "title": "Sub"}}}

    @classmethod
    def model_validate(cls, value: Any) -> FakeModel:
        return cls(**value)


class OtherFake(FakeModel):
    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        return {"type": "object", "properties": {"s": {"$ref": "#/$defs/Sub"}}, "required": ["s"],
                "$defs": {"Sub": {"type": "object", "properties": {"b": INT}, "required": ["b"]}}}


def with_models(m: FakeModel, o: OtherFake) -> str:
    """Models."""
    return f"{type(m).__name__} {m.data}"


def test_pydantic_like_models_hoist_defs() -> None:
    sub = {"type": "object", "properties": {"a": STR}, "required": ["a"], "title": "Sub"}
    sub2 = {"type": "object", "properties": {"b": INT}, "required": ["b"]}
    assert P(with_models) == {"type": "object", "properties": {
        "m": {"type": "object", "title": "FakeModel",
              "properties": {"sub": {"$ref": "#/$defs/Sub"}, "n": {"type": "integer", "default": None}},
              "required": ["sub"]},
        "o": {"type": "object", "properties": {"s": {"$ref": "#/$defs/Sub2"}}, "required": ["s"]},
    }, "required": ["m", "o"], "$defs": {"Sub": sub, "Sub2": sub2}}
    strict = P(with_models, strict=True)
    assert strict["properties"]["m"] == {
        "type": "object", "title": "FakeModel", "additionalProperties": False, "required": ["sub", "n"],
        "properties": {"sub": {"$ref": "#/$defs/Sub"}, "n": nullable(INT)}}
    assert strict["$defs"]["Sub"] == {**sub, "additionalProperties": False}
    call = ToolSet([with_models]).prepare("with_models", '{"m": {"sub": {"a": "x"}}, "o": {"s": {"b": 1}}}')
    assert callable(call) and call() == "FakeModel {'sub': {'a': 'x'}}"


# -- ToolSet ---------------------------------------------------------------------------------------

def typed(u: Unit, p: Point, pair: tuple[int, Unit], shapes: Optional[list[Shape]] = None,
          tags: frozenset[str] = frozenset(), scale: float = 1.0, lvl: Level = Level.LOW) -> dict[str, Any]:
    """Converts arguments."""
    return {"u": u, "p": p, "pair": pair, "shapes": shapes, "tags": tags, "scale": scale, "lvl": lvl}


def test_prepare_converts_arguments() -> None:
    ts = ToolSet([typed])
    call = ts.prepare("typed", '{"u": "f", "p": {"x": 1}, "pair": [1, "c"], "tags": ["a", "a", "b"], "scale": 2,'
                               '"shapes": [{"name": "s", "points": [{"x": 2, "y": 3}]}], "lvl": 2}')
    assert callable(call)
    got = call()
    assert got == {"u": Unit.F, "p": Point(1.0), "pair": (1, Unit.C), "tags": {"a", "b"}, "scale": 2.0,
                   "shapes": [Shape("s", [Point(2, 3)])], "lvl": Level.HIGH}
    assert isinstance(got["scale"], float) and isinstance(got["p"].x, float) and isinstance(got["lvl"], Level)
    # Enum by member name as a fallback; defaults when omitted
    call = ts.prepare("typed", '{"u": "C", "p": {"x": 0, "y": 1}, "pair": [0, "f"]}')
    assert callable(call) and call()["u"] is Unit.C and call()["shapes"] is None and call()["lvl"] is Level.LOW


def test_prepare_null_means_default_and_nested_conversions() -> None:
    ts = ToolSet([tool(typed, strict=True), fx.place_order])
    # strict mode sends null for "not given": defaults are used where None is not accepted
    call = ts.prepare("typed", '{"u": "c", "p": {"x": 1, "y": null}, "pair": [1, "f"], "shapes": null,'
                               '"tags": null, "scale": null, "lvl": null}')
    assert callable(call)
    assert call() == {"u": Unit.C, "p": Point(1.0, 0.0), "pair": (1, Unit.F), "shapes": None,
                      "tags": frozenset(), "scale": 1.0, "lvl": Level.LOW}
    call = ts.prepare("place_order", '{"order": {"items": [{"sku": "a", "qty": 2}, {"sku": "b"}]},'
                                     '"color": "red", "size": [2, 3], "code": "X"}')
    assert callable(call) and call() == "2 Color.RED (2, 3) X"
    assert isinstance(call, functools.partial) and call.keywords["order"] == fx.Order(
        [fx.Item("a", 2), fx.Item("b")])


def union_arms(v: Union[Point, Unit, int], w: Union[Node, Movie]) -> tuple[Any, Any]:
    """Union conversion."""
    return v, w


def test_prepare_union_picks_the_matching_arm() -> None:
    ts = ToolSet([union_arms])
    for raw, want in [('{"x": 1}', Point(1.0)), ('"f"', Unit.F), ("3", 3)]:
        call = ts.prepare("union_arms", f'{{"v": {raw}, "w": {{"title": "t"}}}}')
        assert callable(call) and call() == (want, {"title": "t"})
    call = ts.prepare("union_arms", '{"v": 1, "w": {"value": 1, "children": [{"value": 2}]}}')
    assert callable(call) and call() == (1, Node(1, [Node(2)]))


def positional_only(a: int, b: int = 2, /, c: int = 3, *, d: int = 4) -> tuple[int, ...]:
    """Positional-only parameters."""
    return a, b, c, d


def test_prepare_positional_only_and_keyword_only() -> None:
    ts = ToolSet([positional_only])
    for args, want in [('{"a": 1}', (1, 2, 3, 4)), ('{"a": 1, "b": 5, "d": 6}', (1, 5, 3, 6)),
                       ('{"c": 7, "a": 0}', (0, 2, 7, 4))]:
        call = ts.prepare("positional_only", args)
        assert callable(call) and call() == want


def test_prepare_errors() -> None:
    ts = ToolSet([typed, get_weather, {"type": "function", "function": {"name": "external", "parameters": {}}}])
    for name, args, fragment in [
        ("nope", "{}", "error: unknown tool 'nope'; the tools you can call are: typed, get_weather"),
        ("external", "{}", "error: tool 'external' has no Python function to run here"),
        ("typed", "{bad", "error: the arguments for 'typed' are not valid JSON"),
        ("typed", "[1]", "error: the arguments for 'typed' must be a JSON object, got array"),
        ("typed", '"s"', "must be a JSON object, got string"),
        ("typed", "null", "must be a JSON object, got null"),
        ("typed", '{"u": "f"}', "error: 'typed' is missing required argument(s) 'p', 'pair'"),
        ("get_weather", '{"city": "x", "zzz": 1}',
         "error: 'get_weather' got unexpected argument(s) 'zzz'; its parameters are: city, unit"),
        ("get_weather", '{"city": null}', "error: invalid value for argument 'city' of 'get_weather': null is not allowed"),
        ("typed", '{"u": "kelvin", "p": {"x": 1}, "pair": [1, "c"]}',
         "error: invalid value for argument 'u' of 'typed': 'kelvin' is not one of ['c', 'f']"),
        ("typed", '{"u": "c", "p": {"x": 1, "z": 2}, "pair": [1, "c"]}', "Point has no field 'z'"),
        ("typed", '{"u": "c", "p": {"y": 2}, "pair": [1, "c"]}', "Point is missing the field(s) 'x'"),
        ("typed", '{"u": "c", "p": [1], "pair": [1, "c"]}', "expected an object for Point, got array"),
        ("typed", '{"u": "c", "p": {"x": 1}, "pair": [1]}', "argument 'pair' of 'typed': expected 2 items, got 1"),
    ]:
        r = ts.prepare(name, args)
        assert isinstance(r, str) and r.startswith("error: ") and fragment in r, r
    call = ts.prepare("get_weather", '{"city": "x", "unit": null}')
    assert callable(call) and call() == "sunny in x (c)"


def test_empty_arguments_count_as_empty_object() -> None:
    def now() -> str:
        """Time."""
        return "12:00"
    ts = ToolSet([now, get_weather])
    for args in ("", "  ", "{}", b"", b"{}"):
        call = ts.prepare("now", args)  # type: ignore[arg-type]
        assert callable(call) and call() == "12:00"
    assert ts.prepare("get_weather", "") == "error: 'get_weather' is missing required argument(s) 'city'"
    call = ts.prepare("get_weather", {"city": "Rome"})  # type: ignore[arg-type]  # already decoded
    assert callable(call) and call() == "sunny in Rome (c)"


async def fetch(url: str, unit: Unit = Unit.C) -> dict[str, str]:
    """Fetch."""
    await asyncio.sleep(0)
    return {"url": url, "unit": unit.value}


def test_async_tool_returns_awaitable() -> None:
    call = ToolSet([fetch]).prepare("fetch", '{"url": "u", "unit": "f"}')
    assert callable(call)
    aw = call()
    assert inspect.isawaitable(aw)
    assert asyncio.run(aw) == {"url": "u", "unit": "f"}  # type: ignore[arg-type]
    call = ToolSet([tool(AsyncCallable(), name="search")]).prepare("search", '{"query": "q"}')
    assert callable(call)
    assert asyncio.run(call()) == "q"


def test_toolset_construction() -> None:
    d = {"type": "function", "function": {"name": "external", "parameters": {"type": "object", "properties": {}}}}
    strict = tool(get_weather, strict=True, name="weather")
    ts = ToolSet([typed, d, strict, Service().lookup])
    assert [s["function"]["name"] for s in ts.schemas] == ["typed", "external", "weather", "lookup"]
    assert all(type(s) is dict for s in ts.schemas)  # plain dicts, ready to send
    assert ts.schemas[2] == strict and ts.schemas[2]["function"]["strict"] is True
    assert list(ts.functions) == ["typed", "weather", "lookup"]  # a tool(fn) dict keeps its function
    assert ts.functions["weather"] is get_weather
    call = ts.prepare("weather", '{"city": "Oslo", "unit": null}')
    assert callable(call) and call() == "sunny in Oslo (c)"
    assert repr(ts) == "ToolSet(['typed', 'external', 'weather', 'lookup'])"
    assert ToolSet([]).schemas == [] and ToolSet([]).prepare("x", "{}") == (
        "error: unknown tool 'x'; the tools you can call are: none")
    with pytest.raises(ToolSchemaError, match="two tools are named 'get_weather'"):
        ToolSet([get_weather, get_weather])
    for bad in (get_weather, "get_weather", d):
        with pytest.raises(ToolSchemaError, match="expected a list"):
            ToolSet(bad)  # type: ignore[arg-type]
    with pytest.raises(ToolSchemaError, match="parameter 'x'"):
        ToolSet([bad_class])


def test_is_async_tool() -> None:
    async def coro() -> None: ...

    class Sync:
        def __call__(self) -> None: ...

    class Async(AsyncCallable):
        pass

    assert is_async_tool(fetch) and is_async_tool(coro) and is_async_tool(functools.partial(fetch, "u"))
    assert is_async_tool(AsyncCallable()) and is_async_tool(Async())
    assert not is_async_tool(get_weather) and not is_async_tool(Sync()) and not is_async_tool(AsyncCallable)
    assert not is_async_tool(Service().lookup) and not is_async_tool(functools.partial(get_weather))


# -- results ---------------------------------------------------------------------------------------

class Unprintable:
    def __str__(self) -> str:
        return "<unprintable>"


def test_format_result() -> None:
    assert format_result("plain") == "plain"
    assert format_result("") == ""
    assert format_result(None) == "null"
    assert format_result(3) == "3" and format_result(1.5) == "1.5" and format_result(True) == "true"
    assert format_result({"a": [1, 2], "b": (3, None)}) == '{"a":[1,2],"b":[3,null]}'
    assert format_result(Point(1.0)) == '{"x":1.0,"y":0.0}'
    assert format_result(Shape("s", [Point(1, 2)])) == '{"name":"s","points":[{"x":1,"y":2}],"tags":{}}'
    assert format_result(Unit.C) == '"c"' and format_result([Level.HIGH]) == "[2]"
    assert format_result({2, 1}) == "[1,2]" and format_result({"k": frozenset({"b", "a"})}) == '{"k":["a","b"]}'
    assert format_result({1: "a"}) == '{"1":"a"}'
    assert format_result(b"bytes") == '"bytes"' and format_result(Decimal("1.5")) == '"1.5"'
    assert format_result(Unprintable()) == "<unprintable>"
    assert format_result({"x": Unprintable(), "n": 1}) == '{"x":"<unprintable>","n":1}'
    assert format_result(2**70) == str(2**70)

    class Dumps:
        def model_dump(self, mode: str = "python") -> dict[str, str]:
            return {"mode": mode}
    assert format_result(Dumps()) == '{"mode":"json"}'


def test_format_exception() -> None:
    assert format_exception(ValueError("nope")) == "error: ValueError: nope"
    assert format_exception(KeyError("k")) == "error: KeyError: 'k'"
    assert format_exception(RuntimeError()) == "error: RuntimeError"
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as e:
        assert format_exception(e) == "error: ZeroDivisionError: division by zero"


def test_the_fixture_module_has_no_future_import() -> None:
    assert "annotations" not in vars(fx)
    assert dataclasses.fields(fx.Item)[0].type is str  # evaluated, not a string
    assert typing.get_type_hints(fx.Item)["sku"] is str
