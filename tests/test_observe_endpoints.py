"""Observability on every endpoint (issue 24): each response type a user gets carries ``timing``,
``headers``, ``status_code`` and ``request_id``, on both clients, against FakeVllmServer with a
scripted 503 and a scripted delay (and a trickle for streams); ``request_id(...)`` is echoed;
event hooks and OpenTelemetry spans for the non-chat endpoints.

Timed assertions are only about the server's scripted waits (lower bounds, generous upper ones),
never about the client's own speed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from statistics import median
from typing import Any

import pytest

from vllm_client import ContentDelta, Done, RequestInfo, ResponseInfo, Timing
from vllm_client.testing import FakeVllmServer

from ._both import CLIENTS, call, close, drain, make, recording_hooks

DELAY = 0.15  # the server waits this long before the answer's headers (second attempt)
TRICKLE = 0.05  # and this long between the SSE events of a stream
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)
CONVS = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Yo"}]]

Make = Callable[[str, Any, FakeVllmServer], Awaitable[Any]]


def _server() -> FakeVllmServer:
    return FakeVllmServer(request_id_headers=True, labels=["negative", "positive"])


def _script(server: FakeVllmServer, path: str, *, stream: bool = False) -> None:
    """First attempt: 503 (retried at once); second: the answer after DELAY (a stream trickled)."""
    server.fail(503, retry_after=0, path=path).delay(DELAY, path=path)
    if stream:
        server.trickle(TRICKLE, path=path)


def _send(builder: Any) -> Make:
    async def run(kind: str, c: Any, server: FakeVllmServer) -> Any:
        return await call(kind, builder(c, server.model), "send")
    return run


def _method(name: str, *args: Any) -> Make:
    async def run(kind: str, c: Any, server: FakeVllmServer) -> Any:
        return await call(kind, c, name, *args)
    return run


async def _stored(kind: str, c: Any, server: FakeVllmServer) -> str:
    """A response in the fake's store (made before the scripted attempts)."""
    r = await call(kind, c.responses().create().model(server.model).input("Hi"), "send")
    return str(r.id)


# name -> (path the scripted answers are for, how to get the response). {id}: a stored response.
SENT: dict[str, tuple[str, Make]] = {
    "chat": ("/v1/chat/completions", _send(lambda c, m: c.chat.completions().create().model(m).user_message("hi"))),
    "completions": ("/v1/completions", _send(lambda c, m: c.completions().create().model(m).prompt("Once"))),
    "embeddings": ("/v1/embeddings", _send(lambda c, m: c.embeddings().create().model(m).input(["a", "b"]))),
    "cohere_embed": ("/v2/embed", _send(lambda c, m: c.cohere_embed().create().model(m).texts(["a"]))),
    "rerank": ("/v1/rerank", _send(lambda c, m: c.rerank().create().model(m).query("q").documents(["a", "b"]))),
    "score": ("/v1/score", _send(lambda c, m: c.score().create().model(m).queries("q").documents(["a", "b"]))),
    "classify": ("/classify", _send(lambda c, m: c.classify().create().model(m).input(["good", "bad"]))),
    "pooling": ("/pooling", _send(lambda c, m: c.pooling().create().model(m).input(["a"]))),
    "tokenize_result": ("/tokenize", _method("tokenize_result", "hello there")),
    "models": ("/v1/models", _method("models")),
    "metrics": ("/metrics", _method("metrics")),
    "responses": ("/v1/responses", _send(lambda c, m: c.responses().create().model(m).input("Hi"))),
    "transcription": ("/v1/audio/transcriptions",
                      _send(lambda c, m: c.audio.transcriptions().create().file(WAV).model("w"))),
    "transcription_text": ("/v1/audio/transcriptions",
                           _send(lambda c, m: c.audio.transcriptions().create().file(WAV).model("w")
                                 .response_format("text"))),
    "translation": ("/v1/audio/translations",
                    _send(lambda c, m: c.audio.translations().create().file(WAV).model("w"))),
    "conversations": ("/v1/chat/completions/batch",
                      _send(lambda c, m: c.chat.completions().create().model(m).conversations(CONVS))),
}


def _check_sent(resp: Any, rid: str) -> Timing:
    """What a non-streamed response carries after the scripted 503 and DELAY."""
    t = resp.timing
    assert isinstance(t, Timing), type(resp).__name__
    assert resp.status_code == 200
    assert resp.headers["content-type"] and resp.headers["Content-Type"] == resp.headers["content-type"]
    assert resp.request_id == rid
    assert t.retries == 1
    assert t.time_to_first_byte is not None and t.time_to_first_byte >= DELAY
    assert t.total is not None and t.total >= t.time_to_first_byte
    assert t.time_to_first_token is None and t.inter_token_latencies == []  # not streamed
    return t


