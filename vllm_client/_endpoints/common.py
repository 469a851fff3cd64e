"""Setters shared across endpoint families: the fields every vLLM request has (model, user,
request_id, priority, cache_salt, truncation, processor kwargs), the chat-template fields
(chat, and the pooling endpoints given ``messages``), and the fields of the pooling
endpoints (embeddings, pooling, classify, score, rerank). One definition each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError
from .base import B, _Builder, _copy

__all__ = ["_CommonFields", "_ChatTemplateFields", "_PoolingFields", "_PoolingInput", "_choice"]


def _choice(setter: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (None removes the field)."""
    if value is None or value in allowed:
        return value  # type: ignore[no-any-return]
    raise InvalidRequestError(f"{setter}({value!r}): expected one of {', '.join(map(repr, allowed))}")


class _CommonFields(_Builder):
    """Fields of every vLLM request (generation and pooling alike)."""

    def model(self: B, model: str) -> B:
        """The model name as the server knows it."""
        return self._set("model", v.string("model", model))

    def user(self: B, user: str) -> B:
        """An end-user id, for the server's logs."""
        return self._set("user", v.string("user", user))

    def request_id(self: B, value: str) -> B:
        """vLLM's ``request_id`` field: the id used in the server's logs and the response id;
        also sent as the ``X-Request-Id`` header (unless ``header()`` set one), which vLLM with
        ``--enable-request-id-headers`` echoes: ``resp.request_id``."""
        return self._set("request_id", v.string("request_id", value))

    def priority(self: B, value: int) -> B:
        """Scheduling priority (vLLM, with ``--scheduling-policy priority``; lower runs first)."""
        return self._set("priority", v.integer("priority", value))

    def cache_salt(self: B, salt: str) -> B:
        """Salt the prefix cache (vLLM): requests share cached prefixes only with the same salt
        (1-1024 characters; keep it secret per tenant)."""
        s = v.string("cache_salt", salt)
        if s is not None and len(s) > 1024:
            raise InvalidRequestError(f"cache_salt(...): at most 1024 characters, got {len(s)}")
        return self._set("cache_salt", s)

    def truncate_prompt_tokens(self: B, value: int) -> B:
        """Keep only k prompt tokens (vLLM; -1 means the model's limit; see ``truncation_side``)."""
        return self._set("truncate_prompt_tokens", v.integer("truncate_prompt_tokens", value, lo=-1))

    def truncation_side(self: B, side: str) -> B:
        """Which end ``truncate_prompt_tokens`` cuts: "left" keeps the last tokens, "right" the first (vLLM)."""
        return self._set("truncation_side", _choice("truncation_side", side, ("left", "right")))

    def add_special_tokens(self: B, value: bool) -> B:
        """Add special tokens such as BOS to the prompt (vLLM; by default yes for text input, no
        on top of a chat template's for messages)."""
        return self._set("add_special_tokens", v.boolean("add_special_tokens", value))

    def mm_processor_kwargs(self: B, kwargs: Mapping[str, Any]) -> B:
        """Extra keyword arguments for the model's Hugging Face (multimodal) processor (vLLM)."""
        return self._set("mm_processor_kwargs", _copy(v.mapping("mm_processor_kwargs", kwargs)))


