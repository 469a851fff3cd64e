"""Issue 31 item 11: ``vllm-client batch`` with pipes, FIFOs and stdin as input, stdout as output,
the output naming the input, and a transient connection reset (subprocesses, real sockets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from vllm_client._batch_cli import Watchdog
from vllm_client._exceptions import APIConnectionError
from vllm_client.testing import FakeVllmServer

from .test_batch_cli import assert_complete, lines, records
from .test_cli import cli, write_jsonl


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VLLM_BASE_URL", "OPENAI_BASE_URL", "VLLM_API_KEY")}


def text_of(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_stdin_and_dev_stdin_as_input(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    for name in ("-", "/dev/stdin"):
        out = tmp_path / f"out{len(name)}.jsonl"
        r = cli("batch", name, "-o", str(out), "--base-url", vllm_server.url, stdin=text_of(lines(30)))
        assert r.returncode == 0, r.stderr
        assert "nothing to do" not in r.stderr
        assert_complete(out, 30)


def test_a_fifo_as_input_is_read_once(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    fifo, out = tmp_path / "in.fifo", tmp_path / "out.jsonl"
    os.mkfifo(fifo)
    writes: list[int] = []

    def writer() -> None:  # one writer: a second read of the FIFO would wait for ever, not re-read
        with open(fifo, "w") as f:
            writes.append(f.write(text_of(lines(25))))

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    r = cli("batch", str(fifo), "-o", str(out), "--base-url", vllm_server.url, timeout=60)
    th.join(5)
    assert r.returncode == 0, r.stderr
    assert_complete(out, 25)


def test_stdout_as_output(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, lines(20))
    for name in ("-", "/dev/stdout"):
        # stdout is a pipe here, as in `... -o /dev/stdout | wc -l` (which used to hang)
        p = subprocess.run([sys.executable, "-m", "vllm_client", "batch", str(inp), "-o", name, "--base-url",
                            vllm_server.url], capture_output=True, timeout=60, env=env())
        assert p.returncode == 0, p.stderr
        rows = [json.loads(x) for x in p.stdout.splitlines()]
        assert sorted(x["custom_id"] for x in rows) == sorted(f"id-{i}" for i in range(20))
        assert all(x["response"]["status_code"] == 200 for x in rows)
        assert b"requests: 20 ok" in p.stderr  # the summary stays on stderr


def test_stdin_to_stdout_in_a_pipeline(vllm_server: FakeVllmServer) -> None:
    p = subprocess.run([sys.executable, "-m", "vllm_client", "batch", "-", "-o", "-", "--base-url", vllm_server.url,
                        "--no-progress"], input=text_of(lines(10)).encode(), capture_output=True, timeout=60, env=env())
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 10


def test_the_output_naming_the_input_is_refused_and_the_input_untouched(
        vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, lines(4) + ["{not json"])
    before = inp.read_bytes()
    os.link(inp, tmp_path / "hard.jsonl")
    os.symlink(inp, tmp_path / "soft.jsonl")
    for out in (str(inp), str(tmp_path / "hard.jsonl"), str(tmp_path / "soft.jsonl"), f"{tmp_path}/./in.jsonl"):
        r = cli("batch", str(inp), "-o", out, "--base-url", vllm_server.url)
        assert r.returncode == 2 and "is the input file" in r.stderr, r.stderr
        assert inp.read_bytes() == before
    with open(inp) as f:  # `batch - -o in.jsonl < in.jsonl`
        p = subprocess.run([sys.executable, "-m", "vllm_client", "batch", "-", "-o", str(inp), "--base-url",
                            vllm_server.url], stdin=f, capture_output=True, timeout=60, env=env())
    assert p.returncode == 2 and b"is the input file" in p.stderr
    assert inp.read_bytes() == before
    assert not [q for q in vllm_server.requests if q.path == "/v1/chat/completions"]  # nothing sent


def test_one_connection_reset_does_not_stop_a_job_reaching_the_server(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, lines(8))
    with FakeVllmServer() as server:
        server.disconnect_before_response(path="/v1/chat/completions")  # the first request: reset
        for _ in range(8):
            server.delay(1.0, path="/v1/chat/completions")  # healthy, slow generations
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--max-retries", "0",
                "--concurrency", "4", "--no-progress")
        assert "stopped" not in r.stderr, r.stderr
        assert r.returncode == 1 and "1 failed" in r.stderr  # the reset one, retryable
        rows = records(out)
        assert len(rows) == 8
        assert sum(x["response"] is not None and x["response"]["status_code"] == 200 for x in rows) == 7
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--no-progress")  # the re-run
        assert r.returncode == 0, r.stderr
    assert_complete(out, 8)


def test_watchdog_alive_after_a_probe() -> None:
    now = [0.0]
    refused = APIConnectionError("connection to http://x/v1 broke: reset")
    w = Watchdog(failures=3, silence=15, clock=lambda: now[0])
    assert w.note(refused) is not None  # before any answer the job asks the server (/health) ...
    w.alive()  # ... which answered: the failure was transient
    now[0] = 10.0
    assert [w.note(refused) for _ in range(2)] == [None, None]
    assert "3 connection failures in a row" in (w.note(refused) or "")  # (then asked again)
