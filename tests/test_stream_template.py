"""The stream's template fast path: a chunk whose bytes are the last plain text chunk's
around another text skips ``orjson.loads``. It must give exactly what parsing gives, for
any text, any encoding a server uses, and fall back (or fail the same way) otherwise."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_client import ContentDelta, MockResponse, MockTransport, StreamError
from vllm_client import ChatCompletionResponse
from vllm_client._stream import StreamAccumulator

from ._both import CLIENTS, close, drain, make

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(text: str, *, dumps: Any = orjson.dumps, **extra: Any) -> bytes:
    obj = {**HEAD, **extra, "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None,
                                         "finish_reason": None, "token_ids": None}]}
    raw = dumps(obj)
    return b"data: " + (raw if isinstance(raw, bytes) else raw.encode()) + b"\n\n"


ROLE = b"data: " + orjson.dumps({**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "finish_reason": None}]}) + b"\n\n"
END = (b"data: " + orjson.dumps({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
       + b"\n\ndata: [DONE]\n\n")


def run(pieces: list[bytes]) -> tuple[list[str], Any]:
    acc = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    texts = []
    for p in pieces:
        texts += [e.text for e in acc.feed(p) if isinstance(e, ContentDelta)]
    acc.finish()
    return texts, acc.response()


ENCODERS = {
    "orjson (vLLM, raw UTF-8)": orjson.dumps,
    "json ensure_ascii (\\u escapes)": lambda o: json.dumps(o, separators=(",", ":")),
    "json with spaces": json.dumps,
}


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.text(max_size=12), min_size=1, max_size=25), enc=st.sampled_from(sorted(ENCODERS)))
def test_any_text_in_any_encoding_streams_exactly(texts: list[str], enc: str) -> None:
    dumps = ENCODERS[enc]
    got, resp = run([ROLE, *(chunk(t, dumps=dumps) for t in texts), END])
    assert got == [t for t in texts if t]
    assert resp.content == "".join(texts)
    assert resp.finish_reason == "stop" and resp.usage.completion_tokens == 2


def test_texts_with_quotes_backslashes_newlines_and_controls_between_plain_ones() -> None:
    texts = ["Hello", ' "quoted"', " back\\slash", "\n", " tab\there", "\u2028", " é", "🙂", "", " end"]
    got, resp = run([ROLE, *(chunk(t) for t in texts), END])
    assert got == [t for t in texts if t]
    assert resp.content == "".join(texts)


def test_a_field_that_changes_every_chunk_still_streams_exactly() -> None:
    # OpenAI sends a per-chunk "obfuscation" field: the bytes around the text never repeat.
    texts = [f"t{i} " for i in range(30)]
    got, resp = run([ROLE, *(chunk(t, obfuscation="x" * (i % 7)) for i, t in enumerate(texts)), END])
    assert got == texts and resp.content == "".join(texts)


def test_other_chunks_between_plain_ones_are_not_mistaken_for_them() -> None:
    reasoning = (b"data: " + orjson.dumps({**HEAD, "choices": [{"index": 0, "delta": {"reasoning": "think"},
                                                               "finish_reason": None}]}) + b"\n\n")
    other_choice = chunk("B").replace(b'"index":0', b'"index":1')
    acc = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    events = [e for p in [ROLE, chunk("a"), chunk("b"), reasoning, chunk("c"), other_choice, chunk("d"), END]
              for e in acc.feed(p)]
    events += acc.finish()
    deltas = [(type(e).__name__, e.text, e.index) for e in events if hasattr(e, "text")]
    assert deltas == [("ContentDelta", "a", 0), ("ContentDelta", "b", 0), ("ReasoningDelta", "think", 0),
                      ("ContentDelta", "c", 0), ("ContentDelta", "B", 1), ("ContentDelta", "d", 0)]
    resp = acc.response()
    assert [c["message"]["content"] for c in resp.raw["choices"]] == ["abcd", "B"]


@pytest.mark.parametrize("bad", [b"caf\xc3", b"\x01ctl"], ids=["invalid UTF-8", "raw control character"])
def test_bad_bytes_in_the_text_are_the_same_error_as_without_the_fast_path(bad: bytes) -> None:
    good = chunk("ok")
    broken = good.replace(b'"ok"', b'"' + bad + b'"')
    acc = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    acc.feed(ROLE)
    acc.feed(good)
    acc.feed(good)  # the template is learned and used
    with pytest.raises(StreamError, match="not JSON") as info:
        acc.feed(broken)
    assert info.value.partial.content == "okok"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_both_clients_stream_tricky_texts_exactly(kind: str) -> None:
    texts = ["Hi", " there", ' "q"', "\n", " \\", " ünï", "", " 🙂", " done"]
    body = ROLE + b"".join(chunk(t) for t in texts) + END
    transport = MockTransport(lambda req: MockResponse(200, body=body, headers={"content-type": "text/event-stream"}))
    client = make(kind, "http://x/v1", transport=transport)
    try:
        stream = client.chat.completions().create().model("m").messages([{"role": "user", "content": "x"}])
        it = stream.send_stream()
        events = await drain(kind, await it if kind == "async" else it)
    finally:
        await close(kind, client)
    assert [e.text for e in events if isinstance(e, ContentDelta)] == [t for t in texts if t]
    assert events[-1].response.content == "".join(texts)


def reasoning_chunk(text: str, key: str = "reasoning") -> bytes:
    return b"data: " + orjson.dumps({**HEAD, "choices": [{"index": 0, "delta": {key: text}, "logprobs": None,
                                                         "finish_reason": None, "token_ids": None}]}) + b"\n\n"


@settings(max_examples=100, deadline=None)
@given(thoughts=st.lists(st.text(max_size=10), min_size=1, max_size=15),
       texts=st.lists(st.text(max_size=10), min_size=1, max_size=15),
       key=st.sampled_from(["reasoning", "reasoning_content"]))
def test_reasoning_then_content_streams_exactly(thoughts: list[str], texts: list[str], key: str) -> None:
    acc = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    events = [e for p in [ROLE, *(reasoning_chunk(t, key) for t in thoughts), *(chunk(t) for t in texts), END]
              for e in acc.feed(p)]
    events += acc.finish()
    assert [e.text for e in events if e.__class__.__name__ == "ReasoningDelta"] == [t for t in thoughts if t]
    assert [e.text for e in events if isinstance(e, ContentDelta)] == [t for t in texts if t]
    resp = acc.response()
    want = "".join(thoughts)
    assert resp.reasoning_content == (want or None)
    assert resp.content == "".join(texts)
    if want:
        assert resp.raw["choices"][0]["message"][key] == want  # the server's own key kept


def test_reasoning_and_content_taking_turns_keep_their_order() -> None:
    parts = [("r", "Let"), ("r", " me"), ("c", "A"), ("r", " think"), ("c", "B"), ("c", "C"), ("r", "!"),
             ("c", "D"), ("c", "E"), ("c", "F")]
    acc = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    events = [e for p in [ROLE, *(reasoning_chunk(t) if k == "r" else chunk(t) for k, t in parts), END]
              for e in acc.feed(p)]
    got = [("r" if e.__class__.__name__ == "ReasoningDelta" else "c", e.text) for e in events
           if hasattr(e, "text")]
    assert got == parts
    assert acc.response().reasoning_content == "Let me think!"
