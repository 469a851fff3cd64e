"""``VllmClient``: the synchronous client. The only sync I/O is the driver loop ``_run``."""

from __future__ import annotations

import inspect
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from ._builders import ChatBody, CompletionBody, EmbeddingBody
from ._config import TimeoutTypes
from ._conversation import ConversationBase, ConversationState, PreparedCall, ToolLoop
from ._core import _UNSET, ClientCore, Flow, T
from ._exceptions import APIConnectionError
from ._models import (
    ChatCompletionResponse,
    CompletionResponse,
    EmbeddingResponse,
    Model,
    StreamEvent,
    TokenizeResult,
)
from ._stream import ChatStream, StreamAccumulator
from ._transport import MockTransport, RequestsTransport, SyncTransport

__all__ = ["VllmClient", "ChatCompletionBuilder", "CompletionBuilder", "EmbeddingBuilder", "Conversation"]


def run_call(call: Callable[[], Any] | str) -> str:
    """Run one prepared tool call in this thread; its result (or error) as the tool message text."""
    from ._tools import format_exception, format_result

    if isinstance(call, str):
        return call
    try:
        value = call()
        if inspect.isawaitable(value):  # an async tool under the sync client
            # Awaited on a fresh loop in a worker thread: works also where this thread already
            # runs an event loop (a Jupyter cell, a FastAPI handler), where asyncio.run() cannot.
            awaitable = value
            value = _run_in_thread(lambda: _await(awaitable))
        text: str = format_result(value)
    except Exception as e:
        text = format_exception(e)
    return text


async def _await(aw: Any) -> Any:
    return await aw


def _run_in_thread(main: Callable[[], Any]) -> Any:
    """Run a coroutine function on a fresh event loop in a worker thread (safe even when the
    caller's thread already runs a loop); return its result or raise its exception."""
    import asyncio

    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, asyncio.run(main())))
        except BaseException as e:
            box.append((False, e))

    t = threading.Thread(target=target, name="vllm_client-loop", daemon=True)
    t.start()
    t.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


class ChatCompletionBuilder(ChatBody):
    """Builds one chat completion request; ``send()`` or ``send_stream()`` it."""

    _client: VllmClient

    def send(self) -> ChatCompletionResponse:
        """Send and return the whole response (a ``.stream(True)`` request is streamed and accumulated)."""
        if self._streams():
            result: ChatCompletionResponse = self.send_stream().final_response()
            return result
        c = self._client
        return c._run(c.builder_flow(self, ChatCompletionResponse.from_dict, "chat completion"))

    def send_stream(self) -> ChatStream:
        """Send with ``stream: true``; iterate the returned ``ChatStream`` for typed events."""
        c = self._client
        response, url = c._run(c.stream_flow(self))
        return ChatStream(response, StreamAccumulator(chat=True, url=url))

    def run_tools(self, max_rounds: int = 8) -> ChatCompletionResponse:
        """Send, run the Python tools the model asks for (in parallel), send the results back,
        and repeat until the model answers without tool calls; return that final response.

        Bad arguments, unknown tools and exceptions in a tool go back to the model as
        ``error: ...``; still asking for tools after ``max_rounds`` raises ``ToolLoopError``.
        """
        return self._tool_loop(max_rounds)[0]

    def _tool_loop(self, max_rounds: int) -> tuple[ChatCompletionResponse, ToolLoop]:
        loop = ToolLoop(self, self._toolset, max_rounds)
        while True:
            response = loop.next_builder().send()
            calls = loop.after(response)
            if calls is None:
                return response, loop
            loop.add_results(self._client._execute_tools(calls))

    def run_tools_stream(self, max_rounds: int = 8) -> Iterator[StreamEvent]:
        """Like ``run_tools`` but streamed: yields the events of every round (a ``Done`` per round)."""
        loop = ToolLoop(self, self._toolset, max_rounds)
        while True:
            with loop.next_builder().send_stream() as stream:
                yield from stream
                response = stream.final_response()
            calls = loop.after(response)
            if calls is None:
                return
            loop.add_results(self._client._execute_tools(calls))


class CompletionBuilder(CompletionBody):
    """Builds one legacy text completion request."""

    _client: VllmClient

    def send(self) -> CompletionResponse:
        """Send and return the whole response."""
        if self._streams():
            result: CompletionResponse = self.send_stream().final_response()
            return result
        c = self._client
        return c._run(c.builder_flow(self, CompletionResponse.from_dict, "completion"))

    def send_stream(self) -> ChatStream:
        """Stream: ``ContentDelta`` events, ``UsageEvent``, then ``Done`` with a ``CompletionResponse``."""
        c = self._client
        response, url = c._run(c.stream_flow(self))
        return ChatStream(response, StreamAccumulator(chat=False, url=url))


