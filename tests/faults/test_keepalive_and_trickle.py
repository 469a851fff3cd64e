"""A keep-alive connection the server closed just as the next request went out on it, and a
non-streamed body trickled slower than the read timeout in total: real sockets, both clients."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vllm_client import (
    APIConnectionError,
    AsyncVllmClient,
    MockResponse,
    MockTransport,
    Timeout,
    VllmClient,
)

from ._rawserver import CHAT_OK, Conn, RawServer, serve_ok, serve_stream


def chat(client: Any) -> Any:
    return client.chat.completions().create().model("m").user_message("hi")


def run_sync(url: str, steps: list[str], **kw: Any) -> list[Any]:
    """Send the steps ("send" / "stream") one after the other on one client; each result or error."""
    out: list[Any] = []
    with VllmClient(url, **kw) as c:
        for step in steps:
            try:
                if step == "stream":
                    with chat(c).send_stream() as s:
                        out.append("".join(s.text_stream()))
                else:
                    out.append(chat(c).send().content)
            except APIConnectionError as e:
                out.append(e)
    return out


def run_async(url: str, steps: list[str], **kw: Any) -> list[Any]:
    async def main() -> list[Any]:
        out: list[Any] = []
        async with AsyncVllmClient(url, **kw) as c:
            for step in steps:
                try:
                    if step == "stream":
                        async with await chat(c).send_stream() as s:
                            out.append("".join([t async for t in s.text_stream()]))
                    else:
                        out.append((await chat(c).send()).content)
                except APIConnectionError as e:
                    out.append(e)
        return out
    return asyncio.run(main())


RUNNERS = [run_sync, run_async]
IDS = ["sync", "async"]


def answer_first_then_drop(stream: bool = False) -> Any:
    """Answer the connection's first request (kept alive), read the second and close without a byte."""
    def handler(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        if stream:
            conn.start_stream()
            conn.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n')
            conn.chunk(b"data: [DONE]\n\n")
            conn.end_stream()
        else:
            conn.respond(200, CHAT_OK)
        conn.read_request()
        conn.close()
    return handler


def drop_unanswered(conn: Conn) -> None:
    conn.read_request()
    conn.close()


@pytest.mark.parametrize("run", RUNNERS, ids=IDS)
@pytest.mark.parametrize("first", ["send", "stream"])
def test_a_request_lost_on_a_reused_connection_is_resent_once(run: Any, first: str) -> None:
    with RawServer(answer_first_then_drop(stream=first == "stream"), serve_ok) as srv:
        got = run(srv.url, [first, "send"], max_retries=0)
    assert got == ["ok", "ok"]
    assert srv.connections == 2 and srv.requests == 3  # the second request went out twice


@pytest.mark.parametrize("run", RUNNERS, ids=IDS)
def test_a_stream_lost_on_a_reused_connection_is_resent_once(run: Any) -> None:
    with RawServer(answer_first_then_drop(), serve_stream(["o", "k"])) as srv:
        got = run(srv.url, ["send", "stream"], max_retries=0)
    assert got == ["ok", "ok"]


@pytest.mark.parametrize("run", RUNNERS, ids=IDS)
def test_the_same_close_on_a_fresh_connection_follows_max_retries(run: Any) -> None:
    with RawServer(drop_unanswered) as srv:
        got = run(srv.url, ["send"], max_retries=0)
    assert isinstance(got[0], APIConnectionError) and not got[0].stale_connection
    assert srv.requests == 1  # not resent


@pytest.mark.parametrize("run", RUNNERS, ids=IDS)
def test_only_one_free_resend(run: Any) -> None:
    # the resend lands on a connection that is closed the same way, after its own first answer
    # would have been due: the second loss counts as a failure (max_retries=0)
    with RawServer(answer_first_then_drop(), drop_unanswered) as srv:
        got = run(srv.url, ["send", "send"], max_retries=0)
    assert got[0] == "ok" and isinstance(got[1], APIConnectionError)
    assert srv.requests == 3


def stale_then_ok() -> Any:
    calls = []

    def handler(req: Any) -> MockResponse:
        calls.append(req)
        if len(calls) == 1:
            e = APIConnectionError("connection to x broke: Server disconnected")
            e.stale_connection = True
            raise e
        return MockResponse(json=CHAT_OK)
    return handler, calls


def test_the_resend_decision_is_the_clients_not_the_transports() -> None:
    # one place decides (send_flow, _retry.resend_at_once): a transport only flags the error
    for make in (lambda t: VllmClient("http://x.test/v1", transport=t, max_retries=0),
                 lambda t: AsyncVllmClient("http://x.test/v1", transport=t, max_retries=0)):
        handler, calls = stale_then_ok()
        client = make(MockTransport(handler))
        if isinstance(client, VllmClient):
            with client:
                assert chat(client).send().content == "ok"
        else:
            async def go(c: Any = client) -> str:
                async with c:
                    return str((await chat(c).send()).content)
            assert asyncio.run(go()) == "ok"
        assert len(calls) == 2


# -- a non-streamed body trickled in pieces -------------------------------------------------------

def trickle_json(conn: Conn) -> None:
    while conn.read_request() is not None:
        body = b'{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,' \
               b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), len(body) // 6 + 1):
            time.sleep(0.5)
            conn.send(body[i:i + len(body) // 6 + 1])


@pytest.mark.parametrize("run", RUNNERS, ids=IDS)
def test_a_body_trickled_longer_than_the_read_timeout_is_read(run: Any) -> None:
    with RawServer(trickle_json) as srv:
        t = time.monotonic()
        got = run(srv.url, ["send"], max_retries=0, timeout=Timeout(connect=2, read=1))
        took = time.monotonic() - t
    assert got == ["ok"]
    assert took > 2.5  # (the body took longer than one read timeout in all)


def test_batch_reads_a_trickled_body_on_both_clients() -> None:
    with RawServer(trickle_json) as srv:
        with VllmClient(srv.url, max_retries=0, timeout=Timeout(connect=2, read=1)) as c:
            sync = c.batch([chat(c), chat(c)], progress=False)

        async def main() -> list[Any]:
            async with AsyncVllmClient(srv.url, max_retries=0, timeout=Timeout(connect=2, read=1)) as ac:
                return await ac.batch([chat(ac), chat(ac)], progress=False)
        got = asyncio.run(main())
    assert [r.content for r in sync] == ["ok", "ok"] and [r.content for r in got] == ["ok", "ok"]
