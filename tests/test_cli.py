"""The vllm-client command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vllm_client.testing import FakeVllmServer


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("VLLM_BASE_URL", "OPENAI_BASE_URL", "VLLM_API_KEY")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "vllm_client", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=e)


def test_help_lists_commands() -> None:
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("chat", "models", "complete", "health", "batch", "demo"):
        assert cmd in r.stdout


def test_chat_streams_with_reasoning_apart(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(content="The answer is 4.", reasoning="2 plus 2")
    r = cli("chat", "What is 2+2?", "--base-url", vllm_server.url, "--temperature", "0.2", "--max-tokens", "20",
            "--system", "Be brief.")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[thinking] 2 plus 2\nThe answer is 4.\n"
    body = vllm_server.requests[-1].body
    assert body["temperature"] == 0.2 and body["max_tokens"] == 20 and body["stream"] is True
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["model"] == "fake-model"  # resolved from /models


def test_chat_shows_tool_calls_and_json(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
    r = cli("chat", "hi", "--base-url", vllm_server.url, "--model", "m")
    line = next(x for x in r.stdout.splitlines() if x.startswith("[tool call] lookup("))
    assert json.loads(line[len("[tool call] lookup("):-1]) == {"q": "x"}
    vllm_server.reply(content="raw please")
    r = cli("chat", "hi", "--base-url", vllm_server.url, "--json")
    assert json.loads(r.stdout)["choices"][0]["message"]["content"] == "raw please"


def cli_on_a_terminal(*args: str, lines: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command with a terminal (a pty) as its stdin, typed ``lines`` one at a time."""
    import pty

    master, slave = pty.openpty()
    e = {k: v for k, v in os.environ.items() if k not in ("VLLM_BASE_URL", "OPENAI_BASE_URL", "VLLM_API_KEY")}
    p = subprocess.Popen([sys.executable, "-m", "vllm_client", *args], stdin=slave, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e)
    os.close(slave)
    try:
        for line in lines:
            os.write(master, line.encode() + b"\n")
        out, err = p.communicate(timeout=timeout)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_piped_input_is_one_message(vllm_server: FakeVllmServer) -> None:
    doc = "First line of the document.\nSecond line.\n\nA last paragraph.\n"
    r = cli("chat", "--base-url", vllm_server.url, stdin=doc)
    assert r.returncode == 0, r.stderr
    chats = [q.body for q in vllm_server.requests if q.path == "/v1/chat/completions"]
    assert len(chats) == 1 and chats[0]["messages"] == [{"role": "user", "content": doc}]
    r = cli("chat", "Hello", "--base-url", vllm_server.url, stdin=doc)  # a prompt given: stdin is not read
    assert vllm_server.requests[-1].body["messages"][-1]["content"] == "Hello"
    before = len(vllm_server.requests)
    r = cli("chat", "--base-url", vllm_server.url, stdin="  \n")
    assert r.returncode == 1 and "empty" in r.stderr and len(vllm_server.requests) == before


def test_interactive_session_keeps_history_and_resets(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(content="Hi Ming").reply(content="You are Ming").reply(content="Fresh")
    r = cli_on_a_terminal("chat", "--base-url", vllm_server.url,
                          lines=["I am Ming", "Who am I?", "/reset", "Again", "/exit"])
    assert r.returncode == 0, r.stderr
    assert "Hi Ming" in r.stdout and "You are Ming" in r.stdout and "Fresh" in r.stdout
    chats = [q.body for q in vllm_server.requests if q.path == "/v1/chat/completions"]
    assert [m["content"] for m in chats[1]["messages"]] == ["I am Ming", "Hi Ming", "Who am I?"]
    assert [m["content"] for m in chats[2]["messages"]] == ["Again"]  # after /reset
    assert "history cleared" in r.stderr


def test_models_complete_health(vllm_server: FakeVllmServer) -> None:
    r = cli("models", "--base-url", vllm_server.url)
    assert r.returncode == 0 and "fake-model" in r.stdout and "4096" in r.stdout and "MAX_MODEL_LEN" in r.stdout
    vllm_server.reply(content=" upon a time")
    r = cli("complete", "Once", "--base-url", vllm_server.url)
    assert r.returncode == 0 and r.stdout == " upon a time\n"
    assert cli("health", "--base-url", vllm_server.url).returncode == 0
    r = cli("health", "--base-url", "http://127.0.0.1:9/v1")
    assert r.returncode == 1 and "unreachable" in r.stdout


def test_errors_are_one_line_without_traceback(vllm_server: FakeVllmServer) -> None:
    vllm_server.fail(404, {"error": {"message": "The model `x` does not exist.", "code": 404}})
    r = cli("chat", "hi", "--base-url", vllm_server.url, "--model", "x")
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "NotFoundError" in lines[0] and "does not exist" in lines[0]
    assert "Traceback" not in r.stderr
    r = cli("models", "--base-url", "http://127.0.0.1:9/v1", "--api-key", "sk-secret-cli")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "sk-secret-cli" not in r.stderr
    r = cli("models", "--base-url", "ftp://nope")
    assert r.returncode == 1 and "InvalidRequestError" in r.stderr
    r = cli("models", "--base-url", "http://127.0.0.1:9/v1", "--debug")
    assert "Traceback" in r.stderr


def test_demo_runs_offline() -> None:
    r = cli("demo")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "FakeVllmServer" in out
    for step in ("1. A builder call", "2. Streaming", "3. Tools", "4. A multi-turn conversation"):
        assert step in out
    assert "[tool call] get_weather" in out and "history: 5 messages" in out


def test_demo_against_a_given_server(vllm_server: FakeVllmServer) -> None:
    r = cli("demo", env={"VLLM_BASE_URL": vllm_server.url})
    assert r.returncode == 0, r.stderr
    assert vllm_server.url in r.stdout and len(vllm_server.requests) >= 5


def write_jsonl(path: Path, lines: list[Any]) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def test_batch_file_with_bad_lines(vllm_server: FakeVllmServer, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "fake-model", "messages": [{"role": "user", "content": f"q{i}"}]}} for i in range(5)]
    write_jsonl(inp, [good[0], "{not json", good[1], {"custom_id": "x", "url": "/v1/chat/completions"},
                      good[2], good[3], {"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
                                          "body": {"input": "hi"}}, good[4]])
    r = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url, "--concurrency", "3")
    assert "line 2:" in r.stderr and "line 4:" in r.stderr and r.returncode == 1  # bad lines reported
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["custom_id"] for x in rows) == ["e", "r0", "r1", "r2", "r3", "r4"]
    by_id = {x["custom_id"]: x for x in rows}
    assert by_id["r3"]["response"]["status_code"] == 200
    assert "q3" in by_id["r3"]["response"]["body"]["choices"][0]["message"]["content"]
    assert by_id["e"]["response"]["body"]["object"] == "list" and by_id["r0"]["error"] is None
    r2 = cli("batch", str(inp), "-o", str(out), "--base-url", vllm_server.url)
    assert "6 request(s) already in" in r2.stderr  # a re-run skips what is done
    assert len(out.read_text().splitlines()) == 6


