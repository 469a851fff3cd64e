"""vLLM's raw pooler output (``POST /pooling`` at the server root): whatever the model's
pooler gives (a vector, per-token vectors, class logits), nested lists as sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._types import Usage, _int, _str
from .base import AsyncSender, B, Sender
from .common import _choice, _PoolingInput
from .embeddings import _EncodedOutput, _VectorParser, decode_vector

__all__ = ["PoolingData", "PoolingResponse", "PoolingBody", "PoolingBuilder", "AsyncPoolingBuilder"]

_TASKS = ("embed", "classify", "token_embed", "token_classify", "plugin", "embed&token_classify")


@dataclass(slots=True)
class PoolingData:
    """One input's pooler output: ``data`` as sent (a list, lists of lists ...; a base64
    answer is decoded into a flat ``array('f')``)."""

    index: int
    data: Any


@dataclass(slots=True)
class PoolingResponse(_Meta):
    """One ``PoolingData`` per input, in input order."""

    raw: dict[str, Any] = field(repr=False)
    data: list[PoolingData]
    model: str | None
    usage: Usage | None
    id: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], dtype: str = "float32", big_endian: bool = False) -> PoolingResponse:
        """Parse a pooling ``list`` object."""
        data = d.get("data")
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise ResponseDecodeError("pooling: 'data' should be a list of objects", body=d)
        out = []
        for i, x in enumerate(data):
            value = x.get("data")
            if isinstance(value, str):
                value = decode_vector(value, dtype, big_endian)
            index = _int(x.get("index"))
            out.append(PoolingData(i if index is None else index, value))
        out.sort(key=lambda p: p.index)
        return cls(raw=d, data=out, model=_str(d.get("model")), usage=Usage.from_dict(d.get("usage")),
                   id=_str(d.get("id")))


class PoolingBody(_EncodedOutput, _PoolingInput):
    """Setters of a pooling request: ``input`` or ``messages`` (or a plugin's ``data``), ``task``."""

    _path = "/pooling"
    _root = True
    _what = "pooling"
    _parse = _VectorParser(PoolingResponse.from_dict)

    def task(self: B, task: str) -> B:
        """The pooling task: "embed", "classify", "token_embed", "token_classify", "plugin" or
        "embed&token_classify" (the server must support it)."""
        return self._set("task", _choice("task", task, _TASKS))

    def data(self: B, data: Any) -> B:
        """Input for an IO-processor plugin (vLLM ``--io-processor-plugin``), instead of input/messages."""
        if data is None:
            return self._set("data", None)
        return self._set("data", v.json_value("data", data))

    def _check(self, body: dict[str, Any]) -> None:
        if "data" in body:
            if "input" in body or "messages" in body:
                raise InvalidRequestError("give data(...) (plugins) or input/messages, not both")
            return
        super()._check(body)


class PoolingBuilder(PoolingBody, Sender[PoolingResponse]):
    """Builds one pooling request."""


class AsyncPoolingBuilder(PoolingBody, AsyncSender[PoolingResponse]):
    """Builds one pooling request (async)."""