class EmbeddingBuilder(EmbeddingBody):
    """Builds one embeddings request."""

    _client: VllmClient

    def send(self) -> EmbeddingResponse:
        """Send and return the embeddings."""
        c = self._client
        return c._run(c.builder_flow(self, EmbeddingResponse.from_dict, "embeddings"))


class _Creator:
    def __init__(self, client: VllmClient) -> None:
        self._client = client


class ChatCompletions(_Creator):
    """``client.chat.completions()``."""

    def create(self) -> ChatCompletionBuilder:
        """A new chat completion builder."""
        return ChatCompletionBuilder(self._client)


class Completions(_Creator):
    """``client.completions()``."""

    def create(self) -> CompletionBuilder:
        """A new legacy completion builder."""
        return CompletionBuilder(self._client)


class Embeddings(_Creator):
    """``client.embeddings()``."""

    def create(self) -> EmbeddingBuilder:
        """A new embeddings builder."""
        return EmbeddingBuilder(self._client)


class Chat:
    """``client.chat``: chat completions (and conversations)."""

    def __init__(self, client: VllmClient) -> None:
        self._client = client
        self._completions = ChatCompletions(client)  # stateless: one is enough

    def completions(self) -> ChatCompletions:
        """The chat completions endpoint: ``.create()`` gives a builder."""
        return self._completions

    def conversation(self, model: str | None = None, system: str | None = None, *,
                     messages: list[dict[str, Any]] | None = None, tools: Iterable[Any] | None = None,
                     keep_reasoning: bool = False, **defaults: Any) -> Conversation:
        """A multi-turn conversation; ``defaults`` are builder setters applied to every turn
        (e.g. ``temperature=0.3``); ``messages`` resumes a saved history."""
        return Conversation(self._client, ConversationState(
            model=model, system=system, messages=messages, tools=tools,
            keep_reasoning=keep_reasoning, defaults=defaults))


class Conversation(ConversationBase):
    """A chat whose history (``messages``, plain dicts) grows one complete turn at a time.

    A turn is committed only when its reply is complete: a failed or cut request
    leaves the history as it was. When the conversation has Python tools, ``send``
    runs them (the tool loop) and keeps every tool message in the history.
    """

    _builder_class = ChatCompletionBuilder

    def send(self, text: str | list[Any] | dict[str, Any], *, tools: Iterable[Any] | None = None,
             builder: ChatCompletionBuilder | None = None, max_rounds: int = 8) -> ChatCompletionResponse:
        """Send a user turn and return the reply; both join the history once the reply is complete."""
        user, b = self._turn(text, tools, builder)
        response: ChatCompletionResponse
        loop: ToolLoop | None
        if b._toolset is not None and b._toolset.functions:
            response, loop = b._tool_loop(max_rounds)
        else:
            response, loop = b.send(), None
        self._commit_loop(user, response, loop)
        return response

    def stream(self, text: str | list[Any] | dict[str, Any], *,
               builder: ChatCompletionBuilder | None = None) -> ChatStream:
        """Stream a user turn; the turn joins the history when the stream finishes well."""
        user, b = self._turn(text, None, builder)
        stream: ChatStream = b.send_stream()
        stream.on_complete = self._commit_stream(user)
        return stream


