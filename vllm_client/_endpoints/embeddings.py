"""Embeddings (``POST /embeddings``): body, response, builders."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._types import Usage, _int, _str
from .base import AsyncSender, B, Sender, _Builder

__all__ = ["EmbeddingResponse", "EmbeddingBody", "EmbeddingBuilder", "AsyncEmbeddingBuilder"]


def _decode_embedding(v: Any) -> list[float]:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        import struct

        raw = base64.b64decode(v)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
    raise ResponseDecodeError(f"embedding: expected a list of floats or base64 text, got {type(v).__name__}", body=v)


@dataclass(slots=True)
class EmbeddingResponse:
    """Embeddings in input order; base64 answers are decoded (little-endian float32)."""

    raw: dict[str, Any] = field(repr=False)
    embeddings: list[list[float]]
    model: str | None
    usage: Usage | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingResponse:
        """Parse an embeddings ``list`` object."""
        data = d.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("embeddings: 'data' should be a list", body=d)
        items = sorted((x for x in data if isinstance(x, dict)), key=lambda x: _int(x.get("index")) or 0)
        return cls(
            raw=d,
            embeddings=[_decode_embedding(x.get("embedding")) for x in items],
            model=_str(d.get("model")),
            usage=Usage.from_dict(d.get("usage")),
        )


class EmbeddingBody(_Builder):
    """Setters of an embeddings request."""

    _path = "/embeddings"
    _what = "embeddings"
    _parse = EmbeddingResponse.from_dict

    def model(self: B, model: str) -> B:
        """The embedding model's name."""
        return self._set("model", v.string("model", model))

    def input(self: B, value: str | list[str] | list[int] | list[list[int]]) -> B:
        """Text, texts, token ids, or lists of token ids."""
        if isinstance(value, str) or (
            isinstance(value, list) and value and (
                all(isinstance(x, str) for x in value)
                or all(isinstance(x, int) and not isinstance(x, bool) for x in value)
                or all(isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
                       for x in value))):
            return self._set("input", value)
        raise InvalidRequestError(
            f"input({value!r:.80}): expected a string, a list of strings, token ids or lists of token ids")

    def dimensions(self: B, value: int) -> B:
        """Truncate embeddings to this many dimensions (Matryoshka models)."""
        return self._set("dimensions", v.integer("dimensions", value, lo=1))

    def encoding_format(self: B, fmt: str) -> B:
        """"float" or "base64" (decoded for you either way)."""
        if fmt not in ("float", "base64"):
            raise InvalidRequestError(f"encoding_format({fmt!r}): expected 'float' or 'base64'")
        return self._set("encoding_format", fmt)

    def user(self: B, user: str) -> B:
        """An end-user id."""
        return self._set("user", v.string("user", user))

    def truncate_prompt_tokens(self: B, value: int) -> B:
        """Keep only the last k input tokens (vLLM)."""
        return self._set("truncate_prompt_tokens", v.integer("truncate_prompt_tokens", value, lo=-1))

    def _check(self, body: dict[str, Any]) -> None:
        if "input" not in body:
            raise InvalidRequestError("no input: call .input('...') first")


class EmbeddingBuilder(EmbeddingBody, Sender[EmbeddingResponse]):
    """Builds one embeddings request."""


class AsyncEmbeddingBuilder(EmbeddingBody, AsyncSender[EmbeddingResponse]):
    """Builds one embeddings request (async)."""
