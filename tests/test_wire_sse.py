"""Every streamed wire transcript, through both clients, in random splits, field by field."""

from __future__ import annotations

import random
from typing import Any

import pytest
import responses
from aioresponses import aioresponses

from vllm_client import (
    AsyncVllmClient,
    ChatCompletionResponse,
    ContentDelta,
    Done,
    MockResponse,
    MockTransport,
    ReasoningDelta,
    ServerEvent,
    StreamError,
    ToolCallComplete,
    ToolCallDelta,
    UsageEvent,
    VllmClient,
)

from .conftest import wire_body, wire_cases, wire_meta

URL = "http://wire.test/v1"
CASES = wire_cases(".sse")


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    """Cut the body at random places, always including cuts inside multi-byte characters
    and between a CR and its LF when the body has them."""
    cuts = {rng.randrange(1, len(data)) for _ in range(min(len(data) - 1, rng.randrange(1, 40)))} if len(data) > 1 else set()
    for i in range(1, len(data)):
        if data[i] & 0xC0 == 0x80 and rng.random() < 0.3:  # inside a UTF-8 sequence
            cuts.add(i)
        if data[i - 1:i + 1] == b"\r\n":
            cuts.add(i)
    points = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def check(name: str, events: list[Any], final: ChatCompletionResponse | None, error: StreamError | None) -> None:
    meta = wire_meta(name)
    exp = meta["expected"]
    if exp.get("error"):
        assert error is not None, "the stream must raise"
        assert exp["error"]["message"] in error.message
        assert error.type == exp["error"].get("type")
        partial = error.partial
        assert isinstance(partial, ChatCompletionResponse)
        if "partial_content_before_error" in exp:
            assert partial.content == exp["partial_content_before_error"]
        assert not any(isinstance(e, Done) for e in events)
        return
    assert error is None, error
    assert final is not None
    assert isinstance(events[-1], Done) and events[-1].response is final
    assert sum(isinstance(e, Done) for e in events) == 1
    usage_events = [e for e in events if isinstance(e, UsageEvent)]
    if exp.get("usage"):
        assert final.usage is not None and final.usage.raw == exp["usage"]
        assert len(usage_events) == 1 and events[-2] is usage_events[0]
    else:
        assert final.usage is None and not usage_events
    if not exp.get("excerpt"):
        if exp.get("id") is not None:
            assert final.id == exp["id"]
        if exp.get("model") is not None:
            assert final.model == exp["model"]
    if "x_groq_usage" in exp:
        assert final.raw["x_groq"]["usage"] == exp["x_groq_usage"]
    if "timings" in exp:
        assert {k: final.raw["timings"][k] for k in exp["timings"]} == exp["timings"]
    assert len(final.choices) == len(exp["choices"])
    for got, want in zip(final.choices, exp["choices"]):
        i = want["index"]
        assert got.index == i
        assert got.content == want.get("content")
        assert got.finish_reason == want.get("finish_reason")
        reasoning = want.get("reasoning_content", want.get("reasoning", want.get("reasoning_from_content_parts")))
        assert got.reasoning_content == reasoning
        for key in ("reasoning_content", "reasoning"):
            if want.get(key) is not None:
                assert got.message[key] == want[key]  # kept under the provider's own field name
        assert got.refusal == want.get("refusal")
        calls = [(t.id, t.type, t.name, t.arguments) for t in got.tool_calls]
        assert calls == [(t["id"], t.get("type", "function"), t["name"], t["arguments"]) for t in want["tool_calls"]]
        # the events tell the same story as the final response
        text = "".join(e.text for e in events if isinstance(e, ContentDelta) and e.index == i)
        assert text == (want.get("content") or "")
        think = "".join(e.text for e in events if isinstance(e, ReasoningDelta) and e.index == i)
        assert think == (reasoning or "")
        completes = [e.tool_call for e in events if isinstance(e, ToolCallComplete) and e.index == i]
        assert [(t.id, t.name, t.arguments) for t in completes] == [(c[0], c[2], c[3]) for c in calls]
        frag = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == i)
        assert frag == "".join(c[3] for c in calls)
    server_events = [(e.event, e.data) for e in events if isinstance(e, ServerEvent)]
    wanted = [(n["event"], n["obj"]) for n in exp.get("non_chunk_events", []) if n["event"] not in ("message", "answer")]
    assert server_events == wanted


def run_sync(name: str, chunks: list[bytes]) -> tuple[list[Any], Any, Any]:
    transport = MockTransport(lambda r: MockResponse(body=list(chunks),
                                                     headers={"content-type": "text/event-stream"}))
    events: list[Any] = []
    with VllmClient(URL, transport=transport, max_retries=0) as client:
        try:
            with client.chat.completions().create().model("m").user_message("x").send_stream() as s:
                events.extend(s)
                return events, s.final_response(), None
        except StreamError as e:
            return events, None, e


async def run_async(name: str, chunks: list[bytes]) -> tuple[list[Any], Any, Any]:
    transport = MockTransport(lambda r: MockResponse(body=list(chunks)))
    events: list[Any] = []
    async with AsyncVllmClient(URL, transport=transport, max_retries=0) as client:
        try:
            s = await client.chat.completions().create().model("m").user_message("x").send_stream()
            async with s:
                async for ev in s:
                    events.append(ev)
                return events, await s.final_response(), None
        except StreamError as e:
            return events, None, e


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", CASES)
def test_sync_random_splits(name: str, seed: int) -> None:
    chunks = random_splits(wire_body(name, ".sse"), random.Random(f"{name}{seed}"))
    check(name, *run_sync(name, chunks))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", CASES)
async def test_async_random_splits(name: str, seed: int) -> None:
    chunks = random_splits(wire_body(name, ".sse"), random.Random(f"a{name}{seed}"))
    check(name, *(await run_async(name, chunks)))


@pytest.mark.parametrize("name", CASES)
def test_one_byte_reads(name: str) -> None:
    data = wire_body(name, ".sse")
    if len(data) > 20000:
        pytest.skip("large transcript: covered by random splits")
    check(name, *run_sync(name, [data[i:i + 1] for i in range(len(data))]))


@pytest.mark.parametrize("name", CASES)
@responses.activate
def test_through_requests_transport(name: str) -> None:
    responses.add(responses.POST, f"{URL}/chat/completions", body=wire_body(name, ".sse"),
                  content_type="text/event-stream")
    events: list[Any] = []
    with VllmClient(URL, max_retries=0) as client:
        try:
            s = client.chat.completions().create().model("m").user_message("x").send_stream()
            for ev in s:
                events.append(ev)
            result: tuple[Any, Any, Any] = (events, s.final_response(), None)
        except StreamError as e:
            result = (events, None, e)
    check(name, *result)


@pytest.mark.parametrize("name", CASES)
async def test_through_aiohttp_transport(name: str) -> None:
    if len(wire_body(name, ".sse")) > 60000:
        pytest.skip("aioresponses cannot feed a body over aiohttp's buffer limit (random-split tests cover it)")
    events: list[Any] = []
    with aioresponses() as m:
        m.post(f"{URL}/chat/completions", body=wire_body(name, ".sse"), content_type="text/event-stream")
        async with AsyncVllmClient(URL, max_retries=0) as client:
            try:
                s = await client.chat.completions().create().model("m").user_message("x").send_stream()
                async for ev in s:
                    events.append(ev)
                result: tuple[Any, Any, Any] = (events, await s.final_response(), None)
            except StreamError as e:
                result = (events, None, e)
    check(name, *result)
