"""``AsyncVllmClient``: the asyncio client. Its only I/O is the driver loop ``_run`` (requests
and sleeps) and the tool runner ``_run_tools``; aiohttp is imported when the first one is made."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Literal, NoReturn, overload

from ._batch import iter_batch, known_length, library_progress, prepared, run_batch
from ._config import TimeoutTypes
from ._conversation import MAX_PARALLEL_TOOLS, PreparedCall, call_tool
from ._core import _UNSET, ClientCore, Flow, T
from ._endpoints.audio import AsyncAudio
from ._endpoints.base import Creator, endpoint
from ._endpoints.chat import AsyncChat
from ._endpoints.classify import AsyncClassifyBuilder
from ._endpoints.cohere_embed import AsyncCohereEmbedBuilder
from ._endpoints.completions import AsyncCompletionBuilder
from ._endpoints.decisions import AsyncDecisionsBuilder
from ._endpoints.embeddings import AsyncEmbeddingBuilder
from ._endpoints.pooling import AsyncPoolingBuilder
from ._endpoints.rerank import AsyncRerankBuilder
from ._endpoints.responses import AsyncResponses
from ._endpoints.score import AsyncScoreBuilder
from ._endpoints.server import (
    Metrics,
    ModelList,
    TokenizeResult,
    detokenize_flow,
    health_flow,
    load_flow,
    load_lora_flow,
    metrics_flow,
    models_flow,
    tokenize_flow,
    unload_lora_flow,
    version_flow,
)
from ._exceptions import VllmError
from ._observe import HookCall
from ._openapi import ServerCheck, check_flow
from ._raw import AsyncRawStream, RawResponse, check_raw_request, raw_response
from ._transports import AsyncTransport
from ._transports.aiohttp import AiohttpTransport

__all__ = ["AsyncVllmClient"]


async def run_tool(call: Callable[[], Any] | str, limit: asyncio.Semaphore, pool: Executor) -> str:
    """Run one prepared tool call (``call_tool`` driven on the event loop): a sync tool in a
    thread of ``pool`` (with the caller's context variables), an async tool's awaitable awaited here."""
    loop = asyncio.get_running_loop()
    async with limit:
        flow = call_tool(call)
        value: Any = None
        error: Exception | None = None
        while True:  # (the sync twin: _sync.run_tool; the decisions are call_tool's)
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                text: str = stop.value
                return text
            value = error = None
            try:
                if inspect.isawaitable(step):
                    value = await step
                else:
                    value = await loop.run_in_executor(pool, contextvars.copy_context().run, step)
            except Exception as e:
                error = e


class AsyncVllmClient(ClientCore):
    """The asyncio client; same arguments and methods as ``VllmClient``, awaitable.

    Use ``async with AsyncVllmClient(...) as client:`` or ``await client.aclose()``.
    One client belongs to one event loop. Event hooks may be async functions (awaited).
    """

    _sync_hooks = False

    _transport_class = AiohttpTransport
    _groups = {"chat": AsyncChat, "audio": AsyncAudio}
    _transport: AsyncTransport
    chat: AsyncChat
    audio: AsyncAudio

    def _use_transport(self, transport: Any, default: Callable[..., Any], **options: Any) -> Any:
        self._created_at = _created_at()  # (where the client is made: for the warning of one never closed)
        return super()._use_transport(transport, default, **options)

    def __repr__(self) -> str:
        return self._repr()

    async def _run(self, flow: Flow[T]) -> T:
        """Run a flow: send what it asks to send, sleep what it asks to sleep."""
        send = self._transport.asend
        value: Any = None
        error: BaseException | None = None
        while True:  # (the sync twin, VllmClient._run, is this loop without awaits)
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value = error = None
            if step.__class__ is float:
                await asyncio.sleep(step)
                continue
            if step.__class__ is HookCall:
                try:
                    await step.acall()
                except Exception as e:  # (thrown into the flow, which closes what it opened)
                    error = e
                continue
            try:
                value = await send(step)  # type: ignore[arg-type]
            except VllmError as e:  # (a transport's typed error: thrown in, so the flow closes what it opened)
                error = e

    async def _run_tools(self, calls: list[PreparedCall]) -> list[str]:
        """Run one round of tool calls concurrently (at most ``MAX_PARALLEL_TOOLS`` at a time)."""
        limit = asyncio.Semaphore(MAX_PARALLEL_TOOLS)
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_TOOLS, len(calls)) or 1,
                                thread_name_prefix="vllm_client-tool") as pool:
            return list(await asyncio.gather(*(run_tool(c, limit, pool) for _, c in calls)))

    async def batch(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = True,
                    max_requests_per_second: float | None = None) -> list[Any]:
        """Send many requests (builders or ``{"url", "body"}`` dicts), ``concurrency`` at a time.
        Any iterable: a generator is taken lazily, with a bounded window of requests in flight.

        Returns the results in input order: each a response, or the ``VllmError`` that
        request ended with (one failure loses nothing else). Retries follow the client's policy.
        """
        return await run_batch(self, requests, concurrency=concurrency, progress=progress,
                               max_requests_per_second=max_requests_per_second)

    def batch_iter(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = False,
                   max_requests_per_second: float | None = None) -> AsyncIterator[tuple[int, Any]]:
        """Like ``batch`` but yields ``(position, result)`` as each request finishes."""
        items = prepared(requests)  # a list is checked whole, any other iterable taken lazily
        return iter_batch(self, items, concurrency=concurrency, max_requests_per_second=max_requests_per_second,
                          progress=library_progress(known_length(items), progress))

    @overload
    async def request(self, method: str, path: str, *, json: Any = None, stream: Literal[False] = False,
                      headers: Mapping[str, str] | None = None, timeout: TimeoutTypes = None) -> RawResponse: ...

    @overload
    async def request(self, method: str, path: str, *, json: Any = None, stream: Literal[True],
                      headers: Mapping[str, str] | None = None,
                      timeout: TimeoutTypes = None) -> AsyncRawStream: ...

    async def request(self, method: str, path: str, *, json: Any = None, stream: bool = False,
                      headers: Mapping[str, str] | None = None,
                      timeout: TimeoutTypes = None) -> RawResponse | AsyncRawStream:
        """Call any route with the client's retries, timeouts, typed errors, timings and hooks
        (see ``VllmClient.request``); with ``stream=True`` an ``AsyncRawStream`` of SSE events."""
        m, route, root, hdrs, t = check_raw_request(method, path, headers, timeout)
        response, url = await self._run(self.raw_flow(m, route, json, stream=bool(stream), headers=hdrs,
                                                      timeout=t, root=root))
        return AsyncRawStream(response, url) if stream else raw_response(response, url)

    @endpoint
    def completions(self) -> Creator[AsyncCompletionBuilder]:
        """Legacy text completions."""
        return Creator(self, AsyncCompletionBuilder)

    @endpoint
    def embeddings(self) -> Creator[AsyncEmbeddingBuilder]:
        """Embeddings."""
        return Creator(self, AsyncEmbeddingBuilder)

    @endpoint
    def responses(self) -> AsyncResponses:
        """The Responses API: ``client.responses().create().input(...).send()``, ``.retrieve(id)``, ``.cancel(id)``."""
        return AsyncResponses(self)

    async def load(self) -> int:
        """The server's load: requests in flight (``GET /load`` at the server root)."""
        return await self._run(load_flow(self))

    async def metrics(self) -> Metrics:
        """The server's Prometheus metrics (``GET /metrics`` at the server root), parsed."""
        return await self._run(metrics_flow(self))

    async def load_lora_adapter(self, name: str, path: str, *, load_inplace: bool | None = None) -> str:
        """Load a LoRA adapter at runtime (the server needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``);
        it is then served as model ``name``. Returns the server's message."""
        return await self._run(load_lora_flow(self, name, path, load_inplace))

    async def unload_lora_adapter(self, name: str) -> str:
        """Unload a LoRA adapter loaded at runtime. Returns the server's message."""
        return await self._run(unload_lora_flow(self, name))

    @endpoint
    def rerank(self) -> Creator[AsyncRerankBuilder]:
        """Rerank documents for a query (``POST /v1/rerank``, vLLM pooling servers):
        ``client.rerank().create().query(q).documents([...]).top_n(k).send()``."""
        return Creator(self, AsyncRerankBuilder)

    @endpoint
    def score(self) -> Creator[AsyncScoreBuilder]:
        """Score text pairs (``POST /v1/score``): ``client.score().create().queries(q).documents([...]).send()``."""
        return Creator(self, AsyncScoreBuilder)

    @endpoint
    def classify(self) -> Creator[AsyncClassifyBuilder]:
        """Classify texts (``POST /classify`` at the server root): ``client.classify().create().input([...]).send()``."""
        return Creator(self, AsyncClassifyBuilder)

    @endpoint
    def pooling(self) -> Creator[AsyncPoolingBuilder]:
        """The raw pooler output (``POST /pooling`` at the server root)."""
        return Creator(self, AsyncPoolingBuilder)

    @endpoint
    def cohere_embed(self) -> Creator[AsyncCohereEmbedBuilder]:
        """Cohere-style embeddings (``POST /v2/embed`` at the server root)."""
        return Creator(self, AsyncCohereEmbedBuilder)

    async def models(self) -> ModelList:
        """The models the server serves."""
        return await self._run(models_flow(self))

    async def health(self, timeout: float = 5.0) -> bool:
        """True when ``/health`` answers 200; False otherwise. Never raises."""
        try:
            return await self._run(health_flow(self, timeout))
        except Exception:
            return False

    async def version(self) -> str:
        """The vLLM version."""
        return await self._run(version_flow(self))

    async def tokenize(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                       add_special_tokens: bool | None = None) -> list[int]:
        """Token ids of a text or of chat messages."""
        result = await self.tokenize_result(text_or_messages, model, add_special_tokens=add_special_tokens)
        return result.tokens

    async def tokenize_result(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                              add_special_tokens: bool | None = None,
                              extra: Mapping[str, Any] | None = None) -> TokenizeResult:
        """Like ``tokenize`` but with ``count``, ``max_model_len`` and ``token_strs``."""
        return await self._run(tokenize_flow(self, text_or_messages, model, add_special_tokens, extra))

    def decisions(self) -> Creator[AsyncDecisionsBuilder]:
        """Typed questions over a text (``POST /decisions``, vLLM 0.33+): ``client.decisions().create()
        .model(m).input(text).predicate("Is it spam?").send().answers``."""
        return Creator(self, AsyncDecisionsBuilder)

    async def check_server(self) -> ServerCheck:
        """Read the server's ``/openapi.json`` (and ``/version``): the routes and request fields the
        SDK does not type (reach them with ``client.request()`` / ``extra()``) and the fields it sends
        that this server does not take."""
        return await self._run(check_flow(self))

    async def detokenize(self, tokens: list[int], model: str | None = None) -> str:
        """The text of token ids."""
        return await self._run(detokenize_flow(self, tokens, model))

    def with_options(self, *, timeout: Any = _UNSET, max_retries: Any = _UNSET,
                     default_headers: Any = _UNSET) -> AsyncVllmClient:
        """A copy with some options changed, sharing this client's connection pool."""
        copy: AsyncVllmClient = self._clone(AsyncVllmClient, self._transport, owns=False, timeout=timeout,
                                            max_retries=max_retries, default_headers=default_headers)
        return copy

    async def aclose(self) -> None:
        """Close the connection pool (safe to call twice)."""
        if not self._closed:
            self._closed = True
            if self._owns_transport:
                await self._transport.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncVllmClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __enter__(self) -> NoReturn:
        raise TypeError("AsyncVllmClient is used with `async with AsyncVllmClient(...) as client:` "
                        "(inside a coroutine), not `with`; VllmClient is the synchronous client")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        pass  # (never reached: __enter__ raises; defined so that `with` calls __enter__)

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if getattr(self, "_closed", True) or not getattr(self, "_owns_transport", False):
            return
        if not isinstance(transport, AiohttpTransport):
            return
        loop = transport._loop
        if not transport._abandon():  # (closes the connections; aiohttp's own warning is not shown)
            return
        where = getattr(self, "_created_at", None)
        message = (f"AsyncVllmClient{f' created at {where}' if where else ''} was never closed: use "
                   "`async with AsyncVllmClient(...) as client:` or `await client.aclose()` when done")
        try:
            warnings.warn(message, ResourceWarning, stacklevel=1, source=self)
            if loop is not None and not loop.is_closed():  # shown even where ResourceWarning is not
                loop.call_exception_handler({"message": message})
        except Exception:
            pass


def _created_at() -> str | None:
    """``file:line`` of the code outside this package that is creating a client."""
    f: Any = sys._getframe(2)
    package = os.path.dirname(os.path.abspath(__file__))
    while f is not None and f.f_code.co_filename.startswith(package):
        f = f.f_back
    return None if f is None else f"{f.f_code.co_filename}:{f.f_lineno}"
