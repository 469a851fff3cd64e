"""Observability shared by both clients: per-request timings, event hooks, logging.

Everything here is decided once: ``send_flow`` (``_core``) stamps the attempts and asks
this module what to log and which hooks to call; it yields a ``HookCall`` that the
driver runs (``call()`` on the sync client, ``await acall()`` on the async one). The
transports stamp when the headers arrived (``Response.received_at``), the stream loops
pass the time of each read to ``StreamAccumulator.feed``; ``Timing`` turns those
stamps into figures only when they are read, so the request and stream paths only
store floats.

OpenTelemetry lives in ``_otel`` (imported by ``vllm_client.instrument()`` only); the
flows look at ``state.otel`` (None unless instrumented).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

import orjson

from ._exceptions import InvalidRequestError
from ._urls import SECRET_HEADERS, redact_url

__all__ = ["Timing", "RequestInfo", "ResponseInfo", "HookCall", "get_logger", "check_hooks"]

_DEBUG = 10  # logging.DEBUG
_INFO = 20  # logging.INFO
_logger: Any = None


def get_logger() -> Any:
    """The ``vllm_client`` logger, with a ``NullHandler`` (``logging`` is imported on first use,
    not by ``import vllm_client``: it costs a few milliseconds)."""
    global _logger
    if _logger is None:
        import logging

        log = logging.getLogger("vllm_client")
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())
        _logger = log
    return _logger


BODY_PREVIEW = 2000  # characters of a body logged with VLLM_CLIENT_LOG_BODIES=1
# Headers a hook never sees (credentials).
_SECRET_HEADERS = SECRET_HEADERS


class _State:
    """Process-wide switches: the OpenTelemetry instrumentation (None: off)."""

    __slots__ = ("otel",)

    def __init__(self) -> None:
        self.otel: Any = None


state = _State()


# -- timings ---------------------------------------------------------------------------------


def _completion_tokens(usage: Any) -> int | None:
    if usage.__class__ is dict:
        n = usage.get("completion_tokens")
        if n is None:
            n = usage.get("output_tokens")  # the Responses API
    else:
        n = getattr(usage, "completion_tokens", None)
    return n if n.__class__ is int else None


class Timing:
    """How long a request took, in seconds from the start of its first attempt
    (``time.perf_counter``); None where not known.

    - ``time_to_first_byte``: until the answer's headers arrived (of the attempt that answered);
    - ``time_to_first_token`` (streams): until the first content, reasoning, refusal or tool
      call text arrived;
    - ``total``: until the whole body was read (a stream: until it ended, broke or was closed);
    - ``inter_token_latencies`` (streams): the gaps between token-bearing events (0.0 for
      events that came in the same read);
    - ``time_per_output_token`` (streams, with usage): ``(total - time_to_first_token) /
      (completion_tokens - 1)``, as ``vllm bench serve`` counts it;
    - ``output_tokens_per_second`` (with usage): ``completion_tokens / total`` (None when no
      token was generated: embeddings, rerank, ...);
    - ``retries``: attempts beyond the first;
    - ``queued``: how long the attempt that answered waited for a free pooled connection
      (0.0 when it did not wait), None when the transport cannot tell. ``AiohttpTransport``
      waits when ``limit`` connections are busy; ``RequestsTransport`` only with
      ``pool_block=True`` (otherwise it opens another connection: always 0.0), and None with
      a session of your own; a transport of your own sets ``Response.queued``.

    Token rates come only from the usage the server reported, never from chunk counts.
    """

    __slots__ = ("_start", "_first_byte", "_end", "retries", "queued", "_marks", "_usage", "_span")

    def __init__(self, start: float, first_byte: float | None = None, end: float | None = None,
                 retries: int = 0, queued: float | None = None) -> None:
        self._start = start
        self._first_byte = first_byte
        self._end = end
        self.retries = retries
        self.queued = queued
        self._marks: list[float] | None = None  # streams: when each token-bearing event was read
        self._usage: Any = None  # the usage dict (or Usage) the server reported
        self._span: Any = None  # the OpenTelemetry span recorder, when instrumented

    def __reduce__(self) -> tuple[Any, ...]:
        # the figures travel; the OpenTelemetry span recorder (live, process-bound) does not
        t = Timing(self._start, self._first_byte, self._end, self.retries, self.queued)
        return (_restore_timing, (t._start, t._first_byte, t._end, t.retries, t.queued, self._marks,
                                  self._usage))

    def _since(self, t: float | None) -> float | None:
        return None if t is None else t - self._start

    @property
    def time_to_first_byte(self) -> float | None:
        """Seconds until the response headers arrived."""
        return self._since(self._first_byte)

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds until the first token-bearing event of a stream (None when not streamed)."""
        marks = self._marks
        return self._since(marks[0]) if marks else None

    @property
    def total(self) -> float | None:
        """Seconds until the body was complete (a stream: until it ended or was closed)."""
        return self._since(self._end)

    @property
    def inter_token_latencies(self) -> list[float]:
        """Gaps between consecutive token-bearing stream events, in seconds ([] when not streamed)."""
        marks = self._marks
        if not marks:
            return []
        return [b - a for a, b in zip(marks, marks[1:])]  # noqa: B905 (one shorter on purpose)

    @property
    def output_tokens(self) -> int | None:
        """``usage.completion_tokens`` as reported (None without usage)."""
        return _completion_tokens(self._usage) if self._usage is not None else None

    @property
    def time_per_output_token(self) -> float | None:
        """Streams with usage: seconds per output token after the first."""
        n = self.output_tokens
        ttft, total = self.time_to_first_token, self.total
        if n is None or n < 2 or ttft is None or total is None:
            return None
        return (total - ttft) / (n - 1)

    @property
    def output_tokens_per_second(self) -> float | None:
        """With usage: completion tokens over the total time (None when none were generated, as
        on the pooling endpoints, whose usage reports ``completion_tokens: 0``)."""
        n = self.output_tokens
        total = self.total
        if not n or total is None or total <= 0:
            return None
        return n / total

    def to_dict(self) -> dict[str, Any]:
        """The figures as a dict (for logs and JSON)."""
        return {
            "time_to_first_byte": self.time_to_first_byte, "time_to_first_token": self.time_to_first_token,
            "total": self.total, "time_per_output_token": self.time_per_output_token,
            "output_tokens_per_second": self.output_tokens_per_second, "retries": self.retries,
            "queued": self.queued,
        }

    def __repr__(self) -> str:
        def f(v: float | None) -> str:
            return "None" if v is None else f"{v:.4f}"

        return (f"Timing(time_to_first_byte={f(self.time_to_first_byte)}, "
                f"time_to_first_token={f(self.time_to_first_token)}, total={f(self.total)}, "
                f"output_tokens_per_second={f(self.output_tokens_per_second)}, retries={self.retries})")


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON value (a response body: dicts, lists, scalars)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # an int beyond 64 bits, or a non-JSON value a caller put there
        import copy

        return copy.deepcopy(value)


