"""A minimal, fast HTTP/1.1 server for the benchmarks: pre-encoded vLLM-shaped bodies.

POST /v1/chat/completions (or /v1/completions):
  - "stream": true  -> SSE with N chunks (header x-bench-n, default 20000), chunked encoding;
    header x-bench-mode: "many" writes 50 events per write, "one" writes (and drains) each
    event as its own HTTP chunk, as vLLM does.
  - otherwise       -> one vLLM-shaped chat.completion JSON body.
GET /v1/models -> one model. Keep-alive. Run: python benchmarks/_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import orjson

MODEL = "bench-model"


def chunk_event(i: int) -> bytes:
    obj = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
           "choices": [{"index": 0, "delta": {"content": f" t{i % 10}"}, "logprobs": None,
                        "finish_reason": None, "token_ids": None}]}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def expected_text(n: int) -> str:
    return "".join(f" t{i % 10}" for i in range(n))


ROLE = b"data: " + orjson.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                                 "model": MODEL, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                              "logprobs": None, "finish_reason": None}],
                                 "prompt_token_ids": None}) + b"\n\n"
FINISH = b"data: " + orjson.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                                   "model": MODEL, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                                                "finish_reason": "stop", "stop_reason": None}]}) + b"\n\n"
USAGE = b"data: " + orjson.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                                  "model": MODEL, "choices": [],
                                  "usage": {"prompt_tokens": 10, "total_tokens": 20010,
                                            "completion_tokens": 20000}}) + b"\n\n"
DONE = b"data: [DONE]\n\n"
NONSTREAM_TEXT = "Hello there, this is a benchmark reply."
NONSTREAM = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": NONSTREAM_TEXT,
                                         "refusal": None, "annotations": None, "audio": None, "function_call": None,
                                         "tool_calls": [], "reasoning": None},
                 "logprobs": None, "finish_reason": "stop", "stop_reason": None, "token_ids": None}],
    "service_tier": None, "system_fingerprint": None, "prompt_logprobs": None, "prompt_token_ids": None,
    "kv_transfer_params": None,
    "usage": {"prompt_tokens": 10, "total_tokens": 20, "completion_tokens": 10, "prompt_tokens_details": None}})
MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1, "owned_by": "vllm",
                                                   "root": MODEL, "parent": None, "max_model_len": 4096}]})
EVENTS = [chunk_event(i) for i in range(100_000)]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if method == "GET" and path.startswith("/v1/models"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(MODELS), MODELS))
            elif method == "GET":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            elif b'"stream":true' in body.replace(b" ", b""):
                n = int(headers.get("x-bench-n", "20000"))
                mode = headers.get("x-bench-mode", "many")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                writer.write(_chunk(ROLE))
                if mode == "one":
                    for i in range(n):
                        writer.write(_chunk(EVENTS[i % len(EVENTS)]))
                        await writer.drain()
                else:
                    for start in range(0, n, 50):
                        block = b"".join(EVENTS[i % len(EVENTS)] for i in range(start, min(n, start + 50)))
                        writer.write(_chunk(block))
                        await writer.drain()
                writer.write(_chunk(FINISH + USAGE + DONE) + b"0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(NONSTREAM), NONSTREAM))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
