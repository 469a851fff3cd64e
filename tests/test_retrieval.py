"""Rerank, score, classify, pooling, /v2/embed and the new embeddings fields, against bodies
recorded from vLLM 0.32 (tests/wire/vllm032-surface), on both clients."""

from __future__ import annotations

import base64
import json
import math
import struct
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from vllm_client import (
    AsyncVllmClient,
    BadRequestError,
    Classification,
    ClassifyResponse,
    CohereEmbedResponse,
    EmbeddingResponse,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    PoolingResponse,
    PreparedRequest,
    RerankResponse,
    RerankResult,
    ResponseDecodeError,
    ScoreResponse,
    VllmClient,
)
from vllm_client._endpoints.embeddings import decode_vector

SURFACE = Path(__file__).parent / "wire" / "vllm032-surface"
URL = "http://vllm.test/v1"
CLIENTS = ["sync", "async"]


def case(name: str) -> tuple[dict[str, Any], int, bytes]:
    """(request body, status, response body) of a recorded case."""
    status = int((SURFACE / f"{name}.headers").read_text().split()[1])
    return json.loads((SURFACE / f"{name}.request.json").read_text()), status, (SURFACE / f"{name}.body").read_bytes()


def transport_for(status: int, body: bytes) -> MockTransport:
    return MockTransport(lambda r: MockResponse(status=status, body=body))


async def send(kind: str, transport: MockTransport, make: Callable[[Any], Any]) -> Any:
    """Build with ``make(client)`` on the sync or async client over ``transport`` and send it."""
    if kind == "sync":
        with VllmClient(URL, transport=transport, max_retries=0) as c:
            return make(c).send()
    async with AsyncVllmClient(URL, transport=transport, max_retries=0) as ac:
        return await make(ac).send()


def sent(t: MockTransport) -> tuple[str, Any]:
    r: PreparedRequest = t.requests[-1]
    return r.url, r.json()


