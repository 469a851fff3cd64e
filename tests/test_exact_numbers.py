"""Issue 31 item 9: integers beyond 64 bits are read exactly in the model's JSON (tool arguments,
structured outputs, ``arguments_json()``, streamed or not) and written exactly in request bodies;
NaN / Infinity in a body do not fail the response. Both clients."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_client import MockResponse, MockTransport, ResponseDecodeError
from vllm_client._json import dumps, has_long_number, loads
from vllm_client._structured import PartialJSON

from ._both import CLIENTS, call, close, drain, make

BIG = 12345678901234567890123  # orjson alone reads 12345678901234567741440
ARGS = '{"n": %d, "neg": -%d, "u64": 18446744073709551615, "f": 0.00012345678901234567}' % (BIG, BIG)


def answer(body: bytes) -> MockResponse:
    return MockResponse(body=body, headers={"content-type": "application/json"})


def chat_body(content: str | None = None, arguments: str | None = None, extra: str = "") -> bytes:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if arguments is not None:
        msg["tool_calls"] = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]
    text = orjson.dumps({"id": "x", "object": "chat.completion",
                         "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}).decode()
    return (text[:-1] + extra + "}").encode()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_tool_arguments_keep_big_integers(kind: str) -> None:
    seen: list[Any] = []

    def f(n: int, neg: int, u64: int, f: float) -> str:
        seen.append((n, neg, u64, f))
        return "done"

    bodies = [chat_body(arguments=ARGS), chat_body(content="fine")]
    t = MockTransport(lambda r: answer(bodies.pop(0)))
    c = make(kind, "http://test.local/v1", transport=t, max_retries=0)
    r = await call(kind, c.chat.completions().create().model("m").user_message("go").tools([f]), "run_tools")
    assert seen == [(BIG, -BIG, 2**64 - 1, 0.00012345678901234567)]
    assert r.content == "fine"
    t.handler = lambda r: answer(chat_body(arguments=ARGS))
    r = await call(kind, c.chat.completions().create().model("m").user_message("go"), "send")
    assert r.tool_calls[0].arguments_json()["n"] == BIG
    assert r.tool_calls[0].arguments_json()["neg"] == -BIG
    await close(kind, c)


@dataclass
class Order:
    id: int
    amount: float


@pytest.mark.parametrize("kind", CLIENTS)
async def test_structured_outputs_and_request_bodies_keep_big_integers(kind: str) -> None:
    content = '{"id": %d, "amount": 1.5}' % BIG
    t = MockTransport(lambda r: answer(chat_body(content=content, extra=',"seed":%d' % BIG)))
    c = make(kind, "http://test.local/v1", transport=t, max_retries=0)
    r = await call(kind, c.chat.completions().create().model("m").user_message("go").response_format(Order), "send")
    assert r.parsed == Order(BIG, 1.5)
    assert r.content == content
    # and a request body with one goes out exact (orjson alone refuses such an int)
    await call(kind, c.chat.completions().create().model("m").user_message("go").extra({"seed": 2**70}), "send")
    assert b'"seed":1180591620717411303424' in (t.requests[-1].body or b"")
    await close(kind, c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_nan_and_infinity_do_not_fail_the_response(kind: str) -> None:
    body = chat_body(content="hi", extra=',"metrics":{"a":NaN,"b":Infinity,"c":-Infinity,"d":1e400}')
    t = MockTransport(lambda r: answer(body))
    c = make(kind, "http://test.local/v1", transport=t, max_retries=0)
    r = await call(kind, c.chat.completions().create().model("m").user_message("go"), "send")
    assert r.content == "hi"
    m = r.raw["metrics"]
    assert math.isnan(m["a"]) and m["b"] == math.inf and m["c"] == -math.inf and m["d"] == math.inf
    t.handler = lambda r: answer(b"<html>not json</html>")  # still a typed error when it is not JSON
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        await call(kind, c.chat.completions().create().model("m").user_message("go"), "send")
    await close(kind, c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_streams_keep_big_integers_and_survive_nan(kind: str) -> None:
    half = len(ARGS) // 2
    chunks = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"b"},"logprobs":{"content":[{"token":"b",'
        b'"logprob":NaN}]}}]}\n\n',
        b'data: ' + orjson.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ARGS[:half]}}]}}]})
        + b"\n\n",
        b'data: ' + orjson.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ARGS[half:]}}]}}]}) + b"\n\n",
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"big":%d}\n\n' % BIG,
        b"data: [DONE]\n\n",
    ]
    t = MockTransport(lambda r: MockResponse(body=list(chunks)))
    c = make(kind, "http://test.local/v1", transport=t, max_retries=0)
    stream = await call(kind, c.chat.completions().create().model("m").user_message("go"), "send_stream")
    events = await drain(kind, stream)
    final = events[-1].response
    assert final.content == "ab"
    assert final.tool_calls[0].arguments_json()["n"] == BIG
    await close(kind, c)


def test_partial_json_reads_big_integers_exactly() -> None:
    p = PartialJSON()
    for ch in '{"n": %d, "xs": [-%d, 1.5e3, 0]}' % (BIG, BIG):
        p.feed(ch)
    assert p.value == {"n": BIG, "xs": [-BIG, 1500.0, 0]} and not p.failed


def test_too_long_integers_are_refused_with_a_typed_error() -> None:
    with pytest.raises(orjson.JSONDecodeError):  # Python reads at most 4300 digits
        loads(b'{"n": ' + b"1" * 5000 + b"}")
    p = PartialJSON()
    p.feed('{"n": ' + "1" * 5000 + "}")
    assert p.failed


# -- the fast path stays orjson's; the fall-back is exact ----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_agrees_with_the_standard_library(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text.encode()) == json.loads(text)
    assert loads(text) == json.loads(text)
    assert loads(dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**60), max_value=10**60))
def test_every_integer_is_exact(n: int) -> None:
    assert loads(str(n).encode()) == n and loads(b"[%d]" % n) == [n]
    assert has_long_number(str(n)) == (len(str(abs(n))) >= 19)


def test_the_check_only_flags_integers() -> None:
    assert not has_long_number(b'{"logprob": -0.00012345678901234567, "e": 1.2345678901234567e-05}')
    assert has_long_number(b'{"n": 1234567890123456789}')
    assert has_long_number(b'{"s": "1234567890123456789"}')  # (a string: a harmless slow path, same value)
