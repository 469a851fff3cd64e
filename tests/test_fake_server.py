"""FakeVllmServer: its wire format, scripting and faults, over real sockets."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from vllm_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncVllmClient,
    InternalServerError,
    RateLimitError,
    StreamError,
    Timeout,
    VllmClient,
)
from vllm_client.testing import FakeVllmServer

EP = Path(__file__).parent / "wire" / "vllm032-endpoints"


def raw_sse(server: FakeVllmServer, body: dict[str, Any]) -> tuple[list[bytes], list[dict[str, Any]]]:
    """(HTTP chunks as received, parsed data events) of a streamed request, read with http.client."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=orjson.dumps({**body, "stream": True}),
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    assert resp.getheader("transfer-encoding") == "chunked"
    chunks = []
    while True:
        data = resp.read1(65536)  # one HTTP chunk at a time as the server flushes them
        if not data:
            break
        chunks.append(data)
    conn.close()
    joined = b"".join(chunks)
    events = [orjson.loads(line[6:]) for line in joined.split(b"\n")
              if line.startswith(b"data: ") and line != b"data: [DONE]"]
    assert joined.endswith(b"data: [DONE]\n\n")
    return chunks, events


def test_chat_json_shape_matches_vllm(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(content="Bonjour", reasoning="French greeting")
    r = requests.post(f"{vllm_server.url}/chat/completions",
                      json={"model": "anything", "messages": [{"role": "user", "content": "hi"}]}, timeout=5)
    body = r.json()
    real = json.loads((Path(__file__).parent / "wire" / "vllm032_main-chat-nonstream.json").read_text())
    assert set(body) >= set(real) - {"ec_transfer_params", "metrics", "prompt_text"}
    assert set(body["choices"][0]["message"]) >= set(real["choices"][0]["message"]) - {"tool_calls"}
    assert body["choices"][0]["message"]["content"] == "Bonjour"
    assert body["choices"][0]["message"]["reasoning"] == "French greeting"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_stream_is_token_by_token_with_role_chunk_and_usage(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(content="one two three")
    chunks, events = raw_sse(vllm_server, {"messages": [{"role": "user", "content": "x"}],
                                           "stream_options": {"include_usage": True}})
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    assert texts[1:4] == ["one", " two", " three"]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 3
    assert len(chunks) >= len(events)  # each event is flushed as its own HTTP chunk


def test_tool_call_delta_shape_like_vllm(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    _, events = raw_sse(vllm_server, {"messages": [{"role": "user", "content": "x"}]})
    tc = [e for e in events if e["choices"] and e["choices"][0]["delta"].get("tool_calls")][0]
    entries = tc["choices"][0]["delta"]["tool_calls"]
    assert [e["index"] for e in entries] == [0, 0]  # two same-index entries in one delta, as vLLM sends
    assert entries[0]["function"] == {"name": "get_weather"} and entries[0]["id"].startswith("chatcmpl-tool-")
    assert json.loads(entries[1]["function"]["arguments"]) == {"city": "Paris"}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_sdk_round_trip_sync_and_async(vllm_server: FakeVllmServer) -> None:
    vllm_server.reply(content="a b c", reasoning="think", usage={"prompt_tokens": 7})
    vllm_server.reply(content="x y")
    with VllmClient(vllm_server.url) as c:
        r = c.chat.completions().create().user_message("hello").n(2).send()
        assert (r.content, r.reasoning_content, len(r.choices)) == ("a b c", "think", 2)
        assert r.usage is not None and r.usage.prompt_tokens == 7
        s = c.chat.completions().create().user_message("hello").send_stream()
        assert "".join(s.text_stream()) == "x y"
        default = c.chat.completions().create().user_message("ping").max_tokens(3).send()
        assert default.finish_reason == "length" and default.content == "Hello! I am"

    import asyncio

    async def main() -> None:
        async with AsyncVllmClient(vllm_server.url) as ac:
            r = await ac.chat.completions().create().user_message("echo me").send()
            assert r.content is not None and "echo me" in r.content
    asyncio.run(main())
    assert vllm_server.requests[1].body["n"] == 2 and vllm_server.requests[0].path == "/v1/models"


def test_other_endpoints(vllm_server: FakeVllmServer) -> None:
    with VllmClient(vllm_server.url) as c:
        assert c.models()[0].id == "fake-model" and c.models()[0].max_model_len == 4096
        assert c.health() and c.version()
        ids = c.tokenize("héllo")
        assert c.detokenize(ids) == "héllo"
        assert c.tokenize([{"role": "user", "content": "hi"}])
        r = c.completions().create().prompt(["a", "b"]).echo().send()
        assert [ch.text.startswith(p) for ch, p in zip(r.choices, "ab")] == [True, True]
        s = c.completions().create().prompt("once").send_stream()
        assert s.final_response().text
        e = c.embeddings().create().input(["a", "b"]).encoding_format("base64").send()
        assert len(e.embeddings) == 2 and abs(sum(x * x for x in e.embeddings[0]) - 1) < 1e-5
    assert requests.get(f"{vllm_server.root_url}/health", timeout=5).content == b""
    assert requests.get(f"{vllm_server.url}/nope", timeout=5).json() == {"detail": "Not Found"}
    assert requests.get(f"{vllm_server.url}/chat/completions", timeout=5).status_code == 405
    bad = requests.post(f"{vllm_server.url}/chat/completions", data=b"{oops", timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400


def test_faults(vllm_server: FakeVllmServer) -> None:
    with VllmClient(vllm_server.url, max_retries=0, timeout=Timeout(connect=2, read=0.5)) as c:
        def ask() -> Any:
            return c.chat.completions().create().user_message("x")

        vllm_server.fail(429, retry_after=3)
        with pytest.raises(RateLimitError) as ei:
            ask().send()
        assert ei.value.headers.get("retry-after") == "3"
        vllm_server.fail(500, "plain text oops")
        with pytest.raises(InternalServerError, match="plain text oops"):
            ask().send()
        vllm_server.disconnect_after(3)
        with pytest.raises(StreamError) as se:
            list(ask().send_stream())
        assert se.value.partial.content is not None
        vllm_server.disconnect_before_response()
        with pytest.raises(APIConnectionError):
            ask().send()
        vllm_server.disconnect_mid_body()
        with pytest.raises(APIConnectionError):
            ask().send()
        vllm_server.stall(2, after_events=2)
        with pytest.raises(APITimeoutError):
            list(ask().send_stream())
        vllm_server.raw(200, {"content-type": "text/html"}, "<html>hi</html>")
        with pytest.raises(Exception, match="not valid JSON"):
            ask().send()
        vllm_server.sse([b'data: {"choices":[{"index":0,"delta":{"content":"raw"},"finish_reason":"stop"}]}\n\n',
                         b"data: [DONE]\n\n"])
        assert ask().send_stream().final_response().content == "raw"
        vllm_server.delay(0.2).reply(content="late")
        t = time.monotonic()
        assert ask().send().content == "late" and time.monotonic() - t >= 0.2
        vllm_server.trickle(0.05).reply(content="a b c d")
        assert "".join(ask().send_stream().text_stream()) == "a b c d"
        assert ask().send().content.startswith("Hello!")  # queue empty: default reply


def test_keep_alive_reuses_one_connection(vllm_server: FakeVllmServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", vllm_server.port, timeout=5)
    for _ in range(3):
        conn.request("POST", "/v1/chat/completions", body=b'{"messages": [{"role": "user", "content": "x"}]}',
                     headers={"content-type": "application/json"})
        assert conn.getresponse().read()
    conn.close()


def test_stop_is_prompt_with_idle_client_and_frees_the_port() -> None:
    server = FakeVllmServer().start()
    port = server.port
    idle = socket.create_connection(("127.0.0.1", port))
    t = time.monotonic()
    server.stop()
    assert time.monotonic() - t < 5
    idle.close()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))  # the port is free again
    s.close()


def test_starts_fast() -> None:
    t = time.monotonic()
    with FakeVllmServer() as server:
        started = time.monotonic() - t
        assert requests.get(f"{server.root_url}/health", timeout=5).status_code == 200
    print(f"FakeVllmServer started in {1000 * started:.1f} ms")


def test_requests_are_recorded(vllm_server: FakeVllmServer) -> None:
    with VllmClient(vllm_server.url, api_key="k") as c:
        c.chat.completions().create().model("m").user_message("hi").temperature(0.1).send()
    rec = vllm_server.requests[-1]
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.headers["Authorization"] == "Bearer k" and rec.body["temperature"] == 0.1
