"""Embeddings against a real vLLM pooling server (``--runner pooling --convert embed``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest

from vllm_client import AsyncVllmClient, BadRequestError, NotFoundError, VllmClient

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration


@pytest.fixture
def eclient(embed_server: Target) -> Any:
    with VllmClient(embed_server.base_url, max_retries=0, timeout=120) as c:
        yield c


def test_embeddings(eclient: Any, embed_server: Target) -> None:
    r = eclient.embeddings().create().input("The weather in Paris").send()  # model resolved from /models
    assert r.model == embed_server.model and len(r.embeddings) == 1
    vec = r.embeddings[0]
    assert all(isinstance(x, float) for x in vec)
    assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, rel_tol=1e-4)  # L2-normalised
    assert r.usage.prompt_tokens >= 1 and r.usage.completion_tokens == 0
    if embed_server.scripted:
        assert len(vec) == 128
    two = eclient.embeddings().create().input(["The weather in Paris", "Rome"]).send()
    assert len(two.embeddings) == 2 and two.embeddings[0] == pytest.approx(vec, abs=1e-5)
    b64 = eclient.embeddings().create().input(["The weather in Paris", "Rome"]).encoding_format("base64").send()
    assert isinstance(b64.raw["data"][0]["embedding"], str)  # decoded by the SDK (little-endian float32)
    assert b64.embeddings[1] == pytest.approx(two.embeddings[1], abs=1e-6)
    ids = eclient.embeddings().create().input([290, 487, 288, 821]).send()
    lists = eclient.embeddings().create().input([[290, 487], [288, 821]]).send()
    assert len(ids.embeddings) == 1 and len(lists.embeddings) == 2


async def test_async_embeddings(embed_server: Target) -> None:
    async with AsyncVllmClient(embed_server.base_url, max_retries=0) as c:
        r = await c.embeddings().create().model(embed_server.model).input(["a", "b", "c"]).send()
        assert len(r.embeddings) == 3 and len({len(v) for v in r.embeddings}) == 1


def test_embedding_errors(eclient: Any, embed_server: Target) -> None:
    with pytest.raises(BadRequestError, match="Matryoshka"):
        eclient.embeddings().create().input("x").dimensions(8).send()
    with pytest.raises(NotFoundError, match="does not exist") as e:
        eclient.embeddings().create().model("nope").input("x").send()
    assert e.value.param is None  # unlike chat's 404 (param "model", list of valid aliases)
    # a pooling server does not mount the chat route: FastAPI's {"detail": "Not Found"}
    with pytest.raises(NotFoundError) as e:
        eclient.chat.completions().create().model(embed_server.model).user_message("hi").send()
    assert e.value.message == "Not Found"
