"""An AsyncVllmClient never closed (issue 34 item 11): the SDK's own warning, saying where the
client was made and how to close it, instead of aiohttp's "Unclosed client session"; ``with``
instead of ``async with`` is a TypeError that says ``async with``."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest

from vllm_client import AsyncVllmClient
from vllm_client.testing import FakeVllmServer


def test_with_instead_of_async_with_says_async_with() -> None:
    with pytest.raises(TypeError, match="async with"):
        with AsyncVllmClient("http://127.0.0.1:9/v1"):
            pass


def test_an_unclosed_client_warns_in_the_sdks_words(vllm_server: FakeVllmServer) -> None:
    handled: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: handled.append(ctx))
        client = AsyncVllmClient(vllm_server.url)  # the line the warning names
        await client.models()
        del client
        gc.collect()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    texts = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    ours = [t for t in texts if t.startswith("AsyncVllmClient")]
    assert len(ours) == 1, texts
    assert "test_async_unclosed.py:" in ours[0] and "async with" in ours[0] and "aclose()" in ours[0]
    assert not any("Unclosed" in t for t in texts), texts  # aiohttp's session/connector warnings
    assert [c["message"] for c in handled] == ours  # the loop's handler (shown by default) says it too


def test_a_closed_or_unused_client_does_not_warn(vllm_server: FakeVllmServer) -> None:
    async def main() -> None:
        async with AsyncVllmClient(vllm_server.url) as client:
            await client.models()
        unused = AsyncVllmClient(vllm_server.url)  # no session was ever opened: nothing to close
        del unused, client
        gc.collect()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
