"""Batch throughput: 5,000 short chat requests at concurrency 64 against a local server,
``AsyncVllmClient.batch`` and the sync ``VllmClient.batch`` vs a hand-written asyncio.gather +
semaphore loop over bare aiohttp, in one run.

    python benchmarks/bench_batch.py [--requests 5000] [--repeat 3]

With ``--cli-lines N`` it runs ``vllm-client batch`` instead on an N-line JSONL file (written
to a temporary directory) under ``/usr/bin/time -v`` and prints the peak RSS and requests/s:
the CLI reads its input lazily, so the RSS must not grow with the file (beyond the set of
custom_ids).

    python benchmarks/bench_batch.py --cli-lines 1000000 [--line-bytes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _runners import CONCURRENCY, MESSAGES, MODEL, NONSTREAM_TEXT, _bare_aiohttp_nonstream  # noqa: E402
from run_all import free_port  # noqa: E402


async def ours_async(url: str, n: int) -> list[str]:
    from vllm_client import AsyncVllmClient

    async with AsyncVllmClient(url) as client:
        reqs = [client.chat.completions().create().model(MODEL).messages(MESSAGES) for _ in range(n)]
        return [r.content for r in await client.batch(reqs, concurrency=CONCURRENCY, progress=False)]


def ours_sync(url: str, n: int) -> list[str]:
    from vllm_client import VllmClient

    with VllmClient(url) as client:
        reqs = [client.chat.completions().create().model(MODEL).messages(MESSAGES) for _ in range(n)]
        return [r.content for r in client.batch(reqs, concurrency=CONCURRENCY, progress=False)]


RUNNERS = {
    "bare aiohttp gather+semaphore": lambda u, n: asyncio.run(_bare_aiohttp_nonstream(u, n)),
    "AsyncVllmClient.batch": lambda u, n: asyncio.run(ours_async(u, n)),
    "VllmClient.batch (sync)": ours_sync,
}


def measure(name: str, url: str, n: int) -> dict[str, float]:
    fn = RUNNERS[name]
    fn(url, 100)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(url, n)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if out != [NONSTREAM_TEXT] * n:
        raise SystemExit(f"{name}: wrong results")
    return {"cpu_s": cpu, "wall_s": wall}


def cli_rss(url: str, lines: int, line_bytes: int) -> None:
    """``vllm-client batch`` on a file of ``lines`` lines under ``/usr/bin/time -v``."""
    import re
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        pad = "x" * max(0, line_bytes - 130)
        with open(inp, "w") as f:
            for i in range(lines):
                f.write(json.dumps({"custom_id": f"request-{i}", "method": "POST", "url": "/v1/chat/completions",
                                    "body": {"model": MODEL, "messages": [{"role": "user", "content": f"{i} {pad}"}]}})
                        + "\n")
        size = inp.stat().st_size
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "vllm_client", "batch", str(inp), "-o", str(out),
               "--base-url", url, "--concurrency", str(CONCURRENCY), "--no-progress"]
        wall = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - wall
        if r.returncode != 0:
            raise SystemExit(f"vllm-client batch failed: {r.stderr[-2000:]}")
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))  # type: ignore[union-attr]
        cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", r.stderr).group(1))  # type: ignore[union-attr]
                  for k in ("User", "System"))
        with open(out, "rb") as f:
            written = sum(1 for _ in f)
        if written != lines:
            raise SystemExit(f"{written} records for {lines} lines")
    print(f"\n## vllm-client batch: {lines:,} lines ({size / 1e6:.0f} MB) at concurrency {CONCURRENCY}\n")
    print(f"peak RSS {rss_kb / 1024:.1f} MB; {lines / wall:.0f} requests/s (wall {wall:.1f} s, "
          f"start-up included); client CPU {1e6 * cpu / lines:.0f} us per request")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cli-lines", type=int, default=0, help="run vllm-client batch on a file of N lines instead")
    ap.add_argument("--line-bytes", type=int, default=300, help="approximate size of one input line")
    ap.add_argument("--name", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.name:  # child process: one runner
        print(json.dumps(measure(args.name, args.url, args.requests)))
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_server.py"), str(port)], stdout=subprocess.PIPE, text=True)
    if args.cli_lines:
        try:
            assert server.stdout is not None and server.stdout.readline().startswith("ready")
            cli_rss(f"http://127.0.0.1:{port}/v1", args.cli_lines, args.line_bytes)
        finally:
            server.terminate()
            server.wait(timeout=10)
        return
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("ready")
        url = f"http://127.0.0.1:{port}/v1"
        rows = {}
        for name in RUNNERS:
            best = None
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, __file__, "--name", name, "--url", url,
                                      "--requests", str(args.requests)], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout)
                best = r if best is None or r["wall_s"] < best["wall_s"] else best
            rows[name] = best
    finally:
        server.terminate()
        server.wait(timeout=10)
    n = args.requests
    bare = rows["bare aiohttp gather+semaphore"]
    print(f"\n## Batch: {n} chat requests at concurrency {CONCURRENCY}\n")
    print("| client | requests/s | vs bare | client CPU per request | vs bare |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        assert r is not None and bare is not None
        print(f"| {name} | {n / r['wall_s']:.0f} | {bare['wall_s'] / r['wall_s']:.2f}x | "
              f"{1e6 * r['cpu_s'] / n:.0f} us | {r['cpu_s'] / bare['cpu_s']:.2f}x |")


if __name__ == "__main__":
    main()
