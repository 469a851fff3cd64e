"""The base of every endpoint's builder, and the senders that hand a builder to a client.

A builder holds one request's body, headers and timeout; its setters validate as they
go and it never touches the network. An endpoint's sync and async builders are its
body class plus one sender from here: ``Sender`` / ``AsyncSender`` (``send()``) or
``StreamSender`` / ``AsyncStreamSender`` (``send()`` and ``send_stream()``), or, for an
endpoint with a tool loop, ``ToolLoopSender`` / ``AsyncToolLoopSender`` (those plus
``run_tools()`` and ``run_tools_stream()``). Both run the same flow (``ClientCore.builder_flow``
/ ``stream_flow``) or the same ``ToolLoop`` on their client's driver, so nothing but the
``await`` differs between the two.
"""

from __future__ import annotations

import copy as _copymod
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar

from .. import _validate as v
from .._config import Timeout, TimeoutTypes, check_header, to_timeout
from .._exceptions import InvalidRequestError
from .._stream import AsyncChatStream, ChatStream, StreamAccumulator
from .._types import Done, add_usage, set_total_usage

if TYPE_CHECKING:
    from .._conversation import ToolLoop
    from .._core import ClientCore
    from .._types import StreamEvent

B = TypeVar("B", bound="_Builder")
R = TypeVar("R")

__all__ = ["_Builder", "Sender", "AsyncSender", "StreamSender", "AsyncStreamSender", "ToolLoopSender",
           "AsyncToolLoopSender", "Creator", "endpoint"]


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

    # -- reuse ---------------------------------------------------------------

    def copy(self: B) -> B:
        """An independent builder for the same client: its own body (messages, tools, every
        field), headers and timeout. Setters change the builder they are called on and return
        it, so copy a builder to reuse it: ``a = base.copy().user_message("A")``."""
        return _copymod.deepcopy(self)

    def __copy__(self: B) -> B:
        # copy.copy: the builder's own containers are new (appending a message to one never
        # changes the other); what they hold (message dicts) is shared. copy() copies it all.
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._body = {k: (x.copy() if x.__class__ is list or x.__class__ is dict else x)
                     for k, x in self._body.items()}
        new._extra = dict(self._extra)
        new._headers = dict(self._headers)
        return new

    def __deepcopy__(self: B, memo: dict[int, Any]) -> B:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        d = new.__dict__
        for k, val in self.__dict__.items():
            # the client (connections, locks) and the immutable output type / tool set are shared
            d[k] = val if k in _SHARED else _copymod.deepcopy(val, memo)
        return new

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_parse", None)  # this builder's own parse (a closure): made again from _output
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._output is not None:
            self._set_output(self._output)

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
        headers = self._headers or None
        rid = body.get("request_id")
        if rid.__class__ is str:
            headers = _with_request_id_header(self._headers, rid)
        return body, headers, self._timeout


def _with_request_id_header(headers: dict[str, str], rid: str) -> dict[str, str] | None:
    """The headers with ``X-Request-Id: rid`` added (unless one was set, or ``rid`` is not a
    plain ASCII header value): vLLM echoes that header, not the body's ``request_id``, with
    ``--enable-request-id-headers`` (and takes the header's id first for its own)."""
    if not rid or not (rid.isascii() and rid.isprintable()) or any(k.lower() == "x-request-id" for k in headers):
        return headers or None
    return {**headers, "X-Request-Id": rid}


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


