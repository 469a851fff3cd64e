"""Structured outputs into typed objects (response_format(T) & co.), each behaviour on both
clients: the schema on the wire (strict-mode rules), .parsed for every kind of type, typed
failures (invalid JSON, validation, length cut), refusals, re-asks, streamed partials,
conversations and batches. Pydantic tests are skipped when pydantic is not installed."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import enum
import json
import random
from pathlib import Path
from typing import Any, Literal, Optional, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_client import (
    InvalidRequestError,
    MockResponse,
    MockTransport,
    OutputParseError,
    PartialParsed,
    VllmClient,
    VllmError,
)
from vllm_client._structured import PartialJSON, structured_output

from ._both import CLIENTS, Model, call, close, drain, make, reply, stream_reply


async def drain_copying(kind: str, stream: Any) -> list[Any]:
    """Every event, each PartialParsed with a snapshot of its value taken as it arrived (the value
    itself is one object that grows in place)."""
    def snap(ev: Any) -> Any:
        return PartialParsed(copy.deepcopy(ev.value), ev.index) if isinstance(ev, PartialParsed) else ev

    if kind == "sync":
        return await asyncio.to_thread(lambda: [snap(e) for e in stream])
    return [snap(e) async for e in stream]

try:
    import pydantic
except ImportError:  # the SDK's own conversion is tested either way
    pydantic = None  # type: ignore[assignment]

needs_pydantic = pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")
URL = "http://structured.test/v1"
WIRE = Path(__file__).parent / "wire"


# -- the types -------------------------------------------------------------------------------

class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Item:
    name: str
    qty: int
    color: Color = Color.RED


@dataclasses.dataclass
class Order:
    """An order."""

    id: int
    items: list[Item]
    note: Optional[str] = None  # noqa: UP045 (the Optional spelling is tested too)


class Address(TypedDict):
    city: str
    zip: int


class Person(TypedDict):
    name: str
    home: Address
    tags: list[str]


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node]


@dataclasses.dataclass
class Weather:  # the schema of the recorded vLLM body
    city: Literal["Paris", "Rome", "Oslo"]
    sunny: bool


if pydantic is not None:
    class PItem(pydantic.BaseModel):
        name: str
        qty: int = 1

    class POrder(pydantic.BaseModel):
        id: int
        items: list[PItem]
        note: str | None = None


# -- helpers ---------------------------------------------------------------------------------

def builder(client: Any) -> Any:
    return client.chat.completions().create().model("m").user_message("go")


def assert_strict(schema: dict[str, Any], root: dict[str, Any] | None = None) -> None:
    """OpenAI's strict-schema rules: every object with properties is closed and requires all of
    them; every $ref points into the root's $defs."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        assert name in root.get("$defs", {}), schema["$ref"]
    if "properties" in schema:
        assert schema.get("additionalProperties") is False, schema
        assert schema["required"] == list(schema["properties"]), schema
    for v in schema.values():
        subs = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) and v and all(
            isinstance(x, dict) for x in v.values()) else [v]
        for sub in subs:
            if isinstance(sub, dict):
                assert_strict(sub, root)


ORDER = {"id": 7, "items": [{"name": "pen", "qty": 2, "color": "green"}, {"name": "ink", "qty": 1}],
         "note": None}
PERSON = {"name": "Ming", "home": {"city": "Oslo", "zip": 150}, "tags": ["a", "b"]}
TREE = {"value": 1, "children": [{"value": 2, "children": []}, {"value": 3, "children": [
    {"value": 4, "children": []}]}]}


# -- the schema on the wire and .parsed, per kind of type -------------------------------------

CASES = [
    (Order, ORDER, Order(7, [Item("pen", 2, Color.GREEN), Item("ink", 1)], None)),
    (Person, PERSON, PERSON),
    (Node, TREE, Node(1, [Node(2, []), Node(3, [Node(4, [])])])),
    (list[Item], [{"name": "a", "qty": 1, "color": "red"}], [Item("a", 1)]),
    (Color, "green", Color.GREEN),
    (Optional[Address], None, None),  # noqa: UP045
]


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("setter", ["response_format", "json_schema", "structured_outputs"])
@pytest.mark.parametrize(("tp", "value", "expected"), CASES, ids=lambda x: getattr(x, "__name__", None))
async def test_each_kind_of_type_goes_on_the_wire_and_comes_back_parsed(
        kind: str, setter: str, tp: Any, value: Any, expected: Any) -> None:
    model = Model(reply(json.dumps(value)))
    client = make(kind, URL, transport=MockTransport(model))
    b = builder(client)
    b = b.structured_outputs(json=tp) if setter == "structured_outputs" else getattr(b, setter)(tp)
    resp = await call(kind, b, "send")
    await close(kind, client)
    assert resp.parsed == expected and resp.choices[0].parsed == expected
    body = model.bodies[0]
    if setter == "structured_outputs":
        schema = body["structured_outputs"]["json"]
    else:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["name"] == (tp.__name__ if isinstance(tp, type) else "output")
        schema = fmt["json_schema"]["schema"]
    assert schema == structured_output(tp).schema  # the one converter: type_schema(T, strict=True)
    assert_strict(schema)