# -- rerank ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name", ["embed-rerank-v1", "embed-rerank-v2", "embed-rerank-root"])
async def test_rerank_recorded(kind: str, name: str) -> None:
    req, status, body = case(name)
    t = transport_for(status, body)

    def make(c: Any) -> Any:
        b = c.rerank().create().model(req["model"]).query(req["query"]).documents(req["documents"])
        return b.top_n(req["top_n"]) if "top_n" in req else b

    r = await send(kind, t, make)
    url, got = sent(t)
    assert url == "http://vllm.test/v1/rerank" and got == req  # the builder sends what vLLM was sent
    raw = orjson.loads(body)
    assert isinstance(r, RerankResponse) and r.raw == raw and r.id == raw["id"] and r.model == "tiny-llama"
    assert r.results == [RerankResult(x["index"], x["relevance_score"], x["document"]["text"], None)
                         for x in raw["results"]]
    scores = [x.relevance_score for x in r.results]
    assert scores == sorted(scores, reverse=True)  # best first, as the server sent them
    assert r.usage is not None and r.usage.prompt_tokens == raw["usage"]["prompt_tokens"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_rerank_missing_documents(kind: str) -> None:
    """Refused before sending; and vLLM's 400 for it (recorded) is a typed BadRequestError."""
    req, status, body = case("embed-rerank-bad")
    t = transport_for(status, body)
    with pytest.raises(InvalidRequestError, match="no documents"):
        await send(kind, t, lambda c: c.rerank().create().extra(req))
    assert t.requests == []
    with pytest.raises(BadRequestError) as e:  # a server that wants what this one did not get
        await send(kind, t, lambda c: c.rerank().create().model("m").query("x").documents(["a"]))
    assert e.value.status_code == 400 and e.value.param == "body.documents" and "Field required" in e.value.message


@pytest.mark.parametrize("make", [
    lambda b: b.query("q").documents([]),
    lambda b: b.query("q").documents("just one string"),
    lambda b: b.query("q").documents(["a", 3]),
    lambda b: b.query(7),
    lambda b: b.top_n(0),
    lambda b: b.top_n(1.5),
    lambda b: b.truncation_side("middle"),
    lambda b: b.max_tokens_per_doc(-1),
    lambda b: b.query("q").documents(["a"]).extra({"x": math.nan}),
    lambda b: b.query({"content": [{"type": "text", "text": "x", "w": math.inf}]}),
])
def test_rerank_bad_input_refused_before_sending(make: Any) -> None:
    t = MockTransport(lambda r: MockResponse(status=200, body=b"{}"))
    with VllmClient(URL, transport=t) as c:
        with pytest.raises(InvalidRequestError):
            make(c.rerank().create().model("m")).send()
    assert t.requests == []


def test_rerank_needs_query_and_documents() -> None:
    with VllmClient(URL, transport=MockTransport(lambda r: MockResponse(status=200, body=b"{}"))) as c:
        with pytest.raises(InvalidRequestError, match="no query"):
            c.rerank().create().model("m").documents(["a"]).build()
        with pytest.raises(InvalidRequestError, match="no documents"):
            c.rerank().create().model("m").query("q").build()


def test_rerank_setters_on_the_wire() -> None:
    with VllmClient(URL) as c:
        img = {"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}
        body = (c.rerank().create().model("m").query("q").documents(["a", img]).top_n(1).instruction("Judge")
                .max_tokens_per_query(8).max_tokens_per_doc(64).truncate_prompt_tokens(100).truncation_side("left")
                .use_activation(False).padding("do_not_pad").chat_template_kwargs({"k": 1}).cache_salt("s")
                .priority(2).request_id("r1").user("u").mm_processor_kwargs({"fps": 1}).build())
    assert body == {"model": "m", "query": "q", "documents": ["a", img], "top_n": 1, "instruction": "Judge",
                    "max_tokens_per_query": 8, "max_tokens_per_doc": 64, "truncate_prompt_tokens": 100,
                    "truncation_side": "left", "use_activation": False, "padding": "do_not_pad",
                    "chat_template_kwargs": {"k": 1}, "cache_salt": "s", "priority": 2, "request_id": "r1",
                    "user": "u", "mm_processor_kwargs": {"fps": 1}}


def test_rerank_bad_server_body_keeps_it() -> None:
    t = transport_for(200, b'{"results": [{"index": 0}]}')
    with VllmClient(URL, transport=t) as c:
        with pytest.raises(ResponseDecodeError) as e:
            c.rerank().create().model("m").query("q").documents(["a"]).send()
    assert e.value.body == {"results": [{"index": 0}]}


# -- score ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name,make", [
    ("embed-score-v1-qd", lambda b, r: b.queries(r["queries"]).documents(r["documents"])),
    ("embed-score-text", lambda b, r: b.text_1(r["text_1"]).text_2(r["text_2"])),
    ("embed-score-pairs", lambda b, r: b.text_1(r["text_1"]).text_2(r["text_2"])),
])
async def test_score_recorded(kind: str, name: str, make: Any) -> None:
    req, status, body = case(name)
    t = transport_for(status, body)
    r = await send(kind, t, lambda c: make(c.score().create().model(req["model"]), req))
    url, got = sent(t)
    assert url == "http://vllm.test/v1/score" and got == req
    raw = orjson.loads(body)
    assert isinstance(r, ScoreResponse) and r.raw == raw
    assert r.scores == [x["score"] for x in raw["data"]] and [d.index for d in r.data] == [0, 1]
    assert r.usage is not None and r.usage.total_tokens == raw["usage"]["total_tokens"]


