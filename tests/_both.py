"""Run one test body against both clients: ``kind`` is "sync" or "async"; sync calls run in a
worker thread (so the test itself is a coroutine either way), async ones are awaited. Also a
scripted model for ``MockTransport`` (``Model``) and the chat answers it gives (``reply``,
``stream_reply``)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson

from vllm_client import AsyncVllmClient, MockResponse, VllmClient

CLIENTS = ["sync", "async"]


def make(kind: str, *args: Any, **kw: Any) -> Any:
    """A client of that kind."""
    return VllmClient(*args, **kw) if kind == "sync" else AsyncVllmClient(*args, **kw)


async def close(kind: str, client: Any) -> None:
    if kind == "sync":
        client.close()
    else:
        await client.aclose()


async def call(kind: str, obj: Any, name: str, *args: Any, **kw: Any) -> Any:
    """``obj.name(*args, **kw)``: in a thread for sync, awaited for async."""
    if kind == "sync":
        return await asyncio.to_thread(lambda: getattr(obj, name)(*args, **kw))
    result = getattr(obj, name)(*args, **kw)
    return await result if inspect.isawaitable(result) else result


async def drain(kind: str, it: Any) -> list[Any]:
    """Every item of a stream or generator (sync: iterated in a thread)."""
    if kind == "sync":
        return await asyncio.to_thread(lambda: list(it))
    return [x async for x in it]


# -- a scripted model ------------------------------------------------------------------------


class Model:
    """A scripted model (a ``MockTransport`` handler): answers from a list and records every
    request body."""

    def __init__(self, *answers: MockResponse) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, req: Any) -> MockResponse:
        self.bodies.append(req.json())
        return self.answers.pop(0)


def reply(content: str | None = "ok", tool_calls: list[tuple[str, str, str]] | None = None,
          reasoning: str | None = None, *, finish: str | None = None, refusal: str | None = None,
          n: int = 1, contents: list[str] | None = None) -> MockResponse:
    """A chat completion: ``n`` choices saying ``content`` (or one per ``contents``), with
    ``reasoning``, ``tool_calls`` (``(id, name, arguments)``) or a ``refusal``; finish_reason
    ``finish``, else "tool_calls" when there are calls, else "stop"."""
    texts = contents if contents is not None else [content] * n
    reason = finish if finish is not None else "tool_calls" if tool_calls else "stop"
    choices = []
    for i, text in enumerate(texts):
        msg: dict[str, Any] = {"role": "assistant", "content": text, "refusal": refusal}
        if reasoning:
            msg["reasoning"] = reasoning
        if tool_calls:
            msg["tool_calls"] = [{"id": c, "type": "function", "function": {"name": name, "arguments": args}}
                                 for c, name, args in tool_calls]
        choices.append({"index": i, "message": msg, "finish_reason": reason})
    return MockResponse(json={"id": "x", "object": "chat.completion", "choices": choices})


def stream_reply(text: str | list[str], cut: bool = False, *, finish: str = "stop") -> MockResponse:
    """A streamed chat completion: the role chunk, a content chunk per piece (a str is cut at its
    spaces, which are dropped: "a b" streams "a", "b"), then the ``finish`` chunk and ``[DONE]``;
    a ``cut`` stream ends after the last piece."""
    pieces = text.split(" ") if isinstance(text, str) else text
    chunks = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n']
    chunks += [b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": p}}]}) + b"\n\n"
               for p in pieces]
    if not cut:
        chunks.append(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"%s"}]}\n\ndata: [DONE]\n\n'
                      % finish.encode())
    return MockResponse(body=chunks)


def recording_hooks(kind: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """Event hooks that record every ``RequestInfo`` / ``ResponseInfo`` in one list (in order):
    plain functions for sync, async ones (which yield to the loop, so they must be awaited)
    for async. Returns (the list, the ``event_hooks`` dict)."""
    seen: list[Any] = []
    if kind == "sync":
        return seen, {"request": [seen.append], "response": [seen.append]}

    async def record(info: Any) -> None:
        await asyncio.sleep(0)
        seen.append(info)

    return seen, {"request": [record], "response": [record]}