def _to_json(value: Any) -> str:
    """JSON text of a to_dict() value."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        import json

        return json.dumps(value, default=repr)


def _restore_timing(start: float, first_byte: float | None, end: float | None, retries: int,
                    queued: float | None, marks: list[float] | None, usage: Any) -> Timing:
    t = Timing(start, first_byte, end, retries, queued)
    t._marks = marks
    t._usage = usage
    return t


class Headers(dict[str, str]):
    """Response headers kept by a pickled response: a dict whose look-ups ignore case, as the
    transports' own header mappings do."""

    __slots__ = ()

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers.items() if headers is not None else ())

    def _key(self, key: Any) -> Any:
        if key.__class__ is str and not dict.__contains__(self, key):
            low = key.lower()
            for k in self:
                if k.lower() == low:
                    return k
        return key

    def __getitem__(self, key: str) -> str:
        value: str = dict.__getitem__(self, self._key(key))
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, self._key(key), default)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Headers, (dict(self),))


def _rebuild(cls: Any, state: dict[str, Any]) -> Any:
    """Unpickle a response: a bare instance, then its attributes (``_MetaView.__reduce_ex__``)."""
    obj = cls.__new__(cls)
    obj._restore(state)
    return obj


class _MetaView:
    """What every response carries besides its body: ``timing``, ``headers``, ``status_code``,
    ``request_id``. Set by the client when it made the response (None / {} otherwise).
    No slots of its own, so a built-in container can carry it too (``ModelList``: a list
    subclass that declares the three slots); classes derive from ``_Meta``."""

    __slots__ = ()
    _timing: Timing
    _headers: Mapping[str, str]
    _status: int

    @property
    def timing(self) -> Timing | None:
        """How long the request took (``Timing``)."""
        try:
            return self._timing
        except AttributeError:
            return None

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (look-ups ignore case with the built-in transports)."""
        try:
            return self._headers
        except AttributeError:
            return {}

    @property
    def status_code(self) -> int | None:
        """The HTTP status."""
        try:
            return self._status
        except AttributeError:
            return None

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id`` header (vLLM with ``--enable-request-id-headers``)."""
        return header(self.headers, "x-request-id")

    # -- travelling: to_dict / to_json / pickle ---------------------------------------------

    def to_dict(self) -> Any:
        """The body as the server sent it (a deep copy of ``raw``): what the response's
        ``from_dict`` takes back. Timing, headers and status are not in it (pickling keeps them)."""
        raw = getattr(self, "raw", None)
        if raw.__class__ is dict:
            return _json_copy(raw)
        return _json_copy(self._plain())

    def _plain(self) -> Any:
        """A JSON value of a response without ``raw`` (overridden where there is one)."""
        raise NotImplementedError

    def to_json(self) -> str:
        """``to_dict()`` as JSON text."""
        return _to_json(self.to_dict())

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # Everything the response holds travels: its fields, .parsed, the timing, the headers
        # (as a case-insensitive dict: the transports' own mappings do not pickle) and the status.
        return (_rebuild, (type(self), self._pickle_state()), None, iter(self) if isinstance(self, list) else None)

    def _pickle_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for cls in type(self).__mro__:
            for name in cls.__dict__.get("__slots__", ()):
                if name not in state and name not in ("__dict__", "__weakref__"):
                    try:
                        state[name] = object.__getattribute__(self, name)
                    except AttributeError:
                        pass
        state.update(getattr(self, "__dict__", {}))
        headers = state.get("_headers")
        if headers is not None and headers.__class__ is not Headers:
            state["_headers"] = Headers(headers)
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        for k, val in state.items():
            object.__setattr__(self, k, val)