def test_score_one_query_against_many_is_the_same_as_rerank_scores() -> None:
    """The recorded score of (query, documents) and the rerank of the same agree."""
    _, _, score_body = case("embed-score-v1-qd")
    _, _, rerank_body = case("embed-rerank-root")
    scores = ScoreResponse.from_dict(orjson.loads(score_body)).scores
    ranked = RerankResponse.from_dict(orjson.loads(rerank_body)).results
    assert {x.index: x.relevance_score for x in ranked} == dict(enumerate(scores))


@pytest.mark.parametrize("make,match", [
    (lambda b: b.queries(["a", "b"]).documents(["c", "d", "e"]), "2 items"),
    (lambda b: b.queries("a"), "call .queries"),
    (lambda b: b.queries([]), r"give at least one"),
    (lambda b: b.queries("a").documents([None]), "expected a string"),
])
def test_score_bad_input(make: Any, match: str) -> None:
    with VllmClient(URL) as c:
        with pytest.raises(InvalidRequestError, match=match):
            make(c.score().create().model("m")).build()


def test_score_paired_and_one_to_many_bodies() -> None:
    with VllmClient(URL) as c:
        assert c.score().create().model("m").queries(["a", "b"]).documents(["c", "d"]).build() == {
            "model": "m", "queries": ["a", "b"], "documents": ["c", "d"]}
        assert c.score().create().model("m").queries("a").documents(["c", "d"]).build() == {
            "model": "m", "queries": "a", "documents": ["c", "d"]}
        assert c.score().create().model("m").queries(["a"]).items(["c", "d"]).build()["items"] == ["c", "d"]


# -- classify ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name", ["classify-single", "classify-list"])
async def test_classify_recorded(kind: str, name: str) -> None:
    req, status, body = case(name)
    t = transport_for(status, body)
    r = await send(kind, t, lambda c: c.classify().create().model(req["model"]).input(req["input"]))
    url, got = sent(t)
    assert url == "http://vllm.test/classify" and got == req  # at the server root
    raw = orjson.loads(body)
    assert isinstance(r, ClassifyResponse) and r.raw == raw
    assert r.data == [Classification(x["index"], x["label"], x["probs"], x["num_classes"]) for x in raw["data"]]
    assert all(math.isclose(sum(c.probs), 1.0, rel_tol=1e-5) for c in r.data)


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name", ["embed-classify-on-embed", "classify-v1"])
async def test_classify_not_served_is_not_found(kind: str, name: str) -> None:
    req, status, body = case(name)
    with pytest.raises(NotFoundError) as e:
        await send(kind, transport_for(status, body), lambda c: c.classify().create().model("tiny-llama").input("hello"))
    assert e.value.message == "Not Found"


def test_classify_messages_body() -> None:
    with VllmClient(URL) as c:
        body = (c.classify().create().model("m").messages([{"role": "user", "content": "hi"}])
                .add_generation_prompt(False).chat_template_kwargs({"a": 1}).build())
        assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                        "add_generation_prompt": False, "chat_template_kwargs": {"a": 1}}
        with pytest.raises(InvalidRequestError, match="not both"):
            c.classify().create().model("m").input("x").messages([{"role": "user", "content": "hi"}]).build()
        with pytest.raises(InvalidRequestError, match="no input"):
            c.classify().create().model("m").build()
        with pytest.raises(InvalidRequestError):
            c.classify().create().messages([{"content": "no role"}])


# -- pooling ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name", ["embed-pooling", "embed-pooling-task"])
async def test_pooling_recorded(kind: str, name: str) -> None:
    req, status, body = case(name)
    t = transport_for(status, body)

    def make(c: Any) -> Any:
        b = c.pooling().create().model(req["model"]).input(req["input"])
        return b.task(req["task"]) if "task" in req else b

    r = await send(kind, t, make)
    url, got = sent(t)
    assert url == "http://vllm.test/pooling" and got == req
    raw = orjson.loads(body)
    assert isinstance(r, PoolingResponse) and r.raw == raw
    assert [p.data for p in r.data] == [x["data"] for x in raw["data"]]  # as sent
    assert len(r.data) == (len(req["input"]) if isinstance(req["input"], list) else 1)