def test_batch_resumes_after_a_crash(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    n = 60
    write_jsonl(inp, [{"custom_id": f"id-{i}", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "fake-model", "messages": [{"role": "user", "content": str(i)}]}}
                      for i in range(n)])
    with FakeVllmServer() as server:
        for _ in range(n):
            server.delay(0.05)  # slow enough to kill the run half-way
        e = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
        p = subprocess.Popen([sys.executable, "-m", "vllm_client", "batch", str(inp), "-o", str(out),
                              "--base-url", server.url, "--concurrency", "2", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 10):
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)  # a crash: no clean-up at all
        p.wait(timeout=10)
        done_before = len([x for x in out.read_bytes().splitlines() if x.strip()])
        assert 10 <= done_before < n
        with open(out, "ab") as f:
            f.write(b'{"id": "torn", "custom_id": "id-')  # a torn last line, as a crash mid-write leaves
        r = cli("batch", str(inp), "-o", str(out), "--base-url", server.url, "--concurrency", "8", "--no-progress")
        assert r.returncode == 0, r.stderr
    ids = []
    for line in out.read_text().splitlines():
        try:
            ids.append(json.loads(line)["custom_id"])
        except json.JSONDecodeError:
            continue
    assert sorted(ids) == sorted(f"id-{i}" for i in range(n))  # every custom_id exactly once


def test_rerank_and_embed(vllm_server: FakeVllmServer) -> None:
    r = cli("rerank", "capital of France", "Paris is the capital.", "Bananas are yellow.", "--top-n", "2",
            "--base-url", vllm_server.url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["rank", "#", "score", "document"] and len(lines) == 3
    assert {ln.split(None, 3)[3] for ln in lines[1:]} == {"Paris is the capital.", "Bananas are yellow."}
    assert vllm_server.requests[-1].body["top_n"] == 2
    e = cli("embed", "hello", "world", "--base-url", vllm_server.url, "--dimensions", "16")
    assert e.returncode == 0, e.stderr
    out = e.stdout.splitlines()
    assert out[0].startswith("2 x 16") and out[1].startswith("[16] [") and out[2].endswith("world")
    bad = cli("rerank", "q", "--base-url", vllm_server.url)
    assert bad.returncode != 0


def test_version() -> None:
    from vllm_client import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"vllm-client {__version__}"


def test_fake_server_serves_in_the_foreground_until_stopped() -> None:
    e = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
    p = subprocess.Popen([sys.executable, "-m", "vllm_client", "fake-server", "--port", "0", "--model", "tiny"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        assert p.stdout is not None
        first = p.stdout.readline()
        url = first.split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), first
        r = cli("chat", "Hi", "--base-url", url)
        assert r.returncode == 0 and "You said: Hi" in r.stdout, r.stderr
        assert "tiny" in cli("models", "--base-url", url).stdout
        p.send_signal(signal.SIGINT)  # Ctrl-C
        assert p.wait(timeout=20) == 0
        assert "vllm-client chat" in (p.stderr.read() if p.stderr else "")  # how to try it
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_connection_errors_say_how_to_point_at_the_server() -> None:
    for args, env, source in [(["--base-url", "http://127.0.0.1:9/v1"], {}, "--base-url"),
                              ([], {"VLLM_BASE_URL": "http://127.0.0.1:9/v1"}, "$VLLM_BASE_URL")]:
        r = cli("chat", "Hi", *args, env=env)
        assert r.returncode == 1
        (line,) = r.stderr.splitlines()
        assert f"cannot reach the server at http://127.0.0.1:9/v1 ({source})" in line
        assert "Connection refused" in line and "--base-url" in line and "VLLM_BASE_URL" in line
        assert "/models" not in line  # (the model look-up is not what the user asked for)


def test_404s_blame_the_model_only_when_the_server_did(vllm_server: FakeVllmServer) -> None:
    r = cli("chat", "Hi", "--base-url", vllm_server.url, "--model", "no-such-model")
    assert r.returncode == 1 and "NotFoundError" in r.stderr and "no-such-model" in r.stderr
    assert "check the model name" in r.stderr
    root = vllm_server.url.removesuffix("/v1")
    r = cli("models", "--base-url", root)  # the /v1 forgotten: the route is missing, not the model
    assert r.returncode == 1 and "no route /models" in r.stderr and "check the base URL" in r.stderr
    assert "model name" not in r.stderr
