"""``vllm-client batch`` as operations run it: a dead or dying server, failures retried on
resume, kill -9 at any moment, torn lines, duplicates, the summary (subprocesses, real sockets)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vllm_client._batch_cli import Watchdog, is_done
from vllm_client._exceptions import APIConnectionError, InternalServerError
from vllm_client.testing import FakeVllmServer

from .test_cli import cli, write_jsonl


def lines(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    return [{"custom_id": f"id-{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "fake-model", "messages": [{"role": "user", "content": f"{prefix}{i}"}]}}
            for i in range(n)]


def records(out: Path) -> list[dict[str, Any]]:
    """Every line of the output, each of which must be a whole JSON record."""
    return [json.loads(x) for x in out.read_bytes().split(b"\n") if x]


def assert_complete(out: Path, n: int) -> None:
    rows = records(out)
    assert sorted(r["custom_id"] for r in rows) == sorted(f"id-{i}" for i in range(n))  # each exactly once
    for r in rows:
        assert r["response"]["status_code"] == 200, r
        i = r["custom_id"].split("-")[1]
        assert r["response"]["body"]["choices"][0]["message"]["content"].endswith(f"q{i}")  # its own answer


def popen(inp: Path, out: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if k not in ("VLLM_BASE_URL", "OPENAI_BASE_URL")}
    return subprocess.Popen([sys.executable, "-m", "vllm_client", "batch", str(inp), "-o", str(out),
                             "--base-url", url, "--no-progress", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)


def test_an_unreachable_server_ends_the_job_at_once_writing_nothing(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, lines(500))
    t = time.monotonic()
    for progress in ([], ["--no-progress"]):
        r = cli("batch", str(inp), "-o", str(out), "--base-url", "http://127.0.0.1:9/v1", *progress)
        assert time.monotonic() - t < 30  # seconds, not one connection error per line
        assert r.returncode == 1
        assert not out.exists()  # no error records, and no empty file either
        (line,) = r.stderr.splitlines()  # one line, whatever the progress setting
        assert "cannot reach the server at http://127.0.0.1:9/v1" in line and "Connection refused" in line
        assert "--base-url" in line and "VLLM_BASE_URL" in line and "ssl:default" not in line


def test_a_server_dying_mid_job_stops_it_and_the_rerun_completes(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    n = 400
    write_jsonl(inp, lines(n))
    server = FakeVllmServer().start()
    try:
        for _ in range(n):
            server.delay(0.01)
        p = popen(inp, out, server.url, "--concurrency", "4", "--max-retries", "0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
            time.sleep(0.02)
        server.stop()  # the server dies
        died = time.monotonic()
        _, err = p.communicate(timeout=40)
        assert time.monotonic() - died < 20  # stopped within about 20 s of the death
        assert p.returncode == 1 and b"stopped: the server stopped answering" in err
        assert 20 <= len(records(out)) < n
        server.start()  # back, on the same port
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--no-progress")
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()
    assert_complete(out, n)


def test_retryable_failures_are_not_done_and_the_rerun_sends_exactly_them(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    n = 20
    write_jsonl(inp, lines(n) + [{"custom_id": "bad-model", "url": "/v1/chat/completions",
                                  "body": {"model": "fake-model", "messages": [], "max_tokens": 10**6}}])
    with FakeVllmServer() as server:
        for _ in range(3):
            server.fail(503)
        server.fail(429)
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--max-retries", "0",
                "--concurrency", "1", "--no-progress")
        assert r.returncode == 1 and "5 failed" in r.stderr, r.stderr
        first = records(out)
        statuses = sorted(x["response"]["status_code"] for x in first)
        assert statuses.count(503) == 3 and statuses.count(429) == 1 and statuses.count(400) == 1
        before = len(server.requests)
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--no-progress")
        resent = [q.body["messages"][0]["content"] for q in server.requests[before:]
                  if q.path == "/v1/chat/completions"]
    assert len(resent) == 4  # exactly the retryable failures, not the 400 (a permanent failure stays done)
    rows = records(out)
    by_id = {x["custom_id"]: x for x in rows}
    assert len(rows) == len(by_id) == n + 1  # one record per custom_id, the latest
    assert by_id["bad-model"]["response"]["status_code"] == 400
    assert all(by_id[f"id-{i}"]["response"]["status_code"] == 200 for i in range(n))
    assert "4 record(s) dropped" in r.stderr


def test_kill_9_at_random_moments_loses_nothing_finished(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    n = 500
    write_jsonl(inp, lines(n))
    rnd = random.Random(20)
    counts = []
    port = 0
    for k in range(8):
        with FakeVllmServer(port=port) as server:  # a fresh script each run, on the same port
            port = server.port
            if k % 3 == 1:
                for _ in range(5):
                    server.fail(503)  # failures that the next run compacts away (and retries)
            for _ in range(n):
                server.delay(0.03)
            p = popen(inp, out, server.url, "--concurrency", "4", "--max-retries", "0")
            time.sleep(rnd.uniform(0.3, 1.5))  # from start-up (and compaction) to mid-job
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        counts.append(out.read_bytes().count(b"\n") if out.exists() else 0)
        if rnd.random() < 0.4 and out.exists():
            with open(out, "ab") as f:
                f.write(b'{"id": "torn", "custom_id": "id-')  # as a kill in the middle of a write leaves
    assert sum(0 < c < n for c in counts) >= 4, counts  # the kills fell mid-job
    with FakeVllmServer(port=port) as server:
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert_complete(out, n)


def test_a_torn_last_line_is_repaired(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, lines(6))
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--no-progress")
    assert r.returncode == 0, r.stderr
    kept = out.read_bytes().split(b"\n")[:3]
    out.write_bytes(b"\n".join(kept) + b"\n" + b'{"id": "x", "custom_id": "id-')
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().endswith(b"\n")
    assert_complete(out, 6)  # only whole JSON lines, one per custom_id


def test_duplicate_custom_ids_are_reported_and_sent_once(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = lines(4)
    write_jsonl(inp, [rows[0], rows[1], rows[0], rows[2], rows[3], rows[2]])
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--no-progress")
    assert r.returncode == 1
    assert "line 3: duplicate custom_id 'id-0'" in r.stderr and "line 6: duplicate custom_id 'id-2'" in r.stderr
    assert_complete(out, 4)
    assert len([q for q in vllm_server.requests if q.path == "/v1/chat/completions"]) == 4


def test_summary_and_summary_json(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp, out, summ = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "s.json"
    write_jsonl(inp, lines(30))
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--summary-json", str(summ))
    assert r.returncode == 0, r.stderr
    assert "30 ok, 0 failed" in r.stderr and "req/s" in r.stderr and "p99" in r.stderr
    s = json.loads(summ.read_text())
    assert (s["requests"], s["ok"], s["failed"], s["written"]) == (30, 30, 0, 30)
    assert s["output_tokens"] > 0 and s["latency_p50_s"] <= s["latency_p90_s"] <= s["latency_p99_s"]
    assert "30/30" in r.stderr  # the plain progress line (stderr is not a terminal)


def test_help_says_how_resuming_works() -> None:
    r = cli("batch", "--help")
    assert "retryable" in r.stdout and "--summary-json" in r.stdout and "torn" in r.stdout


# -- the pure parts ----------------------------------------------------------------------------

def test_watchdog_rules() -> None:
    now = [0.0]
    refused = APIConnectionError("could not reach http://x/v1: refused")
    answer = InternalServerError("busy", status_code=503, body=None, headers={})
    w = Watchdog(failures=5, silence=15, clock=lambda: now[0])
    assert w.note(refused) is not None  # before any answer: unreachable, stop at once
    w = Watchdog(failures=5, silence=15, clock=lambda: now[0])
    assert w.note(answer) is None  # an error status is an answer: the server is alive
    assert [w.note(refused) for _ in range(4)] == [None] * 4
    assert w.note(answer) is None  # resets the count
    assert [w.note(refused) for _ in range(4)] == [None] * 4
    assert "5 connection failures in a row" in (w.note(refused) or "")
    w = Watchdog(failures=50, silence=15, clock=lambda: now[0])
    w.note(object())
    now[0] = 14.0
    assert w.note(refused) is None
    now[0] = 15.5
    assert "no answer for 16 s" in (w.note(refused) or "")


def test_what_is_done() -> None:
    ok = {"custom_id": "a", "response": {"status_code": 200, "body": {}}, "error": None}
    assert is_done(ok)
    assert is_done({**ok, "response": {"status_code": 400}}) and is_done({**ok, "response": {"status_code": 422}})
    for status in (408, 409, 429, 500, 503):
        assert not is_done({**ok, "response": {"status_code": status}})
    for code in ("APIConnectionError", "APITimeoutError"):
        assert not is_done({"custom_id": "a", "response": None, "error": {"code": code, "message": "x"}})
    assert is_done({"custom_id": "a", "response": None, "error": {"code": "ResponseDecodeError", "message": "x"}})


def test_a_missing_input_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(tmp_path / "nope.jsonl"), "-o", str(out), "--base-url", "http://127.0.0.1:9/v1")
    assert r.returncode == 1 and not out.exists()
    (line,) = r.stderr.splitlines()
    assert line == f"batch: cannot read the input {tmp_path / 'nope.jsonl'}: No such file or directory"
    r = cli("batch", str(tmp_path), "-o", str(out))
    assert r.returncode == 1 and r.stderr.strip().endswith("it is a directory") and "unexpected" not in r.stderr


def test_rerun_advice_only_for_retryable_failures_and_nothing_left_is_success(
        vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = lines(3)
    rows[1]["body"]["n"] = 0  # a 400: a failure for good
    write_jsonl(inp, rows)
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--max-retries", "0")
    assert r.returncode == 1 and "1 failed" in r.stderr and "again" not in r.stderr  # re-running changes nothing
    progress = [x for x in r.stderr.splitlines() if x.startswith("batch: ") and "req/s" in x]
    assert len(progress) == 1 and "3/3" in progress[0]  # one final line (stderr is not a terminal)
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url)
    assert r.returncode == 0, r.stderr  # nothing left to do
    assert "3 request(s) already in" in r.stderr and "0/0" not in r.stderr
    out.unlink()
    vllm_server.fail(503)
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--max-retries", "0",
            "--concurrency", "1")
    assert r.returncode == 1 and "retry the 1 retryable failure(s)" in r.stderr
