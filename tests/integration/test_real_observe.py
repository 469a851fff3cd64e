"""Observability (issue 24) against a real vLLM: timings, headers, request ids, event hooks and
OpenTelemetry spans on a chat and a streamed chat, on both clients.

Request ids on vLLM 0.32: the ``X-Request-Id`` *response* header is added only by
``--enable-request-id-headers`` (vLLM's ``XRequestIdMiddleware``): the request's
``X-Request-Id`` header, else a random uuid4 hex; the body's ``request_id`` is never echoed in a
header, it names the response (``chatcmpl-<id>``; a request's ``X-Request-Id`` header wins over it
there). The main server of these tests is started with that flag, and ``request_id("...")``
also sends the header, so ``resp.request_id`` is the id you set. A server given by
``VLLM_BASE_URL`` may run without the flag: then ``request_id`` is None, and that is checked instead.

Timings are only checked for sanity (positive, ordered, consistent with the usage the server
reported), never against a speed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from vllm_client import ContentDelta, Done, RequestInfo, ResponseInfo, Timing

from .._both import CLIENTS, call, close, drain, make, recording_hooks

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "Tell me about the weather."}]


def _client(kind: str, target: Target, **kw: Any) -> Any:
    return make(kind, target.base_url, default_model=target.model, max_retries=0, timeout=120, **kw)


def _chat(c: Any, max_tokens: int) -> Any:
    return c.chat.completions().create().messages(MSGS).max_tokens(max_tokens).seed(7)


def _echoes(resp: Any, target: Target) -> bool:
    """Whether this server sends ``x-request-id`` (ours always: started with the flag)."""
    if target.local:
        assert resp.request_id is not None, "the local server runs with --enable-request-id-headers"
    return resp.request_id is not None


@pytest.mark.parametrize("kind", CLIENTS)
async def test_real_chat_timing_headers_and_request_id(kind: str, real_server: Target) -> None:
    c = _client(kind, real_server)
    try:
        plain = await call(kind, _chat(c, 4), "send")
        mine = await call(kind, _chat(c, 8).request_id(f"obs-{kind}-send"), "send")
    finally:
        await close(kind, c)
    t = mine.timing
    assert isinstance(t, Timing) and t.retries == 0
    assert t.time_to_first_byte is not None and t.time_to_first_byte > 0
    assert t.total is not None and t.total >= t.time_to_first_byte
    assert t.time_to_first_token is None and t.inter_token_latencies == []  # not streamed
    n = mine.usage.completion_tokens
    assert n == 8 and t.output_tokens == n
    assert t.output_tokens_per_second == pytest.approx(n / t.total) and t.output_tokens_per_second > 0
    assert mine.status_code == 200
    assert mine.headers["content-type"].startswith("application/json") and "content-length" in mine.headers
    assert mine.id == f"chatcmpl-obs-{kind}-send"  # vLLM names the response after the body's request_id
    if _echoes(plain, real_server):
        assert mine.request_id == f"obs-{kind}-send"
        assert re.fullmatch(r"[0-9a-f]{32}", plain.request_id)  # none sent: vLLM's own uuid4 hex
    else:
        assert mine.request_id is None  # vLLM without --enable-request-id-headers sends none


@pytest.mark.parametrize("kind", CLIENTS)
async def test_real_stream_timing_and_request_id(kind: str, real_server: Target) -> None:
    c = _client(kind, real_server)
    try:
        b = _chat(c, 16).stream_options({"include_usage": True}).header("X-Request-Id", f"obs-{kind}-stream")
        stream = await call(kind, b, "send_stream")
        events = await drain(kind, stream)
        other = await call(kind, _chat(c, 4).request_id(f"obs-{kind}-final"), "send_stream")
        final = await call(kind, other, "final_response")
    finally:
        await close(kind, c)
    t = stream.timing
    assert isinstance(t, Timing) and t.retries == 0
    assert t.time_to_first_byte is not None and t.time_to_first_byte > 0
    assert t.time_to_first_token is not None and t.time_to_first_byte <= t.time_to_first_token <= t.total
    tokens = [e for e in events if isinstance(e, ContentDelta)]
    assert len(t.inter_token_latencies) == len(tokens) - 1 and all(x >= 0 for x in t.inter_token_latencies)
    done = events[-1]
    assert isinstance(done, Done) and done.response.timing is t
    n = done.response.usage.completion_tokens
    assert n == 16 and t.output_tokens == n
    assert t.time_per_output_token == pytest.approx((t.total - t.time_to_first_token) / (n - 1))
    assert t.output_tokens_per_second == pytest.approx(n / t.total)
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert done.response.status_code == 200 and done.response.headers is stream.headers
    assert done.response.id == f"chatcmpl-obs-{kind}-stream"  # the header's id names it
    assert final.timing is other.timing and final.id == f"chatcmpl-obs-{kind}-final"
    if _echoes(stream, real_server):
        assert stream.request_id == done.response.request_id == f"obs-{kind}-stream"
        assert final.request_id == f"obs-{kind}-final"
    else:
        assert stream.request_id is None and final.request_id is None


@pytest.mark.parametrize("kind", CLIENTS)
async def test_real_hooks_see_the_request_and_the_answer(kind: str, real_server: Target) -> None:
    seen, hooks = recording_hooks(kind)
    c = _client(kind, real_server, api_key="sk-itest-secret", event_hooks=hooks)
    try:
        resp = await call(kind, _chat(c, 4).request_id(f"obs-{kind}-hook"), "send")
    finally:
        await close(kind, c)
    req, res = seen
    assert isinstance(req, RequestInfo) and isinstance(res, ResponseInfo)
    assert req.method == "POST" and req.url == real_server.base_url + "/chat/completions" and req.attempt == 0
    assert b'"max_tokens":4' in req.body and real_server.model.encode() in req.body
    assert req.headers.get("X-Request-Id") == f"obs-{kind}-hook"
    assert "authorization" not in {k.lower() for k in req.headers} and "sk-itest-secret" not in repr(req.headers)
    assert res.request is req and res.status_code == 200 and res.timing is resp.timing
    assert 0 < res.elapsed and res.headers["content-type"].startswith("application/json")
    if _echoes(resp, real_server):
        assert res.headers["x-request-id"] == f"obs-{kind}-hook"


otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")

from .._otel import instrumented, points  # noqa: E402  (only with the SDK)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_real_otel_spans_with_model_and_usage(kind: str, real_server: Target) -> None:
    with instrumented() as (spans, reader):
        c = _client(kind, real_server)
        try:
            resp = await call(kind, _chat(c, 6).temperature(0.5), "send")
            stream = await call(kind, _chat(c, 5).stream_options({"include_usage": True}), "send_stream")
            events = await drain(kind, stream)
        finally:
            await close(kind, c)
        sent_span, stream_span = spans.get_finished_spans()
        metric_points = points(reader)
    port = int(real_server.base_url.rsplit(":", 1)[1].split("/", 1)[0])
    for span, r in ((sent_span, resp), (stream_span, events[-1].response)):
        a = dict(span.attributes)
        assert span.name == f"chat {real_server.model}" and span.kind.name == "CLIENT"
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "vllm"
        assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == real_server.model
        assert a["gen_ai.response.id"] == r.id and list(a["gen_ai.response.finish_reasons"]) == ["length"]
        assert a["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens > 0
        assert a["gen_ai.usage.output_tokens"] == r.usage.completion_tokens
        assert a["server.port"] == port and "error.type" not in a
    assert dict(sent_span.attributes)["gen_ai.request.temperature"] == 0.5
    assert [e.name for e in stream_span.events] == ["gen_ai.first_token"]
    assert stream_span.end_time >= stream_span.events[0].timestamp >= stream_span.start_time
    outputs = sorted(p.sum for p in metric_points["gen_ai.client.token.usage"]
                     if p.attributes["gen_ai.token.type"] == "output")
    assert outputs == [11]  # 6 + 5 generated tokens, one point (same attributes)
    (ttfc,) = metric_points["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(stream.timing.time_to_first_token)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_real_vllm_accepts_the_trace_context_of_the_client_span(kind: str, real_server: Target) -> None:
    """The W3C ``traceparent`` of each request's span goes to vLLM (which continues the trace when
    started with ``--otlp-traces-endpoint``, and accepts the header without it): send, stream
    and batch succeed, and what was sent names each span."""
    seen, hooks = recording_hooks(kind)
    with instrumented() as (spans, _):
        c = _client(kind, real_server, event_hooks=hooks)
        try:
            resp = await call(kind, _chat(c, 3), "send")
            events = await drain(kind, await call(kind, _chat(c, 3), "send_stream"))
            results = await call(kind, c, "batch", [_chat(c, 2), _chat(c, 2)], progress=False)
        finally:
            await close(kind, c)
        finished = spans.get_finished_spans()
    assert resp.content is not None and isinstance(events[-1], Done)
    assert not any(isinstance(r, Exception) for r in results)
    sent = [i.headers["traceparent"] for i in seen if isinstance(i, RequestInfo)]
    assert len(sent) == len(finished) == 4
    ids = {(f"{s.get_span_context().trace_id:032x}", f"{s.get_span_context().span_id:016x}") for s in finished}
    assert {tuple(h.split("-")[1:3]) for h in sent} == ids
