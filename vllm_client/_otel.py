"""OpenTelemetry spans and metrics in the GenAI semantic conventions (``vllm_client.instrument()``).

Imported only by ``instrument()``; needs ``opentelemetry-api`` (``pip install opentelemetry-api``,
or ``pip install -e ".[otel]"`` in a checkout of this SDK).
Every request carries the W3C trace context (``traceparent``, ``tracestate``) of its span (or, for
a request without one, of the current span), so a vLLM server with ``--otlp-traces-endpoint``
continues the trace; a header the user set wins. One CLIENT span per model call (chat, text
completion, Responses, embeddings, rerank, score, classify, pooling; see ``_OPERATIONS``), named
``{operation} {model}``,
covering every attempt: a retry is a span *event* ``gen_ai.client.retry`` (attempt, reason,
wait), not a child span, since the SDK's attempts are not separate operations for the user and
an event costs no extra span per request. A stream's span ends when the stream ends, breaks or
is closed; its first token is the span event ``gen_ai.first_token`` (stamped with the time it
arrived). Metrics: ``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage`` and, for
streams, ``gen_ai.client.operation.time_to_first_chunk``. No message content unless asked
(``capture_content=True`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import _version
from ._observe import state

__all__ = ["Instrumentation", "instrument", "uninstrument"]

# Request path -> gen_ai.operation.name: the GenAI conventions' own names where they have one
# (chat, text_completion, embeddings; the Responses API and batched chat are chat, vLLM's
# Cohere-style /v2/embed is embeddings); vLLM's pooling endpoints get their route's name, as
# the conventions allow for operations they do not list. Other routes (tokenize, models,
# metrics, ...) are not model calls: no span.
_OPERATIONS = {"/chat/completions": "chat", "/chat/completions/batch": "chat", "/responses": "chat",
               "/completions": "text_completion", "/embeddings": "embeddings", "/v2/embed": "embeddings",
               "/rerank": "rerank", "/score": "score", "/classify": "classify", "/pooling": "pooling"}
_GENERATES = frozenset({"chat", "text_completion"})  # the operations whose usage has output tokens
_REQUEST_ATTRS = (  # body field -> attribute
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)
_PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent / tracestate
_TRACE_HEADERS = ("traceparent", "tracestate")
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_TOKEN_BUCKETS: list[float] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]


def _capture_from_env() -> bool:
    v = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return v.strip().lower() in ("1", "true", "yes", "on")


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: list[float]) -> Any:
    try:  # explicit bucket advice: opentelemetry-api 1.23+
        return meter.create_histogram(name, unit=unit, description=description,
                                      explicit_bucket_boundaries_advisory=buckets)
    except TypeError:
        return meter.create_histogram(name, unit=unit, description=description)


class Instrumentation:
    """The tracer, the meter's instruments and the content switch of one ``instrument()`` call."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None,
                 capture_content: bool | None = None) -> None:
        self.tracer = trace.get_tracer("vllm_client", _version.__version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("vllm_client", _version.__version__, meter_provider=meter_provider)
        self.duration = _histogram(meter, "gen_ai.client.operation.duration", "s", "GenAI operation duration",
                                   _DURATION_BUCKETS)
        self.tokens = _histogram(meter, "gen_ai.client.token.usage", "{token}",
                                 "Number of input and output tokens used", _TOKEN_BUCKETS)
        self.ttfc = _histogram(meter, "gen_ai.client.operation.time_to_first_chunk", "s",
                               "Time to receive the first chunk of a streamed response", _DURATION_BUCKETS)
        self.capture_content = _capture_from_env() if capture_content is None else capture_content

    def inject(self, request: Any) -> None:
        """Put the W3C trace context (``traceparent``, ``tracestate``) of the request's span, else
        of the current span, into its headers; a header the user set is kept as is."""
        recorder = request.trace
        span = recorder.span if recorder is not None else trace.get_current_span()
        if not span.get_span_context().is_valid:
            return
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        if not carrier:
            return
        headers = request.headers
        given = {k.lower() for k in headers if k.lower() in _TRACE_HEADERS}
        if given >= carrier.keys():
            return
        headers = dict(headers)  # (never the client's shared default headers)
        for k, v in carrier.items():
            if k not in given:
                headers[k] = v
        request.headers = headers

    def traced_flow(self, client: Any, request: Any, body: dict[str, Any], flow: Generator[Any, Any, Any],
                    stream: bool = False) -> Generator[Any, Any, Any]:
        """Run ``flow`` (a request's) inside a span; a stream's span is handed to the stream."""
        operation = _OPERATIONS.get(request.path)
        if operation is None:
            self.inject(request)  # (the current span's context)
            return (yield from flow)
        span = _Span(self, operation, request, body)
        request.trace = span
        self.inject(request)
        try:
            result = yield from flow
        except BaseException as e:
            span.end(error=e)
            raise
        if stream:
            result.timing._span = span  # the stream ends it
            span.timing = result.timing
        else:
            span.end(result=result)
        return result


class _Span:
    """One request's span and its metric attributes."""

    __slots__ = ("inst", "span", "operation", "model", "base", "timing", "start", "epoch_ns", "ended")

    def __init__(self, inst: Instrumentation, operation: str, request: Any, body: dict[str, Any]) -> None:
        self.inst = inst
        self.operation = operation
        model = body.get("model")
        self.model = model if isinstance(model, str) else None
        parts = urlsplit(request.url)
        base: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "vllm",
            "gen_ai.system": "vllm",
        }
        if self.model:
            base["gen_ai.request.model"] = self.model
        if parts.hostname:
            base["server.address"] = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        base["server.port"] = port
        self.base = base
        attrs = dict(base)
        for key, name in _REQUEST_ATTRS:
            v = body.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                attrs[name] = v
        stop = body.get("stop")
        if isinstance(stop, str):
            attrs["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            attrs["gen_ai.request.stop_sequences"] = stop
        if inst.capture_content:
            for key in ("messages", "prompt", "input"):
                if key in body:
                    attrs["gen_ai.input.messages"] = orjson.dumps(body[key]).decode()
                    break
        name = f"{operation} {self.model}" if self.model else operation
        self.span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.timing: Any = None
        self.start = time.perf_counter()
        self.epoch_ns = time.time_ns() - int(self.start * 1e9)  # perf_counter -> wall clock, in ns
        self.ended = False

    def retry(self, attempt: int, reason: str, delay: float) -> None:
        """A failed attempt that will be retried: a span event."""
        self.span.add_event("gen_ai.client.retry", {"retry.attempt": attempt + 1, "retry.reason": reason[:200],
                                                    "retry.wait": float(delay)})

    def end_stream(self, acc: Any, error: BaseException | None) -> None:
        """The stream this span belongs to ended (finished, broke with ``error`` or was closed)."""
        timing = self.timing
        marks = acc.marks
        if marks:
            self.span.add_event("gen_ai.first_token", timestamp=self.epoch_ns + int(marks[0] * 1e9))
        closed = error is not None and type(error).__name__ in ("GeneratorExit", "CancelledError")
        if closed:
            self.span.set_attribute("vllm_client.stream.closed_early", True)
            error = None
        elif error is None and not acc.done and acc._final is None:
            self.span.set_attribute("vllm_client.stream.closed_early", True)
        if timing is not None and timing._marks:
            ttft = timing.time_to_first_token
            if ttft is not None:
                self.inst.ttfc.record(ttft, self._metric_attrs(None, acc.response()))
        self.end(result=acc.response(), error=error)

    def _metric_attrs(self, error: BaseException | None, result: Any) -> dict[str, Any]:
        attrs = dict(self.base)
        model = getattr(result, "model", None)
        if isinstance(model, str) and model:
            attrs["gen_ai.response.model"] = model
        if error is not None:
            attrs["error.type"] = _error_type(error)
        return attrs

    def end(self, result: Any = None, error: BaseException | None = None) -> None:
        """Set the response attributes, record the metrics, end the span (once)."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        usage = getattr(result, "usage", None) if result is not None else None
        if result is not None:
            rid = getattr(result, "id", None)
            if isinstance(rid, str) and rid:
                span.set_attribute("gen_ai.response.id", rid)
            model = getattr(result, "model", None)
            if isinstance(model, str) and model:
                span.set_attribute("gen_ai.response.model", model)
            choices = getattr(result, "choices", None)
            if isinstance(choices, list):
                reasons = [c.finish_reason for c in choices if getattr(c, "finish_reason", None)]
            else:  # the Responses API: one output, its finish reason derived from the status
                reason = getattr(result, "finish_reason", None)
                reasons = [reason] if isinstance(reason, str) and reason else []
            if reasons:
                span.set_attribute("gen_ai.response.finish_reasons", reasons)
                if self.inst.capture_content:
                    raw = getattr(result, "raw", None)
                    if isinstance(raw, dict):
                        span.set_attribute("gen_ai.output.messages", orjson.dumps(raw.get("choices")).decode())
            if usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                if self.operation in _GENERATES:
                    span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if error is not None:
            etype = _error_type(error)
            span.set_attribute("error.type", etype)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            span.record_exception(error)
        attrs = self._metric_attrs(error, result)
        self.inst.duration.record(time.perf_counter() - self.start, attrs)
        if usage is not None:
            self.inst.tokens.record(usage.prompt_tokens, dict(attrs, **{"gen_ai.token.type": "input"}))
            if self.operation in _GENERATES:
                self.inst.tokens.record(usage.completion_tokens, dict(attrs, **{"gen_ai.token.type": "output"}))
        span.end()


def _error_type(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and type(error).__name__ == "APIStatusError":
        return str(status)
    return type(error).__name__


def instrument(tracer_provider: Any = None, meter_provider: Any = None, capture_content: bool | None = None) -> None:
    """Turn on spans and metrics for every client in this process."""
    state.otel = Instrumentation(tracer_provider, meter_provider, capture_content)


def uninstrument() -> None:
    """Turn them off again."""
    state.otel = None
