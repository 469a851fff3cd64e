"""Resources stay bounded, secrets never leak, cancellation cleans up."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import traceback
import warnings
from typing import Any

import pytest

from vllm_client import (
    APIConnectionError,
    AsyncVllmClient,
    AuthenticationError,
    InvalidRequestError,
    VllmClient,
    VllmError,
)

from ._rawserver import Conn, RawServer, open_fds, serve_ok, serve_stream

SECRET = "sk-very-secret-key-123"


def chat(client: Any) -> Any:
    return client.chat.completions().create().model("m").user_message("hi")


def long_stream(conn: Conn) -> None:
    while conn.read_request() is not None:
        conn.start_stream()
        try:
            for i in range(200):
                conn.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n')
                time.sleep(0.005)
            conn.chunk(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
            conn.end_stream()
        except OSError:
            return


# -- resources ---------------------------------------------------------------------------------

def test_many_requests_and_abandoned_streams_keep_sockets_bounded() -> None:
    with RawServer(serve_ok) as srv_ok, RawServer(long_stream) as srv_stream:
        before = open_fds()
        with VllmClient(srv_ok.url) as c:
            for _ in range(1000):
                chat(c).send()
            during = open_fds()
        assert during - before <= 12, (before, during)
        assert srv_ok.connections <= 2  # keep-alive: one connection reused
        with VllmClient(srv_stream.url) as c:
            for _ in range(150):
                s = chat(c).send_stream()
                next(iter(s))  # read one event, then abandon it
                s.close()
            after_streams = open_fds()
        assert after_streams - before <= 12, (before, after_streams)
    gc.collect()
    time.sleep(0.3)  # the servers' own sockets close with their threads
    assert open_fds() - before <= 2  # closing the clients released every socket


async def test_async_hundreds_of_concurrent_streams_and_abandoned_ones() -> None:
    with RawServer(serve_stream([f"t{i}" for i in range(5)])) as srv, RawServer(long_stream) as srv_long:
        before = open_fds()
        async with AsyncVllmClient(srv.url) as c:
            async def one() -> str:
                s = await chat(c).send_stream()
                return "".join([t async for t in s.text_stream()])
            texts = await asyncio.gather(*(one() for _ in range(200)))
            assert set(texts) == {"t0t1t2t3t4"}
        async with AsyncVllmClient(srv_long.url) as c:
            for _ in range(100):
                s = await chat(c).send_stream()
                await s.__anext__()
                await s.close()
        await asyncio.sleep(0.1)
        assert open_fds() - before <= 12


def test_close_twice_and_unclosed_warns_once() -> None:
    c = VllmClient("http://127.0.0.1:9/v1")
    c.close()
    c.close()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        c2 = VllmClient("http://127.0.0.1:9/v1")
        del c2
        gc.collect()
    assert len([x for x in w if issubclass(x.category, ResourceWarning)]) == 1


def test_sync_client_shared_between_threads() -> None:
    with RawServer(serve_ok) as srv, VllmClient(srv.url) as c:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(50):
                    assert chat(c).send().content == "ok"
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and srv.requests == 400


def test_async_client_refuses_another_event_loop() -> None:
    with RawServer(serve_ok) as srv:
        c = AsyncVllmClient(srv.url)
        assert asyncio.run(chat(c).send()).content == "ok"
        with pytest.raises(VllmError, match="another event loop"):
            asyncio.run(chat(c).send())


# -- secrets and trust -----------------------------------------------------------------------------

def test_api_key_never_in_repr_errors_logs_or_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def unauthorized(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(401, {"error": {"message": "Invalid API key"}})

    with RawServer(unauthorized) as srv, VllmClient(srv.url, api_key=SECRET, max_retries=0) as c:
        assert SECRET not in repr(c)
        b = chat(c)
        assert SECRET not in repr(b)
        with pytest.raises(AuthenticationError) as ei:
            b.send()
        assert srv.log[0][2]["authorization"] == f"Bearer {SECRET}"  # it was sent ...
    e = ei.value
    text = str(e) + repr(e) + "".join(traceback.format_exception(e)) + repr(e.__dict__) + caplog.text
    assert SECRET not in text  # ... but shown nowhere
    with VllmClient("http://127.0.0.1:9/v1", api_key=SECRET, max_retries=0) as c:
        with pytest.raises(APIConnectionError) as ei2:
            chat(c).send()
        assert SECRET not in str(ei2.value) + "".join(traceback.format_exception(ei2.value))


def redirect_to(target: str) -> Any:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(307, b"", {"Location": target})
    return handler


def test_authorization_not_forwarded_on_cross_host_redirect() -> None:
    with RawServer(serve_ok) as other:
        # "localhost" and "127.0.0.1" are different hosts to an HTTP client
        target = f"http://localhost:{other.port}/v1/chat/completions"
        with RawServer(redirect_to(target)) as srv:
            with VllmClient(srv.url, api_key=SECRET) as c:
                assert chat(c).send().content == "ok"

            async def main() -> None:
                async with AsyncVllmClient(srv.url, api_key=SECRET) as ac:
                    assert (await chat(ac).send()).content == "ok"
            asyncio.run(main())
        assert len(other.log) == 2
        assert all("authorization" not in h for _, _, h, _ in other.log)
        assert srv.log[0][2]["authorization"] == f"Bearer {SECRET}"


def test_crlf_headers_and_bad_schemes_refused_before_sending() -> None:
    with RawServer(serve_ok) as srv:
        with VllmClient(srv.url) as c:
            with pytest.raises(InvalidRequestError):
                chat(c).header("X-A", "1\r\nX-Injected: yes").send()
        with pytest.raises(InvalidRequestError):
            VllmClient(srv.url, api_key="key\r\nX-Injected: yes")
        for url in ("file:///etc/passwd", "gopher://x/v1", "javascript:alert(1)"):
            with pytest.raises(InvalidRequestError):
                VllmClient(url)
        assert srv.requests == 0


def test_credentials_in_url_never_printed() -> None:
    c = VllmClient("http://alice:hunter2@127.0.0.1:9/v1", max_retries=0)
    assert "hunter2" not in repr(c)
    with pytest.raises(APIConnectionError) as ei:
        chat(c).send()
    assert "hunter2" not in str(ei.value) and "alice" not in str(ei.value)
    # the credentials travel as an Authorization header, never in the request URL
    assert ei.value.url == "http://127.0.0.1:9/v1/chat/completions"
    c.close()
    with pytest.raises(InvalidRequestError) as ei2:
        VllmClient("ftp://bob:s3cret@host/v1")
    assert "s3cret" not in str(ei2.value)


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b'{"object": "error", "message": "bad", "code": 400}',
                                  b'{"error": {"message": "nope", "type": "server_error"}}'])
def test_credentials_in_url_not_in_decode_or_error_object_errors(body: bytes) -> None:
    from vllm_client import MockResponse, MockTransport, VllmError

    c = VllmClient("http://alice:hunter2@vllm.internal/v1", max_retries=0,
                   transport=MockTransport(lambda req: MockResponse(200, body=body)))
    with pytest.raises(VllmError) as ei:
        chat(c).send()
    shown = f"{ei.value} {ei.value!r} {getattr(ei.value, 'url', '')}"
    assert "hunter2" not in shown and "alice" not in shown
    assert getattr(ei.value, "url", None) == "http://vllm.internal/v1/chat/completions"


# -- cancellation ---------------------------------------------------------------------------------

async def test_cancel_async_stream_closes_connection_and_client_stays_usable() -> None:
    with RawServer(long_stream) as srv:
        async with AsyncVllmClient(srv.url) as c:
            got = 0

            async def consume() -> None:
                nonlocal got
                async for ev in await chat(c).send_stream():
                    got += 1

            task = asyncio.create_task(consume())
            while got < 3:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            s = await chat(c).send_stream()
            assert (await s.final_response()).content == "x" * 200
        assert srv.connections == 2  # the cancelled stream's connection was not reused


def test_keyboard_interrupt_in_sync_stream_closes_connection() -> None:
    with RawServer(long_stream) as srv, VllmClient(srv.url) as c:
        stream = chat(c).send_stream()
        with pytest.raises(KeyboardInterrupt):
            for i, _ in enumerate(stream):
                if i == 3:
                    raise KeyboardInterrupt
        stream.close()
        assert stream._closed
        assert chat(c).send_stream().final_response().content == "x" * 200