@pytest.mark.parametrize("name", list(SENT))
@pytest.mark.parametrize("kind", CLIENTS)
async def test_every_response_carries_timing_headers_status_and_request_id(kind: str, name: str) -> None:
    path, run = SENT[name]
    rid = f"rid-{name}"
    with _server() as server:
        c = make(kind, server.url, max_retries=2, default_headers={"X-Request-Id": rid})
        try:
            _script(server, path)
            resp = await run(kind, c, server)
        finally:
            await close(kind, c)
    attempts = [r for r in server.requests if r.path == path]
    assert len(attempts) == 2 and all(r.headers["x-request-id"] == rid for r in attempts)
    t = _check_sent(resp, rid)
    usage = getattr(resp, "usage", None)
    if name in ("chat", "completions", "responses", "conversations"):  # generated tokens: a rate
        assert t.output_tokens is not None and t.output_tokens == usage.completion_tokens > 0
        assert t.output_tokens_per_second == pytest.approx(usage.completion_tokens / t.total)
    else:  # pooling endpoints report completion_tokens 0 (vLLM), others none: never "0 tokens/s"
        assert t.output_tokens in (None, 0)
        assert t.output_tokens_per_second is None and t.time_per_output_token is None


@pytest.mark.parametrize("what", ["retrieve", "cancel"])
@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_retrieve_and_cancel_carry_them(kind: str, what: str) -> None:
    with _server() as server:
        c = make(kind, server.url, max_retries=2, default_headers={"X-Request-Id": f"rid-{what}"})
        try:
            rid = await _stored(kind, c, server)
            path = f"/v1/responses/{rid}"
            if what == "cancel":
                server.stored_responses[rid]["status"] = "in_progress"  # as a background one would be
                path += "/cancel"
            _script(server, path)
            resp = await call(kind, c.responses(), what, rid)
        finally:
            await close(kind, c)
    assert resp.id == rid and resp.status == ("cancelled" if what == "cancel" else "completed")
    _check_sent(resp, f"rid-{what}")


# -- streams -----------------------------------------------------------------------------------------


STREAMED: dict[str, tuple[str, Callable[[Any, str], Any], bool]] = {  # name -> (path, builder, reports usage)
    "chat": ("/v1/chat/completions", lambda c, m: c.chat.completions().create().model(m)
             .user_message("tell me a longer story").stream_options({"include_usage": True}), True),
    "completions": ("/v1/completions", lambda c, m: c.completions().create().model(m).prompt("Once")
                    .stream_options({"include_usage": True}), True),
    "responses": ("/v1/responses", lambda c, m: c.responses().create().model(m).input("tell me more"), True),
    "transcription": ("/v1/audio/transcriptions",
                      lambda c, m: c.audio.transcriptions().create().file(WAV).model("w"), False),
}


@pytest.mark.parametrize("name", list(STREAMED))
@pytest.mark.parametrize("kind", CLIENTS)
async def test_every_stream_carries_them_with_token_timings(kind: str, name: str) -> None:
    path, builder, has_usage = STREAMED[name]
    rid = f"rid-{name}"
    with _server() as server:
        c = make(kind, server.url, max_retries=2, default_headers={"X-Request-Id": rid})
        try:
            _script(server, path, stream=True)
            stream = await call(kind, builder(c, server.model), "send_stream")
            events = await drain(kind, stream)
            # final_response() of another stream: the same metadata on what it returns
            other = await call(kind, builder(c, server.model), "send_stream")
            final = await call(kind, other, "final_response")
        finally:
            await close(kind, c)
    t = stream.timing
    assert isinstance(t, Timing)
    assert stream.status_code == 200 and stream.request_id == rid and stream.headers["content-type"]
    assert t.retries == 1
    assert t.time_to_first_byte is not None and t.time_to_first_byte >= DELAY
    assert t.time_to_first_token is not None and t.time_to_first_token >= t.time_to_first_byte
    assert t.total is not None and t.total >= t.time_to_first_token
    tokens = [e for e in events if isinstance(e, ContentDelta)]
    itl = t.inter_token_latencies
    assert len(tokens) >= 3 and len(itl) == len(tokens) - 1
    assert TRICKLE * 0.6 <= median(itl) <= TRICKLE * 10  # the server's pace, within a wide margin
    assert t.total - t.time_to_first_token >= TRICKLE * 0.6 * len(itl)  # the stream took the trickle's time
    done = events[-1]
    assert isinstance(done, Done)
    r = done.response
    assert r.timing is t and r.status_code == 200 and r.request_id == rid and r.headers["content-type"]
    if has_usage:
        n = r.usage.completion_tokens
        assert t.output_tokens == n and n >= 2
        assert t.time_per_output_token == pytest.approx((t.total - t.time_to_first_token) / (n - 1))
        assert t.output_tokens_per_second == pytest.approx(n / t.total)
    assert final.timing is other.timing and final.timing.retries == 0
    assert final.status_code == 200 and final.request_id == rid and final.headers["content-type"]


