"""Run one test body against both clients: ``kind`` is "sync" or "async"; sync calls run in a
worker thread (so the test itself is a coroutine either way), async ones are awaited."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from vllm_client import AsyncVllmClient, VllmClient

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
