"""Overload, dropped connections and slow servers, over real sockets, sync and async."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import pytest

from vllm_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncVllmClient,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    StreamError,
    Timeout,
    VllmClient,
)

from ._rawserver import CHAT_OK, Conn, RawServer, hanging_listener, serve_ok, serve_stream, sse


def chat(client: Any) -> Any:
    return client.chat.completions().create().model("m").user_message("hi")


def sync_send(url: str, **kw: Any) -> Any:
    with VllmClient(url, **kw) as c:
        return chat(c).send()


def async_send(url: str, **kw: Any) -> Any:
    async def main() -> Any:
        async with AsyncVllmClient(url, **kw) as c:
            return await chat(c).send()
    return asyncio.run(main())


SENDERS = [sync_send, async_send]
IDS = ["sync", "async"]


def answer_then_ok(status: int, headers: dict[str, str], body: Any = None) -> Any:
    first = True

    def handler(conn: Conn) -> None:
        nonlocal first
        while conn.read_request() is not None:
            if first:
                first = False
                conn.respond(status, body or {"error": {"message": f"busy {status}"}}, headers)
            else:
                conn.respond(200, CHAT_OK)
    return handler


# -- overload -----------------------------------------------------------------------------------

@pytest.mark.parametrize("send", SENDERS, ids=IDS)
@pytest.mark.parametrize("status,headers,wait", [
    (429, {"Retry-After": "1"}, 1.0),
    (503, {"retry-after-ms": "400"}, 0.4),
    (429, {"Retry-After": "HTTPDATE"}, 0.5),
])
def test_overload_retried_after_the_asked_wait(send: Any, status: int, headers: dict[str, str], wait: float) -> None:
    if headers.get("Retry-After") == "HTTPDATE":
        headers = {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)}
    with RawServer(answer_then_ok(status, headers)) as srv:
        t = time.monotonic()
        assert send(srv.url, max_retries=2).content == "ok"
        elapsed = time.monotonic() - t
    assert srv.requests == 2
    assert elapsed >= wait - 0.05 and elapsed < wait + 2.5


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
@pytest.mark.parametrize("status,cls", [(429, RateLimitError), (503, InternalServerError)])
def test_overload_gives_up_after_max_retries(send: Any, status: int, cls: type) -> None:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(status, {"error": {"message": "overloaded"}}, {"Retry-After": "0", "X-Request-Id": "r1"})

    with RawServer(handler) as srv:
        with pytest.raises(cls) as ei:
            send(srv.url, max_retries=2)
    assert srv.requests == 3
    e = ei.value
    assert e.status_code == status and e.body == {"error": {"message": "overloaded"}}
    assert e.headers.get("Retry-After") == "0" or e.headers.get("retry-after") == "0"
    assert e.request_id == "r1"


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
def test_4xx_is_never_repeated(send: Any) -> None:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(400, {"error": {"message": "bad"}}, {"Retry-After": "0"})

    with RawServer(handler) as srv:
        with pytest.raises(BadRequestError):
            send(srv.url, max_retries=5)
    assert srv.requests == 1


# -- dropped connections -----------------------------------------------------------------------

def reset_before(conn: Conn) -> None:
    conn.read_request()
    conn.reset()


def reset_mid_body(conn: Conn) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\": \"c\", \"cho")
    time.sleep(0.05)
    conn.reset()


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
@pytest.mark.parametrize("fault", [reset_before, reset_mid_body])
def test_reset_before_or_mid_json_is_retried(send: Any, fault: Any) -> None:
    with RawServer(fault, serve_ok) as srv:
        assert send(srv.url, max_retries=2).content == "ok"
    assert srv.requests == 2


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
def test_reset_every_time_raises_connection_error(send: Any) -> None:
    with RawServer(reset_before) as srv:
        with pytest.raises(APIConnectionError) as ei:
            send(srv.url, max_retries=1)
    assert srv.requests == 2 and not isinstance(ei.value, APITimeoutError)


def cut_mid_stream(conn: Conn) -> None:
    conn.read_request()
    conn.start_stream()
    for t in ["Hel", "lo ", "wor"]:
        conn.chunk(sse(t))
    time.sleep(0.05)
    conn.reset()


def test_cut_mid_stream_keeps_every_token_and_is_not_retried() -> None:
    with RawServer(cut_mid_stream, serve_ok) as srv:
        got: list[str] = []
        with VllmClient(srv.url, max_retries=3) as c:
            with pytest.raises(StreamError) as ei:
                for ev in chat(c).send_stream():
                    if ev.type == "content":
                        got.append(ev.text)
        assert srv.requests == 1
    assert got == ["Hel", "lo ", "wor"] and ei.value.partial.content == "Hello wor"


async def test_cut_mid_stream_async() -> None:
    with RawServer(cut_mid_stream, serve_ok) as srv:
        async with AsyncVllmClient(srv.url, max_retries=3) as c:
            s = await chat(c).send_stream()
            with pytest.raises(StreamError) as ei:
                async for _ in s:
                    pass
        assert srv.requests == 1
    assert ei.value.partial.content == "Hello wor"


def idle_close(conn: Conn) -> None:
    """Answer one request, then close the idle keep-alive connection."""
    if conn.read_request() is not None:
        conn.respond(200, CHAT_OK)
    time.sleep(0.1)
    conn.close()


def test_idle_keepalive_closed_by_server_is_invisible_sync() -> None:
    with RawServer(idle_close) as srv:
        with VllmClient(srv.url, max_retries=0) as c:
            assert chat(c).send().content == "ok"
            time.sleep(0.3)  # the server has closed the pooled connection by now
            assert chat(c).send().content == "ok"
    assert srv.requests == 2 and srv.connections == 2


async def test_idle_keepalive_closed_by_server_is_invisible_async() -> None:
    with RawServer(idle_close) as srv:
        async with AsyncVllmClient(srv.url, max_retries=0) as c:
            assert (await chat(c).send()).content == "ok"
            await asyncio.sleep(0.3)
            assert (await chat(c).send()).content == "ok"
    assert srv.requests == 2


# -- slow servers ------------------------------------------------------------------------------

def test_trickling_stream_longer_than_read_timeout_succeeds() -> None:
    texts = [f"t{i}" for i in range(12)]
    with RawServer(serve_stream(texts, gap=0.1)) as srv:
        with VllmClient(srv.url, timeout=Timeout(connect=2, read=0.5)) as c:
            t = time.monotonic()
            text = "".join(chat(c).send_stream().text_stream())
            assert time.monotonic() - t > 1.0  # the whole stream took longer than the read timeout
    assert text == "".join(texts)


async def test_trickling_stream_async() -> None:
    texts = [f"t{i}" for i in range(12)]
    with RawServer(serve_stream(texts, gap=0.1)) as srv:
        async with AsyncVllmClient(srv.url, timeout=Timeout(connect=2, read=0.5)) as c:
            s = await chat(c).send_stream()
            assert "".join([t async for t in s.text_stream()]) == "".join(texts)


def stall_mid_stream(conn: Conn) -> None:
    conn.read_request()
    conn.start_stream()
    conn.chunk(sse("first"))
    time.sleep(3)


def stall_before_answer(conn: Conn) -> None:
    conn.read_request()
    time.sleep(3)


def test_stall_mid_stream_raises_timeout_within_read_timeout() -> None:
    with RawServer(stall_mid_stream) as srv:
        with VllmClient(srv.url, timeout=Timeout(connect=2, read=0.5), max_retries=0) as c:
            t = time.monotonic()
            with pytest.raises(APITimeoutError) as ei:
                list(chat(c).send_stream())
            assert time.monotonic() - t < 1.5
    assert isinstance(ei.value, StreamError) and ei.value.partial.content == "first"


async def test_stall_mid_stream_async() -> None:
    with RawServer(stall_mid_stream) as srv:
        async with AsyncVllmClient(srv.url, timeout=Timeout(connect=2, read=0.5), max_retries=0) as c:
            t = time.monotonic()
            s = await chat(c).send_stream()
            with pytest.raises(APITimeoutError) as ei:
                async for _ in s:
                    pass
            assert time.monotonic() - t < 1.5
    assert ei.value.partial.content == "first"  # type: ignore[attr-defined]


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
def test_stall_before_answer_times_out(send: Any) -> None:
    with RawServer(stall_before_answer) as srv:
        t = time.monotonic()
        with pytest.raises(APITimeoutError):
            send(srv.url, timeout=Timeout(connect=2, read=0.5), max_retries=0)
        assert time.monotonic() - t < 1.5


def stall_after_headers(conn: Conn) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":")
    time.sleep(3)


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
def test_stall_after_headers_times_out(send: Any) -> None:
    with RawServer(stall_after_headers) as srv:
        t = time.monotonic()
        with pytest.raises(APITimeoutError, match="read timed out"):
            send(srv.url, timeout=Timeout(connect=2, read=0.5), max_retries=0)
        assert time.monotonic() - t < 1.5


async def test_each_async_request_keeps_its_own_read_timeout() -> None:
    # several stalled requests with different read timeouts, in one loop: each ends at its own
    with RawServer(stall_before_answer) as srv:
        async with AsyncVllmClient(srv.url, max_retries=0) as c:
            async def one(read: float) -> float:
                t = time.monotonic()
                with pytest.raises(APITimeoutError):
                    await chat(c).timeout(Timeout(connect=2, read=read)).send()
                return time.monotonic() - t
            took = await asyncio.gather(one(1.2), one(0.3), one(0.3), one(0.7))
    assert took[1] < 0.7 and took[2] < 0.7
    assert 0.6 < took[3] < 1.1
    assert took[0] > 1.1


async def test_after_a_read_timeout_the_task_goes_on() -> None:
    # the timeout cancels the waiting task inside the client; nothing of that may leak out:
    # the same task sleeps, sends again and is not left marked as cancelled
    with RawServer(stall_before_answer, serve_ok) as srv:
        async with AsyncVllmClient(srv.url, timeout=Timeout(connect=2, read=0.3), max_retries=0) as c:
            with pytest.raises(APITimeoutError):
                await chat(c).send()
            await asyncio.sleep(0.05)
            assert (await chat(c).send()).content == "ok"
            task = asyncio.current_task()
            assert getattr(task, "cancelling", lambda: 0)() == 0


async def test_cancelling_a_waiting_request_is_a_cancellation_not_a_timeout() -> None:
    with RawServer(stall_before_answer) as srv:
        async with AsyncVllmClient(srv.url, timeout=Timeout(connect=2, read=5), max_retries=0) as c:
            task = asyncio.ensure_future(chat(c).send())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):  # the user's own limit, shorter than ours
                await asyncio.wait_for(chat(c).send(), 0.3)


async def test_waiting_for_a_pooled_connection_is_not_a_connect_timeout() -> None:
    # a batch bigger than the connection pool waits for free connections for longer than
    # the connect timeout; only connecting itself is limited by it
    from vllm_client import AiohttpTransport

    def slow_ok(conn: Conn) -> None:
        while conn.read_request() is not None:
            time.sleep(0.3)
            conn.respond(200, CHAT_OK)

    with RawServer(slow_ok) as srv:
        async with AsyncVllmClient(srv.url, timeout=Timeout(connect=0.2, read=5), max_retries=0,
                                   transport=AiohttpTransport(limit=1)) as c:
            got = await asyncio.gather(*(chat(c).send() for _ in range(3)))
    assert [r.content for r in got] == ["ok"] * 3
    assert srv.connections == 1


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
def test_connect_that_hangs_times_out(send: Any) -> None:
    with hanging_listener() as url:
        t = time.monotonic()
        with pytest.raises(APITimeoutError):
            send(url, timeout=Timeout(connect=0.5, read=5), max_retries=0)
        assert time.monotonic() - t < 2.0


@pytest.mark.parametrize("send", SENDERS, ids=IDS)
def test_total_timeout_bounds_a_trickle(send: Any) -> None:
    def trickle_json(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
        for _ in range(40):
            conn.send(b" ")
            time.sleep(0.1)

    with RawServer(trickle_json) as srv:
        t = time.monotonic()
        with pytest.raises(APITimeoutError):
            send(srv.url, timeout=Timeout(connect=1, read=1, total=1.0), max_retries=0)
        assert time.monotonic() - t < 2.5
