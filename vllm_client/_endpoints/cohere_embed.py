"""Cohere-style embeddings (``POST /v2/embed`` at the server root; vLLM pooling servers):
body, response, builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._types import _str
from .base import AsyncSender, B, Sender, _Builder
from .common import _choice, _CommonFields
from .embeddings import Vector, decode_vector

__all__ = ["CohereEmbedResponse", "CohereEmbedBody", "CohereEmbedBuilder", "AsyncCohereEmbedBuilder"]

_TYPES = ("float", "binary", "ubinary", "base64")


@dataclass(slots=True)
class CohereEmbedResponse(_Meta):
    """``embeddings`` maps each requested type ("float", "base64", "binary", "ubinary") to one
    vector per input, as sent; ``vectors`` are the float vectors (base64 ones decoded)."""

    raw: dict[str, Any] = field(repr=False)
    embeddings: dict[str, list[Any]]
    id: str | None = None

    @property
    def vectors(self) -> list[Vector]:
        """One float vector per input: the "float" answers, else the decoded "base64" ones."""
        if "float" in self.embeddings:
            return self.embeddings["float"]
        if "base64" in self.embeddings:
            return [decode_vector(x) for x in self.embeddings["base64"]]
        raise ResponseDecodeError("v2/embed: no float or base64 embeddings in the answer", body=self.raw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CohereEmbedResponse:
        """Parse a ``/v2/embed`` body."""
        emb = d.get("embeddings")
        if not isinstance(emb, dict) or not all(isinstance(x, list) for x in emb.values()):
            raise ResponseDecodeError("v2/embed: 'embeddings' should map types to lists", body=d)
        return cls(raw=d, embeddings=emb, id=_str(d.get("id")))


class CohereEmbedBody(_Builder):
    """Setters of a Cohere-style embed request: ``texts``, ``images`` or ``inputs``."""

    model = _CommonFields.model
    priority = _CommonFields.priority

    _path = "/v2/embed"
    _root = True
    _what = "v2/embed"
    _parse = CohereEmbedResponse.from_dict

    def texts(self: B, texts: list[str]) -> B:
        """The texts to embed."""
        t = v.str_or_str_list("texts", texts)
        return self._set("texts", [t] if isinstance(t, str) else t)

    def images(self: B, images: list[str]) -> B:
        """Images as data URLs."""
        t = v.str_or_str_list("images", images)
        return self._set("images", [t] if isinstance(t, str) else t)

    def inputs(self: B, inputs: list[dict[str, Any]]) -> B:
        """Mixed inputs: ``[{"content": [{"type": "text", "text": ...}, {"type": "image_url", ...}]}]``."""
        if not isinstance(inputs, list) or not all(isinstance(i, dict) and isinstance(i.get("content"), list)
                                                   for i in inputs):
            raise InvalidRequestError("inputs(...): expected a list of {'content': [parts]} dicts")
        return self._set("inputs", [dict(i) for i in inputs])

    def input_type(self: B, value: str) -> B:
        """"search_document", "search_query", ... (the model must define task instructions for it)."""
        return self._set("input_type", v.string("input_type", value))

    def embedding_types(self: B, types: list[str]) -> B:
        """Which encodings to return: "float", "base64", "binary", "ubinary"."""
        t = v.str_or_str_list("embedding_types", types)
        items = [t] if isinstance(t, str) else t
        for x in items:
            _choice("embedding_types", x, _TYPES)
        return self._set("embedding_types", items)

    def output_dimension(self: B, value: int) -> B:
        """Truncate embeddings to this many dimensions (Matryoshka models)."""
        return self._set("output_dimension", v.integer("output_dimension", value, lo=1))

    def truncate(self: B, value: str) -> B:
        """"NONE", "START" or "END" (default): where to cut inputs that are too long."""
        return self._set("truncate", _choice("truncate", value, ("NONE", "START", "END")))

    def max_tokens(self: B, value: int) -> B:
        """Truncate inputs to this many tokens."""
        return self._set("max_tokens", v.integer("max_tokens", value, lo=1))

    def _check(self, body: dict[str, Any]) -> None:
        if not any(body.get(k) for k in ("texts", "images", "inputs")):
            raise InvalidRequestError("v2/embed: call .texts([...]), .images([...]) or .inputs([...]) first")


class CohereEmbedBuilder(CohereEmbedBody, Sender[CohereEmbedResponse]):
    """Builds one ``/v2/embed`` request."""


class AsyncCohereEmbedBuilder(CohereEmbedBody, AsyncSender[CohereEmbedResponse]):
    """Builds one ``/v2/embed`` request (async)."""
