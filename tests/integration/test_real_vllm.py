"""The SDK against a real vLLM OpenAI-compatible server (CPU build, tiny random model).

The tiny model's text is random, but some paths are scripted into its weights
(see make_tiny_model.py): with tools it always calls get_weather({"city": "Paris"}),
after a tool result it says "The weather in Paris is sunny.", and free text never
ends by itself (finish "length"). Assertions on those paths run only against it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import requests

from vllm_client import (
    AsyncVllmClient,
    BadRequestError,
    CompletionResponse,
    ContentDelta,
    Done,
    NotFoundError,
    ToolCallComplete,
    UsageEvent,
    VllmClient,
)

from ._vllm_server import RunningServer

pytestmark = pytest.mark.integration
MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Tell me about the weather."}]


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return f"It is sunny in {city}."


@pytest.fixture
def client(real_server: RunningServer) -> Any:
    with VllmClient(real_server.base_url, default_model=real_server.model, max_retries=0) as c:
        yield c


def chat(client: Any) -> Any:
    return client.chat.completions().create().messages(MSGS).max_tokens(8)


# -- chat -------------------------------------------------------------------------------------------

def test_chat_send(client: Any, is_local: bool) -> None:
    r = chat(client).seed(7).send()
    assert r.content and r.id and r.model
    assert r.usage and r.usage.completion_tokens <= 8 and r.usage.total_tokens == r.usage.prompt_tokens + 8
    if is_local:
        assert r.finish_reason == "length"


def test_chat_stream_events_usage_and_final(client: Any) -> None:
    s = chat(client).stream_options({"include_usage": True}).send_stream()
    events = list(s)
    final = s.final_response()
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert text and text == final.content
    assert isinstance(events[-1], Done) and isinstance(events[-2], UsageEvent)
    assert events[-2].usage.completion_tokens == 8 and final.usage.total_tokens == events[-2].usage.total_tokens
    assert final.finish_reason in ("length", "stop")


async def test_async_send_and_stream(real_server: RunningServer) -> None:
    async with AsyncVllmClient(real_server.base_url, default_model=real_server.model) as c:
        r = await chat(c).seed(3).send()
        s = await chat(c).seed(3).send_stream()
        text = "".join([t async for t in s.text_stream()])
        assert text == r.content  # same seed, same text, streamed or not


def test_n2_send_and_stream(client: Any) -> None:
    r = chat(client).n(2).seed(1).send()
    assert [c.index for c in r.choices] == [0, 1] and all(c.content for c in r.choices)
    s = chat(client).n(2).seed(1).send_stream()
    final = s.final_response()
    assert [c.index for c in final.choices] == [0, 1] and all(c.finish_reason for c in final.choices)


def test_logprobs(client: Any) -> None:
    r = chat(client).logprobs().top_logprobs(2).send()
    content = r.choices[0].logprobs["content"]
    assert len(content) == r.usage.completion_tokens and all("logprob" in t for t in content)
    s = chat(client).logprobs().send_stream()
    assert len(s.final_response().choices[0].logprobs["content"]) == 8


def test_max_tokens_1_stop_and_seed(client: Any, is_local: bool) -> None:
    r = chat(client).max_tokens(1).send()
    assert r.finish_reason == "length" and r.usage.completion_tokens == 1
    a = chat(client).seed(42).temperature(1.0).send().content
    b = chat(client).seed(42).temperature(1.0).send().content
    assert a == b
    if is_local:
        r = chat(client).max_tokens(30).stop(["e", "a"]).seed(7).send()
        assert r.finish_reason == "stop" and r.choices[0].stop_reason in ("e", "a")
        assert "e" not in (r.content or "") and "a" not in (r.content or "")


def test_every_typed_vllm_setter_is_accepted(client: Any) -> None:
    b = (chat(client).min_p(0.05).repetition_penalty(1.1).min_tokens(1).ignore_eos().stop_token_ids([3])
         .skip_special_tokens(True).include_stop_str_in_output(False).truncate_prompt_tokens(100)
         .prompt_logprobs(1).chat_template_kwargs({"enable_thinking": False}).add_generation_prompt(True)
         .continue_final_message(False).top_k(20).top_p(0.9).presence_penalty(0.1).frequency_penalty(0.1)
         .request_id("itest-1").user("itest"))
    r = b.send()
    assert r.content is not None and r.usage.completion_tokens >= 1


@pytest.mark.parametrize("setter", [
    lambda b: b.structured_outputs(regex="[a-z]{3}-[0-9]{2}"),
    lambda b: b.structured_outputs(choice=["yes", "no"]),
    lambda b: b.structured_outputs(grammar='root ::= "hello" | "bye"'),
    lambda b: b.structured_outputs(json={"type": "object", "properties": {"a": {"type": "integer"}},
                                         "required": ["a"]}),
])
def test_structured_outputs(client: Any, setter: Any) -> None:
    r = setter(chat(client).max_tokens(40)).send()
    spec = r.raw and setter(chat(client)).build()["structured_outputs"]
    text = r.content or ""
    if "choice" in spec:
        assert text in ("yes", "no")
    elif "regex" in spec:
        import re
        assert re.fullmatch(spec["regex"], text)
    elif "grammar" in spec:
        assert text in ("hello", "bye")
    elif r.finish_reason == "stop":
        assert isinstance(json.loads(text)["a"], int)


def test_guided_setters_are_ignored_by_vllm_032(client: Any, is_local: bool) -> None:
    # Found here: vLLM 0.32 accepts the old guided_* fields but no longer applies them
    # (structured_outputs replaced them), so the output is unconstrained free text.
    with pytest.warns(DeprecationWarning, match="structured_outputs"):
        b = chat(client).max_tokens(8).guided_choice(["yes", "no"])
    r = b.send()
    assert r.content is not None
    if is_local:
        assert r.content not in ("yes", "no") and r.finish_reason == "length"


def test_priority_reasoning_effort_and_request_chat_template(client: Any) -> None:
    assert chat(client).priority(5).send().content is not None  # accepted even without priority scheduling
    assert chat(client).reasoning_effort("low").send().content is not None
    with pytest.raises(BadRequestError, match="trust-request-chat-template"):
        chat(client).chat_template("{% for m in messages %}{{ m.content }}{% endfor %}").send()


def test_json_schema_response_format_is_valid_json(client: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"], "additionalProperties": False}
    r = chat(client).max_tokens(60).json_schema(schema, name="weather").send()
    if r.finish_reason == "stop":
        obj = json.loads(r.content)
        assert isinstance(obj["city"], str) and isinstance(obj["sunny"], bool)
    s = chat(client).max_tokens(60).json_schema(schema).send_stream()
    final = s.final_response()
    if final.finish_reason == "stop":
        assert set(json.loads(final.content)) == {"city", "sunny"}


# -- tools ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("choice", ["auto", "required", "get_weather"])
def test_tool_choice_send_and_stream(client: Any, is_local: bool, choice: str) -> None:
    b = chat(client).max_tokens(40).tools([get_weather]).tool_choice(choice)
    assert b.build()["tool_choice"] == (choice if choice != "get_weather" else
                                        {"type": "function", "function": {"name": "get_weather"}})
    r = b.send()
    if is_local:
        assert r.tool_calls[0].name == "get_weather" and r.tool_calls[0].arguments_json() == {"city": "Paris"}
        assert r.finish_reason == ("stop" if choice == "get_weather" else "tool_calls")
    events = list(b.send_stream())
    completes = [e for e in events if isinstance(e, ToolCallComplete)]
    if is_local:
        assert len(completes) == 1 and completes[0].tool_call.arguments_json() == {"city": "Paris"}
        assert completes[0].tool_call.id


def test_run_tools_follow_up(client: Any, is_local: bool) -> None:
    r = chat(client).max_tokens(40).tools([get_weather]).run_tools(max_rounds=2)
    if is_local:
        assert r.content == "The weather in Paris is sunny." and r.finish_reason == "stop"


async def test_async_conversation_with_tools(real_server: RunningServer, is_local: bool) -> None:
    async with AsyncVllmClient(real_server.base_url) as c:
        conv = c.chat.conversation(system="Use tools.", tools=[get_weather], max_tokens=40)
        r = await conv.send("Weather in Paris?")
        if is_local:
            assert r.content == "The weather in Paris is sunny."
            assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]


# -- completions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt,n", [("The weather in Paris", 1), (["Hello", "Goodbye"], 2),
                                      ([1, 2, 3, 4], 1), ([[1, 2, 3], [4, 5, 6]], 2)])
def test_completions_all_prompt_forms(client: Any, prompt: Any, n: int) -> None:
    r = client.completions().create().prompt(prompt).max_tokens(4).send()
    assert isinstance(r, CompletionResponse) and len(r.choices) == n and all(c.text for c in r.choices)


def test_completions_echo_logprobs_stream(client: Any) -> None:
    r = client.completions().create().prompt("The weather in Paris").max_tokens(2).echo().logprobs(1).send()
    assert r.text.startswith("The weather in Paris") and r.choices[0].logprobs["tokens"]
    s = client.completions().create().prompt(["Hello", "Goodbye"]).max_tokens(3) \
        .stream_options({"include_usage": True}).send_stream()
    final = s.final_response()
    assert len(final.choices) == 2 and final.usage.completion_tokens == 6


# -- models, extras, default model -----------------------------------------------------------------

def test_models_tokenize_health_version(real_server: RunningServer, client: Any, is_local: bool) -> None:
    models = client.models()
    assert models[0].id == real_server.model and models[0].max_model_len
    if is_local:
        assert models[0].max_model_len == 512
    ids = client.tokenize("The weather in Paris")
    assert client.detokenize(ids) == "The weather in Paris"
    info = client.tokenize_result(MSGS)
    assert info.count == len(info.tokens) > len(ids)
    assert client.health() is True
    version = client.version()
    assert version and version[0].isdigit()
    if real_server.proc is not None:
        assert version == "0.32.0"


def test_default_model_resolved_from_models(real_server: RunningServer) -> None:
    with VllmClient(real_server.base_url) as c:  # no default_model
        r = c.chat.completions().create().messages(MSGS).max_tokens(2).send()
        assert r.model == real_server.model and c._resolved_model == real_server.model


# -- errors as the real server sends them ----------------------------------------------------------

def test_real_errors_are_typed_with_the_servers_message(client: Any, real_server: RunningServer) -> None:
    with pytest.raises(NotFoundError) as e1:
        chat(client).model("no-such-model").send()
    assert "no-such-model" in e1.value.message and e1.value.status_code == 404
    with pytest.raises(BadRequestError) as e2:
        client.chat.completions().create().user_message("word " * 600).max_tokens(4).send()
    assert "context length" in e2.value.message
    with pytest.raises(BadRequestError) as e3:
        chat(client).extra({"max_tokens": 5000}).send()
    assert "max_tokens" in e3.value.message and e3.value.param == "max_tokens"
    with pytest.raises(NotFoundError):
        chat(client).model("no-such-model").send_stream()  # a 404 JSON even for a stream
    r = requests.post(f"{real_server.base_url}/chat/completions", data=b'{"model": "x", "messages": [',
                      headers={"content-type": "application/json"}, timeout=30)
    from vllm_client._exceptions import error_from_response

    err = error_from_response(r.status_code, r.headers, r.content)
    assert isinstance(err, BadRequestError) and err.type == "Bad Request" and "json" in err.message.lower()


# -- CLI and batch ----------------------------------------------------------------------------------

def run_cli(*args: str, base_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
    return subprocess.run([sys.executable, "-m", "vllm_client", *args, "--base-url", base_url],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_chat_models_demo(real_server: RunningServer) -> None:
    r = run_cli("chat", "Tell me about the weather.", "--max-tokens", "5", base_url=real_server.base_url)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = run_cli("models", base_url=real_server.base_url)
    assert r.returncode == 0 and real_server.model in r.stdout
    r = run_cli("demo", base_url=real_server.base_url)
    assert r.returncode == 0, r.stderr
    assert "4. A multi-turn conversation" in r.stdout


def test_batch_200_at_concurrency_16(real_server: RunningServer) -> None:
    async def main() -> list[Any]:
        async with AsyncVllmClient(real_server.base_url, default_model=real_server.model) as c:
            reqs = [c.chat.completions().create().user_message(f"Say {i}").max_tokens(2) for i in range(200)]
            return await c.batch(reqs, concurrency=16, progress=False)
    results = asyncio.run(main())
    assert len(results) == 200 and all(getattr(r, "content", None) for r in results)
