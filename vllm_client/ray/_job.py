"""``run_batch``: an OpenAI batch job on a Ray cluster, resumable; and ``process``, the processor
applied to a Dataset with the defaults that suit it."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import orjson

from .._batch import Progress, summary_text
from .._batch_cli import _fsync_dir, _write, read_done
from .._connection import cli_connection
from .._exceptions import InvalidRequestError
from .._urls import redact_url
from ._budget import budget_actor
from ._processor import NUM_CPUS, BatchProcessor, JobProcessor, StopJob

OUTPUT_NAME = "results.jsonl"
DEFAULT_BATCH_SIZE = 64


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("vllm_client.ray needs Ray: pip install 'ray[data]' (or, in a checkout of this SDK: "
                          "pip install -e '.[ray]')") from e
    return ray


def process(ds: Any, base_url: str | Sequence[str] | None = None, *, actors: int = 1,
            batch_size: int = DEFAULT_BATCH_SIZE, num_cpus: float = NUM_CPUS, concurrency: int = 64,
            **processor_options: Any) -> Any:
    """``ds.map_batches(BatchProcessor, ...)`` with ``actors`` actors of ``num_cpus`` CPUs each
    (a quarter by default: the work waits on the network, and a fixed pool that took every CPU
    would starve the read stage); ``processor_options`` go to ``BatchProcessor``."""
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise InvalidRequestError(f"actors={actors!r}: expected an integer >= 1")
    import ray.data

    return ds.map_batches(BatchProcessor, fn_constructor_kwargs={"base_url": _urls(base_url), "concurrency": concurrency,
                                                                 **processor_options},
                          compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=num_cpus, batch_size=batch_size,
                          batch_format="pyarrow")


def _urls(base_url: str | Sequence[str] | None) -> str | list[str] | None:
    if base_url is None or isinstance(base_url, str):
        return base_url
    return list(base_url)


def input_files(inputs: str | Iterable[str]) -> list[str]:
    """The input files: paths and glob patterns (each must match something), in order, once each."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InvalidRequestError("run_batch: no input files")
    files: list[str] = []
    for item in items:
        item = os.fspath(item)
        if any(c in item for c in "*?["):
            matched = sorted(glob.glob(item))
            if not matched:
                raise InvalidRequestError(f"run_batch: {item!r} matches no file")
        elif os.path.isfile(item):
            matched = [item]
        else:
            raise InvalidRequestError(f"run_batch: {item!r}: no such file")
        files.extend(os.path.abspath(m) for m in matched if os.path.abspath(m) not in files)
    return files


def run_batch(inputs: str | Iterable[str], output_dir: str, *, base_url: str | Sequence[str] | None = None,
              concurrency: int = 64, actors: int = 1, batch_size: int = DEFAULT_BATCH_SIZE,
              num_cpus: float = NUM_CPUS, max_in_flight: int | None = None,
              max_requests_per_second: float | None = None, address: str | None = None,
              progress: bool = True, summary_json: str | None = None, err: TextIO | None = None,
              **client_options: Any) -> dict[str, Any]:
    """Run OpenAI batch files (JSONL: ``custom_id``, ``method``, ``url``, ``body`` per line; paths
    or globs) on Ray: ``actors`` actors, each with ``concurrency`` requests in flight, through
    ``base_url`` (one URL or a list of replicas). Writes ``output_dir/results.jsonl`` in the
    OpenAI batch output format, one record per ``custom_id``, appended as results arrive.

    Resumable as ``vllm-client batch`` is: a re-run skips the custom_ids already done and sends
    again exactly those that failed for a retryable reason. Servers that cannot be reached stop
    the job (``summary["stopped"]`` says why; run it again to resume). ``max_in_flight`` and
    ``max_requests_per_second`` hold across all actors; a ``Retry-After`` pauses every actor.
    Ray is started (and stopped at the end) unless it is already; ``address`` joins a cluster.
    ``client_options`` go to each actor's ``AsyncVllmClient``. Returns the summary (the keys of
    ``--summary-json``).
    """
    ray = _ray()
    err = sys.stderr if err is None else err
    files = input_files(inputs)
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise InvalidRequestError(f"actors={actors!r}: expected an integer >= 1")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)
                                      or max_in_flight < 1):
        raise InvalidRequestError(f"max_in_flight={max_in_flight!r}: expected an integer >= 1 or None")
    if max_requests_per_second is not None and (isinstance(max_requests_per_second, bool)
                                                or not isinstance(max_requests_per_second, (int, float))
                                                or not max_requests_per_second > 0):
        raise InvalidRequestError(f"max_requests_per_second={max_requests_per_second!r}: expected a "
                                  "positive number or None")
    from .._async import AsyncVllmClient

    urls = _urls(base_url)
    probe = AsyncVllmClient(urls, **client_options)  # bad options fail here, before Ray starts
    where = ", ".join(redact_url(u) for u in probe.base_urls)
    del probe
    os.makedirs(output_dir, exist_ok=True)
    out_path = os.path.join(output_dir, OUTPUT_NAME)
    done = read_done(out_path, err)
    already = len(done)

    started_ray = not ray.is_initialized()
    if started_ray:
        local = {"include_dashboard": False} if address is None else {}  # (a local Ray: no dashboard)
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", **local)
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    ctx.enable_progress_bars = progress
    limits = max_in_flight is not None or max_requests_per_second is not None
    budget = budget_actor(max_in_flight, max_requests_per_second)
    bar = Progress(None, enabled=False, out=err)
    written: set[bytes] = set()
    counts = {"written": 0, "skipped_done": 0, "bad_lines": 0, "duplicates": 0}
    stopped: str | None = None
    fd = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # Blocks of one batch each: a map task's output reaches the driver (and the output file)
        # when the task ends, so small blocks keep what a lost actor or a dead server costs small.
        ds = ray.data.read_text(files, drop_empty_lines=True).repartition(target_num_rows_per_block=batch_size)
        ds = ds.map_batches(JobProcessor, fn_constructor_kwargs={
            "base_url": urls, "concurrency": concurrency, "done": ray.put(done), "budget": (budget, limits),
            "client_options": client_options}, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=num_cpus,
            batch_size=batch_size,
            batch_format="pyarrow")
        del done
        try:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                _take(batch.to_pylist(), fd, written, counts, bar, err)
        except Exception as e:  # a StopJob raised by an actor, or Ray's own failure
            stopped = _reason(e)
    finally:
        os.close(fd)
        _fsync_dir(out_path)
        ctx.enable_progress_bars = bars
        ray.kill(budget)
        if started_ray:
            ray.shutdown()
    summary = bar.summary()
    summary.update({"written": counts["written"], "skipped_done": counts["skipped_done"],
                    "bad_lines": counts["bad_lines"], "duplicates": counts["duplicates"], "stopped": stopped,
                    "output": out_path})
    if summary_json:
        with open(summary_json, "wb") as f:
            f.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    if counts["skipped_done"] or already:
        err.write(f"batch: {counts['skipped_done']} request(s) already in {out_path}; skipped\n")
    if stopped is not None:
        err.write(f"batch: stopped: {stopped}; server {where}. {counts['written']} result(s) written to "
                  f"{out_path}; run the same command again to resume\n")
        return summary
    err.write(summary_text(summary))
    err.write(f"batch: {counts['written']} request(s) written to {out_path}; {summary['failed']} failed; "
              f"{counts['bad_lines']} bad line(s)"
              + (" (run the same command again to retry the retryable failures)" if summary["failed"] else "")
              + "\n")
    return summary


