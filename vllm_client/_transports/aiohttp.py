"""``AiohttpTransport``: the async transport, one ``aiohttp.ClientSession`` per event loop.

Imported only when the first async client is made (it imports asyncio and aiohttp).
"""

from __future__ import annotations

import asyncio
import math
import os
import weakref
from collections.abc import AsyncIterator
from contextvars import ContextVar
from time import perf_counter
from types import TracebackType
from typing import Any

from .._connection import (
    MAX_HEADER_LINE,
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    ConnectionOptions,
    ConnectionPlan,
    redirect_target,
)
from .._exceptions import APIConnectionError, APITimeoutError, InvalidRequestError, VllmError
from .._urls import redact_url
from .base import DONE_GRACE, STALE_WINDOW, MapErrors, PreparedRequest, Response

__all__ = ["AiohttpTransport"]


class _ReadDeadlines:
    """The read timeouts of one event loop's requests, kept by a single timer.

    A timer per request (aiohttp's ``sock_read``, rescheduled on every piece received, or an
    ``asyncio.timeout``) costs a push and a pop on asyncio's timer heap, whose entries compare
    in Python: measured ~35k instructions per request, 5 % of a whole non-streamed request,
    and the same again per streamed chunk. Here a waiting task notes its deadline in a dict,
    and one timer, due at the earliest deadline, cancels the tasks whose deadline has passed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[Any, float] = {}  # waiting task -> loop time it must be done by
        self._expired: dict[Any, int] = {}  # tasks cancelled here, not yet told -> cancel count before
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def wait(self, seconds: float | None, url: str) -> _ReadWait:
        """``with deadlines.wait(read, url):`` around each wait for the server."""
        return _ReadWait(self, seconds, url)

    def _was_expired(self, task: Any) -> bool:
        """Whether this task's wait ended because its deadline passed (and forget it); False
        when someone else cancelled the task too, so that their cancellation goes on."""
        before = self._expired.pop(task, None)
        if before is None:
            return False
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: undo our cancel() in the count
        return uncancel is None or uncancel() <= before

    def _schedule(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._fire, at)
        self._timer_at = at

    def _fire(self, at: float) -> None:
        self._timer, self._timer_at = None, math.inf
        limit = max(at, self._loop.time())  # asyncio may run a timer a hair early
        nxt = math.inf
        for task, due in list(self._due.items()):
            if due <= limit:
                del self._due[task]
                cancelling = getattr(task, "cancelling", None)  # Python 3.11+
                self._expired[task] = cancelling() if cancelling is not None else 0
                task.cancel()
            elif due < nxt:
                nxt = due
        if nxt != math.inf:
            self._schedule(nxt)


class _ReadWait:
    """One request's (or stream's) waits for the server, each at most ``seconds`` long; a wait
    that runs out comes out as ``APITimeoutError`` (None: no limit)."""

    __slots__ = ("_deadlines", "_seconds", "_url", "_task")

    def __init__(self, deadlines: _ReadDeadlines, seconds: float | None, url: str) -> None:
        self._deadlines = deadlines
        self._seconds = seconds
        self._url = url
        self._task: Any = None

    def __enter__(self) -> None:
        seconds = self._seconds
        if seconds is not None:
            task = self._task = asyncio.current_task()
            if task is None:  # not in an asyncio task: nothing to cancel, no limit
                return
            deadlines = self._deadlines
            at = deadlines._loop.time() + seconds
            deadlines._due[task] = at
            if at < deadlines._timer_at:
                deadlines._schedule(at)

    def extend(self) -> None:
        """Progress (a slice of the body went out): the current wait starts again."""
        task = self._task
        if task is not None:
            deadlines = self._deadlines
            if task in deadlines._due:  # (a later deadline: the timer, due earlier, moves on to it)
                deadlines._due[task] = deadlines._loop.time() + self._seconds  # type: ignore[operator]

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        task = self._task
        if task is None:
            return
        deadlines = self._deadlines
        deadlines._due.pop(task, None)
        if deadlines._expired and deadlines._was_expired(task) and et is asyncio.CancelledError:
            raise APITimeoutError(
                f"read timed out from {redact_url(self._url)}: no answer for {self._seconds:g} s", url=self._url
            ) from None


# Whether the current task's latest request went out on a pooled (reused) connection: set by
# the connector below, read when the request fails before the answer.
_REUSED: ContextVar[bool] = ContextVar("vllm_client_reused", default=False)


def _connector_class(aiohttp: Any) -> Any:
    """``aiohttp.TCPConnector`` noting, per request, whether its connection came from the pool
    and how long it waited for one (``waited``).

    The wait is timed around ``_wait_for_available_connection``, which aiohttp (3.11 and
    later) calls only when ``limit`` connections are busy, and noted in ``waited`` (task ->
    seconds) for ``asend`` to take: a request that does not wait pays one look at an empty
    dict (a context variable set to 0.0 on every request measured 4k instructions, 0.5 % of a
    request). An ``aiohttp.TraceConfig`` with ``on_connection_queued_start/end`` would tell the
    same through the public API, but a session with a trace config sends every trace signal of
    every request: measured 83k instructions a request more, 11 % of a whole request
    (``benchmarks/instructions.py``, "async request vllm_client"). ``waited`` is None on an
    aiohttp without that method (``timing.queued`` is then None).
    """
    base = aiohttp.TCPConnector
    timed = hasattr(base, "_wait_for_available_connection")

    class _Connector(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._used: weakref.WeakSet[Any] = weakref.WeakSet()  # connections that carried a request
            self.waited: dict[Any, float] | None = {} if timed else None

        if timed:
            async def _wait_for_available_connection(self, key: Any, traces: Any) -> None:
                start = perf_counter()
                try:
                    await super()._wait_for_available_connection(key, traces)
                finally:
                    self.waited[asyncio.current_task()] = perf_counter() - start  # type: ignore[index]

        async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
            conn = await super().connect(req, traces, timeout)
            proto = conn.protocol
            used = self._used
            if proto in used:
                _REUSED.set(True)
            else:
                _REUSED.set(False)
                used.add(proto)
            return conn

    return _Connector


_CONTEXTS: dict[tuple[Any, ...], Any] = {}  # one SSLContext per (files, their mtimes, verify)


def _ssl_setting(plan: ConnectionPlan) -> Any:
    """aiohttp's ``ssl=``: True (its default context), False (no verification), or an
    ``ssl.SSLContext`` with the plan's CA bundle and client certificate.

    Loading a CA bundle costs ~30 ms of CPU (a system bundle, e.g. from ``SSL_CERT_FILE``),
    so a context is made once per process for the same files, unchanged on disk, and shared
    by every client (aiohttp caches its own default context the same way)."""
    if plan.cert_file is None and plan.ca_file is None and plan.ca_dir is None:
        return plan.verify
    files = (plan.ca_file, plan.ca_dir, plan.cert_file, plan.key_file)
    key = (*files, *(_mtime(f) for f in files), plan.verify)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = _ssl_context(plan)
    return ctx


def _mtime(path: str | None) -> int | None:
    import os

    try:
        return None if path is None else os.stat(path).st_mtime_ns
    except OSError:
        return None


def _ssl_context(plan: ConnectionPlan) -> Any:
    import ssl

    try:
        ctx = ssl.create_default_context(cafile=plan.ca_file, capath=plan.ca_dir)
    except (ssl.SSLError, OSError) as e:
        raise InvalidRequestError(f"{plan.ca_source or 'verify'}: could not load the CA bundle: {e}") from None
    if not plan.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if plan.cert_file is not None:
        try:
            ctx.load_cert_chain(plan.cert_file, plan.key_file)
        except (ssl.SSLError, OSError) as e:
            raise InvalidRequestError(f"cert: could not load the client certificate and key: {e}") from None
    return ctx


class AiohttpTransport:
    """The async transport: one ``aiohttp.ClientSession``, created in the loop that first uses it.

    ``AiohttpTransport(limit=256, verify=True, cert=None, proxy=None, trust_env=True)``: at most
    ``limit`` connections at once (0: no limit); a request beyond them waits for a free one
    (``timing.queued``; the wait counts in its read timeout). The connection options mean what
    they mean on the clients (``ConnectionOptions``).
    """

    def __init__(self, *, limit: int = 256, verify: Any = True, cert: Any = None, proxy: str | None = None,
                 trust_env: bool = True) -> None:
        import aiohttp

        self._plan = plan = ConnectionOptions(verify, cert, proxy, trust_env).plan()
        self._proxied = bool(plan.proxies)
        self._ssl = _ssl_setting(plan)
        self._aiohttp = aiohttp
        self._errors = ((asyncio.TimeoutError,), (aiohttp.ClientError, OSError))  # for MapErrors
        # closed by the server before an answer (not a failure to connect)
        self._unanswered = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
        self._connector = _connector_class(aiohttp)
        self._limit = limit
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: _ReadDeadlines | None = None
        self._timeouts: dict[Any, Any] = {}  # Timeout -> aiohttp.ClientTimeout
        self._waited: dict[Any, float] = {}  # the connector's: task -> seconds it waited for a connection
        self._no_wait: float | None = None  # timing.queued of a request that did not wait (None: unknown)
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()  # open streams' responses, woken by aclose()
        self._closed = False
        _TRANSPORTS.add(self)

    def _forget_session(self) -> None:
        """After fork(), in the child: the session, its loop and its connections are the
        parent's; the next request makes a new session (the old one is kept, unclosed: closing
        it would touch the parent's connections)."""
        if self._session is not None:
            _FORKED.append(self._session)
        self._session = self._loop = self._deadlines = None
        self._open = weakref.WeakSet()

    def _get_session(self) -> tuple[Any, _ReadDeadlines]:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed:
            if self._closed:
                raise _closed_error()
            aiohttp = self._aiohttp
            self._session = aiohttp.ClientSession(
                connector=self._connector(limit=self._limit, limit_per_host=0, ssl=self._ssl),
                # The environment (proxies, CAs) is read once, by the plan: the same rules as
                # the sync transport (and no .netrc look-up on every request).
                trust_env=False,
                auto_decompress=True,
                max_line_size=MAX_HEADER_LINE,
                max_field_size=MAX_HEADER_LINE,
            )
            waited = self._session.connector.waited
            self._waited, self._no_wait = (waited, 0.0) if waited is not None else ({}, None)
            self._loop = loop
            self._deadlines = _ReadDeadlines(loop)
        elif self._loop is not loop:
            raise VllmError(
                "this AsyncVllmClient was first used in another event loop; make one client per event loop "
                "(e.g. create it inside the coroutine that asyncio.run() runs)"
            )
        return self._session, self._deadlines  # type: ignore[return-value]

    async def asend(self, request: PreparedRequest) -> Response:
        """Send; for a successful stream, return an open Response to iterate."""
        aiohttp = self._aiohttp
        session, deadlines = self._get_session()
        t = request.timeout
        timeout = self._timeouts.get(t)
        if timeout is None:
            if len(self._timeouts) >= 64:  # many per-request timeouts: keep the cache small
                self._timeouts.clear()
            # aiohttp keeps the connect and total limits; the read limit is ours (_ReadDeadlines).
            # Not aiohttp's ``connect`` either: that one includes waiting for a free connection
            # of the pool, which a batch bigger than the pool does for longer than any connect.
            timeout = self._timeouts[t] = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect)
        url = request.url
        wait = deadlines.wait(t.read, url)
        data: Any = request.body
        headers = request.headers
        if data is not None and len(data) > _SLICE_FROM and t.read is not None:
            # a big body goes slice by slice, each with the whole read timeout (the longest time
            # without progress, as for reading): a slow uplink is not cut while it moves
            headers = {**headers, "Content-Length": str(len(data))}
            data = _sliced(data, wait)
        start = perf_counter()
        try:
            with MapErrors(url, "connect", *self._errors), wait:
                resp = await session.request(
                    request.method, url, data=data, headers=headers, timeout=timeout,
                    allow_redirects=False, proxy=self._plan.proxy_for(url) if self._proxied else None,
                )
                if resp.status in REDIRECT_STATUSES:
                    resp, url = await self._follow(session, resp, request, timeout)
        except APIConnectionError as e:
            if self._closed:
                raise _closed_error(url) from None
            cause = e.__context__  # (MapErrors raises from None: the cause stays the context)
            # (the time since the request started: its writing included, so a long upload is
            # never taken for an instant failure)
            if (_REUSED.get() and not isinstance(e, APITimeoutError) and isinstance(cause, self._unanswered)
                    and not isinstance(cause, self._aiohttp.ClientConnectorError)
                    and perf_counter() - start <= STALE_WINDOW):
                e.stale_connection = True  # the server cannot have seen it: resent once at once
            raise
        finally:
            waited = self._waited
            queued = waited.pop(asyncio.current_task(), 0.0) if waited else self._no_wait
        received = perf_counter()
        headers = resp.headers
        if request.stream and resp.status < 400:
            opened = self._open
            opened.add(resp)

            def close() -> None:
                opened.discard(resp)
                if resp.content.is_eof():
                    resp.release()
                else:
                    resp.close()

            async def finish() -> None:
                opened.discard(resp)
                await _finish(resp, deadlines, url)

            return Response(resp.status, headers, url=url, achunks=self._iter(resp, url, wait), close=close,
                            received_at=received, queued=queued, finish=finish)
        # The read timeout is the longest gap between two pieces of the body, as for a stream
        # (and the sync transport): a body trickled slowly, but never silent that long, is read.
        content = resp.content
        pieces = []
        try:
            with MapErrors(url, "read", *self._errors):
                while True:
                    with wait:
                        piece = await content.readany()
                    if not piece:
                        break
                    pieces.append(piece)
        except APIConnectionError:
            if self._closed:
                raise _closed_error(url) from None
            raise
        finally:
            resp.release()
        return Response(resp.status, headers, pieces[0] if len(pieces) == 1 else b"".join(pieces), url=url,
                        received_at=received, queued=queued)

    async def _follow(self, session: Any, resp: Any, request: PreparedRequest, timeout: Any) -> tuple[Any, str]:
        """Follow redirects (``redirect_target`` decides each step); the last answer and its URL."""
        method, url, headers, body = request.method, request.url, request.headers, request.body
        for _ in range(MAX_REDIRECTS):
            step = redirect_target(method, url, headers, body, resp.status, resp.headers.get("Location"))
            if step is None:
                return resp, url
            resp.release()
            method, url, headers, body = step
            resp = await session.request(method, url, data=body, headers=headers, timeout=timeout,
                                         allow_redirects=False,
                                         proxy=self._plan.proxy_for(url) if self._proxied else None)
            if resp.status not in REDIRECT_STATUSES:
                return resp, url
        resp.release()
        raise APIConnectionError(f"more than {MAX_REDIRECTS} redirects from {redact_url(request.url)}",
                                 url=request.url)

    async def _iter(self, resp: Any, url: str, wait: _ReadWait) -> AsyncIterator[bytes]:
        # Whatever has arrived, but at most 64 KiB at a time: when the client falls behind,
        # aiohttp has hundreds of KiB buffered, and decoding that in one go (thousands of
        # events built before the first is used) runs out of CPU cache: measured 1.2x the
        # bare loop's CPU per event this way against 1.4x with iter_any().
        read = resp.content.read
        with MapErrors(url, "read", *self._errors):
            while True:
                with wait:
                    piece = await read(65536)
                if not piece:
                    return
                yield piece

    def _abandon(self) -> bool:
        """Close the session's connections without awaiting (its client was collected unclosed),
        so that aiohttp does not warn about it too; True when a session was open."""
        session = self._session
        if session is None or session.closed:
            return False
        self._session = None
        connector, session._connector = session._connector, None  # (aiohttp's __del__: closed)
        try:
            connector._close()
        except Exception:
            pass
        return True

    async def aclose(self) -> None:
        """Close the session and its connections; wake every stream still reading (it ends with
        a ``StreamError`` saying the client was closed). A request after this raises ``VllmError``."""
        self._closed = True
        for resp in list(self._open):
            url = redact_url(str(resp.url))
            resp.content.set_exception(APIConnectionError(f"client closed while reading from {url}"))
        self._open.clear()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


