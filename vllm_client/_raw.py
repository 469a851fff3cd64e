"""``client.request(method, path, ...)``: any route, with the client's retries, timeouts, errors,
timings and hooks. The flow (``ClientCore.raw_flow``) is shared; this module holds what it
returns: ``RawResponse`` (status, headers, bytes, ``json()``) and the two SSE stream loops."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping
from types import TracebackType
from typing import Any

import orjson

from ._config import Timeout, TimeoutTypes, to_timeout
from ._exceptions import InvalidRequestError, ResponseDecodeError
from ._observe import _Meta
from ._sse import SSEDecoder
from ._transports.base import Response
from ._types import ServerEvent
from ._urls import redact_url

__all__ = ["RawResponse", "RawStream", "AsyncRawStream", "check_raw_request"]

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_DONE = b"[DONE]"


def check_raw_request(method: Any, path: Any, headers: Any, timeout: TimeoutTypes
                      ) -> tuple[str, str, bool, Mapping[str, str] | None, Timeout | None]:
    """Validate ``request()``'s arguments (before anything is sent): (METHOD, route, whether the
    route is at the server root, headers, timeout). ``"models"`` is joined to the base URL,
    ``"/health"`` or ``"/v1/models"`` to the server root."""
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidRequestError(f"method={method!r}: expected one of {', '.join(sorted(METHODS))}")
    if not isinstance(path, str) or not path.strip("/") or "://" in path or any(c in path for c in " \r\n#"):
        raise InvalidRequestError(f"path={path!r}: expected a route: 'models' (joined to the base URL) or "
                                  "'/health', '/v1/models' (from the server root); not a full URL")
    if headers is not None and not isinstance(headers, Mapping):
        raise InvalidRequestError("headers: expected a dict of str to str")
    root = path.startswith("/")
    return method.upper(), path if root else "/" + path, root, headers, \
        None if timeout is None else to_timeout(timeout)


class RawResponse(_Meta):
    """The answer of ``client.request()``: ``status_code``, ``headers``, ``content`` (the body's
    bytes), ``text``, ``json()``, ``timing``, ``request_id``. Error statuses raise before this."""

    __slots__ = ("content", "url", "_json")

    def __init__(self, content: bytes, url: str = "") -> None:
        self.content = content
        self.url = url
        self._json: Any = _UNSET

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (parsed once); ``ResponseDecodeError`` (keeping the body) when it is not."""
        if self._json is _UNSET:
            try:
                self._json = orjson.loads(self.content)
            except orjson.JSONDecodeError as e:
                raise ResponseDecodeError(f"the answer of {redact_url(self.url)} is not JSON ({e})",
                                          body=self.content, status_code=getattr(self, "_status", None),
                                          url=self.url) from None
        return self._json

    def __repr__(self) -> str:
        return f"RawResponse(status_code={self.status_code}, {len(self.content)} bytes)"


_UNSET: Any = object()


def _attach(target: Any, response: Response) -> None:
    target._timing = response.timing
    target._headers = response.headers
    target._status = response.status


def raw_response(response: Response, url: str) -> RawResponse:
    """A transport's whole answer as a ``RawResponse`` with its timing, headers and status."""
    r = RawResponse(response.body, url)
    _attach(r, response)
    return r


class _RawStreamBase(_Meta):
    __slots__ = ("_response", "_decoder", "_closed", "url")

    def __init__(self, response: Response, url: str) -> None:
        self._response = response
        self._decoder = SSEDecoder()
        self._closed = False
        self.url = url
        _attach(self, response)

    def _events(self, piece: bytes | None) -> tuple[list[ServerEvent], bool]:
        """The events of the next piece (None: the end); True once ``data: [DONE]`` came.
        An event's ``data`` is its JSON parsed, or its text when it is not JSON."""
        out: list[ServerEvent] = []
        for ev in self._decoder.feed(piece) if piece is not None else self._decoder.flush():
            data = ev.data
            if data == _DONE:
                return out, True
            try:
                value: Any = orjson.loads(data)
            except orjson.JSONDecodeError:
                value = data.decode("utf-8", "replace")
            out.append(ServerEvent(ev.event, value))
        return out, False


class RawStream(_RawStreamBase):
    """The SSE events of ``client.request(..., stream=True)`` as they arrive, each a ``ServerEvent``
    (``.event``: the SSE event name, ``"message"`` by default; ``.data``: its JSON parsed, or its
    text), up to ``data: [DONE]`` (not yielded). Iterate it once; ``with`` or ``close()``
    releases the connection early. ``timing``, ``headers``, ``status_code`` as on responses."""

    __slots__ = ("_it",)

    def __init__(self, response: Response, url: str) -> None:
        super().__init__(response, url)
        self._it = self._run()

    def _run(self) -> Generator[ServerEvent, None, None]:
        try:
            for piece in self._response.iter_bytes():
                events, done = self._events(piece)
                yield from events
                if done:
                    return
            events, _ = self._events(None)
            yield from events
        finally:
            self.close()

    def __iter__(self) -> Generator[ServerEvent, None, None]:
        return self._it

    def __next__(self) -> ServerEvent:
        return next(self._it)

    def close(self) -> None:
        """Stop reading and release the connection (safe to call twice)."""
        if not self._closed:
            self._closed = True
            self._response.close()

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        self._it.close()


class AsyncRawStream(_RawStreamBase):
    """The async twin of ``RawStream``: ``async for``, ``async with``, ``await aclose()``."""

    __slots__ = ("_it",)

    def __init__(self, response: Response, url: str) -> None:
        super().__init__(response, url)
        self._it = self._run()

    async def _run(self) -> AsyncGenerator[ServerEvent, None]:
        try:
            async for piece in self._response.aiter_bytes():
                events, done = self._events(piece)
                for ev in events:
                    yield ev
                if done:
                    return
            events, _ = self._events(None)
            for ev in events:
                yield ev
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncGenerator[ServerEvent, None]:
        return self._it

    async def __anext__(self) -> ServerEvent:
        return await self._it.__anext__()

    async def aclose(self) -> None:
        """Stop reading and release the connection (safe to call twice)."""
        if not self._closed:
            self._closed = True
            r = self._response.close()
            if r is not None and hasattr(r, "__await__"):
                await r

    close = aclose

    async def __aenter__(self) -> AsyncRawStream:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
        await self._it.aclose()
