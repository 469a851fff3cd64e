"""The client's pure core: configuration and request flows, shared by both clients.

A *flow* is a generator that decides everything and does no I/O. It yields
``PreparedRequest`` (the driver sends it and sends back the ``Response``, or
throws the ``APIConnectionError`` in) or a ``float`` (the driver sleeps that
long), and finally returns its result. ``VllmClient`` and ``AsyncVllmClient``
each have one small driver loop (``_run``) that runs flows. What the flows need
beside this module is pure too: endpoints' builders and response types
(``_endpoints/``), shared types (``_types``), streams (``_stream``), retry
decisions (``_retry``), replicas (``_replicas``), errors (``_exceptions``); the
transports (``_transports/``) do the I/O.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from time import perf_counter
from typing import Any, Protocol, TypeVar

import orjson

from . import _json
from ._config import (
    Timeout,
    TimeoutTypes,
    build_headers,
    check_header,
    resolve_api_key,
    resolve_base_url,
    split_credentials,
    to_timeout,
)
from ._connection import CertTypes, ConnectionOptions
from ._endpoints.server import models_flow
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    InvalidRequestError,
    VllmError,
    error_from_response,
    load_json_object,
    route_missing,
)
from ._observe import (
    _DEBUG,
    HookCall,
    ResponseInfo,
    Timing,
    attach,
    check_hooks,
    get_logger,
    log_attempt,
    log_replica_down,
    log_retry,
    request_info,
    state,
)
from ._replicas import Replica, ReplicaSet
from ._retry import decide, resend_at_once
from ._transports.base import PreparedRequest, Response
from ._urls import redact_url, server_root
from ._validate import check_finite, integer

T = TypeVar("T")
Flow = Generator["PreparedRequest | float | HookCall", Any, T]


class _Sendable(Protocol):
    """What the core needs from a builder: its route and the parts of its request."""

    _path: str
    _root: bool

    def _request_parts(self, stream: bool) -> tuple[dict[str, Any], dict[str, str] | None, Timeout | None]: ...


_UNSET: Any = object()


def _unpickle_client(cls: Callable[..., Any], options: dict[str, Any], transport: Any) -> Any:
    client = cls(**options, transport=transport)
    client._unpickled = True  # nobody holds it to close it: closed quietly when collected
    return client


class ClientCore:
    """Configuration and request logic common to ``VllmClient`` and ``AsyncVllmClient``, and
    their one constructor (each client names its default transport and its endpoint groups)."""

    _transport_class: Callable[..., Any]  # the default transport (RequestsTransport / AiohttpTransport)
    _groups: dict[str, Callable[[Any], Any]] = {}  # attribute -> endpoint group (chat, audio)

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        api_key: str | None = None,
        timeout: TimeoutTypes = None,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        default_model: str | None = None,
        event_hooks: Mapping[str, Sequence[Callable[[Any], Any]]] | None = None,
        transport: Any = None,
        verify: bool | str | os.PathLike[str] = True,
        cert: CertTypes = None,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        """``base_url`` (or a list of replicas): the argument, ``$VLLM_BASE_URL``,
        ``$OPENAI_BASE_URL`` or ``http://localhost:8000/v1``. ``verify`` / ``cert`` / ``proxy`` /
        ``trust_env``: the connection options (``ConnectionOptions``: CA bundle or False, client
        certificate, proxy URL, read the environment), for the default transport; a ``transport``
        of your own takes its own."""
        self._closed = False
        if isinstance(base_url, (list, tuple)):
            given = [resolve_base_url(u) for u in base_url]
            if not given:
                raise InvalidRequestError("base_url=[]: give at least one URL")
        else:
            given = [resolve_base_url(base_url)]  # type: ignore[arg-type]
        self._given_urls = given  # as given (credentials included), for with_options() copies
        urls, basic = split_credentials(given)
        self.base_url = urls[0]
        self.base_urls = urls
        self._replicas = ReplicaSet(urls) if len(urls) > 1 else None
        self._api_key = resolve_api_key(api_key, given)
        # Credentials in the URL: Basic auth when no key is set; with a key, only its Bearer header
        # (both clients alike: never the HTTP library's own handling of URL credentials).
        self._basic_auth = None if self._api_key else basic
        self.timeout: Timeout = to_timeout(timeout)
        self.max_retries = integer("max_retries", max_retries, lo=0)
        if default_headers is not None and not isinstance(default_headers, Mapping):
            raise InvalidRequestError("default_headers: expected a dict of str to str")
        self._default_headers = dict(default_headers or {})
        self.headers = build_headers(self._api_key, self._default_headers, basic=self._basic_auth)
        if default_model is not None and (not isinstance(default_model, str) or not default_model):
            raise InvalidRequestError(f"default_model={default_model!r}: expected a non-empty string")
        self.default_model = default_model
        self._resolved_model: str | None = None
        self._model_lock = threading.Lock()
        self._event_hooks = event_hooks
        self._request_hooks, self._response_hooks = check_hooks(event_hooks, sync=self._sync_hooks)
        self._log_enabled = get_logger().isEnabledFor  # (the logger caches its answer per level)
        self._connection = ConnectionOptions(verify, cert, proxy, trust_env)
        if transport is not None and not self._connection.is_default:
            raise InvalidRequestError("verify=, cert=, proxy= and trust_env= configure the default transport: "
                                      "give them to your transport instead")
        self._transport = self._use_transport(transport, self._transport_class, **self._connection.kwargs())
        for name, group in self._groups.items():
            setattr(self, name, group(self))

    _sync_hooks = True  # hooks must be plain functions (AsyncVllmClient: async ones allowed)

    # -- configuration -------------------------------------------------------

    @property
    def api_key(self) -> str | None:
        """The API key in use (never shown by repr)."""
        return self._api_key

    def _options(self, timeout: Any, max_retries: Any, default_headers: Any) -> dict[str, Any]:
        """Constructor arguments for a copy with some options changed (``with_options``)."""
        headers = dict(self._default_headers)
        if default_headers is not _UNSET:
            headers.update(default_headers or {})
        return {
            "base_url": self._given_urls if len(self._given_urls) > 1 else self._given_urls[0],
            "api_key": self._api_key,
            "timeout": self.timeout if timeout is _UNSET else timeout,
            "max_retries": self.max_retries if max_retries is _UNSET else max_retries,
            "default_headers": headers,
            "default_model": self.default_model,
            "event_hooks": self._event_hooks,
        }

    def _use_transport(self, transport: Any, default: Callable[..., Any], **options: Any) -> Any:
        """The transport to use (the given one, else a new ``default(**options)``, which this client owns)."""
        from ._transports.mock import MockTransport

        self._owns_transport = True  # a copy made by with_options() shares it and does not close it
        self._default_transport = transport is None  # pickling makes a new one of these
        # The user's own transport (proxies, TLS, a session): batch() never swaps it silently.
        self._custom_transport = transport is not None and not isinstance(transport, MockTransport)
        return transport if transport is not None else default(**options)

    def _clone(self, cls: Callable[..., Any], transport: Any, *, owns: bool, timeout: Any = _UNSET,
               max_retries: Any = _UNSET, default_headers: Any = _UNSET) -> Any:
        """A client of class ``cls`` with this one's configuration (some options changed) over
        ``transport`` (None: its own new one, with this client's connection options):
        ``with_options()`` copies and batch()'s async twin."""
        connection = self._connection.kwargs() if transport is None else {}
        copy = cls(**self._options(timeout, max_retries, default_headers), transport=transport, **connection)
        copy._resolved_model = self._resolved_model
        copy._connection = self._connection  # (a copy's own batch() twin makes a transport with them)
        copy._custom_transport = self._custom_transport
        copy._default_transport = transport is None or (self._default_transport and transport is self._transport)
        copy._owns_transport = owns
        return copy

    def __reduce__(self) -> tuple[Any, ...]:
        """A client pickles as its configuration (what ``with_options()`` copies, the API key
        included) and a transport of its own; the default transport's connections stay behind:
        the unpickled client makes its own (and closes it when garbage-collected, silently)."""
        options = self._options(_UNSET, _UNSET, _UNSET)
        if self._default_transport:
            options.update(self._connection.kwargs())  # verify, cert, proxy, trust_env
        return (_unpickle_client, (type(self), options, None if self._default_transport else self._transport))

    def _repr(self) -> str:
        key = ", api_key=***" if self._api_key else ""
        return f"{type(self).__name__}(base_url={redact_url(self.base_url)!r}{key}, max_retries={self.max_retries})"

    def url(self, path: str, *, root: bool = False) -> str:
        """The full URL of an API path (``/chat/completions``) or, with root, a server-root path (``/health``)."""
        return (server_root(self.base_url) if root else self.base_url) + path

    def prepare(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
        root: bool = False,
    ) -> PreparedRequest:
        """Build the request: URL, merged headers, JSON body serialized once."""
        if self._closed:
            raise VllmError("client closed: this client's connections are closed; make a new client")
        hdrs = self.headers
        if headers:
            hdrs = dict(hdrs)
            for k, v in headers.items():
                check_header(k, v)
                hdrs[k] = v
        if stream:
            if hdrs is self.headers:
                hdrs = dict(hdrs)
            hdrs["Accept"] = "text/event-stream"
        data = None
        if body is not None:
            try:
                data = orjson.dumps(body)
            except TypeError as e:
                try:  # an integer beyond 64 bits (orjson refuses it): written exactly
                    data = _json.dumps(body)
                except TypeError:
                    raise InvalidRequestError(f"request body is not JSON-serializable: {e}") from None
            # orjson writes NaN and +-inf as null: refuse them. A null value follows ':', '[' or ','
            # (orjson writes no spaces); "null" in a string (a JSON schema's {"type": "null"}) does not.
            # (find(), not ``in``: bytes.__contains__ first tries the needle as an int, and raises and
            # clears a TypeError every time; 5x the instructions on a short body.)
            if data.find(b"null") >= 0 and (data.find(b":null") >= 0 or data.find(b",null") >= 0
                                            or data.find(b"[null") >= 0):
                check_finite(body)
        return PreparedRequest(method, self.url(path, root=root), hdrs, data, timeout or self.timeout, stream,
                               path, root)

    # -- flows ---------------------------------------------------------------

    def send_flow(self, request: PreparedRequest) -> Flow[Response]:
        """``_send_flow`` (the retry policy), the request first given the W3C trace context of the
        current OpenTelemetry span when instrumented: what every flow but the two hot ones
        (``request_flow``, ``stream_flow``, which check for OpenTelemetry already) sends with.
        A plain function: no generator of its own."""
        otel = state.otel
        if otel is not None:
            otel.inject(request)
        return self._send_flow(request)

    def _send_flow(self, request: PreparedRequest) -> Flow[Response]:
        """Send with the retry policy; return the first non-error Response, or raise the typed error.

        Connection errors and 408/409/429/5xx are retried (honouring Retry-After);
        other 4xx never are. A request lost on a stale pooled connection is resent once
        at once, outside ``max_retries`` (``resend_at_once``). Each attempt is timed,
        logged (DEBUG) and shown to the event hooks; each retry is logged (INFO) and noted on the
        OpenTelemetry span.
        """
        attempt = 0
        resent = False
        replicas = self._replicas
        replica: Replica | None = None
        request_hooks, response_hooks = self._request_hooks, self._response_hooks
        start = perf_counter()
        while True:
            if replicas is not None:
                yield from self._probe_flow(replicas)
                replica = replicas.pick(avoid=replica)
                request.url = (replica.root if request.root else replica.base_url) + request.path
            info = request_info(request, attempt) if request_hooks or response_hooks else None
            if request_hooks:
                yield HookCall(request_hooks, info)  # type: ignore[arg-type]  # (info is set)
            sent = perf_counter() if attempt else start
            try:
                response: Response = yield request
            except APIConnectionError as e:
                if resend_at_once(e, resent):  # a pooled connection the server had closed: not a try
                    resent = True
                    if replica is not None and replicas is not None:
                        replicas.release(replica)
                    continue
                log_attempt(request, attempt, None, perf_counter() - sent, None, e)
                delay = decide(attempt, self.max_retries, error=e)
                if replica is not None and replicas is not None:
                    replicas.release(replica)
                    replicas.mark_down(replica)
                    log_replica_down(replica.base_url, e)
                    if delay is not None and any(r.down_until is None for r in replicas.replicas):
                        delay = 0.0  # fail over to another replica at once
                if delay is None:
                    raise
                reason = f"{type(e).__name__}: {e}"
            else:
                now = perf_counter()
                stream = request.stream and response.status < 400
                timing = response.timing = Timing(start, response.received_at or now, None if stream else now,
                                                  attempt, response.queued)
                if replica is not None and replicas is not None:
                    if stream:
                        _release_on_close(response, replicas, replica)  # a stream stays on its replica
                    else:
                        replicas.release(replica)
                if self._log_enabled(_DEBUG):
                    log_attempt(request, attempt, response.status, now - sent, None if stream else response.body)
                if response_hooks:
                    try:
                        yield HookCall(response_hooks, ResponseInfo(info, response.status,  # type: ignore[arg-type]
                                                                    response.headers, now - sent, timing))
                    except BaseException:
                        if stream:
                            _close_quietly(response)
                        raise
                if response.status < 400:
                    return response
                delay = decide(attempt, self.max_retries, status=response.status, headers=response.headers)
                if delay is None:
                    raise error_from_response(
                        response.status, response.headers, response.body,
                        url=request.url, method=request.method,  # (the error redacts it)
                    )
                reason = f"status {response.status}"
            log_retry(request, attempt, reason, delay)
            trace = request.trace
            if trace is not None:
                trace.retry(attempt, reason, delay)
            yield delay
            attempt += 1

    def _probe_flow(self, replicas: ReplicaSet) -> Flow[None]:
        """Probe the replicas whose cooldown has passed with ``GET /health``; bring back those that answer."""
        for r in replicas.due_for_probe():
            req = PreparedRequest("GET", r.root + "/health", self.headers, None,
                                  Timeout(connect=2.0, read=2.0), False, "/health", True)
            try:
                response: Response = yield req
                ok = response.status == 200
            except APIConnectionError:
                ok = False
            if ok:
                replicas.mark_up(r)
            else:
                replicas.mark_down(r)

    def json_flow(self, request: PreparedRequest, parse: Callable[[dict[str, Any]], T], what: str) -> Flow[T]:
        """Send, then parse the JSON object body with ``parse``."""
        response = yield from self.send_flow(request)
        return _parsed(response, request, parse, what)

    def model_flow(self, body: dict[str, Any]) -> Flow[None]:
        """Fill in ``body["model"]`` when the builder set none: the client's default_model,
        else the one model the server serves (asked once, then remembered)."""
        if "model" in body:
            return
        if self.default_model:
            body["model"] = self.default_model
            return
        if self._resolved_model is None:
            models = yield from models_flow(self)
            ids = [m.id for m in models if m.id]
            if len(ids) != 1:
                served = ", ".join(ids) if ids else "none"
                raise InvalidRequestError(
                    f"no model given and the server at {redact_url(self.base_url)} serves "
                    f"{len(ids)} models ({served}): call .model(...) or pass default_model="
                )
            with self._model_lock:
                self._resolved_model = ids[0]
        body["model"] = self._resolved_model

    # -- endpoint flows (shared by both clients) -----------------------------

    def request_flow(self, path: str, body: dict[str, Any], parse: Callable[[dict[str, Any]], T], what: str, *,
                     headers: Mapping[str, str] | None = None, timeout: Timeout | None = None,
                     root: bool = False, route_hint: str | None = None) -> Flow[T]:
        """POST a JSON body (the model filled in when it has none) and parse the answer with
        ``parse``: what ``send()`` runs, and each item of ``batch()``. ``route_hint``: what a
        404 for a missing route means for this endpoint (the error says it)."""
        if "model" not in body:  # (checked here too: saves a generator per request)
            yield from self.model_flow(body)
        req = self.prepare("POST", path, body, headers=headers, timeout=timeout, root=root)
        otel = state.otel
        try:
            if otel is None:  # (json_flow inlined: one generator fewer per request)
                return _parsed((yield from self._send_flow(req)), req, parse, what)
            result: T = yield from otel.traced_flow(self, req, body, self.json_flow(req, parse, what))
            return result
        except APIStatusError as e:
            if route_hint:
                route_missing(e, route_hint)
            raise

    def builder_flow(self, builder: _Sendable, parse: Callable[[dict[str, Any]], T], what: str) -> Flow[T]:
        """Send a builder's request (not streamed) and parse the answer (``request_flow`` with
        the builder's parts; a plain function: no generator of its own on the hot path)."""
        body, headers, timeout = builder._request_parts(False)
        return self.request_flow(builder._path, body, parse, what, headers=headers, timeout=timeout,
                                 root=builder._root, route_hint=getattr(builder, "_route_hint", None))

    def stream_flow(self, builder: _Sendable) -> Flow[tuple[Response, str]]:
        """Open a builder's stream (retried only until the server answers); return the open Response."""
        body, headers, timeout = builder._request_parts(True)
        yield from self.model_flow(body)
        req = self.prepare("POST", builder._path, body, stream=True, headers=headers, timeout=timeout,
                           root=builder._root)
        otel = state.otel
        if otel is None:
            response = yield from self._send_flow(req)
        else:
            response = yield from otel.traced_flow(self, req, body, self._send_flow(req), stream=True)
        return response, redact_url(req.url)

    def raw_flow(self, method: str, path: str, body: Any, *, stream: bool, headers: Mapping[str, str] | None,
                 timeout: Timeout | None, root: bool) -> Flow[tuple[Response, str]]:
        """``client.request()``: any route, with the retry policy, timings, hooks and typed errors;
        the Response (open when streamed) and its URL without credentials."""
        req = self.prepare(method, path, body, stream=stream, headers=headers, timeout=timeout, root=root)
        response = yield from self.send_flow(req)
        return response, redact_url(req.url)


def _parsed(response: Response, request: PreparedRequest, parse: Callable[[dict[str, Any]], T], what: str) -> T:
    """The answer's JSON object body parsed with ``parse``, with its timing and headers."""
    obj = load_json_object(response.body, what=what, url=request.url, status=response.status)
    result = parse(obj)
    attach(result, response)
    return result


def _close_quietly(response: Response) -> None:
    """Release an open stream's connection (its close may be a coroutine: closed unawaited is
    not possible, so an async close is dropped and the connection is closed when collected)."""
    try:
        r = response.close()
        close = getattr(r, "close", None)
        if close is not None:
            close()
    except Exception:
        pass


def _release_on_close(response: Response, replicas: ReplicaSet, replica: Replica) -> None:
    """Count a stream as outstanding on its replica until it is closed."""
    inner = response._close
    released = False

    def close() -> Any:
        nonlocal released
        if not released:
            released = True
            replicas.release(replica)
        return inner() if inner is not None else None

    response._close = close
