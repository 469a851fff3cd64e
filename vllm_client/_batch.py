"""Batch jobs: many requests, bounded concurrency, an optional rate limit, progress.

The engine is async (``run_batch``) and is driven by a client passed in: it imports neither
client module. ``VllmClient.batch`` runs it on a private event loop in a worker thread (with
the sync client's async twin), so sync code gets the same throughput. Requests
are builders (chat, completions, embeddings; of either client) or dicts
``{"url": "/v1/chat/completions", "body": {...}}``.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, TextIO

from ._config import Timeout
from ._endpoints import parsers
from ._exceptions import InvalidRequestError
from ._validate import check_finite

__all__ = ["BatchRequest", "to_batch_request", "run_batch", "iter_batch", "Progress", "library_progress",
           "sync_batch", "sync_batch_iter", "run_in_thread", "prepared", "known_length", "summary_text", "output_tokens"]


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
    a second at most); plain lines every few seconds otherwise. It also keeps the figures of
    the closing summary (latencies, output tokens)."""

    def __init__(self, total: int | None, *, enabled: bool = True, out: TextIO | None = None,
                 every: float | None = None) -> None:
        self.total = total
        self.out = out or sys.stderr
        self.enabled = enabled
        self.tty = self.out.isatty()
        self.every = every if every is not None else (0.1 if self.tty else 5.0)
        self.done = 0
        self.errors = 0
        self.tokens = 0
        self.latencies: dict[int, int] = {}  # latency bucket (1 % wide, log scale) -> requests
        self.ttfts: dict[int, int] = {}  # the same for times to first byte/token, when given
        self.start = time.monotonic()
        self._last = self.start  # the first line after ``every`` seconds (a short job: only the final one)
        self._drawn: int | None = None  # ``done`` when a line was last drawn

    def update(self, error: bool = False, latency: float | None = None, tokens: int = 0,
               ttft: float | None = None) -> None:
        """Count one finished request."""
        self.done += 1
        if error:
            self.errors += 1
        if latency is not None:  # a histogram: constant memory whatever the number of requests
            k = int(math.log(max(latency, 1e-6) * 1e6) * _PER_LOG)
            lat = self.latencies
            lat[k] = lat.get(k, 0) + 1
        if ttft is not None:
            k = int(math.log(max(ttft, 1e-6) * 1e6) * _PER_LOG)
            self.ttfts[k] = self.ttfts.get(k, 0) + 1
        self.tokens += tokens
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

    def summary(self) -> dict[str, Any]:
        """The figures ``vllm bench serve`` prints: requests ok/failed, wall time, requests/s,
        output tokens/s, latency percentiles (seconds; None when nothing was sent)."""
        wall = max(time.monotonic() - self.start, 1e-9)
        lat = _percentiles(self.latencies)
        out = {"requests": self.done, "ok": self.done - self.errors, "failed": self.errors,
               "wall_s": round(wall, 3), "requests_per_s": round(self.done / wall, 2),
               "output_tokens": self.tokens, "output_tokens_per_s": round(self.tokens / wall, 2),
               "latency_p50_s": lat(50), "latency_p90_s": lat(90), "latency_p99_s": lat(99)}
        if self.ttfts:  # (given by the Ray job: time to first byte, or first token of a stream)
            ttft = _percentiles(self.ttfts)
            out.update({"ttft_p50_s": ttft(50), "ttft_p90_s": ttft(90), "ttft_p99_s": ttft(99)})
        return out

    def _draw(self, now: float) -> None:
        self._drawn = self.done
        text = self.line(now)
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total) if self.total else 0
            self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
        else:
            self.out.write(f"batch: {text}\n")
        self.out.flush()

    def close(self) -> None:
        """Draw the final state (once: not again when the last line drawn already shows it)."""
        if self.enabled:
            self.enabled = False
            if self._drawn is None and not self.done:
                return  # nothing was sent (nothing left to do): no "0/0" line
            if self.tty or self._drawn != self.done:
                self._draw(time.monotonic())
            if self.tty:
                self.out.write("\n")
            self.out.flush()

    def discard(self) -> None:
        """Draw nothing more, and wipe a bar already drawn on a terminal."""
        if self.enabled and self.tty and self._drawn is not None:
            self.out.write("\r\033[K")
            self.out.flush()
        self.enabled = False


