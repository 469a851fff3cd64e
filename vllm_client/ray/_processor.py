"""``BatchProcessor``: a callable class for ``Dataset.map_batches`` that sends each batch's rows
through the SDK's batch engine (``_batch.iter_batch``) on an ``AsyncVllmClient``."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .._batch import BatchRequest, iter_batch, output_tokens, to_batch_request
from .._batch_cli import Watchdog, is_done, output_line
from .._exceptions import APIStatusError, InvalidRequestError
from .._retry import retry_after
from ._budget import Gate

NUM_CPUS = 0.25  # what each actor asks Ray for by default: the work is waiting on the network
DEFAULT_ENDPOINT = "/v1/chat/completions"
_LINE_KEYS = ("custom_id", "method", "url", "body")


class StopJob(RuntimeError):
    """The servers cannot be reached (at the start, or no longer): the job stops (resumably)."""


def _plain(value: Any) -> Any:
    """A column value as plain Python objects (numpy arrays and scalars unwrapped, at any depth:
    Ray's numpy batches hold a list inside a dict as an array)."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    return _plain(tolist()) if tolist is not None else value


def _rows(batch: Any) -> list[dict[str, Any]]:
    """A Ray batch (dict of columns, pyarrow Table or pandas DataFrame) as a list of row dicts."""
    if hasattr(batch, "to_pylist"):  # pyarrow
        rows: list[dict[str, Any]] = batch.to_pylist()
        return rows
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        return [{k: _plain(v) for k, v in r.items()} for r in batch.to_dict("records")]
    cols = {k: _plain(v) for k, v in batch.items()}
    n = len(next(iter(cols.values()))) if cols else 0  # (numpy batches: Ray's default)
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def error_info(result: BaseException) -> dict[str, Any]:
    """The typed error of a row: ``type``, ``status`` (None without an HTTP answer), ``message``,
    ``retryable`` (a re-run sends it again: the batch CLI's rule)."""
    status = result.status_code if isinstance(result, APIStatusError) else getattr(result, "status_code", None)
    message = result.message if isinstance(result, APIStatusError) else str(result)
    return {"type": type(result).__name__, "status": status if isinstance(status, int) else None,
            "message": " ".join(str(message).split()),
            "retryable": not is_done(output_line("-", result))}


def readings(result: Any) -> dict[str, Any]:
    """What people read of an answer: content, reasoning, finish_reason, token counts, timings."""
    raw = getattr(result, "raw", result)
    out: dict[str, Any] = {"content": None, "reasoning": None, "finish_reason": None,
                           "prompt_tokens": None, "completion_tokens": None}
    if raw.__class__ is dict:
        choices = raw.get("choices")
        first = choices[0] if choices.__class__ is list and choices and choices[0].__class__ is dict else None
        if first is not None:
            msg = first.get("message")
            if msg.__class__ is dict:
                out["content"] = msg.get("content")
                out["reasoning"] = msg.get("reasoning", msg.get("reasoning_content"))
            elif isinstance(first.get("text"), str):
                out["content"] = first["text"]
            out["finish_reason"] = first.get("finish_reason")
        usage = raw.get("usage")
        if usage.__class__ is dict:
            out["prompt_tokens"] = usage.get("prompt_tokens")
            out["completion_tokens"] = usage.get("completion_tokens")
    return out


class BatchProcessor:
    """A callable class for ``Dataset.map_batches``: every row of a batch is sent through the
    SDK's batch engine, ``concurrency`` requests in flight per actor (shared by the batches the
    actor runs at once), with the client's retries, timeouts, replicas and connection options.

    ::

        ds.map_batches(BatchProcessor, fn_constructor_kwargs={"base_url": url, "concurrency": 64},
                       compute=ray.data.ActorPoolStrategy(size=4), num_cpus=0.25, batch_size=64)

    (or ``vllm_client.ray.process(ds, base_url=url, actors=4)``, which asks for a quarter of a
    CPU per actor by default). Input rows: OpenAI batch lines (``custom_id``, ``method``,
    ``url``, ``body``: ``body`` a dict or JSON text), or any columns with
    ``preprocess(row) -> body dict, {"url", "body"} dict or builder`` (``preprocess(row,
    client)`` gets the actor's ``AsyncVllmClient`` to make builders; a bare body goes to
    ``endpoint``). Output rows: ``custom_id``, ``response`` (the answer's JSON text or None),
    ``error`` (None, or JSON text of ``{"type", "status", "message", "retryable"}``),
    ``status_code``, ``content``, ``reasoning``, ``finish_reason``, ``prompt_tokens``,
    ``completion_tokens``, ``latency_s``, ``ttft_s`` (time to the answer's first byte),
    ``attempts``; ``postprocess(row, response)`` (the response, or the exception the request
    ended with) returns the output row instead. A row's failure never raises; servers that
    cannot be reached (the batch CLI's rule) raise ``StopJob``.

    The client is made lazily, on Ray's event loop, one per actor. ``client_options`` go to
    ``AsyncVllmClient`` as they are (``api_key``, ``timeout``, ``max_retries``,
    ``default_model``, connection options...).
    """

    def __init__(self, base_url: str | list[str] | None = None, *, concurrency: int = 64,
                 preprocess: Callable[..., Any] | None = None,
                 postprocess: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None,
                 endpoint: str = DEFAULT_ENDPOINT, budget: Any = None,
                 client_options: Mapping[str, Any] | None = None, **more_client_options: Any) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidRequestError(f"concurrency={concurrency!r}: expected an integer >= 1")
        self.base_url = base_url
        self.concurrency = concurrency
        self.preprocess = preprocess
        self.postprocess = postprocess
        self.endpoint = endpoint
        self.budget = budget  # (from run_batch: a budget actor and whether it holds limits)
        self.client_options = {**(client_options or {}), **more_client_options}
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: Gate | None = None
        self._watchdog = Watchdog()
        self._with_client = preprocess is not None and _takes_two(preprocess)

    # -- the client, made on Ray's event loop -------------------------------------------------

    def _setup(self) -> Any:
        if self._client is None:
            from .._async import AsyncVllmClient

            budget, limits = self.budget if self.budget is not None else (None, False)
            self._gate = Gate(self.concurrency, budget, limits=limits)
            options = dict(self.client_options)
            hooks = {k: list(v) for k, v in (options.pop("event_hooks", None) or {}).items()}
            hooks.setdefault("response", []).append(self._on_response)
            self._client = AsyncVllmClient(self.base_url, event_hooks=hooks, **options)
            self._loop = asyncio.get_running_loop()
        return self._client

    def __del__(self) -> None:
        """Close the client on its loop (Ray Data deletes the UDF when the actor pool ends)."""
        client, loop = getattr(self, "_client", None), getattr(self, "_loop", None)
        if client is None or loop is None:
            return
        self._client = None
        if self._gate is not None:
            loop.call_soon_threadsafe(self._gate.close)
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
        except Exception:  # the loop is closing: the process ends anyway
            pass

    def _on_response(self, info: Any) -> None:
        if info.status_code in (429, 503) and self._gate is not None:
            delay = retry_after(info.headers)
            if delay:
                self._gate.pause(delay)

    # -- one batch ----------------------------------------------------------------------------

    def _request(self, row: dict[str, Any], client: Any) -> Any:
        """The request of a row (a ``BatchRequest``), or the ``InvalidRequestError`` it makes."""
        try:
            if self.preprocess is None:
                body = row.get("body")
                if isinstance(body, (str, bytes)):
                    body = orjson.loads(body)
                method = row.get("method") or "POST"
                if str(method).upper() != "POST":
                    raise InvalidRequestError(f"method {method!r} is not POST")
                return to_batch_request({"url": row.get("url"), "body": body})
            made = self.preprocess(row, client) if self._with_client else self.preprocess(row)
            if isinstance(made, dict) and not ("url" in made and "body" in made):
                made = {"url": self.endpoint, "body": made}
            return to_batch_request(made)
        except InvalidRequestError as e:
            return e
        except orjson.JSONDecodeError as e:
            return InvalidRequestError(f"body is not JSON ({e})")

    async def _results(self, rows: list[dict[str, Any]]) -> list[tuple[Any, float | None]]:
        """Each row's result (a response or an exception) and its latency, in row order."""
        client = self._setup()
        requests = [self._request(r, client) for r in rows]
        results: list[tuple[Any, float | None]] = [(r, None) for r in requests]
        todo = [(i, r) for i, r in enumerate(requests) if r.__class__ is BatchRequest]
        if not todo:
            return results
        started = time.perf_counter()
        it = iter_batch(client, [r for _, r in todo], concurrency=self.concurrency, gate=self._gate)
        try:
            async for j, result in it:
                timing = getattr(result, "timing", None)
                latency = timing.total if timing is not None and timing.total is not None \
                    else time.perf_counter() - started
                results[todo[j][0]] = (result, latency)
                stop = self._watchdog.note(result)
                if stop is not None:
                    raise StopJob(f"vllm_client.ray: stopped: {stop}")
        finally:
            await it.aclose()  # type: ignore[attr-defined]  # (what is still in flight is cancelled)
        return results

    def _row(self, row: dict[str, Any], result: Any, latency: float | None) -> dict[str, Any]:
        """The output row of one result."""
        failed = isinstance(result, BaseException)
        timing = None if failed else getattr(result, "timing", None)
        raw = None if failed else getattr(result, "raw", result)
        out: dict[str, Any] = {
            "custom_id": row.get("custom_id"),
            "response": None if failed else orjson.dumps(raw).decode(),
            "error": orjson.dumps(error_info(result)).decode() if failed else None,
            "status_code": getattr(result, "status_code", None) if failed
            else (getattr(result, "status_code", None) or 200),
        }
        out.update(readings(None if failed else result))
        ttft = timing.time_to_first_byte if timing is not None else None
        retries = timing.retries if timing is not None else (
            self._client.max_retries if failed and error_info(result)["retryable"] else 0)
        out.update({"latency_s": latency, "ttft_s": ttft, "attempts": retries + 1})
        if self.postprocess is not None:
            return self.postprocess({**row, **out}, result)
        return out

    async def __call__(self, batch: Any) -> Any:
        rows = _rows(batch)
        results = await self._results(rows)
        out = [self._row(row, result, latency) for row, (result, latency) in zip(rows, results, strict=True)]
        if self.postprocess is not None:
            return _columns(out)
        return _table(_columns(out), ROW_TYPES)


ROW_TYPES = {"custom_id": "string", "response": "string", "error": "string", "status_code": "int64",
             "content": "string", "reasoning": "string", "finish_reason": "string", "prompt_tokens": "int64",
             "completion_tokens": "int64", "latency_s": "float64", "ttft_s": "float64", "attempts": "int64"}
JOB_TYPES = {"kind": "string", "custom_id": "string", "record": "string", "message": "string",
             "latency_s": "float64", "ttft_s": "float64", "output_tokens": "int64"}


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in rows] for k in keys}