class _ToolLoops(_Builder):
    """What the endpoint gives the tool loop: its ``ToolLoop`` class, which decides everything
    (the request of each round, what a reply adds to the history, how a result goes back,
    when to stop, ``max_rounds``); the two drivers below only send and run the calls."""

    _toolset: Any = None  # the ToolSet given to tools()
    _tool_loop_class: ClassVar[type[ToolLoop]]  # ToolLoop (chat) or ResponsesToolLoop
    _reasoning_in_history = True  # reasoning_in_history(): the model's reasoning goes back
    _cut_retries = 0  # retry_cut_tool_calls(n)

    def reasoning_in_history(self: B, value: bool = True) -> B:
        """Whether the assistant turns that ``run_tools()`` (and a conversation) add to the
        history carry the model's reasoning back (default True: under the key the server used,
        ``reasoning`` for vLLM; Responses: the reasoning items). False for servers that refuse
        the key. Not a body field."""
        self._reasoning_in_history = v.boolean("reasoning_in_history", value)  # type: ignore[attr-defined]
        return self

    def retry_cut_tool_calls(self: B, times: int = 1) -> B:
        """When a turn's tool call is cut by the token limit, ``run_tools()`` asks that turn again
        with the output budget (``max_tokens``, ``max_completion_tokens`` or ``max_output_tokens``)
        doubled, up to ``times`` times, instead of raising ``IncompleteToolCallError`` at once (a
        request with no budget of its own still raises). Not a body field."""
        self._cut_retries = v.integer("retry_cut_tool_calls", times, lo=0)  # type: ignore[attr-defined]
        return self

    def _new_tool_loop(self, max_rounds: int) -> ToolLoop:
        return self._tool_loop_class(self, self._toolset, max_rounds)


class ToolLoopSender(_ToolLoops, StreamSender[R]):
    """``send()``, ``send_stream()``, ``run_tools()`` and ``run_tools_stream()`` on the sync client."""

    def run_tools(self, max_rounds: int = 8) -> R:
        """Send, run the Python tools the model asks for (in parallel), send the results back, and
        repeat until the model answers without tool calls; return that final response.

        Bad arguments, unknown tools and exceptions in a tool go back to the model as
        ``error: ...``; still asking for tools after ``max_rounds`` raises ``ToolLoopError``.
        """
        return self._tool_loop(max_rounds)[0]

    def _tool_loop(self, max_rounds: int) -> tuple[R, ToolLoop]:
        """The final response and the loop that led to it (``Conversation.send`` keeps its history)."""
        loop, c = self._new_tool_loop(max_rounds), self._client
        total = None
        while True:
            response = loop.next_builder().send()
            total = add_usage(total, response)
            set_total_usage(response, total)
            calls = loop.after(response)
            if calls is None:
                return response, loop
            loop.add_results(c._run_tools(calls))  # type: ignore[attr-defined]

    def run_tools_stream(self, max_rounds: int = 8) -> Iterator[StreamEvent]:
        """Like ``run_tools`` but streamed: yields the events of every round (a ``Done`` per round;
        its response's ``total_usage`` sums the rounds so far)."""
        loop, c = self._new_tool_loop(max_rounds), self._client
        total = None
        while True:
            with loop.next_builder().send_stream() as stream:
                for ev in stream:
                    if ev.__class__ is Done:
                        set_total_usage(ev.response, add_usage(total, ev.response))
                    yield ev
                response = stream.final_response()
            total = add_usage(total, response)
            calls = loop.after(response)
            if calls is None:
                return
            loop.add_results(c._run_tools(calls))  # type: ignore[attr-defined]


class AsyncToolLoopSender(_ToolLoops, AsyncStreamSender[R]):
    """``send()``, ``send_stream()``, ``run_tools()`` and ``run_tools_stream()`` on the async client."""

    async def run_tools(self, max_rounds: int = 8) -> R:
        """Send, run the tools the model asks for (concurrently; async tools awaited, sync ones in
        threads), send the results back, repeat until the model answers without tool calls.

        Bad arguments, unknown tools and exceptions in a tool go back to the model as
        ``error: ...``; still asking for tools after ``max_rounds`` raises ``ToolLoopError``.
        """
        return (await self._tool_loop(max_rounds))[0]

    async def _tool_loop(self, max_rounds: int) -> tuple[R, ToolLoop]:
        """The final response and the loop that led to it (``AsyncConversation.send`` keeps its history)."""
        loop, c = self._new_tool_loop(max_rounds), self._client
        total = None
        while True:
            response = await loop.next_builder().send()
            total = add_usage(total, response)
            set_total_usage(response, total)
            calls = loop.after(response)
            if calls is None:
                return response, loop
            loop.add_results(await c._run_tools(calls))  # type: ignore[attr-defined]

    async def run_tools_stream(self, max_rounds: int = 8) -> AsyncIterator[StreamEvent]:
        """Like ``run_tools`` but streamed: yields the events of every round (a ``Done`` per round;
        its response's ``total_usage`` sums the rounds so far)."""
        loop, c = self._new_tool_loop(max_rounds), self._client
        total = None
        while True:
            stream = await loop.next_builder().send_stream()
            async with stream:
                async for ev in stream:
                    if ev.__class__ is Done:
                        set_total_usage(ev.response, add_usage(total, ev.response))
                    yield ev
                response = await stream.final_response()
            total = add_usage(total, response)
            calls = loop.after(response)
            if calls is None:
                return
            loop.add_results(await c._run_tools(calls))  # type: ignore[attr-defined]


