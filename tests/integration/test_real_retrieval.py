"""Rerank, score, classify, pooling, /v2/embed and the new embeddings fields against real vLLM
pooling servers (the tiny model converted with ``--convert embed`` and ``--convert classify``)."""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

import pytest

from vllm_client import AsyncVllmClient, BadRequestError, NotFoundError, VllmClient
from vllm_client._endpoints.embeddings import decode_vector

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration

DOCS = ["Paris is the capital.", "Bananas are yellow.", "France is in Europe."]
Q = "capital of France"


@pytest.fixture
def eclient(embed_server: Target) -> Any:
    with VllmClient(embed_server.base_url, max_retries=0, timeout=120) as c:
        yield c


def test_rerank_order_matches_scores(eclient: Any) -> None:
    ranked = eclient.rerank().create().query(Q).documents(DOCS).send()
    scores = eclient.score().create().queries(Q).documents(DOCS).send().scores
    assert len(scores) == 3 and sorted(r.index for r in ranked.results) == [0, 1, 2]
    assert [r.relevance_score for r in ranked.results] == sorted(scores, reverse=True)
    for r in ranked.results:
        assert r.relevance_score == pytest.approx(scores[r.index], abs=1e-6) and r.document == DOCS[r.index]
    top = eclient.rerank().create().query(Q).documents(DOCS).top_n(1).send()
    assert [r.index for r in top.results] == [ranked.results[0].index]
    assert top.usage is not None and top.usage.prompt_tokens > 0


def test_score_pairs_and_spellings(eclient: Any) -> None:
    pairs = eclient.score().create().queries(["a", "b"]).documents(["c", "d"]).send()
    old = eclient.score().create().text_1(["a", "b"]).text_2(["c", "d"]).send()
    assert pairs.scores == pytest.approx(old.scores) and len(pairs.scores) == 2
    one = eclient.score().create().queries("a").documents(["c"]).send()
    assert one.scores[0] == pytest.approx(pairs.scores[0])


def test_pooling_shapes_and_embeddings(eclient: Any, embed_server: Target) -> None:
    pooled = eclient.pooling().create().input(["hello", "world"]).send()
    emb = eclient.embeddings().create().input(["hello", "world"]).send()
    assert [len(p.data) for p in pooled.data] == [len(v) for v in emb.embeddings]
    if embed_server.scripted:
        assert len(emb.embeddings[0]) == 128
    with pytest.raises(BadRequestError, match="pooling_task"):
        eclient.pooling().create().input("x").task("token_embed").send()


def test_embeddings_messages_dtypes_truncation(eclient: Any) -> None:
    chat = eclient.embeddings().create().messages([{"role": "user", "content": "hello"}]).send()
    assert len(chat.embeddings) == 1 and len(chat.embeddings[0]) > 0
    f32 = eclient.embeddings().create().input(["hello"]).send().embeddings[0]
    for dtype, tol in (("float32", 1e-7), ("float16", 2e-3), ("bfloat16", 1e-2)):
        got = eclient.embeddings().create().input(["hello"]).encoding_format("base64").embed_dtype(dtype).send()
        vec = got.embeddings[0]
        assert isinstance(vec, array) and list(vec) == pytest.approx(f32, abs=tol), dtype
    big = (eclient.embeddings().create().input(["hello"]).encoding_format("base64").endianness("big").send())
    assert list(big.embeddings[0]) == pytest.approx(f32, abs=1e-7)
    left = eclient.embeddings().create().input(["hello world again"]).truncate_prompt_tokens(2) \
        .truncation_side("left").send()
    assert left.usage is not None and left.usage.prompt_tokens == 2


def test_cohere_v2_embed(eclient: Any) -> None:
    r = eclient.cohere_embed().create().texts(["hello", "world"]).embedding_types(["float", "base64"]).send()
    assert len(r.vectors) == 2
    decoded = [list(decode_vector(b)) for b in r.embeddings["base64"]]
    assert all(d == pytest.approx(f, abs=1e-6) for d, f in zip(decoded, r.vectors, strict=True))
    with pytest.raises(BadRequestError, match="input_type"):
        eclient.cohere_embed().create().texts(["a"]).input_type("search_document").send()


def test_classify_not_on_an_embedding_model(eclient: Any) -> None:
    with pytest.raises(NotFoundError):
        eclient.classify().create().input("hello").send()


async def test_async_rerank_and_score(embed_server: Target) -> None:
    async with AsyncVllmClient(embed_server.base_url, max_retries=0, timeout=120) as c:
        ranked = await c.rerank().create().query(Q).documents(DOCS).top_n(2).send()
        scores = await c.score().create().queries(Q).documents(DOCS).send()
    assert [r.relevance_score for r in ranked.results] == sorted(scores.scores, reverse=True)[:2]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_classify_probs_sum_to_one(kind: str, classify_server: Target) -> None:
    if kind == "sync":
        with VllmClient(classify_server.base_url, max_retries=0, timeout=120) as c:
            r = c.classify().create().input(["hello", "bad day"]).send()
            chat = c.classify().create().messages([{"role": "user", "content": "hi"}]).send()
    else:
        async with AsyncVllmClient(classify_server.base_url, max_retries=0, timeout=120) as ac:
            r = await ac.classify().create().input(["hello", "bad day"]).send()
            chat = await ac.classify().create().messages([{"role": "user", "content": "hi"}]).send()
    assert [c.index for c in r.data] == [0, 1] and len(chat.data) == 1
    for c in [*r.data, *chat.data]:
        assert math.isclose(sum(c.probs), 1.0, rel_tol=1e-4) and c.num_classes == len(c.probs)
        assert c.label is not None
