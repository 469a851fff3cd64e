"""One benchmark runner per process: ``python benchmarks/_runners.py NAME KIND N URL MODE``.

Prints one JSON line: client CPU seconds, wall seconds, peak RSS, and whether the
result was right (every runner checks its text before its time counts).
KIND is "stream" (N chunks) or "nonstream" (N requests; async runners use concurrency 64).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import MODEL, NONSTREAM_TEXT, expected_text  # noqa: E402

MESSAGES = [{"role": "user", "content": "Hello"}]
CONCURRENCY = 64


def _split_lines_loop(chunks: Any, loads: Any) -> str:
    parts: list[str] = []
    buf = b""
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                obj = loads(line[6:])
                for c in obj["choices"]:
                    t = c["delta"].get("content")
                    if t:
                        parts.append(t)
    return "".join(parts)


# -- streaming -----------------------------------------------------------------------------------

def bare_requests_stream(url: str, n: int, mode: str) -> str:
    import orjson
    import requests

    with requests.Session() as s:
        r = s.post(f"{url}/chat/completions", json={"model": MODEL, "messages": MESSAGES, "stream": True},
                   headers={"x-bench-n": str(n), "x-bench-mode": mode}, stream=True)
        return _split_lines_loop(r.iter_content(chunk_size=None), orjson.loads)


async def _bare_aiohttp_stream(url: str, n: int, mode: str) -> str:
    import aiohttp
    import orjson

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/chat/completions", json={"model": MODEL, "messages": MESSAGES, "stream": True},
                          headers={"x-bench-n": str(n), "x-bench-mode": mode}) as r:
            parts: list[str] = []
            buf = b""
            async for chunk in r.content.iter_any():
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"data: ") and line != b"data: [DONE]":
                        obj = orjson.loads(line[6:])
                        for c in obj["choices"]:
                            t = c["delta"].get("content")
                            if t:
                                parts.append(t)
            return "".join(parts)


def bare_requests_lines_stream(url: str, n: int, mode: str) -> str:
    """The usual hand-written loop: ``iter_lines()`` (the issue's "bare requests" one-event figure)."""
    import orjson
    import requests

    with requests.Session() as s:
        r = s.post(f"{url}/chat/completions", json={"model": MODEL, "messages": MESSAGES, "stream": True},
                   headers={"x-bench-n": str(n), "x-bench-mode": mode}, stream=True)
        parts: list[str] = []
        for line in r.iter_lines():
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                for c in orjson.loads(line[6:])["choices"]:
                    t = c["delta"].get("content")
                    if t:
                        parts.append(t)
        return "".join(parts)


async def _bare_aiohttp_lines_stream(url: str, n: int, mode: str) -> str:
    """``async for line in resp.content`` (the issue's "line iteration" aiohttp figure)."""
    import aiohttp
    import orjson

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/chat/completions", json={"model": MODEL, "messages": MESSAGES, "stream": True},
                          headers={"x-bench-n": str(n), "x-bench-mode": mode}) as r:
            parts: list[str] = []
            async for line in r.content:
                if line.startswith(b"data: ") and line.rstrip() != b"data: [DONE]":
                    for c in orjson.loads(line[6:])["choices"]:
                        t = c["delta"].get("content")
                        if t:
                            parts.append(t)
            return "".join(parts)


def _ours_builder(client: Any, n: int, mode: str) -> Any:
    return (client.chat.completions().create().model(MODEL).messages(MESSAGES)
            .header("x-bench-n", str(n)).header("x-bench-mode", mode))


def ours_sync_events(url: str, n: int, mode: str) -> str:
    from vllm_client import VllmClient

    with VllmClient(url) as client:
        parts = []
        for ev in _ours_builder(client, n, mode).send_stream():
            if ev.type == "content":
                parts.append(ev.text)
            elif ev.type == "done":
                assert ev.response.content == "".join(parts)
        return "".join(parts)


def ours_sync_text(url: str, n: int, mode: str) -> str:
    from vllm_client import VllmClient

    with VllmClient(url) as client:
        return "".join(_ours_builder(client, n, mode).send_stream().text_stream())


async def _ours_async_events(url: str, n: int, mode: str) -> str:
    from vllm_client import AsyncVllmClient

    async with AsyncVllmClient(url) as client:
        parts = []
        async for ev in await _ours_builder(client, n, mode).send_stream():
            if ev.type == "content":
                parts.append(ev.text)
        return "".join(parts)


async def _ours_async_text(url: str, n: int, mode: str) -> str:
    from vllm_client import AsyncVllmClient

    async with AsyncVllmClient(url) as client:
        stream = await _ours_builder(client, n, mode).send_stream()
        return "".join([t async for t in stream.text_stream()])


def openai_sync_stream(url: str, n: int, mode: str) -> str:
    import openai

    client = openai.OpenAI(base_url=url, api_key="x")
    parts = []
    for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,  # type: ignore
                                                extra_headers={"x-bench-n": str(n), "x-bench-mode": mode}):
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
    client.close()
    return "".join(parts)