class _Meta(_MetaView):
    """The base of the response types: the metadata's three slots."""

    __slots__ = ("_timing", "_headers", "_status")


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, looked up ignoring case (``name`` in lower case)."""
    if not headers:
        return None
    v = headers.get(name)
    if v is not None:
        return v
    for k, val in headers.items():
        if k.lower() == name:
            return val
    return None


def attach(result: Any, response: Any) -> None:
    """Give a parsed response its timing, headers and status (and the timing its usage)."""
    if isinstance(result, _MetaView):
        meta: Any = result  # (the slots are declared by _Meta or the container subclass)
        timing = response.timing
        meta._timing = timing
        meta._headers = response.headers
        meta._status = response.status
        raw = getattr(result, "raw", None)
        if timing is not None and raw.__class__ is dict:
            timing._usage = raw.get("usage")


# -- event hooks -----------------------------------------------------------------------------


class RequestInfo:
    """What a ``"request"`` hook sees of one attempt: ``method``, ``url`` (without
    credentials), ``headers`` (without Authorization or API-key headers), ``body`` (JSON bytes)."""

    __slots__ = ("method", "url", "headers", "body", "attempt")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes | None, attempt: int) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.attempt = attempt  # 0 for the first try, 1 for the first retry, ...

    def __repr__(self) -> str:
        return f"RequestInfo({self.method} {self.url}, attempt={self.attempt})"


class ResponseInfo:
    """What a ``"response"`` hook sees: the ``request`` (a ``RequestInfo``), ``status_code``,
    ``headers``, ``elapsed`` (seconds this attempt took until the headers, or the whole body
    when not streamed) and ``timing`` (the request's ``Timing`` so far)."""

    __slots__ = ("request", "status_code", "headers", "elapsed", "timing")

    def __init__(self, request: RequestInfo, status_code: int, headers: Mapping[str, str], elapsed: float,
                 timing: Timing) -> None:
        self.request = request
        self.status_code = status_code
        self.headers = headers
        self.elapsed = elapsed
        self.timing = timing

    def __repr__(self) -> str:
        return f"ResponseInfo({self.status_code}, {self.request.method} {self.request.url}, {self.elapsed:.4f} s)"


def request_info(request: Any, attempt: int) -> RequestInfo:
    """The hook's view of a request: credentials removed."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}
    return RequestInfo(request.method, redact_url(request.url), headers, request.body, attempt)


class HookCall:
    """A step of a flow: call these hooks with this info (the driver runs it)."""

    __slots__ = ("hooks", "info")

    def __init__(self, hooks: Sequence[Callable[[Any], Any]], info: RequestInfo | ResponseInfo) -> None:
        self.hooks = hooks
        self.info = info

    def call(self) -> None:
        """Run the hooks (sync client)."""
        for fn in self.hooks:
            fn(self.info)

    async def acall(self) -> None:
        """Run the hooks (async client): an async hook is awaited, a plain function called."""
        for fn in self.hooks:
            r = fn(self.info)
            if inspect.isawaitable(r):
                await r


def check_hooks(event_hooks: Any, *, sync: bool) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Validate ``event_hooks={"request": [...], "response": [...]}``; return (request, response)."""
    if event_hooks is None:
        return (), ()
    if not isinstance(event_hooks, Mapping):
        raise InvalidRequestError('event_hooks: expected a dict like {"request": [fn], "response": [fn]}')
    unknown = set(event_hooks) - {"request", "response"}
    if unknown:
        raise InvalidRequestError(f"event_hooks: unknown event {sorted(unknown)[0]!r} (expected 'request' "
                                  "or 'response')")
    out = []
    for name in ("request", "response"):
        fns = event_hooks.get(name) or ()
        if callable(fns):
            fns = (fns,)
        fns = tuple(fns)
        for fn in fns:
            if not callable(fn):
                raise InvalidRequestError(f"event_hooks[{name!r}]: {fn!r} is not callable")
            if sync and inspect.iscoroutinefunction(fn):
                raise InvalidRequestError(f"event_hooks[{name!r}]: {getattr(fn, '__name__', fn)!r} is an async "
                                          "function: use it with AsyncVllmClient")
        out.append(fns)
    return out[0], out[1]


# -- logging ---------------------------------------------------------------------------------


def _bodies() -> bool:
    return os.environ.get("VLLM_CLIENT_LOG_BODIES", "").strip().lower() in ("1", "true", "yes", "on")


def preview(body: bytes | None) -> str:
    """The first ``BODY_PREVIEW`` characters of a body, for DEBUG logs."""
    if not body:
        return ""
    text = body[: BODY_PREVIEW * 4].decode("utf-8", "replace")
    return text[:BODY_PREVIEW] + (f"... ({len(body)} bytes)" if len(text) > BODY_PREVIEW or
                                  len(body) > BODY_PREVIEW * 4 else "")


def log_attempt(request: Any, attempt: int, status: int | None, elapsed: float, body: bytes | None,
                error: BaseException | None = None) -> None:
    """DEBUG: one attempt (method, redacted URL, status or error, time); bodies only when asked."""
    logger = get_logger()
    if not logger.isEnabledFor(_DEBUG):
        return
    url = redact_url(request.url)
    outcome = f"{status}" if error is None else f"failed ({type(error).__name__}: {error})"
    logger.debug("%s %s -> %s in %.3f s (attempt %d)", request.method, url, outcome, elapsed, attempt + 1)
    if _bodies():
        logger.debug("request body: %s", preview(request.body))
        if body:
            logger.debug("response body: %s", preview(body))


def log_retry(request: Any, attempt: int, reason: str, delay: float) -> None:
    """INFO: a retry, with the reason and the wait."""
    logger = get_logger()
    if logger.isEnabledFor(_INFO):
        logger.info("retrying %s %s in %.2f s (retry %d) after %s", request.method, redact_url(request.url),
                    delay, attempt + 1, reason)


def log_replica_down(base_url: str, error: BaseException) -> None:
    """WARNING: a replica was taken out of service."""
    get_logger().warning("replica %s is down (%s): taking it out of service", redact_url(base_url),
                   type(error).__name__)


def configure_from_env() -> None:
    """``VLLM_CLIENT_LOG=debug|info`` (read at import): a stderr handler at that level."""
    level = os.environ.get("VLLM_CLIENT_LOG", "").strip().lower()
    if level not in ("debug", "info"):
        return
    import logging

    logger = get_logger()
    if any(getattr(h, "_vllm_client_env", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
    handler._vllm_client_env = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if level == "debug" else logging.INFO)


def now() -> float:
    """The clock every timing uses."""
    return perf_counter()