_SLICE_FROM = 1 << 20  # bodies bigger than this are sent in slices (see asend)
_SLICE = 1 << 18


async def _sliced(body: bytes, wait: _ReadWait) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for i in range(0, len(body), _SLICE):
        yield view[i:i + _SLICE]  # type: ignore[misc]  # (aiohttp writes any bytes-like object)
        wait.extend()  # (it went out: aiohttp writes each slice before asking for the next)


async def _finish(resp: Any, deadlines: _ReadDeadlines, url: str) -> None:
    """After ``[DONE]``: read the end of the body if it comes within ``DONE_GRACE`` (then the
    connection goes back to the pool), else close the connection."""
    content = resp.content
    try:
        left = 65536
        with deadlines.wait(DONE_GRACE, url):
            while not content.at_eof() and left > 0:
                data = await content.readany()
                if not data:
                    break
                left -= len(data)
    except Exception:
        pass
    if content.at_eof():
        resp.release()
    else:
        resp.close()


def _closed_error(url: str | None = None) -> VllmError:
    e = VllmError("client closed: this client's connections are closed; make a new client")
    e.url = url
    return e


_TRANSPORTS: weakref.WeakSet[AiohttpTransport] = weakref.WeakSet()
_FORKED: list[Any] = []  # sessions inherited from the parent process: never used, never closed


def _after_fork() -> None:
    for t in list(_TRANSPORTS):
        t._forget_session()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
