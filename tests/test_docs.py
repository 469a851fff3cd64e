"""Every Python block of the README runs as written against FakeVllmServer, and so does every
example.

A block that starts with ``# (continued)`` goes on from the README's first block and the
continued blocks before it (one namespace: ``client``, ``model`` ...); any other block stands
alone. The blocks find the server as users do, through ``$VLLM_BASE_URL``: the test starts a
FakeVllmServer serving the README's model and sets it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vllm_client import AsyncVllmClient, VllmClient
from vllm_client.testing import FakeVllmServer

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
CONTINUED = [b.startswith("# (continued)") for b in BLOCKS]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
MODEL = "Qwen/Qwen3-8B"  # the model the README's first block names


def namespace(name: str) -> dict[str, Any]:
    """A fresh module's namespace (registered, as a script's module is: dataclasses and type
    hints look their module up)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module.__dict__


class Chain:
    """The namespace of the README's first block and its continuations, run in order."""

    def __init__(self) -> None:
        self.ns = namespace("readme")
        self.done = -1  # the last block run in it

    def run_up_to(self, index: int) -> None:
        for j in range(self.done + 1, index + 1):
            if j == 0 or CONTINUED[j]:
                run_block(j, self.ns)
            self.done = j


def run_block(index: int, ns: dict[str, Any]) -> None:
    code = BLOCKS[index]
    plain = re.sub(r"#.*|os\.environ\.get\(\"VLLM_BASE_URL\", \"[^\"]*\"\)", "", code)  # (the fallback is fine)
    assert "localhost:8000" not in plain, "README blocks read $VLLM_BASE_URL, as users would"
    exec(compile(code, f"README.md block {index}", "exec", dont_inherit=True), ns)  # (no __future__ of ours)
    for name, fn in list(ns.items()):
        if name.startswith("test_") and callable(fn):
            fn()


@pytest.fixture(scope="module")
def readme_server() -> Iterator[FakeVllmServer]:
    with FakeVllmServer(model=MODEL) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_BASE_URL", server.url)
        mp.delenv("VLLM_API_KEY", raising=False)
        mp.delenv("OPENAI_API_KEY", raising=False)
        yield server


@pytest.fixture(scope="module")
def chain(readme_server: FakeVllmServer) -> Iterator[Chain]:
    c = Chain()
    yield c
    sys.modules.pop("readme", None)
    for v in c.ns.values():
        if isinstance(v, VllmClient):
            v.close()


def test_blocks_are_marked() -> None:
    assert len(BLOCKS) >= 15 and not CONTINUED[0] and sum(CONTINUED) >= 10


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, readme_server: FakeVllmServer, chain: Chain, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if re.search(r"^\s*(from|import) (ray|vllm_client\.ray)\b", BLOCKS[index], re.M):
        request.getfixturevalue("ray_session")  # the session's one Ray (skips when Ray is not installed)
    monkeypatch.chdir(tmp_path)
    if index == 0 or CONTINUED[index]:
        chain.run_up_to(index)  # (the blocks before it first, when this one runs alone)
    else:
        try:
            run_block(index, namespace(f"readme_block_{index}"))
        finally:
            sys.modules.pop(f"readme_block_{index}", None)


def test_the_structured_block_needs_no_pydantic() -> None:
    block = next(b for b in BLOCKS if ".response_format(" in b)
    assert "pydantic" not in re.sub(r"#.*", "", block)


def test_the_rag_example_ranks_sensibly(readme_server: FakeVllmServer) -> None:
    """The fake's embeddings relate texts that share words: the README's question finds the
    documents about Paris, and the CLI's rerank example puts the capital first."""
    docs = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris."]
    with VllmClient(readme_server.url) as client:
        vectors = client.embeddings().create().model(MODEL).input(docs).send().embeddings
        q = client.embeddings().create().model(MODEL).input("Which river runs through the French capital?") \
            .send().embeddings[0]
        order = sorted(range(3), key=lambda i: -sum(a * b for a, b in zip(vectors[i], q, strict=True)))
        assert order[-1] == 1  # the bananas last
        ranked = client.rerank().create().model(MODEL).query("capital of France").documents(docs).send()
        assert [r.index for r in ranked.results][0] == 0


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_offline(path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, env=env,
                       cwd=path.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()


async def test_async_block_style_client_reads_the_environment(readme_server: FakeVllmServer) -> None:
    async with AsyncVllmClient() as client:
        assert client.base_url == readme_server.url
        assert (await client.models())[0].id == MODEL