class _ChatTemplateFields(_Builder):
    """How chat messages become the prompt (chat, and pooling endpoints given messages)."""

    def chat_template(self: B, template: str) -> B:
        """A Jinja chat template to use instead of the model's (vLLM; the server must run with
        ``--trust-request-chat-template``, else it answers 400)."""
        return self._set("chat_template", v.string("chat_template", template))

    def chat_template_kwargs(self: B, kwargs: Mapping[str, Any]) -> B:
        """Extra variables for the chat template, e.g. ``{"enable_thinking": False}`` (Qwen3, DeepSeek)."""
        return self._set("chat_template_kwargs", _copy(v.mapping("chat_template_kwargs", kwargs)))

    def add_generation_prompt(self: B, value: bool) -> B:
        """Add the assistant generation prompt (vLLM; default True for chat, False for pooling)."""
        return self._set("add_generation_prompt", v.boolean("add_generation_prompt", value))

    def continue_final_message(self: B, value: bool = True) -> B:
        """Continue the last (assistant) message instead of starting a new one (vLLM)."""
        return self._set("continue_final_message", v.boolean("continue_final_message", value))

    def media_io_kwargs(self: B, kwargs: Mapping[str, Any]) -> B:
        """Per-modality options of the media loaders, e.g. ``{"video": {"num_frames": 8}}`` (vLLM)."""
        kw = v.mapping("media_io_kwargs", kwargs)
        if kw is not None and not all(isinstance(x, dict) for x in kw.values()):
            raise InvalidRequestError("media_io_kwargs(...): expected a dict of modality -> dict of options")
        return self._set("media_io_kwargs", {k: dict(x) for k, x in kw.items()} if kw is not None else None)

    def _check_template(self, body: dict[str, Any]) -> None:
        if body.get("continue_final_message") is True and body.get("add_generation_prompt") is True:
            raise InvalidRequestError("continue_final_message(True) needs add_generation_prompt(False) "
                                      "(vLLM refuses the two together)")


class _PoolingFields(_CommonFields):
    """Fields of every pooling endpoint (embeddings, pooling, classify, score, rerank)."""

    def use_activation(self: B, value: bool) -> B:
        """Apply the pooler's activation (softmax / sigmoid / normalisation; vLLM default: the pooler's)."""
        return self._set("use_activation", v.boolean("use_activation", value))

    def padding(self: B, value: str) -> B:
        """Pad the prompt: "max_length" or "do_not_pad" (Transformers' names; vLLM)."""
        return self._set("padding", _choice("padding", value, ("max_length", "do_not_pad")))


def _check_input(value: Any) -> bool:
    """Text, texts, token ids, or lists of token ids."""
    if value.__class__ is str:
        return True
    if not isinstance(value, list) or not value:
        return False
    first = value[0].__class__
    if first is str:
        return all(x.__class__ is str for x in value)
    if first is int:
        return all(x.__class__ is int for x in value)
    return all(isinstance(x, list) and x and all(t.__class__ is int for t in x) for x in value)


def _check_messages(setter: str, value: Any) -> list[Any]:
    """One conversation (a list of message dicts) or several (a list of such lists)."""
    if isinstance(value, list) and value and all(isinstance(c, list) for c in value):
        return [list(v.messages(f"{setter}[{i}]", c)) for i, c in enumerate(value)]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"{setter}({value!r:.80}): expected a non-empty list of message dicts "
                                  "(or a list of such lists)")
    return list(v.messages(setter, value))


class _PoolingInput(_ChatTemplateFields, _PoolingFields):
    """The input of embeddings, pooling and classify: ``input`` (texts or token ids) or
    ``messages`` (chat-style; the chat template applied)."""

    def input(self: B, value: str | list[str] | list[int] | list[list[int]]) -> B:
        """Text, texts, token ids, or lists of token ids."""
        if _check_input(value):
            return self._set("input", value)
        raise InvalidRequestError(
            f"input({value!r:.80}): expected a string, a list of strings, token ids or lists of token ids")

    def messages(self: B, messages: list[dict[str, Any]] | list[list[dict[str, Any]]]) -> B:
        """Chat messages instead of ``input`` (the chat template applied; image parts for
        multimodal models): one conversation, or a list of them (vLLM)."""
        return self._set("messages", _check_messages("messages", messages))

    def _check(self, body: dict[str, Any]) -> None:
        if "input" not in body and "messages" not in body:
            raise InvalidRequestError("no input: call .input('...') or .messages([...]) first")
        if "input" in body and "messages" in body:
            raise InvalidRequestError("give input(...) or messages(...), not both")
        self._check_template(body)
