"""Legacy text completions (``POST /completions``): body, response types, builders."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError
from .._types import WeightVersionSpan, _Completion, _dict, _int, _str
from .base import AsyncStreamSender, B, StreamSender, _copy
from .sampling import _check_min_max, _SamplingMixin

__all__ = ["CompletionChoice", "CompletionResponse", "CompletionBody", "CompletionBuilder", "AsyncCompletionBuilder"]


@dataclass(slots=True)
class CompletionChoice:
    """One choice of a legacy text completion."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: Any = None
    stop_reason: Any = None
    token_ids: list[int] | None = None  # vLLM, with return_token_ids
    prompt_token_ids: list[int] | None = None  # vLLM, with return_token_ids (or echo)
    weight_versions: list[WeightVersionSpan] | None = None  # vLLM 0.33+, with return_weight_versions

    @classmethod
    def from_dict(cls, d: Any, position: int = 0) -> CompletionChoice:
        """Parse a choice of a ``text_completion`` body."""
        d = _dict(d)
        index = _int(d.get("index"))
        return cls(
            index=position if index is None else index,
            text=_str(d.get("text")) or "",
            finish_reason=_str(d.get("finish_reason")),
            logprobs=d.get("logprobs"),
            stop_reason=d.get("stop_reason"),
            token_ids=d.get("token_ids"),
            prompt_token_ids=d.get("prompt_token_ids"),
            weight_versions=WeightVersionSpan.parse_list(d.get("weight_versions")),
        )


class CompletionResponse(_Completion):
    """A legacy text completion; ``text``/``finish_reason`` are the first choice's."""

    __slots__ = ()
    _what = "completion"
    _choice = CompletionChoice

    @property
    def choices(self) -> list[CompletionChoice]:
        """One ``CompletionChoice`` per prompt and ``n``, in the server's order."""
        return self._parsed_choices()

    @property
    def text(self) -> str:
        """The text of the first choice."""
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        """Why generation of the first choice stopped."""
        return self.choices[0].finish_reason if self.choices else None


class CompletionBody(_SamplingMixin):
    """Setters of a legacy text completion request."""

    _path = "/completions"
    _what = "completion"
    _parse = CompletionResponse.from_dict
    _chat = False  # streamed as text

    def prompt(self: B, prompt: str | list[str] | list[int] | list[list[int]]) -> B:
        """A string, a list of strings, a list of token ids, or a list of token-id lists."""
        if isinstance(prompt, str):
            return self._set("prompt", prompt)
        if isinstance(prompt, (list, tuple)) and prompt:
            items: list[Any] = list(prompt)
            if all(isinstance(p, str) for p in items):
                return self._set("prompt", items)
            if all(isinstance(p, int) and not isinstance(p, bool) for p in items):
                return self._set("prompt", items)
            if all(isinstance(p, (list, tuple)) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p)
                   for p in items):
                return self._set("prompt", [list(p) for p in items])
        raise InvalidRequestError(
            f"prompt({prompt!r:.80}): expected a string, a list of strings, a list of token ids, "
            "or a list of token-id lists")

    def suffix(self: B, suffix: str) -> B:
        """Text after the completion (fill-in-the-middle models only)."""
        return self._set("suffix", v.string("suffix", suffix, empty_ok=True))

    def best_of(self: B, value: int) -> B:
        """Generate this many and return the best n."""
        return self._set("best_of", v.integer("best_of", value, lo=1))

    def logprobs(self: B, value: int) -> B:
        """Log probabilities of this many top tokens per output token (0-20)."""
        return self._set("logprobs", v.integer("logprobs", value, lo=0, hi=20))

    def response_format(self: B, fmt: Mapping[str, Any]) -> B:
        """Constrain the text: ``{"type": "json_object"}``, a ``json_schema`` or ``structural_tag``
        format (vLLM accepts it on completions too)."""
        return self._set("response_format", _copy(v.mapping("response_format", fmt)))

    def prompt_embeds(self: B, embeds: bytes | str | list[bytes | str]) -> B:
        """Prompt embeddings instead of a prompt (vLLM, with ``--enable-prompt-embeds``): a
        ``torch.save``d tensor as bytes (base64-encoded for you) or base64 text, or a list of them."""
        items = embeds if isinstance(embeds, list) else [embeds]
        if not items or not all(isinstance(e, (bytes, bytearray, str)) and e for e in items):
            raise InvalidRequestError("prompt_embeds(...): expected bytes or base64 text, or a list of them")
        out = [base64.b64encode(e).decode() if isinstance(e, (bytes, bytearray)) else e for e in items]
        return self._set("prompt_embeds", out if isinstance(embeds, list) else out[0])

    def _check(self, body: dict[str, Any]) -> None:
        if "prompt" not in body and "prompt_embeds" not in body:
            raise InvalidRequestError("no prompt: call .prompt('...') first")
        _check_min_max(body)


class CompletionBuilder(CompletionBody, StreamSender[CompletionResponse]):
    """Builds one legacy text completion request; ``send_stream()`` gives ``ContentDelta``
    events, a ``UsageEvent``, then ``Done`` with a ``CompletionResponse``."""


class AsyncCompletionBuilder(CompletionBody, AsyncStreamSender[CompletionResponse]):
    """Builds one legacy text completion request (async)."""
