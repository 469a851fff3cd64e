"""``RequestsTransport``: the sync transport, one ``requests.Session`` (imported on first use).

requests sends the request and reads the status line and headers; the body is read here,
straight from ``http.client`` (``read1``: whatever has arrived, never waiting for a whole HTTP
chunk) and decoded here (``Content-Encoding``, whatever the framing). Every request in flight
is a ``_Flight``: the shared ``_Watchdog`` thread ends it at its ``total`` deadline, and
``close()`` ends them all, by shutting their socket down (which wakes a blocked read).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from .._connection import MAX_REDIRECTS, REDIRECT_STATUSES, ConnectionOptions, redirect_target
from .._exceptions import (
    APIConnectionError,
    APITimeoutError,
    InvalidRequestError,
    ResponseDecodeError,
    VllmError,
)
from .._urls import redact_url
from .base import DONE_GRACE, STALE_WINDOW, MapErrors, PreparedRequest, Response
from .decode import accept_encoding, decoder

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
            flight = getattr(_local, "flight", None)
            if flight is not None:
                flight.conn = conn
            return conn

    class _HTTPPool(_Reuse, HTTPConnectionPool):
        ConnectionCls = _connection_class(HTTPConnectionPool.ConnectionCls)

    class _HTTPSPool(_Reuse, HTTPSConnectionPool):
        ConnectionCls = _connection_class(HTTPSConnectionPool.ConnectionCls)

    return {"http": _HTTPPool, "https": _HTTPSPool}


_SLICE = 1 << 18  # a body is sent 256 KiB at a time: each slice has the whole write timeout


def _connection_class(base: Any) -> Any:
    """urllib3's connection class, sending the request under the write timeout (the request's
    read timeout, urllib3 would use the connect one), a big body slice by slice (the timeout
    is the longest time without progress, as for reading), and noting how sending ended
    (``_local.sent_at``, ``_local.write_failed``) for the resend-once rule."""

    class _Connection(base):  # type: ignore[misc]
        def connect(self) -> None:
            super().connect()
            write = getattr(_local, "write", _UNSET)
            if write is not _UNSET and self.sock is not None:
                self.sock.settimeout(write)

        def request(self, *args: Any, **kwargs: Any) -> None:
            write = getattr(_local, "write", _UNSET)
            if write is not _UNSET and self.sock is not None:
                self.timeout = write  # (urllib3 sets the socket's timeout from it)
            try:
                super().request(*args, **kwargs)
            except OSError as e:
                _local.write_failed = True  # (urllib3 goes on to read an answer the server may have sent)
                if isinstance(e, TimeoutError):
                    _local.write_timed_out = True
                raise
            _local.sent_at = perf_counter()

        def send(self, data: Any) -> None:
            if data.__class__ is bytes and len(data) > _SLICE:
                view = memoryview(data)
                for i in range(0, len(data), _SLICE):
                    super().send(view[i:i + _SLICE])
                return
            super().send(data)

    return _Connection


_UNSET: Any = object()


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


class _Flight:
    """One request in flight, from ``send`` until its body is read or its stream closed: the
    connection it is on (once known) and why it was cut short (``"total"``, ``"closed"``)."""

    __slots__ = ("conn", "why", "done", "timed", "__weakref__")

    def __init__(self) -> None:
        self.conn: Any = None
        self.why: str | None = None
        self.done = False
        self.timed = False  # it has a total deadline, kept by the watchdog

    def abort(self, why: str) -> bool:
        """Cut it short: shut its socket down (a read or write blocked on it returns at once).
        False when it has no socket yet (still connecting: try again soon)."""
        if self.done:
            return True
        if self.why is None:
            self.why = why
        sock = getattr(self.conn, "sock", None)
        if sock is None:
            return False
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True


class _Watchdog:
    """The ``total`` deadlines of every sync request, kept by one daemon thread (requests has
    no total deadline; a timer thread per request would cost a thread start each). A flight
    still running at its deadline is aborted. Only requests with a ``total`` pay for it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Flight]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._finished = 0  # entries of flights already done, still in the heap

    def add(self, at: float, flight: _Flight) -> None:
        with self._cond:
            heap = self._heap
            if self._finished > 256 and self._finished * 2 > len(heap):  # drop the dead entries
                heap[:] = [e for e in heap if not e[2].done]
                heapq.heapify(heap)
                self._finished = 0
            heapq.heappush(heap, (at, next(self._seq), flight))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vllm_client-deadlines", daemon=True)
                self._thread.start()
            elif heap[0][2] is flight:
                self._cond.notify()

    def end(self, flight: _Flight) -> None:
        """The flight is over: its deadline no longer applies (and it cannot be aborted after)."""
        with self._cond:
            if not flight.done:
                flight.done = True
                self._finished += 1

    def _run(self) -> None:
        cond, heap = self._cond, self._heap
        with cond:
            while True:
                if not heap:
                    cond.wait()
                    continue
                at, _, flight = heap[0]
                delay = at - time.monotonic()
                if delay > 0:
                    cond.wait(delay)
                    continue
                heapq.heappop(heap)
                if flight.done:
                    self._finished -= 1
                elif not flight.abort("total"):  # not connected yet: look again soon
                    heapq.heappush(heap, (time.monotonic() + 0.02, next(self._seq), flight))


