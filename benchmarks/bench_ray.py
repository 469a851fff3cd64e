"""Ray Data batch inference over HTTP: Ray's own ``ray.data.llm`` HTTP processor
(``HttpRequestProcessorConfig`` + ``build_processor``) against ``vllm_client.ray``, with the
same actors (count and CPUs each), the same rows, the same server.

    pip install -e ".[ray]"
    python benchmarks/bench_ray.py [--rows 2000] [--latency 0.2] [--actors 2] [--concurrency 128]

The server (a subprocess: asyncio, keep-alive) answers every chat request with a fixed
vLLM-shaped body after ``--latency`` seconds and counts the requests in flight. Printed per
run: requests/s at the server (from the first request to the last answer: actor start-up
left out), rows/s over the wall time of the dataset's execution (Ray already started), the server's peak of
requests in flight, the CPU seconds of the actors (user+system of their processes, read from
/proc), the largest peak RSS of one actor (VmHWM: it counts the pages of Ray's object store
that the actor mapped) and its peak private memory (RssAnon, sampled every 0.1 s).
``--rss-only`` runs one idle Ray Data actor (the baseline) and vllm_client.ray with one
actor at 256 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _server import MODEL, NONSTREAM  # noqa: E402
from run_all import free_port  # noqa: E402

# -- the server ------------------------------------------------------------------------------

STATS: dict[str, Any] = {"now": 0, "peak": 0, "requests": 0, "first": None, "last": None}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            if path.startswith("/stats"):
                body = json.dumps(STATS).encode()
                if "reset" in path:
                    STATS.update(peak=STATS["now"], requests=0, first=None, last=None)
            elif method == "POST":
                STATS["now"] += 1
                STATS["requests"] += 1
                if STATS["first"] is None:
                    STATS["first"] = time.monotonic()
                STATS["peak"] = max(STATS["peak"], STATS["now"])
                try:
                    await asyncio.sleep(latency)
                finally:
                    STATS["now"] -= 1
                    STATS["last"] = time.monotonic()
                body = NONSTREAM
            else:
                body = b"{}"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, latency), "127.0.0.1", port, backlog=4096)
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


def stats(port: int, reset: bool = False) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats{'?reset' if reset else ''}", timeout=10) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


# -- what the actors cost (read from /proc: Ray's own processor runs its postprocess elsewhere) --


class Sampler:
    """Samples, every 0.1 s, the CPU time and peak RSS (VmHWM) of this session's Ray Data actor
    processes (``ray::MapWorker...`` whose raylet is a child of this process) running ``udf``."""

    def __init__(self, udf: str) -> None:
        self.udf = udf.encode()
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, float] = {}
        self.anon: dict[int, float] = {}  # peak RssAnon: private memory, without the mapped object store
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for pid in self.actors():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    self.cpu[pid] = (int(fields[11]) + int(fields[12])) / self.tick
                    with open(f"/proc/{pid}/status") as f:
                        for ln in f:
                            if ln.startswith("VmHWM:"):
                                self.rss[pid] = int(ln.split()[1]) / 1024
                            elif ln.startswith("RssAnon:"):
                                self.anon[pid] = max(self.anon.get(pid, 0.0), int(ln.split()[1]) / 1024)
                except (OSError, ValueError, IndexError):
                    continue

    def actors(self) -> list[int]:
        def parent(pid: int) -> int:
            with open(f"/proc/{pid}/stat") as f:
                return int(f.read().rsplit(")", 1)[1].split()[1])

        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        cmd = f.read()
                    if b"MapWorker" in cmd and self.udf in cmd and parent(parent(int(entry))) == os.getpid():
                        found.append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        return found


# -- the two processors ----------------------------------------------------------------------


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {i}: what is {i} squared?"}]


def ray_http(ray: Any, url: str, n: int, actors: int, num_cpus: float) -> tuple[float, list[dict[str, Any]]]:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    config = HttpRequestProcessorConfig(url=url + "/chat/completions", batch_size=64,
                                        http_request_stage={"concurrency": actors, "num_cpus": num_cpus})
    processor = build_processor(
        config,
        preprocess=lambda row: {"payload": {"model": MODEL, "messages": messages(row["id"]), "max_tokens": 16}},
        postprocess=lambda row: {"content": row["http_response"]["choices"][0]["message"]["content"]},
    )
    ds = processor(ray.data.range(n))
    t0 = time.perf_counter()
    rows = ds.take_all()
    return time.perf_counter() - t0, rows


class Idle:
    """A Ray Data actor that sends nothing: the baseline of an actor's memory."""

    async def __call__(self, batch: Any) -> Any:
        await asyncio.sleep(0.2)
        return {"content": ["x"] * len(batch["id"])}


