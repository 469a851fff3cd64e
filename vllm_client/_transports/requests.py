"""``RequestsTransport``: the sync transport, one ``requests.Session`` (imported on first use)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from time import perf_counter
from typing import Any

from .._connection import MAX_REDIRECTS, REDIRECT_STATUSES, ConnectionOptions, redirect_target
from .._exceptions import APIConnectionError, APITimeoutError, InvalidRequestError
from .._urls import redact_url
from .base import MapErrors, PreparedRequest, Response

__all__ = ["RequestsTransport"]


# This thread's latest request: .reused, whether it took a pooled connection; with
# pool_block=True, .wait, the longest it may wait for a free connection, and .queued, how long it did.
_local = threading.local()


class _TimedQueue(queue.LifoQueue):  # type: ignore[type-arg]
    """A blocking pool's queue of connections: times a ``get`` that has to wait (until another
    thread puts its connection back), for ``timing.queued``, and bounds it by the request's
    read timeout (urllib3's own bound, ``pool_timeout``, is not set by requests: no limit)."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return super().get(False)
        except queue.Empty:
            if not block:
                raise
        start = perf_counter()
        try:
            return super().get(True, getattr(_local, "wait", None) if timeout is None else timeout)
        finally:
            _local.queued = perf_counter() - start


def _pool_classes(block: bool) -> dict[str, Any]:
    """urllib3 pools noting, per request, whether its connection came from the pool alive
    (and, when they block, how long the request waited for one)."""
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Reuse:
        if block:
            QueueCls = _TimedQueue

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)  # type: ignore[misc]
            _local.reused = getattr(conn, "sock", None) is not None  # (a dropped one is closed by now)
            return conn

    class _HTTPPool(_Reuse, HTTPConnectionPool):
        pass

    class _HTTPSPool(_Reuse, HTTPSConnectionPool):
        pass

    return {"http": _HTTPPool, "https": _HTTPSPool}


