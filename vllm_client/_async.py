"""``AsyncVllmClient``: the asyncio client. aiohttp is imported when the first one is made."""

from __future__ import annotations

import asyncio
import inspect
import math
import warnings
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from ._batch import Progress, iter_batch, run_batch
from ._builders import ChatBody, CompletionBody, EmbeddingBody
from ._config import TimeoutTypes
from ._conversation import ConversationBase, ConversationState, PreparedCall, ToolLoop
from ._core import _UNSET, ClientCore, Flow, T
from ._exceptions import APIConnectionError, APITimeoutError, VllmError
from ._models import (
    ChatCompletionResponse,
    CompletionResponse,
    EmbeddingResponse,
    Model,
    StreamEvent,
    TokenizeResult,
)
from ._stream import AsyncChatStream, StreamAccumulator
from ._transport import AsyncTransport, MockTransport, PreparedRequest, Response, _why
from ._urls import redact_url

__all__ = ["AsyncVllmClient", "AsyncChatCompletionBuilder", "AsyncCompletionBuilder", "AsyncEmbeddingBuilder",
           "AsyncConversation"]


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


class AiohttpTransport:
    """The async transport: one ``aiohttp.ClientSession``, created in the loop that first uses it."""

    def __init__(self, *, limit: int = 256) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._limit = limit
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: _ReadDeadlines | None = None
        self._timeouts: dict[Any, Any] = {}  # Timeout -> aiohttp.ClientTimeout

    def _get_session(self) -> tuple[Any, _ReadDeadlines]:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed:
            aiohttp = self._aiohttp
            from urllib.request import getproxies

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=0),
                # Honour HTTP(S)_PROXY / NO_PROXY like requests does, but only when set:
                # trust_env costs a proxy and .netrc look-up on every request.
                trust_env=bool(getproxies()),
                auto_decompress=True,
            )
            self._loop = loop
            self._deadlines = _ReadDeadlines(loop)
        elif self._loop is not loop:
            raise VllmError(
                "this AsyncVllmClient was first used in another event loop; make one client per event loop "
                "(e.g. create it inside the coroutine that asyncio.run() runs)"
            )
        return self._session, self._deadlines  # type: ignore[return-value]

    async def send(self, request: PreparedRequest) -> Response:
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
        try:
            with wait:
                resp = await session.request(
                    request.method, url, data=request.body, headers=request.headers, timeout=timeout,
                )
        except asyncio.TimeoutError as e:
            raise APITimeoutError(f"timed out talking to {redact_url(url)}: {_why(e) or 'timeout'}", url=url) from None
        except (aiohttp.ClientError, OSError) as e:
            raise APIConnectionError(f"could not reach {redact_url(url)}: {_why(e)}", url=url) from None
        headers = resp.headers
        if request.stream and resp.status < 400:
            def close() -> None:
                if resp.content.is_eof():
                    resp.release()
                else:
                    resp.close()

            return Response(resp.status, headers, url=url, achunks=self._iter(resp, url, wait), close=close)
        try:
            with wait:
                body = await resp.read()
        except asyncio.TimeoutError:
            raise APITimeoutError(f"read timed out from {redact_url(url)}", url=url) from None
        except (aiohttp.ClientError, OSError) as e:
            raise APIConnectionError(f"connection to {redact_url(url)} broke: {_why(e)}", url=url) from None
        finally:
            resp.release()
        return Response(resp.status, headers, body, url=url)

    async def _iter(self, resp: Any, url: str, wait: _ReadWait) -> AsyncIterator[bytes]:
        # Whatever has arrived, but at most 64 KiB at a time: when the client falls behind,
        # aiohttp has hundreds of KiB buffered, and decoding that in one go (thousands of
        # events built before the first is used) runs out of CPU cache: measured 1.2x the
        # bare loop's CPU per event this way against 1.4x with iter_any().
        read = resp.content.read
        try:
            while True:
                with wait:
                    piece = await read(65536)
                if not piece:
                    return
                yield piece
        except asyncio.TimeoutError:
            raise APITimeoutError(f"read timed out from {redact_url(url)}", url=url) from None
        except (self._aiohttp.ClientError, OSError) as e:
            raise APIConnectionError(f"connection to {redact_url(url)} broke: {_why(e)}", url=url) from None

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class _AsyncMock:
    """Adapts a ``MockTransport`` to the async client."""

    def __init__(self, mock: MockTransport) -> None:
        self.mock = mock

    async def send(self, request: PreparedRequest) -> Response:
        return await self.mock.asend(request)

    async def close(self) -> None:
        await self.mock.aclose()


