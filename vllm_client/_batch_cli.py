"""``vllm-client batch INPUT.jsonl -o OUTPUT.jsonl``: the OpenAI batch file format, resumable.

Input lines: ``{"custom_id", "method", "url", "body"}``. Output lines, as vLLM's
``run-batch`` writes them: ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``.

- The input is read lazily, as the window of requests in flight moves on: memory does not
  grow with the file (only the set of custom_ids, for duplicates and resuming).
- Each result is appended as soon as it finishes, so a crash loses nothing finished.
- A re-run skips the custom_ids that are *done*: answered, or failed for good (400, 404,
  422...). A record of a request that failed for a retryable reason (connection error,
  timeout, 408/409/429/5xx after the client's retries) is not done: the re-run first
  compacts the output (a new file, then an atomic rename: a kill at any moment loses
  nothing) keeping one finished record per custom_id and dropping those failures, a torn
  last line and any garbage, and then sends exactly those requests again.
- A server that cannot be reached at the start ends the job at once, writing nothing; one
  that dies mid-job (50 connection failures in a row, or 15 s of them without an answer)
  stops the job, which the same command resumes. Before stopping, the job asks the server's
  ``/health`` once (no retries, 5 s): any HTTP answer means the failures were transient (a
  connection reset), and the job goes on.
- ``-`` (or a pipe, a FIFO, ``/dev/stdin``) as input is read once, as it comes (no line count
  for the progress line); ``-`` (or ``/dev/stdout``, a pipe, a FIFO) as output is written to
  as is (nothing to resume from). The output being the input file is refused.
- Bad input lines are reported as ``line N`` and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any, TextIO

import orjson

from . import _json
from ._batch import Progress, iter_batch, summary_text
from ._config import Timeout
from ._connection import cli_connection
from ._exceptions import APIConnectionError, APIStatusError, InvalidRequestError
from ._retry import should_retry_status
from ._urls import redact_url, server_root

# Error records (no HTTP answer) of these kinds are not done: a re-run sends their requests again.
RETRYABLE_ERRORS = frozenset({"APIConnectionError", "APITimeoutError"})
STOP_AFTER_FAILURES = 50  # connection failures in a row (every replica tried) that stop a job
STOP_AFTER_SILENCE = 15.0  # seconds of connection failures without an answer that stop a job


def record_id(obj: Any) -> str | None:
    """The custom_id of an output record (None when the line is not a record)."""
    if obj.__class__ is dict:
        cid = obj.get("custom_id")
        if cid.__class__ is str and cid:
            return cid
    return None


def is_done(obj: dict[str, Any]) -> bool:
    """Whether a record is final: an answer (or a permanent failure), not a retryable failure."""
    response = obj.get("response")
    if response.__class__ is dict:
        status = response.get("status_code")
        return not (status.__class__ is int and should_retry_status(status))
    error = obj.get("error")
    return not (error.__class__ is dict and error.get("code") in RETRYABLE_ERRORS)


def _scan(path: str, keep: Callable[[bytes], Any] | None) -> tuple[set[bytes], int, bool]:
    """One pass over the output: (custom_ids done, lines dropped, whether anything must change).
    ``keep`` gets each kept line (the first done record of each custom_id), newline-terminated."""
    done: set[bytes] = set()
    dropped = 0
    change = False
    with open(path, "rb") as f:
        for line in f:
            try:
                obj = _json.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            cid = record_id(obj)
            key = cid.encode() if cid is not None else None
            if key is None or key in done or not is_done(obj):
                change = True  # a retryable failure, a duplicate, a torn line or garbage: dropped
                dropped += bool(line.strip())
                continue
            done.add(key)
            if not line.endswith(b"\n"):  # a whole record without its newline (the last line)
                change = True
                line += b"\n"
            if keep is not None:
                keep(line)
    return done, dropped, change


def read_done(path: str, err: TextIO) -> set[bytes]:
    """The custom_ids done in the output file, which is compacted first when it holds anything
    else (failures to retry, duplicates, a torn last line): written anew beside it, synced,
    then renamed over it, so that a kill at any moment leaves one whole file or the other."""
    if not os.path.exists(path):
        return set()
    done, dropped, change = _scan(path, None)
    if not change:
        return done
    del done
    tmp = f"{path}.compact-tmp"
    with open(tmp, "wb") as out:
        done, dropped, _ = _scan(path, out.write)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path)
    if dropped:
        err.write(f"batch: {path}: {dropped} record(s) dropped (failed for a retryable reason, torn or "
                  f"duplicate): their requests are sent again\n")
    return done


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


STDIO = "-"  # the input / output name for stdin / stdout


@contextlib.contextmanager
def open_input(path: str) -> Generator[IO[bytes], None, None]:
    """The input, opened once: ``-`` is stdin (left open)."""
    if path == STDIO:
        yield sys.stdin.buffer
        return
    with open(path, "rb") as f:
        yield f


def _stat(path: str, fd: int) -> os.stat_result | None:
    try:
        return os.fstat(fd) if path == STDIO else os.stat(path)
    except OSError:
        return None


def is_regular(path: str, fd: int) -> bool:
    """Whether ``path`` (``-``: the stream ``fd``) is a regular file that can be read twice, not
    a pipe, a FIFO, a terminal or a device (``/dev/stdin``, ``<(...)``)."""
    if path != STDIO and path.startswith(("/dev/", "/proc/")):
        return False
    st = _stat(path, fd)
    return st is not None and stat.S_ISREG(st.st_mode)


def same_file(input_path: str, output_path: str) -> bool:
    """Whether the output names the input file (links, ``-`` and ``/dev/std*`` included)."""
    a, b = _stat(input_path, 0), _stat(output_path, 1)
    return (a is not None and b is not None and stat.S_ISREG(a.st_mode)
            and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))


def count_lines(path: str) -> int:
    """Lines in a file (constant memory), for the progress line's total."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