_WATCHDOG = _Watchdog()
_TRANSPORTS: weakref.WeakSet[RequestsTransport] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: the parent's connections and timer thread are not ours."""
    global _WATCHDOG
    _WATCHDOG = _Watchdog()
    for t in list(_TRANSPORTS):
        t._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


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
        import http.client

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
            session.headers["Accept-Encoding"] = accept_encoding()  # what _iter decodes
        else:
            self._extra = {"verify": session.verify}
        self.session = session
        rq = requests.exceptions
        # The library's exceptions, as MapErrors maps them: while connecting (a blocking pool
        # with no free connection within the read timeout: EmptyPoolError), and while reading.
        self._connect_errors = ((rq.Timeout, ue.EmptyPoolError), (rq.RequestException,))
        self._read_errors = ((ue.ReadTimeoutError, rq.Timeout, TimeoutError),
                             (ue.HTTPError, rq.RequestException, OSError, http.client.HTTPException))
        # for close(): requests in flight, and open streams (weakly: a stream dropped unclosed
        # must not keep its socket)
        self._flights: set[_Flight] = set()
        self._streams: weakref.WeakSet[_Flight] = weakref.WeakSet()
        self._closed = False
        _TRANSPORTS.add(self)

    def send(self, request: PreparedRequest) -> Response:
        """Send; for a successful stream, return an open Response to iterate."""
        if self._closed:
            raise _closed_error(request.url)
        t = request.timeout
        total = t.total
        read = t.read
        if total is not None:
            read = total if read is None else min(read, total)
        connect = t.connect if total is None or t.connect is None else min(t.connect, total)
        local = _local
        local.reused = False
        local.write_failed = local.write_timed_out = False
        local.sent_at = math.inf
        local.write = read
        block = self._block
        if block:
            local.queued = 0.0
            local.wait = read
        flight = local.flight = _Flight()
        flights = self._flights
        flights.add(flight)
        if total is not None:
            flight.timed = True
            _WATCHDOG.add(time.monotonic() + total, flight)
        try:
            try:
                with MapErrors(request.url, "connect", *self._connect_errors):
                    r = self._request(request.method, request.url, request.body, request.headers, (connect, read))
                if r.status_code in REDIRECT_STATUSES:
                    r = self._follow(r, request, (connect, read))
            except APIConnectionError as e:
                if flight.why is not None:
                    raise (_closed_error(request.url) if flight.why == "closed" else _aborted(flight, request)) \
                        from None
                if local.write_timed_out:
                    raise APITimeoutError(f"timed out sending the request to {redact_url(request.url)} "
                                          f"(nothing sent for {read:g} s)", url=request.url) from None
                # (MapErrors raises from None: the library's exception stays the context)
                if (local.reused and not isinstance(e, APITimeoutError) and _closed_unanswered(e.__context__)
                        and (local.write_failed or perf_counter() - local.sent_at <= STALE_WINDOW)):
                    e.stale_connection = True  # the server cannot have seen it: resent once at once
                raise
            finally:
                local.flight = None
            received = perf_counter()
            if flight.conn is None:  # (a session of the user's: its connection, known now)
                flight.conn = getattr(r.raw, "_connection", None)
            if flight.why is not None:
                r.close()
                raise _closed_error(request.url) if flight.why == "closed" else _aborted(flight, request)
        except BaseException:
            self._end(flight)
            raise
        queued = local.queued if block else self._queued
        headers = r.headers
        if request.stream and r.status_code < 400:
            self._streams.add(flight)
            self._flights.discard(flight)
            return Response(
                r.status_code, headers, url=request.url,
                chunks=self._iter(r, request, flight), received_at=received, queued=queued,
                close=lambda: self._close_response(r, flight),
                finish=lambda: self._finish_response(r, flight),
            )
        try:
            body = b"".join(self._iter(r, request, flight))
        except APIConnectionError:
            if flight.why == "closed":
                raise _closed_error(request.url) from None
            raise
        finally:
            self._close_response(r, flight)
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

    def _end(self, flight: _Flight) -> None:
        """The flight is over: no deadline or close() touches its connection any more (a
        stream's entry in ``_streams`` goes with it)."""
        self._flights.discard(flight)
        if flight.timed:
            _WATCHDOG.end(flight)  # (under the watchdog's lock: never aborted after this)
        else:
            flight.done = True

    def _close_response(self, r: Any, flight: _Flight) -> None:
        self._end(flight)
        r.close()  # (after the whole body: its connection is back in the pool already)

    def _finish_response(self, r: Any, flight: _Flight) -> None:
        """The caller has all it needs ([DONE]): read the end of the body if it comes within
        ``DONE_GRACE`` and keep the connection, else close it."""
        self._end(flight)
        raw = r.raw
        fp = getattr(raw, "_fp", None)
        sock = getattr(flight.conn, "sock", None)
        try:
            if fp is not None and sock is not None and not fp.isclosed() and fp.length != 0:
                until = time.monotonic() + DONE_GRACE  # (for it all: a server may keep sending)
                left = 65536
                while left > 0:
                    wait = until - time.monotonic()
                    if wait <= 0:
                        break
                    sock.settimeout(wait)
                    data = fp.read1(left)
                    if not data:
                        break
                    left -= len(data)
            if fp is not None and (fp.isclosed() or fp.length == 0):
                fp.close()
                raw.release_conn()
        except Exception:
            pass
        r.close()

    def _iter(self, r: Any, request: PreparedRequest, flight: _Flight) -> Iterator[bytes]:
        """The body as it arrives (whatever each read returns, up to 64 KiB), decoded."""
        raw = r.raw
        url = request.url
        fp = getattr(raw, "_fp", None) or raw  # http.client's response under urllib3's
        read1 = fp.read1
        coding = r.headers.get("content-encoding")
        try:
            dec = decoder(coding) if coding else None
        except LookupError as e:
            raise ResponseDecodeError(f"the answer from {redact_url(url)} has Content-Encoding {e}, which this "
                                      "client cannot decode", status_code=r.status_code, url=url) from None
        try:
            with MapErrors(url, "read", *self._read_errors):
                while True:
                    data = read1(65536)
                    if not data:
                        break
                    if dec is not None:
                        data = _decoded(dec, data, r, url)
                        if not data:
                            continue
                    yield data
                if flight.why is not None:  # (a shut-down socket reads as the end)
                    raise _aborted(flight, request)
                left = getattr(fp, "length", None)
                if left:
                    raise APIConnectionError(f"connection to {redact_url(url)} broke: the body ended {left} bytes "
                                             "short of its Content-Length", url=url)
                if dec is not None:
                    data = _decoded(dec, None, r, url)
                    if data:
                        yield data
        except APIConnectionError:
            if flight.why is not None:
                raise _aborted(flight, request) from None
            raise
        isclosed = getattr(fp, "isclosed", None)
        if isclosed is not None and (isclosed() or getattr(fp, "length", None) == 0):  # (read1 leaves it open at 0)
            fp.close()
            self._end(flight)  # (first: the watchdog must not shut a pooled connection down)
            raw.release_conn()  # read to the end: the connection goes back to the pool

    def _forget_connections(self) -> None:
        """After fork(), in the child: drop the pooled connections unclosed (they are the
        parent's too: closing a TLS one would end the parent's session)."""
        self._flights = set()
        self._streams = weakref.WeakSet()
        for adapter in list(getattr(self.session, "adapters", {}).values()):
            for manager in [getattr(adapter, "poolmanager", None), *getattr(adapter, "proxy_manager", {}).values()]:
                pools = getattr(manager, "pools", None)
                container = getattr(pools, "_container", None)
                if container is not None:
                    container.clear()

    def close(self) -> None:
        """Close every pooled connection; wake every request and stream still reading (each ends
        with a ``VllmError`` saying the client was closed)."""
        self._closed = True
        for flight in [*self._flights, *self._streams]:
            flight.abort("closed")
        self.session.close()


def _decoded(dec: Any, data: bytes | None, r: Any, url: str) -> bytes:
    try:
        return dec.decompress(data) if data is not None else dec.flush()  # type: ignore[no-any-return]
    except Exception as e:
        raise ResponseDecodeError(f"could not decode the {r.headers.get('content-encoding')} body from "
                                  f"{redact_url(url)}: {type(e).__name__}", status_code=r.status_code,
                                  url=url) from None


def _closed_error(url: str) -> VllmError:
    e = VllmError("client closed: this client's connections are closed; make a new client")
    e.url = url
    return e


def _aborted(flight: _Flight, request: PreparedRequest) -> VllmError:
    """The error of a flight cut short: its total timeout, or the client closed."""
    url = request.url
    if flight.why == "closed":
        return APIConnectionError(f"client closed while talking to {redact_url(url)}", url=url)
    return APITimeoutError(f"total timeout of {request.timeout.total:g} s exceeded talking to {redact_url(url)}",
                           url=url)