# -- request ids ----------------------------------------------------------------------------------------


RID_BUILDERS: dict[str, Callable[[Any, str], Any]] = {  # endpoints with vLLM's request_id field
    "chat": lambda c, m: c.chat.completions().create().model(m).user_message("hi"),
    "completions": lambda c, m: c.completions().create().model(m).prompt("Once"),
    "embeddings": lambda c, m: c.embeddings().create().model(m).input("a"),
    "rerank": lambda c, m: c.rerank().create().model(m).query("q").documents(["a"]),
    "score": lambda c, m: c.score().create().model(m).queries("q").documents(["a"]),
    "classify": lambda c, m: c.classify().create().model(m).input("good"),
    "pooling": lambda c, m: c.pooling().create().model(m).input("a"),
    "responses": lambda c, m: c.responses().create().model(m).input("Hi"),
}


@pytest.mark.parametrize("name", list(RID_BUILDERS))
@pytest.mark.parametrize("kind", CLIENTS)
async def test_request_id_setter_is_echoed(kind: str, name: str) -> None:
    with _server() as server:
        c = make(kind, server.url, max_retries=0)
        try:
            resp = await call(kind, RID_BUILDERS[name](c, server.model).request_id(f"my-{name}"), "send")
        finally:
            await close(kind, c)
    sent = server.requests[-1]
    assert sent.body["request_id"] == f"my-{name}"  # the body field, as before
    assert sent.headers["x-request-id"] == f"my-{name}"  # and the header vLLM echoes
    assert resp.request_id == f"my-{name}"
    if name in ("chat", "completions"):  # vLLM names the response after it
        assert resp.id == f"{'chatcmpl' if name == 'chat' else 'cmpl'}-my-{name}"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_request_id_on_a_stream_and_an_explicit_header_wins(kind: str) -> None:
    with _server() as server:
        c = make(kind, server.url, max_retries=0, default_headers={"X-Request-Id": "client-wide"})
        try:
            b = c.chat.completions().create().model(server.model).user_message("hi").request_id("mine")
            stream = await call(kind, b, "send_stream")
            events = await drain(kind, stream)
            explicit = await call(kind, c.chat.completions().create().model(server.model).user_message("hi")
                                  .request_id("body-id").header("x-request-id", "header-id"), "send")
            odd = await call(kind, c.chat.completions().create().model(server.model).user_message("hi")
                             .request_id("id-\u00e9t\u00e9"), "send")
        finally:
            await close(kind, c)
    assert stream.request_id == "mine" and events[-1].response.request_id == "mine"
    assert events[-1].response.id == "chatcmpl-mine"
    assert explicit.request_id == "header-id"  # header() is not overridden
    assert server.requests[1].body["request_id"] == "body-id"
    # not a plain ASCII header value: only the body field is sent (no error), the client-wide header stays
    assert server.requests[2].body["request_id"] == "id-\u00e9t\u00e9"
    assert server.requests[2].headers["x-request-id"] == "client-wide" and odd.request_id == "client-wide"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_without_request_id_headers_the_id_is_none_but_names_the_response(kind: str) -> None:
    with FakeVllmServer() as server:  # vLLM without --enable-request-id-headers
        c = make(kind, server.url, max_retries=0)
        try:
            resp = await call(kind, c.chat.completions().create().model(server.model).user_message("hi")
                              .request_id("abc"), "send")
        finally:
            await close(kind, c)
    assert resp.request_id is None and resp.id == "chatcmpl-abc"


# -- event hooks on non-chat endpoints ---------------------------------------------------------------


HOOKED: dict[str, tuple[str, Callable[[Any, str], Any], bytes]] = {  # name -> (path, builder, in the body)
    "embeddings": ("/v1/embeddings", lambda c, m: c.embeddings().create().model(m).input(["alpha"]), b"alpha"),
    "rerank": ("/v1/rerank", lambda c, m: c.rerank().create().model(m).query("which").documents(["x", "y"]),
               b"which"),
    "classify": ("/classify", lambda c, m: c.classify().create().model(m).input("good"), b"good"),
}


