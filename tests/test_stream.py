"""Stream ends, errors, accumulation rules and the stream API, sync and async alike."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vllm_client import (
    AsyncVllmClient,
    BadRequestError,
    ChatCompletionResponse,
    CompletionResponse,
    ContentDelta,
    Done,
    InternalServerError,
    MockResponse,
    MockTransport,
    ServerEvent,
    StreamError,
    ToolCallComplete,
    ToolCallDelta,
    UsageEvent,
    VllmClient,
)

URL = "http://s.test/v1"


def sse(*objs: Any, done: bool = True) -> list[bytes]:
    out = [b"data: " + (o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n\n" for o in objs]
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def chunk(content: Any = None, finish: str | None = None, index: int = 0, **delta: Any) -> dict[str, Any]:
    d = dict(delta)
    if content is not None:
        d["content"] = content
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": d, "finish_reason": finish}]}


ROLE = chunk("", role="assistant")
USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}


def both(body: list[bytes], status: int = 200) -> tuple[MockTransport, MockTransport]:
    def make() -> MockTransport:
        return MockTransport(lambda r: MockResponse(status=status, body=list(body)))
    return make(), make()


def collect_sync(transport: MockTransport, completions: bool = False) -> tuple[list[Any], Any, Any]:
    events: list[Any] = []
    with VllmClient(URL, transport=transport, max_retries=0) as c:
        b = (c.completions().create().model("m").prompt("p") if completions
             else c.chat.completions().create().model("m").user_message("x"))
        try:
            s = b.send_stream()
            for ev in s:
                events.append(ev)
            return events, s.final_response(), None
        except StreamError as e:
            return events, None, e


async def collect_async(transport: MockTransport, completions: bool = False) -> tuple[list[Any], Any, Any]:
    events: list[Any] = []
    async with AsyncVllmClient(URL, transport=transport, max_retries=0) as c:
        b = (c.completions().create().model("m").prompt("p") if completions
             else c.chat.completions().create().model("m").user_message("x"))
        try:
            s = await b.send_stream()
            async for ev in s:
                events.append(ev)
            return events, await s.final_response(), None
        except StreamError as e:
            return events, None, e


async def run_both(body: list[bytes], completions: bool = False) -> tuple[Any, Any]:
    t1, t2 = both(body)
    a = collect_sync(t1, completions)
    b = await collect_async(t2, completions)
    # sync and async behave identically
    assert [type(e) for e in a[0]] == [type(e) for e in b[0]]
    assert repr(a[1]) == repr(b[1])
    assert (a[2] is None) == (b[2] is None)
    return a, b


async def test_basic_stream_events_and_final() -> None:
    (events, final, err), _ = await run_both(sse(ROLE, chunk("Hel"), chunk("lo"), chunk(finish="stop"), USAGE))
    assert err is None
    assert [type(e).__name__ for e in events] == ["ContentDelta", "ContentDelta", "UsageEvent", "Done"]
    assert isinstance(final, ChatCompletionResponse)
    assert final.content == "Hello" and final.finish_reason == "stop" and final.usage.total_tokens == 4
    assert events[-1].response is final and events[-1].finish_reason == "stop"


async def test_close_after_finish_without_done_is_normal() -> None:
    (events, final, err), _ = await run_both(sse(ROLE, chunk("a"), chunk("b", finish="length"), done=False))
    assert err is None and final.content == "ab" and final.finish_reason == "length"


async def test_cut_before_finish_is_stream_error_with_partial() -> None:
    (events, final, err), _ = await run_both(sse(ROLE, chunk("par"), chunk("tial"), done=False))
    assert isinstance(err, StreamError) and "ended before" in str(err)
    assert err.partial.content == "partial"
    assert [e.text for e in events if isinstance(e, ContentDelta)] == ["par", "tial"]


async def test_cut_mid_event_is_stream_error() -> None:
    body = [b"data: " + orjson.dumps(chunk("ok")) + b"\n\n", b'data: {"id": "c", "choi']
    (events, final, err), _ = await run_both(body)
    assert isinstance(err, StreamError) and err.partial.content == "ok"


@pytest.mark.parametrize("error_obj,message", [
    ({"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError", "code": 500}},
     "EngineCore encountered an issue."),
    ({"object": "error", "message": "flat vLLM error", "type": "BadRequestError", "code": 400}, "flat vLLM error"),
])
async def test_error_inside_stream_even_when_done_follows(error_obj: dict[str, Any], message: str) -> None:
    (events, final, err), _ = await run_both(sse(ROLE, chunk("Hi"), error_obj))  # [DONE] follows
    assert isinstance(err, StreamError)
    assert message in err.message and err.partial.content == "Hi" and err.body == error_obj
    assert not any(isinstance(e, Done) for e in events)


async def test_sse_event_named_error() -> None:
    body = [b"event: answer\ndata: " + orjson.dumps(chunk("x")) + b"\n\n",
            b'event: error\ndata: {"message": "workflow failed"}\n\n']
    (events, final, err), _ = await run_both(body)
    assert isinstance(err, StreamError) and "workflow failed" in str(err) and err.partial.content == "x"


async def test_non_json_chunk_is_stream_error() -> None:
    (events, final, err), _ = await run_both(sse(ROLE, b"{not json", chunk("x", finish="stop")))
    assert isinstance(err, StreamError) and "not JSON" in str(err) and err.partial.content == ""


async def test_named_events_after_done_come_before_done_event() -> None:
    body = [b"event: flowNodeStatus\ndata: {\"status\": \"running\"}\n\n",
            b"event: answer\ndata: " + orjson.dumps(chunk("A", finish="stop")) + b"\n\n",
            b"event: answer\ndata: [DONE]\n\n",
            b"event: flowResponses\ndata: [{\"moduleName\": \"x\"}]\n\n"]
    (events, final, err), _ = await run_both(body)
    assert err is None
    assert [type(e).__name__ for e in events] == ["ServerEvent", "ContentDelta", "ServerEvent", "Done"]
    assert events[2] == ServerEvent("flowResponses", [{"moduleName": "x"}])


async def test_tool_calls_vllm_same_index_twice_in_one_delta() -> None:
    tc = [{"id": "chatcmpl-tool-1", "type": "function", "index": 0, "function": {"name": "get_weather"}},
          {"index": 0, "function": {"arguments": "{\"city\": \"Paris\"}"}}]
    body = sse(ROLE, chunk(None, tool_calls=tc), chunk(finish="tool_calls"), USAGE)
    (events, final, err), _ = await run_both(body)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.id, d.name, d.arguments) for d in deltas] == [
        ("chatcmpl-tool-1", "get_weather", ""), (None, None, "{\"city\": \"Paris\"}")]
    completes = [e for e in events if isinstance(e, ToolCallComplete)]
    assert len(completes) == 1 and completes[0].tool_call.arguments_json() == {"city": "Paris"}
    assert [type(e).__name__ for e in events][-3:] == ["ToolCallComplete", "UsageEvent", "Done"]
    assert final.tool_calls[0].name == "get_weather" and final.finish_reason == "tool_calls"
    assert final.content == ""  # the role chunk's "" is a string delta: content is "", not None
    assert final.message["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_tool_calls_empty_id_and_name_never_overwrite_and_missing_index_is_zero() -> None:
    body = sse(
        chunk(None, tool_calls=[{"id": "t1", "function": {"name": "f", "arguments": "{\"a\""}}]),
        chunk(None, tool_calls=[{"id": "", "function": {"name": "", "arguments": ": 1}"}}]),
        chunk(None, tool_calls=[{"index": 1, "id": "t2", "function": {"name": "g", "arguments": "{}"}}]),
        chunk(finish="tool_calls"))
    (events, final, err), _ = await run_both(body)
    assert [(t.id, t.name, t.arguments) for t in final.tool_calls] == [("t1", "f", "{\"a\": 1}"), ("t2", "g", "{}")]
    assert [e.tool_call.name for e in events if isinstance(e, ToolCallComplete)] == ["f", "g"]


async def test_per_choice_accumulation_n2() -> None:
    body = sse(chunk("a", index=0), chunk("x", index=1), chunk("b", index=0, finish="stop"),
               chunk("y", index=1, finish="length"))
    (events, final, err), _ = await run_both(body)
    assert [(c.index, c.content, c.finish_reason) for c in final.choices] == [(0, "ab", "stop"), (1, "xy", "length")]


async def test_reasoning_fields_and_usage_last_non_null() -> None:
    body = sse(chunk(None, reasoning="think "), chunk(None, reasoning="more"), chunk("answer"),
               {**chunk(finish="stop"), "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
               {"choices": [], "usage": None})
    (events, final, err), _ = await run_both(body)
    assert final.reasoning_content == "think more" and final.choices[0].message["reasoning"] == "think more"
    assert final.content == "answer" and final.usage.total_tokens == 2
    assert sum(isinstance(e, UsageEvent) for e in events) == 1


async def test_completions_stream() -> None:
    body = sse({"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": " Par", "finish_reason": None}]},
               {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": "is", "finish_reason": "length"}]},
               {"id": "cmpl-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    (events, final, err), _ = await run_both(body, completions=True)
    assert isinstance(final, CompletionResponse)
    assert final.text == " Paris" and final.finish_reason == "length" and final.usage.total_tokens == 5
    assert [type(e).__name__ for e in events] == ["ContentDelta", "ContentDelta", "UsageEvent", "Done"]


def test_http_error_before_stream_is_status_error() -> None:
    t = MockTransport(lambda r: MockResponse(400, json={"error": {"message": "bad", "code": 400}}))
    with VllmClient(URL, transport=t, max_retries=3) as c:
        with pytest.raises(BadRequestError, match="bad"):
            c.chat.completions().create().model("m").user_message("x").send_stream()
    assert len(t.requests) == 1


def test_stream_retried_before_first_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vllm_client._sync.time.sleep", lambda s: None)
    answers = [MockResponse(503, body="busy"), MockResponse(body=sse(chunk("ok", finish="stop")))]
    t = MockTransport(lambda r: answers.pop(0))
    with VllmClient(URL, transport=t, max_retries=2) as c:
        s = c.chat.completions().create().model("m").user_message("x").send_stream()
        assert "".join(s.text_stream()) == "ok"
    assert len(t.requests) == 2 and t.requests[0].stream and t.requests[0].json()["stream"] is True
    assert t.requests[0].headers["Accept"] == "text/event-stream"


def test_server_error_status_after_retries() -> None:
    t = MockTransport(lambda r: MockResponse(500, body="boom"))
    with VllmClient(URL, transport=t, max_retries=0) as c:
        with pytest.raises(InternalServerError):
            c.chat.completions().create().model("m").user_message("x").send_stream()


def test_text_stream_and_final_response_and_send_with_stream_true() -> None:
    t = MockTransport(lambda r: MockResponse(body=sse(chunk("a"), chunk("b", finish="stop"))))
    with VllmClient(URL, transport=t) as c:
        s = c.chat.completions().create().model("m").user_message("x").send_stream()
        assert next(iter(s.text_stream())) == "a"
        assert s.final_response().content == "ab"
        r = c.chat.completions().create().model("m").user_message("x").stream(True).send()
        assert r.content == "ab" and t.requests[-1].json()["stream"] is True
        assert "stream" not in c.chat.completions().create().model("m").user_message("x").stream(False).build() or True


def test_close_early_closes_response() -> None:
    closed: list[bool] = []

    class Tracking(MockTransport):
        def send(self, request: Any) -> Any:
            resp = super().send(request)
            resp._close = lambda: closed.append(True)
            return resp

    t = Tracking(lambda r: MockResponse(body=sse(chunk("a"), chunk("b"), chunk("c", finish="stop"))))
    with VllmClient(URL, transport=t) as c:
        with c.chat.completions().create().model("m").user_message("x").send_stream() as s:
            first = next(s)
            assert isinstance(first, ContentDelta)
        assert closed == [True]
