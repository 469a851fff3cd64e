"""What moves between the pure core and the I/O drivers, and the transports themselves.

A transport takes a ``PreparedRequest`` and returns a ``Response``: status,
headers, and either the whole body (``body``) or, for a successful streamed
request, a byte iterator. It maps its library's exceptions to
``APIConnectionError`` / ``APITimeoutError`` and does nothing else: no retries,
no parsing. ``MockTransport`` answers from a function, for tests.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._config import Timeout
from ._exceptions import APIConnectionError, APITimeoutError
from ._urls import redact_url

__all__ = ["PreparedRequest", "Response", "SyncTransport", "AsyncTransport", "MockTransport", "MockResponse"]


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

    def __repr__(self) -> str:  # never show headers: they hold the API key
        return f"PreparedRequest({self.method} {redact_url(self.url)}, {len(self.body or b'')} bytes, stream={self.stream})"

    def json(self) -> Any:
        """The body parsed back from JSON (for tests and debugging)."""
        import orjson

        return None if self.body is None else orjson.loads(self.body)


class Response:
    """An HTTP answer. ``body`` is complete unless this is an open stream."""

    __slots__ = ("status", "headers", "body", "url", "_chunks", "_achunks", "_close")

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
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        self._chunks = chunks
        self._achunks = achunks
        self._close = close

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


async def _aiter_once(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body


class SyncTransport(Protocol):
    """Moves bytes for ``VllmClient``."""

    def send(self, request: PreparedRequest) -> Response: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Moves bytes for ``AsyncVllmClient``."""

    async def send(self, request: PreparedRequest) -> Response: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------
# requests


class RequestsTransport:
    """The sync transport: one ``requests.Session`` (a keep-alive connection pool)."""

    def __init__(self, *, pool_maxsize: int = 64, session: Any = None) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self._requests = requests
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.trust_env = True
        self.session = session

    def send(self, request: PreparedRequest) -> Response:
        """Send; for a successful stream, return an open Response to iterate."""
        rq = self._requests
        t = request.timeout
        deadline = time.monotonic() + t.total if t.total is not None else None
        read = t.read
        if t.total is not None:
            read = t.total if read is None else min(read, t.total)
        connect = t.connect if t.total is None or t.connect is None else min(t.connect, t.total)
        try:
            r = self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=(connect, read),
                stream=True,
            )
        except rq.exceptions.Timeout as e:
            raise APITimeoutError(f"timed out talking to {redact_url(request.url)}: {_why(e)}", url=request.url) from None
        except rq.exceptions.RequestException as e:
            raise APIConnectionError(f"could not reach {redact_url(request.url)}: {_why(e)}", url=request.url) from None
        headers = r.headers
        if request.stream and r.status_code < 400:
            return Response(
                r.status_code, headers, url=request.url,
                chunks=self._iter(r, request.url, deadline), close=r.close,
            )
        try:
            body = b"".join(self._iter(r, request.url, deadline))
        finally:
            r.close()
        return Response(r.status_code, headers, body, url=request.url)

    def _iter(self, r: Any, url: str, deadline: float | None) -> Iterator[bytes]:
        raw = r.raw
        rq = self._requests
        import urllib3.exceptions as ue

        try:
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
        except (ue.ReadTimeoutError, rq.exceptions.Timeout, TimeoutError) as e:
            raise APITimeoutError(f"read timed out from {redact_url(url)}: {_why(e)}", url=url) from None
        except (ue.HTTPError, rq.exceptions.RequestException, OSError) as e:
            raise APIConnectionError(f"connection to {redact_url(url)} broke: {_why(e)}", url=url) from None

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


def _why(e: BaseException) -> str:
    """A short reason from a transport exception, without URLs or credentials."""
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


# ---------------------------------------------------------------------------
# mocks


@dataclass
class MockResponse:
    """What a ``MockTransport`` handler returns: a status, headers, and a body given
    as bytes / str / a JSON-able dict or list, or as a list of byte chunks for streams."""

    status: int = 200
    json: Any = None
    body: bytes | str | list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class MockTransport:
    """A transport that answers every request by calling ``handler(request)``.

    The handler returns a ``MockResponse`` or raises ``APIConnectionError``;
    ``requests`` records every request sent. Works for both clients::

        client = VllmClient("http://test/v1", transport=MockTransport(handler))
    """

    def __init__(self, handler: Callable[[PreparedRequest], MockResponse]) -> None:
        self.handler = handler
        self.requests: list[PreparedRequest] = []
        self.closed = False

    def _answer(self, request: PreparedRequest) -> tuple[MockResponse, list[bytes]]:
        import orjson

        self.requests.append(request)
        mr = self.handler(request)
        if mr.json is not None:
            chunks = [orjson.dumps(mr.json)]
            mr.headers.setdefault("content-type", "application/json")
        elif isinstance(mr.body, list):
            chunks = list(mr.body)
        elif isinstance(mr.body, str):
            chunks = [mr.body.encode()]
        else:
            chunks = [mr.body or b""]
        return mr, chunks

    def send(self, request: PreparedRequest) -> Response:
        """Answer synchronously."""
        mr, chunks = self._answer(request)
        if request.stream and mr.status < 400:
            return Response(mr.status, mr.headers, url=request.url, chunks=iter(chunks))
        return Response(mr.status, mr.headers, b"".join(chunks), url=request.url)

    async def asend(self, request: PreparedRequest) -> Response:
        """Answer for the async client."""
        mr, chunks = self._answer(request)

        async def gen() -> AsyncIterator[bytes]:
            for c in chunks:
                yield c

        if request.stream and mr.status < 400:
            return Response(mr.status, mr.headers, url=request.url, achunks=gen())
        return Response(mr.status, mr.headers, b"".join(chunks), url=request.url)

    def close(self) -> None:
        """Mark closed."""
        self.closed = True

    async def aclose(self) -> None:
        """Mark closed."""
        self.closed = True
