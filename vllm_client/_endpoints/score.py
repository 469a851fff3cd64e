"""Scores of text pairs (``POST /score``, vLLM pooling servers: cross-encoders, and
embedding models by cosine similarity): body, response, builders; the fields shared
with ``rerank``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._types import Usage, _int, _str
from .base import AsyncSender, B, Sender
from .common import _ChatTemplateFields, _PoolingFields

__all__ = ["ScoreData", "ScoreResponse", "ScoreBody", "ScoreBuilder", "AsyncScoreBuilder"]

ScoreInput = str | dict[str, Any]
"""A text, or a multimodal item ``{"content": [content parts]}``."""


def _item(setter: str, x: Any) -> ScoreInput:
    if isinstance(x, str):
        return x
    if isinstance(x, dict) and isinstance(x.get("content"), list):
        v.check_finite(x, setter)
        return dict(x)
    raise InvalidRequestError(f"{setter}({x!r:.80}): expected a string or a dict {{'content': [parts]}}")


def _items(setter: str, value: Any, *, single_ok: bool = True) -> ScoreInput | list[ScoreInput]:
    """One item (when ``single_ok``) or a non-empty list of them."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidRequestError(f"{setter}([]): give at least one")
        return [_item(f"{setter}[{i}]", x) for i, x in enumerate(value)]
    if not single_ok:
        raise InvalidRequestError(f"{setter}({value!r:.80}): expected a list")
    return _item(setter, value)


def _pairs_check(body: dict[str, Any], first: str, second: str) -> None:
    a, b = body.get(first), body.get(second)
    if isinstance(a, list) and isinstance(b, list) and len(a) != 1 and len(a) != len(b):
        raise InvalidRequestError(f"{first} has {len(a)} items and {second} {len(b)}: give one {first} "
                                  f"(scored against every {second} item) or as many as {second} (paired)")


class _ScoreFields(_PoolingFields):
    """Fields shared by score and rerank (vLLM's score protocol)."""

    chat_template_kwargs = _ChatTemplateFields.chat_template_kwargs

    def instruction(self: B, text: str) -> B:
        """A task instruction put before each pair by the chat template (vLLM)."""
        return self._set("instruction", v.string("instruction", text))

    def max_tokens_per_query(self: B, value: int) -> B:
        """Truncate queries to this many tokens (vLLM; 0 means no limit)."""
        return self._set("max_tokens_per_query", v.integer("max_tokens_per_query", value, lo=0))

    def max_tokens_per_doc(self: B, value: int) -> B:
        """Truncate documents to this many tokens (vLLM; 0 means no limit)."""
        return self._set("max_tokens_per_doc", v.integer("max_tokens_per_doc", value, lo=0))


@dataclass(slots=True)
class ScoreData:
    """One pair's score."""

    index: int
    score: float


@dataclass(slots=True)
class ScoreResponse(_Meta):
    """Scores in input order: ``scores[i]`` is pair i's (query i, or the one query, with document i)."""

    raw: dict[str, Any] = field(repr=False)
    data: list[ScoreData]
    model: str | None
    usage: Usage | None
    id: str | None = None

    @property
    def scores(self) -> list[float]:
        """The scores as floats, in input order."""
        return [d.score for d in self.data]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreResponse:
        """Parse a score ``list`` object."""
        data = d.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("score: 'data' should be a list", body=d)
        out = []
        for i, x in enumerate(data):
            s = x.get("score") if isinstance(x, dict) else None
            if isinstance(s, bool) or not isinstance(s, (int, float)):
                raise ResponseDecodeError(f"score: data[{i}] has no numeric 'score'", body=d)
            index = _int(x.get("index"))
            out.append(ScoreData(i if index is None else index, float(s)))
        out.sort(key=lambda s: s.index)
        return cls(raw=d, data=out, model=_str(d.get("model")), usage=Usage.from_dict(d.get("usage")),
                   id=_str(d.get("id")))


class ScoreBody(_ScoreFields):
    """Setters of a score request: ``queries(...)`` and ``documents(...)`` (one query against
    every document, or paired lists); vLLM's older ``text_1``/``text_2``, ``data_1``/``data_2``
    and ``queries``/``items`` spellings too."""

    _path = "/score"
    _what = "score"
    _parse = ScoreResponse.from_dict

    def queries(self: B, value: ScoreInput | list[ScoreInput]) -> B:
        """One query (scored against every document) or a list (paired with the documents)."""
        return self._set("queries", _items("queries", value))

    def documents(self: B, value: ScoreInput | list[ScoreInput]) -> B:
        """The documents: texts or multimodal items ``{"content": [parts]}``."""
        return self._set("documents", _items("documents", value))

    def items(self: B, value: ScoreInput | list[ScoreInput]) -> B:
        """vLLM's other name for ``documents`` (with ``queries``)."""
        return self._set("items", _items("items", value))

    def text_1(self: B, value: str | list[str]) -> B:
        """Older vLLM spelling of ``queries``."""
        return self._set("text_1", _items("text_1", value))

    def text_2(self: B, value: str | list[str]) -> B:
        """Older vLLM spelling of ``documents``."""
        return self._set("text_2", _items("text_2", value))

    def data_1(self: B, value: ScoreInput | list[ScoreInput]) -> B:
        """Older vLLM spelling of ``queries`` (multimodal)."""
        return self._set("data_1", _items("data_1", value))

    def data_2(self: B, value: ScoreInput | list[ScoreInput]) -> B:
        """Older vLLM spelling of ``documents`` (multimodal)."""
        return self._set("data_2", _items("data_2", value))

    def _check(self, body: dict[str, Any]) -> None:
        spellings = [p for p in (("queries", "documents"), ("queries", "items"), ("text_1", "text_2"),
                                 ("data_1", "data_2")) if p[0] in body and p[1] in body]
        if not spellings:
            raise InvalidRequestError("score: call .queries(...) and .documents(...) (or text_1/text_2) first")
        _pairs_check(body, *spellings[0])


class ScoreBuilder(ScoreBody, Sender[ScoreResponse]):
    """Builds one score request."""


class AsyncScoreBuilder(ScoreBody, AsyncSender[ScoreResponse]):
    """Builds one score request (async)."""
