"""Nothing a server sends is dropped: a stream's final response keeps every key of every chunk,
choice and delta that the accumulator does not model (the latest non-null value wins), as a
non-streamed answer holds them. And one ``PartialParsed`` per network read, a snapshot."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from vllm_client import (
    ChatCompletionResponse,
    CompletionResponse,
    ContentDelta,
    MockResponse,
    MockTransport,
    PartialParsed,
)
from vllm_client._stream import StreamAccumulator

from ._both import CLIENTS, Model, call, close, drain, make

URL = "http://test/v1"


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A vLLM 0.33 chunk: ``kv_transfer_params`` null on every one (its value on the last)."""
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, "token_ids": None}],
            "kv_transfer_params": None, **extra}


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def vllm033_stream() -> list[dict[str, Any]]:
    first = chunk("")
    first["choices"][0]["delta"]["role"] = "assistant"
    last = chunk(None, "stop", kv_transfer_params={"remote_block_ids": [1, 2]})
    last["choices"][0]["weight_versions"] = [{"version": "w1", "start": 0, "end": 4}]  # only on a choice's final chunk
    middle = [chunk(w) for w in ("Paris ", "is ", "the ", "capital")]
    middle[1]["choices"][0]["delta"]["annotations"] = [{"type": "note"}]  # a delta key nobody models
    middle[2]["choices"][0]["delta"]["annotations"] = None
    return [first, *middle, last]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_unknown_top_level_choice_and_delta_keys_reach_the_final_response(kind: str) -> None:
    data = sse(vllm033_stream())
    client = make(kind, URL, transport=MockTransport(Model(MockResponse(body=[data]))))
    events = await drain(kind, await call(kind, client.chat.completions().create().model("m").user_message("x"),
                                          "send_stream"))
    await close(kind, client)
    r = events[-1].response
    assert r.content == "Paris is the capital" and r.finish_reason == "stop"
    assert r.raw["kv_transfer_params"] == {"remote_block_ids": [1, 2]} == r.kv_transfer_params  # null, then a value
    choice = r.raw["choices"][0]
    assert choice["weight_versions"] == [{"version": "w1", "start": 0, "end": 4}]
    assert choice["message"]["annotations"] == [{"type": "note"}]  # the latest non-null value


@pytest.mark.parametrize("split", ["one read", "each byte", "each event"])
def test_the_accumulated_body_is_the_same_however_the_bytes_arrive(split: str) -> None:
    data = sse(vllm033_stream())
    if split == "one read":
        pieces = [data]
    elif split == "each byte":
        pieces = [data[i:i + 1] for i in range(len(data))]
    else:
        pieces = [p + b"\n\n" for p in data.split(b"\n\n") if p]
    acc: StreamAccumulator[Any] = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    texts = [e.text for p in pieces for e in acc.feed(p) if isinstance(e, ContentDelta)]
    acc.finish()
    raw = acc.raw()
    assert "".join(texts) == "Paris is the capital"
    assert raw["kv_transfer_params"] == {"remote_block_ids": [1, 2]}
    assert raw["choices"][0]["weight_versions"] == [{"version": "w1", "start": 0, "end": 4}]
    assert raw["choices"][0]["message"]["annotations"] == [{"type": "note"}]


def test_a_key_only_ever_null_is_kept_as_null_and_a_later_value_wins() -> None:
    chunks = [chunk("a", extra_top=None), chunk("b", extra_top=1), chunk("c", extra_top=2), chunk(None, "stop")]
    chunks[0]["choices"][0]["seen"] = None
    acc: StreamAccumulator[Any] = StreamAccumulator(parse=ChatCompletionResponse.from_dict)
    acc.feed(sse(chunks))
    acc.finish()
    raw = acc.raw()
    assert raw["extra_top"] == 2 and raw["kv_transfer_params"] is None
    assert "seen" in raw["choices"][0] and raw["choices"][0]["seen"] is None


def test_legacy_completions_keep_per_choice_keys() -> None:
    chunks = [{"id": "c", "object": "text_completion", "choices": [
        {"index": 0, "text": "a", "finish_reason": None, "prompt_token_ids": [1, 2]}]},
        {"id": "c", "choices": [{"index": 0, "text": "b", "finish_reason": "length", "weight_versions": [3]}]}]
    acc: StreamAccumulator[Any] = StreamAccumulator(chat=False, parse=CompletionResponse.from_dict)
    acc.feed(sse(chunks))
    (*_, done) = acc.finish()
    choice = done.response.raw["choices"][0]
    assert (choice["text"], choice["prompt_token_ids"], choice["weight_versions"]) == ("ab", [1, 2], [3])


# -- PartialParsed: at most one per read, each a snapshot -----------------------------------


@dataclasses.dataclass
class Order:
    id: int
    items: list[str]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_one_partial_per_read_with_the_value_of_that_moment(kind: str) -> None:
    pieces = ['{"id": 7', ', "items": ["pen"', ', "ink"', "]}"]

    def read(*texts: str) -> bytes:
        return b"".join(b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}) + b"\n\n"
                        for t in texts)

    body = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
            read(pieces[0], pieces[1]),  # two deltas in one read: one partial
            read(pieces[2]),
            read(pieces[3]) + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n']
    client = make(kind, URL, transport=MockTransport(Model(MockResponse(body=body))))
    b = client.chat.completions().create().model("m").user_message("x").response_format(Order)
    events = await drain(kind, await call(kind, b, "send_stream"))
    await close(kind, client)
    partials = [e.value for e in events if isinstance(e, PartialParsed)]
    # no deepcopy here: each value must be as it was when its event came (the closing read adds nothing)
    assert partials == [{"id": 7, "items": ["pen"]}, {"id": 7, "items": ["pen", "ink"]}]
    kinds = [type(e).__name__ for e in events]
    assert kinds[:4] == ["ContentDelta", "ContentDelta", "PartialParsed", "ContentDelta"]
    assert events[-1].response.parsed == Order(7, ["pen", "ink"])


@pytest.mark.parametrize("kind", CLIENTS)
async def test_streamed_and_non_streamed_answers_of_the_fake_033_server_agree(kind: str) -> None:
    from vllm_client.testing import FakeVllmServer

    with FakeVllmServer() as server:
        client = make(kind, server.url, max_retries=0)

        def b() -> Any:
            return (client.chat.completions().create().model(server.model).user_message("hello there")
                    .max_tokens(5).return_weight_versions(True).kv_transfer_params({"do_remote_decode": True}))
        plain = await call(kind, b(), "send")
        events = await drain(kind, await call(kind, b(), "send_stream"))
        await close(kind, client)
    streamed = events[-1].response
    assert streamed.content == plain.content
    assert streamed.choices[0].weight_versions == plain.choices[0].weight_versions is not None
    assert streamed.raw["choices"][0]["weight_versions"] == plain.raw["choices"][0]["weight_versions"]
    assert streamed.kv_transfer_params == plain.kv_transfer_params is not None
