"""Where the examples run: a real server when $VLLM_BASE_URL is set, else a built-in FakeVllmServer."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


from typing import Any

FAKE: Any = None  # the FakeVllmServer while one is running (offline), so examples can script replies


@contextlib.contextmanager
def server() -> Iterator[tuple[str, str | None]]:
    """Yield (base_url, model). model is None against a real server: the client asks /models."""
    global FAKE
    url = os.environ.get("VLLM_BASE_URL")
    if url:
        yield url, os.environ.get("VLLM_MODEL")
        return
    from vllm_client.testing import FakeVllmServer

    with FakeVllmServer() as fake:
        print(f"(no VLLM_BASE_URL set: using a local FakeVllmServer at {fake.url})")
        FAKE = fake
        try:
            yield fake.url, fake.model
        finally:
            FAKE = None
