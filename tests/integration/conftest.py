"""Fixtures for the integration tests: real vLLM servers, started here or given by URL.

* ``VLLM_BASE_URL`` set: that server is used and nothing is started (reasoning and
  embeddings tests then need ``VLLM_REASONING_BASE_URL`` / ``VLLM_EMBED_BASE_URL``, else
  they skip; tests of the tiny model's scripted replies skip unless it serves ``tiny-llama``).
* Otherwise: the cached vLLM venv and tiny model (built on first use, see ``_vllm_server``),
  then up to four servers started side by side (startup is mostly Python imports, so in
  parallel they are ready in ~1 min instead of ~3): the main one (hermes tools), one with
  ``--reasoning-parser qwen3``, a pooling one (``--runner pooling --convert embed``) and a
  classifier (``--convert classify``). The
  extra three start only when selected tests use them; ``VLLM_CLIENT_TEST_EXTRA_SERVERS=0``
  skips those tests instead. All are stopped at session end (their own process groups only).

Timings (install, model build, server starts) and, when a test failed, the servers' log
tails are printed in the terminal summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import _vllm_server as vs

HERE = Path(__file__).resolve().parent
EXTRA_SERVERS = os.environ.get("VLLM_CLIENT_TEST_EXTRA_SERVERS", "1") != "0"


@dataclass
class Target:
    """A server under test: where it is and what it serves."""

    base_url: str
    root_url: str
    model: str
    server: vs.VllmServer | None = None  # set when this session started it
    version: str | None = None  # the vLLM version installed in the venv (local servers only)

    @property
    def local(self) -> bool:
        return self.server is not None

    @property
    def scripted(self) -> bool:
        """True when the server serves our tiny model, whose scripted replies tests may assert."""
        return self.model == vs.SERVED_NAME


@dataclass
class _State:
    lines: list[str] = field(default_factory=list)
    servers: dict[str, vs.VllmServer] = field(default_factory=dict)
    version: str | None = None
    failed: bool = False
    setup_error: str | None = None


STATE = _State()
_config: pytest.Config | None = None


# -- hooks -------------------------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = str(HERE)
    mine = [i for i in items if str(i.path).startswith(here)]
    for item in mine:
        item.add_marker(pytest.mark.integration)
    # A test that kills its server's engine runs last.
    last = [i for i in mine if "doomed_server" in getattr(i, "fixturenames", ())]
    for item in last:
        items.remove(item)
        items.append(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    if outcome.get_result().failed and str(item.path).startswith(str(HERE)):
        STATE.failed = True


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not STATE.lines and not STATE.servers:
        return
    tr = terminalreporter
    tr.section("real vLLM servers")
    for line in STATE.lines:
        tr.write_line(line)
    if STATE.failed or STATE.setup_error:
        for name, server in STATE.servers.items():
            tr.write_line(f"--- log tail of the {name} server ({server.log_path}), before it was stopped ---")
            tr.write_line(server.log_tail(40))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _stop_all()  # a backstop: the session fixture normally did it already


def _stop_all() -> None:
    for server in STATE.servers.values():
        server.stop()


def say(msg: str) -> None:
    """Print a progress line now (past pytest's capture) and keep it for the summary."""
    line = f"[vllm-server] {msg}"
    STATE.lines.append(line)
    capman = _config.pluginmanager.getplugin("capturemanager") if _config else None
    if capman is not None:
        with capman.global_and_fixture_disabled():
            sys.stderr.write(f"\n{line}\n")
            sys.stderr.flush()
    else:
        print(line, file=sys.stderr, flush=True)


# -- launching ------------------------------------------------------------------------------------------

SERVER_SPECS: dict[str, dict[str, Any]] = {
    # --enable-request-id-headers: vLLM answers with X-Request-Id (test_real_observe.py); harmless elsewhere.
    "main": {"extra_args": ["--enable-request-id-headers"], "tools": True},
    # A reasoning parser on the main server would move all free text into `reasoning`
    # (qwen3 assumes thinking without chat_template_kwargs), so it gets its own.
    "reasoning": {"extra_args": ["--reasoning-parser", "qwen3"], "tools": True},
    "embed": {"extra_args": ["--runner", "pooling", "--convert", "embed"], "tools": False},
    "classify": {"extra_args": ["--runner", "pooling", "--convert", "classify"], "tools": False},
}
_FIXTURE_OF = {"main": "real_server", "reasoning": "reasoning_server", "embed": "embed_server",
               "classify": "classify_server"}


class Launcher:
    """Builds what is missing once, then starts the servers the selected tests need, together."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self.ready = False

    def needed(self) -> list[str]:
        names = {n for item in self.session.items for n in getattr(item, "fixturenames", ())}
        out = ["main"] if "real_server" in names else []
        if EXTRA_SERVERS:
            out += [k for k in ("reasoning", "embed", "classify") if _FIXTURE_OF[k] in names]
        return out or ["main"]

    def setup(self) -> None:
        if self.ready:
            return
        if STATE.setup_error:
            pytest.fail(STATE.setup_error, pytrace=False)
        t0 = time.monotonic()
        try:
            version, install_s = vs.ensure_venv(say)
            STATE.version = version
            model_s = vs.ensure_model(say)
            vs.prune_logs()
            names = self.needed()
            for name in names:
                STATE.servers[name] = vs.VllmServer(name, **SERVER_SPECS[name]).start()
            what = f"the {names[0]} server" if len(names) == 1 else f"the {', '.join(names)} servers in parallel"
            say(f"starting {what} (logs in {vs.CACHE}) ...")
        except Exception as e:  # noqa: BLE001 - reported once, every test using a server fails with it
            STATE.setup_error = f"setting up vLLM failed: {e}"
            raise
        self.ready = True
        self.t0 = t0
        self.install_s, self.model_s = install_s, model_s

    def target(self, name: str) -> Target:
        self.setup()
        server = STATE.servers.get(name)
        if server is None:  # not foreseen at collection time (e.g. requested dynamically): start it now
            server = STATE.servers[name] = vs.VllmServer(name, **SERVER_SPECS[name]).start()
        if server.ready_s is None:
            try:
                secs = server.wait_ready()
            except Exception as e:
                STATE.setup_error = STATE.setup_error or str(e)
                raise
            say(f"{name} server ready after {secs:.0f} s at {server.base_url} (vLLM {STATE.version}; "
                f"install {_fmt(self.install_s)}, model build {_fmt(self.model_s)}, "
                f"total setup so far {time.monotonic() - self.t0:.0f} s)")
        return Target(server.base_url, server.root_url, server.model, server, STATE.version)


def _fmt(secs: float | None) -> str:
    return "cached" if secs is None else f"{secs:.0f} s"


def remote_target(url: str) -> Target:
    """A server given by URL: its model from /v1/models (the first one)."""
    url = url.rstrip("/")
    root = url[:-3] if url.endswith("/v1") else url
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=30) as r:
            model = json.load(r)["data"][0]["id"]
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the server at {url} does not answer GET /models: {e}", pytrace=False)
    return Target(url, root, model)


# -- fixtures -------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _launcher(request: pytest.FixtureRequest) -> Iterator[Launcher]:
    launcher = Launcher(request.session)
    try:
        yield launcher
    finally:
        _stop_all()


@pytest.fixture(scope="session")
def real_server(_launcher: Launcher) -> Target:
    """The main server: $VLLM_BASE_URL, else a local vLLM with hermes tool calling."""
    url = os.environ.get("VLLM_BASE_URL")
    if url:
        return remote_target(url)
    return _launcher.target("main")


def _extra_target(launcher: Launcher, name: str, env: str, needs: str) -> Target:
    """A local extra server, or the one ``$env`` names when ``VLLM_BASE_URL`` is set (else skip)."""
    if os.environ.get("VLLM_BASE_URL"):
        url = os.environ.get(env)
        if not url:
            pytest.skip(f"VLLM_BASE_URL is set: {name} tests need {env} ({needs})")
        return remote_target(url)
    if not EXTRA_SERVERS:
        pytest.skip(f"VLLM_CLIENT_TEST_EXTRA_SERVERS=0: no {name} server")
    return launcher.target(name)


@pytest.fixture(scope="session")
def reasoning_server(_launcher: Launcher) -> Target:
    """A server with ``--reasoning-parser qwen3`` (and hermes tools)."""
    return _extra_target(_launcher, "reasoning", "VLLM_REASONING_BASE_URL", "a server started with --reasoning-parser")


@pytest.fixture(scope="session")
def embed_server(_launcher: Launcher) -> Target:
    """A pooling server (``--runner pooling --convert embed``) for /v1/embeddings."""
    return _extra_target(_launcher, "embed", "VLLM_EMBED_BASE_URL", "a pooling server")


@pytest.fixture(scope="session")
def classify_server(_launcher: Launcher) -> Target:
    """A pooling server converted to a classifier (``--runner pooling --convert classify``)."""
    return _extra_target(_launcher, "classify", "VLLM_CLASSIFY_BASE_URL", "a classification server")


@pytest.fixture(scope="session")
def doomed_server(reasoning_server: Target) -> Target:
    """The reasoning server, for a test that kills its engine (it runs last; local servers only)."""
    if not reasoning_server.local:
        pytest.skip("never kill a server this session did not start")
    return reasoning_server


@pytest.fixture(scope="session")
def tools_ok(real_server: Target) -> bool:
    """Skip unless the server parses tool calls (local: always; remote: probed once)."""
    if real_server.local:
        return True
    from vllm_client import BadRequestError, VllmClient

    with VllmClient(real_server.base_url, max_retries=0, timeout=60) as c:
        try:
            (c.chat.completions().create().model(real_server.model).user_message("hi").max_tokens(1)
             .tools([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
             .tool_choice("auto").send())
        except BadRequestError as e:
            pytest.skip(f"the server does not do auto tool choice (needs --enable-auto-tool-choice "
                        f"--tool-call-parser ...): {e.message}")
    return True


# -- clients ----------------------------------------------------------------------------------------------

MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Tell me about the weather."}]


@pytest.fixture
def msgs() -> list[dict[str, Any]]:
    """The recipe's default conversation (a fresh copy)."""
    return [dict(m) for m in MSGS]


@pytest.fixture
def client(real_server: Target) -> Iterator[Any]:
    """A sync client on the main server (no retries: every answer is the server's first)."""
    from vllm_client import VllmClient

    with VllmClient(real_server.base_url, default_model=real_server.model, max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture
async def aclient(real_server: Target) -> Any:
    """An async client on the main server."""
    from vllm_client import AsyncVllmClient

    async with AsyncVllmClient(real_server.base_url, default_model=real_server.model, max_retries=0,
                               timeout=120) as c:
        yield c
