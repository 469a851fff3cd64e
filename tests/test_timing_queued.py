"""``timing.queued`` (issue 24): how long a request waited for a free pooled connection, on
both clients: measured with a pool of one connection, 0.0 when nothing was waited for, None
when the transport cannot tell, a custom transport's own figure."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests._both import CLIENTS, call, close, drain, make
from vllm_client import (
    AiohttpTransport,
    APITimeoutError,
    MockResponse,
    MockTransport,
    PreparedRequest,
    RequestsTransport,
    Response,
    Timeout,
)
from vllm_client.testing import FakeVllmServer


def _one_connection(kind: str, url: str) -> Any:
    """A client that has one connection to the server and waits for it when it is busy."""
    transport = RequestsTransport(pool_maxsize=1, pool_block=True) if kind == "sync" else AiohttpTransport(limit=1)
    return make(kind, url, transport=transport, max_retries=0)


def _chat(client: Any, server: FakeVllmServer) -> Any:
    return client.chat.completions().create().model(server.model).user_message("hi")


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_request_waits_for_the_only_connection(kind: str) -> None:
    with FakeVllmServer() as server:
        server.delay(0.6)  # the first request to arrive holds the connection that long
        client = _one_connection(kind, server.url)
        try:
            a, b = await asyncio.gather(call(kind, _chat(client, server), "send"),
                                        call(kind, _chat(client, server), "send"))
        finally:
            await close(kind, client)
    first, second = sorted((a, b), key=lambda r: r.timing.queued)
    assert first.timing.queued == 0.0
    # the second waited until the first was answered and gave the connection back
    assert second.timing.queued == pytest.approx(first.timing.total, abs=0.3)
    assert second.timing.queued >= 0.3
    assert second.timing.time_to_first_byte >= second.timing.queued


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_stream_holds_the_connection_until_it_is_closed(kind: str) -> None:
    with FakeVllmServer() as server:
        server.trickle(0.05)
        client = _one_connection(kind, server.url)
        try:
            async def stream_then_request() -> tuple[Any, Any]:
                stream = await call(kind, _chat(client, server), "send_stream")
                later = asyncio.ensure_future(call(kind, _chat(client, server), "send"))
                await drain(kind, stream)  # the request waits for the stream's connection
                return stream, await later
            stream, resp = await stream_then_request()
        finally:
            await close(kind, client)
    assert stream.timing.queued == 0.0
    assert resp.timing.queued is not None and resp.timing.queued > 0.05


@pytest.mark.parametrize("kind", CLIENTS)
async def test_nothing_waited_for_is_zero(kind: str) -> None:
    with FakeVllmServer() as server:
        default, limited = make(kind, server.url), _one_connection(kind, server.url)
        try:
            one = await call(kind, _chat(default, server), "send")
            stream = await call(kind, _chat(default, server), "send_stream")
            await drain(kind, stream)
            # one connection, one request at a time: it is always free
            sequential = [await call(kind, _chat(limited, server), "send") for _ in range(2)]
        finally:
            await close(kind, default)
            await close(kind, limited)
    assert one.timing.queued == 0.0 and stream.timing.queued == 0.0
    assert [r.timing.queued for r in sequential] == [0.0, 0.0]
    assert one.timing.to_dict()["queued"] == 0.0


@pytest.mark.parametrize("kind", CLIENTS)
async def test_the_wait_for_a_connection_counts_in_the_read_timeout(kind: str) -> None:
    with FakeVllmServer() as server:
        server.delay(1.5)
        client = _one_connection(kind, server.url)
        try:
            first = asyncio.ensure_future(call(kind, _chat(client, server), "send"))
            while not server.requests:  # the first request holds the connection
                await asyncio.sleep(0.01)
            with pytest.raises(APITimeoutError):
                await call(kind, _chat(client, server).timeout(Timeout(read=0.3)), "send")
            assert (await first).content
        finally:
            await close(kind, client)


_ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


class _OwnTransport:
    """A transport of the user's own (both clients) that knows how long its requests queued."""

    def send(self, request: PreparedRequest) -> Response:
        return Response(200, {"content-type": "application/json"}, orjson.dumps(_ANSWER), queued=0.25)

    async def asend(self, request: PreparedRequest) -> Response:
        return self.send(request)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("kind", CLIENTS)
async def test_other_transports_say_it_or_none(kind: str) -> None:
    mock = make(kind, "http://127.0.0.1:9/v1",
                transport=MockTransport(lambda req: MockResponse(200, json=_ANSWER)))
    own = make(kind, "http://127.0.0.1:9/v1", transport=_OwnTransport())
    try:
        unknown = await call(kind, mock.chat.completions().create().model("m").user_message("hi"), "send")
        told = await call(kind, own.chat.completions().create().model("m").user_message("hi"), "send")
    finally:
        await close(kind, mock)
        await close(kind, own)
    assert unknown.content == "ok" and unknown.timing.queued is None
    assert told.content == "ok" and told.timing.queued == 0.25


def test_a_session_of_your_own_is_not_seen() -> None:
    import requests

    from vllm_client import VllmClient

    with FakeVllmServer() as server, \
            VllmClient(server.url, transport=RequestsTransport(session=requests.Session())) as client:
        resp = _chat(client, server).send()
    assert resp.content and resp.timing.queued is None