class AsyncChatCompletionBuilder(ChatBody):
    """Builds one chat completion request; ``await send()`` or ``await send_stream()``."""

    _client: AsyncVllmClient

    async def send(self) -> ChatCompletionResponse:
        """Send and return the whole response (a ``.stream(True)`` request is streamed and accumulated)."""
        if self._streams():
            stream = await self.send_stream()
            result: ChatCompletionResponse = await stream.final_response()
            return result
        c = self._client
        return await c._run(c.builder_flow(self, ChatCompletionResponse.from_dict, "chat completion"))

    async def send_stream(self) -> AsyncChatStream:
        """Send with ``stream: true``; ``async for`` over the returned stream."""
        c = self._client
        response, url = await c._run(c.stream_flow(self))
        return AsyncChatStream(response, StreamAccumulator(chat=True, url=url))

    async def run_tools(self, max_rounds: int = 8) -> ChatCompletionResponse:
        """Send, run the tools the model asks for (concurrently; async tools awaited, sync ones in
        threads), send the results back, repeat until the model answers without tools."""
        return (await self._tool_loop(max_rounds))[0]

    async def _tool_loop(self, max_rounds: int) -> tuple[ChatCompletionResponse, ToolLoop]:
        loop = ToolLoop(self, self._toolset, max_rounds)
        while True:
            response = await loop.next_builder().send()
            calls = loop.after(response)
            if calls is None:
                return response, loop
            loop.add_results(await self._client._execute_tools(calls))

    async def run_tools_stream(self, max_rounds: int = 8) -> AsyncIterator[StreamEvent]:
        """Like ``run_tools`` but streamed: yields the events of every round."""
        loop = ToolLoop(self, self._toolset, max_rounds)
        while True:
            stream = await loop.next_builder().send_stream()
            async with stream:
                async for ev in stream:
                    yield ev
                response = await stream.final_response()
            calls = loop.after(response)
            if calls is None:
                return
            loop.add_results(await self._client._execute_tools(calls))


class AsyncCompletionBuilder(CompletionBody):
    """Builds one legacy text completion request (async)."""

    _client: AsyncVllmClient

    async def send(self) -> CompletionResponse:
        """Send and return the whole response."""
        if self._streams():
            stream = await self.send_stream()
            result: CompletionResponse = await stream.final_response()
            return result
        c = self._client
        return await c._run(c.builder_flow(self, CompletionResponse.from_dict, "completion"))

    async def send_stream(self) -> AsyncChatStream:
        """Stream ``ContentDelta`` events, then ``Done`` with a ``CompletionResponse``."""
        c = self._client
        response, url = await c._run(c.stream_flow(self))
        return AsyncChatStream(response, StreamAccumulator(chat=False, url=url))


class AsyncEmbeddingBuilder(EmbeddingBody):
    """Builds one embeddings request (async)."""

    _client: AsyncVllmClient

    async def send(self) -> EmbeddingResponse:
        """Send and return the embeddings."""
        c = self._client
        return await c._run(c.builder_flow(self, EmbeddingResponse.from_dict, "embeddings"))


class AsyncChatCompletions:
    """``client.chat.completions()``."""

    def __init__(self, client: AsyncVllmClient) -> None:
        self._client = client

    def create(self) -> AsyncChatCompletionBuilder:
        """A new chat completion builder."""
        return AsyncChatCompletionBuilder(self._client)


