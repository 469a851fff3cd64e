"""Every non-streamed wire transcript (real server bodies) through both clients and real transports."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from aioresponses import aioresponses

from vllm_client import (
    APIStatusError,
    AsyncVllmClient,
    BadRequestError,
    ChatCompletionResponse,
    NotFoundError,
    VllmClient,
)

from .conftest import wire_body, wire_cases, wire_meta

URL = "http://wire.test/v1"
CASES = wire_cases(".json")
ERROR_CLASS = {400: BadRequestError, 404: NotFoundError}


def _status(meta: dict[str, Any]) -> int:
    exp = meta["expected"]
    return int(exp.get("http_status") or (exp.get("error") or {}).get("http_status") or 200)


def _check(meta: dict[str, Any], result: ChatCompletionResponse | APIStatusError) -> None:
    exp = meta["expected"]
    status = _status(meta)
    if status >= 400:
        assert isinstance(result, ERROR_CLASS.get(status, APIStatusError)), result
        err = exp["error"]
        assert result.status_code == status
        assert result.message == err["message"]  # verbatim, multi-line included
        if "type" in err:
            assert result.type == err["type"]
        if "code" in err:
            assert result.code == err["code"]
        if "param" in err:
            assert result.param == err["param"]
        line = str(result)
        assert "\n" not in line and str(status) in line
        assert " ".join(err["message"].split())[:60] in line
        assert isinstance(result.body, dict)
        return
    assert isinstance(result, ChatCompletionResponse), result
    if "id" in exp:
        assert result.id == exp["id"]
    if "model" in exp:
        assert result.model == exp["model"]
    assert len(result.choices) == len(exp["choices"])
    for got, want in zip(result.choices, exp["choices"]):
        assert got.index == want["index"]
        assert got.content == want["content"]
        assert got.finish_reason == want["finish_reason"]
        reasoning = want.get("reasoning_content", want.get("reasoning"))
        assert got.reasoning_content == reasoning
        if "stop_reason" in want:
            assert got.stop_reason == want["stop_reason"]
        assert [(t.id, t.type, t.name, t.arguments) for t in got.tool_calls] == [
            (t["id"], t["type"], t["name"], t["arguments"]) for t in want["tool_calls"]
        ]
    if exp.get("usage"):
        u = result.usage
        assert u is not None
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (
            exp["usage"]["prompt_tokens"], exp["usage"]["completion_tokens"], exp["usage"]["total_tokens"])
        details = exp["usage"].get("completion_tokens_details") or {}
        assert u.reasoning_tokens == details.get("reasoning_tokens")
    # the top-level conveniences are the first choice's
    assert result.content == result.choices[0].content
    assert result.tool_calls == result.choices[0].tool_calls
    msg = result.message
    assert msg["role"] == "assistant"
    if result.tool_calls:
        assert [t["function"]["name"] for t in msg["tool_calls"]] == [t.name for t in result.tool_calls]


@pytest.mark.parametrize("name", CASES)
@responses.activate
def test_sync(name: str) -> None:
    meta = wire_meta(name)
    responses.add(responses.POST, f"{URL}/chat/completions", body=wire_body(name, ".json"),
                  status=_status(meta), content_type="application/json")
    with VllmClient(URL, max_retries=0) as client:
        b = client.chat.completions().create().model("m").user_message("hi")
        try:
            result: Any = b.send()
        except APIStatusError as e:
            result = e
    _check(meta, result)


@pytest.mark.parametrize("name", CASES)
async def test_async(name: str) -> None:
    meta = wire_meta(name)
    with aioresponses() as m:
        m.post(f"{URL}/chat/completions", body=wire_body(name, ".json"), status=_status(meta),
               content_type="application/json")
        async with AsyncVllmClient(URL, max_retries=0) as client:
            b = client.chat.completions().create().model("m").user_message("hi")
            try:
                result: Any = await b.send()
            except APIStatusError as e:
                result = e
    _check(meta, result)
