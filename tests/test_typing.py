"""mypy sees the output type: tests/typing/typed_outputs.py asserts (assert_type) that
resp.parsed is ``T | None`` after response_format(T) / json_schema(T) / structured_outputs(json=T),
on both clients; a wrong assertion makes mypy fail (so the check can fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytest.importorskip("mypy")
pytest.importorskip("typing_extensions")


def _mypy(*paths: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
                           "--no-error-summary", *map(str, paths)],
                          capture_output=True, text=True, cwd=HERE.parent, timeout=600)


def test_parsed_is_typed_by_the_output_type(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from typing_extensions import assert_type\n"
        "from vllm_client import VllmClient\n"
        "class City:\n    name: str\n"
        "def f(c: VllmClient) -> None:\n"
        "    r = c.chat.completions().create().user_message('x').response_format(City).send()\n"
        "    assert_type(r.parsed, int | None)\n")
    out = _mypy(HERE / "typing" / "typed_outputs.py", wrong, cache=tmp_path / "cache")
    lines = [x for x in out.stdout.splitlines() if ": error:" in x]
    assert all("wrong.py" in x for x in lines), out.stdout  # typed_outputs.py checks clean
    assert len(lines) == 1 and '"City | None", not "int | None"' in lines[0], out.stdout


def test_pyright_agrees_when_installed(tmp_path: Path) -> None:
    import shutil

    pyright = shutil.which("pyright")
    if pyright is None:
        pytest.skip("pyright is not installed (npm install -g pyright)")
    (tmp_path / "pyrightconfig.json").write_text('{"pythonVersion": "3.10", "typeCheckingMode": "standard"}')
    (tmp_path / "typed_outputs.py").write_text((HERE / "typing" / "typed_outputs.py").read_text())
    out = subprocess.run([pyright, "--pythonpath", sys.executable, "typed_outputs.py"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0 and "0 errors" in out.stdout, out.stdout
