"""FakeVllmServer's pooling endpoints (rerank, score, classify, pooling, /v2/embed), shaped as
vLLM 0.32 answers them (tests/wire/vllm032-surface). Pure: a request body in, (status, JSON
bytes) out. Scores are dot products of the fake's deterministic unit embeddings."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from typing import Any

import orjson

from . import _wire as w

__all__ = ["Pooled"]

Answer = tuple[int, bytes]


def _usage(tokens: int, full: bool = True) -> dict[str, Any]:
    u: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if full:
        u.update(completion_tokens=0, prompt_tokens_details=None, completion_tokens_details=None)
    return u


def _text(item: Any) -> str:
    """The text of a score/rerank item (a string, or {"content": [parts]})."""
    if isinstance(item, dict):
        return w.content_text(item.get("content"))
    return item if isinstance(item, str) else orjson.dumps(item).decode()


def _missing(field: str, body: dict[str, Any]) -> Answer:
    return 400, w.validation_error("missing", f"body.{field}", "Field required", f"'<dict of {len(body)} items>'")


class Pooled:
    """The answers of a fake pooling server (``dim``-dimensional embeddings; ``labels`` for classify)."""

    def __init__(self, tokenizer: w.Tokenizer, dim: int, labels: Sequence[str] | None) -> None:
        self.tok = tokenizer
        self.dim = dim
        self.labels = list(labels) if labels else None

    def _tokens(self, text: str) -> int:
        return len(self.tok.encode(text))

    def _score(self, a: str, b: str) -> float:
        va, vb = w.embedding(a, self.dim), w.embedding(b, self.dim)
        return 0.5 + 0.5 * sum(x * y for x, y in zip(va, vb, strict=True))  # in [0, 1], like a sigmoid'd cross-encoder

    def inputs(self, body: dict[str, Any]) -> list[str] | None:
        """The texts of an input/messages body (messages through the fake chat template)."""
        msgs = body.get("messages")
        if isinstance(msgs, list) and msgs:
            convs = msgs if all(isinstance(c, list) for c in msgs) else [msgs]
            return [w.render_chat(c, add_generation_prompt=bool(body.get("add_generation_prompt"))) for c in convs]
        value = body.get("input")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value:
            if all(isinstance(x, str) for x in value):
                return list(value)
            if all(isinstance(x, int) for x in value):
                return [self.tok.decode(value, lenient=True)]
            if all(isinstance(x, list) for x in value):
                return [self.tok.decode(x, lenient=True) for x in value]
        return None

    def rerank(self, model: str, body: dict[str, Any]) -> Answer:
        """``/rerank``, ``/v1/rerank``, ``/v2/rerank``."""
        for f in ("query", "documents"):
            if f not in body:
                return _missing(f, body)
        docs = body["documents"] if isinstance(body["documents"], list) else [body["documents"]]
        if not docs:
            return 400, w.error_body(400, "At least one text_pair element must be given", "BadRequestError")
        query = _text(body["query"])
        scored = [(self._score(query, _text(d)), i, d) for i, d in enumerate(docs)]
        scored.sort(key=lambda s: -s[0])
        top_n = body.get("top_n") or 0
        if isinstance(top_n, int) and top_n > 0:
            scored = scored[:top_n]
        tokens = sum(self._tokens(query) + self._tokens(_text(d)) for d in docs)
        results = [{"index": i, "document": {"text": d if isinstance(d, str) else None,
                                              "multi_modal": None if isinstance(d, str) else d},
                    "relevance_score": s} for s, i, d in scored]
        return 200, orjson.dumps({"id": f"score-{secrets.token_hex(8)}", "model": model,
                                  "usage": _usage(tokens, full=False), "results": results})

    def score(self, model: str, body: dict[str, Any]) -> Answer:
        """``/score``, ``/v1/score``: queries/documents (or items, text_1/text_2, data_1/data_2)."""
        for first, second in (("queries", "documents"), ("queries", "items"), ("text_1", "text_2"),
                              ("data_1", "data_2")):
            if first in body and second in body:
                break
        else:
            return _missing("queries" if "queries" not in body else "documents", body)
        a = body[first] if isinstance(body[first], list) else [body[first]]
        b = body[second] if isinstance(body[second], list) else [body[second]]
        if len(a) == 1:
            a = a * len(b)
        if len(a) != len(b) or not b:
            return 400, w.error_body(400, f"Input lengths must be either 1:1, 1:N or N:N, got {len(a)}:{len(b)}",
                                     "BadRequestError")
        data = [{"index": i, "object": "score", "score": self._score(_text(x), _text(y))}
                for i, (x, y) in enumerate(zip(a, b, strict=True))]
        tokens = sum(self._tokens(_text(x)) + self._tokens(_text(y)) for x, y in zip(a, b, strict=True))
        return 200, orjson.dumps({"id": f"score-{secrets.token_hex(8)}", "object": "list",
                                  "created": int(time.time()), "model": model, "data": data,
                                  "usage": _usage(tokens)})

    def classify(self, model: str, body: dict[str, Any]) -> Answer | None:
        """``/classify``; None (404) unless the server was given labels (as on an embedding model)."""
        if self.labels is None:
            return None
        texts = self.inputs(body)
        if texts is None:
            return _missing("input", body)
        data = []
        for i, t in enumerate(texts):
            logits = w.embedding(t, max(len(self.labels), 2))[:len(self.labels)]
            exps = [math.exp(4 * x) for x in logits]
            probs = [e / sum(exps) for e in exps]
            best = max(range(len(probs)), key=probs.__getitem__)
            data.append({"index": i, "label": self.labels[best], "probs": probs, "num_classes": len(probs)})
        tokens = sum(self._tokens(t) for t in texts)
        return 200, orjson.dumps({"id": f"classify-{secrets.token_hex(8)}", "object": "list",
                                  "created": int(time.time()), "model": model, "data": data, "usage": _usage(tokens)})

    def pooling(self, model: str, body: dict[str, Any]) -> Answer:
        """``/pooling``: the embedding as the pooler output (task embed, the default)."""
        task = body.get("task")
        if task not in (None, "embed"):
            return 400, w.bad_param(f"Try switching the model's pooling_task via --pooler-config.task {task}.",
                                    "task", with_value=False)
        texts = self.inputs(body)
        if texts is None:
            return _missing("input", body)
        data = [{"index": i, "object": "pooling", "data": w.embedding(t, self.dim)} for i, t in enumerate(texts)]
        tokens = sum(self._tokens(t) for t in texts)
        return 200, orjson.dumps({"id": f"pooling-{secrets.token_hex(8)}", "object": "list",
                                  "created": int(time.time()), "model": model, "data": data, "usage": _usage(tokens)})

    def cohere_embed(self, model: str, body: dict[str, Any]) -> Answer:
        """``/v2/embed`` (texts; "float" and "base64" types; no input_type instructions, as on vLLM's tiny model)."""
        if body.get("input_type") is not None:
            return 400, w.error_body(400, f"Unsupported input_type {body['input_type']!r}. This model does not "
                                          "define any input_type task instructions.", "BadRequestError")
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts:
            return 400, w.error_body(400, "texts, images or inputs must be given", "BadRequestError")
        vecs = [w.embedding(t, self.dim) for t in texts]
        out: dict[str, Any] = {}
        for kind in body.get("embedding_types") or ["float"]:
            if kind == "float":
                out["float"] = vecs
            elif kind == "base64":
                out["base64"] = [orjson.loads(w.embeddings_json(model, [v], 0, True))["data"][0]["embedding"]
                                 for v in vecs]
        tokens = sum(self._tokens(t) for t in texts)
        meta = {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens, "image_tokens": 0}}
        return 200, orjson.dumps({"id": f"embd-{secrets.token_hex(8)}", "embeddings": out, "texts": texts,
                                  "meta": meta, "response_type": "embeddings_by_type"})
