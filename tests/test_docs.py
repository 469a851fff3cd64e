"""Every Python block of the README runs against FakeVllmServer, and so does every example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vllm_client import VllmClient
from vllm_client.testing import FakeVllmServer

ROOT = Path(__file__).parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, vllm_server: FakeVllmServer, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    code = BLOCKS[index].replace("http://localhost:8000/v1", vllm_server.url)
    if re.search(r"^\s*(from|import) pydantic\b", code, re.M):
        pytest.importorskip("pydantic")  # an optional extra
    if re.search(r"^\s*(from|import) (ray|vllm_client\.ray)\b", code, re.M):
        request.getfixturevalue("ray_session")  # the session's one Ray (skips when Ray is not installed)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    monkeypatch.setenv("VLLM_BASE_URL", vllm_server.url)
    with VllmClient(vllm_server.url) as client:
        ns: dict[str, Any] = {
            "client": client, "m": vllm_server.model, "prompts": ["one", "two", "three"],
            "msgs": [{"role": "user", "content": "hi"}], "raw_bytes": b"\xff\xd8\xff" + b"0" * 8,
            "b": client.chat.completions().create().model(vllm_server.model).user_message("x"),
            "__name__": "readme",
        }
        exec(compile(code, f"README.md block {index}", "exec"), ns)
        for name, fn in list(ns.items()):
            if name.startswith("test_") and callable(fn):
                fn()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_offline(path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, env=env,
                       cwd=path.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()