_SHARED = frozenset({"_client", "_parse", "_output", "_toolset"})

BT = TypeVar("BT")


class Creator(Generic[BT]):
    """An endpoint's namespace (``client.embeddings()``): ``create()`` gives a new builder."""

    def __init__(self, client: Any, builder: Callable[[Any], BT]) -> None:
        self._client = client
        self._builder = builder

    def create(self, **fields: Any) -> BT:
        """A new builder for this endpoint; ``fields`` are body fields as keyword arguments, each
        given to the setter of that name (``create(model=m, messages=msgs, temperature=0.2)``),
        so they are validated as the setters validate. Also ``extra_body=`` (as ``extra()``)
        and ``extra_headers=`` (as ``header()``)."""
        b = self._builder(self._client)
        if fields:
            apply_fields(b, fields)
        return b


# Public builder methods that are not body fields (create() refuses them as keywords).
_NOT_FIELDS = frozenset({"send", "send_stream", "run_tools", "run_tools_stream", "build", "copy", "header",
                         "create"})
_keyword_setters: dict[tuple[type, str], bool] = {}


def apply_fields(builder: Any, fields: Mapping[str, Any]) -> None:
    """Call ``builder.<name>(value)`` for each field (``create(**fields)``); an unknown name is
    an ``InvalidRequestError`` that names it and points to ``extra()``."""
    for name, value in fields.items():
        if name == "extra_headers":
            for k, val in v.mapping("create(extra_headers=)", value).items():
                builder.header(k, val)
            continue
        attr = "extra" if name == "extra_body" else name
        setter = None if attr.startswith("_") or attr in _NOT_FIELDS else getattr(builder, attr, None)
        if setter is None or not callable(setter):
            raise InvalidRequestError(
                f"create({name}=...): {type(builder).__name__} has no setter {name!r}; a field the SDK "
                f"has no setter for goes in .extra({{{name!r}: ...}}) (or create(extra_body={{...}}))")
        key = (type(builder), attr)
        keyword = _keyword_setters.get(key)
        if keyword is None:  # a setter taking keyword arguments only: create(name={...}) spreads the dict
            params = list(inspect.signature(setter).parameters.values())
            keyword = _keyword_setters[key] = bool(params) and all(
                p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params)
        if keyword:
            setter(**v.mapping(f"create({name}=)", value))
        else:
            setter(value)


F = TypeVar("F", bound=Callable[..., Any])
_PREFIXES = {"_ChatNamespace": "chat.", "_AudioNamespace": "audio."}


def endpoint(fn: F) -> F:
    """Mark a client method that gives an endpoint (``client.embeddings()``): it stays a plain
    method (nothing added to the request path), and openai-python's spelling
    ``client.embeddings.create(...)`` raises an ``AttributeError`` that shows this SDK's."""
    owner = fn.__qualname__.rpartition(".")[0]
    path = _PREFIXES.get(owner, "") + fn.__name__
    example = "model=..., messages=[...]" if path == "chat.completions" else "model=..., ..."

    def create(*args: Any, **kwargs: Any) -> NoReturn:
        raise AttributeError(f"client.{path} is a method in vllm_client: openai-python's client.{path}.create("
                             f"{example}) is spelt client.{path}().create({example}).send() here")

    create.__qualname__ = create.__name__ = f"{path}.create (openai-python's spelling)"
    setattr(fn, "create", create)  # noqa: B010 (a function attribute: client.x.create finds it)
    return fn
