"""Hostile and gateway-shaped servers on raw sockets, both clients, streamed and not: compressed
bodies in every framing, bytes handed on as they arrive, chunk-size bombs, trickled heads and
endless ``100 Continue`` under a total timeout, streams kept open after ``[DONE]``, slow upload
readers, a POST held and dropped (never resent), close() waking readers, a closed client,
batch_iter's break, fork()."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any

import orjson
import pytest

from vllm_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncVllmClient,
    Done,
    StreamError,
    Timeout,
    VllmClient,
    VllmError,
)

from ._rawserver import (
    CHAT_OK,
    Conn,
    RawServer,
    serve_encoded,
    serve_ok,
    serve_stream,
    sse,
    trickle,
)

KINDS = ["sync", "async"]
OPS = ["send", "stream"]
HANG = 20.0  # a call still running after this long hangs: the test fails (no test waits that long otherwise)


def chat(client: Any) -> Any:
    return client.chat.completions().create().model("m").user_message("hi")


def _sync_op(c: Any, op: str) -> Any:
    if op == "stream":
        with chat(c).send_stream() as s:
            events = list(s)
        assert isinstance(events[-1], Done)
        return events[-1].response.content
    return chat(c).send().content


async def _async_op(c: Any, op: str) -> Any:
    if op == "stream":
        async with await chat(c).send_stream() as s:
            events = [e async for e in s]
        assert isinstance(events[-1], Done)
        return events[-1].response.content
    return (await chat(c).send()).content


def run(kind: str, url: str, ops: list[str] | str, **kw: Any) -> list[Any]:
    """Run the ops ("send" / "stream") one after the other on one client of that kind; each
    result (the content) or the exception it raised. Fails the test if it hangs."""
    ops = [ops] if isinstance(ops, str) else ops
    kw.setdefault("max_retries", 0)
    if kind == "sync":
        out: list[Any] = []

        def main() -> None:
            with VllmClient(url, **kw) as c:
                for op in ops:
                    try:
                        out.append(_sync_op(c, op))
                    except VllmError as e:
                        out.append(e)
        t = threading.Thread(target=main, daemon=True)
        t.start()
        t.join(HANG)
        assert not t.is_alive(), "the sync client hung"
        return out

    async def amain() -> list[Any]:
        res: list[Any] = []
        async with AsyncVllmClient(url, **kw) as c:
            for op in ops:
                try:
                    res.append(await _async_op(c, op))
                except VllmError as e:
                    res.append(e)
        return res
    return asyncio.run(asyncio.wait_for(amain(), HANG))


# -- compressed bodies ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("coding,chunked", [("gzip", False), ("gzip", True), ("deflate", False)])
def test_compressed_bodies_are_decoded_in_every_framing(kind: str, op: str, coding: str, chunked: bool) -> None:
    with RawServer(serve_encoded(coding, chunked=chunked)) as srv:
        got = run(kind, srv.url, [op, op])
        accept = srv.log[0][2].get("accept-encoding", "")
    assert got == ["ok", "ok"]
    assert "gzip" in accept and "deflate" in accept


@pytest.mark.parametrize("kind", KINDS)
def test_br_and_zstd_are_advertised_only_where_they_can_be_decoded(kind: str) -> None:
    import importlib.util

    def has(*mods: str) -> bool:
        return any(importlib.util.find_spec(m) is not None for m in mods)

    with RawServer(serve_ok) as srv:
        run(kind, srv.url, "send")
        accept = [c.strip() for c in srv.log[0][2].get("accept-encoding", "").split(",")]
    if "br" in accept:
        assert has("brotli", "brotlicffi")
    if "zstd" in accept:
        assert has("zstandard", "backports.zstd") or (has("compression") and has("compression.zstd"))


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_gzip_is_a_typed_error(kind: str) -> None:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(200, b"\x1f\x8b\x08\x00garbage, not gzip", {"content-encoding": "gzip"})
    with RawServer(handler) as srv:
        got = run(kind, srv.url, "send")
    assert isinstance(got[0], VllmError)


# -- bytes as they arrive -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_events_of_one_http_chunk_are_handed_on_as_they_arrive(kind: str) -> None:
    # one chunk announced for three events; the server writes the rest of the chunk only once
    # the client has shown the first event (or after 5 s)
    first_seen, rest_sent = threading.Event(), threading.Event()
    events = [sse("a"), sse("b"), sse("c", "stop")]

    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.start_stream()
            whole = b"".join(events)
            conn.send(b"%x\r\n" % len(whole) + events[0])
            first_seen.wait(3)
            rest_sent.set()
            conn.send(b"".join(events[1:]) + b"\r\n")
            conn.chunk(b"data: [DONE]\n\n")
            conn.end_stream()

    seen_before_rest: list[bool] = []

    def on_event(text: str) -> None:
        if text == "a":
            seen_before_rest.append(not rest_sent.is_set())
            first_seen.set()

    with RawServer(handler) as srv:
        if kind == "sync":
            with VllmClient(srv.url, max_retries=0) as c, chat(c).send_stream() as s:
                texts = []
                for t in s.text_stream():
                    on_event(t)
                    texts.append(t)
        else:
            async def main() -> list[str]:
                async with AsyncVllmClient(srv.url, max_retries=0) as c:
                    out = []
                    async with await chat(c).send_stream() as s:
                        async for t in s.text_stream():
                            on_event(t)
                            out.append(t)
                    return out
            texts = asyncio.run(main())
    assert texts == ["a", "b", "c"]
    assert seen_before_rest == [True]  # the first event came before the rest of its chunk was sent


# -- protocol violations ------------------------------------------------------------------------------

def chunk_bomb(size_line: bytes) -> Any:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            conn.chunk(sse("o"))
            conn.send(size_line + b"\r\n" + sse("k") + b"more bytes, far fewer than announced")
            time.sleep(0.2)
            conn.close()
            return
    return handler


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size_line", [b"3fffffffff", b"ffffffffffffffffffffffffffffffff", b"zz", b"9" * 70000])
def test_absurd_chunk_sizes_are_typed_errors(kind: str, op: str, size_line: bytes) -> None:
    with RawServer(chunk_bomb(size_line)) as srv:
        got = run(kind, srv.url, op, timeout=Timeout(connect=2, read=5))
    assert isinstance(got[0], VllmError), got
    if isinstance(got[0], StreamError):  # (aiohttp may parse the bad line with the head: an APIConnectionError)
        assert got[0].partial.content.startswith("o")


# -- total timeouts ------------------------------------------------------------------------------------

def trickled_head(conn: Conn) -> None:
    if conn.read_request() is not None:  # (a head that takes 40 s to arrive)
        trickle(conn, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: " + b"p" * 300
                + b"\r\ncontent-length: 2\r\n\r\n{}", step=2, every=0.25)


def continue_forever(conn: Conn) -> None:
    if conn.read_request() is not None:
        for _ in range(200):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.1)


def one_big_chunk_trickled(conn: Conn) -> None:
    if conn.read_request() is not None:
        conn.start_stream()
        conn.send(b"100000\r\n")
        trickle(conn, sse("x") * 1000, step=10, every=0.1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("handler", [trickled_head, continue_forever, one_big_chunk_trickled],
                         ids=["trickled-head", "100-continue-loop", "trickled-chunk"])
def test_total_timeout_bounds_everything(kind: str, op: str, handler: Any) -> None:
    with RawServer(handler) as srv:
        start = time.monotonic()
        got = run(kind, srv.url, op, timeout=Timeout(connect=1, read=1, total=1.5))
        took = time.monotonic() - start
    assert isinstance(got[0], APITimeoutError), got  # (a StreamTimeoutError is one too)
    assert took < 6  # (every read came within the read timeout: only the total, 1.5 s, ends it)


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_upload_is_bounded_by_the_read_timeout_not_connect(kind: str) -> None:
    # a 12 MB body that the server reads at a few MB/s: longer than the connect timeout (more
    # than the kernel's buffers hold), never silent for a whole read timeout; sent once
    def slow_reader(conn: Conn) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.sock.recv(65536)
        head, _, got = head.partition(b"\r\n\r\n")
        n = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1])
        size = len(got)
        while size < n:
            time.sleep(0.01)
            size += len(conn.sock.recv(65536))
        conn.server.log.append(("POST", "", {}, b""))
        conn.respond(200, CHAT_OK)

    big = "x" * 12_000_000
    with RawServer(slow_reader) as srv:
        srv.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # (inherited by the accepted one)
        if kind == "sync":
            with VllmClient(srv.url, max_retries=2, timeout=Timeout(connect=0.3, read=3)) as c:
                content = chat(c).user_message(big).send().content
        else:
            async def main() -> Any:
                async with AsyncVllmClient(srv.url, max_retries=2, timeout=Timeout(connect=0.3, read=3)) as c:
                    return (await chat(c).user_message(big).send()).content
            content = asyncio.run(main())
        assert content == "ok" and srv.requests == 1 and srv.connections == 1


# -- [DONE] ends the stream ------------------------------------------------------------------------------

def done_then_hold(then: str) -> Any:
    """A stream that ends with [DONE] and then keeps the connection open ("hold"), or keeps
    sending comments ("chatter"), for 15 s."""
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.start_stream()
            conn.chunk(sse("o") + sse("k", "stop"))
            conn.chunk(b"data: [DONE]\n\n")
            for _ in range(300):
                if then == "chatter":
                    conn.chunk(b": still here\n\n")
                time.sleep(0.05)
            return
    return handler


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("then", ["hold", "chatter"])
def test_a_stream_ends_at_done_even_when_the_server_keeps_the_connection(kind: str, then: str) -> None:
    with RawServer(done_then_hold(then), serve_ok) as srv:
        start = time.monotonic()
        got = run(kind, srv.url, ["stream", "send"], timeout=Timeout(connect=2, read=12))
        took = time.monotonic() - start
    assert got == ["ok", "ok"]
    assert took < 8  # (not the read timeout: 12 s)
    assert srv.connections == 2  # the held connection was closed, not reused


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_that_ends_cleanly_keeps_its_connection(kind: str) -> None:
    with RawServer(serve_stream(["o", "k"])) as srv:
        got = run(kind, srv.url, ["stream", "stream", "stream"])
    assert got == ["ok", "ok", "ok"] and srv.connections == 1


# -- resend once only when the server cannot have seen the request ------------------------------------

def answer_then_hold_and_drop(conn: Conn) -> None:
    if conn.read_request() is None:
        return
    conn.respond(200, CHAT_OK)
    if conn.read_request() is not None:
        time.sleep(2)
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", OPS)
def test_a_request_held_then_dropped_is_not_resent(kind: str, op: str) -> None:
    with RawServer(answer_then_hold_and_drop, serve_ok) as srv:
        got = run(kind, srv.url, ["send", op], max_retries=0, timeout=Timeout(connect=2, read=5))
    assert got[0] == "ok" and isinstance(got[1], APIConnectionError) and not got[1].stale_connection
    assert srv.requests == 2  # the held request went out once


# -- lifecycle --------------------------------------------------------------------------------------------

def one_event_then_silence(conn: Conn) -> None:
    while conn.read_request() is not None:
        conn.start_stream()
        conn.chunk(sse("o"))
        time.sleep(15)
        return


@pytest.mark.parametrize("kind", KINDS)
def test_closing_the_client_wakes_a_reader(kind: str) -> None:
    with RawServer(one_event_then_silence) as srv:
        start = time.monotonic()
        if kind == "sync":
            c = VllmClient(srv.url, max_retries=0, timeout=Timeout(connect=2, read=12))
            s = chat(c).send_stream()
            assert next(iter(s.text_stream())) == "o"
            threading.Timer(0.3, c.close).start()
            with pytest.raises(StreamError) as ei:
                list(s)
        else:
            async def main() -> Any:
                c = AsyncVllmClient(srv.url, max_retries=0, timeout=Timeout(connect=2, read=12))
                s = await chat(c).send_stream()
                async for t in s.text_stream():
                    assert t == "o"
                    break
                asyncio.get_running_loop().call_later(0.3, lambda: asyncio.ensure_future(c.aclose()))
                with pytest.raises(StreamError) as e:
                    async for _ in s:
                        pass
                return e
            ei = asyncio.run(asyncio.wait_for(main(), HANG))
        took = time.monotonic() - start
    assert "closed" in str(ei.value) and ei.value.partial.content == "o"
    assert took < 8  # (not the read timeout: 12 s)


@pytest.mark.parametrize("kind", KINDS)
def test_closing_the_client_wakes_a_request_waiting_for_its_answer(kind: str) -> None:
    def hold(conn: Conn) -> None:
        conn.read_request()
        time.sleep(15)
    with RawServer(hold) as srv:
        start = time.monotonic()
        if kind == "sync":
            c = VllmClient(srv.url, max_retries=2, timeout=Timeout(connect=2, read=12))
            threading.Timer(0.5, c.close).start()
            with pytest.raises(VllmError) as ei:
                chat(c).send()
        else:
            async def main() -> Any:
                c = AsyncVllmClient(srv.url, max_retries=2, timeout=Timeout(connect=2, read=12))
                asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(c.aclose()))
                with pytest.raises(VllmError) as e:
                    await chat(c).send()
                return e
            ei = asyncio.run(asyncio.wait_for(main(), HANG))
        took = time.monotonic() - start
    assert "client closed" in str(ei.value)
    assert took < 8 and srv.requests == 1  # woken, not retried


@pytest.mark.parametrize("kind", KINDS)
def test_a_closed_client_refuses_requests(kind: str) -> None:
    with RawServer(serve_ok) as srv:
        if kind == "sync":
            c = VllmClient(srv.url)
            assert chat(c).send().content == "ok"
            c.close()
            with pytest.raises(VllmError, match="client closed"):
                chat(c).send()
            with pytest.raises(VllmError, match="client closed"):
                c.with_options(max_retries=0).models()
        else:
            async def main() -> None:
                c = AsyncVllmClient(srv.url)
                assert (await chat(c).send()).content == "ok"
                await c.aclose()
                with pytest.raises(VllmError, match="client closed"):
                    await chat(c).send()
                with pytest.raises(VllmError, match="client closed"):
                    await c.with_options(max_retries=0).models()
            asyncio.run(main())
        assert srv.requests == 1


def test_breaking_out_of_sync_batch_iter_cancels_what_is_in_flight() -> None:
    gone: list[float] = []

    def first_fast_then_hold(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            if b'"first"' in req[3]:
                conn.respond(200, CHAT_OK)
                continue
            conn.sock.settimeout(30)
            if not conn.sock.recv(1):  # the client closed it: cancelled
                gone.append(time.monotonic())
            return

    with RawServer(first_fast_then_hold) as srv:
        with VllmClient(srv.url, max_retries=0, timeout=Timeout(connect=2, read=30)) as c:
            reqs = [chat(c).user_message("first")] + [chat(c) for _ in range(4)]
            it = c.batch_iter(reqs, concurrency=5)
            for _i, r in it:
                assert r.content == "ok"
                break
            start = time.monotonic()
            it.close()  # (what `break` does when the generator is collected)
            took = time.monotonic() - start
        deadline = time.monotonic() + 5
        while len(gone) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert took < 5  # (the held requests would take 30 s)
    assert len(gone) == 4  # each in-flight request's connection was closed


def echo_server(conn: Conn) -> None:
    """Answers each request with the content of its last message (keep-alive)."""
    while (req := conn.read_request()) is not None:
        text = orjson.loads(req[3])["messages"][-1]["content"]
        answer = dict(CHAT_OK, choices=[{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}])
        time.sleep(0.002)
        conn.respond(200, answer)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Python 3.12+: fork() with threads running)
def test_after_fork_the_child_never_uses_the_parents_connections_sync() -> None:
    with RawServer(echo_server) as srv:
        c = VllmClient(srv.url, max_retries=0)
        for i in range(4):  # warm the pool
            assert chat(c).user_message(f"warm{i}").send().content == f"warm{i}"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            bad = 0
            try:
                for i in range(40):
                    if chat(c).user_message(f"child{i}").send().content != f"child{i}":
                        bad += 1
            except BaseException:
                bad = 999
            os.write(w, str(bad).encode())
            os._exit(0)
        os.close(w)
        bad_parent = sum(chat(c).user_message(f"parent{i}").send().content != f"parent{i}" for i in range(40))
        _, status = os.waitpid(pid, 0)
        bad_child = int(os.read(r, 100) or b"-1")
        os.close(r)
        c.close()
    assert (bad_parent, bad_child) == (0, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Python 3.12+: fork() with threads running)
def test_after_fork_the_child_never_uses_the_parents_connections_async() -> None:
    with RawServer(echo_server) as srv:
        c = AsyncVllmClient(srv.url, max_retries=0)

        async def ask(tag: str, n: int) -> int:
            return sum([(await chat(c).user_message(f"{tag}{i}").send()).content != f"{tag}{i}" for i in range(n)])

        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(ask("warm", 4)) == 0
        before = srv.connections
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                bad = asyncio.run(ask("child", 20))
            except BaseException:
                bad = 999
            os.write(w, str(bad).encode())
            os._exit(0)
        os.close(w)
        bad_parent = loop.run_until_complete(ask("parent", 20))
        os.waitpid(pid, 0)
        bad_child = int(os.read(r, 100) or b"-1")
        os.close(r)
        loop.run_until_complete(c.aclose())
        loop.close()
        assert srv.connections > before  # the child opened its own
    assert (bad_parent, bad_child) == (0, 0)