def _take(rows: list[dict[str, Any]], fd: int, written: set[bytes], counts: dict[str, int], bar: Progress,
          err: TextIO) -> None:
    """Write a batch of the job's output rows (each custom_id once: Ray re-runs the blocks of a
    lost actor, and an input may repeat an id)."""
    chunk: list[bytes] = []
    for r in rows:
        kind = r["kind"]
        if kind == "skipped":
            counts["skipped_done"] += 1
            continue
        if kind == "bad":
            counts["bad_lines"] += 1
            err.write(f"batch: bad input line: {r['message']}; skipped\n")
            continue
        key = r["custom_id"].encode()
        if key in written:
            counts["duplicates"] += 1
            continue
        written.add(key)
        chunk.append(r["record"].encode() + b"\n")
        bar.update(error=kind == "failed", latency=r["latency_s"], tokens=r["output_tokens"] or 0,
                   ttft=r["ttft_s"])
    if chunk:
        _write(fd, b"".join(chunk))
        counts["written"] += len(chunk)


def _reason(e: BaseException) -> str:
    """Why the job stopped, in one line (a StopJob's own message when an actor raised one)."""
    marker = "vllm_client.ray: stopped: "
    seen: BaseException | None = e
    for _ in range(10):  # Ray's task errors wrap the actor's exception (and are instances of its class)
        if seen is None:
            break
        if isinstance(seen, StopJob) and seen.args and str(seen.args[0]).startswith(marker):
            return str(seen.args[0])[len(marker):]
        seen = seen.__cause__ or seen.__context__
    text = str(e)
    at = text.rfind(marker)
    if at >= 0:
        return text[at + len(marker):].splitlines()[0]
    return f"{type(e).__name__}: {' '.join(text.split())[:300]}"


def run_batch_cli(args: argparse.Namespace, err: TextIO | None = None) -> int:
    """``batch --ray [ADDRESS] INPUT... -o DIR``: the job on Ray (``vllm_client.ray.run_batch``)."""
    err = sys.stderr if err is None else err
    address, inputs = args.ray, list(args.input)
    if address and (os.path.exists(address) or address.endswith(".jsonl") or any(c in address for c in "*?[")):
        address, inputs = "", [address, *inputs]  # `--ray in.jsonl ...`: an input, not an address
    if not inputs:
        err.write("vllm-client batch --ray: no input file\n")
        return 2
    urls = [args.base_url or os.environ.get("VLLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
            or "http://localhost:8000/v1"] + list(args.servers or [])
    summary = run_batch(inputs, args.output, base_url=urls if len(urls) > 1 else urls[0],
                        concurrency=args.concurrency, actors=args.actors, batch_size=args.batch_size,
                        max_in_flight=args.max_in_flight, max_requests_per_second=args.max_requests_per_second,
                        address=address or None, progress=not args.no_progress, summary_json=args.summary_json,
                        err=err, api_key=args.api_key, default_model=args.model, timeout=args.timeout,
                        max_retries=args.max_retries, **cli_connection(args))
    return 1 if summary["stopped"] or summary["failed"] or summary["bad_lines"] else 0
