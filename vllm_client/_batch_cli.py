"""``vllm-client batch INPUT.jsonl -o OUTPUT.jsonl``: the OpenAI batch file format, resumable.

Input lines: ``{"custom_id", "method", "url", "body"}``. Output lines, as vLLM's
``run-batch`` writes them: ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``. Each result is appended and flushed as soon as
it finishes, so a crash loses nothing finished; a re-run skips the custom_ids
already in the output. Bad input lines are reported as ``line N`` and skipped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any, TextIO

import orjson

from ._exceptions import APIStatusError


def read_done(path: str) -> set[str]:
    """custom_ids already in the output file (a torn last line from a crash is ignored)."""
    done: set[str] = set()
    if not os.path.exists(path):
        return done
    with open(path, "rb") as f:
        for line in f:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("custom_id"), str):
                done.add(obj["custom_id"])
    return done


def read_input(path: str, done: set[str], err: TextIO) -> tuple[list[dict[str, Any]], int, int]:
    """(valid pending lines, bad line count, skipped-as-done count)."""
    todo: list[dict[str, Any]] = []
    bad = skipped = 0
    seen: set[str] = set()
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                err.write(f"line {n}: invalid JSON ({e}); skipped\n")
                bad += 1
                continue
            problem = _check_line(obj)
            if problem:
                err.write(f"line {n}: {problem}; skipped\n")
                bad += 1
                continue
            cid = obj["custom_id"]
            if cid in done:
                skipped += 1
                continue
            if cid in seen:
                err.write(f"line {n}: duplicate custom_id {cid!r}; skipped\n")
                bad += 1
                continue
            seen.add(cid)
            todo.append(obj)
    return todo, bad, skipped


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
            "response": {"status_code": 200, "request_id": rid, "body": getattr(result, "raw", result)},
            "error": None}


def run_batch_cli(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    """The ``batch`` subcommand."""
    from . import VllmClient

    done = read_done(args.output)
    todo, bad, skipped = read_input(args.input, done, err)
    if skipped:
        err.write(f"batch: {skipped} request(s) already in {args.output}; skipped\n")
    if not todo:
        err.write(f"batch: nothing to do ({bad} bad line(s))\n")
        return 1 if bad else 0
    urls = [args.base_url or os.environ.get("VLLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
            or "http://localhost:8000/v1"] + list(args.servers or [])
    errors = 0
    with open(args.output, "ab") as out:
        if out.tell() > 0:  # a crash may have left a torn last line: start on a fresh line
            with open(args.output, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    out.write(b"\n")
        with VllmClient(urls if len(urls) > 1 else urls[0], api_key=args.api_key, default_model=args.model,
                        timeout=args.timeout) as client:
            requests = [{"url": o["url"], "body": o["body"]} for o in todo]
            for i, result in client.batch_iter(requests, concurrency=args.concurrency,
                                               progress=not args.no_progress,
                                               max_requests_per_second=args.max_requests_per_second):
                if isinstance(result, Exception):
                    errors += 1
                out.write(orjson.dumps(output_line(todo[i]["custom_id"], result)) + b"\n")
                out.flush()
    err.write(f"batch: {len(todo)} request(s) written to {args.output}; {errors} failed; {bad} bad line(s)\n")
    return 1 if errors or bad else 0
