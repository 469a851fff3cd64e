"""Reasoning goes back with the assistant turns the SDK builds (run_tools, run_tools_stream,
conversations, ``response.message``), under the key the server used: vLLM reads ``reasoning``
only, DeepSeek ``reasoning_content``. Recorded turns of each dialect, both clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vllm_client import ChatCompletionResponse, MockResponse, MockTransport

from ._both import CLIENTS, Model, call, close, drain, make, reply, stream_reply

URL = "http://test/v1"
WIRE = Path(__file__).parent / "wire"
REASONING_KEYS = ("reasoning", "reasoning_content")


def weather(location: str) -> str:
    """Weather in a place.

    Args:
        location: The place.
    """
    return f"sunny in {location}"


def read(path: str, offset: int = 0, limit: int = 10) -> str:
    """Read part of a file.

    Args:
        path: The file.
        offset: The first line.
        limit: How many lines.
    """
    return "fn main() {}"


def recorded(name: str) -> tuple[bytes, dict[str, Any]]:
    """A recorded stream and the first choice its meta file expects."""
    meta = json.loads((WIRE / f"{name}.meta.json").read_text())
    return (WIRE / f"{name}.sse").read_bytes(), meta["expected"]["choices"][0]


def assistant_turns(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "assistant"]


DIALECTS = [  # (recording, the key the server used, the tool it calls)
    ("deepseek_reasoner-tool-call", "reasoning_content", weather),
    ("ollama_cloud-reasoning-tool-usage", "reasoning", read),
]


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(("name", "key", "fn"), DIALECTS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_loop_sends_the_reasoning_back_under_the_servers_key(
        kind: str, name: str, key: str, fn: Any, streamed: bool) -> None:
    data, expected = recorded(name)
    model = Model(MockResponse(body=[data]), stream_reply("done"))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.chat.completions().create().model("m").user_message("go").tools([fn])
    if streamed:
        events = await drain(kind, b.run_tools_stream())
        final = events[-1].response
    else:  # send() of a stream(True) request: streamed and accumulated
        final = await call(kind, b.stream(True), "run_tools")
    await close(kind, client)
    assert final.content == "done" and len(model.bodies) == 2
    (turn,) = assistant_turns(model.bodies[1])
    assert turn[key] == expected[key]  # the thinking that led to the call, verbatim
    assert [k for k in REASONING_KEYS if k in turn] == [key]  # under that server's key only
    assert turn["tool_calls"][0]["function"]["name"] == fn.__name__
    assert model.bodies[1]["messages"][-1]["role"] == "tool"


def vllm_tool_turn(reasoning: str) -> MockResponse:
    """vLLM 0.32's recorded tool-call answer (reasoning parser on), with reasoning text in it."""
    body = json.loads((WIRE / "vllm032_reasoning-reasoning-tools-auto.json").read_text())
    body["choices"][0]["message"]["reasoning"] = reasoning
    return MockResponse(json=body)


