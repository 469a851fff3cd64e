"""Shared test helpers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vllm_client import MockResponse, MockTransport, PreparedRequest, VllmClient

WIRE = Path(__file__).parent / "wire"


def _patch_aioresponses() -> None:
    """aioresponses 0.7.x builds aiohttp ClientResponses without the `stream_writer`
    argument that aiohttp 3.14 requires; give it a stand-in so the mocks keep working
    on the newest aiohttp (the version users get)."""
    import inspect
    import types

    import aiohttp
    import aioresponses.core as core

    if "stream_writer" not in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        return

    class _Response(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    core.ClientResponse = _Response  # type: ignore[misc]


_patch_aioresponses()


def wire_cases(suffix: str) -> list[str]:
    """Names of the wire transcripts with this body suffix (".json" or ".sse")."""
    return sorted(p.name[: -len(suffix)] for p in WIRE.glob(f"*{suffix}") if not p.name.endswith(".meta.json"))


def wire_meta(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((WIRE / f"{name}.meta.json").read_text())
    return meta


def wire_body(name: str, suffix: str) -> bytes:
    return (WIRE / f"{name}{suffix}").read_bytes()


@pytest.fixture
def mock_client() -> Callable[..., tuple[VllmClient, MockTransport]]:
    """Factory: a VllmClient over a MockTransport answering with `handler` (or a fixed response)."""
    made: list[VllmClient] = []

    def make(handler: Callable[[PreparedRequest], MockResponse] | MockResponse, **kw: Any) -> tuple[VllmClient, MockTransport]:
        h = handler if callable(handler) else (lambda req: handler)  # type: ignore[misc]
        transport = MockTransport(h)
        kw.setdefault("max_retries", 0)
        client = VllmClient("http://test.local/v1", transport=transport, **kw)
        made.append(client)
        return client, transport

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def ray_session() -> Any:
    """One local Ray (2 CPUs) for every test of the session that needs one (starting it costs
    seconds); shut down at the end. Skips without Ray, unless VLLM_CLIENT_REQUIRE_RAY=1 (CI)."""
    import os

    if os.environ.get("VLLM_CLIENT_REQUIRE_RAY") != "1":
        pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield ray
    ray.shutdown()
