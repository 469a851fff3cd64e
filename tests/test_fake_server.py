"""FakeVllmServer over real sockets (requests, http.client and raw sockets; never the SDK client):
its wire format against recorded vLLM 0.32 bodies, the reply queue, every fault, and its lifecycle."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from vllm_client.testing import FakeVllmServer, RecordedRequest

WIRE = Path(__file__).parent / "wire"
EP = WIRE / "vllm032-endpoints"
MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Tell me about the weather."}]


# -- helpers -----------------------------------------------------------------------------------


def recorded(name: str) -> Any:
    path = WIRE / name if (WIRE / name).exists() else EP / name
    return json.loads(path.read_text())


def recorded_events(name: str) -> list[Any]:
    path = WIRE / name if (WIRE / name).exists() else EP / name
    return [json.loads(b[6:]) for b in path.read_bytes().split(b"\n\n") if b.startswith(b"data: {")]


def chat(server: FakeVllmServer, **body: Any) -> requests.Response:
    body.setdefault("messages", MSGS)
    return requests.post(f"{server.url}/chat/completions", json=body, timeout=5)


class Raw:
    """One HTTP exchange on a raw socket: the status, headers and the body exactly as framed."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, chunks: list[bytes] | None,
                 complete: bool) -> None:
        self.status, self.headers, self.body, self.chunks, self.complete = status, headers, body, chunks, complete

    @property
    def events(self) -> list[Any]:
        """Parsed ``data:`` JSON events ([DONE] excluded)."""
        return [json.loads(e[6:]) for e in self.body.split(b"\n\n") if e.startswith(b"data: {")]


def send_raw(port: int, path: str, body: Any, method: str = "POST", timeout: float = 5) -> socket.socket:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    out: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(out)
        out.append(data)


def parse(raw: bytes) -> Raw:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    if headers.get("transfer-encoding") != "chunked":
        return Raw(status, headers, rest, None, len(rest) == int(headers.get("content-length", len(rest))))
    chunks: list[bytes] = []
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            return Raw(status, headers, b"".join(chunks), chunks, False)
        size = int(size_line, 16)
        if size == 0:
            return Raw(status, headers, b"".join(chunks), chunks, rest == b"\r\n")
        if len(rest) < size + 2:
            return Raw(status, headers, b"".join(chunks), chunks, False)
        chunks.append(rest[:size])
        rest = rest[size + 2:]


def exchange(server: FakeVllmServer, path: str, body: Any, method: str = "POST") -> Raw:
    sock = send_raw(server.port, path, body, method)
    try:
        return parse(read_all(sock))
    finally:
        sock.close()


def stream(server: FakeVllmServer, path: str = "/v1/chat/completions", **body: Any) -> Raw:
    if path.endswith("chat/completions"):
        body.setdefault("messages", MSGS)
    return exchange(server, path, {**body, "stream": True})


# vLLM 0.33 keys the 0.32 recordings lack (tests/test_vllm033.py checks them): left out of shapes
_KEYS_033 = frozenset({"kv_transfer_params"})


def shape(obj: Any) -> Any:
    """Keys (in order) and value types, recursively: what must match a recorded body."""
    if isinstance(obj, dict):
        return [(k, shape(v)) for k, v in obj.items() if k not in _KEYS_033]
    if isinstance(obj, list):
        return [shape(obj[0])] if obj else []
    return type(obj).__name__


@pytest.fixture
def server() -> Any:
    with FakeVllmServer() as s:
        yield s


# -- lifecycle ---------------------------------------------------------------------------------


def test_starts_in_milliseconds_on_a_free_port() -> None:
    t = time.perf_counter()
    s = FakeVllmServer(model="m1").start()
    started = time.perf_counter() - t
    try:
        print(f"\nFakeVllmServer.start() took {started * 1000:.2f} ms")
        assert s.url == f"http://127.0.0.1:{s.port}/v1" and s.root_url == f"http://127.0.0.1:{s.port}"
        assert s.port > 0 and s.model == "m1"
        assert requests.get(f"{s.root_url}/health", timeout=5).status_code == 200
    finally:
        s.stop()
    s.stop()  # idempotent


def test_stop_with_an_idle_keep_alive_connection_is_prompt_and_frees_the_port() -> None:
    s = FakeVllmServer().start()
    port = s.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/v1/models")
    assert conn.getresponse().read()  # the connection stays open, idle, in the server's pool
    t = time.monotonic()
    s.stop()
    took = time.monotonic() - t
    print(f"\nstop() with an idle keep-alive client: {took * 1000:.1f} ms")
    assert took < 5
    assert conn.sock is not None and conn.sock.recv(1) == b""  # the server closed it
    conn.close()
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))  # the port is free again
    probe.close()
    with FakeVllmServer(port=port) as again:  # and a new server can take it
        assert requests.get(f"{again.root_url}/health", timeout=5).status_code == 200


