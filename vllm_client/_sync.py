"""``VllmClient``: the synchronous client. Its only I/O is the driver loop ``_run`` (requests
and sleeps) and the tool runner ``_run_tools`` (threads); everything else is shared code."""

from __future__ import annotations

import functools
import inspect
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, overload

from ._config import TimeoutTypes
from ._conversation import MAX_PARALLEL_TOOLS, PreparedCall, call_tool
from ._core import _UNSET, ClientCore, Flow, T
from ._endpoints.audio import Audio
from ._endpoints.base import Creator, endpoint
from ._endpoints.chat import Chat
from ._endpoints.classify import ClassifyBuilder
from ._endpoints.cohere_embed import CohereEmbedBuilder
from ._endpoints.completions import CompletionBuilder
from ._endpoints.decisions import DecisionsBuilder
from ._endpoints.embeddings import EmbeddingBuilder
from ._endpoints.pooling import PoolingBuilder
from ._endpoints.rerank import RerankBuilder
from ._endpoints.responses import Responses
from ._endpoints.score import ScoreBuilder
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
from ._exceptions import InvalidRequestError, VllmError
from ._observe import HookCall
from ._openapi import ServerCheck, check_flow
from ._raw import RawResponse, RawStream, check_raw_request, raw_response
from ._transports import RequestsTransport, SyncTransport

__all__ = ["VllmClient"]


def run_tool(call: Callable[[], Any] | str) -> str:
    """Run one prepared tool call in this thread (``call_tool`` driven with blocking I/O): an
    async tool's awaitable runs on a fresh event loop in a worker thread, which works also
    where this thread already runs a loop (a Jupyter cell, a FastAPI handler)."""
    from ._batch import run_in_thread  # (asyncio is imported only when needed)

    flow = call_tool(call)
    value: Any = None
    error: Exception | None = None
    while True:  # (the async twin: _async.run_tool; the decisions are call_tool's)
        try:
            step = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            text: str = stop.value
            return text
        value = error = None
        try:
            value = run_in_thread(functools.partial(_await, step)) if inspect.isawaitable(step) else step()
        except Exception as e:
            error = e


async def _await(aw: Any) -> Any:
    return await aw