def get_weather(city: str) -> str:
    """Weather in a city.

    Args:
        city: The city.
    """
    return "sunny"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_vllm_reasoning_goes_back_as_reasoning_and_can_be_left_out(kind: str) -> None:
    model = Model(vllm_tool_turn("I should look it up."), reply("It is sunny."),
                  vllm_tool_turn("Again."), reply("Sunny."))
    client = make(kind, URL, transport=MockTransport(model))
    earlier = {"role": "assistant", "content": "Hello.", "reasoning": "greet them"}
    b = client.chat.completions().create().model("m").messages([
        {"role": "user", "content": "Hi"}, earlier, {"role": "user", "content": "Paris?"}]).tools([get_weather])
    await call(kind, b, "run_tools")
    b.reasoning_in_history(False)
    await call(kind, b, "run_tools")
    await close(kind, client)
    assert assistant_turns(model.bodies[1]) == [earlier, {
        "role": "assistant", "content": None, "reasoning": "I should look it up.",
        "tool_calls": [{"id": "chatcmpl-tool-8b9c75c76e97643f", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}]
    # reasoning_in_history(False), for servers that refuse the key: none sent, not even the history's
    first, turn = assistant_turns(model.bodies[3])
    assert first == {"role": "assistant", "content": "Hello."}
    assert not any(k in turn for k in REASONING_KEYS) and turn["tool_calls"]


def test_message_and_history_message_carry_the_reasoning_under_the_servers_key() -> None:
    for key in REASONING_KEYS:
        r = ChatCompletionResponse.from_dict({"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "4", key: "2+2", "tool_calls": []}}]})
        assert r.message == {"role": "assistant", "content": "4", key: "2+2"}
        assert r.choices[0].history_message(reasoning=False) == {"role": "assistant", "content": "4"}
    both = ChatCompletionResponse.from_dict({"choices": [{"message": {
        "role": "assistant", "content": "4", "reasoning": "r", "reasoning_content": "r"}}]})
    assert both.message == {"role": "assistant", "content": "4", "reasoning": "r", "reasoning_content": "r"}
    none = ChatCompletionResponse.from_dict({"choices": [{"message": {
        "role": "assistant", "content": "4", "reasoning": None}}]})
    assert none.message == {"role": "assistant", "content": "4"}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_streamed_groq_turn_goes_back_in_the_conversation(kind: str) -> None:
    data, expected = recorded("groq_reasoning-field-x_groq")
    model = Model(MockResponse(body=[data]), reply("ok"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m")
    stream = await call(kind, chat, "stream", "How many r in strawberry?")
    await drain(kind, stream)
    await call(kind, chat, "send", "Sure?")
    await close(kind, client)
    (turn,) = assistant_turns(model.bodies[1])
    assert turn == {"role": "assistant", "content": expected["content"], "reasoning": expected["reasoning"]}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_conversation_options_across_user_turns(kind: str) -> None:
    # keep_reasoning=False: dropped once the turn is over, but sent inside its tool loop
    model = Model(vllm_tool_turn("look it up"), reply("sunny", reasoning="done thinking"), reply("bye"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m", tools=[get_weather], keep_reasoning=False)
    await call(kind, chat, "send", "Paris?")
    await call(kind, chat, "send", "thanks")
    await close(kind, client)
    assert assistant_turns(model.bodies[1])[0]["reasoning"] == "look it up"  # inside the loop
    assert not any(k in m for m in model.bodies[2]["messages"] for k in REASONING_KEYS)  # the next turn
    assert not any(k in m for m in chat.messages for k in REASONING_KEYS)
    # the default: kept, sent on every later turn (the chat template decides what the model sees)
    model = Model(vllm_tool_turn("look it up"), reply("sunny", reasoning="done thinking"), reply("bye"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m", tools=[get_weather])
    await call(kind, chat, "send", "Paris?")
    await call(kind, chat, "send", "thanks")
    await close(kind, client)
    assert [m.get("reasoning") for m in assistant_turns(model.bodies[2])] == ["look it up", "done thinking"]
    # reasoning_in_history=False (a builder default): never sent, not even inside the loop
    model = Model(vllm_tool_turn("look it up"), reply("sunny", reasoning="done thinking"), reply("bye"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m", tools=[get_weather], reasoning_in_history=False)
    await call(kind, chat, "send", "Paris?")
    await call(kind, chat, "send", "thanks")
    await close(kind, client)
    sent = [m for body in model.bodies for m in body["messages"]]
    assert not any(k in m for m in sent + chat.messages for k in REASONING_KEYS)


def responses_answer(*items: dict[str, Any], status: str = "completed") -> MockResponse:
    return MockResponse(json={"id": "resp_1", "object": "response", "status": status, "output": list(items)})


REASONING_ITEM = {"id": "rs_1", "type": "reasoning", "summary": [], "status": None,
                  "content": [{"type": "reasoning_text", "text": "I need the weather tool."}]}
CALL_ITEM = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city": "Paris"}', "status": "completed"}
TEXT_ITEM = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Sunny."}]}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_run_tools_passes_the_reasoning_items_back(kind: str) -> None:
    model = Model(responses_answer(REASONING_ITEM, CALL_ITEM), responses_answer(TEXT_ITEM),
                  responses_answer(REASONING_ITEM, CALL_ITEM), responses_answer(TEXT_ITEM))
    client = make(kind, URL, transport=MockTransport(model))
    b = client.responses().create().model("m").input("Paris?").tools([get_weather])
    r = await call(kind, b, "run_tools")
    assert r.output_text == "Sunny."
    b.reasoning_in_history(False)
    await call(kind, b, "run_tools")
    await close(kind, client)
    sent = model.bodies[1]["input"]
    assert [i.get("type") or i.get("role") for i in sent] == ["user", "reasoning", "function_call",
                                                              "function_call_output"]
    assert sent[1] == {"id": "rs_1", "type": "reasoning", "summary": [],
                       "content": [{"type": "reasoning_text", "text": "I need the weather tool."}]}
    assert [i.get("type") or i.get("role") for i in model.bodies[3]["input"]] == [
        "user", "function_call", "function_call_output"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_mistral_thinking_parts_stay_parts_and_only_the_text_goes_back(kind: str) -> None:
    data, expected = recorded("mistral_magistral-content-parts")
    model = Model(MockResponse(body=[data]), reply("ok"))
    client = make(kind, URL, transport=MockTransport(model))
    chat = client.chat.conversation(model="m")
    final = (await drain(kind, await call(kind, chat, "stream", "2+2?")))[-1].response
    await call(kind, chat, "send", "sure?")
    await close(kind, client)
    assert (final.content, final.reasoning_content) == (expected["content"], expected["reasoning_from_content_parts"])
    # the accumulated message holds content parts, as Mistral's non-streamed answer does
    assert final.raw["choices"][0]["message"]["content"] == [
        {"type": "thinking", "thinking": [{"type": "text", "text": expected["reasoning_from_content_parts"]}]},
        {"type": "text", "text": expected["content"]}]
    assert assistant_turns(model.bodies[1]) == [{"role": "assistant", "content": expected["content"]}]