def test_stop_during_a_stall_and_a_delay_is_prompt() -> None:
    s = FakeVllmServer().start()
    s.stall(60, after_events=1)
    s.delay(60, path="/v1/models")
    sock = send_raw(s.port, "/v1/chat/completions", {"messages": MSGS, "stream": True})
    sock2 = send_raw(s.port, "/v1/models", b"", method="GET")
    time.sleep(0.2)
    t = time.monotonic()
    s.stop()
    assert time.monotonic() - t < 5
    assert not parse(read_all(sock)).complete
    assert read_all(sock2) == b""
    sock.close()
    sock2.close()


def test_keep_alive_reuses_one_connection(server: FakeVllmServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    socks = []
    for stream_it in (False, True, False):
        body = json.dumps({"messages": MSGS, "stream": stream_it})
        conn.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("connection") is None
        assert resp.read()
        socks.append(conn.sock)
    conn.request("GET", "/health")
    assert conn.getresponse().read() == b""
    socks.append(conn.sock)
    assert all(s is socks[0] and s is not None for s in socks)  # http.client would reconnect otherwise
    conn.close()
    with requests.Session() as session:  # and a client's pool reuses it too
        for _ in range(3):
            assert session.get(f"{server.url}/models", timeout=5).status_code == 200


def test_many_concurrent_requests_take_queued_replies_exactly_once(server: FakeVllmServer) -> None:
    for i in range(20):
        server.reply(content=f"reply {i}")

    def one(_: int) -> str:
        content: str = chat(server).json()["choices"][0]["message"]["content"]
        return content

    with ThreadPoolExecutor(10) as pool:
        got = sorted(pool.map(one, range(20)))
    assert got == sorted(f"reply {i}" for i in range(20))


def test_client_hanging_up_mid_stream_prints_nothing(server: FakeVllmServer,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    server.trickle(0.05).reply(content=" ".join(["word"] * 20))
    sock = send_raw(server.port, "/v1/chat/completions", {"messages": MSGS, "stream": True})
    assert sock.recv(100)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, mid-stream
    time.sleep(0.3)
    assert chat(server).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err


# -- chat: JSON --------------------------------------------------------------------------------


def test_chat_json_matches_the_recorded_vllm_body(server: FakeVllmServer) -> None:
    server.reply(content="Hello there friend")
    r = chat(server, model="tiny-llama", max_tokens=8)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["content-length"] == str(len(r.content))
    assert b": " not in r.content and b", " not in r.content  # compact JSON, like vLLM
    body, real = r.json(), recorded("vllm032_main-chat-nonstream.json")
    assert shape(body) == shape(real)
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{16}", body["id"]) and body["model"] == "tiny-llama"
    assert body["choices"][0]["message"]["content"] == "Hello there friend"
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 3 and usage["total_tokens"] == usage["prompt_tokens"] + 3


def test_chat_json_tool_calls_like_vllm(server: FakeVllmServer) -> None:
    server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    body = chat(server).json()
    real = recorded("vllm032_main-chat-tools-auto.json")
    assert shape(body) == shape(real)
    msg, real_msg = body["choices"][0]["message"], real["choices"][0]["message"]
    assert msg["content"] is None and body["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = msg["tool_calls"]
    assert re.fullmatch(r"chatcmpl-tool-[0-9a-f]{16}", call["id"])
    assert call["function"] == real_msg["tool_calls"][0]["function"]  # '{"city": "Paris"}', json.dumps spacing
    server.reply(content="", tool_calls=[{"id": "call_1", "name": "f", "arguments": '{"a":1}'},
                                         {"name": "g", "arguments": {}}], finish_reason="stop")
    body = chat(server).json()
    msg = body["choices"][0]["message"]
    assert msg["content"] == "" and body["choices"][0]["finish_reason"] == "stop"
    assert [(c["id"], c["function"]["arguments"]) for c in msg["tool_calls"]][0] == ("call_1", '{"a":1}')
    assert msg["tool_calls"][1]["function"] == {"name": "g", "arguments": "{}"}


def test_chat_json_reasoning_like_vllm(server: FakeVllmServer) -> None:
    server.reply(content="It is sunny.", reasoning="Let me think step by step.")
    body = chat(server).json()
    real = recorded("vllm032_reasoning-reasoning-thinking-on.json")
    assert shape(body) == shape(real)
    msg = body["choices"][0]["message"]
    assert (msg["reasoning"], msg["content"]) == ("Let me think step by step.", "It is sunny.")
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 6}
    assert body["usage"]["completion_tokens"] == 6 + 3
    server.reply(reasoning="only thinking")
    assert chat(server).json()["choices"][0]["message"]["content"] is None


def test_default_reply_echoes_and_honours_max_tokens(server: FakeVllmServer) -> None:
    body = chat(server, messages=[{"role": "user", "content": "ping"}]).json()
    assert body["choices"][0]["message"]["content"] == "Hello! I am a fake vLLM server. You said: ping"
    assert body["choices"][0]["finish_reason"] == "stop"
    body = chat(server, max_tokens=3).json()
    assert body["choices"][0]["message"]["content"] == "Hello! I am"
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 3
    body = chat(server, max_completion_tokens=1,
                messages=[{"role": "user", "content": [{"type": "text", "text": "parts"}]}]).json()
    assert body["choices"][0]["message"]["content"] == "Hello!"


def test_usage_override_n_and_request_id(server: FakeVllmServer) -> None:
    server.reply(content="a b", usage={"prompt_tokens": 7})
    body = chat(server, n=2).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert [c["message"]["content"] for c in body["choices"]] == ["a b", "a b"]
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 11, "completion_tokens": 4,
                             "prompt_tokens_details": None, "completion_tokens_details": None}
    r = requests.post(f"{server.url}/chat/completions", json={"messages": MSGS},
                      headers={"X-Request-Id": "client-req-123"}, timeout=5)
    assert r.json()["id"] == "chatcmpl-client-req-123"  # as vLLM does


def test_return_token_ids_match_tokenize(server: FakeVllmServer) -> None:
    server.reply(content="one two")
    body = chat(server, return_token_ids=True).json()
    tok = requests.post(f"{server.root_url}/tokenize", json={"messages": MSGS}, timeout=5).json()
    assert body["prompt_token_ids"] == tok["tokens"] and body["usage"]["prompt_tokens"] == tok["count"]
    ids = body["choices"][0]["token_ids"]
    assert requests.post(f"{server.root_url}/detokenize", json={"tokens": ids}, timeout=5).json() == {
        "prompt": "one two"}


# -- chat: SSE ---------------------------------------------------------------------------------


def test_chat_stream_frames_and_shapes_match_vllm(server: FakeVllmServer) -> None:
    server.reply(content="one two three")
    r = stream(server)
    assert r.status == 200 and r.complete
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["transfer-encoding"] == "chunked" and "content-length" not in r.headers
    assert r.chunks is not None
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in r.chunks)
    assert r.chunks[-1] == b"data: [DONE]\n\n"  # each event its own HTTP chunk, [DONE] last
    events = r.events
    real = recorded_events("vllm032_main-chat-stream.sse")
    assert shape(events[0]) == shape(real[0])  # role chunk: content "", prompt_token_ids/prompt_text
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert shape(events[1]) == shape(real[1])  # a content chunk
    assert [e["choices"][0]["delta"].get("content") for e in events[1:4]] == ["one", " two", " three"]
    finish = events[-1]  # after EOS: delta {} carrying finish_reason, system_fingerprint on the last chunk
    follow = recorded_events("vllm032_main-chat-tool-result-followup-stream.sse")
    assert shape(finish) == shape(follow[-1]) and finish["choices"][0]["finish_reason"] == "stop"
    assert all("system_fingerprint" not in e for e in events[:-1])
    assert len({e["id"] for e in events}) == 1 and events[0]["object"] == "chat.completion.chunk"


