"""Conversations and the tool loop, sync and async: history invariants, parallel calls, errors fed back."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Literal

import orjson
import pytest

from vllm_client import (
    AsyncVllmClient,
    MockResponse,
    MockTransport,
    StreamError,
    ToolLoopError,
    VllmClient,
)

URL = "http://conv.test/v1"


def reply(content: str | None = "ok", tool_calls: list[tuple[str, str, str]] | None = None,
          reasoning: str | None = None) -> MockResponse:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        msg["reasoning"] = reasoning
    if tool_calls:
        msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                             for i, n, a in tool_calls]
    return MockResponse(json={"id": "x", "choices": [{"index": 0, "message": msg,
                                                      "finish_reason": "tool_calls" if tool_calls else "stop"}]})


def stream_reply(text: str, cut: bool = False) -> MockResponse:
    chunks = [b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]})
              + b"\n\n" for t in text.split(" ")]
    if not cut:
        chunks.append(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    return MockResponse(body=chunks)


class Model:
    """A scripted model: answers from a list and records every request body."""

    def __init__(self, *answers: MockResponse) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, req: Any) -> MockResponse:
        self.bodies.append(req.json())
        return self.answers.pop(0)


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return f"sunny in {city} ({unit})"


def test_conversation_keeps_history_and_defaults() -> None:
    model = Model(reply("Hi Ming", reasoning="greet"), reply("Your name is Ming."))
    with VllmClient(URL, transport=MockTransport(model)) as client:
        chat = client.chat.conversation(model="m", system="You are terse.", temperature=0.3)
        assert chat.send("My name is Ming.").content == "Hi Ming"
        assert chat.send("What is my name?").content == "Your name is Ming."
    assert model.bodies[1]["temperature"] == 0.3 and model.bodies[1]["model"] == "m"
    assert model.bodies[1]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My name is Ming."},
        {"role": "assistant", "content": "Hi Ming"},  # reasoning is not resent by default
        {"role": "user", "content": "What is my name?"}]
    assert chat.messages[-1] == {"role": "assistant", "content": "Your name is Ming."}
    saved = json.loads(json.dumps(chat.messages))
    with VllmClient(URL, transport=MockTransport(Model(reply("again")))) as client:
        resumed = client.chat.conversation(model="m", messages=saved)
        resumed.send("more")
        assert resumed.messages[:5] == saved and len(resumed.messages) == 7


def test_keep_reasoning_and_undo_reset() -> None:
    with VllmClient(URL, transport=MockTransport(Model(reply("a", reasoning="r1"), reply("b")))) as client:
        chat = client.chat.conversation(model="m", system="s", keep_reasoning=True)
        chat.send("one")
        assert chat.messages[-1]["reasoning_content"] == "r1"
        chat.send("two")
        chat.undo()
        assert [m["content"] for m in chat.messages] == ["s", "one", "a"]
        chat.reset()
        assert chat.messages == [{"role": "system", "content": "s"}]


def test_failed_turn_leaves_history_unchanged() -> None:
    model = Model(reply("fine"), MockResponse(400, json={"error": {"message": "bad"}}))
    with VllmClient(URL, transport=MockTransport(model), max_retries=0) as client:
        chat = client.chat.conversation(model="m")
        chat.send("a")
        before = list(chat.messages)
        with pytest.raises(Exception):
            chat.send("b")
        assert chat.messages == before


def test_stream_commits_only_when_complete() -> None:
    model = Model(stream_reply("hello there"), stream_reply("partial answer", cut=True), stream_reply("x y"))
    with VllmClient(URL, transport=MockTransport(model)) as client:
        chat = client.chat.conversation(model="m")
        assert "".join(chat.stream("hi").text_stream()) == "hellothere"
        assert chat.messages[-1] == {"role": "assistant", "content": "hellothere"}
        n = len(chat.messages)
        with pytest.raises(StreamError):
            for _ in chat.stream("again"):
                pass
        assert len(chat.messages) == n
        s = chat.stream("abandoned")
        next(iter(s))
        s.close()  # closed early: nothing committed
        assert len(chat.messages) == n


def test_builder_for_one_turn_and_add_tool_result() -> None:
    model = Model(reply("x"))
    with VllmClient(URL, transport=MockTransport(model)) as client:
        chat = client.chat.conversation(model="m", temperature=0.9)
        chat.send("hi", builder=chat.builder().temperature(0.0).max_tokens(5))
        chat.add_tool_result("call_1", {"ok": True})
    assert model.bodies[0]["temperature"] == 0.0 and model.bodies[0]["max_tokens"] == 5
    assert chat.messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": '{"ok":true}'}


def test_run_tools_parallel_calls_and_errors_fed_back() -> None:
    started: list[float] = []

    def slow(x: int) -> int:
        """Slow tool."""
        started.append(time.monotonic())
        time.sleep(0.3)
        return x * 2

    def boom() -> str:
        """Always fails."""
        raise RuntimeError("kaput")

    model = Model(
        reply(None, [("c1", "slow", '{"x": 1}'), ("c2", "slow", '{"x": 2}'), ("c3", "boom", ""),
                     ("c4", "nope", "{}"), ("c5", "slow", "{bad json")]),
        reply("all done"))
    with VllmClient(URL, transport=MockTransport(model)) as client:
        r = (client.chat.completions().create().model("m").user_message("go")
             .tools([slow, boom]).run_tools())
    assert r.content == "all done"
    tool_msgs = [m for m in model.bodies[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["c1", "c2", "c3", "c4", "c5"]
    assert tool_msgs[0]["content"] == "2" and tool_msgs[1]["content"] == "4"
    assert tool_msgs[2]["content"].startswith("error:") and "kaput" in tool_msgs[2]["content"]
    assert tool_msgs[3]["content"].startswith("error:") and "nope" in tool_msgs[3]["content"]
    assert tool_msgs[4]["content"].startswith("error:")
    assert max(started) - min(started) < 0.25  # the two slow calls ran in parallel
    assert model.bodies[1]["messages"][1]["tool_calls"][0]["id"] == "c1"
    assert model.bodies[0]["tools"][0]["function"]["name"] == "slow"


def test_run_tools_max_rounds() -> None:
    model = Model(*[reply(None, [(f"c{i}", "get_weather", '{"city": "Paris"}')]) for i in range(3)])
    with VllmClient(URL, transport=MockTransport(model)) as client:
        with pytest.raises(ToolLoopError) as ei:
            (client.chat.completions().create().model("m").user_message("w?")
             .tools([get_weather]).run_tools(max_rounds=2))
    assert len(model.bodies) == 3
    roles = [m["role"] for m in ei.value.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


def test_conversation_with_tools_keeps_tool_messages() -> None:
    model = Model(reply(None, [("c1", "get_weather", '{"city": "Paris", "unit": "f"}')]), reply("Sunny!"))
    with VllmClient(URL, transport=MockTransport(model)) as client:
        chat = client.chat.conversation(model="m", tools=[get_weather])
        assert chat.send("Weather in Paris?").content == "Sunny!"
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.messages[2]["content"] == "sunny in Paris (f)"


def test_run_tools_stream_yields_every_round() -> None:
    tool_chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        "finish_reason": "tool_calls"}]}
    first = MockResponse(body=[b"data: " + orjson.dumps(tool_chunk) + b"\n\ndata: [DONE]\n\n"])
    model = Model(first, stream_reply("It is sunny"))
    with VllmClient(URL, transport=MockTransport(model)) as client:
        events = list(client.chat.completions().create().model("m").user_message("w")
                      .tools([get_weather]).run_tools_stream())
    kinds = [e.type for e in events]
    assert kinds.count("done") == 2 and kinds[-1] == "done" and "tool_call" in kinds
    assert events[-1].response.content == "Itissunny"
    assert model.bodies[1]["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "sunny in Oslo (c)"}


async def test_async_tools_and_conversation() -> None:
    running = 0
    peak = 0

    async def aslow(n: int) -> dict[str, int]:
        """Async tool."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return {"n": n}

    def sync_tool() -> str:
        """Sync tool in a thread."""
        return threading.current_thread().name

    model = Model(reply(None, [("a", "aslow", '{"n": 1}'), ("b", "aslow", '{"n": 2}'), ("c", "sync_tool", "")]),
                  reply("fin"), reply("second turn"))
    async with AsyncVllmClient(URL, transport=MockTransport(model)) as client:
        r = await client.chat.completions().create().model("m").user_message("x").tools([aslow, sync_tool]).run_tools()
        assert r.content == "fin" and peak == 2
        tool_msgs = [m for m in model.bodies[1]["messages"] if m["role"] == "tool"]
        assert tool_msgs[0]["content"] == '{"n":1}' and tool_msgs[2]["content"] != "MainThread"
        chat = client.chat.conversation(model="m", system="s")
        assert (await chat.send("hi")).content == "second turn"
        assert [m["role"] for m in chat.messages] == ["system", "user", "assistant"]


async def test_async_stream_commit_and_failure() -> None:
    model = Model(stream_reply("a b"), stream_reply("c d", cut=True))
    async with AsyncVllmClient(URL, transport=MockTransport(model)) as client:
        chat = client.chat.conversation(model="m")
        s = await chat.stream("one")
        assert [t async for t in s.text_stream()] == ["a", "b"]
        assert chat.messages[-1]["content"] == "ab"
        s2 = await chat.stream("two")
        with pytest.raises(StreamError):
            async for _ in s2:
                pass
        assert len(chat.messages) == 2
