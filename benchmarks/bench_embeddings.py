"""Client CPU of an embeddings response: 1,000 vectors x 1,024 dims, float JSON and base64.

    python benchmarks/bench_embeddings.py            # --requests 20 --repeat 5 --n 1000 --dim 1024

A server process answers ``POST /v1/embeddings`` with pre-encoded vLLM-shaped bodies (float
lists or base64 little-endian float32, by the request's ``encoding_format``). Each runner
runs in its own process, warms up, then sends ``--requests`` requests one after another and
measures its own CPU time (``time.process_time``): the best of ``--repeat`` rounds counts
(runners take turns each round). Runners:

- ``bare``: ``requests`` + ``orjson.loads`` (+ ``base64.b64decode`` + ``array('f')`` per
  vector for base64): the floor every ratio is against;
- ``vllm_client``: ``VllmClient.embeddings().create()...send()`` (``.embeddings`` lists of
  floats, or ``array('f')`` vectors for base64);
- ``openai``: openai-python's ``client.embeddings.create`` (when installed; for base64 its
  default, no ``encoding_format``: it asks for base64 and decodes it, with numpy when numpy is
  installed, into lists of floats).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from array import array
from typing import Any

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))


# -- the server ------------------------------------------------------------------------------------

def bodies(n: int, dim: int) -> tuple[bytes, bytes]:
    rnd = random.Random(0)
    vecs = [array("f", [rnd.uniform(-0.1, 0.1) for _ in range(dim)]) for _ in range(n)]
    head = {"id": "embd-bench", "object": "list", "created": 1, "model": "bench-embed"}
    usage = {"prompt_tokens": n * 8, "total_tokens": n * 8, "completion_tokens": 0}
    as_float = orjson.dumps({**head, "data": [{"index": i, "object": "embedding", "embedding": v.tolist()}
                                              for i, v in enumerate(vecs)], "usage": usage})
    as_b64 = orjson.dumps({**head, "data": [{"index": i, "object": "embedding",
                                             "embedding": base64.b64encode(v.tobytes()).decode()}
                                            for i, v in enumerate(vecs)], "usage": usage})
    return as_float, as_b64


def serve(port: int, n: int, dim: int) -> None:
    import asyncio

    as_float, as_b64 = bodies(n, dim)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                out = as_b64 if b'"base64"' in body else as_float
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                             % len(out))
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the runners ------------------------------------------------------------------------------------

def run_bare(url: str, fmt: str, k: int) -> int:
    import requests

    s = requests.Session()
    total = 0
    for _ in range(k):
        r = s.post(url + "/embeddings", data=orjson.dumps({"model": "bench-embed", "input": ["x"],
                                                           "encoding_format": fmt}),
                   headers={"Content-Type": "application/json"}, timeout=60)
        obj = orjson.loads(r.content)
        if fmt == "base64":
            vecs = [array("f", base64.b64decode(d["embedding"])) for d in obj["data"]]
        else:
            vecs = [d["embedding"] for d in obj["data"]]
        total += len(vecs) * len(vecs[0])
    return total


def run_ours(url: str, fmt: str, k: int) -> int:
    from vllm_client import VllmClient

    total = 0
    with VllmClient(url, max_retries=0, timeout=60) as c:
        for _ in range(k):
            r = c.embeddings().create().model("bench-embed").input(["x"]).encoding_format(fmt).send()
            total += len(r.embeddings) * len(r.embeddings[0])
    return total


def run_openai(url: str, fmt: str, k: int) -> int:
    import openai

    c = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    total = 0
    for _ in range(k):
        if fmt == "base64":  # its default: it asks for base64 and decodes it (an explicit "base64" it leaves as text)
            r = c.embeddings.create(model="bench-embed", input=["x"])
        else:
            r = c.embeddings.create(model="bench-embed", input=["x"], encoding_format="float")
        total += len(r.data) * len(r.data[0].embedding)
    return total


RUNNERS = {"bare": run_bare, "vllm_client": run_ours, "openai": run_openai}


def child(name: str, url: str, fmt: str, k: int) -> None:
    run = RUNNERS[name]
    run(url, fmt, 2)  # warm up (imports, connection)
    t = time.process_time()
    total = run(url, fmt, k)
    cpu = time.process_time() - t
    print(json.dumps({"cpu_ms_per_request": cpu / k * 1000, "values": total // k}))


# -- the driver ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=1024)
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(args.n), str(args.dim)])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        names = ["bare", "vllm_client"]
        try:
            import openai  # noqa: F401

            names.append("openai")
        except ImportError:
            pass
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.repeat):
            for fmt in ("float", "base64"):
                for name in names:
                    out = subprocess.run([sys.executable, __file__, "--child", name, url, fmt, str(args.requests)],
                                         capture_output=True, text=True, check=True).stdout
                    res = json.loads(out.strip().splitlines()[-1])
                    assert res["values"] == args.n * args.dim, (name, fmt, res)
                    key = (fmt, name)
                    best[key] = min(best.get(key, float("inf")), res["cpu_ms_per_request"])
        try:
            import numpy

            np_note = f"numpy {numpy.__version__} installed"
        except ImportError:
            np_note = "numpy not installed"
        print(f"\n{args.n} x {args.dim} embeddings, client CPU per response (best of {args.repeat} x "
              f"{args.requests} requests; {np_note}):\n")
        print("| format | client | CPU ms / response | vs bare |")
        print("|---|---|---:|---:|")
        for fmt in ("float", "base64"):
            for name in names:
                ms = best[(fmt, name)]
                print(f"| {fmt} | {name} | {ms:.1f} | {ms / best[(fmt, 'bare')]:.2f}x |")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
