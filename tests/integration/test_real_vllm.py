"""The SDK against a real vLLM OpenAI-compatible server (CPU build, tiny random model): chat,
endpoints, errors as the server really sends them, concurrency, the CLI.

The tiny model's text is random, but some paths are scripted into its weights (see
make_tiny_model.py): free text never ends by itself (finish "length" or a stop string), and a
fixed seed gives the same text on every run. Assertions on scripted output run only when the
server serves it (``real_server.scripted``); tools are in test_real_tools.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import requests

from vllm_client import (
    AsyncVllmClient,
    BadRequestError,
    ChatCompletionResponse,
    ContentDelta,
    Done,
    InvalidRequestError,
    NotFoundError,
    UsageEvent,
    VllmClient,
)
from vllm_client._exceptions import error_from_response

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration


def chat(client: Any, msgs: list[dict[str, Any]], max_tokens: int = 8) -> Any:
    return client.chat.completions().create().messages(msgs).max_tokens(max_tokens)


# -- chat: send and stream ------------------------------------------------------------------------------

def check_send(r: ChatCompletionResponse, target: Target) -> None:
    assert isinstance(r, ChatCompletionResponse)
    assert r.id and r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == target.model
    assert isinstance(r.content, str) and r.content and r.tool_calls == [] and r.reasoning_content is None
    assert r.usage and r.usage.completion_tokens == 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.finish_reason == "length" and r.choices[0].stop_reason is None
    assert r.message == {"role": "assistant", "content": r.content}
    assert "system_fingerprint" in r.raw and "prompt_logprobs" in r.raw  # vLLM's extra keys stay in raw


def check_stream(events: list[Any], final: ChatCompletionResponse, target: Target) -> None:
    kinds = [type(e) for e in events]
    assert kinds[-2:] == [UsageEvent, Done] and set(kinds[:-2]) == {ContentDelta}, kinds
    deltas = [e for e in events if isinstance(e, ContentDelta)]
    assert all(e.text and e.index == 0 for e in deltas)  # the role chunk's "" gives no event
    assert "".join(e.text for e in deltas) == final.content
    done = events[-1]
    assert done.response is final and done.finish_reason == final.finish_reason == "length"
    assert events[-2].usage is final.usage and final.usage.completion_tokens == 8
    assert final.id and final.id.startswith("chatcmpl-") and final.model == target.model
    assert final.raw.get("system_fingerprint", "").startswith("vllm-")


def test_chat_send(client: Any, msgs: Any, real_server: Target) -> None:
    check_send(chat(client, msgs).seed(7).send(), real_server)


def test_chat_stream_events(client: Any, msgs: Any, real_server: Target) -> None:
    with chat(client, msgs).seed(7).stream_options({"include_usage": True}).send_stream() as s:
        events = list(s)
        final = s.final_response()
    check_stream(events, final, real_server)
    assert final.content == chat(client, msgs).seed(7).send().content  # same seed: same text, streamed or not


async def test_async_chat_send_and_stream(aclient: Any, msgs: Any, real_server: Target) -> None:
    r = await chat(aclient, msgs).seed(7).send()
    check_send(r, real_server)
    s = await chat(aclient, msgs).seed(7).stream_options({"include_usage": True}).send_stream()
    async with s:
        events = [e async for e in s]
        final = await s.final_response()
    check_stream(events, final, real_server)
    assert final.content == r.content
    s = await chat(aclient, msgs).seed(7).send_stream()
    assert "".join([t async for t in s.text_stream()]) == r.content


def test_send_with_stream_true_accumulates(client: Any, msgs: Any) -> None:
    r = chat(client, msgs).seed(7).stream(True).send()
    assert r.content == chat(client, msgs).seed(7).send().content and r.finish_reason == "length"


def test_seed_is_deterministic(client: Any, msgs: Any, real_server: Target) -> None:
    a = chat(client, msgs).seed(42).temperature(1.0).send().content
    b = chat(client, msgs).seed(42).temperature(1.0).send().content
    assert a == b
    assert chat(client, msgs).seed(43).temperature(1.0).send().content != a
    if real_server.scripted:  # the recipe's transcript: reproducible across server restarts and machines
        assert chat(client, msgs).seed(7).send().content == "ightghtox coo parkod flowumb"


def test_n2_send_and_stream(client: Any, msgs: Any) -> None:
    r = chat(client, msgs).n(2).seed(5).send()
    assert [c.index for c in r.choices] == [0, 1] and all(c.content for c in r.choices)
    assert all(c.finish_reason == "length" for c in r.choices) and r.usage.completion_tokens == 16
    with chat(client, msgs).n(2).seed(5).stream_options({"include_usage": True}).send_stream() as s:
        events = list(s)
        final = s.final_response()
    assert {e.index for e in events if isinstance(e, ContentDelta)} == {0, 1}
    for i in (0, 1):
        text = "".join(e.text for e in events if isinstance(e, ContentDelta) and e.index == i)
        assert text == final.choices[i].content == r.choices[i].content
    assert [c.finish_reason for c in final.choices] == ["length", "length"]
    assert isinstance(events[-1], Done)
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (r.usage.prompt_tokens, 16)


async def test_async_n2_stream(aclient: Any, msgs: Any) -> None:
    s = await chat(aclient, msgs).n(2).seed(5).send_stream()
    final = await s.final_response()
    r = await chat(aclient, msgs).n(2).seed(5).send()
    assert [c.content for c in final.choices] == [c.content for c in r.choices]


def test_logprobs_and_top_logprobs(client: Any, msgs: Any) -> None:
    r = chat(client, msgs).seed(7).logprobs().top_logprobs(3).send()
    content = r.choices[0].logprobs["content"]
    assert len(content) == r.usage.completion_tokens == 8
    assert "".join(t["token"] for t in content) == r.content
    for t in content:
        assert t["logprob"] <= 0 and isinstance(t["bytes"], list) and len(t["top_logprobs"]) == 3
        # vLLM lists the sampled token first, then the top-ranked ones (not OpenAI's top-N)
        assert t["top_logprobs"][0]["token"] == t["token"]
    with chat(client, msgs).seed(7).logprobs().top_logprobs(3).send_stream() as s:
        final = s.final_response()
    streamed = final.choices[0].logprobs["content"]
    assert [t["token"] for t in streamed] == [t["token"] for t in content]
    assert [t["logprob"] for t in streamed] == pytest.approx([t["logprob"] for t in content], abs=1e-3)


def test_max_tokens_1_finishes_with_length(client: Any, msgs: Any) -> None:
    r = chat(client, msgs, max_tokens=1).send()
    assert r.finish_reason == "length" and r.usage.completion_tokens == 1 and r.content
    with chat(client, msgs, max_tokens=1).send_stream() as s:
        events = list(s)
    assert [type(e) for e in events] == [ContentDelta, Done] and events[-1].finish_reason == "length"
    r = client.chat.completions().create().messages(msgs).max_completion_tokens(3).send()
    assert r.usage.completion_tokens == 3 and r.finish_reason == "length"


def test_stop_strings(client: Any, msgs: Any, real_server: Target) -> None:
    r = chat(client, msgs, 30).seed(7).stop(["e", "a"]).send()
    assert r.finish_reason == "stop" and r.choices[0].stop_reason in ("e", "a")  # vLLM: the matched string
    assert "e" not in r.content and "a" not in r.content
    with chat(client, msgs, 30).seed(7).stop(["e", "a"]).send_stream() as s:
        final = s.final_response()
    assert (final.content, final.finish_reason, final.choices[0].stop_reason) == (
        r.content, "stop", r.choices[0].stop_reason)
    kept = chat(client, msgs, 30).seed(7).stop(["e", "a"]).include_stop_str_in_output().send()
    assert kept.content == r.content + r.choices[0].stop_reason
    if real_server.scripted:
        assert r.content == "ightghtox coo p" and r.choices[0].stop_reason == "a"


def test_stop_token_ids(client: Any, msgs: Any, real_server: Target) -> None:
    if not real_server.scripted:
        pytest.skip("token 328 is ' se' only in the tiny model's vocabulary")
    r = chat(client, msgs, 60).seed(7).stop_token_ids([328]).send()
    assert r.finish_reason == "stop" and r.choices[0].stop_reason == 328  # an int, not a string
    assert not r.content.endswith(" se")


def test_return_token_ids(client: Any, msgs: Any) -> None:
    r = chat(client, msgs).seed(7).extra({"return_token_ids": True}).send()
    assert len(r.raw["choices"][0]["token_ids"]) == 8 and r.raw["prompt_token_ids"]  # vLLM extension, raw only
    assert r.raw["prompt_token_ids"] == client.tokenize(msgs)


def test_streamed_token_ids_match_send(client: Any, msgs: Any) -> None:
    b = chat(client, msgs).seed(7).extra({"return_token_ids": True})
    assert b.send_stream().final_response().raw["choices"][0].get("token_ids") == \
        b.send().raw["choices"][0]["token_ids"]


def test_x_request_id_header_and_request_id_field(client: Any, msgs: Any) -> None:
    assert chat(client, msgs, 2).header("X-Request-Id", "itest-hdr-1").send().id == "chatcmpl-itest-hdr-1"
    assert chat(client, msgs, 2).request_id("itest-field-1").send().id == "chatcmpl-itest-field-1"


# -- every typed vLLM setter is accepted ---------------------------------------------------------------

ASSISTANT_PREFIX = [{"role": "user", "content": "Tell me about the weather."},
                    {"role": "assistant", "content": "The weather"}]

SETTERS: dict[str, Any] = {
    "min_p": lambda b: b.min_p(0.05),
    "top_k": lambda b: b.top_k(20),
    "top_k_all": lambda b: b.top_k(-1),
    "top_p": lambda b: b.top_p(0.9),
    "temperature_0": lambda b: b.temperature(0),
    "presence_frequency": lambda b: b.presence_penalty(0.5).frequency_penalty(0.5),
    "repetition_penalty": lambda b: b.repetition_penalty(1.3),
    "min_tokens": lambda b: b.min_tokens(4),
    "ignore_eos": lambda b: b.ignore_eos(),
    "stop_token_ids": lambda b: b.stop_token_ids([3]),
    "skip_special_tokens": lambda b: b.skip_special_tokens(False),
    "spaces_between_special_tokens": lambda b: b.spaces_between_special_tokens(False),
    "include_stop_str_in_output": lambda b: b.include_stop_str_in_output(True),
    "truncate_prompt_tokens": lambda b: b.truncate_prompt_tokens(10),
    "truncate_prompt_tokens_-1": lambda b: b.truncate_prompt_tokens(-1),
    "prompt_logprobs": lambda b: b.prompt_logprobs(1),
    "chat_template_kwargs": lambda b: b.chat_template_kwargs({"enable_thinking": True}),
    "add_generation_prompt": lambda b: b.add_generation_prompt(False),
    "continue_final_message": lambda b: b.messages(ASSISTANT_PREFIX).continue_final_message(True)
    .add_generation_prompt(False),
    "add_special_tokens": lambda b: b.add_special_tokens(True),
    "reasoning_effort": lambda b: b.reasoning_effort("low"),
    "include_reasoning": lambda b: b.include_reasoning(False),
    "priority": lambda b: b.priority(5),
    "request_id": lambda b: b.request_id("itest-setter"),
    "logit_bias": lambda b: b.logit_bias({821: 100}),
    "user": lambda b: b.user("itest-user"),
    "parallel_tool_calls": lambda b: b.parallel_tool_calls(False),
    "max_completion_tokens": lambda b: b.max_completion_tokens(4),
    "structured_outputs_choice": lambda b: b.structured_outputs(choice=["yes", "no"]),
}


@pytest.mark.parametrize("name", list(SETTERS))
def test_typed_setter_is_accepted(client: Any, msgs: Any, real_server: Target, name: str) -> None:
    b = SETTERS[name](chat(client, msgs, 4).seed(3))
    body = b.build()
    r = b.send()  # a 200 (a rejected field would raise BadRequestError here)
    assert r.usage and r.usage.completion_tokens >= 1 and r.content is not None
    full = chat(client, msgs, 4).seed(3).send()
    if name == "truncate_prompt_tokens":
        assert r.usage.prompt_tokens == 10 < full.usage.prompt_tokens
    elif name == "prompt_logprobs":
        plp = r.raw["prompt_logprobs"]  # vLLM extension, top level; the SDK keeps it in raw only
        assert len(plp) == r.usage.prompt_tokens and plp[0] is None and isinstance(plp[1], dict)
    elif name == "request_id":
        assert r.id == "chatcmpl-itest-setter"
    elif name == "add_generation_prompt":
        assert r.usage.prompt_tokens < full.usage.prompt_tokens  # no "<|im_start|>assistant\n"
    elif name == "max_completion_tokens":
        assert r.usage.completion_tokens == 4
    elif name == "structured_outputs_choice":
        assert r.content in ("yes", "no") and r.finish_reason == "stop"
    elif name == "min_tokens":
        assert r.usage.completion_tokens == 4
    assert body  # the builder gave exactly what was sent
    if not real_server.scripted:
        return
    if name in ("chat_template_kwargs", "reasoning_effort"):
        # no reasoning parser on this server: the think block stays in the content
        # (reasoning_effort reaches the template too, which then thinks)
        assert r.content.startswith("<think>Let me think step by step.</think>")
    elif name == "logit_bias":
        assert r.content == " Paris Paris Paris Paris"
    elif name == "temperature_0":
        assert r.content == chat(client, msgs, 4).seed(99).temperature(0).send().content


def test_setters_the_server_refuses(client: Any, msgs: Any) -> None:
    """Typed setters that reach vLLM and are refused there, as the server says it."""
    with pytest.raises(BadRequestError, match="trust-request-chat-template"):
        chat(client, msgs, 2).chat_template("{{ messages[0]['content'] }}").send()
    # vLLM refuses continue_final_message with the default add_generation_prompt=True ("not compatible")
    # and min_tokens above max_tokens: the SDK now refuses both before sending
    with pytest.raises(InvalidRequestError, match="add_generation_prompt"):
        chat(client, ASSISTANT_PREFIX, 2).continue_final_message(True).send()
    assert chat(client, ASSISTANT_PREFIX, 2).continue_final_message(True).add_generation_prompt(False).send().content
    with pytest.raises(BadRequestError, match="not available when `stream=True`"):
        chat(client, msgs, 2).prompt_logprobs(1).send_stream()
    with pytest.raises(InvalidRequestError, match="min_tokens"):
        chat(client, msgs, 2).min_tokens(5).send()
    with pytest.raises(BadRequestError, match="greater than max allowed: 20"):
        chat(client, msgs, 2).prompt_logprobs(-1).send()  # -1 = the whole vocabulary; the server caps at 20
    with pytest.raises(BadRequestError) as e:
        chat(client, msgs, 2).reasoning_effort("extreme").send()
    assert e.value.type == "Bad Request" and "reasoning_effort" in e.value.message


# -- structured outputs --------------------------------------------------------------------------------

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "sunny": {"type": "boolean"},
                   "days": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["city", "sunny", "days"],
    "additionalProperties": False,
}


def matches(value: Any, schema: dict[str, Any]) -> bool:
    """Enough of JSON Schema for the schemas used here."""
    t = schema.get("type")
    if t == "object":
        props = schema.get("properties", {})
        return (isinstance(value, dict) and all(k in value for k in schema.get("required", []))
                and (schema.get("additionalProperties", True) or set(value) <= set(props))
                and all(matches(value[k], s) for k, s in props.items() if k in value))
    if t == "string":
        return isinstance(value, str) and len(value) <= schema.get("maxLength", 10**9)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)
                and schema.get("minimum", -10**18) <= value <= schema.get("maximum", 10**18))
    if t == "array":
        return isinstance(value, list) and all(matches(v, schema.get("items", {})) for v in value)
    raise AssertionError(f"unsupported schema {schema}")


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_json_schema_gives_valid_json(client: Any, msgs: Any, seed: int) -> None:
    r = chat(client, msgs, 60).seed(seed).json_schema(WEATHER_SCHEMA, name="weather").send()
    assert r.finish_reason == "stop", r.content
    assert matches(json.loads(r.content), WEATHER_SCHEMA), r.content
    with chat(client, msgs, 60).seed(seed).json_schema(WEATHER_SCHEMA).send_stream() as s:
        final = s.final_response()
    assert final.content == r.content and final.finish_reason == "stop"


async def test_async_response_format_json_schema(aclient: Any, msgs: Any) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_SCHEMA, "strict": True}}
    r = await chat(aclient, msgs, 60).seed(4).response_format(fmt).send()
    assert r.finish_reason == "stop" and matches(json.loads(r.content), WEATHER_SCHEMA)


def test_response_format_json_object_is_accepted(client: Any, msgs: Any) -> None:
    r = chat(client, msgs, 8).response_format({"type": "json_object"}).send()
    assert r.content.startswith("{")  # then a random never-closed string: truncated JSON, finish length
    assert r.finish_reason in ("length", "stop")


@pytest.mark.parametrize("kind", ["json", "regex", "choice", "grammar"])
def test_structured_outputs(client: Any, msgs: Any, kind: str) -> None:
    spec: dict[str, Any] = {
        "json": {"json": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}},
                          "required": ["a"], "additionalProperties": False}},
        "regex": {"regex": "[a-z]{3}-[0-9]{2}"},
        "choice": {"choice": ["sunny", "rainy", "cloudy"]},
        "grammar": {"grammar": 'root ::= "hello" | "bye"'},
    }[kind]
    for seed in (1, 2):
        r = chat(client, msgs, 40).seed(seed).structured_outputs(**spec).send()
        assert r.finish_reason == "stop", r.content
        text = r.content
        if kind == "json":
            assert 0 <= json.loads(text)["a"] <= 99
        elif kind == "regex":
            assert re.fullmatch(spec["regex"], text)
        elif kind == "choice":
            assert text in spec["choice"]
        else:
            assert text in ("hello", "bye")


@pytest.mark.parametrize("setter", ["guided_choice", "guided_regex", "guided_json", "guided_grammar"])
def test_guided_setters_are_deprecated_and_ignored_by_vllm_032(client: Any, msgs: Any, real_server: Target,
                                                              setter: str) -> None:
    arg: Any = {"guided_choice": ["yes", "no"], "guided_regex": "[0-9]{3}",
                "guided_json": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "guided_grammar": 'root ::= "hello" | "bye"'}[setter]
    with pytest.warns(DeprecationWarning, match="structured_outputs"):
        b = getattr(chat(client, msgs, 6).seed(7), setter)(arg)
    r = b.send()  # accepted (200): vLLM 0.32 logs "removed guided-decoding field(s) ... ignored"
    assert r.finish_reason == "length"
    if real_server.scripted:  # the output is not constrained: the same random text as without it
        assert r.content == chat(client, msgs, 6).seed(7).send().content


# -- models, tokenizer, health, version, default model --------------------------------------------------

def test_models(client: Any, real_server: Target) -> None:
    models = client.models()
    assert [m.id for m in models] == [real_server.model]
    m = models[0]
    assert m.owned_by == "vllm" and isinstance(m.max_model_len, int) and m.raw["object"] == "model"
    if real_server.scripted:
        assert m.max_model_len == 512
    if real_server.local:
        assert m.root == str(real_server.server.model_dir)


def test_tokenize_detokenize_round_trip(client: Any, msgs: Any, real_server: Target) -> None:
    text = "The weather in Paris is cloudy."  # (the sunny sentence is one added token)
    ids = client.tokenize(text)
    assert ids and all(isinstance(i, int) for i in ids)
    assert client.detokenize(ids) == text
    info = client.tokenize_result(text, extra={"return_token_strs": True})
    assert info.tokens == ids and info.count == len(ids) and info.max_model_len == client.models()[0].max_model_len
    assert info.token_strs and len(info.token_strs) == len(ids)
    templated = client.tokenize_result(msgs)  # the chat template applied
    assert templated.count == chat(client, msgs, 1).send().usage.prompt_tokens
    if real_server.scripted:
        assert client.tokenize("The weather in Paris") == [290, 487, 288, 821]
        assert info.token_strs[:2] == ["The", "Ġweather"]


async def test_async_endpoints(aclient: Any, real_server: Target) -> None:
    assert await aclient.health() is True
    assert [m.id for m in await aclient.models()] == [real_server.model]
    ids = await aclient.tokenize("hello there")
    assert await aclient.detokenize(ids) == "hello there"
    assert await aclient.version() == (real_server.version or await aclient.version())


def test_health_and_version(client: Any, real_server: Target) -> None:
    assert client.health() is True
    version = client.version()
    assert re.match(r"\d+\.\d+", version)
    if real_server.local:
        assert version == real_server.version == "0.32.0"  # the version installed in the venv
    with VllmClient("http://127.0.0.1:9/v1", max_retries=0) as dead:
        assert dead.health(timeout=2) is False


def test_default_model_resolved_from_models(real_server: Target, msgs: Any) -> None:
    with VllmClient(real_server.base_url, max_retries=0) as c:  # no default_model, no .model(...)
        b = chat(c, msgs, 2)
        assert "model" not in b.build()
        r = b.send()
        assert r.model == real_server.model
        assert chat(c, msgs, 2).send_stream().final_response().model == real_server.model


async def test_async_default_model_resolved_from_models(real_server: Target, msgs: Any) -> None:
    async with AsyncVllmClient(real_server.base_url, max_retries=0) as c:
        assert (await chat(c, msgs, 2).send()).model == real_server.model


# -- errors as the real server sends them --------------------------------------------------------------

def test_unknown_model_is_not_found(client: Any, msgs: Any) -> None:
    with pytest.raises(NotFoundError) as e:
        chat(client, msgs).model("no-such-model").send()
    err = e.value
    assert err.status_code == 404 and err.type == "NotFoundError" and err.param == "model"
    assert err.code == 404  # vLLM sends the HTTP status as an int code
    assert "The model `no-such-model` does not exist" in err.message and "no-such-model" in str(err)
    with pytest.raises(NotFoundError):
        chat(client, msgs).model("no-such-model").send_stream()  # plain JSON 404 even with stream: true
    with pytest.raises(NotFoundError):
        client.completions().create().model("no-such-model").prompt("hi").max_tokens(2).send()


async def test_async_unknown_model(aclient: Any, msgs: Any) -> None:
    with pytest.raises(NotFoundError, match="no-such-model"):
        await chat(aclient, msgs).model("no-such-model").send()
    with pytest.raises(NotFoundError):
        await chat(aclient, msgs).model("no-such-model").send_stream()


def test_prompt_too_long(client: Any, msgs: Any) -> None:
    long_text = "weather " * 600
    for send in (lambda: client.chat.completions().create().user_message(long_text).max_tokens(4).send(),
                 lambda: client.chat.completions().create().user_message(long_text).max_tokens(4).send_stream(),
                 lambda: client.completions().create().prompt(long_text).max_tokens(4).send()):
        with pytest.raises(BadRequestError) as e:
            send()
        assert "maximum context length is 512 tokens" in e.value.message or "context length" in e.value.message
        assert e.value.status_code == 400 and e.value.type == "BadRequestError"


def test_invalid_parameter_via_extra(client: Any, msgs: Any) -> None:
    # the setters refuse bad values before sending, so extra() carries them to the server
    with pytest.raises(BadRequestError) as e:
        chat(client, msgs).extra({"max_tokens": 5000}).send()
    assert e.value.param == "max_tokens" and "max_tokens=5000 cannot be greater than max_model_len" in e.value.message
    with pytest.raises(BadRequestError, match="temperature"):
        chat(client, msgs).extra({"temperature": -1}).send()
    with pytest.raises(BadRequestError, match="tools"):
        chat(client, msgs).tool_choice("required").send()  # tool_choice without tools


def test_bad_json_body(real_server: Target) -> None:
    # The SDK never sends invalid JSON; send raw bytes, then map the answer as the SDK does.
    r = requests.post(f"{real_server.base_url}/chat/completions", data=b'{"model": "x", "messages": [',
                      headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400
    err = error_from_response(r.status_code, r.headers, r.content)
    assert isinstance(err, BadRequestError) and err.type == "Bad Request"  # vLLM: the HTTP phrase, not a class
    assert "json_invalid" in err.message and err.param.startswith("body")


def test_unknown_route_is_fastapi_not_found(real_server: Target) -> None:
    with VllmClient(real_server.root_url + "/v2", max_retries=0) as c, pytest.raises(NotFoundError) as e:
        c.models()
    assert e.value.message == "Not Found" and e.value.body == {"detail": "Not Found"}


# -- concurrency ------------------------------------------------------------------------------------------

def test_200_requests_at_concurrency_16_with_gather(real_server: Target) -> None:
    async def main() -> list[Any]:
        sem = asyncio.Semaphore(16)
        async with AsyncVllmClient(real_server.base_url, default_model=real_server.model, max_retries=0,
                                   timeout=120) as c:
            async def one(i: int) -> Any:
                async with sem:
                    return await c.chat.completions().create().user_message(f"Say {i}").max_tokens(2).seed(i).send()
            return await asyncio.gather(*(one(i) for i in range(200)))

    results = asyncio.run(main())
    assert len(results) == 200 and all(r.content and r.usage.completion_tokens == 2 for r in results)
    assert len({r.id for r in results}) == 200


def test_sdk_batch_200_at_concurrency_16(client: Any) -> None:
    reqs = [client.chat.completions().create().user_message(f"Say {i}").max_tokens(2) for i in range(150)]
    reqs += [client.completions().create().prompt(f"Count {i}").max_tokens(2) for i in range(50)]
    results = client.batch(reqs, concurrency=16, progress=False)
    assert len(results) == 200 and all(getattr(r, "usage", None) and r.usage.completion_tokens == 2
                                       for r in results), [r for r in results if not hasattr(r, "usage")][:3]


# -- the CLI ---------------------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_BASE_URL", "OPENAI_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "vllm_client", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_cli_against_the_real_server(real_server: Target) -> None:
    r = run_cli("chat", "Tell me about the weather.", "--max-tokens", "5", "--base-url", real_server.base_url)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = run_cli("models", "--base-url", real_server.base_url)
    assert r.returncode == 0 and real_server.model in r.stdout, r.stderr
    r = run_cli("demo", "--base-url", real_server.base_url)
    assert r.returncode == 0, r.stderr