def library_progress(total: int | None, enabled: bool) -> Progress:
    """The progress of ``batch()`` / ``batch_iter()``: drawn only when asked, on a terminal
    (stderr), and for a non-empty input (the CLI draws plain lines elsewhere too)."""
    bar = Progress(total, enabled=enabled)
    if not bar.tty or total == 0:
        bar.enabled = False
    return bar


_PER_LOG = 1 / math.log(1.01)  # latency buckets per unit of log(seconds): 1 % wide


def _percentiles(hist: dict[int, int]) -> Callable[[float], float | None]:
    """The q-th percentile of a latency histogram (seconds; None when empty)."""
    buckets = sorted(hist.items())
    count = sum(n for _, n in buckets)

    def pct(q: float) -> float | None:  # the bucket's middle: within 0.5 % of the exact figure
        rank = min(count - 1, int(q / 100 * count))
        seen = 0
        for k, n in buckets:
            seen += n
            if seen > rank:
                return round(1e-6 * math.exp((k + 0.5) / _PER_LOG), 6)
        return None

    return pct


def summary_text(s: dict[str, Any]) -> str:
    """A ``summary()`` as the lines printed at the end of a batch."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{1000 * v:.0f} ms"

    return (f"requests: {s['ok']} ok, {s['failed']} failed in {s['wall_s']:.1f} s; "
            f"{s['requests_per_s']:.1f} req/s, {s['output_tokens_per_s']:.1f} output tokens/s\n"
            f"latency: p50 {ms(s['latency_p50_s'])}, p90 {ms(s['latency_p90_s'])}, p99 {ms(s['latency_p99_s'])}\n"
            + (f"time to first byte: p50 {ms(s['ttft_p50_s'])}, p90 {ms(s['ttft_p90_s'])}, "
               f"p99 {ms(s['ttft_p99_s'])}\n" if "ttft_p50_s" in s else ""))


def output_tokens(result: Any) -> int:
    """``usage.completion_tokens`` of a response (0 when it has none)."""
    raw = getattr(result, "raw", result)
    usage = raw.get("usage") if raw.__class__ is dict else None
    n = usage.get("completion_tokens") if usage.__class__ is dict else None
    return n if n.__class__ is int else 0


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


def prepared(requests: Iterable[Any]) -> Iterable[Any]:
    """A list or tuple checked whole (bad input fails before anything is sent); any other
    iterable is taken lazily, one item at a time, as the window moves on."""
    if isinstance(requests, (list, tuple)):
        return [to_batch_request(r) for r in requests]
    return requests


def known_length(requests: Iterable[Any]) -> int | None:
    """The number of requests when the iterable knows it (for the progress line)."""
    return len(requests) if isinstance(requests, Sized) else None


def _feed(requests: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """``(position, BatchRequest)``, or ``(position, InvalidRequestError)`` for a bad item of a
    lazy iterable (that item ends with the error; the others go on)."""
    for i, r in enumerate(requests):
        if r.__class__ is BatchRequest:
            yield i, r
            continue
        try:
            yield i, to_batch_request(r)
        except InvalidRequestError as e:
            yield i, e


class _Raised:
    """The user's iterable raised: the batch ends with this exception."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


