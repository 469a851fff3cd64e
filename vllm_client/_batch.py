"""Batch jobs: many requests, bounded concurrency, an optional rate limit, progress.

The engine is async (``run_batch``); ``VllmClient.batch`` runs it on a private
event loop in a worker thread, so sync code gets the same throughput. Requests
are builders (chat, completions, embeddings; of either client) or dicts
``{"url": "/v1/chat/completions", "body": {...}}``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from ._config import Timeout
from ._endpoints import parsers
from ._exceptions import InvalidRequestError
from ._validate import check_finite

__all__ = ["BatchRequest", "to_batch_request", "run_batch", "iter_batch", "Progress", "sync_batch",
           "sync_batch_iter"]


def _raw(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


@dataclass(slots=True)
class BatchRequest:
    """One request of a batch: an API path (relative to the base URL), a body, and its parser."""

    path: str
    body: dict[str, Any]
    parse: Callable[[dict[str, Any]], Any]
    what: str
    headers: dict[str, str] | None = None
    timeout: Timeout | None = None  # the builder's own .timeout(), else the client's
    root: bool = False  # the path is at the server root
    route_hint: str | None = None  # what a 404 for a missing route means (the builder's)
    builder: Any = None  # a chat builder with parse_retries(n): its re-ask flow is run instead


def to_batch_request(item: Any) -> BatchRequest:
    """A builder or a ``{"url", "body"}`` dict as a ``BatchRequest`` (checked before anything is sent)."""
    from ._endpoints.base import _Builder

    if isinstance(item, BatchRequest):
        return item
    if isinstance(item, _Builder):
        body, headers, timeout = item._request_parts(False)
        check_finite(body)  # every request is checked before the first is sent
        reask = item if getattr(item, "_parse_retries", 0) and item._output is not None else None
        return BatchRequest(item._path, body, item._parse, item._what, headers, timeout, item._root,
                            getattr(item, "_route_hint", None), reask)
    if isinstance(item, dict):
        url = item.get("url")
        raw_body = item.get("body")
        if not isinstance(url, str) or not url.startswith("/"):
            raise InvalidRequestError(f"batch request {str(item)[:80]}: 'url' must be a server path such as "
                                      "'/v1/chat/completions'")
        if not isinstance(raw_body, dict):
            raise InvalidRequestError(f"batch request for {url}: 'body' must be a JSON object")
        path = url[3:] if url.startswith("/v1/") else url
        parse, what = parsers().get(path, (_raw, path))
        body = dict(raw_body)
        body.pop("stream", None)
        check_finite(body, f"batch request for {url}: body")
        return BatchRequest(path, body, parse, what)
    raise InvalidRequestError(f"batch: expected builders or {{'url', 'body'}} dicts, got {type(item).__name__}")


class RateLimiter:
    """At most ``rate`` request starts per second (evenly spaced); None for no limit."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
            raise InvalidRequestError(f"max_requests_per_second={rate!r}: expected a positive number or None")
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(self.next_at, now)
        self.next_at = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


