"""Issue 23 on the live vLLM (main server: tiny Llama, hermes tools): the Responses API (send,
stream, function tools, an enum-bounded json schema, run_tools), batched chat, /load, /metrics;
what this CPU build does not serve (runtime LoRA without its flags, audio without a Whisper
model) is checked to fail with the SDK's typed, explained errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from vllm_client import (
    APIStatusError,
    ContentDelta,
    Done,
    NotFoundError,
    ResponsesResponse,
    ToolCallComplete,
)

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("tools_ok")]

ANSWER = "The weather in Paris is sunny."


def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"It is sunny in {city}."


def test_responses_send_and_stream(client: Any) -> None:
    r = client.responses().create().input("Hello").max_output_tokens(8).temperature(0).seed(1).send()
    assert isinstance(r, ResponsesResponse) and r.id.startswith("resp_") and r.output_text
    assert r.status in ("completed", "incomplete") and r.usage.completion_tokens <= 8
    with client.responses().create().input("Hello").max_output_tokens(8).temperature(0).seed(1).send_stream() as s:
        events = list(s)
    assert isinstance(events[-1], Done)
    streamed = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert streamed == events[-1].response.output_text == r.output_text  # greedy: the same text


async def test_responses_async_tool_call_stream(aclient: Any) -> None:
    b = aclient.responses().create().input("Weather in Paris?").tools([get_weather]).tool_choice("required")
    stream = await b.max_output_tokens(40).temperature(0).send_stream()
    events = [e async for e in stream]
    (call,) = [e.tool_call for e in events if isinstance(e, ToolCallComplete)]
    assert call.name == "get_weather" and call.arguments_json() == {"city": "Paris"}
    assert events[-1].response.tool_calls == [call]


def test_responses_json_schema_enum(client: Any) -> None:
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}},
              "required": ["color"], "additionalProperties": False}
    r = client.responses().create().input("Pick a color").text_format(schema, name="pick") \
        .max_output_tokens(30).send()
    assert json.loads(r.output_text)["color"] in ("red", "green", "blue")


def test_responses_run_tools(client: Any, real_server: Target) -> None:
    b = client.responses().create().input("Weather in Paris?").tools([get_weather]).max_output_tokens(40)
    r = b.temperature(0).run_tools(max_rounds=2)
    assert r.tool_calls == [] and r.output_text
    if real_server.scripted:
        assert r.output_text == ANSWER


def test_responses_unknown_model_and_id(client: Any) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        client.responses().create().model("nope").input("Hello").send()
    with pytest.raises(NotFoundError, match="not found"):
        client.responses().retrieve("resp_0000")


async def test_batched_chat(aclient: Any) -> None:
    convs = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Yo"}]]
    r = await aclient.chat.completions().create().conversations(convs).max_tokens(4).temperature(0).send()
    assert [c.index for c in r.choices] == [0, 1] and all(c.content for c in r.choices)


def test_load_and_metrics(client: Any) -> None:
    assert client.load() >= 0
    m = client.metrics()
    assert m.num_requests_running is not None and m.num_requests_waiting is not None
    assert 0.0 <= m.kv_cache_usage_perc <= 1.0
    assert any(k.startswith("vllm:") for k in m)


def test_lora_without_runtime_updating_is_explained(client: Any) -> None:
    """The main server runs without VLLM_ALLOW_RUNTIME_LORA_UPDATING (and --enable-lora): the route is absent."""
    with pytest.raises(NotFoundError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
        client.load_lora_adapter("tiny-lora", "/nonexistent")


def test_audio_on_a_text_model_is_a_typed_error(client: Any) -> None:
    """No Whisper-class model here: the server refuses the form with a typed status error."""
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)
    with pytest.raises(APIStatusError) as e:
        client.audio.transcriptions().create().file(wav).send()
    assert e.value.status_code in (400, 404, 422, 500, 501)