class Input:
    """The input file's pending requests, read lazily: ``{"url", "body"}`` dicts for the batch
    engine, each one's custom_id kept by position until its result is written."""

    def __init__(self, path: str, done: set[bytes], err: TextIO, progress: Progress) -> None:
        self.path = path
        self.done = done  # custom_ids finished in earlier runs; each moves to `seen` when met
        self.seen: set[bytes] = set()  # custom_ids met in the input (one set between the two)
        self.err = err
        self.progress = progress
        self.ids: dict[int, str] = {}  # position -> custom_id, for the requests in the window
        self.bad = self.skipped = self.sent = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        seen, done, progress = self.seen, self.done, self.progress
        with open_input(self.path) as f:
            for n, raw in enumerate(f, 1):
                obj, problem = _parse_line(raw)
                cid: str = obj["custom_id"] if problem is None else ""
                key = cid.encode()  # (as bytes: 16 bytes less per id than a str)
                if problem is None and key in seen:
                    problem = f"duplicate custom_id {cid!r}"
                if problem is not None or key in done:
                    if progress.total:
                        progress.total -= 1
                    if problem is None:
                        done.discard(key)
                        seen.add(key)
                        self.skipped += 1
                    elif problem:
                        self.err.write(f"line {n}: {problem}; skipped\n")
                        self.bad += 1
                    continue
                seen.add(key)
                self.ids[self.sent] = cid
                self.sent += 1
                yield {"url": obj["url"], "body": obj["body"]}


def _parse_line(raw: bytes) -> tuple[Any, str | None]:
    """(the line's object, what is wrong with it: None when fine, "" for a blank line)."""
    if not raw.strip():
        return None, ""
    try:
        obj = _json.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, f"invalid JSON ({e})"
    return obj, _check_line(obj)


