"""A tool call cut by the token limit is never run: ``ToolCall.incomplete``, no
``ToolCallComplete`` for it, ``IncompleteToolCallError`` (with the response) from the tool
loop; the Responses API's ``finish_reason`` says "length" for an incomplete response."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vllm_client import (
    IncompleteToolCallError,
    MockResponse,
    MockTransport,
    ResponsesResponse,
    ToolCallComplete,
    ToolCallDelta,
    ToolLoopError,
    VllmError,
)

from ._both import CLIENTS, Model, call, close, drain, make, reply

URL = "http://test/v1"
RAN: list[str] = []


def get_weather(city: str) -> str:
    """Weather in a city.

    Args:
        city: The city.
    """
    RAN.append(city)
    return "sunny"


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


def tool_stream(finish: str, usage: dict[str, Any] | None = None) -> MockResponse:
    """A streamed tool call whose arguments arrive in pieces, then ``finish``."""
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                            "function": {"name": "get_weather", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage},
    ]
    return MockResponse(body=[b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"])


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_call_whose_turn_ended_by_length_is_never_run(kind: str) -> None:
    model = Model(reply(None, [("call_1", "get_weather", '{"city": "Pa')], finish="length"))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("Paris?").tools([get_weather])
    with pytest.raises(IncompleteToolCallError, match="ended by length") as e:
        await call(kind, b, "run_tools")
    await close(kind, client)
    assert RAN == [] and len(model.bodies) == 1  # not run, not sent back
    err = e.value
    assert isinstance(err, ToolLoopError) and isinstance(err, VllmError)
    assert err.response.finish_reason == "length" and err.response.tool_calls[0].incomplete
    assert err.response.tool_calls[0].arguments == '{"city": "Pa'
    assert err.messages[-1]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_streamed_cut_call_has_no_complete_event_and_is_never_run(kind: str) -> None:
    client = make(kind, URL, transport=MockTransport(Model(tool_stream("length"), tool_stream("tool_calls"))))
    b = client.chat.completions().create().model("m").user_message("Paris?").tools([get_weather])
    events = await drain(kind, await call(kind, b, "send_stream"))
    assert any(isinstance(e, ToolCallDelta) for e in events)
    assert not any(isinstance(e, ToolCallComplete) for e in events)
    (tc,) = events[-1].response.tool_calls
    assert tc.incomplete and tc.arguments == '{"city": "Pa'
    events = await drain(kind, await call(kind, b, "send_stream"))  # the same call, finished normally
    assert [e.tool_call.incomplete for e in events if isinstance(e, ToolCallComplete)] == [False]
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_run_tools_stream_yields_the_round_then_raises(kind: str) -> None:
    client = make(kind, URL, transport=MockTransport(Model(tool_stream("length"))))
    b = client.chat.completions().create().model("m").user_message("Paris?").tools([get_weather])
    seen: list[Any] = []

    async def consume() -> None:
        if kind == "sync":
            import asyncio

            def run() -> None:
                for ev in b.run_tools_stream():
                    seen.append(ev)
            await asyncio.to_thread(run)
        else:
            async for ev in b.run_tools_stream():
                seen.append(ev)

    with pytest.raises(IncompleteToolCallError) as e:
        await consume()
    await close(kind, client)
    assert RAN == [] and seen[-1].type == "done" and e.value.response is seen[-1].response


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_call_that_used_the_whole_budget_counts_as_cut(kind: str) -> None:
    # vLLM 0.32 says "tool_calls" for an auto tool call cut by max_tokens (non-streamed): the
    # usage shows the turn used its whole budget
    body = orjson.loads(orjson.dumps(reply(None, [("c", "get_weather", '{"city": "Paris"}')]).json))
    body["usage"] = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    under = dict(body, usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6})
    model = Model(MockResponse(json=body), MockResponse(json=under), reply("sunny"))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("Paris?").tools([get_weather]).max_tokens(2)
    with pytest.raises(IncompleteToolCallError) as e:
        await call(kind, b, "run_tools")
    assert e.value.response.finish_reason == "tool_calls" and e.value.response.tool_calls[0].incomplete
    assert RAN == []
    assert (await call(kind, b, "run_tools")).content == "sunny"  # one token short of the budget: run
    await close(kind, client)
    assert RAN == ["Paris"]


def incomplete_response(call_status: str) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "get_weather",
                        "arguments": '{"city": "Pa', "status": call_status}]}


def test_responses_finish_reason_is_length_for_an_incomplete_response() -> None:
    r = ResponsesResponse.from_dict(incomplete_response("incomplete"))
    assert r.finish_reason == "length" and r.tool_calls[0].incomplete
    done = ResponsesResponse.from_dict(dict(incomplete_response("completed"), status="completed"))
    assert done.finish_reason == "tool_calls" and not done.tool_calls[0].incomplete


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_run_tools_never_runs_an_incomplete_call(kind: str) -> None:
    model = Model(MockResponse(json=incomplete_response("incomplete")))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.responses().create().model("m").input("Paris?").tools([get_weather])
    with pytest.raises(IncompleteToolCallError) as e:
        await call(kind, b, "run_tools")
    await close(kind, client)
    assert RAN == [] and e.value.response.status == "incomplete"


def sse(*events: tuple[str, dict[str, Any]]) -> MockResponse:
    return MockResponse(body=[b"".join(b"event: " + n.encode() + b"\ndata: " + orjson.dumps(d) + b"\n\n"
                                       for n, d in events)])


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_responses_stream_cut_inside_a_call(kind: str) -> None:
    added = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "",
             "status": "in_progress"}
    base = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    answer = sse(("response.created", {"type": "response.created", "response": base}),
                 ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                                 "item": added}),
                 ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta",
                                                             "output_index": 0, "delta": '{"city": "Pa'}),
                 ("response.incomplete", {"type": "response.incomplete",
                                          "response": incomplete_response("incomplete")}))
    client = make(kind, URL, transport=MockTransport(Model(answer)))
    b = client.responses().create().model("m").input("Paris?").tools([get_weather])
    events = await drain(kind, await call(kind, b, "send_stream"))
    await close(kind, client)
    assert any(isinstance(e, ToolCallDelta) for e in events)
    assert not any(isinstance(e, ToolCallComplete) for e in events)
    assert events[-1].finish_reason == "length" and events[-1].response.tool_calls[0].incomplete


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_retry_cut_tool_calls_asks_again_with_a_doubled_budget(kind: str, streamed: bool) -> None:
    if streamed:
        answers = [tool_stream("length"), tool_stream("length"), tool_stream("length")]
    else:
        cut = reply(None, [("call_1", "get_weather", '{"city": "Pa')], finish="length")
        answers = [cut, cut, reply(None, [("call_1", "get_weather", '{"city": "Paris"}')]), reply("sunny")]
    model = Model(*answers)
    client = make(kind, URL, transport=MockTransport(model))
    b = (client.chat.completions().create().model("m").user_message("Paris?").tools([get_weather])
         .max_tokens(10).retry_cut_tool_calls(2))
    if streamed:  # cut three times: two re-asks, then the error
        with pytest.raises(IncompleteToolCallError):
            await drain(kind, b.run_tools_stream())
    else:
        assert (await call(kind, b, "run_tools")).content == "sunny"
    await close(kind, client)
    assert [body["max_tokens"] for body in model.bodies][:3] == [10, 20, 40]
    assert [len(body["messages"]) for body in model.bodies][:3] == [1, 1, 1]  # a cut reply is not kept
    assert RAN == ([] if streamed else ["Paris"])
    if not streamed:
        assert model.bodies[3]["max_tokens"] == 40 and len(model.bodies[3]["messages"]) == 3
