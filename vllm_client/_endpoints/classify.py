"""Classification (``POST /classify`` at the server root; vLLM pooling servers with
``--convert classify`` or a classification model; vLLM 0.32 serves no ``/v1/classify``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ResponseDecodeError
from .._observe import _Meta
from .._types import Usage, _int, _str
from .base import AsyncSender, Sender
from .common import _PoolingInput

__all__ = ["Classification", "ClassifyResponse", "ClassifyBody", "ClassifyBuilder", "AsyncClassifyBuilder"]


@dataclass(slots=True)
class Classification:
    """One input's class: the most likely ``label`` and every class's probability."""

    index: int
    label: str | None
    probs: list[float]
    num_classes: int


@dataclass(slots=True)
class ClassifyResponse(_Meta):
    """One ``Classification`` per input, in input order."""

    raw: dict[str, Any] = field(repr=False)
    data: list[Classification]
    model: str | None
    usage: Usage | None
    id: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifyResponse:
        """Parse a classification ``list`` object."""
        data = d.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("classify: 'data' should be a list", body=d)
        out = []
        for i, x in enumerate(data):
            probs = x.get("probs") if isinstance(x, dict) else None
            if not isinstance(probs, list):
                raise ResponseDecodeError(f"classify: data[{i}] has no 'probs' list", body=d)
            index, n = _int(x.get("index")), _int(x.get("num_classes"))
            out.append(Classification(i if index is None else index, _str(x.get("label")), probs,
                                      len(probs) if n is None else n))
        out.sort(key=lambda c: c.index)
        return cls(raw=d, data=out, model=_str(d.get("model")), usage=Usage.from_dict(d.get("usage")),
                   id=_str(d.get("id")))


class ClassifyBody(_PoolingInput):
    """Setters of a classification request: ``input`` (texts or token ids) or ``messages``."""

    _path = "/classify"
    _root = True
    _what = "classification"
    _parse = ClassifyResponse.from_dict


class ClassifyBuilder(ClassifyBody, Sender[ClassifyResponse]):
    """Builds one classification request."""


class AsyncClassifyBuilder(ClassifyBody, AsyncSender[ClassifyResponse]):
    """Builds one classification request (async)."""