def test_chat_stream_length_finish_rides_on_the_last_piece(server: FakeVllmServer) -> None:
    events = stream(server, max_tokens=3).events
    real = recorded_events("vllm032_main-chat-stream.sse")
    assert len(events) == 4 and shape(events[-1]) == shape(real[-1])
    assert events[-1]["choices"][0]["delta"] == {"content": " am"}
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_chat_stream_include_usage(server: FakeVllmServer) -> None:
    server.reply(content="one two three")
    events = stream(server, stream_options={"include_usage": True}).events
    real = recorded_events("vllm032_main-chat-stream-include-usage.sse")
    usage = events[-1]
    assert usage["choices"] == [] and shape(usage) == shape(real[-1])
    assert list(usage["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens"]
    assert usage["usage"]["completion_tokens"] == 3
    assert "system_fingerprint" not in events[-2]


def test_chat_stream_tool_call_like_vllm(server: FakeVllmServer) -> None:
    server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    events = stream(server, stream_options={"include_usage": True}).events
    real = recorded_events("vllm032_main-chat-tools-auto-stream.sse")
    assert [shape(e) for e in events] == [shape(e) for e in real]
    entries = events[1]["choices"][0]["delta"]["tool_calls"]
    real_entries = real[1]["choices"][0]["delta"]["tool_calls"]
    assert [e["index"] for e in entries] == [0, 0]  # two same-index entries in one delta
    assert entries[0]["function"] == {"name": "get_weather"} and entries[1] == real_entries[1]
    assert events[1]["choices"][0]["delta"]["content"] is None
    assert events[2]["choices"][0] == real[2]["choices"][0]  # delta {}, finish tool_calls


def test_chat_stream_reasoning_then_content(server: FakeVllmServer) -> None:
    server.reply(content="Sunny.", reasoning="Let me think.")
    events = stream(server, stream_options={"include_usage": True}).events
    real = recorded_events("vllm032_reasoning-reasoning-thinking-on-stream.sse")
    assert shape(events[1]) == shape(real[1]) and shape(events[-1]) == shape(real[-1])
    deltas = [e["choices"][0]["delta"] for e in events[1:-2]]
    assert deltas == [{"reasoning": "Let"}, {"reasoning": " me"}, {"reasoning": " think."}, {"content": "Sunny."}]
    assert events[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


def test_chat_stream_n2_interleaves_choices(server: FakeVllmServer) -> None:
    server.reply(content="a b")
    events = stream(server, n=2, stream_options={"include_usage": True}).events
    idx = [(e["choices"][0]["index"], e["choices"][0]["delta"]) for e in events if e["choices"]]
    assert idx == [(0, {"role": "assistant", "content": ""}), (1, {"role": "assistant", "content": ""}),
                   (0, {"content": "a"}), (1, {"content": "a"}), (0, {"content": " b"}), (1, {"content": " b"}),
                   (0, {}), (1, {}), ]
    assert events[-1]["usage"]["completion_tokens"] == 4


# -- completions -------------------------------------------------------------------------------


def test_completions_json_shapes(server: FakeVllmServer) -> None:
    url = f"{server.url}/completions"
    body = requests.post(url, json={"model": server.model, "prompt": "The weather in Paris"}, timeout=5).json()
    real = recorded("vllm032_main-completions-prompt-string.json")
    assert shape(body) == shape(real) and body["object"] == "text_completion"
    assert re.fullmatch(r"cmpl-[0-9a-f]{16}", body["id"])
    assert body["choices"][0]["text"] == " and so the story goes on."
    assert body["usage"]["prompt_tokens"] == 4  # "The", " weather", " in", " Paris"
    for prompt, n_choices in ((["a", "b"], 2), ([56, 57, 58], 1), ([[56, 57], [58, 59, 60]], 2)):
        body = requests.post(url, json={"prompt": prompt, "max_tokens": 2}, timeout=5).json()
        assert [c["index"] for c in body["choices"]] == list(range(n_choices))
        assert all(c["text"] == " and so" and c["finish_reason"] == "length" for c in body["choices"])
    assert requests.post(url, json={"prompt": [[1, 2], [3]], "max_tokens": 2}, timeout=5).json()[
        "usage"]["prompt_tokens"] == 3
    server.reply(content=" there")
    echo = requests.post(url, json={"prompt": "Hi", "echo": True}, timeout=5).json()
    assert echo["choices"][0]["text"] == "Hi there"
    ids = requests.post(url, json={"prompt": "Hi", "n": 2, "return_token_ids": True}, timeout=5).json()
    assert [c["index"] for c in ids["choices"]] == [0, 1]
    assert ids["choices"][0]["prompt_token_ids"] and ids["choices"][0]["token_ids"]


def test_completions_stream_shapes(server: FakeVllmServer) -> None:
    r = stream(server, "/v1/completions", prompt="The weather in Paris", max_tokens=3)
    real = recorded_events("vllm032_main-completions-stream.sse")
    assert r.complete and r.chunks is not None and r.chunks[-1] == b"data: [DONE]\n\n"
    assert [shape(e) for e in r.events] == [shape(real[0])] * 2 + [shape(real[-1])]
    assert [e["choices"][0]["text"] for e in r.events] == [" and", " so", " the"]
    r = stream(server, "/v1/completions", prompt=["x", "y"], max_tokens=2, echo=True,
               stream_options={"include_usage": True})
    real = recorded_events("vllm032_main-completions-stream-list2.sse")
    assert [shape(e) for e in r.events] == [shape(e) for e in (*real[:2], *real[-3:])]
    assert [(e["choices"][0]["index"], e["choices"][0]["text"]) for e in r.events[:-1]] == [
        (0, "x and"), (1, "y and"), (0, " so"), (1, " so")]
    assert r.events[-1]["usage"]["completion_tokens"] == 4
    server.reply(content="done")  # finish "stop": an empty-text chunk carries it
    events = stream(server, "/v1/completions", prompt="p").events
    assert [(e["choices"][0]["text"], e["choices"][0]["finish_reason"]) for e in events] == [
        ("done", None), ("", "stop")]


# -- other endpoints ---------------------------------------------------------------------------


def test_models_like_vllm(server: FakeVllmServer) -> None:
    r = requests.get(f"{server.url}/models", timeout=5)
    body, real = r.json(), recorded("vllm032_main-models.json")
    assert shape(body) == shape(real)
    card = body["data"][0]
    assert (card["id"], card["root"], card["parent"], card["owned_by"], card["max_model_len"]) == (
        "fake-model", "fake-model", None, "vllm", 4096)


def test_health_ping_version_load(server: FakeVllmServer) -> None:
    for path in ("/health", "/ping"):
        r = requests.get(server.root_url + path, timeout=5)
        assert (r.status_code, r.content, r.headers.get("content-type")) == (200, b"", None)
    version = requests.get(f"{server.root_url}/version", timeout=5).json()
    assert list(version) == list(recorded("vllm032_main-version.json")) and version["version"].endswith("+fake")
    assert requests.get(f"{server.root_url}/load", timeout=5).json() == {"server_load": 0}


def test_tokenize_and_detokenize_at_the_root(server: FakeVllmServer) -> None:
    root = server.root_url
    tok = requests.post(f"{root}/tokenize", json={"prompt": "The weather in Paris"}, timeout=5).json()
    assert shape(tok)[:3] == shape(recorded("vllm032_main-tokenize-prompt.json"))[:3]
    assert tok["count"] == 4 == len(tok["tokens"]) and tok["max_model_len"] == 4096 and tok["token_strs"] is None
    again = requests.post(f"{root}/tokenize", json={"prompt": "The weather in Paris", "return_token_strs": True},
                          timeout=5).json()
    assert again["tokens"] == tok["tokens"]  # deterministic
    assert again["token_strs"] == recorded("vllm032_main-tokenize-prompt-with-strs.json")["token_strs"]
    text = "héllo wörld, 你好世界今天天气很好\n"
    ids = requests.post(f"{root}/tokenize", json={"prompt": text}, timeout=5).json()["tokens"]
    assert requests.post(f"{root}/detokenize", json={"tokens": ids}, timeout=5).json() == {"prompt": text}
    assert requests.post(f"{root}/detokenize", json={"tokens": [72, 105]}, timeout=5).json() == {"prompt": "Hi"}
    bad = requests.post(f"{root}/detokenize", json={"tokens": [999_999_999]}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
    msgs = requests.post(f"{root}/tokenize", json={"messages": MSGS}, timeout=5).json()
    assert msgs["count"] == chat(server).json()["usage"]["prompt_tokens"]
    v1 = requests.post(f"{server.url}/tokenize", json={"prompt": "x"}, timeout=5)
    assert (v1.status_code, v1.json()) == (404, recorded("vllm032_main-tokenize-v1-path.json"))


def test_embeddings(server: FakeVllmServer) -> None:
    url = f"{server.url}/embeddings"
    body = requests.post(url, json={"model": server.model, "input": "Hello"}, timeout=5).json()
    real = recorded("vllm032_embed-embed-single.json")
    assert shape(body) == shape(real) and re.fullmatch(r"embd-[0-9a-f]{16}", body["id"])
    vec = body["data"][0]["embedding"]
    assert len(vec) == len(real["data"][0]["embedding"]) == 128
    assert abs(sum(x * x for x in vec) - 1) < 1e-5
    assert body["usage"]["completion_tokens"] == 0 and body["usage"]["prompt_tokens"] == 1
    two = requests.post(url, json={"input": ["Hello", "Goodbye"], "encoding_format": "base64"}, timeout=5).json()
    assert shape(two["data"][0]) == shape(recorded("vllm032_embed-embed-base64.json")["data"][0])
    assert [d["index"] for d in two["data"]] == [0, 1]
    decoded = list(struct.unpack("<128f", base64.b64decode(two["data"][0]["embedding"])))
    assert decoded == vec  # the same vector, as little-endian float32
    assert two["data"][1]["embedding"] != two["data"][0]["embedding"]
    ids = requests.post(url, json={"input": [56, 57, 58]}, timeout=5).json()
    assert len(ids["data"]) == 1 and ids["usage"]["prompt_tokens"] == 3
    small = requests.post(url, json={"input": "Hello", "dimensions": 8}, timeout=5).json()
    assert len(small["data"][0]["embedding"]) == 8


# -- errors ------------------------------------------------------------------------------------

ERROR_CASES = [
    ("vllm032_main-err-invalid-json", None),
    ("vllm032_main-err-missing-messages", None),
    ("vllm032_main-err-n-zero", None),
    ("vllm032_main-err-stream-options-without-stream", None),
    ("vllm032_main-err-max-tokens-too-large", None),
    ("vllm032_main-err-temperature-negative", None),
    ("vllm032_main-err-tool-choice-without-tools", None),
    ("vllm032_main-err-prompt-too-long-chat", None),
    ("vllm032_main-err-text-plain-content-type", "text/plain"),
    ("vllm032_main-err-completions-missing-prompt", None),
    ("vllm032_main-err-prompt-too-long-completions", None),
    ("vllm032_main-completions-suffix", None),
    ("vllm032_main-err-unknown-route", None),
    ("vllm032_main-err-wrong-method", None),
]


@pytest.mark.parametrize(("name", "content_type"), ERROR_CASES)
def test_request_errors_are_byte_identical_to_vllm(name: str, content_type: str | None) -> None:
    meta = recorded(f"{name}.meta.json")
    req = meta["request"]
    body = req["body"] if isinstance(req["body"], str) else json.dumps(req["body"]) if req["body"] else ""
    with FakeVllmServer(model="tiny-llama", max_model_len=512) as s:
        s.reply(content="must stay queued")
        r = requests.request(req["method"], s.root_url + req["path"], data=body.encode(), timeout=5,
                             headers={"content-type": content_type or "application/json"})
        path = WIRE / f"{name}.json" if (WIRE / f"{name}.json").exists() else EP / f"{name}.json"
        assert r.content == path.read_bytes()
        assert r.status_code == (404 if "route" in name else 405 if "method" in name else 400)
        assert r.headers["content-type"] == "application/json"
        # a rejected request never reached the "model": the queued reply is still there
        assert chat(s).json()["choices"][0]["message"]["content"] == "must stay queued"


def test_error_envelope_for_a_bad_body_type(server: FakeVllmServer) -> None:
    for data in (b"[1, 2]", b""):
        r = requests.post(f"{server.url}/chat/completions", data=data, timeout=5,
                          headers={"content-type": "application/json"})
        err = r.json()["error"]
        assert r.status_code == 400 and list(err) == ["message", "type", "param", "code"]
        assert (err["type"], err["code"]) == ("Bad Request", 400)


# -- the queue ---------------------------------------------------------------------------------


def test_queue_is_fifo_and_only_generation_requests_take_it(server: FakeVllmServer) -> None:
    server.reply(content="first").reply(content="second")
    assert requests.get(f"{server.url}/models", timeout=5).status_code == 200  # takes nothing
    assert requests.get(f"{server.root_url}/health", timeout=5).status_code == 200
    assert chat(server).json()["choices"][0]["message"]["content"] == "first"
    completion = requests.post(f"{server.url}/completions", json={"prompt": "x"}, timeout=5).json()
    assert completion["choices"][0]["text"] == "second"
    assert chat(server).json()["choices"][0]["message"]["content"].startswith("Hello! I am a fake vLLM server.")


def test_modifiers_attach_to_the_next_answer(server: FakeVllmServer) -> None:
    server.delay(0.2).reply(content="late")  # one request: delayed, then "late"
    t = time.monotonic()
    assert chat(server).json()["choices"][0]["message"]["content"] == "late"
    assert time.monotonic() - t >= 0.2
    server.delay(0.1).delay(0.1)  # two delays: one for each of the next two requests
    for _ in range(2):
        t = time.monotonic()
        assert chat(server).status_code == 200
        assert 0.1 <= time.monotonic() - t < 0.19 + 0.5
    t = time.monotonic()
    assert chat(server).status_code == 200 and time.monotonic() - t < 0.1


def test_faults_can_target_other_endpoints(server: FakeVllmServer) -> None:
    server.fail(503, path="/v1/models").fail(503, path="*")
    assert chat(server).status_code == 503  # "*" fits any request; the models fault waits for its path
    assert requests.get(f"{server.url}/models", timeout=5).status_code == 503
    assert requests.get(f"{server.url}/models", timeout=5).status_code == 200
    server.fail(500, path="/health")
    assert requests.get(f"{server.root_url}/health", timeout=5).status_code == 500


# -- faults ------------------------------------------------------------------------------------


def test_fail_status_body_and_retry_after(server: FakeVllmServer) -> None:
    server.fail(429, retry_after=3)
    r = chat(server, stream=True)  # errors before a stream are plain JSON, as in vLLM
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert list(err) == ["message", "type", "param", "code"] and err["code"] == 429
    assert shape(r.json()) == shape(recorded("vllm032_main-err-n-zero.json"))
    server.fail(500)
    assert chat(server).json()["error"]["type"] == "InternalServerError"
    server.fail(503, "upstream busy", retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    r = chat(server)
    assert (r.status_code, r.text, r.headers["retry-after"]) == (503, "upstream busy",
                                                                 "Wed, 21 Oct 2015 07:28:00 GMT")
    assert r.headers["content-type"].startswith("text/plain")
    server.fail(400, {"error": {"message": "custom", "code": 400}}, retry_after=0.5)
    r = chat(server)
    assert r.json() == {"error": {"message": "custom", "code": 400}} and r.headers["retry-after"] == "0.5"
    server.fail(401)
    assert chat(server).json() == {"error": "Unauthorized"}  # vLLM's --api-key middleware
    assert chat(server).status_code == 200


def test_disconnect_after_n_events_cuts_the_chunked_body(server: FakeVllmServer) -> None:
    server.disconnect_after(3)
    r = stream(server)
    assert r.status == 200 and not r.complete and r.chunks is not None and len(r.chunks) == 3
    server.disconnect_after(2)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        list(chat(server, stream=True).iter_content(None))
    assert chat(server).status_code == 200  # the server carries on


def test_stall_a_stream_without_closing(server: FakeVllmServer) -> None:
    server.stall(0.6, after_events=2).reply(content="a b c")  # a modifier goes before the reply it modifies
    sock = send_raw(server.port, "/v1/chat/completions", {"messages": MSGS, "stream": True})
    got = b""
    while got.count(b"\n\n") < 2:  # two events (each ends in a blank line)
        got += sock.recv(65536)
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(65536)  # silent, but not closed
    sock.settimeout(5)
    r = parse(got + read_all(sock))
    sock.close()
    assert r.complete and r.chunks is not None and r.chunks[-1] == b"data: [DONE]\n\n"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in r.events if e["choices"]) == "a b c"


def test_stall_a_json_answer_after_its_headers(server: FakeVllmServer) -> None:
    server.stall(0.6)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": MSGS}),
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()  # the headers arrive at once
    assert resp.status == 200
    assert conn.sock is not None
    conn.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        resp.read()
    conn.close()
    server.stall(0.3)
    t = time.monotonic()
    assert chat(server).json()["choices"][0]["message"]["content"] and time.monotonic() - t >= 0.3


def test_disconnect_before_response(server: FakeVllmServer) -> None:
    server.disconnect_before_response()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": MSGS}),
                 headers={"content-type": "application/json"})
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    conn.close()
    assert server.requests[-1].body == {"messages": MSGS}  # it did read the request
    server.disconnect_before_response()
    with pytest.raises(requests.exceptions.ConnectionError):
        chat(server)
    assert chat(server).status_code == 200


def test_disconnect_mid_body(server: FakeVllmServer) -> None:
    server.disconnect_mid_body()
    r = exchange(server, "/v1/chat/completions", {"messages": MSGS})
    assert r.status == 200 and not r.complete
    assert 0 < len(r.body) < int(r.headers["content-length"])
    server.disconnect_mid_body()
    with pytest.raises(requests.exceptions.RequestException):
        chat(server)
    server.disconnect_mid_body()
    r = stream(server)
    assert not r.complete and r.chunks == []  # a chunk header, then half of the first event


def test_raw_answer_bytes(server: FakeVllmServer) -> None:
    server.raw(502, {"content-type": "text/html"}, b"<html><body>Bad gateway</body></html>")
    r = chat(server)
    assert (r.status_code, r.headers["content-type"], r.content) == (
        502, "text/html", b"<html><body>Bad gateway</body></html>")
    server.raw(200, {"content-type": "application/json"}, '{"choices": [')
    r = chat(server)
    assert r.status_code == 200 and r.content == b'{"choices": ['


def test_sse_replays_a_recorded_transcript(server: FakeVllmServer) -> None:
    data = (WIRE / "vllm032_main-chat-tools-auto-stream.sse").read_bytes()
    blocks = [b + b"\n\n" for b in data.split(b"\n\n") if b]
    server.sse(blocks)
    r = stream(server)
    assert r.complete and r.body == data and r.chunks == blocks
    server.sse(["data: {\"error\": \"late\"}\n\n"], status=500)
    r = stream(server)
    assert r.status == 500 and r.chunks == [b'data: {"error": "late"}\n\n']


def test_trickle_spaces_the_events(server: FakeVllmServer) -> None:
    server.trickle(0.1).reply(content="a b c")
    sock = send_raw(server.port, "/v1/chat/completions", {"messages": MSGS, "stream": True})
    stamps, buf = [], b""
    while not buf.endswith(b"0\r\n\r\n"):
        data = sock.recv(65536)
        if not data:
            break
        buf += data
        stamps.append(time.monotonic())
    sock.close()
    r = parse(buf)
    assert r.complete and r.chunks is not None and len(r.chunks) == 6  # role, 3 pieces, finish, [DONE]
    assert stamps[-1] - stamps[0] >= 0.4  # five gaps of 0.1 s (the first chunk may come with the headers)


# -- recording and the fixture -----------------------------------------------------------------


def test_requests_are_recorded(server: FakeVllmServer) -> None:
    requests.post(f"{server.url}/chat/completions?x=1", json={"messages": MSGS, "temperature": 0.1},
                  headers={"Authorization": "Bearer k"}, timeout=5)
    requests.post(f"{server.url}/chat/completions", data=b"{oops", timeout=5)
    requests.get(f"{server.root_url}/health", timeout=5)
    first, bad, health = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.query) == ("POST", "/v1/chat/completions", "x=1")
    assert first.headers["authorization"] == first.headers["Authorization"] == "Bearer k"
    assert "AUTHORIZATION" in first.headers and first.headers.get("Content-Type") == "application/json"
    assert first.body == {"messages": MSGS, "temperature": 0.1} and json.loads(first.raw) == first.body
    assert (bad.body, bad.raw) == (None, b"{oops")
    assert (health.method, health.path, health.body, health.raw) == ("GET", "/health", None, b"")


def test_the_vllm_server_fixture(vllm_server: FakeVllmServer, request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("vllm_client")  # loaded through the pytest11 entry point
    vllm_server.reply(content="from the fixture")
    assert chat(vllm_server).json()["choices"][0]["message"]["content"] == "from the fixture"


@pytest.mark.parametrize("vllm_server", [{"model": "other", "max_model_len": 1024}], indirect=True)
def test_the_fixture_takes_constructor_arguments(vllm_server: FakeVllmServer) -> None:
    card = requests.get(f"{vllm_server.url}/models", timeout=5).json()["data"][0]
    assert (card["id"], card["max_model_len"]) == ("other", 1024)


def test_the_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, vllm_client.testing._plugin; "
            "print(sorted(m for m in ('vllm_client.testing._server', 'http.server') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_server_threads_end_after_stop() -> None:
    before = threading.active_count()
    with FakeVllmServer() as s:
        with requests.Session() as session:
            for _ in range(3):
                session.get(f"{s.url}/models", timeout=5)
            assert threading.active_count() > before
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


# -- strictness: unknown models and ill-typed fields, as vLLM ----------------------------------


def test_an_unknown_model_is_vllms_404_unless_a_reply_was_queued(server: FakeVllmServer) -> None:
    real = recorded("vllm032_main-err-unknown-model-chat.json")
    r = chat(server, model="no-such-model", max_tokens=8)
    assert r.status_code == 404
    assert r.json() == {"error": {**real["error"], "message": "The model `no-such-model` does not exist. "
                                                              "Valid aliases: fake-model."}}
    for path, body in [("/completions", {"prompt": "x"}), ("/embeddings", {"input": "x"}),
                       ("/responses", {"input": "x"}), ("/rerank", {"query": "q", "documents": ["a"]})]:
        assert requests.post(server.url + path, json={"model": "nope", **body}, timeout=5).status_code == 404, path
    server.reply(content="scripted")  # a queued reply answers whatever model the request names
    r = chat(server, model="anything")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "scripted"
    assert chat(server, max_tokens=4).status_code == 200  # no model: the served one, as vLLM


def test_a_lora_adapter_loaded_at_runtime_is_a_valid_model(server: FakeVllmServer) -> None:
    assert chat(server, model="sql").status_code == 404
    ok = requests.post(server.url + "/load_lora_adapter", json={"lora_name": "sql", "lora_path": "/a/sql"}, timeout=5)
    assert ok.status_code == 200
    assert chat(server, model="sql").status_code == 200


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("max_tokens", 1.5, "int_from_float"), ("max_tokens", "many", "int_parsing"), ("n", [1], "int_type"),
    ("temperature", "hot", "float_parsing"), ("top_p", {}, "float_type"), ("stream", "maybe", "bool_parsing"),
    ("model", 7, "string_type"),
])
def test_ill_typed_fields_are_vllms_400(server: FakeVllmServer, field: str, value: Any, kind: str) -> None:
    r = chat(server, **{field: value})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("Bad Request", f"body.{field}", 400)
    assert err["message"].startswith(f"1 validation error:\n  {{'type': '{kind}', 'loc': 'body.{field}'")


@pytest.mark.parametrize(("field", "value"), [("max_tokens", 2.0), ("max_tokens", "3"), ("temperature", "0.5"),
                                              ("temperature", 1), ("stream", "false"), ("seed", True)])
def test_values_pydantic_coerces_are_accepted(server: FakeVllmServer, field: str, value: Any) -> None:
    assert chat(server, **{field: value}).status_code == 200


def test_embeddings_relate_texts_that_share_words(server: FakeVllmServer) -> None:
    texts = ["capital of France", "Paris is the capital of France.", "Bananas are yellow.", "capital of France"]
    data = requests.post(server.url + "/embeddings", json={"input": texts}, timeout=5).json()["data"]
    v = [d["embedding"] for d in data]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert abs(cos(v[0], v[0]) - 1) < 1e-5 and v[0] == v[3]  # unit vectors, deterministic
    assert cos(v[0], v[1]) > 0.5 > cos(v[0], v[2])
