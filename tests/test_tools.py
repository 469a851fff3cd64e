"""tool(fn): JSON schemas from typed functions, compared with hand-written ones; ToolSet.prepare."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

import pytest

from vllm_client import tool
from vllm_client._tools import ToolSchemaError, ToolSet, format_exception, format_result, parse_docstring


class Unit(enum.Enum):
    C = "c"
    F = "f"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


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


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


class Loose(TypedDict, total=False):
    a: int


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather for a city.

    Args:
        city: The city name.
        unit: Temperature unit,
            Celsius or Fahrenheit.
    """
    return city


def test_google_docstring_and_literal() -> None:
    assert tool(get_weather) == {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city name."},
            "unit": {"type": "string", "enum": ["c", "f"], "description": "Temperature unit, Celsius or Fahrenheit."}},
            "required": ["city"]}}}


def numpy_style(a: int, b: list[float]) -> float:
    """Add things up.

    Longer text that is not the summary.

    Parameters
    ----------
    a : int
        The first.
    b : list of float
        The rest,
        all of them.

    Returns
    -------
    float
    """
    return 0.0


def rest_style(path: str, mode: Optional[str] = None) -> None:
    """Open a file.

    :param path: Where it is.
    :param str mode: How to open it.
    :returns: nothing
    """


def test_numpy_and_rest_docstrings() -> None:
    assert tool(numpy_style)["function"] == {
        "name": "numpy_style", "description": "Add things up.",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "integer", "description": "The first."},
            "b": {"type": "array", "items": {"type": "number"}, "description": "The rest, all of them."}},
            "required": ["a", "b"]}}
    assert tool(rest_style)["function"]["parameters"] == {"type": "object", "properties": {
        "path": {"type": "string", "description": "Where it is."},
        "mode": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "How to open it."}},
        "required": ["path"]}


def all_types(s: str, i: int, f: float, b: bool, n: None, opt: int | None, seq: Sequence[str],
              d: dict[str, int], t: tuple[int, str], tv: tuple[float, ...], st: set[str], u: Unit, lv: Level,
              lit: Literal[1, 2], any_: Any, un: Union[int, str],
              ann: Annotated[str, "Described via Annotated"], p: Point, m: Movie, lo: Loose) -> None:
    """Everything."""


def test_every_supported_type() -> None:
    props = tool(all_types)["function"]["parameters"]["properties"]
    point = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
             "required": ["x"], "description": "A point."}
    assert props == {
        "s": {"type": "string"}, "i": {"type": "integer"}, "f": {"type": "number"}, "b": {"type": "boolean"},
        "n": {"type": "null"}, "opt": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "seq": {"type": "array", "items": {"type": "string"}},
        "d": {"type": "object", "additionalProperties": {"type": "integer"}},
        "t": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2},
        "tv": {"type": "array", "items": {"type": "number"}},
        "st": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "u": {"type": "string", "enum": ["c", "f"]}, "lv": {"type": "integer", "enum": [1, 2]},
        "lit": {"type": "integer", "enum": [1, 2]}, "any_": {},
        "un": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "ann": {"type": "string", "description": "Described via Annotated"},
        "p": point,
        "m": {"type": "object", "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
              "required": ["title"]},
        "lo": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": []},
    }


def nested(shape: Shape) -> None:
    """Nested models."""


def test_nested_dataclasses_and_strict() -> None:
    point = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
             "required": ["x"], "description": "A point."}
    shape = {"type": "object", "properties": {
        "name": {"type": "string"}, "points": {"type": "array", "items": point},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}}}, "required": ["name", "points"]}
    assert tool(nested)["function"]["parameters"]["properties"]["shape"] == shape
    strict = tool(nested, strict=True)["function"]
    assert strict["strict"] is True
    s = strict["parameters"]["properties"]["shape"]
    assert s["additionalProperties"] is False and s["required"] == ["name", "points", "tags"]
    assert s["properties"]["tags"]["anyOf"][1] == {"type": "null"}  # optional -> nullable
    p = s["properties"]["points"]["items"]
    assert p["additionalProperties"] is False and p["required"] == ["x", "y"]
    assert p["properties"]["y"] == {"anyOf": [{"type": "number"}, {"type": "null"}]}
    assert strict["parameters"]["additionalProperties"] is False