@pytest.mark.parametrize("name", list(HOOKED))
@pytest.mark.parametrize("kind", CLIENTS)
async def test_hooks_once_per_attempt_on_pooling_endpoints(kind: str, name: str) -> None:
    path, builder, needle = HOOKED[name]
    seen, hooks = recording_hooks(kind)
    with _server() as server:
        c = make(kind, server.url, max_retries=2, api_key="sk-secret", event_hooks=hooks)
        try:
            _script(server, path)
            resp = await call(kind, builder(c, server.model), "send")
        finally:
            await close(kind, c)
    assert [type(x) for x in seen] == [RequestInfo, ResponseInfo] * 2
    assert [x.attempt for x in seen[::2]] == [0, 1]
    assert [x.status_code for x in seen[1::2]] == [503, 200]
    for req in seen[::2]:
        assert req.method == "POST" and req.url == server.root_url + path
        assert needle in req.body and "authorization" not in {k.lower() for k in req.headers}
    last = seen[-1]
    assert last.request is seen[-2] and last.timing is resp.timing
    assert last.elapsed >= DELAY and last.headers["x-request-id"] == resp.request_id
    assert "sk-secret" not in repr(seen) + "".join(repr(x.headers) for x in seen)


# -- OpenTelemetry spans on non-chat endpoints ---------------------------------------------------------


otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")

from ._otel import instrumented, points  # noqa: E402  (only with the SDK)

TRACED: dict[str, tuple[str, str, Callable[[Any, str], Any]]] = {  # name -> (path, operation, builder)
    "embeddings": ("/v1/embeddings", "embeddings", lambda c, m: c.embeddings().create().model(m).input(["a", "b"])),
    "cohere_embed": ("/v2/embed", "embeddings", lambda c, m: c.cohere_embed().create().model(m).texts(["a"])),
    "rerank": ("/v1/rerank", "rerank", lambda c, m: c.rerank().create().model(m).query("q").documents(["a", "b"])),
    "score": ("/v1/score", "score", lambda c, m: c.score().create().model(m).queries("q").documents(["a"])),
    "classify": ("/classify", "classify", lambda c, m: c.classify().create().model(m).input(["good"])),
    "pooling": ("/pooling", "pooling", lambda c, m: c.pooling().create().model(m).input(["a"])),
}


@pytest.mark.parametrize("name", list(TRACED))
@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_span_for_pooling_endpoints(kind: str, name: str) -> None:
    path, operation, builder = TRACED[name]
    with instrumented() as (spans, reader), _server() as server:
        c = make(kind, server.url, max_retries=2)
        try:
            _script(server, path)
            resp = await call(kind, builder(c, server.model), "send")
        finally:
            await close(kind, c)
        (span,) = spans.get_finished_spans()
        metric_points = points(reader)
    a = dict(span.attributes)
    assert span.name == f"{operation} {server.model}" and span.kind.name == "CLIENT"
    assert a["gen_ai.operation.name"] == operation and a["gen_ai.request.model"] == server.model
    assert a["gen_ai.provider.name"] == "vllm" and a["server.port"] == server.port
    assert "error.type" not in a and "gen_ai.usage.output_tokens" not in a  # nothing generated
    usage = getattr(resp, "usage", None)  # (/v2/embed reports none)
    if usage is not None:
        assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens > 0
        tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metric_points["gen_ai.client.token.usage"]}
        assert tokens == {"input": usage.prompt_tokens}
    (retry,) = [e for e in span.events if e.name == "gen_ai.client.retry"]
    assert retry.attributes["retry.attempt"] == 1 and "503" in retry.attributes["retry.reason"]
    (duration,) = metric_points["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.attributes["gen_ai.operation.name"] == operation
    assert duration.sum >= DELAY  # the span covers every attempt


@pytest.mark.parametrize("kind", CLIENTS)
async def test_otel_spans_for_responses_and_batched_chat_and_none_for_server_routes(kind: str) -> None:
    with instrumented() as (spans, _), _server() as server:
        c = make(kind, server.url, max_retries=0)
        try:
            r = await call(kind, c.responses().create().model(server.model).input("Hi"), "send")
            batch = await call(kind, c.chat.completions().create().model(server.model).conversations(CONVS)
                               .max_tokens(3), "send")
            await call(kind, c, "tokenize_result", "hello")
            await call(kind, c, "models")
            await call(kind, c, "metrics")
        finally:
            await close(kind, c)
        finished = spans.get_finished_spans()
    assert [s.name for s in finished] == [f"chat {server.model}"] * 2  # tokenize, models, metrics: no span
    resp_span, batch_span = (dict(s.attributes) for s in finished)
    assert resp_span["gen_ai.operation.name"] == "chat" and resp_span["gen_ai.response.id"] == r.id
    assert list(resp_span["gen_ai.response.finish_reasons"]) == ["stop"]
    assert resp_span["gen_ai.usage.output_tokens"] == r.usage.completion_tokens
    assert list(batch_span["gen_ai.response.finish_reasons"]) == [ch.finish_reason for ch in batch.choices]
    assert len(batch.choices) == 2 and batch_span["gen_ai.usage.input_tokens"] == batch.usage.prompt_tokens
