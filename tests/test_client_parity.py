"""Sync/async parity bugs of issue 19: URL credentials with a key, an async tool under the sync
client inside a running loop, batch() with a custom transport, a builder's timeout inside a
batch, and a batch item that raises something other than a VllmError. Both clients each time."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any

import pytest

from vllm_client import (
    APITimeoutError,
    AsyncVllmClient,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    PreparedRequest,
    Response,
    VllmClient,
)
from vllm_client.testing import FakeVllmServer

CLIENTS = ["sync", "async"]


def _with_credentials(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


async def _call(kind: str, client: Any, fn: str, *args: Any, **kw: Any) -> Any:
    """Call a client or builder method; await it on the async client."""
    if kind == "sync":
        return await asyncio.to_thread(lambda: getattr(client, fn)(*args, **kw))
    return await getattr(client, fn)(*args, **kw)


def _client(kind: str, *args: Any, **kw: Any) -> Any:
    return VllmClient(*args, **kw) if kind == "sync" else AsyncVllmClient(*args, **kw)


async def _close(kind: str, client: Any) -> None:
    if kind == "sync":
        client.close()
    else:
        await client.aclose()


# -- credentials in the URL ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_url_credentials_and_api_key_send_only_the_bearer_key(kind: str) -> None:
    with FakeVllmServer() as server:
        client = _client(kind, _with_credentials(server.url, "alice", "s3cret"), api_key="the-key", max_retries=0)
        try:
            b = client.chat.completions().create().model(server.model).user_message("hi")
            resp = await _call(kind, b, "send")
        finally:
            await _close(kind, client)
        assert resp.content
        assert server.requests[-1].headers["Authorization"] == "Bearer the-key"
        assert "s3cret" not in repr(client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_url_credentials_without_key_are_sent_as_basic_auth(kind: str) -> None:
    with FakeVllmServer() as server:
        client = _client(kind, _with_credentials(server.url, "alice", "p%40ss"), max_retries=0)
        try:
            b = client.chat.completions().create().model(server.model).user_message("hi")
            await _call(kind, b, "send")
            copy = client.with_options(max_retries=1)  # a copy keeps the credentials
            await _call(kind, copy.chat.completions().create().model(server.model).user_message("again"), "send")
        finally:
            await _close(kind, client)
        expected = "Basic " + base64.b64encode(b"alice:p@ss").decode()
        assert [r.headers["Authorization"] for r in server.requests[-2:]] == [expected, expected]


def test_credentials_are_taken_out_of_ipv6_urls_too() -> None:
    from vllm_client._urls import redact_url

    with VllmClient("http://u:pw@[::1]:8000/v1") as client:
        assert client.base_url == "http://[::1]:8000/v1"
    assert redact_url("http://u:pw@[::1]:8000/v1") == "http://***@[::1]:8000/v1"


def test_replicas_with_different_credentials_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="different user:password"):
        VllmClient(["http://a:1@h1:8000/v1", "http://b:2@h2:8000/v1"])


# -- an async tool under the sync client, inside a running event loop ----------------------------

async def lookup(city: str) -> str:
    """Look a city up.

    Args:
        city: the city
    """
    await asyncio.sleep(0)
    return f"sunny in {city}"


async def test_sync_run_tools_with_one_async_tool_inside_a_running_loop() -> None:
    with FakeVllmServer() as server, VllmClient(server.url, max_retries=0) as client:
        server.reply(tool_calls=[{"name": "lookup", "arguments": {"city": "Paris"}}])
        server.reply(content="done")
        # Called straight from this coroutine: this thread runs an event loop (as in Jupyter).
        resp = client.chat.completions().create().model(server.model).user_message("w?").tools([lookup]).run_tools()
        assert resp.content == "done"
        tool_msg = server.requests[-1].body["messages"][-1]
        assert tool_msg["role"] == "tool"
        assert tool_msg["content"] == "sunny in Paris"


async def test_async_run_tools_with_one_async_tool() -> None:
    with FakeVllmServer() as server:
        async with AsyncVllmClient(server.url, max_retries=0) as client:
            server.reply(tool_calls=[{"name": "lookup", "arguments": {"city": "Rome"}}])
            server.reply(content="done")
            b = client.chat.completions().create().model(server.model).user_message("w?").tools([lookup])
            resp = await b.run_tools()
        assert resp.content == "done"
        assert server.requests[-1].body["messages"][-1]["content"] == "sunny in Rome"


# -- batch() and the client's transport ----------------------------------------------------------

class _OwnTransport:
    """A user's own sync transport (say, with proxy or TLS settings)."""

    def __init__(self) -> None:
        self.sent: list[PreparedRequest] = []

    def send(self, request: PreparedRequest) -> Response:
        self.sent.append(request)
        return Response(200, {"content-type": "application/json"}, b'{"choices": []}', url=request.url)

    def close(self) -> None:
        pass