def idle(ray: Any, n: int, actors: int, num_cpus: float) -> tuple[float, list[dict[str, Any]]]:
    ds = ray.data.range(n).map_batches(Idle, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=num_cpus,
                                       batch_size=64)
    t0 = time.perf_counter()
    rows = ds.take_all()
    return time.perf_counter() - t0, rows


def ours(ray: Any, url: str, n: int, actors: int, num_cpus: float, concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    import vllm_client.ray as vray

    ds = ray.data.range(n).map(lambda r: {"custom_id": str(r["id"]), "url": "/v1/chat/completions",
                                          "body": json.dumps({"model": MODEL, "messages": messages(r["id"]),
                                                              "max_tokens": 16})})
    ds = vray.process(ds, url, actors=actors, num_cpus=num_cpus, concurrency=concurrency)
    t0 = time.perf_counter()
    rows = ds.take_all()
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--num-cpus", type=float, default=0.25)
    ap.add_argument("--concurrency", type=int, default=128, help="vllm_client.ray: requests in flight per actor")
    ap.add_argument("--rss-only", action="store_true")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.latency))
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("ready")
        url = f"http://127.0.0.1:{port}/v1"
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        ray.data.DataContext.get_current().enable_progress_bars = False
        runs: list[tuple[str, str, Any]] = []
        if args.rss_only:
            runs.append(("baseline: a Ray Data actor sending nothing", "Idle",
                         lambda: idle(ray, args.rows, 1, args.num_cpus)))
            runs.append(("vllm_client.ray, 1 actor, 256 in flight", "BatchProcessor",
                         lambda: ours(ray, url, args.rows, 1, args.num_cpus, 256)))
        else:
            runs.append(("ray.data.llm HttpRequestProcessorConfig", "HttpRequestUDF",
                         lambda: ray_http(ray, url, args.rows, args.actors, args.num_cpus)))
            runs.append((f"vllm_client.ray (concurrency {args.concurrency})", "BatchProcessor",
                         lambda: ours(ray, url, args.rows, args.actors, args.num_cpus, args.concurrency)))
        print(f"{args.rows} rows, server latency {args.latency * 1000:.0f} ms, {args.actors} actor(s) of "
              f"{args.num_cpus} CPU; machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        print("| processor | requests/s at the server | rows/s, wall | server max in flight | actors' CPU s "
              "| peak RSS per actor | peak RssAnon per actor |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, udf, run in runs:
            stats(port, reset=True)
            with Sampler(udf) as sampler:
                wall, rows = run()
            s = stats(port)
            cpu, rss = sum(sampler.cpu.values()), max(sampler.rss.values(), default=0.0)
            anon = max(sampler.anon.values(), default=0.0)
            assert len(rows) == args.rows and all(r["content"] for r in rows), "wrong or missing rows"
            served = s["requests"] / max(s["last"] - s["first"], 1e-9) if s["first"] else 0.0
            print(f"| {name} | {served:.1f} | {len(rows) / wall:.1f} | {s['peak']} | {cpu:.1f} | {rss:.0f} MB "
                  f"| {anon:.0f} MB |", flush=True)
        ray.shutdown()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
