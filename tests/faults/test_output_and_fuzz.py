"""Bad server output becomes a typed VllmError that keeps what arrived; fuzzed parsers never crash."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllm_client import (
    APIStatusError,
    AsyncVllmClient,
    ChatCompletionResponse,
    CompletionResponse,
    InternalServerError,
    ResponseDecodeError,
    StreamError,
    VllmClient,
    VllmError,
)
from vllm_client._exceptions import error_from_response, load_json_object
from vllm_client._sse import SSEDecoder
from vllm_client._stream import StreamAccumulator

from ._rawserver import Conn, RawServer

WIRE = Path(__file__).parent.parent / "wire"
TRANSCRIPTS = sorted(WIRE.glob("*.sse"))
JSON_BODIES = sorted(p for p in WIRE.glob("*.json") if not p.name.endswith(".meta.json"))


def answering(status: int, body: bytes, ctype: str = "application/json") -> Any:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(status, body, ctype=ctype)
    return handler


def streaming(body: bytes) -> Any:
    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.start_stream()
        conn.chunk(body)
        conn.end_stream()
    return handler


BAD_BODIES = [
    ("invalid json", 200, b'{"choices": [', ResponseDecodeError),
    ("wrong type", 200, b'["a", "list"]', ResponseDecodeError),
    ("choices not a list", 200, b'{"choices": {"a": 1}}', ResponseDecodeError),
    ("invalid utf-8", 200, b'{"choices": "\xff\xfe"}', ResponseDecodeError),
    ("html error page", 502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
     InternalServerError),
    ("200 with error object", 200, b'{"error": {"message": "engine died", "code": 500}}', InternalServerError),
    ("huge garbage", 200, b"x" * (20 * 1024 * 1024), ResponseDecodeError),
]


@pytest.mark.parametrize("name,status,body,cls", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_output_sync(name: str, status: int, body: bytes, cls: type) -> None:
    with RawServer(answering(status, body)) as srv, VllmClient(srv.url, max_retries=0) as c:
        with pytest.raises(cls) as ei:
            c.chat.completions().create().model("m").user_message("x").send()
    e = ei.value
    assert isinstance(e, VllmError)
    kept = e.body
    assert kept is not None and kept != ""
    if isinstance(e, ResponseDecodeError) and isinstance(kept, str):
        assert len(kept) >= min(len(body), 1000) // 2  # what was received is kept
    assert len(str(e)) < 1000  # ... but the message stays one readable line


@pytest.mark.parametrize("name,status,body,cls", BAD_BODIES[:6], ids=[b[0] for b in BAD_BODIES[:6]])
async def test_bad_output_async(name: str, status: int, body: bytes, cls: type) -> None:
    with RawServer(answering(status, body)) as srv:
        async with AsyncVllmClient(srv.url, max_retries=0) as c:
            with pytest.raises(cls):
                await c.chat.completions().create().model("m").user_message("x").send()


def test_sse_chunk_not_json_keeps_partial() -> None:
    body = b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\ndata: <html>oops</html>\n\n'
    with RawServer(streaming(body)) as srv, VllmClient(srv.url, max_retries=0) as c:
        with pytest.raises(StreamError) as ei:
            list(c.chat.completions().create().model("m").user_message("x").send_stream())
    assert ei.value.partial.content == "ok" and "<html>oops</html>" in ei.value.body


# -- fuzzing -----------------------------------------------------------------------------------

def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 12)):
        op = rng.randrange(5)
        if not b:
            break
        i = rng.randrange(len(b))
        if op == 0:
            b[i] = rng.randrange(256)
        elif op == 1:
            del b[i:i + rng.randrange(1, 40)]
        elif op == 2:
            b[i:i] = rng.choice([b"\n", b"\r", b"\n\n", b"data: ", b"{", b"}", b"[DONE]", b"null", b'"', b"\xff",
                                 b"event: error\n", b'{"error": 1}', b"[]", b"1e999"])
        elif op == 3:
            j = rng.randrange(len(b))
            b[i:j] = b[j:i]
        else:
            b = b[:i]
    return bytes(b)


def run_stream(data: bytes, rng: random.Random, chat: bool = True) -> None:
    parse = ChatCompletionResponse.from_dict if chat else CompletionResponse.from_dict
    acc = StreamAccumulator(chat=chat, parse=parse)
    pos = 0
    try:
        while pos < len(data):
            n = rng.randrange(1, 200)
            for ev in acc.feed(data[pos:pos + n]):
                assert ev.type in {"reasoning", "content", "refusal", "tool_call_delta", "tool_call", "usage",
                                   "done", "event"}
            pos += n
        acc.finish()
        acc.response()
    except VllmError:
        pass


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_fuzz_mutated_transcripts_only_typed_errors(path: Path) -> None:
    data = path.read_bytes()[:30000]
    rng = random.Random(path.name)
    for _ in range(60):
        run_stream(mutate(data, rng), rng)
        run_stream(mutate(data, rng), rng, chat=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.integers(0, 2**32))
def test_fuzz_random_bytes_stream(data: bytes, seed: int) -> None:
    run_stream(data, random.Random(seed))
    d = SSEDecoder()
    d.feed(data)
    d.flush()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["choices", "message", "content", "delta", "tool_calls", "function", "arguments", "name",
                         "usage", "index", "finish_reason", "reasoning", "reasoning_content", "error", "object",
                         "id", "model", "logprobs", "prompt_tokens", "text", "type", "thinking", "data"]),
        children, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fuzz_json_shapes_parse_or_typed_error(value: Any) -> None:
    body = orjson.dumps(value)
    try:
        r = ChatCompletionResponse.from_dict(load_json_object(body, what="x"))
        _ = (r.content, r.reasoning_content, r.tool_calls, r.finish_reason, r.usage, r.message, r.refusal)
        for tc in r.tool_calls:
            try:
                tc.arguments_json()
            except VllmError:
                pass
    except VllmError:
        pass
    for status in (400, 404, 500):
        e = error_from_response(status, {}, body)
        assert isinstance(e, APIStatusError) and isinstance(str(e), str)


choice_bodies = st.builds(
    lambda first, rest, content: {"choices": [first if first is not None else {"message": {"content": content}}, *rest]},
    st.none() | json_values, st.lists(json_values, max_size=2),
    json_values | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}), max_size=3))


@settings(max_examples=400, deadline=None)
@given(choice_bodies | json_values)
def test_content_read_first_equals_parsed_choice(value: Any) -> None:
    """``.content`` read before anything else (plain text is not parsed then) is the first
    parsed choice's content, whatever the body holds."""
    try:
        obj = load_json_object(orjson.dumps(value), what="x")
        first_read = ChatCompletionResponse.from_dict(obj).content
        parsed = ChatCompletionResponse.from_dict(obj).choices
    except VllmError:
        return
    assert first_read == (parsed[0].content if parsed else None)


