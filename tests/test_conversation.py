"""Conversations and the tool loop, each test on both clients: history invariants, parallel calls,
errors fed back."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Literal

import orjson
import pytest

from vllm_client import (
    MockResponse,
    MockTransport,
    StreamError,
    ToolLoopError,
)

from ._both import CLIENTS, Model, call, close, drain, make, reply, stream_reply

URL = "http://conv.test/v1"


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return f"sunny in {city} ({unit})"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_conversation_keeps_history_and_defaults(kind: str) -> None:
    model = Model(reply("Hi Ming", reasoning="greet"), reply("Your name is Ming."))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m", system="You are terse.", temperature=0.3)
    assert (await call(kind, chat, "send", "My name is Ming.")).content == "Hi Ming"
    assert (await call(kind, chat, "send", "What is my name?")).content == "Your name is Ming."
    await close(kind, client)
    assert model.bodies[1]["temperature"] == 0.3 and model.bodies[1]["model"] == "m"
    assert model.bodies[1]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My name is Ming."},
        {"role": "assistant", "content": "Hi Ming", "reasoning": "greet"},  # sent back, under the server's key
        {"role": "user", "content": "What is my name?"}]
    assert chat.messages[-1] == {"role": "assistant", "content": "Your name is Ming."}
    saved = json.loads(json.dumps(chat.messages))
    client = make(kind, URL, transport=MockTransport(Model(reply("again"))))
    resumed = client.chat.conversation(model="m", messages=saved)
    await call(kind, resumed, "send", "more")
    await close(kind, client)
    assert resumed.messages[:5] == saved and len(resumed.messages) == 7


@pytest.mark.parametrize("kind", CLIENTS)
async def test_keep_reasoning_and_undo_reset(kind: str) -> None:
    client = make(kind, URL, transport=MockTransport(Model(reply("a", reasoning="r1"), reply("b"))))
    chat = client.chat.conversation(model="m", system="s")
    await call(kind, chat, "send", "one")
    assert chat.messages[-1]["reasoning"] == "r1"
    await call(kind, chat, "send", "two")
    chat.undo()
    assert [m["content"] for m in chat.messages] == ["s", "one", "a"]
    chat.reset()
    assert chat.messages == [{"role": "system", "content": "s"}]
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_failed_turn_leaves_history_unchanged(kind: str) -> None:
    model = Model(reply("fine"), MockResponse(400, json={"error": {"message": "bad"}}))
    client = make(kind, URL, transport=MockTransport(model), max_retries=0)
    chat = client.chat.conversation(model="m")
    await call(kind, chat, "send", "a")
    before = list(chat.messages)
    with pytest.raises(Exception):
        await call(kind, chat, "send", "b")
    assert chat.messages == before
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_stream_commits_only_when_complete(kind: str) -> None:
    model = Model(stream_reply("hello there"), stream_reply("partial answer", cut=True), stream_reply("x y"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m")
    stream = await call(kind, chat, "stream", "hi")
    assert "".join(await drain(kind, stream.text_stream())) == "hellothere"
    assert chat.messages[-1] == {"role": "assistant", "content": "hellothere"}
    n = len(chat.messages)
    with pytest.raises(StreamError):
        await drain(kind, await call(kind, chat, "stream", "again"))
    assert len(chat.messages) == n
    s = await call(kind, chat, "stream", "abandoned")
    if kind == "sync":
        next(iter(s))
        s.close()  # closed early: nothing committed
    else:
        await s.__anext__()
        await s.close()
    assert len(chat.messages) == n
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_builder_for_one_turn_and_add_tool_result(kind: str) -> None:
    model = Model(reply("x"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m", temperature=0.9)
    await call(kind, chat, "send", "hi", builder=chat.builder().temperature(0.0).max_tokens(5))
    chat.add_tool_result("call_1", {"ok": True})
    await close(kind, client)
    assert model.bodies[0]["temperature"] == 0.0 and model.bodies[0]["max_tokens"] == 5
    assert chat.messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": '{"ok":true}'}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_run_tools_parallel_calls_and_errors_fed_back(kind: str) -> None:
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
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("go").tools([slow, boom])
    r = await call(kind, b, "run_tools")
    await close(kind, client)
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


@pytest.mark.parametrize("kind", CLIENTS)
async def test_parallel_tools_at_most_eight_at_a_time(kind: str) -> None:
    lock = threading.Lock()
    running = peak = 0

    def wait(i: int) -> int:
        """Waits a little."""
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return i

    calls = [(f"c{i}", "wait", json.dumps({"i": i})) for i in range(12)]
    model = Model(reply(None, calls), reply("done"))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("go").tools([wait])
    assert (await call(kind, b, "run_tools")).content == "done"
    await close(kind, client)
    assert peak == 8  # one pool policy on both clients
    assert [m["content"] for m in model.bodies[1]["messages"] if m["role"] == "tool"] == [str(i) for i in range(12)]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_run_tools_max_rounds(kind: str) -> None:
    model = Model(*[reply(None, [(f"c{i}", "get_weather", '{"city": "Paris"}')]) for i in range(3)])
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("w?").tools([get_weather])
    with pytest.raises(ToolLoopError) as ei:
        await call(kind, b, "run_tools", max_rounds=2)
    await close(kind, client)
    assert len(model.bodies) == 3
    roles = [m["role"] for m in ei.value.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_conversation_with_tools_keeps_tool_messages(kind: str) -> None:
    model = Model(reply(None, [("c1", "get_weather", '{"city": "Paris", "unit": "f"}')]), reply("Sunny!"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m", tools=[get_weather])
    assert (await call(kind, chat, "send", "Weather in Paris?")).content == "Sunny!"
    await close(kind, client)
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.messages[2]["content"] == "sunny in Paris (f)"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_run_tools_stream_yields_every_round(kind: str) -> None:
    tool_chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        "finish_reason": "tool_calls"}]}
    first = MockResponse(body=[b"data: " + orjson.dumps(tool_chunk) + b"\n\ndata: [DONE]\n\n"])
    model = Model(first, stream_reply("It is sunny"))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("w").tools([get_weather])
    events = await drain(kind, b.run_tools_stream())
    await close(kind, client)
    kinds = [e.type for e in events]
    assert kinds.count("done") == 2 and kinds[-1] == "done" and "tool_call" in kinds
    assert events[-1].response.content == "Itissunny"
    assert model.bodies[1]["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "sunny in Oslo (c)"}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_async_and_sync_tools_on_either_client(kind: str) -> None:
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
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("x").tools([aslow, sync_tool])
    r = await call(kind, b, "run_tools")
    # async: both coroutines overlap on the loop; sync: each runs on its own loop in a pool thread
    assert r.content == "fin" and peak == 2
    tool_msgs = [m for m in model.bodies[1]["messages"] if m["role"] == "tool"]
    assert tool_msgs[0]["content"] == '{"n":1}' and tool_msgs[1]["content"] == '{"n":2}'
    assert tool_msgs[2]["content"] != "MainThread"
    chat = client.chat.conversation(model="m", system="s")
    assert (await call(kind, chat, "send", "hi")).content == "second turn"
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant"]
    await close(kind, client)
