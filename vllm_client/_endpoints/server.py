"""Server operations: models, health, version, tokenize / detokenize.

The flows here (pure, as every flow: see ``_core``) are run by both clients'
``models()``, ``health()``, ``version()``, ``tokenize()`` and ``detokenize()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._config import Timeout
from .._exceptions import APIConnectionError, InvalidRequestError, ResponseDecodeError
from .._types import _dict, _int, _str

if TYPE_CHECKING:
    from .._core import ClientCore, Flow
    from .._transports.base import Response

__all__ = ["Model", "TokenizeResult", "models_flow", "health_flow", "version_flow", "tokenize_flow",
           "detokenize_flow"]


@dataclass(slots=True)
class Model:
    """A model the server serves (``GET /v1/models``)."""

    id: str
    owned_by: str | None = None
    created: int | None = None
    max_model_len: int | None = None
    root: str | None = None
    parent: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Any) -> Model:
        """Parse one entry of the models list."""
        d = _dict(d)
        return cls(
            id=_str(d.get("id")) or "",
            owned_by=_str(d.get("owned_by")),
            created=_int(d.get("created")),
            max_model_len=_int(d.get("max_model_len")),
            root=_str(d.get("root")),
            parent=_str(d.get("parent")),
            raw=d,
        )


@dataclass(slots=True)
class TokenizeResult:
    """The answer of vLLM's ``/tokenize``."""

    tokens: list[int]
    count: int
    max_model_len: int | None = None
    token_strs: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizeResult:
        """Parse a ``/tokenize`` body."""
        tokens = d.get("tokens")
        if not isinstance(tokens, list):
            raise ResponseDecodeError("tokenize: 'tokens' should be a list", body=d)
        count = _int(d.get("count"))
        strs = d.get("token_strs")
        return cls(
            tokens=tokens,
            count=len(tokens) if count is None else count,
            max_model_len=_int(d.get("max_model_len")),
            token_strs=strs if isinstance(strs, list) else None,
            raw=d,
        )



def models_flow(client: ClientCore) -> Flow[list[Model]]:
    """``GET /models`` as a list of ``Model``."""
    def parse(obj: dict[str, Any]) -> list[Model]:
        data = obj.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("models: expected a 'data' list", body=obj)
        return [Model.from_dict(m) for m in data]

    return (yield from client.json_flow(client.prepare("GET", "/models"), parse, "models"))


def health_flow(client: ClientCore, timeout: float) -> Flow[bool]:
    """``GET /health`` at the server root: True on 200, False otherwise (never raises)."""
    req = client.prepare("GET", "/health", root=True, timeout=Timeout(connect=timeout, read=timeout))
    try:
        response: Response = yield req
    except APIConnectionError:
        return False
    return response.status == 200


def version_flow(client: ClientCore) -> Flow[str]:
    """``GET /version`` at the server root."""
    def parse(obj: dict[str, Any]) -> str:
        return str(obj.get("version", ""))

    return (yield from client.json_flow(client.prepare("GET", "/version", root=True), parse, "version"))


def tokenize_flow(client: ClientCore, text_or_messages: Any, model: str | None, add_special_tokens: bool | None,
                  extra: Mapping[str, Any] | None) -> Flow[TokenizeResult]:
    """``POST /tokenize`` at the server root, with a prompt or chat messages."""
    from .._validate import messages as check_messages

    body: dict[str, Any] = {}
    if model is not None:
        body["model"] = model
    if isinstance(text_or_messages, str):
        body["prompt"] = text_or_messages
    elif isinstance(text_or_messages, list):
        body["messages"] = check_messages("tokenize", text_or_messages)
    else:
        raise InvalidRequestError(f"tokenize({text_or_messages!r:.60}): expected text or a list of messages")
    if add_special_tokens is not None:
        body["add_special_tokens"] = bool(add_special_tokens)
    if extra:
        body.update(extra)
    req = client.prepare("POST", "/tokenize", body, root=True)
    return (yield from client.json_flow(req, TokenizeResult.from_dict, "tokenize"))


def detokenize_flow(client: ClientCore, tokens: Any, model: str | None) -> Flow[str]:
    """``POST /detokenize`` at the server root."""
    from .._validate import int_list

    body: dict[str, Any] = {"tokens": int_list("detokenize", tokens)}
    if model is not None:
        body["model"] = model

    def parse(obj: dict[str, Any]) -> str:
        prompt = obj.get("prompt")
        return prompt if isinstance(prompt, str) else ""

    return (yield from client.json_flow(client.prepare("POST", "/detokenize", body, root=True), parse, "detokenize"))