class AsyncCompletions(AsyncChatCompletions):
    """``client.completions()``."""

    def create(self) -> AsyncCompletionBuilder:  # type: ignore[override]
        """A new legacy completion builder."""
        return AsyncCompletionBuilder(self._client)


class AsyncEmbeddings(AsyncChatCompletions):
    """``client.embeddings()``."""

    def create(self) -> AsyncEmbeddingBuilder:  # type: ignore[override]
        """A new embeddings builder."""
        return AsyncEmbeddingBuilder(self._client)


class AsyncChat:
    """``client.chat``."""

    def __init__(self, client: AsyncVllmClient) -> None:
        self._client = client
        self._completions = AsyncChatCompletions(client)  # stateless: one is enough

    def completions(self) -> AsyncChatCompletions:
        """The chat completions endpoint: ``.create()`` gives a builder."""
        return self._completions

    def conversation(self, model: str | None = None, system: str | None = None, *,
                     messages: list[dict[str, Any]] | None = None, tools: Iterable[Any] | None = None,
                     keep_reasoning: bool = False, **defaults: Any) -> AsyncConversation:
        """A multi-turn conversation (see ``VllmClient.chat.conversation``); methods are awaitable."""
        return AsyncConversation(self._client, ConversationState(
            model=model, system=system, messages=messages, tools=tools,
            keep_reasoning=keep_reasoning, defaults=defaults))


class AsyncConversation(ConversationBase):
    """The async twin of ``Conversation``: ``await send(...)``, ``await stream(...)``."""

    _builder_class = AsyncChatCompletionBuilder

    async def send(self, text: str | list[Any] | dict[str, Any], *, tools: Iterable[Any] | None = None,
                   builder: AsyncChatCompletionBuilder | None = None,
                   max_rounds: int = 8) -> ChatCompletionResponse:
        """Send a user turn; it and the reply join the history once the reply is complete."""
        user, b = self._turn(text, tools, builder)
        response: ChatCompletionResponse
        loop: ToolLoop | None
        if b._toolset is not None and b._toolset.functions:
            response, loop = await b._tool_loop(max_rounds)
        else:
            response, loop = await b.send(), None
        self._commit_loop(user, response, loop)
        return response

    async def stream(self, text: str | list[Any] | dict[str, Any], *,
                     builder: AsyncChatCompletionBuilder | None = None) -> AsyncChatStream:
        """Stream a user turn; the turn joins the history when the stream finishes well."""
        user, b = self._turn(text, None, builder)
        stream: AsyncChatStream = await b.send_stream()
        stream.on_complete = self._commit_stream(user)
        return stream