@pytest.mark.parametrize("path", JSON_BODIES, ids=[p.stem for p in JSON_BODIES])
def test_fuzz_mutated_json_bodies(path: Path) -> None:
    data = path.read_bytes()
    rng = random.Random(path.name)
    for _ in range(60):
        body = mutate(data, rng)
        try:
            ChatCompletionResponse.from_dict(load_json_object(body, what="x"))
        except VllmError:
            pass
        assert isinstance(error_from_response(500, {}, body), APIStatusError)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(json_values, json_values, json_values), min_size=1, max_size=6), st.integers(0, 2**32))
def test_fuzz_structured_chunks(parts: list[tuple[Any, Any, Any]], seed: int) -> None:
    """Chunks whose choice / delta / tool-call fields hold any JSON value at all."""
    body = b""
    for delta, tool_call, extra in parts:
        tc = tool_call if isinstance(tool_call, dict) else {"function": tool_call}
        d = delta if isinstance(delta, dict) else {"content": delta}
        chunk = {"choices": [{"index": 0, "delta": {**d, "tool_calls": [tc], "refusal": extra, "reasoning": extra},
                              "finish_reason": extra, "logprobs": extra}], "usage": extra, "id": extra}
        body += b"data: " + orjson.dumps(chunk) + b"\n\n"
    run_stream(body + b"data: [DONE]\n\n", random.Random(seed))
    run_stream(body.replace(b'"delta"', b'"text"'), random.Random(seed), chat=False)
