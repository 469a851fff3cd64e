"""Instruction counts per streamed chunk and per request, with no network and no clock.

    python benchmarks/instructions.py        # needs valgrind (Debian: apt install valgrind)

Timings on a shared 2-core machine move by 20 %; ``valgrind --tool=callgrind`` counts the
instructions a process runs, the same on every run. Each scenario runs twice under callgrind
with different counts (N and 6N) and the difference divided by 5N is the cost of one unit,
start-up and imports cancelled out. Scenarios (pure Python, fed from memory):

- ``stream-one`` / ``stream-many``: the body of a 20,000-chunk vLLM-shaped stream, fed one
  event per read / 50 events per read, through a bare split-lines + orjson loop and through
  ``ChatStream`` (typed events + accumulation); also vLLM 0.33's chunks (each with an
  unmodelled ``"kv_transfer_params": null``, kept by the accumulator), one event per read;
- ``request``: one chat request built, sent to a transport that answers at once with a
  vLLM-shaped body, and its ``.content`` read from the ``ChatCompletionResponse`` (the SDK's
  own work per request; ``orjson.loads`` of that body and the content look-up alone is the
  bare loop's share).
- ``sync request``: real HTTP over 127.0.0.1, one request at a time, the benchmark server
  in a thread: a bare ``requests`` + ``orjson`` loop against ``VllmClient.send()`` (and with
  ``RequestsTransport(pool_block=True)``, whose pool times the wait for a connection).
- ``async request``: real HTTP over 127.0.0.1 at concurrency 64, with the benchmark server
  (``_server.handle``) running in the same event loop, so that the count includes aiohttp and
  the server's share (the same in both rows): a bare ``aiohttp`` + ``orjson`` loop against
  ``AsyncVllmClient.send()``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _server import DONE, EVENTS, FINISH, MODEL, NONSTREAM, NONSTREAM_TEXT, ROLE, USAGE, handle  # noqa: E402

MESSAGES = [{"role": "user", "content": "Hello"}]


def _blocks(mode: str, n: int) -> list[bytes]:
    if mode == "v033":  # vLLM 0.33: every chunk ends with "kv_transfer_params": null
        return [ROLE] + [e[:-3] + b',"kv_transfer_params":null}\n\n' for e in EVENTS[:n]] + [FINISH + USAGE + DONE]
    if mode == "many":
        return [ROLE] + [b"".join(EVENTS[s:s + 50]) for s in range(0, n, 50)] + [FINISH + USAGE + DONE]
    return [ROLE] + EVENTS[:n] + [FINISH + USAGE + DONE]


def bare_stream(mode: str, n: int) -> None:
    import orjson

    parts: list[str] = []
    buf = b""
    for chunk in _blocks(mode, n):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                for c in orjson.loads(line[6:])["choices"]:
                    t = c["delta"].get("content")
                    if t:
                        parts.append(t)
    "".join(parts)


def ours_stream(mode: str, n: int) -> None:
    from vllm_client import ChatCompletionResponse, ContentDelta
    from vllm_client._stream import ChatStream, StreamAccumulator
    from vllm_client import Response

    blocks = _blocks(mode, n)
    accumulator = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    stream = ChatStream(Response(200, {}, url="x", chunks=iter(blocks), close=lambda: None), accumulator)
    parts = [ev.text for ev in stream if isinstance(ev, ContentDelta)]
    "".join(parts)


def ours_request(n: int) -> None:
    from vllm_client import MockResponse, MockTransport, VllmClient

    reply = MockResponse(200, body=NONSTREAM, headers={"content-type": "application/json"})
    client = VllmClient("http://127.0.0.1:8000/v1", transport=MockTransport(lambda req: reply))
    text = None
    for _ in range(n):
        text = client.chat.completions().create().model(MODEL).messages(MESSAGES).send().content
    assert text == NONSTREAM_TEXT, text


def bare_loads(n: int) -> None:
    import orjson

    for _ in range(n):
        orjson.loads(NONSTREAM)["choices"][0]["message"]["content"]


def async_requests(ours: bool, n: int) -> None:
    import asyncio

    import orjson

    async def bare(url: str, sem: asyncio.Semaphore) -> str:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async def one() -> str:
                async with sem, s.post(f"{url}/chat/completions", headers={"content-type": "application/json"},
                                       data=orjson.dumps({"model": MODEL, "messages": MESSAGES})) as r:
                    return orjson.loads(await r.read())["choices"][0]["message"]["content"]
            return "".join(await asyncio.gather(*(one() for _ in range(n))))

    async def sdk(url: str, sem: asyncio.Semaphore) -> str:
        from vllm_client import AsyncVllmClient

        async with AsyncVllmClient(url) as client:
            async def one() -> str:
                async with sem:
                    return (await client.chat.completions().create().model(MODEL).messages(MESSAGES).send()).content
            return "".join(await asyncio.gather(*(one() for _ in range(n))))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        text = await (sdk if ours else bare)(url, asyncio.Semaphore(64))
        assert text == NONSTREAM_TEXT * n, text[:80]
        server.close()

    asyncio.run(main())


def sync_requests(kind: str, n: int) -> None:
    """``kind``: "bare" (requests + orjson), "ours" (``VllmClient``), "ours-block" (its transport
    with ``pool_block=True``). One thread sends, the benchmark server runs in another."""
    import asyncio
    import threading

    import orjson
    import requests

    from vllm_client import RequestsTransport, VllmClient

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024))
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    parts = []
    if kind == "bare":
        with requests.Session() as s:
            for _ in range(n):
                r = s.post(f"{url}/chat/completions", headers={"content-type": "application/json"},
                           data=orjson.dumps({"model": MODEL, "messages": MESSAGES}))
                parts.append(orjson.loads(r.content)["choices"][0]["message"]["content"])
            del r  # (its socket file would keep the last connection open)
    else:
        transport = RequestsTransport(pool_block=True) if kind == "ours-block" else RequestsTransport()
        with VllmClient(url, transport=transport) as client:
            for _ in range(n):
                parts.append(client.chat.completions().create().model(MODEL).messages(MESSAGES).send().content)
    assert "".join(parts) == NONSTREAM_TEXT * n

    async def stop() -> None:
        server.close()
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        if handlers:  # they see their connections closed
            await asyncio.wait(handlers, timeout=5)
        loop.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop)
    thread.join()


def noop(n: int) -> None:
    for _ in range(n):
        pass


SCENARIOS: dict[str, tuple[Callable[[int], None], int, str]] = {
    "stream-one bare": (lambda n: bare_stream("one", n), 2000, "chunk"),
    "stream-one vllm_client": (lambda n: ours_stream("one", n), 2000, "chunk"),
    "stream-one vllm_client, vLLM 0.33 chunks": (lambda n: ours_stream("v033", n), 2000, "chunk"),
    "stream-many bare": (lambda n: bare_stream("many", n), 2000, "chunk"),
    "stream-many vllm_client": (lambda n: ours_stream("many", n), 2000, "chunk"),
    "request orjson.loads only": (bare_loads, 1000, "request"),
    "request vllm_client (build, send, parse)": (ours_request, 1000, "request"),
    "async request aiohttp + orjson (+ in-loop server)": (lambda n: async_requests(False, n), 500, "request"),
    "async request vllm_client (+ in-loop server)": (lambda n: async_requests(True, n), 500, "request"),
    "sync request requests + orjson (+ server thread)": (lambda n: sync_requests("bare", n), 300, "request"),
    "sync request vllm_client (+ server thread)": (lambda n: sync_requests("ours", n), 300, "request"),
    "sync request vllm_client, pool_block=True (+ server thread)":
        (lambda n: sync_requests("ours-block", n), 300, "request"),
}


def count(name: str, n: int) -> int:
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, __file__, "--run", name, str(n)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict layouts every run
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"{name}: valgrind failed\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        SCENARIOS[sys.argv[2]][0](int(sys.argv[3]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt install valgrind)")
    print("| scenario | instructions per unit |\n|---|---|")
    for name, (_, n, unit) in SCENARIOS.items():
        per = (count(name, 6 * n) - count(name, n)) / (5 * n)
        print(f"| {name} | {per / 1000:.1f} k per {unit} |", flush=True)


if __name__ == "__main__":
    main()