class Thing:
    pass


@dataclass
class Node:
    child: Optional[Node]


def test_errors_at_tool_time() -> None:
    def bad_type(x: Thing) -> None: ...
    def no_annotation(x) -> None: ...  # type: ignore[no-untyped-def]
    def star(*args: int) -> None: ...
    def bad_keys(d: dict[int, str]) -> None: ...

    with pytest.raises(ToolSchemaError, match="parameter 'x'.*Thing"):
        tool(bad_type)
    with pytest.raises(ToolSchemaError, match="'x' has no type annotation"):
        tool(no_annotation)
    with pytest.raises(ToolSchemaError, match=r"\*args"):
        tool(star)
    with pytest.raises(ToolSchemaError, match="non-string keys"):
        tool(bad_keys)
    with pytest.raises(TypeError):  # also a TypeError (and an InvalidRequestError)
        tool(bad_type)

    def rec(n: Node) -> None: ...
    with pytest.raises(ToolSchemaError, match="refers to itself"):
        tool(rec)


def test_tool_dict_passthrough_and_names() -> None:
    d = {"type": "function", "function": {"name": "x", "parameters": {"type": "object", "properties": {}}}}
    assert tool(d) is d
    with pytest.raises(ToolSchemaError):
        tool({"name": "x"})
    assert tool(get_weather, name="weather", description="W")["function"]["name"] == "weather"
    with pytest.raises(ToolSchemaError, match="two tools"):
        ToolSet([get_weather, get_weather])


def typed(u: Unit, p: Point, pair: tuple[int, int], shapes: list[Shape] | None = None) -> str:
    """Converts arguments."""
    assert isinstance(u, Unit) and isinstance(p, Point) and isinstance(pair, tuple)
    assert shapes is None or isinstance(shapes[0].points[0], Point)
    return f"{u.value} {p.x} {pair}"


def test_prepare_converts_arguments_and_reports_errors() -> None:
    ts = ToolSet([typed, get_weather, {"type": "function", "function": {"name": "external", "parameters": {}}}])
    call = ts.prepare("typed", '{"u": "f", "p": {"x": 1}, "pair": [1, 2], '
                               '"shapes": [{"name": "s", "points": [{"x": 2, "y": 3}]}]}')
    assert callable(call) and call() == "f 1.0 (1, 2)"
    for name, args, fragment in [
        ("nope", "{}", "unknown tool 'nope'"), ("typed", "{bad", "not valid JSON"), ("typed", "[1]", "JSON object"),
        ("typed", '{"u": "f"}', "missing required"), ("get_weather", '{"city": "x", "zzz": 1}', "no parameter"),
        ("typed", '{"u": "kelvin", "p": {"x": 1}, "pair": [1, 2]}', "bad argument"),
        ("external", "{}", "unknown tool"),
    ]:
        r = ts.prepare(name, args)
        assert isinstance(r, str) and r.startswith("error: ") and fragment in r, r
    assert [s["function"]["name"] for s in ts.schemas] == ["typed", "get_weather", "external"]


def test_empty_arguments_count_as_empty_object() -> None:
    def now() -> str:
        """Time."""
        return "12:00"
    call = ToolSet([now]).prepare("now", "")
    assert callable(call) and call() == "12:00"


def test_async_tool_returns_awaitable() -> None:
    async def fetch(url: str) -> dict[str, str]:
        """Fetch."""
        return {"url": url}
    call = ToolSet([fetch]).prepare("fetch", '{"url": "u"}')
    assert callable(call)
    assert asyncio.run(call()) == {"url": "u"}


def test_format_result_and_exception() -> None:
    assert format_result("plain") == "plain"
    assert format_result({"a": [1, 2]}) == '{"a":[1,2]}'
    assert format_result(None) == "null"
    assert format_result(Point(1.0)) == '{"x":1.0,"y":0.0}'
    assert format_result(Unit.C) == '"c"'
    assert format_result({1, 2}) in ("[1,2]", "[2,1]")
    assert format_exception(ValueError("nope")) == "error: ValueError: nope"


def test_docstring_parser_edge_cases() -> None:
    assert parse_docstring(None) == (None, {})
    assert parse_docstring("Just a summary\nspanning lines.") == ("Just a summary spanning lines.", {})