async def _openai_async_stream(url: str, n: int, mode: str) -> str:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="x")
    parts = []
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,  # type: ignore
                                                  extra_headers={"x-bench-n": str(n), "x-bench-mode": mode})
    async for chunk in stream:
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
    await client.close()
    return "".join(parts)


# -- non-stream ------------------------------------------------------------------------------------

def bare_requests_nonstream(url: str, n: int) -> list[str]:
    import orjson
    import requests

    out = []
    with requests.Session() as s:
        for _ in range(n):
            r = s.post(f"{url}/chat/completions", data=orjson.dumps({"model": MODEL, "messages": MESSAGES}),
                       headers={"content-type": "application/json"})
            out.append(orjson.loads(r.content)["choices"][0]["message"]["content"])
    return out


async def _bare_aiohttp_nonstream(url: str, n: int) -> list[str]:
    import aiohttp
    import orjson

    sem = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:
        async def one() -> str:
            async with sem:
                async with s.post(f"{url}/chat/completions", data=orjson.dumps({"model": MODEL, "messages": MESSAGES}),
                                  headers={"content-type": "application/json"}) as r:
                    content: str = orjson.loads(await r.read())["choices"][0]["message"]["content"]
                    return content
        return list(await asyncio.gather(*(one() for _ in range(n))))


def ours_sync_nonstream(url: str, n: int) -> list[str]:
    from vllm_client import VllmClient

    with VllmClient(url) as client:
        return [client.chat.completions().create().model(MODEL).messages(MESSAGES).send().content or ""
                for _ in range(n)]


async def _ours_async_nonstream(url: str, n: int) -> list[str]:
    from vllm_client import AsyncVllmClient

    sem = asyncio.Semaphore(CONCURRENCY)
    async with AsyncVllmClient(url) as client:
        async def one() -> str:
            async with sem:
                r = await client.chat.completions().create().model(MODEL).messages(MESSAGES).send()
                return r.content or ""
        return list(await asyncio.gather(*(one() for _ in range(n))))


async def _ours_async_batch(url: str, n: int) -> list[str]:
    from vllm_client import AsyncVllmClient

    async with AsyncVllmClient(url) as client:
        reqs = [client.chat.completions().create().model(MODEL).messages(MESSAGES) for _ in range(n)]
        return [r.content for r in await client.batch(reqs, concurrency=CONCURRENCY, progress=False)]


def openai_sync_nonstream(url: str, n: int) -> list[str]:
    import openai

    client = openai.OpenAI(base_url=url, api_key="x")
    out = [client.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content or ""  # type: ignore
           for _ in range(n)]
    client.close()
    return out


async def _openai_async_nonstream(url: str, n: int) -> list[str]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="x")
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one() -> str:
        async with sem:
            r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore
            return r.choices[0].message.content or ""
    out = list(await asyncio.gather(*(one() for _ in range(n))))
    await client.close()
    return out


def _sync(fn: Any) -> Any:
    return lambda *a: asyncio.run(fn(*a))


STREAM = {
    "bare-requests": bare_requests_stream,
    "bare-aiohttp": _sync(_bare_aiohttp_stream),
    "bare-requests-iter_lines": bare_requests_lines_stream,
    "bare-aiohttp-lines": _sync(_bare_aiohttp_lines_stream),
    "vllm_client-sync-events": ours_sync_events,
    "vllm_client-sync-text_stream": ours_sync_text,
    "vllm_client-async-events": _sync(_ours_async_events),
    "vllm_client-async-text_stream": _sync(_ours_async_text),
    "openai-sync": openai_sync_stream,
    "openai-async": _sync(_openai_async_stream),
}
NONSTREAM = {
    "bare-requests": bare_requests_nonstream,
    "bare-aiohttp": _sync(_bare_aiohttp_nonstream),
    "vllm_client-sync": ours_sync_nonstream,
    "vllm_client-async": _sync(_ours_async_nonstream),
    "vllm_client-async-batch": _sync(_ours_async_batch),
    "openai-sync": openai_sync_nonstream,
    "openai-async": _sync(_openai_async_nonstream),
}


def main() -> None:
    name, kind, n_text, url = sys.argv[1:5]
    n = int(n_text)
    mode = sys.argv[5] if len(sys.argv) > 5 else "many"
    fn = STREAM[name] if kind == "stream" else NONSTREAM[name]
    # warm-up: imports, connection set-up and caches are not what we measure
    if kind == "stream":
        fn(url, 200, mode)
    else:
        fn(url, 20)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn(url, n, mode) if kind == "stream" else fn(url, n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ok = result == expected_text(n) if kind == "stream" else result == [NONSTREAM_TEXT] * n
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"name": name, "kind": kind, "mode": mode, "n": n, "cpu_s": cpu, "wall_s": wall,
                      "rss_kb": rss_kb, "ok": ok}))


if __name__ == "__main__":
    main()