class VllmClient(ClientCore):
    """A synchronous client for vLLM and OpenAI-compatible servers.

    ``VllmClient(base_url=None, *, api_key=None, timeout=None, max_retries=2,
    default_headers=None, default_model=None, event_hooks=None, transport=None, verify=True,
    cert=None, proxy=None, trust_env=True)``; base URL from the argument, ``$VLLM_BASE_URL``,
    ``$OPENAI_BASE_URL`` or ``http://localhost:8000/v1``; API key from the argument,
    ``$VLLM_API_KEY``, or ``$OPENAI_API_KEY`` only for ``$OPENAI_BASE_URL``'s URL. Thread-safe;
    use it as a context manager or call ``close()``.
    """

    _transport_class = RequestsTransport
    _groups = {"chat": Chat, "audio": Audio}
    _transport: SyncTransport
    chat: Chat
    audio: Audio

    def __repr__(self) -> str:
        return self._repr()

    # -- the driver ----------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        """Run a flow: send what it asks to send, sleep what it asks to sleep."""
        send = self._transport.send
        value: Any = None
        error: BaseException | None = None
        while True:  # (the async twin, AsyncVllmClient._run, is this loop with awaits)
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value = error = None
            if step.__class__ is float:
                time.sleep(step)
                continue
            if step.__class__ is HookCall:
                try:
                    step.call()
                except Exception as e:  # (thrown into the flow, which closes what it opened)
                    error = e
                continue
            try:
                value = send(step)  # type: ignore[arg-type]
            except VllmError as e:  # (a transport's typed error: thrown in, so the flow closes what it opened)
                error = e

    def _run_tools(self, calls: list[PreparedCall]) -> list[str]:
        """Run one round of tool calls: one inline, several in a pool of threads."""
        if len(calls) <= 1:  # (none: a turn asked again, see ToolLoop.after)
            return [run_tool(c) for _, c in calls]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_TOOLS, len(calls)),
                                thread_name_prefix="vllm_client-tool") as ex:
            return list(ex.map(run_tool, [c for _, c in calls]))

    # -- batch jobs ------------------------------------------------------------

    def _async_twin(self) -> Any:
        """An ``AsyncVllmClient`` with this client's configuration, for its batch jobs."""
        from ._async import AsyncVllmClient
        from ._transports.mock import MockTransport

        if self._custom_transport:  # never swap the user's transport (proxy, TLS, session) silently
            raise InvalidRequestError(
                "batch() runs on the async engine and cannot use this client's custom sync transport: "
                "use AsyncVllmClient(transport=...).batch(...), or send() the requests in a loop")
        shared = self._transport if isinstance(self._transport, MockTransport) else None
        return self._clone(AsyncVllmClient, shared, owns=shared is None)

    def batch(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = True,
              max_requests_per_second: float | None = None) -> list[Any]:
        """Send many requests (builders or ``{"url": "/v1/...", "body": {...}}`` dicts), ``concurrency``
        at a time, on an asyncio loop in a worker thread. Any iterable: a generator is taken
        lazily (in that thread), with a bounded window of requests in flight.

        Returns the results in input order: each a response, or the ``VllmError`` that
        request ended with (one failure loses nothing else). Retries follow the client's policy.
        """
        from ._batch import sync_batch

        return sync_batch(self, requests, concurrency=concurrency, progress=progress,
                          max_requests_per_second=max_requests_per_second)

    def batch_iter(self, requests: Iterable[Any], *, concurrency: int = 64, progress: bool = False,
                   max_requests_per_second: float | None = None) -> Iterator[tuple[int, Any]]:
        """Like ``batch`` but yields ``(position, result)`` in completion order as they finish.
        Stopping early cancels what has not finished."""
        from ._batch import sync_batch_iter

        return sync_batch_iter(self, requests, concurrency=concurrency, progress=progress,
                               max_requests_per_second=max_requests_per_second)

    # -- any route -----------------------------------------------------------

    @overload
    def request(self, method: str, path: str, *, json: Any = None, stream: Literal[False] = False,
                headers: Mapping[str, str] | None = None, timeout: TimeoutTypes = None) -> RawResponse: ...

    @overload
    def request(self, method: str, path: str, *, json: Any = None, stream: Literal[True],
                headers: Mapping[str, str] | None = None, timeout: TimeoutTypes = None) -> RawStream: ...

    def request(self, method: str, path: str, *, json: Any = None, stream: bool = False,
                headers: Mapping[str, str] | None = None, timeout: TimeoutTypes = None) -> RawResponse | RawStream:
        """Call any route (one the SDK has no method for) with the client's retries, timeouts,
        typed errors, timings and hooks: ``client.request("POST", "/new_route", json={...})``.
        ``path`` is joined to the base URL (``"models"``), or to the server root when it starts
        with ``/`` (``"/health"``, ``"/v1/models"``). Returns a ``RawResponse`` (``.json()``,
        ``.content``), or with ``stream=True`` a ``RawStream`` of ``ServerEvent``s (up to
        ``data: [DONE]``)."""
        m, route, root, hdrs, t = check_raw_request(method, path, headers, timeout)
        response, url = self._run(self.raw_flow(m, route, json, stream=bool(stream), headers=hdrs, timeout=t,
                                                root=root))
        return RawStream(response, url) if stream else raw_response(response, url)

    # -- endpoints -----------------------------------------------------------

    @endpoint
    def completions(self) -> Creator[CompletionBuilder]:
        """Legacy text completions: ``client.completions().create().prompt(...).send()``."""
        return Creator(self, CompletionBuilder)

    @endpoint
    def embeddings(self) -> Creator[EmbeddingBuilder]:
        """Embeddings: ``client.embeddings().create().input(...).send()``."""
        return Creator(self, EmbeddingBuilder)

    @endpoint
    def responses(self) -> Responses:
        """The Responses API: ``client.responses().create().input(...).send()``, ``.retrieve(id)``, ``.cancel(id)``."""
        return Responses(self)

    def load(self) -> int:
        """The server's load: requests in flight (``GET /load`` at the server root)."""
        return self._run(load_flow(self))

    def metrics(self) -> Metrics:
        """The server's Prometheus metrics (``GET /metrics`` at the server root), parsed."""
        return self._run(metrics_flow(self))

    def load_lora_adapter(self, name: str, path: str, *, load_inplace: bool | None = None) -> str:
        """Load a LoRA adapter at runtime (the server needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``);
        it is then served as model ``name``. Returns the server's message."""
        return self._run(load_lora_flow(self, name, path, load_inplace))

    def unload_lora_adapter(self, name: str) -> str:
        """Unload a LoRA adapter loaded at runtime. Returns the server's message."""
        return self._run(unload_lora_flow(self, name))

    @endpoint
    def rerank(self) -> Creator[RerankBuilder]:
        """Rerank documents for a query (``POST /v1/rerank``, vLLM pooling servers):
        ``client.rerank().create().query(q).documents([...]).top_n(k).send()``."""
        return Creator(self, RerankBuilder)

    @endpoint
    def score(self) -> Creator[ScoreBuilder]:
        """Score text pairs (``POST /v1/score``): ``client.score().create().queries(q).documents([...]).send()``."""
        return Creator(self, ScoreBuilder)

    @endpoint
    def classify(self) -> Creator[ClassifyBuilder]:
        """Classify texts (``POST /classify`` at the server root): ``client.classify().create().input([...]).send()``."""
        return Creator(self, ClassifyBuilder)

    @endpoint
    def pooling(self) -> Creator[PoolingBuilder]:
        """The raw pooler output (``POST /pooling`` at the server root)."""
        return Creator(self, PoolingBuilder)

    @endpoint
    def cohere_embed(self) -> Creator[CohereEmbedBuilder]:
        """Cohere-style embeddings (``POST /v2/embed`` at the server root)."""
        return Creator(self, CohereEmbedBuilder)

    def models(self) -> ModelList:
        """The models the server serves (``GET /models``)."""
        return self._run(models_flow(self))

    def health(self, timeout: float = 5.0) -> bool:
        """True when the server's ``/health`` answers 200; False otherwise. Never raises."""
        try:
            return self._run(health_flow(self, timeout))
        except Exception:
            return False

    def version(self) -> str:
        """The vLLM version (``GET /version`` at the server root)."""
        return self._run(version_flow(self))

    def tokenize(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                 add_special_tokens: bool | None = None) -> list[int]:
        """Token ids of a text or of chat messages (with the chat template applied)."""
        return self.tokenize_result(text_or_messages, model, add_special_tokens=add_special_tokens).tokens

    def tokenize_result(self, text_or_messages: str | list[dict[str, Any]], model: str | None = None, *,
                        add_special_tokens: bool | None = None,
                        extra: Mapping[str, Any] | None = None) -> TokenizeResult:
        """Like ``tokenize`` but with ``count``, ``max_model_len`` and ``token_strs``."""
        return self._run(tokenize_flow(self, text_or_messages, model, add_special_tokens, extra))

    def decisions(self) -> Creator[DecisionsBuilder]:
        """Typed questions over a text (``POST /decisions``, vLLM 0.33+): ``client.decisions().create()
        .model(m).input(text).predicate("Is it spam?").send().answers``."""
        return Creator(self, DecisionsBuilder)

    def check_server(self) -> ServerCheck:
        """Read the server's ``/openapi.json`` (and ``/version``): the routes and request fields the
        SDK does not type (reach them with ``client.request()`` / ``extra()``) and the fields it sends
        that this server does not take."""
        return self._run(check_flow(self))

    def detokenize(self, tokens: list[int], model: str | None = None) -> str:
        """The text of token ids."""
        return self._run(detokenize_flow(self, tokens, model))

    # -- lifecycle -----------------------------------------------------------

    def with_options(self, *, timeout: Any = _UNSET, max_retries: Any = _UNSET,
                     default_headers: Any = _UNSET) -> VllmClient:
        """A copy with some options changed, sharing this client's connection pool."""
        copy: VllmClient = self._clone(VllmClient, self._transport, owns=False, timeout=timeout,
                                       max_retries=max_retries, default_headers=default_headers)
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
            if getattr(self, "_unpickled", False):  # a builder's client, unpickled: nobody could close it
                return
            warnings.warn("VllmClient was not closed: use `with VllmClient(...)` or call close()",
                          ResourceWarning, stacklevel=1)
        except Exception:
            pass