def _check_line(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not isinstance(obj.get("custom_id"), str) or not obj["custom_id"]:
        return "no 'custom_id' string"
    if not isinstance(obj.get("url"), str) or not obj["url"].startswith("/"):
        return "no 'url' (a server path such as /v1/chat/completions)"
    if not isinstance(obj.get("body"), dict):
        return "no 'body' object"
    method = obj.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        return f"method {method!r} is not POST"
    return None


def output_line(custom_id: str, result: Any) -> dict[str, Any]:
    """One output record for a result (a response, or the exception the request ended with)."""
    rid = f"vllm-{secrets.token_hex(16)}"
    if isinstance(result, APIStatusError):
        return {"id": rid, "custom_id": custom_id,
                "response": {"status_code": result.status_code, "request_id": result.request_id or rid,
                             "body": result.body},
                "error": None}
    if isinstance(result, BaseException):
        return {"id": rid, "custom_id": custom_id, "response": None,
                "error": {"code": type(result).__name__, "message": " ".join(str(result).split())}}
    return {"id": rid, "custom_id": custom_id,
            "response": {"status_code": getattr(result, "status_code", None) or 200,
                         "request_id": getattr(result, "request_id", None) or rid,
                         "body": getattr(result, "raw", result)},
            "error": None}


class Watchdog:
    """Decides when a job's server is gone: a connection failure (after the client's retries,
    on every replica) before any answer at all; ``failures`` of them in a row; or failures
    still coming ``silence`` seconds after the last answer. Any HTTP answer (even an error
    status) shows the server alive."""

    def __init__(self, *, failures: int = STOP_AFTER_FAILURES, silence: float = STOP_AFTER_SILENCE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.silence = silence
        self.clock = clock
        self.answered = False
        self.in_a_row = 0
        self.last_answer = clock()

    def note(self, result: Any) -> str | None:
        """Count one result; the reason to stop the job, or None."""
        if isinstance(result, APIConnectionError):
            self.in_a_row += 1
            why = " ".join(str(result).split())
            if not self.answered:
                return f"cannot reach the server ({why})"
            if self.in_a_row >= self.failures:
                return f"the server stopped answering: {self.in_a_row} connection failures in a row (last: {why})"
            quiet = self.clock() - self.last_answer
            if quiet >= self.silence:
                return f"the server stopped answering: no answer for {quiet:.0f} s (last: {why})"
            return None
        if not isinstance(result, InvalidRequestError):  # an answer: a response or an HTTP error
            self.alive()
        return None

    def alive(self) -> None:
        """The server answered (a result, or the ``/health`` probe after failures)."""
        self.answered = True
        self.in_a_row = 0
        self.last_answer = self.clock()


PROBE_TIMEOUT = 5.0  # seconds for the /health probe that tells a transient failure from a dead server


def _probe_flow(client: Any, url: str) -> Generator[Any, Any, bool]:
    req = client.prepare("GET", "/health", root=True, timeout=Timeout(connect=PROBE_TIMEOUT, read=PROBE_TIMEOUT))
    req.url = server_root(url) + "/health"
    try:
        yield req
    except APIConnectionError:
        return False
    return True


async def server_answers(client: Any) -> bool:
    """Whether a server of the job answers HTTP at all (any status): ``GET /health`` on each
    replica in turn, once, no retries."""
    for url in client.base_urls:
        try:
            if await client._run(_probe_flow(client, url)):
                return True
        except Exception:  # noqa: BLE001 (any failure of the probe: not an answer)
            continue
    return False


def _write(fd: int, data: bytes) -> None:
    """Append with as few write() calls as the kernel allows (one, as a rule)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run_batch_cli(args: argparse.Namespace, err: TextIO | None = None) -> int:
    """The ``batch`` subcommand."""
    err = sys.stderr if err is None else err  # (looked up now: a default bound at import goes stale)
    return asyncio.run(_run(args, err))


async def _run(args: argparse.Namespace, err: TextIO) -> int:
    from ._async import AsyncVllmClient

    urls = [args.base_url or os.environ.get("VLLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
            or "http://localhost:8000/v1"] + list(args.servers or [])
    client = AsyncVllmClient(urls if len(urls) > 1 else urls[0], api_key=args.api_key, default_model=args.model,
                             timeout=args.timeout, max_retries=args.max_retries,
                             **cli_connection(args))  # bad options: before any I/O
    problem = input_problem(args.input)
    if problem is not None:
        err.write(f"batch: {problem}\n")
        await client.aclose()
        return 1
    if same_file(args.input, args.output):
        err.write(f"batch: the output {args.output} is the input file; give another -o (the input is left as is)\n")
        await client.aclose()
        return 2
    # A pipe, a FIFO or stdout as output: written as is, nothing to resume from (reading it back would hang).
    to_stream = args.output == STDIO or (os.path.exists(args.output) and not is_regular(args.output, 1))
    done = set() if to_stream else read_done(args.output, err)
    already = len(done)
    # A pipe or FIFO as input is read once, as it comes: no line count for the progress line.
    total = count_lines(args.input) if is_regular(args.input, 0) else None
    progress = Progress(total, enabled=not args.no_progress, out=err)
    source = Input(args.input, done, err, progress)
    watchdog = Watchdog()
    stopped: str | None = None
    errors = retryable = written = 0
    fd: int | None = None  # the output is opened with the first record: a job that writes none creates no file
    try:
        async with client:
            results = iter_batch(client, source, concurrency=args.concurrency, progress=progress,
                                 max_requests_per_second=args.max_requests_per_second)
            try:
                async for i, result in results:
                    cid = source.ids.pop(i)
                    stopped = watchdog.note(result)
                    if stopped is not None and await server_answers(client):
                        watchdog.alive()  # the server answers: a transient failure (a reset), go on
                        stopped = None
                    if stopped is not None:
                        if not watchdog.answered:
                            progress.discard()  # down from the start: the one line below says it all
                        break  # what is in flight is cancelled, and not written
                    if isinstance(result, Exception):
                        errors += 1
                        record = output_line(cid, result)
                        retryable += not is_done(record)
                    else:
                        record = output_line(cid, result)
                    if fd is None:
                        fd = os.dup(sys.stdout.fileno()) if args.output == STDIO else \
                            os.open(args.output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    try:
                        _write(fd, _json.dumps(record) + b"\n")
                    except BrokenPipeError:
                        stopped = "the output was closed (broken pipe)"
                        break
                    written += 1
            finally:
                await results.aclose()  # type: ignore[attr-defined]
    finally:
        if fd is not None:
            os.close(fd)
    summary = progress.summary()
    summary.update({"written": written, "skipped_done": source.skipped, "bad_lines": source.bad,
                    "stopped": stopped})
    if args.summary_json:
        with open(args.summary_json, "wb") as f:
            f.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    where = ", ".join(redact_url(u) for u in client.base_urls)
    if stopped is not None and not watchdog.answered:
        why = stopped.removeprefix("cannot reach the server (").removesuffix(")")
        why = why.split(": ", 1)[-1] if why.startswith(("could not reach", "timed out")) else why
        err.write(f"batch: cannot reach the server at {where} ({why}); is it running? Give its URL with "
                  f"--base-url or VLLM_BASE_URL. nothing was written to {args.output}\n")
        return 1
    if source.skipped or already:
        err.write(f"batch: {source.skipped} request(s) already in {args.output}; skipped\n")
    if stopped is not None:
        err.write(f"batch: stopped: {stopped}; server {where}. {written} result(s) written to {args.output}; "
                  "run the same command again to resume\n")
        return 1
    if not source.sent:
        err.write(f"batch: nothing to do ({source.bad} bad line(s))\n")
        return 1 if source.bad else 0
    err.write(summary_text(summary))
    err.write(f"batch: {written} request(s) written to {args.output}; {errors} failed; {source.bad} bad line(s)"
              + (f" (run the same command again to retry the {retryable} retryable failure(s))" if retryable else "")
              + "\n")
    return 1 if errors or source.bad else 0


def input_problem(path: str) -> str | None:
    """What makes the input unreadable, in one line (None when it can be read)."""
    if path == "-":
        return None
    try:
        os.stat(path)
    except OSError as e:
        return f"cannot read the input {path}: {e.strerror or e}"
    if os.path.isdir(path):
        return f"cannot read the input {path}: it is a directory"
    if not os.access(path, os.R_OK):
        return f"cannot read the input {path}: permission denied"
    return None