class VllmClient(ClientCore):
    """A synchronous client for vLLM and OpenAI-compatible servers.

    ``VllmClient(base_url=None, *, api_key=None, timeout=None, max_retries=2,
    default_headers=None, default_model=None)``; base URL from the argument,
    ``$VLLM_BASE_URL``, ``$OPENAI_BASE_URL`` or ``http://localhost:8000/v1``.
    Thread-safe; use it as a context manager or call ``close()``.
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
        transport: SyncTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                         default_headers=default_headers, default_model=default_model)
        self._owns_transport = True  # a copy made by with_options() shares it and does not close it
        self._custom_transport = transport is not None and not isinstance(transport, MockTransport)
        self._transport: SyncTransport = transport if transport is not None else RequestsTransport()
        self._closed = False
        self.chat = Chat(self)

    def __repr__(self) -> str:
        return self._repr()

    # -- the driver ----------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
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
                time.sleep(step)
                continue
            try:
                value = send(step)  # type: ignore[arg-type]
            except APIConnectionError as e:
                error = e

    def _execute_tools(self, calls: list[PreparedCall]) -> list[str]:
        """Run one round of tool calls, in parallel threads when there are several."""
        if len(calls) == 1:
            return [run_call(calls[0][1])]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(calls)), thread_name_prefix="vllm_client-tool") as ex:
            return list(ex.map(run_call, [c for _, c in calls]))

    # -- batch jobs ------------------------------------------------------------

    def _async_twin(self) -> Any:
        from ._async import AsyncVllmClient
        from ._exceptions import InvalidRequestError

        if self._custom_transport:  # never swap the user's transport (proxy, TLS, session) silently
            raise InvalidRequestError(
                "batch() runs on the async engine and cannot use this client's custom sync transport: "
                "use AsyncVllmClient(transport=...).batch(...), or send() the requests in a loop")

        shared = self._transport if isinstance(self._transport, MockTransport) else None
        twin = AsyncVllmClient(**self._options(_UNSET, _UNSET, _UNSET), transport=shared)
        twin._resolved_model = self._resolved_model
        twin._owns_transport = shared is None
        return twin

    def batch(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = True,
              max_requests_per_second: float | None = None) -> list[Any]:
        """Send many requests (builders or ``{"url": "/v1/...", "body": {...}}`` dicts), ``concurrency``
        at a time, on an asyncio loop in a worker thread.

        Returns the results in input order: each a response, or the ``VllmError`` that
        request ended with (one failure loses nothing else). Retries follow the client's policy.
        """
        from ._batch import run_batch, to_batch_request

        items = [to_batch_request(r) for r in requests]  # bad input fails here, before sending

        async def main() -> list[Any]:
            async with self._async_twin() as twin:
                return await run_batch(twin, items, concurrency=concurrency, progress=progress,
                                       max_requests_per_second=max_requests_per_second)

        results: list[Any] = _run_in_thread(main)
        return results

    def batch_iter(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = False,
                   max_requests_per_second: float | None = None) -> Iterator[tuple[int, Any]]:
        """Like ``batch`` but yields ``(position, result)`` in completion order as they finish.
        Stopping early cancels what has not finished."""
        import asyncio

        from ._batch import Progress, iter_batch, to_batch_request

        items = [to_batch_request(r) for r in requests]
        results: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        done = object()

        async def main() -> None:
            try:
                async with self._async_twin() as twin:
                    it = iter_batch(twin, items, concurrency=concurrency, progress=Progress(len(items), enabled=progress),
                                    max_requests_per_second=max_requests_per_second)
                    async for pair in it:
                        results.put(pair)
                        if stop.is_set():
                            break
                    await it.aclose()  # type: ignore[attr-defined]
            except BaseException as e:  # hand any failure to the consumer
                results.put(e)
            finally:
                results.put(done)

        worker = threading.Thread(target=lambda: asyncio.run(main()), name="vllm_client-batch", daemon=True)
        worker.start()
        try:
            while True:
                item = results.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=30)

    # -- endpoints -----------------------------------------------------------

    def completions(self) -> Completions:
        """Legacy text completions: ``client.completions().create().prompt(...).send()``."""
        return Completions(self)

    def embeddings(self) -> Embeddings:
        """Embeddings: ``client.embeddings().create().input(...).send()``."""
        return Embeddings(self)

    def models(self) -> list[Model]:
        """The models the server serves (``GET /models``)."""
        return self._run(self.models_flow())

    def health(self, timeout: float = 5.0) -> bool:
        """True when the server's ``/health`` answers 200; False otherwise. Never raises."""
        try:
            return self._run(self.health_flow(timeout))
        except Exception:
            return False

    def version(self) -> str:
        """The vLLM version (``GET /version`` at the server root)."""
        return self._run(self.version_flow())

    def tokenize(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                 add_special_tokens: bool | None = None) -> list[int]:
        """Token ids of a text or of chat messages (with the chat template applied)."""
        return self.tokenize_result(text_or_messages, model, add_special_tokens=add_special_tokens).tokens

    def tokenize_result(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                        add_special_tokens: bool | None = None,
                        extra: Mapping[str, Any] | None = None) -> TokenizeResult:
        """Like ``tokenize`` but with ``count``, ``max_model_len`` and ``token_strs``."""
        result: TokenizeResult = self._run(self.tokenize_flow(text_or_messages, model, add_special_tokens, extra))
        return result

    def detokenize(self, tokens: list[int], model: str | None = None) -> str:
        """The text of token ids."""
        return self._run(self.detokenize_flow(tokens, model))

    # -- lifecycle -----------------------------------------------------------

    def with_options(self, *, timeout: Any = _UNSET, max_retries: Any = _UNSET,
                     default_headers: Any = _UNSET) -> VllmClient:
        """A copy with some options changed, sharing this client's connection pool."""
        copy = VllmClient(**self._options(timeout, max_retries, default_headers), transport=self._transport)
        copy._custom_transport = self._custom_transport
        copy._resolved_model = self._resolved_model
        copy._owns_transport = False
        return copy

    def close(self) -> None:
        """Close the connection pool (safe to call twice)."""
        if not self._closed:
            self._closed = True
            if self._owns_transport:
                self._transport.close()

    def __enter__(self) -> VllmClient:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) or not getattr(self, "_owns_transport", False):
            return
        try:
            self._closed = True
            self._transport.close()
            warnings.warn("VllmClient was not closed: use `with VllmClient(...)` or call close()",
                          ResourceWarning, stacklevel=1)
        except Exception:
            pass
