"""W3C trace context (issue 34 item 7): with OpenTelemetry instrumented, every request carries
the ``traceparent`` / ``tracestate`` of its client span (or of the current span) unless the
user set them; never without instrument(). Both clients; send, stream and batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vllm_client.testing import FakeVllmServer

from ._both import CLIENTS, call, close, make
from ._otel import instrumented

pytest.importorskip("opentelemetry.sdk")


def _ids(header: str) -> tuple[str, str]:
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16 and int(flags, 16) & 1  # sampled
    return trace_id, span_id


def _span_ids(span: Any) -> tuple[str, str]:
    ctx = span.get_span_context()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


async def _read_stream(kind: str, builder: Any) -> None:
    if kind == "sync":
        def run() -> None:
            with builder.send_stream() as s:
                for _ in s:
                    pass
        await asyncio.to_thread(run)
    else:
        async with await builder.send_stream() as s:
            async for _ in s:
                pass


@pytest.mark.parametrize("kind", CLIENTS)
async def test_send_carries_the_client_spans_traceparent(kind: str, vllm_server: FakeVllmServer) -> None:
    with instrumented() as (spans, _):
        client = make(kind, vllm_server.url)
        try:
            await call(kind, client.chat.completions().create().model("fake-model").user_message("hi"), "send")
        finally:
            await close(kind, client)
        (span,) = spans.get_finished_spans()
    sent = vllm_server.requests[-1].headers["traceparent"]
    assert _ids(sent) == _span_ids(span)
    assert "tracestate" not in vllm_server.requests[-1].headers  # (empty: not sent)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_stream_carries_its_spans_traceparent(kind: str, vllm_server: FakeVllmServer) -> None:
    with instrumented() as (spans, _):
        client = make(kind, vllm_server.url)
        try:
            await _read_stream(kind, client.chat.completions().create().model("fake-model").user_message("hi"))
        finally:
            await close(kind, client)
        (span,) = spans.get_finished_spans()
    assert _ids(vllm_server.requests[-1].headers["traceparent"]) == _span_ids(span)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_requests_each_carry_their_own_span(kind: str, vllm_server: FakeVllmServer) -> None:
    with instrumented() as (spans, _):
        client = make(kind, vllm_server.url)
        try:
            reqs = [client.chat.completions().create().model("fake-model").user_message(str(i)) for i in range(3)]
            results = await call(kind, client, "batch", reqs, progress=False)
        finally:
            await close(kind, client)
        finished = {_span_ids(s) for s in spans.get_finished_spans()}
    assert not any(isinstance(r, Exception) for r in results)
    sent = {_ids(r.headers["traceparent"]) for r in vllm_server.requests if r.path == "/v1/chat/completions"}
    assert len(sent) == 3 and sent == finished


@pytest.mark.parametrize("kind", CLIENTS)
async def test_retries_keep_one_traceparent(kind: str, vllm_server: FakeVllmServer) -> None:
    vllm_server.fail(503)
    with instrumented() as (spans, _):
        client = make(kind, vllm_server.url, max_retries=1)
        client_hdrs = dict(client.headers)
        try:
            await call(kind, client.chat.completions().create().model("fake-model").user_message("hi"), "send")
        finally:
            await close(kind, client)
        (span,) = spans.get_finished_spans()
    sent = [r.headers["traceparent"] for r in vllm_server.requests if r.path == "/v1/chat/completions"]
    assert len(sent) == 2 and sent[0] == sent[1] and _ids(sent[0]) == _span_ids(span)
    assert client.headers == client_hdrs  # the client's shared headers are not touched


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_traceparent_the_user_set_wins(kind: str, vllm_server: FakeVllmServer) -> None:
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with instrumented():
        client = make(kind, vllm_server.url, default_headers={"TraceParent": mine})
        try:
            await call(kind, client.chat.completions().create().model("fake-model").user_message("a"), "send")
            b = client.chat.completions().create().model("fake-model").user_message("b").header("tracestate", "x=1")
            await call(kind, b, "send")
        finally:
            await close(kind, client)
    first, second = (r.headers for r in vllm_server.requests if r.path == "/v1/chat/completions")
    assert first["traceparent"] == mine and second["traceparent"] == mine and second["tracestate"] == "x=1"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_routes_without_a_span_carry_the_current_span(kind: str, vllm_server: FakeVllmServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("app")
    with instrumented():
        client = make(kind, vllm_server.url)
        try:
            await call(kind, client, "models")  # no span of its own, no current span: nothing sent
            with tracer.start_as_current_span("handler") as outer:
                if kind == "async":
                    await client.models()
                else:
                    client.models()  # (in this thread: the current span is this context's)
        finally:
            await close(kind, client)
    first, second = vllm_server.requests[-2:]
    assert "traceparent" not in first.headers
    assert _ids(second.headers["traceparent"]) == _span_ids(outer)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_nothing_is_sent_without_instrument(kind: str, vllm_server: FakeVllmServer) -> None:
    client = make(kind, vllm_server.url)
    try:
        await call(kind, client.chat.completions().create().model("fake-model").user_message("hi"), "send")
        await _read_stream(kind, client.chat.completions().create().model("fake-model").user_message("hi"))
    finally:
        await close(kind, client)
    assert all("traceparent" not in r.headers for r in vllm_server.requests)