def test_recursive_and_nested_schemas_use_defs_and_strict_rules() -> None:
    s = structured_output(Node).schema
    assert s["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert s["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    s = structured_output(Order).schema
    assert s["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert s["required"] == ["id", "items", "note"] and s["additionalProperties"] is False
    assert s["properties"]["items"]["items"]["properties"]["color"] == {  # a default: null means "not given"
        "anyOf": [{"type": "string", "enum": ["red", "green"]}, {"type": "null"}]}
    assert structured_output(Order).parse('{"id": 1, "items": [{"name": "a", "qty": 1, "color": null}], '
                                          '"note": null}') == Order(1, [Item("a", 1)])
    assert s["description"] == "An order."


def test_the_recorded_vllm_json_schema_body_parses_into_the_dataclass() -> None:
    body = json.loads((WIRE / "vllm032_main-chat-response-format-json-schema.json").read_text())
    client = VllmClient(URL, transport=MockTransport(lambda r: MockResponse(json=body)))
    resp = builder(client).json_schema(Weather, name="weather").send()
    assert resp.parsed == Weather("Paris", True)
    sent = client._transport.requests[0].json()["response_format"]["json_schema"]
    assert sent["name"] == "weather"
    assert sent["schema"] == {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"], "additionalProperties": False}


class Answer(enum.Enum):
    YES = "yes"
    NO = "no"


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(("choice", "expected"), [(Answer, Answer.NO), (Literal["yes", "no"], "no")])
async def test_choice_of_an_enum_or_literal(kind: str, choice: Any, expected: Any) -> None:
    body = json.loads((WIRE / "vllm032_main-chat-structured-outputs-choice.json").read_text())
    model = Model(MockResponse(json=body), reply("maybe"))
    client = make(kind, URL, transport=MockTransport(model))
    resp = await call(kind, builder(client).structured_outputs(choice=choice), "send")
    assert resp.parsed == expected and resp.content == "no"
    assert model.bodies[0]["structured_outputs"] == {"choice": ["yes", "no"]}
    with pytest.raises(OutputParseError, match="not one of the choices") as e:
        await call(kind, builder(client).structured_outputs(choice=choice), "send")
    await close(kind, client)
    assert e.value.content == "maybe"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_schema_dict_or_no_schema_gives_parsed_none(kind: str) -> None:
    model = Model(reply('{"a": 1}'), reply('{"a": 1}'), reply("x"))
    client = make(kind, URL, transport=MockTransport(model))
    assert (await call(kind, builder(client).json_schema({"type": "object"}), "send")).parsed is None
    typed_then_dict = builder(client).response_format(Order).response_format({"type": "json_object"})
    assert (await call(kind, typed_then_dict, "send")).parsed is None
    assert (await call(kind, builder(client), "send")).parsed is None
    await close(kind, client)
    assert model.bodies[0]["response_format"]["json_schema"]["name"] == "output"


def test_a_type_without_a_json_schema_fails_before_sending() -> None:
    client = VllmClient(URL, transport=MockTransport(lambda r: reply("{}")))
    for bad in (lambda b: b.response_format(bytes), lambda b: b.json_schema(complex),
                lambda b: b.structured_outputs(json=set[bytes]), lambda b: b.structured_outputs(choice=int),
                lambda b: b.response_format("json")):
        with pytest.raises(InvalidRequestError):
            bad(builder(client))
    assert client._transport.requests == []


# -- pydantic ----------------------------------------------------------------------------------

@needs_pydantic
@pytest.mark.parametrize("kind", CLIENTS)
async def test_pydantic_models_are_built_by_pydantic(kind: str) -> None:
    good = '{"id": 1, "items": [{"name": "a", "qty": 3}], "note": "n"}'
    model = Model(reply(good), reply('{"id": "one", "items": []}'))
    client = make(kind, URL, transport=MockTransport(model))
    resp = await call(kind, builder(client).response_format(POrder), "send")
    assert isinstance(resp.parsed, POrder) and resp.parsed.items[0] == PItem(name="a", qty=3)
    schema = model.bodies[0]["response_format"]["json_schema"]["schema"]
    assert_strict(schema)
    pitem = schema["$defs"]["PItem"]
    assert pitem["required"] == ["name", "qty"] and pitem["properties"]["qty"]["type"] == "integer"  # not nullable
    with pytest.raises(OutputParseError) as e:
        await call(kind, builder(client).response_format(POrder), "send")
    await close(kind, client)
    assert e.value.errors[0]["loc"] == ["id"] and e.value.errors[0]["type"] == "int_parsing"
    assert e.value.content == '{"id": "one", "items": []}' and e.value.response.content == e.value.content


@needs_pydantic
def test_a_pydantic_model_inside_a_dataclass_and_in_a_list() -> None:
    @dataclasses.dataclass
    class Box:
        items: list[PItem]

    out = structured_output(Box).parse('{"items": [{"name": "a", "qty": 2}]}')
    assert out == Box([PItem(name="a", qty=2)])
    with pytest.raises(OutputParseError) as e:
        structured_output(Box).parse('{"items": [{"name": "a", "qty": "x"}]}')
    assert e.value.errors[0]["loc"] == ["items", 0, "qty"]
    assert structured_output(list[PItem]).parse('[{"name": "b"}]') == [PItem(name="b", qty=1)]


def test_typeddicts_from_typing_are_not_routed_through_pydantic() -> None:
    # pydantic refuses typing.TypedDict before Python 3.12; the SDK converts them itself
    assert structured_output(Person).parse(json.dumps(PERSON)) == PERSON


# -- typed failures, nothing lost --------------------------------------------------------------

BAD = [
    (Order, '{"id": 1, "items": [', "not valid JSON"),
    (Order, '{"id": "1", "items": []}', "id: expected an integer, got string '1'"),
    (Order, '{"items": []}', "Order is missing the field(s) 'id'"),
    (Order, '{"id": 1, "items": [{"name": "a", "qty": 1, "color": "blue"}]}',
     "items.0.color: 'blue' is not one of ['red', 'green']"),
    (Order, '{"id": 1, "items": [], "extra": 1}', "Order has no field 'extra'"),
    (Person, '{"name": "a", "home": {"city": "x"}, "tags": []}', "home: Address is missing the key(s) 'zip'"),
    (Person, '{"name": "a", "home": {"city": "x", "zip": 1}, "tags": [1]}', "tags.0: expected a string, got number 1"),
    (Person, '{"name": null, "home": {"city": "x", "zip": 1}, "tags": []}', "name: expected str, got null"),
    (Weather, '{"city": "Paris", "sunny": 1}', "sunny: expected a boolean, got number 1"),
]


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(("tp", "text", "fragment"), BAD)
async def test_invalid_output_raises_output_parse_error_keeping_everything(
        kind: str, tp: Any, text: str, fragment: str) -> None:
    client = make(kind, URL, transport=MockTransport(Model(reply(text))))
    with pytest.raises(OutputParseError) as e:
        await call(kind, builder(client).response_format(tp), "send")
    await close(kind, client)
    err = e.value
    assert isinstance(err, VllmError) and isinstance(err, ValueError)
    assert fragment in str(err)
    assert err.content == text and err.response.content == text and err.response.id == "x"
    assert err.errors and all("msg" in x and "loc" in x for x in err.errors)


def test_every_problem_is_reported_with_its_location() -> None:
    with pytest.raises(OutputParseError) as e:
        structured_output(Order).parse('{"id": "x", "items": [{"name": 1, "qty": 1.5}]}')
    assert [x["loc"] for x in e.value.errors] == [["id"], ["items", 0, "name"], ["items", 0, "qty"]]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_length_cut_raises_saying_so(kind: str) -> None:
    client = make(kind, URL, transport=MockTransport(Model(reply('{"id": 1, "ite', finish="length"))))
    with pytest.raises(OutputParseError, match="cut at max_tokens") as e:
        await call(kind, builder(client).response_format(Order).max_tokens(5), "send")
    await close(kind, client)
    assert e.value.content == '{"id": 1, "ite' and e.value.response.finish_reason == "length"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_refusal_gives_parsed_none_and_the_refusal(kind: str) -> None:
    client = make(kind, URL, transport=MockTransport(Model(reply(None, refusal="I can't help with that."))))
    resp = await call(kind, builder(client).response_format(Order), "send")
    await close(kind, client)
    assert resp.parsed is None and resp.refusal == "I can't help with that."


@pytest.mark.parametrize("kind", CLIENTS)
async def test_every_choice_is_parsed(kind: str) -> None:
    answers = [json.dumps({"id": i, "items": []}) for i in range(3)]
    client = make(kind, URL, transport=MockTransport(Model(reply(None, contents=answers))))
    resp = await call(kind, builder(client).response_format(Order).n(3), "send")
    await close(kind, client)
    assert [c.parsed for c in resp.choices] == [Order(i, []) for i in range(3)]
    assert resp.parsed == Order(0, [])


def test_a_code_fenced_answer_still_parses() -> None:
    text = '```json\n{"id": 3, "items": []}\n```'
    assert structured_output(Order).parse(text) == Order(3, [])


# -- re-ask ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_parse_retries_sends_the_error_back_and_asks_again(kind: str) -> None:
    model = Model(reply("Sure! Here it is"), reply('{"id": "7", "items": []}'), reply('{"id": 7, "items": []}'))
    client = make(kind, URL, transport=MockTransport(model))
    resp = await call(kind, builder(client).response_format(Order).parse_retries(2), "send")
    await close(kind, client)
    assert resp.parsed == Order(7, [])
    assert len(model.bodies) == 3
    second = model.bodies[1]["messages"]
    assert second[:1] == [{"role": "user", "content": "go"}]
    assert second[1] == {"role": "assistant", "content": "Sure! Here it is"}
    assert second[2]["role"] == "user" and "invalid JSON" in second[2]["content"]
    third = model.bodies[2]["messages"]
    assert len(third) == 5 and "id: expected an integer" in third[4]["content"]
    assert all(b["response_format"] == model.bodies[0]["response_format"] for b in model.bodies)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_parse_retries_gives_up_after_n_and_never_re_asks_a_length_cut(kind: str) -> None:
    model = Model(*[reply("no") for _ in range(3)], reply('{"id', finish="length"), reply("no"))
    client = make(kind, URL, transport=MockTransport(model))
    with pytest.raises(OutputParseError, match="not valid JSON"):
        await call(kind, builder(client).response_format(Order).parse_retries(2), "send")
    assert len(model.bodies) == 3  # n + 1 requests
    with pytest.raises(OutputParseError, match="cut at max_tokens"):
        await call(kind, builder(client).response_format(Order).parse_retries(2), "send")
    assert len(model.bodies) == 4
    with pytest.raises(OutputParseError):  # without parse_retries: one request
        await call(kind, builder(client).response_format(Order), "send")
    await close(kind, client)


def test_parse_retries_rejects_a_bad_count() -> None:
    client = VllmClient(URL, transport=MockTransport(lambda r: reply("{}")))
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(InvalidRequestError):
            builder(client).parse_retries(bad)


# -- streaming ---------------------------------------------------------------------------------

def split_text(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(text):
        j = i + rng.randint(1, 6)
        pieces.append(text[i:j])
        i = j
    return pieces


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_a_stream_yields_growing_partials_and_a_parsed_done(kind: str, seed: int) -> None:
    text = json.dumps(ORDER)
    client = make(kind, URL, transport=MockTransport(Model(stream_reply(split_text(text, seed)))))
    stream = await call(kind, builder(client).response_format(Order), "send_stream")
    events = await drain_copying(kind, stream)
    await close(kind, client)
    snapshots = []
    for ev in events:
        if isinstance(ev, PartialParsed):
            assert ev.type == "partial" and ev.index == 0
            snapshots.append(ev.value)
    assert snapshots and snapshots[-1] == ORDER
    assert all(a != b for a, b in zip(snapshots, snapshots[1:], strict=False))  # only when it grew
    assert {"id": 7} in snapshots or {"id": 7, "items": []} in snapshots
    done = events[-1]
    assert done.type == "done" and done.response.parsed == Order(7, [Item("pen", 2, Color.GREEN), Item("ink", 1)])


@pytest.mark.parametrize("kind", CLIENTS)
async def test_final_response_of_a_typed_stream_is_parsed_and_errors_are_typed(kind: str) -> None:
    model = Model(stream_reply(['{"id": 1, ', '"items": []}']), stream_reply(['{"id": "x", ', '"items": []}']),
                  stream_reply(['{"id": 1, '], finish="length"))
    client = make(kind, URL, transport=MockTransport(model))
    stream = await call(kind, builder(client).response_format(Order), "send_stream")
    assert (await call(kind, stream, "final_response")).parsed == Order(1, [])
    for fragment in ("id: expected an integer", "cut at max_tokens"):
        stream = await call(kind, builder(client).response_format(Order), "send_stream")
        with pytest.raises(OutputParseError, match=fragment) as e:
            await call(kind, stream, "final_response")
        assert e.value.response.content == e.value.content
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_the_recorded_openai_structured_stream(kind: str) -> None:
    @dataclasses.dataclass
    class Location:
        city: str
        temperature: float
        units: Literal["c", "f"]

    data = (WIRE / "openai_json-schema-content.sse").read_bytes()
    client = make(kind, URL, transport=MockTransport(lambda r: MockResponse(body=[data])))
    stream = await call(kind, builder(client).response_format(Location), "send_stream")
    events = await drain(kind, stream)
    await close(kind, client)
    partials = [copy.deepcopy(e.value) for e in events if isinstance(e, PartialParsed)]
    assert partials[-1] == {"city": "San Francisco", "temperature": 61, "units": "f"}
    assert events[-1].response.parsed == Location("San Francisco", 61.0, "f")


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_streamed_refusal_and_an_untyped_stream(kind: str) -> None:
    data = (WIRE / "openai_refusal.sse").read_bytes()
    client = make(kind, URL, transport=MockTransport(lambda r: MockResponse(body=[data])))
    stream = await call(kind, builder(client).response_format(Order), "send_stream")
    events = await drain(kind, stream)
    assert events[-1].response.parsed is None
    assert events[-1].response.refusal == "I'm sorry, I can't assist with that request."
    client2 = make(kind, URL, transport=MockTransport(Model(stream_reply(['{"a"', ": 1}"]))))
    stream = await call(kind, builder(client2).json_schema({"type": "object"}), "send_stream")
    events = await drain(kind, stream)
    assert not any(isinstance(e, PartialParsed) for e in events) and events[-1].response.parsed is None
    await close(kind, client)
    await close(kind, client2)


# -- the incremental parser --------------------------------------------------------------------

DOCS = [ORDER, PERSON, TREE, [1, -2.5, 3e2, True, False, None, "x"], {"s": "a\"b\\c\n\u00e9\u4e2d\U0001f600/"},
        {"nested": [[[]], [{}], {"a": {"b": []}}]}, "just a string", {"big": "x" * 10000, "after": 1}]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(DOCS), st.lists(st.integers(1, 40), min_size=1, max_size=400), st.booleans())
def test_any_split_gives_the_same_final_object(doc: Any, cuts: list[int], ascii_only: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only)  # \uXXXX escapes and surrogate pairs when ascii
    p = PartialJSON()
    i = 0
    for c in cuts:
        if i >= len(text):
            break
        p.feed(text[i:i + c])
        i += c
    p.feed(text[i:])
    assert p.value == doc and not p.failed


def test_partial_values_close_open_strings_and_containers() -> None:
    p = PartialJSON()
    seen = []
    for piece in ['```json\n{"a": [1, ', '{"b": "hel', 'lo', '"}, tr', "ue], ", '"c": -', "1.5}\n```"]:
        if p.feed(piece):
            seen.append(copy.deepcopy(p.value))
    assert seen == [{"a": [1]}, {"a": [1, {"b": "hel"}]}, {"a": [1, {"b": "hello"}]}, {"a": [1, {"b": "hello"}, True]},
                    {"a": [1, {"b": "hello"}, True], "c": -1.5}]
    bad = PartialJSON()
    bad.feed('{"a": 1 x "b": 2}')
    assert bad.failed and bad.value == {"a": 1}


# -- conversations and batches -----------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_conversation_send_with_a_response_format(kind: str) -> None:
    model = Model(reply('{"id": 1, "items": []}'), reply("plain"))
    client = make(kind, URL, transport=MockTransport(model))
    conv = client.chat.conversation(model="m")
    resp = await call(kind, conv, "send", "order?", response_format=Order)
    assert resp.parsed == Order(1, [])
    assert (await call(kind, conv, "send", "thanks")).parsed is None  # for that turn only
    await close(kind, client)
    assert "response_format" in model.bodies[0] and "response_format" not in model.bodies[1]
    assert conv.messages[1] == {"role": "assistant", "content": '{"id": 1, "items": []}'}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_of_typed_builders_gives_parsed_responses(kind: str) -> None:
    def handler(req: Any) -> MockResponse:
        body = req.json()
        n = int(body["messages"][-1]["content"]) if body["messages"][-1]["role"] == "user" and \
            body["messages"][-1]["content"].isdigit() else 99
        if n == 2 and len(body["messages"]) == 1:
            return reply("oops")  # item 2 parses only after a re-ask
        return reply(json.dumps({"id": n, "items": []}))

    client = make(kind, URL, transport=MockTransport(handler))
    reqs = [client.chat.completions().create().model("m").user_message(str(i)).response_format(Order)
            for i in range(3)]
    reqs[2].parse_retries(1)
    results = await call(kind, client, "batch", reqs, progress=False)
    await close(kind, client)
    assert [r.parsed for r in results] == [Order(0, []), Order(1, []), Order(99, [])]


# -- tools gain the validation -----------------------------------------------------------------

def test_tool_arguments_of_the_wrong_scalar_type_are_refused() -> None:
    from vllm_client._tools import ToolSet

    def add(a: int, b: float, flag: bool = False) -> float:
        return a + b

    ts = ToolSet([add])
    assert ts.prepare("add", '{"a": 1, "b": 2}')() == 3.0
    for args, fragment in [('{"a": "1", "b": 2}', "expected an integer, got string '1'"),
                           ('{"a": 1, "b": "2"}', "expected a number, got string '2'"),
                           ('{"a": 1, "b": 2, "flag": "yes"}', "expected a boolean")]:
        r = ts.prepare("add", args)
        assert isinstance(r, str) and fragment in r, r


@dataclasses.dataclass
class Search:
    """Search the web."""

    query: str
    limit: int = 5


def test_a_model_class_is_a_tool_whose_arguments_are_its_fields() -> None:
    from vllm_client import tool
    from vllm_client._tools import ToolSet, format_result

    classes: list[Any] = [Search]
    if pydantic is not None:
        class PSearch(pydantic.BaseModel):
            """Search the web."""

            query: str
            limit: int = 5

        classes.append(PSearch)
    for cls in classes:
        t = tool(cls)
        assert t["function"]["description"] == "Search the web."
        assert t["function"]["parameters"] == {"type": "object", "properties": {
            "query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]}
        ts = ToolSet([cls])
        made = ts.prepare(cls.__name__, '{"query": "x"}')()
        assert isinstance(made, cls) and made.query == "x" and made.limit == 5
        assert json.loads(format_result(made)) == {"query": "x", "limit": 5}
        assert "expected a string, got number 1" in ts.prepare(cls.__name__, '{"query": 1}')


@pytest.mark.parametrize("vllm_server", [{"model": "m"}], indirect=True)  # (the model builder() names)
def test_the_fake_server_answers_typed_requests_with_valid_examples(vllm_server: Any) -> None:
    with VllmClient(vllm_server.url) as client:
        assert builder(client).response_format(Order).send().parsed == Order(0, [], "text")
        assert builder(client).structured_outputs(choice=Color).send().parsed is Color.RED
        with builder(client).response_format(Person).send_stream() as s:
            assert s.final_response().parsed == {"name": "text", "home": {"city": "text", "zip": 0}, "tags": []}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_text_format_shares_the_parse_path(kind: str) -> None:
    def body(text: str, status: str = "completed") -> MockResponse:
        return MockResponse(json={"id": "resp_1", "object": "response", "status": status, "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]})

    client = make(kind, URL, transport=MockTransport(Model(body('{"id": 1, "items": []}'), body('{"id": "1"}'),
                                                           body('{"id": 1', "incomplete"))))
    b = client.responses().create().model("m").input("order?")
    assert (await call(kind, b.text_format(Order), "send")).parsed == Order(1, [])
    for fragment in ("id: expected an integer", "cut at max_tokens"):
        with pytest.raises(OutputParseError, match=fragment) as e:
            await call(kind, client.responses().create().model("m").input("x").text_format(Order), "send")
        assert e.value.response.id == "resp_1"
    await close(kind, client)