async def iter_batch(client: Any, requests: Iterable[Any], *, concurrency: int = 64,
                     max_requests_per_second: float | None = None,
                     progress: Progress | None = None, gate: Any = None) -> AsyncIterator[tuple[int, Any]]:
    """Yield ``(position, result)`` as requests finish; ``concurrency`` at a time.

    ``gate``, when given, is awaited before each request is sent (``await gate.enter()``) and
    told when it finished (``gate.leave()``): a window shared with other batches, or a
    cluster-wide budget (``vllm_client.ray``).

    The window is bounded: at most ``concurrency`` requests in flight and ``concurrency``
    finished ones waiting for the consumer; a lazy iterable is read only as the window moves,
    so memory does not grow with the number of requests.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequestError(f"concurrency={concurrency!r}: expected an integer >= 1")
    if isinstance(requests, (list, tuple)):
        requests = prepared(requests)  # bad input fails before anything is sent
    limiter = RateLimiter(max_requests_per_second)
    feed = _feed(requests)
    total = known_length(requests)
    n_workers = concurrency if total is None else max(1, min(concurrency, total))
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency)
    clock = time.perf_counter

    async def worker() -> None:
        try:
            for i, req in feed:  # the iterator is shared: each worker takes the next request
                if req.__class__ is BatchRequest:
                    await limiter.wait()
                    if gate is not None:
                        await gate.enter()
                    started = clock()
                    try:
                        result = await _one(client, req)
                    finally:
                        if gate is not None:
                            gate.leave()
                    timing = getattr(result, "timing", None)  # the response's own (from its first attempt)
                    latency: float | None = timing.total if timing is not None and timing.total is not None \
                        else clock() - started
                else:
                    result, latency = req, None
                if progress is not None:
                    progress.update(error=isinstance(result, BaseException), latency=latency,
                                    tokens=output_tokens(result))
                await queue.put((i, result))
        except Exception as e:  # the user's iterable raised
            await queue.put(_Raised(e))
        await queue.put(_END)

    workers = [asyncio.ensure_future(worker()) for _ in range(n_workers)]
    ended = 0
    try:
        while ended < n_workers:
            item = await queue.get()
            if item is _END:
                ended += 1
            elif item.__class__ is _Raised:
                raise item.error
            else:
                yield item
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if progress is not None:
            progress.close()


async def run_batch(client: Any, requests: Iterable[Any], *, concurrency: int = 64,
                    max_requests_per_second: float | None = None, progress: bool = True) -> list[Any]:
    """All results in input order (a response, or the exception (a ``VllmError`` as a rule) that request ended with)."""
    requests = prepared(requests)
    total = known_length(requests)
    results: list[Any] = [None] * (total or 0)
    bar = library_progress(total, progress)
    async for i, result in iter_batch(client, requests, concurrency=concurrency,
                                      max_requests_per_second=max_requests_per_second, progress=bar):
        if i >= len(results):
            results.extend([None] * (i + 1 - len(results)))
        results[i] = result
    return results


# ---------------------------------------------------------------------------
# VllmClient.batch(): the same engine on a private event loop in a worker thread


def run_in_thread(main: Callable[[], Any]) -> Any:
    """Run a coroutine function on a fresh event loop in a worker thread (safe even when the
    caller's thread already runs a loop); return its result or raise its exception."""
    import threading

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


def sync_batch(client: Any, requests: Iterable[Any], *, concurrency: int, progress: bool,
               max_requests_per_second: float | None) -> list[Any]:
    """``VllmClient.batch``: ``run_batch`` on a fresh event loop in a worker thread (a lazy
    iterable is iterated in that thread). ``client._async_twin()`` makes the async client
    that runs it (this engine imports neither client module)."""
    requests = prepared(requests)  # a list: bad input fails here, before sending

    async def main() -> list[Any]:
        async with client._async_twin() as twin:
            return await run_batch(twin, requests, concurrency=concurrency, progress=progress,
                                   max_requests_per_second=max_requests_per_second)

    results: list[Any] = run_in_thread(main)
    return results


def _put(q: Any, item: Any, stop: Any) -> None:
    """Put on a bounded ``queue.Queue``, giving up once ``stop`` is set (the consumer left)."""
    import queue

    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def sync_batch_iter(client: Any, requests: Iterable[Any], *, concurrency: int, progress: bool,
                    max_requests_per_second: float | None) -> Iterator[tuple[int, Any]]:
    """``VllmClient.batch_iter``: ``iter_batch`` in a worker thread, handed over by a bounded
    queue (a consumer slower than the server holds the window back; memory stays bounded)."""
    import queue
    import threading

    requests = prepared(requests)
    results: queue.Queue[Any] = queue.Queue(maxsize=max(1, concurrency) if isinstance(concurrency, int) else 1)
    stop = threading.Event()
    done = object()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        try:
            async with client._async_twin() as twin:
                it = iter_batch(twin, requests, concurrency=concurrency,
                                progress=library_progress(known_length(requests), progress),
                                max_requests_per_second=max_requests_per_second)
                async for pair in it:
                    if stop.is_set():
                        break
                    try:
                        results.put_nowait(pair)
                    except queue.Full:  # wait in a thread: the loop keeps serving what is in flight
                        await loop.run_in_executor(None, _put, results, pair, stop)
                await it.aclose()  # type: ignore[attr-defined]
        except BaseException as e:  # hand any failure to the consumer
            _put(results, e, stop)
        finally:
            _put(results, done, stop)

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