def _table(columns: dict[str, list[Any]], types: dict[str, str]) -> Any:
    """A pyarrow Table with fixed column types (a batch of nulls unifies with the others)."""
    import pyarrow as pa

    schema = pa.schema([(k, getattr(pa, t)()) for k, t in types.items()])
    return pa.Table.from_pydict({k: columns[k] for k in types}, schema=schema)


def _takes_two(fn: Callable[..., Any]) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


class JobProcessor(BatchProcessor):
    """``run_batch``'s processor: input rows are the lines of the batch files (a ``text``
    column, parsed here: no schema is inferred); ids already done (``done``: an object ref of a
    set of custom_ids) are skipped; output rows carry the OpenAI batch output record."""

    def __init__(self, base_url: Any = None, *, done: Any = None, **kw: Any) -> None:
        super().__init__(base_url, **kw)
        self._done_ref = done
        self._done: set[bytes] | None = None

    async def __call__(self, batch: Any) -> Any:
        from .._batch_cli import _parse_line

        if self._done is None:
            self._done = set(await self._done_ref) if self._done_ref is not None else set()
        lines = batch["text"]
        lines = lines.to_pylist() if hasattr(lines, "to_pylist") else _plain(lines)
        pending: list[dict[str, Any]] = []
        kinds: list[tuple[str, str | None, str | None]] = []  # (kind, custom_id, message)
        for text in lines:
            raw = text.encode() if isinstance(text, str) else bytes(text)
            obj, problem = _parse_line(raw)
            if problem is not None:
                if problem:
                    kinds.append(("bad", None, f"{problem}: {raw[:80].decode(errors='replace')}"))
                continue
            cid = obj["custom_id"]
            if cid.encode() in self._done:
                kinds.append(("skipped", cid, None))
                continue
            kinds.append(("send", cid, None))
            pending.append(obj)
        results = await self._results(pending)
        out: dict[str, list[Any]] = {k: [] for k in ("kind", "custom_id", "record", "message", "latency_s",
                                                     "ttft_s", "output_tokens")}
        it = iter(results)
        for kind, cid, message in kinds:
            latency = ttft = None
            record = None
            tokens = 0
            if kind == "send":
                result, latency = next(it)
                if isinstance(result, InvalidRequestError):
                    kind, message, latency = "bad", f"custom_id {cid!r}: {result}", None
                else:
                    kind = "failed" if isinstance(result, BaseException) else "ok"
                    record = orjson.dumps(output_line(cid or "", result)).decode()
                    timing = getattr(result, "timing", None)
                    ttft = timing.time_to_first_byte if timing is not None else None
                    tokens = output_tokens(result)
            for k, v in (("kind", kind), ("custom_id", cid), ("record", record), ("message", message),
                         ("latency_s", latency), ("ttft_s", ttft), ("output_tokens", tokens)):
                out[k].append(v)
        return _table(out, JOB_TYPES)