def _closed_unanswered(e: BaseException | None) -> bool:
    """Whether an exception (or one it wraps) says the server closed the connection without
    answering (http.client's RemoteDisconnected, a reset, a broken pipe)."""
    stack = [e]
    for _ in range(12):
        if not stack:
            break
        x = stack.pop()
        if x is None:
            continue
        if isinstance(x, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return True  # (http.client.RemoteDisconnected is a ConnectionResetError)
        stack.extend(a for a in x.args if isinstance(a, BaseException))
        stack.append(x.__context__)
    return False


class RequestsTransport:
    """The sync transport: one ``requests.Session`` (a keep-alive connection pool).

    ``RequestsTransport(pool_maxsize=64, pool_block=False, session=None, verify=True, cert=None,
    proxy=None, trust_env=True)``: ``pool_maxsize`` connections are kept per host; with
    ``pool_block=True`` no more are opened, and a thread beyond them waits for a free one
    (``timing.queued``; the wait counts in its read timeout); without, it opens another
    (``timing.queued`` is 0.0). The connection options mean what they mean on the clients
    (``ConnectionOptions``). Pass your own session for custom adapters (``timing.queued`` is
    then None; its own verify/cert/proxies/trust_env apply, and the connection options must be left alone).
    """

    def __init__(self, *, pool_maxsize: int = 64, pool_block: bool = False, session: Any = None,
                 verify: Any = True, cert: Any = None, proxy: str | None = None, trust_env: bool = True) -> None:
        import requests
        import urllib3.exceptions as ue
        from requests.adapters import HTTPAdapter

        options = ConnectionOptions(verify, cert, proxy, trust_env)
        if session is not None and not options.is_default:
            raise InvalidRequestError("RequestsTransport(session=...): set verify/cert/proxies on your session, "
                                      "not as verify=/cert=/proxy=/trust_env=")
        self._plan = plan = options.plan() if session is None else None
        # Per request: the proxy for the URL (our session), or the user's session.verify given
        # explicitly (else requests lets REQUESTS_CA_BUNDLE override it).
        self._proxied = plan is not None and bool(plan.proxies)
        self._extra: dict[str, Any] = {}
        # timing.queued: measured (a blocking pool), 0.0 (a pool that never waits), None (not our pool)
        self._block = pool_block and session is None
        self._queued: float | None = None if session is not None else 0.0
        if session is None:
            session = requests.Session()
            pools = _pool_classes(pool_block)

            class _Adapter(HTTPAdapter):
                def proxy_manager_for(self, proxy: Any, **kw: Any) -> Any:
                    manager = super().proxy_manager_for(proxy, **kw)
                    manager.pool_classes_by_scheme = pools  # (a proxy's pools note reuse too)
                    return manager

            adapter = _Adapter(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=0, pool_block=pool_block)
            # (its own dict: not the module's)
            adapter.poolmanager.pool_classes_by_scheme = pools
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # The environment is read once, by the plan (the same rules as the async transport)
            session.trust_env = False
            session.verify = plan.requests_verify  # type: ignore[union-attr]
            session.cert = plan.requests_cert  # type: ignore[union-attr]
        else:
            self._extra = {"verify": session.verify}
        self.session = session
        rq = requests.exceptions
        # The library's exceptions, as MapErrors maps them: while connecting (a blocking pool
        # with no free connection within the read timeout: EmptyPoolError), and while reading.
        self._connect_errors = ((rq.Timeout, ue.EmptyPoolError), (rq.RequestException,))
        self._read_errors = ((ue.ReadTimeoutError, rq.Timeout, TimeoutError),
                             (ue.HTTPError, rq.RequestException, OSError))

    def send(self, request: PreparedRequest) -> Response:
        """Send; for a successful stream, return an open Response to iterate."""
        t = request.timeout
        deadline = time.monotonic() + t.total if t.total is not None else None
        read = t.read
        if t.total is not None:
            read = t.total if read is None else min(read, t.total)
        connect = t.connect if t.total is None or t.connect is None else min(t.connect, t.total)
        _local.reused = False
        block = self._block
        if block:
            _local.queued = 0.0
            _local.wait = read
        try:
            with MapErrors(request.url, "connect", *self._connect_errors):
                r = self._request(request.method, request.url, request.body, request.headers, (connect, read))
        except APIConnectionError as e:
            # (MapErrors raises from None: the library's exception stays the context)
            if _local.reused and not isinstance(e, APITimeoutError) and _closed_unanswered(e.__context__):
                e.stale_connection = True  # a pooled connection the server had closed: resent once
            raise
        if r.status_code in REDIRECT_STATUSES:
            r = self._follow(r, request, (connect, read))
        received = perf_counter()
        queued = _local.queued if block else self._queued
        headers = r.headers
        if request.stream and r.status_code < 400:
            return Response(
                r.status_code, headers, url=request.url,
                chunks=self._iter(r, request.url, deadline), close=r.close, received_at=received, queued=queued,
            )
        try:
            body = b"".join(self._iter(r, request.url, deadline))
        finally:
            r.close()
        return Response(r.status_code, headers, body, url=request.url, received_at=received, queued=queued)

    def _request(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: Any) -> Any:
        extra = self._extra
        if self._proxied:
            proxy = self._plan.proxy_for(url)  # type: ignore[union-attr]
            if proxy is not None:
                extra = {"proxies": {"http": proxy, "https": proxy}}
        return self.session.request(method, url, data=body, headers=headers, timeout=timeout, stream=True,
                                    allow_redirects=False, **extra)

    def _follow(self, r: Any, request: PreparedRequest, timeout: Any) -> Any:
        """Follow redirects (``redirect_target`` decides each step); the last answer."""
        method, url, headers, body = request.method, request.url, request.headers, request.body
        for _ in range(MAX_REDIRECTS):
            step = redirect_target(method, url, headers, body, r.status_code, r.headers.get("Location"))
            if step is None:
                return r
            r.close()
            method, url, headers, body = step
            with MapErrors(url, "connect", *self._connect_errors):
                r = self._request(method, url, body, headers, timeout)
            if r.status_code not in REDIRECT_STATUSES:
                return r
        r.close()
        raise APIConnectionError(f"more than {MAX_REDIRECTS} redirects from {redact_url(request.url)}",
                                 url=request.url)

    def _iter(self, r: Any, url: str, deadline: float | None) -> Iterator[bytes]:
        raw = r.raw
        with MapErrors(url, "read", *self._read_errors):
            if raw.chunked and raw.supports_chunked_reads():
                source: Iterable[bytes] = raw.read_chunked(None, decode_content=True)
            else:
                source = _read1_loop(raw)
            if deadline is None:
                yield from source
            else:
                for piece in source:
                    yield piece
                    if time.monotonic() > deadline:
                        raise APITimeoutError(f"total timeout exceeded reading from {redact_url(url)}", url=url)

    def close(self) -> None:
        """Close every pooled connection."""
        self.session.close()


def _read1_loop(raw: Any) -> Iterator[bytes]:
    read1 = getattr(raw, "read1", None)
    while True:
        data = read1(65536) if read1 is not None else raw.read(65536)
        if not data:
            return
        yield data
