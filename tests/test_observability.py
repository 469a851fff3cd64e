"""Observability (issue 24): timings, headers and request ids, event hooks, logging,
OpenTelemetry spans and metrics. Every behaviour on both clients."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from statistics import median
from typing import Any

import pytest

from vllm_client import (
    BadRequestError,
    Done,
    InvalidRequestError,
    StreamError,
    Timing,
    VllmClient,
)
from vllm_client.testing import FakeVllmServer

from ._both import CLIENTS, call, make, recording_hooks
from ._both import close as _close
from ._otel import instrumented, points


def _client(kind: str, *args: Any, **kw: Any) -> Any:
    """A client of that kind that does not retry unless asked."""
    kw.setdefault("max_retries", 0)
    return make(kind, *args, **kw)


async def _send(kind: str, builder: Any) -> Any:
    return await call(kind, builder, "send")


async def _stream(kind: str, builder: Any, stop_after: int | None = None) -> tuple[Any, list[Any]]:
    """Open a stream and read it (all of it, or ``stop_after`` events then close it)."""
    if kind == "sync":
        def run() -> tuple[Any, list[Any]]:
            events: list[Any] = []
            with builder.send_stream() as stream:
                for ev in stream:
                    events.append(ev)
                    if stop_after is not None and len(events) >= stop_after:
                        break
            return stream, events
        return await asyncio.to_thread(run)
    events = []
    async with await builder.send_stream() as stream:
        async for ev in stream:
            events.append(ev)
            if stop_after is not None and len(events) >= stop_after:
                break
    return stream, events


def _chat(client: Any, server: FakeVllmServer, text: str = "hi") -> Any:
    return client.chat.completions().create().model(server.model).user_message(text)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


# -- timings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_stream_timing_follows_the_servers_delay_and_trickle(kind: str) -> None:
    with FakeVllmServer() as server:
        server.delay(0.3).trickle(0.05)
        client = _client(kind, server.url)
        try:
            b = _chat(client, server, "tell me").stream_options({"include_usage": True})
            stream, events = await _stream(kind, b)
        finally:
            await _close(kind, client)
    t = stream.timing
    assert isinstance(t, Timing)
    assert t.time_to_first_byte is not None and t.time_to_first_byte >= 0.3
    assert t.time_to_first_token is not None and t.time_to_first_token >= t.time_to_first_byte
    assert t.total is not None and t.total >= t.time_to_first_token
    itl = t.inter_token_latencies
    tokens = [e for e in events if e.type == "content"]
    assert len(itl) == len(tokens) - 1
    assert 0.03 <= median(itl) <= 0.5  # the trickle is 0.05 s between events
    assert min(itl) >= 0.02
    done = events[-1]
    assert isinstance(done, Done) and done.response.timing is t
    usage = done.response.usage
    assert t.time_per_output_token == pytest.approx((t.total - t.time_to_first_token) /
                                                    (usage.completion_tokens - 1))
    assert t.output_tokens_per_second == pytest.approx(usage.completion_tokens / t.total)
    assert t.retries == 0


@pytest.mark.parametrize("kind", CLIENTS)
async def test_request_timing_and_no_token_rates_without_usage(kind: str) -> None:
    with FakeVllmServer() as server:
        server.delay(0.2)
        client = _client(kind, server.url)
        try:
            resp = await _send(kind, _chat(client, server))
            stream, _ = await _stream(kind, _chat(client, server))  # no include_usage
        finally:
            await _close(kind, client)
    t = resp.timing
    assert t.time_to_first_byte >= 0.2 and t.total >= t.time_to_first_byte
    assert t.time_to_first_token is None and t.inter_token_latencies == []  # not streamed
    assert t.output_tokens_per_second == pytest.approx(resp.usage.completion_tokens / t.total)
    assert stream.timing.time_to_first_token is not None
    assert stream.timing.time_per_output_token is None  # no usage: never guessed from chunks
    assert stream.timing.output_tokens_per_second is None


@pytest.mark.parametrize("kind", CLIENTS)
async def test_retries_are_counted_from_the_first_attempt(kind: str) -> None:
    with FakeVllmServer() as server:
        server.fail(503, retry_after=0.2).fail(503, retry_after=0)
        client = _client(kind, server.url, max_retries=3)
        try:
            resp = await _send(kind, _chat(client, server))
        finally:
            await _close(kind, client)
    assert resp.timing.retries == 2
    assert resp.timing.total >= 0.2  # counted from the first attempt, the wait included


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_stream_closed_early_has_a_total(kind: str) -> None:
    with FakeVllmServer() as server:
        server.trickle(0.01)
        client = _client(kind, server.url)
        try:
            stream, events = await _stream(kind, _chat(client, server, "a long one"), stop_after=2)
        finally:
            await _close(kind, client)
    assert len(events) == 2
    assert stream.timing.total is not None and stream.timing.time_to_first_token is not None


def test_timing_counts_only_token_bearing_events() -> None:
    from vllm_client import ChatCompletionResponse
    from vllm_client._stream import StreamAccumulator

    acc: StreamAccumulator[Any] = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    acc.feed(b'event: progress\ndata: {"x": 1}\n\n', 1.0)  # a server event: no token
    acc.feed(b'data: {"id":"a","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n', 2.0)
    acc.feed(b'data: {"choices":[{"index":0,"delta":{"content":"A"}}]}\n\n'
             b'data: {"choices":[{"index":0,"delta":{"content":"B"}}]}\n\n', 3.0)
    acc.feed(b'data: {"choices":[{"index":0,"delta":{"reasoning":"C"}}]}\n\n', 3.5)
    t = Timing(0.5, 0.75)
    t._marks = acc.marks
    assert t.time_to_first_byte == 0.25
    assert t.time_to_first_token == 2.5
    assert t.inter_token_latencies == [0.0, 0.5]


# -- headers, status, request id ---------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_headers_status_and_request_id_on_responses_and_streams(kind: str) -> None:
    with FakeVllmServer(request_id_headers=True) as server:
        client = _client(kind, server.url)
        try:
            resp = await _send(kind, _chat(client, server).header("X-Request-Id", "req-42"))
            stream, events = await _stream(kind, _chat(client, server).header("X-Request-Id", "req-43"))
            emb = await _send(kind, client.embeddings().create().model(server.model).input("x"))
        finally:
            await _close(kind, client)
    assert resp.status_code == 200 and resp.request_id == "req-42"
    assert resp.headers["x-request-id"] == "req-42" and resp.headers["X-Request-Id"] == "req-42"
    assert resp.id == "chatcmpl-req-42"
    assert stream.status_code == 200 and stream.request_id == "req-43"
    assert stream.headers["content-type"].startswith("text/event-stream")
    final = events[-1].response
    assert final.request_id == "req-43" and final.status_code == 200
    assert emb.status_code == 200 and emb.request_id and emb.timing.total is not None


@pytest.mark.parametrize("kind", CLIENTS)
async def test_no_request_id_header_means_none(kind: str) -> None:
    with FakeVllmServer() as server:  # vLLM's default: no --enable-request-id-headers
        client = _client(kind, server.url)
        try:
            resp = await _send(kind, _chat(client, server))
        finally:
            await _close(kind, client)
    assert resp.request_id is None and resp.status_code == 200


def test_a_response_made_by_hand_has_no_metadata() -> None:
    from vllm_client import ChatCompletionResponse

    r = ChatCompletionResponse.from_dict({"choices": []})
    assert r.timing is None and r.status_code is None and r.request_id is None and dict(r.headers) == {}


# -- event hooks -------------------------------------------------------------------------------


def _credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://alice:pa55word@{rest}"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_hooks_once_per_attempt_with_credentials_removed(kind: str) -> None:
    seen, hooks = recording_hooks(kind)
    with FakeVllmServer() as server:
        server.fail(503, retry_after=0)
        client = _client(kind, _credentials(server.url), api_key="sk-secret", max_retries=2,
                         event_hooks=hooks, default_headers={"X-Api-Key": "other-secret"})
        try:
            resp = await _send(kind, _chat(client, server, "the question"))
        finally:
            await _close(kind, client)
    assert [type(x).__name__ for x in seen] == ["RequestInfo", "ResponseInfo"] * 2
    req, res = seen[2], seen[3]
    assert req.method == "POST" and req.url == server.url + "/chat/completions" and req.attempt == 1
    assert all(k.lower() not in ("authorization", "x-api-key") for k in req.headers)
    assert b"the question" in req.body
    assert seen[1].status_code == 503 and res.status_code == 200 and res.request is req
    assert res.elapsed > 0 and res.timing is resp.timing
    text = repr(seen) + "".join(repr(i.headers) for i in seen)
    assert "sk-secret" not in text and "pa55word" not in text and "other-secret" not in text


@pytest.mark.parametrize("kind", CLIENTS)
async def test_hooks_see_streams_and_their_exceptions_propagate(kind: str) -> None:
    class Boom(Exception):
        pass

    def fail(info: Any) -> None:
        raise Boom("from the hook")

    with FakeVllmServer() as server:
        calls: list[Any] = []
        client = _client(kind, server.url, event_hooks={"response": [calls.append]})
        failing = _client(kind, server.url, event_hooks={"response": [fail]})
        try:
            stream, _ = await _stream(kind, _chat(client, server))
            with pytest.raises(Boom):
                await _send(kind, _chat(failing, server))
            with pytest.raises(Boom):
                await _stream(kind, _chat(failing, server))
            resp = await _send(kind, _chat(client, server))  # the pool still works
        finally:
            await _close(kind, client)
            await _close(kind, failing)
    assert len(calls) == 2 and calls[0].status_code == 200 and resp.content


def test_event_hooks_are_checked() -> None:
    async def coro(info: Any) -> None: ...

    with pytest.raises(InvalidRequestError, match="async function"):
        VllmClient("http://x/v1", event_hooks={"request": [coro]})
    with pytest.raises(InvalidRequestError, match="unknown event"):
        VllmClient("http://x/v1", event_hooks={"requests": []})
    with pytest.raises(InvalidRequestError, match="not callable"):
        VllmClient("http://x/v1", event_hooks={"response": ["nope"]})


@pytest.mark.parametrize("kind", CLIENTS)
async def test_with_options_and_batch_keep_the_hooks(kind: str) -> None:
    seen: list[Any] = []
    with FakeVllmServer() as server:
        client = _client(kind, server.url, event_hooks={"request": [seen.append]})
        try:
            await _send(kind, _chat(client.with_options(max_retries=1), server))
            if kind == "sync":
                results = await asyncio.to_thread(client.batch, [_chat(client, server)] * 2, progress=False)
            else:
                results = await client.batch([_chat(client, server)] * 2, progress=False)
        finally:
            await _close(kind, client)
    assert len(seen) == 3
    assert all(r.timing is not None and r.timing.total is not None for r in results)


# -- logging -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_logging_levels_and_redaction(kind: str, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CLIENT_LOG_BODIES", raising=False)
    caplog.set_level(logging.DEBUG, logger="vllm_client")
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    with FakeVllmServer() as server:
        server.fail(503, retry_after=0)
        client = _client(kind, [_credentials(server.url), _credentials(dead)], api_key="sk-secret",
                         max_retries=3)
        try:
            for _ in range(3):
                await _send(kind, _chat(client, server, "my private question"))
        finally:
            await _close(kind, client)
    records = [r for r in caplog.records if r.name == "vllm_client"]
    levels = {r.levelname for r in records}
    assert {"DEBUG", "INFO", "WARNING"} <= levels
    debug = [r.getMessage() for r in records if r.levelname == "DEBUG"]
    assert any("POST http://127.0.0.1:" in m and "-> 200 in" in m for m in debug)
    info = [r.getMessage() for r in records if r.levelname == "INFO"]
    assert any("retrying" in m and "status 503" in m for m in info)
    warning = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert any("replica http://127.0.0.1" in m and "is down" in m for m in warning)
    text = "\n".join(r.getMessage() for r in records)
    for secret in ("sk-secret", "pa55word", "alice", "Authorization", "Bearer", "my private question"):
        assert secret not in text


@pytest.mark.parametrize("kind", CLIENTS)
async def test_bodies_are_logged_only_when_asked(kind: str, caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CLIENT_LOG_BODIES", "1")
    with FakeVllmServer() as server:
        client = _client(kind, server.url, api_key="sk-secret")
        try:
            caplog.set_level(logging.INFO, logger="vllm_client")
            await _send(kind, _chat(client, server, "not at info"))
            caplog.set_level(logging.DEBUG, logger="vllm_client")
            await _send(kind, _chat(client, server, "x" * 5000 + "the end"))
        finally:
            await _close(kind, client)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "vllm_client")
    assert "not at info" not in text
    assert "request body:" in text and "response body:" in text and "xxxxxxxx" in text
    assert "the end" not in text and "bytes)" in text  # truncated
    assert "sk-secret" not in text


def test_vllm_client_log_env_adds_a_stderr_handler() -> None:
    code = ("import logging, vllm_client\n"
            "from vllm_client._observe import log_retry\n"
            "from vllm_client import PreparedRequest, Timeout\n"
            "log_retry(PreparedRequest('POST', 'http://u:p@h/v1/x', {}, None, Timeout()), 0, 'status 503', 0.5)\n")
    env = dict(os.environ, VLLM_CLIENT_LOG="info")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "retrying POST http://***@h/v1/x in 0.50 s" in r.stderr and "u:p" not in r.stderr
    env["VLLM_CLIENT_LOG"] = ""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.stderr == ""


def test_import_loads_neither_logging_nor_opentelemetry() -> None:
    code = "import sys, vllm_client; print([m for m in ('logging', 'opentelemetry') if m in sys.modules])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]"


# -- OpenTelemetry -----------------------------------------------------------------------------


otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")


@pytest.fixture
def otel() -> Any:
    with instrumented() as exporters:
        yield exporters


_points = points


@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_chat_span_and_metrics(kind: str, otel: Any) -> None:
    spans, reader = otel
    with FakeVllmServer() as server:
        client = _client(kind, server.url, api_key="sk-secret")
        try:
            resp = await _send(kind, _chat(client, server, "secret words").temperature(0.5).top_p(0.9)
                               .max_tokens(5))
        finally:
            await _close(kind, client)
    (span,) = spans.get_finished_spans()
    a = dict(span.attributes)
    assert span.name == f"chat {server.model}" and span.kind.name == "CLIENT"
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "vllm"
    assert a["gen_ai.system"] == "vllm" and a["gen_ai.request.model"] == server.model
    assert a["gen_ai.request.temperature"] == 0.5 and a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 5
    assert a["gen_ai.response.id"] == resp.id and a["gen_ai.response.model"] == server.model
    assert list(a["gen_ai.response.finish_reasons"]) == ["length"]
    assert a["gen_ai.usage.input_tokens"] == resp.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == resp.usage.completion_tokens
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert "error.type" not in a
    assert "secret words" not in repr(a) and "sk-secret" not in repr(a)  # no content by default
    points = _points(reader)
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.attributes["gen_ai.request.model"] == server.model
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": resp.usage.prompt_tokens, "output": resp.usage.completion_tokens}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_stream_span_ends_with_the_stream(kind: str, otel: Any) -> None:
    spans, reader = otel
    with FakeVllmServer() as server:
        server.trickle(0.02)
        client = _client(kind, server.url)
        try:
            b = _chat(client, server, "stream me").stream_options({"include_usage": True})
            if kind == "sync":
                stream = await asyncio.to_thread(b.send_stream)
                first = await asyncio.to_thread(next, iter(stream))
            else:
                stream = await b.send_stream()
                first = await stream.__anext__()
            assert first.type == "content"
            assert spans.get_finished_spans() == ()  # still open while the stream is
            if kind == "sync":
                await asyncio.to_thread(stream.final_response)
            else:
                await stream.final_response()
        finally:
            await _close(kind, client)
    (span,) = spans.get_finished_spans()
    names = [e.name for e in span.events]
    assert names == ["gen_ai.first_token"]
    assert span.start_time < span.events[0].timestamp <= span.end_time
    assert dict(span.attributes)["gen_ai.usage.output_tokens"] > 0
    assert "gen_ai.client.operation.time_to_first_chunk" in _points(reader)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_stream_cut_mid_way_and_closed_early(kind: str, otel: Any) -> None:
    spans, _ = otel
    with FakeVllmServer() as server:
        server.disconnect_after(3)
        client = _client(kind, server.url)
        try:
            with pytest.raises(StreamError):
                await _stream(kind, _chat(client, server))
            server.trickle(0.01)
            await _stream(kind, _chat(client, server, "long answer please"), stop_after=1)
        finally:
            await _close(kind, client)
    cut, closed = spans.get_finished_spans()
    assert cut.attributes["error.type"] == "StreamError" and cut.status.status_code.name == "ERROR"
    assert closed.attributes["vllm_client.stream.closed_early"] is True
    assert "error.type" not in closed.attributes


@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_error_and_retry(kind: str, otel: Any) -> None:
    spans, reader = otel
    with FakeVllmServer() as server:
        server.fail(503, retry_after=0)
        server.fail(400, "bad thing")
        client = _client(kind, server.url, max_retries=2)
        try:
            with pytest.raises(BadRequestError):
                await _send(kind, _chat(client, server))
        finally:
            await _close(kind, client)
    (span,) = spans.get_finished_spans()
    assert span.attributes["error.type"] == "BadRequestError"
    (retry,) = [e for e in span.events if e.name == "gen_ai.client.retry"]
    assert retry.attributes["retry.attempt"] == 1 and "503" in retry.attributes["retry.reason"]
    (duration,) = _points(reader)["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "BadRequestError"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_content_only_when_asked_and_uninstrument(kind: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import vllm_client

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    vllm_client.instrument(tracer_provider=tp, capture_content=True)
    with FakeVllmServer() as server:
        client = _client(kind, server.url)
        try:
            await _send(kind, _chat(client, server, "visible words"))
            vllm_client.uninstrument()
            await _send(kind, _chat(client, server))
        finally:
            vllm_client.uninstrument()
            await _close(kind, client)
    (span,) = spans.get_finished_spans()
    assert "visible words" in span.attributes["gen_ai.input.messages"]
    assert "fake vLLM server" in span.attributes["gen_ai.output.messages"]


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_chat_stats(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_client._cli import main

    with FakeVllmServer() as server:
        assert main(["chat", "--base-url", server.url, "--stats", "hello"]) == 0
    err = capsys.readouterr().err
    assert "TTFT" in err and "tokens/s" in err and "tokens/s -" not in err and "total" in err


def test_cli_batch_summary_has_latencies(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    from vllm_client._cli import main

    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}} for i in range(3)]
    src.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    with FakeVllmServer(request_id_headers=True) as server:
        assert main(["batch", str(src), "-o", str(out), "--base-url", server.url, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "latency: p50" in err and "output tokens/s" in err
    rows = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    ids = [r["response"]["request_id"] for r in rows]
    assert len(set(ids)) == 3 and not any(i.startswith("vllm-") for i in ids)  # the server's x-request-id