class Progress:
    """A progress line on stderr: done/total, rate, ETA, errors. A bar on a terminal (10 updates
    a second at most); plain lines every few seconds otherwise."""

    def __init__(self, total: int | None, *, enabled: bool = True, out: TextIO | None = None,
                 every: float | None = None) -> None:
        self.total = total
        self.out = out or sys.stderr
        self.enabled = enabled
        self.tty = self.out.isatty()
        self.every = every if every is not None else (0.1 if self.tty else 5.0)
        self.done = 0
        self.errors = 0
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, error: bool = False) -> None:
        """Count one finished request."""
        self.done += 1
        if error:
            self.errors += 1
        if self.enabled:
            now = time.monotonic()
            if now - self._last >= self.every:
                self._last = now
                self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The current status as text."""
        elapsed = max((time.monotonic() if now is None else now) - self.start, 1e-9)
        rate = self.done / elapsed
        total = self.total
        parts = [f"{self.done}/{total}" if total is not None else f"{self.done}"]
        if total:
            parts.insert(0, f"{100 * self.done / total:5.1f}%")
        parts.append(f"{rate:.1f} req/s")
        if total and rate > 0 and self.done < total:
            parts.append(f"ETA {_duration((total - self.done) / rate)}")
        parts.append(f"elapsed {_duration(elapsed)}")
        parts.append(f"errors {self.errors}")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total) if self.total else 0
            self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
        else:
            self.out.write(f"batch: {text}\n")
        self.out.flush()

    def close(self) -> None:
        """Draw the final state."""
        if self.enabled:
            self._draw(time.monotonic())
            if self.tty:
                self.out.write("\n")
            self.out.flush()


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


async def _one(client: Any, req: BatchRequest) -> Any:
    """Send one batch request (the flow ``send()`` runs, with the client's retry policy); the
    response, or the exception it ended with."""
    if req.builder is not None:  # parse_retries(n): the builder's re-ask flow
        from ._structured import reask_flow

        flow = reask_flow(client, req.builder, req.builder._parse_retries)
    else:
        flow = client.request_flow(req.path, dict(req.body), req.parse, req.what, headers=req.headers,
                                   timeout=req.timeout, root=req.root, route_hint=req.route_hint)
    try:
        return await client._run(flow)
    except Exception as e:  # a VllmError, or whatever a custom transport raised: this item ends with it
        return e


async def iter_batch(client: Any, requests: Iterable[Any], *, concurrency: int = 64,
                     max_requests_per_second: float | None = None,
                     progress: Progress | None = None) -> AsyncIterator[tuple[int, Any]]:
    """Yield ``(position, result)`` as requests finish; ``concurrency`` at a time."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequestError(f"concurrency={concurrency!r}: expected an integer >= 1")
    items = [to_batch_request(r) for r in requests]  # bad input fails before anything is sent
    limiter = RateLimiter(max_requests_per_second)
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    feed = iter(enumerate(items))

    async def worker() -> None:
        for i, req in feed:  # the iterator is shared: each worker takes the next request
            await limiter.wait()
            result = await _one(client, req)
            if progress is not None:
                progress.update(error=isinstance(result, BaseException))
            await queue.put((i, result))

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(items)) or 1)]
    try:
        for _ in range(len(items)):
            yield await queue.get()
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if progress is not None:
            progress.close()


async def run_batch(client: Any, requests: Iterable[Any], *, concurrency: int = 64,
                    max_requests_per_second: float | None = None, progress: bool = True) -> list[Any]:
    """All results in input order (a response, or the exception (a ``VllmError`` as a rule) that request ended with)."""
    items = list(requests)
    results: list[Any] = [None] * len(items)
    bar = Progress(len(items), enabled=progress)
    async for i, result in iter_batch(client, items, concurrency=concurrency,
                                      max_requests_per_second=max_requests_per_second, progress=bar):
        results[i] = result
    return results


# ---------------------------------------------------------------------------
# VllmClient.batch(): the same engine on a private event loop in a worker thread


def _async_twin(client: Any) -> Any:
    """An ``AsyncVllmClient`` with a sync client's configuration, for its batch jobs."""
    from ._async import AsyncVllmClient
    from ._transports.mock import MockTransport

    if client._custom_transport:  # never swap the user's transport (proxy, TLS, session) silently
        raise InvalidRequestError(
            "batch() runs on the async engine and cannot use this client's custom sync transport: "
            "use AsyncVllmClient(transport=...).batch(...), or send() the requests in a loop")
    shared = client._transport if isinstance(client._transport, MockTransport) else None
    return client._clone(AsyncVllmClient, shared, owns=shared is None)


def sync_batch(client: Any, requests: Iterable[Any], *, concurrency: int, progress: bool,
               max_requests_per_second: float | None) -> list[Any]:
    """``VllmClient.batch``: ``run_batch`` on a fresh event loop in a worker thread."""
    from ._sync import run_in_thread

    items = [to_batch_request(r) for r in requests]  # bad input fails here, before sending

    async def main() -> list[Any]:
        async with _async_twin(client) as twin:
            return await run_batch(twin, items, concurrency=concurrency, progress=progress,
                                   max_requests_per_second=max_requests_per_second)

    results: list[Any] = run_in_thread(main)
    return results


def sync_batch_iter(client: Any, requests: Iterable[Any], *, concurrency: int, progress: bool,
                    max_requests_per_second: float | None) -> Iterator[tuple[int, Any]]:
    """``VllmClient.batch_iter``: ``iter_batch`` in a worker thread, handed over by a queue."""
    import queue
    import threading

    items = [to_batch_request(r) for r in requests]
    results: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    done = object()

    async def main() -> None:
        try:
            async with _async_twin(client) as twin:
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

    def gen() -> Iterator[tuple[int, Any]]:
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

    return gen()
