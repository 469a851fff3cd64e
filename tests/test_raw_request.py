"""``client.request(method, path, ...)`` (issue 34 item 8): any route, with the client's retries,
timeouts, typed errors, timings and hooks; JSON and bytes; SSE events for streams. Both clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vllm_client import (
    APITimeoutError,
    BadRequestError,
    InvalidRequestError,
    NotFoundError,
    RawResponse,
    ResponseDecodeError,
    ServerEvent,
)
from vllm_client.testing import FakeVllmServer

from ._both import CLIENTS, call, close, make, recording_hooks


async def _request(kind: str, client: Any, *args: Any, **kw: Any) -> Any:
    return await call(kind, client, "request", *args, **kw)


async def _events(kind: str, stream: Any) -> list[Any]:
    if kind == "sync":
        def run() -> list[Any]:
            with stream:
                return list(stream)
        return await asyncio.to_thread(run)
    async with stream:
        return [ev async for ev in stream]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_get_and_post_any_route(kind: str, vllm_server: FakeVllmServer) -> None:
    client = make(kind, vllm_server.url)
    try:
        r = await _request(kind, client, "GET", "models")  # joined to the base URL
        assert isinstance(r, RawResponse) and r.status_code == 200
        assert r.json()["data"][0]["id"] == vllm_server.model
        assert r.content.startswith(b"{") and r.text == r.content.decode()
        assert r.headers["content-type"].startswith("application/json")
        assert r.timing is not None and r.timing.total is not None and r.timing.total >= 0
        t = await _request(kind, client, "POST", "/tokenize", json={"prompt": "Hello world"})  # server root
        assert t.json()["count"] == 2
        assert vllm_server.requests[-1].path == "/tokenize" and vllm_server.requests[-1].body == {"prompt":
                                                                                                  "Hello world"}
        v = await _request(kind, client, "get", "/v1/models")  # a full server path
        assert v.json()["data"][0]["id"] == vllm_server.model
        h = await _request(kind, client, "GET", "/health")
        assert h.status_code == 200 and h.content == b""
    finally:
        await close(kind, client)
    assert [q.path for q in vllm_server.requests] == ["/v1/models", "/tokenize", "/v1/models", "/health"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_stream_gives_server_events_up_to_done(kind: str, vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(content="Hello there")
    client = make(kind, vllm_server.url)
    try:
        body = {"model": vllm_server.model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        stream = await _request(kind, client, "POST", "chat/completions", json=body, stream=True)
        assert stream.status_code == 200 and stream.timing is not None
        events = await _events(kind, stream)
    finally:
        await close(kind, client)
    assert events and all(isinstance(e, ServerEvent) and e.event == "message" for e in events)
    text = "".join(e.data["choices"][0]["delta"].get("content") or "" for e in events if e.data["choices"])
    assert text == "Hello there"
    assert vllm_server.requests[-1].headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_errors_are_typed_and_retried(kind: str, vllm_server: FakeVllmServer) -> None:
    vllm_server.fail(503, path="*").fail(503, path="*")
    client = make(kind, vllm_server.url, max_retries=2)
    try:
        r = await _request(kind, client, "GET", "models")  # two 503s, then the answer
        assert r.status_code == 200 and r.timing.retries == 2
        with pytest.raises(NotFoundError) as e:
            await _request(kind, client, "GET", "no/such/route")
        assert "/v1/no/such/route" in str(e.value)
        with pytest.raises(BadRequestError):
            await _request(kind, client, "POST", "chat/completions", json={"model": vllm_server.model})
    finally:
        await close(kind, client)
    assert len(vllm_server.requests) == 5


@pytest.mark.parametrize("kind", CLIENTS)
async def test_timeout_and_hooks_apply(kind: str, vllm_server: FakeVllmServer) -> None:
    seen, hooks = recording_hooks(kind)
    client = make(kind, vllm_server.url, max_retries=0, event_hooks=hooks)
    try:
        vllm_server.delay(2.0, path="/v1/models")
        with pytest.raises(APITimeoutError):
            await _request(kind, client, "GET", "models", timeout=0.3)
        await _request(kind, client, "GET", "models", headers={"X-Mine": "1"})
    finally:
        await close(kind, client)
    assert vllm_server.requests[-1].headers["x-mine"] == "1"
    from vllm_client import RequestInfo, ResponseInfo

    assert [type(s) for s in seen] == [RequestInfo, RequestInfo, ResponseInfo]  # (the timeout: no answer)
    assert seen[-1].status_code == 200 and seen[1].headers["X-Mine"] == "1"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_bad_arguments_are_refused_before_sending(kind: str, vllm_server: FakeVllmServer) -> None:
    client = make(kind, vllm_server.url)
    try:
        for args, kw in [(("FETCH", "models"), {}), (("GET", "http://evil.example/x"), {}), (("GET", ""), {}),
                         ((None, "models"), {}), (("POST", "models"), {"json": {"x": float("nan")}}),
                         (("GET", "models"), {"headers": {"X": "a\r\nb"}})]:
            with pytest.raises(InvalidRequestError):
                await _request(kind, client, *args, **kw)
    finally:
        await close(kind, client)
    assert vllm_server.requests == []


@pytest.mark.parametrize("kind", CLIENTS)
async def test_json_of_a_body_that_is_not_json(kind: str, vllm_server: FakeVllmServer) -> None:
    vllm_server.raw(200, {"content-type": "text/plain"}, b"plain words", path="/metrics")
    client = make(kind, vllm_server.url)
    try:
        r = await _request(kind, client, "GET", "/metrics")
    finally:
        await close(kind, client)
    assert r.text == "plain words"
    with pytest.raises(ResponseDecodeError) as e:
        r.json()
    assert e.value.body == b"plain words"
