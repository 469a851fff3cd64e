"""The base of every endpoint's builder, and the senders that hand a builder to a client.

A builder holds one request's body, headers and timeout; its setters validate as they
go and it never touches the network. An endpoint's sync and async builders are its
body class plus one sender from here: ``Sender`` / ``AsyncSender`` (``send()``) or
``StreamSender`` / ``AsyncStreamSender`` (``send()`` and ``send_stream()``). Both run
the same flow (``ClientCore.builder_flow`` / ``stream_flow``) on their client's driver,
so nothing but the ``await`` differs between the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .. import _validate as v
from .._config import Timeout, TimeoutTypes, check_header, to_timeout
from .._stream import AsyncChatStream, ChatStream, StreamAccumulator

if TYPE_CHECKING:
    from .._core import ClientCore

B = TypeVar("B", bound="_Builder")
R = TypeVar("R")

__all__ = ["_Builder", "Sender", "AsyncSender", "StreamSender", "AsyncStreamSender", "Creator"]


def _copy(value: Any) -> Any:
    """A shallow copy of a dict or list (so later changes by the caller do not leak in); None stays None."""
    return None if value is None else value.copy()


class _Builder:
    """Body, headers and timeout of one request; setters shared by every endpoint."""

    _path = ""  # the route, under the base URL (or under the server root when _root)
    _root = False
    _what: ClassVar[str] = "response"  # names the endpoint in errors
    # The endpoint's response from the server's JSON object: its response class's from_dict
    # (Any: a function stored on the class, not a method; every endpoint's body sets it).
    _parse: ClassVar[Any]
    _output: Any = None  # a StructuredOutput (an output type was given): .parsed, partial events
    _typed_output: ClassVar[bool] = False  # the responses have .parsed: output types are parsed

    def __init__(self, client: ClientCore) -> None:
        self._client = client
        self._body: dict[str, Any] = {}
        self._extra: dict[str, Any] = {}
        self._headers: dict[str, str] = {}
        self._timeout: Timeout | None = None

    def _set(self: B, key: str, value: Any) -> B:
        if value is None:
            self._body.pop(key, None)
        else:
            self._body[key] = value
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._body!r})"

    def _set_output(self, output: Any) -> None:
        """Remember the output type of the latest schema setter (None: a schema dict, no type);
        endpoints whose responses have ``.parsed`` (``_typed_output``) parse into it."""
        if not self._typed_output:
            return
        self._output = output
        if output is None:
            self.__dict__.pop("_parse", None)
        else:
            self.__dict__["_parse"] = output.parser(type(self)._parse)  # this builder's own parse

    # -- escape hatches ------------------------------------------------------

    def extra(self: B, fields: Mapping[str, Any]) -> B:
        """Merge fields into the body, last, over what setters put there (a later
        ``extra()`` merges over earlier ones; a value of None removes the field)."""
        v.mapping("extra", fields)
        v.check_finite(dict(fields), "extra")
        self._extra.update(fields)
        return self

    def header(self: B, name: str, value: str) -> B:
        """Add an HTTP header to this request only."""
        check_header(name, value)
        self._headers[name] = value
        return self

    def timeout(self: B, timeout: TimeoutTypes) -> B:
        """A timeout for this request only: seconds or ``Timeout(connect=, read=, total=)``."""
        self._timeout = to_timeout(timeout, what="timeout")
        return self

    # -- output --------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        """The exact JSON body that will be sent: only the fields that were set, ``extra()`` merged last.

        The model is the builder's, else the client's ``default_model``; when neither is
        set, ``send()`` asks the server for its one model and adds it. Raises
        ``InvalidRequestError`` for a body that cannot be sent (as ``send()`` would).
        """
        body = self._build()
        v.check_finite(body)
        return body

    def _build(self) -> dict[str, Any]:
        # build() without the NaN walk: sending checks that when the body is serialized
        # (ClientCore.prepare), only if the JSON has a null in it.
        body = dict(self._body)
        for k, val in self._extra.items():
            if val is None:
                body.pop(k, None)
            else:
                body[k] = val
        if "model" not in body and self._client.default_model:
            body["model"] = self._client.default_model
        self._check(body)
        return body

    def _check(self, body: dict[str, Any]) -> None:
        """Whole-body checks before sending (overridden per endpoint)."""

    def _request_parts(self, stream: bool) -> tuple[dict[str, Any], dict[str, str] | None, Timeout | None]:
        body = self._build()
        if stream:
            body["stream"] = True
        elif body.get("stream") is True:
            body.pop("stream")
        return body, (self._headers or None), self._timeout


class Sender(_Builder, Generic[R]):
    """``send()`` on the sync client."""

    def send(self) -> R:
        """Send and return the parsed response."""
        c: Any = self._client
        result: R = c._run(c.builder_flow(self, self._parse, self._what))
        return result


class AsyncSender(_Builder, Generic[R]):
    """``send()`` on the async client."""

    async def send(self) -> R:
        """Send and return the parsed response."""
        c: Any = self._client
        result: R = await c._run(c.builder_flow(self, self._parse, self._what))
        return result


class _Streams(_Builder):
    _chat: ClassVar[bool] = True  # chat deltas (else legacy completion text)

    def _streams(self) -> bool:
        """``stream(True)`` or ``extra({"stream": True})``: ``send()`` streams and accumulates."""
        return self._body.get("stream") is True or self._extra.get("stream") is True

    def _accumulator(self, url: str) -> StreamAccumulator[Any]:
        # the class's own parse: the accumulator validates the final response itself
        return StreamAccumulator(chat=self._chat, url=url, parse=type(self)._parse, output=self._output)


class StreamSender(_Streams, Sender[R]):
    """``send()`` and ``send_stream()`` on the sync client."""

    def send(self) -> R:
        """Send and return the whole response (a ``.stream(True)`` request is streamed and accumulated)."""
        if self._streams():
            result: R = self.send_stream().final_response()
            return result
        return Sender.send(self)

    def send_stream(self) -> ChatStream[R]:
        """Send with ``stream: true``; iterate the returned ``ChatStream`` for typed events."""
        c: Any = self._client
        response, url = c._run(c.stream_flow(self))
        return ChatStream(response, self._accumulator(url))


class AsyncStreamSender(_Streams, AsyncSender[R]):
    """``send()`` and ``send_stream()`` on the async client."""

    async def send(self) -> R:
        """Send and return the whole response (a ``.stream(True)`` request is streamed and accumulated)."""
        if self._streams():
            stream = await self.send_stream()
            result: R = await stream.final_response()
            return result
        return await AsyncSender.send(self)

    async def send_stream(self) -> AsyncChatStream[R]:
        """Send with ``stream: true``; ``async for`` over the returned ``AsyncChatStream``."""
        c: Any = self._client
        response, url = await c._run(c.stream_flow(self))
        return AsyncChatStream(response, self._accumulator(url))


BT = TypeVar("BT")


class Creator(Generic[BT]):
    """An endpoint's namespace (``client.embeddings()``): ``create()`` gives a new builder."""

    def __init__(self, client: Any, builder: Callable[[Any], BT]) -> None:
        self._client = client
        self._builder = builder

    def create(self) -> BT:
        """A new builder for this endpoint."""
        return self._builder(self._client)