def test_pooling_base64_and_bad_task() -> None:
    vec = array("f", [0.5, -1.0, 2.0])
    answer = {"data": [{"index": 0, "object": "pooling", "data": base64.b64encode(vec.tobytes()).decode()}]}
    t = transport_for(200, orjson.dumps(answer))
    with VllmClient(URL, transport=t) as c:
        r = c.pooling().create().model("m").input("x").encoding_format("base64").send()
        assert r.data[0].data == vec
        with pytest.raises(InvalidRequestError, match="task"):
            c.pooling().create().task("summarise")
        assert c.pooling().create().model("m").data({"image": "x"}).build() == {"model": "m", "data": {"image": "x"}}


# -- /v2/embed ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_cohere_embed_recorded(kind: str) -> None:
    req, status, body = case("embed-v2-cohere-plain")
    t = transport_for(status, body)
    r = await send(kind, t, lambda c: c.cohere_embed().create().model(req["model"]).texts(req["texts"])
                   .embedding_types(req["embedding_types"]))
    url, got = sent(t)
    assert url == "http://vllm.test/v2/embed" and got == req
    assert isinstance(r, CohereEmbedResponse) and len(r.vectors) == 2 and r.vectors == r.raw["embeddings"]["float"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_cohere_embed_input_type_refused_by_server(kind: str) -> None:
    req, status, body = case("embed-v2-cohere")
    with pytest.raises(BadRequestError, match="input_type"):
        await send(kind, transport_for(status, body), lambda c: c.cohere_embed().create().model(req["model"])
                   .texts(req["texts"]).input_type(req["input_type"]).embedding_types(req["embedding_types"]))
    with VllmClient(URL) as c, pytest.raises(InvalidRequestError):
        c.cohere_embed().create().embedding_types(["float", "hex"])


# -- embeddings: messages, dtypes, base64 --------------------------------------------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_embeddings_messages_recorded(kind: str) -> None:
    req, status, body = case("embed-v1-chat-input")
    t = transport_for(status, body)
    r = await send(kind, t, lambda c: c.embeddings().create().model(req["model"]).messages(req["messages"]))
    url, got = sent(t)
    assert url == "http://vllm.test/v1/embeddings" and got == req
    assert isinstance(r, EmbeddingResponse) and r.embeddings[0] == orjson.loads(body)["data"][0]["embedding"]


def test_embeddings_new_fields_body() -> None:
    with VllmClient(URL) as c:
        body = (c.embeddings().create().model("m").input(["a"]).dimensions(64).embed_dtype("float16")
                .endianness("little").encoding_format("base64").truncate_prompt_tokens(16)
                .truncation_side("left").use_activation(True).add_special_tokens(False).build())
        assert body == {"model": "m", "input": ["a"], "dimensions": 64, "embed_dtype": "float16",
                        "endianness": "little", "encoding_format": "base64", "truncate_prompt_tokens": 16,
                        "truncation_side": "left", "use_activation": True, "add_special_tokens": False}
        convs = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
        assert c.embeddings().create().model("m").messages(convs).build()["messages"] == convs
        for bad in (lambda b: b.embed_dtype("int8"), lambda b: b.endianness("middle"),
                    lambda b: b.encoding_format("bytes"), lambda b: b.messages([]), lambda b: b.messages("hi")):
            with pytest.raises(InvalidRequestError):
                bad(c.embeddings().create())


F32 = [0.0, 1.0, -2.5, 0.333251953125, 65504.0, -1e-3]


@pytest.mark.parametrize("dtype,pack", [
    ("float32", lambda xs, e: struct.pack(f"{e}{len(xs)}f", *xs)),
    ("float16", lambda xs, e: struct.pack(f"{e}{len(xs)}e", *xs)),
    ("bfloat16", lambda xs, e: b"".join(struct.pack(f"{e}f", x)[:2] if e == ">" else struct.pack("<f", x)[2:]
                                        for x in xs)),
])
@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("kind", CLIENTS)
async def test_base64_dtypes_decode(kind: str, dtype: str, pack: Any, endian: str) -> None:
    raw = pack(F32, endian)
    want = array("f", struct.unpack(f"<{len(F32)}{'e' if dtype == 'float16' else 'f'}",
                                    struct.pack(f"<{len(F32)}{'e' if dtype == 'float16' else 'f'}", *F32)))
    answer = {"object": "list", "model": "m", "data": [{"index": 0, "object": "embedding",
                                                         "embedding": base64.b64encode(raw).decode()}]}
    t = transport_for(200, orjson.dumps(answer))
    r = await send(kind, t, lambda c: c.embeddings().create().model("m").input("x").encoding_format("base64")
                   .embed_dtype(dtype).endianness("big" if endian == ">" else "little"))
    got = r.embeddings[0]
    assert isinstance(got, array) and got.typecode == "f"
    if dtype == "bfloat16":  # 8 bits of mantissa
        assert list(got) == pytest.approx(F32, rel=1e-2, abs=1e-5)
    else:
        assert got == want


def test_fp8_tables() -> None:
    # e4m3fn: 0x38 = 1.0, 0x7E = 448 (the largest), 0x7F NaN; e5m2: 0x3C = 1.0, 0x7B = 57344
    e4 = decode_vector(base64.b64encode(bytes([0x38, 0xB8, 0x7E, 0x01])).decode(), "fp8_e4m3")
    assert list(e4) == [1.0, -1.0, 448.0, 2.0 ** -9]
    assert math.isnan(decode_vector(base64.b64encode(b"\x7f").decode(), "fp8_e4m3")[0])
    e5 = decode_vector(base64.b64encode(bytes([0x3C, 0x7B])).decode(), "fp8_e5m2")
    assert list(e5) == [1.0, 57344.0]


def test_bad_base64_is_a_decode_error() -> None:
    answer = {"data": [{"index": 0, "embedding": "AAAAAAA="}]}  # 5 bytes: not float32s
    with VllmClient(URL, transport=transport_for(200, orjson.dumps(answer))) as c:
        with pytest.raises(ResponseDecodeError, match="float32"):
            c.embeddings().create().model("m").input("x").encoding_format("base64").send()


def test_embeddings_numpy() -> None:
    np = pytest.importorskip("numpy")
    r = EmbeddingResponse.from_dict({"data": [{"index": 0, "embedding": [1.0, 2.0]},
                                              {"index": 1, "embedding": [3.0, 4.0]}]})
    m = r.numpy()
    assert m.shape == (2, 2) and m.dtype == np.float32


# -- generation fields vLLM 0.32 added, and the response fields that come back ---------------------------------

@pytest.mark.parametrize("kind", CLIENTS)
async def test_chat_return_token_ids_recorded(kind: str) -> None:
    req, status, body = case("chat-return-token-ids")
    t = transport_for(status, body)

    def make(c: Any) -> Any:
        b = c.chat.completions().create().messages(req["messages"])
        for k, val in req.items():
            if k != "messages":
                b = getattr(b, k)(val)
        return b

    r = await send(kind, t, make)
    assert sent(t)[1] == req
    raw = orjson.loads(body)
    assert r.choices[0].token_ids == raw["choices"][0]["token_ids"]
    assert r.prompt_token_ids == raw["prompt_token_ids"] and r.prompt_text is None and r.kv_transfer_params is None


@pytest.mark.parametrize("kind", CLIENTS)
async def test_thinking_budget_without_parser_is_a_400(kind: str) -> None:
    req, status, body = case("chat-thinking-budget")
    t = transport_for(status, body)
    with pytest.raises(BadRequestError):
        await send(kind, t, lambda c: c.chat.completions().create().messages(req["messages"]).model(req["model"])
                   .thinking_token_budget(req["thinking_token_budget"])
                   .extra({k: x for k, x in req.items() if k not in ("messages", "model", "thinking_token_budget")}))
    assert sent(t)[1] == req


def test_new_generation_setters_body() -> None:
    with VllmClient(URL) as c:
        common = lambda b: (b.model("m").thinking_token_budget(32).use_beam_search().length_penalty(0.8)  # noqa: E731
                            .allowed_token_ids([1, 2]).bad_words(["bad"]).logprob_token_ids([3]).return_token_ids()
                            .return_tokens_as_token_ids().session_id("s1").stream_interval(4)
                            .repetition_detection(min_pattern_size=2, max_pattern_size=8, min_count=3)
                            .watermarking().vllm_xargs({"a": 1, "b": ["x", 2.5]}).kv_transfer_params({"p": 1})
                            .ec_transfer_params({"q": 2}).cache_salt("salt").truncation_side("left")
                            .add_special_tokens(True).mm_processor_kwargs({"fps": 2}).echo())
        want = {"model": "m", "thinking_token_budget": 32, "use_beam_search": True, "length_penalty": 0.8,
                "allowed_token_ids": [1, 2], "bad_words": ["bad"], "logprob_token_ids": [3], "return_token_ids": True,
                "return_tokens_as_token_ids": True, "session_id": "s1", "stream_interval": 4,
                "repetition_detection": {"min_pattern_size": 2, "max_pattern_size": 8, "min_count": 3},
                "watermarking": True, "vllm_xargs": {"a": 1, "b": ["x", 2.5]}, "kv_transfer_params": {"p": 1},
                "ec_transfer_params": {"q": 2}, "cache_salt": "salt", "truncation_side": "left",
                "add_special_tokens": True, "mm_processor_kwargs": {"fps": 2}, "echo": True}
        chat = (common(c.chat.completions().create()).user_message("hi").documents([{"title": "t", "text": "x"}])
                .return_prompt_text().media_io_kwargs({"video": {"num_frames": 4}}).build())
        assert chat == {**want, "messages": [{"role": "user", "content": "hi"}],
                        "documents": [{"title": "t", "text": "x"}], "return_prompt_text": True,
                        "media_io_kwargs": {"video": {"num_frames": 4}}}
        comp = (common(c.completions().create()).prompt("p").response_format({"type": "json_object"})
                .build())
        assert comp == {**want, "prompt": "p", "response_format": {"type": "json_object"}}
        assert c.completions().create().model("m").prompt_embeds(b"\x00\x01").build() == {
            "model": "m", "prompt_embeds": "AAE="}


@pytest.mark.parametrize("bad", [
    lambda b: b.thinking_token_budget(-2), lambda b: b.allowed_token_ids(["a"]), lambda b: b.bad_words([1]),
    lambda b: b.stream_interval(0), lambda b: b.length_penalty(math.nan), lambda b: b.session_id(""),
    lambda b: b.vllm_xargs({"a": {"nested": 1}}), lambda b: b.vllm_xargs({"a": math.inf}),
    lambda b: b.repetition_detection(min_pattern_size=4, max_pattern_size=2), lambda b: b.cache_salt("x" * 1025),
    lambda b: b.documents([{"title": 1}]), lambda b: b.media_io_kwargs({"video": 3}),
    lambda b: b.kv_transfer_params(["x"]), lambda b: b.truncation_side("both"),
])
def test_new_generation_setters_check_input(bad: Any) -> None:
    with VllmClient(URL) as c:
        with pytest.raises(InvalidRequestError):
            bad(c.chat.completions().create())


# -- FakeVllmServer answers the pooling endpoints as vLLM does ---------------------------------------------

async def _over_fake(kind: str, server: Any, make: Callable[[Any], Any]) -> Any:
    if kind == "sync":
        import asyncio

        def run() -> Any:
            with VllmClient(server.url, max_retries=0) as c:
                return make(c).send()

        return await asyncio.to_thread(run)
    async with AsyncVllmClient(server.url, max_retries=0) as ac:
        return await make(ac).send()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_fake_server_rerank_score_pooling(kind: str) -> None:
    from vllm_client.testing import FakeVllmServer

    docs = ["Paris is the capital.", "Bananas are yellow.", "France is in Europe."]
    with FakeVllmServer() as server:
        ranked = await _over_fake(kind, server, lambda c: c.rerank().create().model(server.model)
                                  .query("capital of France").documents(docs).top_n(2))
        scores = await _over_fake(kind, server, lambda c: c.score().create().model(server.model)
                                  .queries("capital of France").documents(docs))
        assert len(ranked.results) == 2 and all(0 <= s <= 1 for s in scores.scores)
        by_score = sorted(range(3), key=lambda i: -scores.scores[i])[:2]
        assert [r.index for r in ranked.results] == by_score  # rerank order matches the scores
        assert [r.document for r in ranked.results] == [docs[i] for i in by_score]
        assert ranked.results[0].relevance_score == pytest.approx(scores.scores[by_score[0]])
        pooled = await _over_fake(kind, server, lambda c: c.pooling().create().model(server.model).input(["a", "b"]))
        emb = await _over_fake(kind, server, lambda c: c.embeddings().create().model(server.model).input(["a", "b"]))
        assert [p.data for p in pooled.data] == emb.embeddings
        chat_emb = await _over_fake(kind, server, lambda c: c.embeddings().create().model(server.model)
                                    .messages([{"role": "user", "content": "hi"}]))
        assert len(chat_emb.embeddings) == 1 and len(chat_emb.embeddings[0]) == server.embedding_dim
        v2 = await _over_fake(kind, server, lambda c: c.cohere_embed().create().model(server.model).texts(["a"])
                              .embedding_types(["base64"]))
        assert list(v2.vectors[0]) == emb.embeddings[0]
        with pytest.raises(BadRequestError, match="input_type"):
            await _over_fake(kind, server, lambda c: c.cohere_embed().create().model(server.model).texts(["a"])
                             .input_type("query"))
        with pytest.raises(NotFoundError):  # no labels: an embedding model, where /classify is not mounted
            await _over_fake(kind, server, lambda c: c.classify().create().model(server.model).input("x"))
        with pytest.raises(BadRequestError, match="pooling_task"):
            await _over_fake(kind, server, lambda c: c.pooling().create().model(server.model).input("x")
                             .task("token_embed"))
    assert [r.path for r in server.requests] == ["/v1/rerank", "/v1/score", "/pooling", "/v1/embeddings",
                                                 "/v1/embeddings", "/v2/embed", "/v2/embed", "/classify", "/pooling"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_fake_server_classify_and_errors(kind: str) -> None:
    from vllm_client.testing import FakeVllmServer

    with FakeVllmServer(labels=["negative", "positive"]) as server:
        r = await _over_fake(kind, server, lambda c: c.classify().create().model(server.model).input(["good", "bad"]))
        assert [c.index for c in r.data] == [0, 1]
        assert all(c.num_classes == 2 and c.label in ("negative", "positive") for c in r.data)
        assert all(math.isclose(sum(c.probs), 1.0) for c in r.data)
        # what the builders refuse, sent raw: vLLM's answers
        import requests

        bad = requests.post(server.url + "/rerank", json={"model": server.model, "query": "x"}, timeout=10)
        assert bad.status_code == 400 and bad.json() == json.loads(case("embed-rerank-bad")[2])
        empty = requests.post(server.url + "/rerank", json={"model": server.model, "query": "x", "documents": []}, timeout=10)
        assert empty.status_code == 400 and "At least one text_pair" in empty.json()["error"]["message"]
