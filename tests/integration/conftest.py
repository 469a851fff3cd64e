"""Integration fixtures: a real vLLM server (started here, or $VLLM_BASE_URL)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from . import _vllm_server as vs

_failed = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    global _failed
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _failed = True


@pytest.fixture(scope="session")
def real_server() -> Iterator[vs.RunningServer]:
    """The server under test: $VLLM_BASE_URL when set (nothing started), else a local vLLM CPU server."""
    url = os.environ.get("VLLM_BASE_URL")
    if url:
        from vllm_client import VllmClient

        with VllmClient(url) as c:
            model = c.models()[0].id
        root = url[:-3] if url.endswith("/v1") else url
        yield vs.RunningServer(url.rstrip("/"), root, model, None, None)
        return
    t = time.monotonic()
    timings = vs.ensure_venv()
    timings.update(vs.ensure_model())
    server = vs.start_server()
    timings["start_s"] = server.started_s
    print(f"\n[vllm-server] setup {time.monotonic() - t:.0f} s: {timings}", file=sys.stderr)
    try:
        yield server
    finally:
        if _failed:
            print(f"\n[vllm-server] log tail (a test failed):\n{server.log_tail()}", file=sys.stderr)
        server.stop()


@pytest.fixture
def is_local(real_server: vs.RunningServer) -> bool:
    """True when the server serves our tiny model (its scripted behaviours can be asserted)."""
    return real_server.model == vs.SERVED_NAME