def test_sync_batch_refuses_a_custom_transport_instead_of_swapping_it() -> None:
    transport = _OwnTransport()
    with VllmClient("http://test.local/v1", transport=transport) as client:
        b = client.chat.completions().create().model("m").user_message("hi")
        with pytest.raises(InvalidRequestError, match="custom sync transport"):
            client.batch([b], progress=False)
        with pytest.raises(InvalidRequestError, match="custom sync transport"):
            list(client.batch_iter([b]))
        with pytest.raises(InvalidRequestError, match="custom sync transport"):
            client.with_options(max_retries=0).batch([b], progress=False)
    assert transport.sent == []  # nothing went anywhere else either


def test_sync_batch_of_a_default_clients_copy_is_not_refused() -> None:
    # with_options() hands the copy this client's own RequestsTransport: not a custom one
    with FakeVllmServer() as server, VllmClient(server.url) as client:
        copy = client.with_options(max_retries=0)
        results = copy.batch([copy.chat.completions().create().model(server.model).user_message("hi")],
                             progress=False)
        assert results[0].content


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_with_a_mock_transport_uses_it(kind: str) -> None:
    transport = MockTransport(lambda req: MockResponse(json={
        "id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
    client = _client(kind, "http://test.local/v1", transport=transport, max_retries=0)
    try:
        b = client.chat.completions().create().model("m").user_message("hi")
        results = await _call(kind, client, "batch", [b, b], progress=False)
    finally:
        await _close(kind, client)
    assert [r.content for r in results] == ["ok", "ok"]
    assert len(transport.requests) == 2


# -- a builder's own timeout inside a batch --------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_keeps_the_builders_timeout(kind: str) -> None:
    with FakeVllmServer() as server:
        client = _client(kind, server.url, max_retries=0, timeout=30)
        try:
            server.delay(2.0)
            slow = client.chat.completions().create().model(server.model).user_message("a").timeout(0.3)
            fine = client.chat.completions().create().model(server.model).user_message("b")
            results = await asyncio.wait_for(_call(kind, client, "batch", [slow, fine], progress=False,
                                                   concurrency=1), 20)
        finally:
            await _close(kind, client)
    assert isinstance(results[0], APITimeoutError)
    assert results[1].content


# -- a batch item that raises something other than a VllmError ------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_item_raising_a_foreign_exception_ends_with_it(kind: str) -> None:
    calls = 0
    lock = threading.Lock()

    def handler(req: PreparedRequest) -> MockResponse:
        nonlocal calls
        with lock:
            calls += 1
        if req.json()["messages"][0]["content"] == "boom":
            raise RuntimeError("transport bug")
        return MockResponse(json={"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})

    client = _client(kind, "http://test.local/v1", transport=MockTransport(handler), max_retries=0)
    try:
        bs = [client.chat.completions().create().model("m").user_message(t) for t in ("a", "boom", "c")]
        results = await asyncio.wait_for(_call(kind, client, "batch", bs, progress=False, concurrency=1), 20)
        pairs = await asyncio.wait_for(_collect(kind, client, bs), 20)
    finally:
        await _close(kind, client)
    assert isinstance(results[1], RuntimeError) and "transport bug" in str(results[1])
    assert results[0].content == "ok" and results[2].content == "ok"
    assert sorted(i for i, _ in pairs) == [0, 1, 2]
    assert isinstance(dict(pairs)[1], RuntimeError)


async def _collect(kind: str, client: Any, builders: list[Any]) -> list[tuple[int, Any]]:
    if kind == "sync":
        return await asyncio.to_thread(lambda: list(client.batch_iter(builders, concurrency=1)))
    return [pair async for pair in client.batch_iter(builders, concurrency=1)]


# -- transports: one mock for both clients, a custom async transport ------------------------------

async def test_a_custom_async_transport_is_used_and_closed() -> None:
    class Recording:
        def __init__(self) -> None:
            self.inner = MockTransport(lambda req: MockResponse(json={"data": [{"id": "m1"}]}))
            self.sent: list[str] = []
            self.closed = False

        async def asend(self, request: PreparedRequest) -> Response:
            self.sent.append(f"{request.method} {request.url}")
            return await self.inner.asend(request)

        async def aclose(self) -> None:
            self.closed = True

    t = Recording()
    async with AsyncVllmClient("http://test.local/v1", transport=t) as client:
        assert [m.id for m in await client.models()] == ["m1"]
    assert t.sent == ["GET http://test.local/v1/models"] and t.closed


@pytest.mark.parametrize("kind", CLIENTS)
async def test_one_mock_transport_serves_either_client(kind: str) -> None:
    t = MockTransport(lambda req: MockResponse(json={"choices": [{"index": 0, "message": {"content": "hi"}}]}))
    client = _client(kind, "http://test.local/v1", transport=t)
    b = client.chat.completions().create().model("m").user_message("x")
    assert (await _call(kind, b, "send")).content == "hi"
    await _close(kind, client)
    assert t.closed and len(t.requests) == 1