class AsyncVllmClient(ClientCore):
    """The asyncio client; same arguments and methods as ``VllmClient``, awaitable.

    Use ``async with AsyncVllmClient(...) as client:`` or ``await client.aclose()``.
    One client belongs to one event loop.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        api_key: str | None = None,
        timeout: TimeoutTypes = None,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        default_model: str | None = None,
        transport: AsyncTransport | MockTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                         default_headers=default_headers, default_model=default_model)
        self._owns_transport = True  # a copy made by with_options() shares it and does not close it
        if isinstance(transport, MockTransport):
            transport = _AsyncMock(transport)
        self._transport: AsyncTransport = transport if transport is not None else AiohttpTransport()
        self._closed = False
        self.chat = AsyncChat(self)

    def __repr__(self) -> str:
        return self._repr()

    async def _run(self, flow: Flow[T]) -> T:
        """Run a flow: send what it asks to send, sleep what it asks to sleep."""
        send = self._transport.send
        value: Any = None
        error: APIConnectionError | None = None
        while True:
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value = error = None
            if step.__class__ is float:
                await asyncio.sleep(step)
                continue
            try:
                value = await send(step)  # type: ignore[arg-type]
            except APIConnectionError as e:
                error = e

    async def _execute_tools(self, calls: list[PreparedCall]) -> list[str]:
        """Run one round of tool calls concurrently: sync tools in threads, async tools awaited."""
        async def run(call: Any) -> str:
            if isinstance(call, str):
                return call
            try:
                value = await asyncio.to_thread(call)
                if inspect.isawaitable(value):
                    value = await value
                text: str = format_result(value)
            except Exception as e:
                text = format_exception(e)
            return text

        from ._tools import format_exception, format_result

        return list(await asyncio.gather(*(run(c) for _, c in calls)))

    async def batch(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = True,
                    max_requests_per_second: float | None = None) -> list[Any]:
        """Send many requests (builders or ``{"url", "body"}`` dicts), ``concurrency`` at a time.

        Returns the results in input order: each a response, or the ``VllmError`` that
        request ended with (one failure loses nothing else). Retries follow the client's policy.
        """
        return await run_batch(self, requests, concurrency=concurrency, progress=progress,
                               max_requests_per_second=max_requests_per_second)

    def batch_iter(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = False,
                   max_requests_per_second: float | None = None) -> AsyncIterator[tuple[int, Any]]:
        """Like ``batch`` but yields ``(position, result)`` as each request finishes."""
        items = list(requests)
        return iter_batch(self, items, concurrency=concurrency, max_requests_per_second=max_requests_per_second,
                          progress=Progress(len(items), enabled=progress))

    def completions(self) -> AsyncCompletions:
        """Legacy text completions."""
        return AsyncCompletions(self)

    def embeddings(self) -> AsyncEmbeddings:
        """Embeddings."""
        return AsyncEmbeddings(self)

    async def models(self) -> list[Model]:
        """The models the server serves."""
        return await self._run(self.models_flow())

    async def health(self, timeout: float = 5.0) -> bool:
        """True when ``/health`` answers 200; False otherwise. Never raises."""
        try:
            return await self._run(self.health_flow(timeout))
        except Exception:
            return False

    async def version(self) -> str:
        """The vLLM version."""
        return await self._run(self.version_flow())

    async def tokenize(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                       add_special_tokens: bool | None = None) -> list[int]:
        """Token ids of a text or of chat messages."""
        result = await self.tokenize_result(text_or_messages, model, add_special_tokens=add_special_tokens)
        return result.tokens

    async def tokenize_result(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                              add_special_tokens: bool | None = None,
                              extra: Mapping[str, Any] | None = None) -> TokenizeResult:
        """Like ``tokenize`` but with ``count``, ``max_model_len`` and ``token_strs``."""
        result: TokenizeResult = await self._run(
            self.tokenize_flow(text_or_messages, model, add_special_tokens, extra))
        return result

    async def detokenize(self, tokens: list[int], model: str | None = None) -> str:
        """The text of token ids."""
        return await self._run(self.detokenize_flow(tokens, model))

    def with_options(self, *, timeout: Any = _UNSET, max_retries: Any = _UNSET,
                     default_headers: Any = _UNSET) -> AsyncVllmClient:
        """A copy with some options changed, sharing this client's connection pool."""
        copy = AsyncVllmClient(**self._options(timeout, max_retries, default_headers), transport=self._transport)
        copy._resolved_model = self._resolved_model
        copy._owns_transport = False
        return copy

    async def aclose(self) -> None:
        """Close the connection pool (safe to call twice)."""
        if not self._closed:
            self._closed = True
            if self._owns_transport:
                r = self._transport.close()
                if inspect.isawaitable(r):
                    await r

    close = aclose

    async def __aenter__(self) -> AsyncVllmClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if getattr(self, "_closed", True) or not getattr(self, "_owns_transport", False):
            return
        if isinstance(transport, AiohttpTransport) and transport._session is not None:
            warnings.warn("AsyncVllmClient was not closed: use `async with AsyncVllmClient(...)` "
                          "or `await client.aclose()`", ResourceWarning, stacklevel=1)
