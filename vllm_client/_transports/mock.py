"""``MockTransport``: answers requests from a function, for tests. One object is both a
``SyncTransport`` and an ``AsyncTransport``, so the same mock serves both clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .base import PreparedRequest, Response

__all__ = ["MockTransport", "MockResponse"]


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
        aclient = AsyncVllmClient("http://test/v1", transport=MockTransport(handler))
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
        """Answer for the sync client."""
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
