"""Reranking (``POST /rerank`` under the base URL, i.e. ``/v1/rerank``; vLLM pooling
servers, Jina/Cohere-style): body, response, builders.

vLLM 0.32 serves the same handler at ``/rerank``, ``/v1/rerank`` and ``/v2/rerank``;
``/v1/rerank`` is the one under the base URL every other call uses, so it also works
through gateways and proxies that expose only ``/v1`` (and it is Jina's and most
OpenAI-compatible servers' route)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._types import Usage, _int, _str
from .base import AsyncSender, B, Sender
from .score import ScoreInput, _item, _items, _ScoreFields

__all__ = ["RerankResult", "RerankResponse", "RerankBody", "RerankBuilder", "AsyncRerankBuilder"]


@dataclass(slots=True)
class RerankResult:
    """One document's place: its ``index`` in the request, its score, its text (None for a
    multimodal document: see ``multi_modal``)."""

    index: int
    relevance_score: float
    document: str | None = None
    multi_modal: Any = None


@dataclass(slots=True)
class RerankResponse(_Meta):
    """Documents best first (the server's order), at most ``top_n`` of them."""

    raw: dict[str, Any] = field(repr=False)
    results: list[RerankResult]
    model: str | None
    usage: Usage | None
    id: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RerankResponse:
        """Parse a rerank body."""
        results = d.get("results")
        if not isinstance(results, list):
            raise ResponseDecodeError("rerank: 'results' should be a list", body=d)
        out = []
        for i, r in enumerate(results):
            score = r.get("relevance_score") if isinstance(r, dict) else None
            index = _int(r.get("index")) if isinstance(r, dict) else None
            if index is None or isinstance(score, bool) or not isinstance(score, (int, float)):
                raise ResponseDecodeError(f"rerank: results[{i}] needs an 'index' and a numeric 'relevance_score'",
                                          body=d)
            doc = r.get("document")
            text, mm = (doc.get("text"), doc.get("multi_modal")) if isinstance(doc, dict) else (doc, None)
            out.append(RerankResult(index, float(score), text if isinstance(text, str) else None, mm))
        return cls(raw=d, results=out, model=_str(d.get("model")), usage=Usage.from_dict(d.get("usage")),
                   id=_str(d.get("id")))


class RerankBody(_ScoreFields):
    """Setters of a rerank request."""

    _path = "/rerank"
    _what = "rerank"
    _parse = RerankResponse.from_dict

    def query(self: B, query: ScoreInput) -> B:
        """The query: a text or a multimodal item ``{"content": [parts]}``."""
        return self._set("query", _item("query", query))

    def documents(self: B, documents: list[ScoreInput]) -> B:
        """The documents to rank: texts or multimodal items ``{"content": [parts]}`` (at least one)."""
        return self._set("documents", _items("documents", documents, single_ok=False))

    def top_n(self: B, n: int) -> B:
        """Return only the n best documents (>= 1; all when not set)."""
        return self._set("top_n", v.integer("top_n", n, lo=1))

    def _check(self, body: dict[str, Any]) -> None:
        if "query" not in body:
            raise InvalidRequestError("rerank: no query: call .query('...') first")
        if not body.get("documents"):
            raise InvalidRequestError("rerank: no documents: call .documents([...]) first")


class RerankBuilder(RerankBody, Sender[RerankResponse]):
    """Builds one rerank request."""


class AsyncRerankBuilder(RerankBody, AsyncSender[RerankResponse]):
    """Builds one rerank request (async)."""
