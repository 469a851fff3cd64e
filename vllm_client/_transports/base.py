"""What moves between the pure core and the I/O drivers: requests, responses, the two
transport Protocols, and the one rule that turns an HTTP library's exception into the SDK's.

A transport takes a ``PreparedRequest`` and returns a ``Response``: status,
headers, and either the whole body (``body``) or, for a successful streamed
request, a byte iterator. It maps its library's exceptions to
``APIConnectionError`` / ``APITimeoutError`` (with ``MapErrors``) and does
nothing else: no retries, no parsing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

from .._config import Timeout
from .._connection import MAX_HEADER_LINE, failure_reason, headers_too_large, tls_refused
from .._exceptions import APIConnectionError, APITimeoutError, ResponseDecodeError, TLSError
from .._urls import redact_url

__all__ = ["PreparedRequest", "Response", "SyncTransport", "AsyncTransport", "MapErrors"]

# The resend-once rule: a request on a reused keep-alive connection that failed before any
# byte of an answer is resent at once only if it failed while being written, or within this
# many seconds after it was written (the server had closed the idle connection as the request
# went out: its close reaches us within a network delay). Later, the server may have started
# on it: it is not resent (only retried as max_retries says).
STALE_WINDOW = 0.25

# After a stream's ``[DONE]``, how long the end of the body is waited for (normally it is
# already here): then the connection goes back to the pool; a server that keeps it open, or
# keeps sending, has it closed.
DONE_GRACE = 0.1


@dataclass(slots=True)
class PreparedRequest:
    """One HTTP request, fully built: the body is already JSON bytes."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: Timeout
    stream: bool = False
    path: str = ""  # the API path (``/chat/completions``), to re-aim the request at another replica
    root: bool = False  # the path is at the server root (``/health``), not under the base URL
    trace: Any = None  # the OpenTelemetry span recorder of this request (when instrumented)

    def __repr__(self) -> str:  # never show headers: they hold the API key
        return f"PreparedRequest({self.method} {redact_url(self.url)}, {len(self.body or b'')} bytes, stream={self.stream})"

    def json(self) -> Any:
        """The body parsed back from JSON (for tests and debugging)."""
        from .._json import loads

        return None if self.body is None else loads(self.body)


class Response:
    """An HTTP answer. ``body`` is complete unless this is an open stream.

    ``received_at``: ``time.perf_counter()`` when the headers arrived, for timings (a
    transport that does not set it gets the time it returned instead). ``queued``: seconds
    the request waited for a free pooled connection, 0.0 when it did not wait, None when the
    transport cannot tell (the default: a transport of your own may set it); it becomes
    ``timing.queued``.
    """

    __slots__ = ("status", "headers", "body", "url", "received_at", "queued", "timing", "_chunks", "_achunks",
                 "_close", "_finish")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        url: str = "",
        chunks: Iterator[bytes] | None = None,
        achunks: AsyncIterator[bytes] | None = None,
        close: Callable[[], Any] | None = None,
        received_at: float | None = None,
        queued: float | None = None,
        finish: Callable[[], Any] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        # ``time.perf_counter()`` when the headers arrived (the transport stamps it; None: unknown)
        self.received_at = received_at
        self.queued = queued  # seconds waited for a free pooled connection (None: unknown)
        self.timing: Any = None  # the request's Timing, set by the client
        self._chunks = chunks
        self._achunks = achunks
        self._close = close
        self._finish = finish

    def iter_bytes(self) -> Iterator[bytes]:
        """The body of a streamed answer, piece by piece as it arrives."""
        if self._chunks is None:
            return iter((self.body,) if self.body else ())
        return self._chunks

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The async twin of ``iter_bytes``."""
        if self._achunks is None:
            return _aiter_once(self.body)
        return self._achunks

    def close(self) -> Any:
        """Release the connection (returns an awaitable for async transports)."""
        close, self._close = self._close, None
        return close() if close is not None else None

    def finish(self) -> Any:
        """The reader has all it wants (the stream's ``[DONE]``): keep the connection if the
        body ends at once, else close it (``close()`` is still to be called after). Returns an
        awaitable for async transports; a transport without ``finish`` closes instead."""
        finish, self._finish = self._finish, None
        if finish is not None:
            return finish()
        return self.close()


async def _aiter_once(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body


class SyncTransport(Protocol):
    """Moves bytes for ``VllmClient``: ``send`` one request, ``close`` the pool."""

    def send(self, request: PreparedRequest) -> Response: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Moves bytes for ``AsyncVllmClient``: ``await asend(request)``, ``await aclose()``.

    The names differ from ``SyncTransport``'s so that one object (``MockTransport``)
    can be both.
    """

    async def asend(self, request: PreparedRequest) -> Response: ...

    async def aclose(self) -> None: ...


Phase = Literal["connect", "read"]


class MapErrors:
    """``with MapErrors(url, "connect", timeouts, failures):`` around a transport's library
    calls: an exception of a ``timeouts`` class comes out as ``APITimeoutError``, of a
    ``failures`` class as ``APIConnectionError`` (the message says what broke and why,
    never the credentials); anything else passes through.

    Each transport builds its two tuples once from its HTTP library (``requests`` /
    ``aiohttp``): this class is the one place the mapping is written.
    """

    __slots__ = ("url", "phase", "timeouts", "failures")

    def __init__(self, url: str, phase: Phase, timeouts: tuple[type[BaseException], ...],
                 failures: tuple[type[BaseException], ...]) -> None:
        self.url = url
        self.phase = phase
        self.timeouts = timeouts
        self.failures = failures

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is None or e is None:
            return
        url = self.url
        if issubclass(et, self.timeouts):
            what = "timed out talking to" if self.phase == "connect" else "read timed out from"
            raise APITimeoutError(f"{what} {redact_url(url)}: {_why(e) or 'timeout'}", url=url) from None
        if issubclass(et, self.failures):
            if headers_too_large(e):  # bad server output, not a connection failure: not retried
                raise ResponseDecodeError(
                    f"the response headers from {redact_url(url)} are too large (a header line over "
                    f"{MAX_HEADER_LINE // 1024} KiB, or too many header lines)", url=url) from None
            where = f"could not reach {redact_url(url)}" if self.phase == "connect" else \
                f"connection to {redact_url(url)} broke"
            cls = TLSError if tls_refused(e) else APIConnectionError
            raise cls(f"{where}: {_why(e)}", url=url) from None


def _why(e: BaseException) -> str:
    """A short reason from a transport exception, without URLs or credentials."""
    tls = failure_reason(e)
    if tls is not None:
        return tls
    errno = getattr(e, "errno", None)
    if isinstance(e, OSError) and isinstance(errno, int) and errno > 0:  # (aiohttp's connect errors too)
        import os

        return f"[Errno {errno}] {os.strerror(errno)}"
    text = str(e)
    # urllib3 messages embed "(Caused by NewConnectionError(...: Failed to establish ...: [Errno 111] ...))"
    if "Errno" in text:
        i = text.rfind("[Errno")
        j = text.find("]", i)
        tail = text[i: text.find(")", j) if text.find(")", j) > 0 else None]
        return tail.strip(" '\"")
    if "timed out" in text.lower():
        return "timed out"
    return type(e).__name__ + (f": {text[:200]}" if text and "://" not in text else "")
