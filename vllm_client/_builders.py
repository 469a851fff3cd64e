"""Request builders: chainable setters that validate as they go; ``build()`` gives the body.

A builder never touches the network. The sync and async builders differ only in
their senders (``send`` / ``send_stream``), which hand a prepared request to the
client's driver; every setter and check is written once, here.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import _validate as v
from ._config import Timeout, TimeoutTypes, check_header, to_timeout
from ._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from ._core import ClientCore

B = TypeVar("B", bound="_Builder")
CB = TypeVar("CB", bound="ChatBody")


def _copy(value: Any) -> Any:
    """A shallow copy of a dict or list (so later changes by the caller do not leak in); None stays None."""
    return None if value is None else value.copy()


class _Builder:
    """Body, headers and timeout of one request; setters shared by every endpoint."""

    _path = ""
    _root = False

    def __init__(self, client: ClientCore) -> None:
        self._client = client
        self._body: dict[str, Any] = {}
        self._extra: dict[str, Any] = {}
        self._headers: dict[str, str] = {}
        self._timeout: Timeout | None = None

    def _set(self: B, key: str, value: Any) -> B:
        if value is None:
            self._body.pop(key, None)
        else:
            self._body[key] = value
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._body!r})"

    # -- escape hatches ------------------------------------------------------

    def extra(self: B, fields: Mapping[str, Any]) -> B:
        """Merge fields into the body, last, over what setters put there (a later
        ``extra()`` merges over earlier ones; a value of None removes the field)."""
        v.mapping("extra", fields)
        v.check_finite(dict(fields), "extra")
        self._extra.update(fields)
        return self

    def header(self: B, name: str, value: str) -> B:
        """Add an HTTP header to this request only."""
        check_header(name, value)
        self._headers[name] = value
        return self

    def timeout(self: B, timeout: TimeoutTypes) -> B:
        """A timeout for this request only: seconds or ``Timeout(connect=, read=, total=)``."""
        self._timeout = to_timeout(timeout, what="timeout")
        return self

    # -- output --------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        """The exact JSON body that will be sent: only the fields that were set, ``extra()`` merged last.

        The model is the builder's, else the client's ``default_model``; when neither is
        set, ``send()`` asks the server for its one model and adds it. Raises
        ``InvalidRequestError`` for a body that cannot be sent (as ``send()`` would).
        """
        body = self._build()
        v.check_finite(body)
        return body

    def _build(self) -> dict[str, Any]:
        # build() without the NaN walk: sending checks that when the body is serialized
        # (ClientCore.prepare), only if the JSON has a null in it.
        body = dict(self._body)
        for k, val in self._extra.items():
            if val is None:
                body.pop(k, None)
            else:
                body[k] = val
        if "model" not in body and self._client.default_model:
            body["model"] = self._client.default_model
        self._check(body)
        return body

    def _check(self, body: dict[str, Any]) -> None:
        """Whole-body checks before sending (overridden per endpoint)."""

    def _request_parts(self, stream: bool) -> tuple[dict[str, Any], dict[str, str] | None, Timeout | None]:
        body = self._build()
        if stream:
            body["stream"] = True
        elif body.get("stream") is True:
            body.pop("stream")
        return body, (self._headers or None), self._timeout


class _SamplingMixin(_Builder):
    """Sampling parameters shared by chat and legacy completions (OpenAI + vLLM)."""

    def model(self: B, model: str) -> B:
        """The model name as the server knows it."""
        return self._set("model", v.string("model", model))

    def temperature(self: B, temperature: float) -> B:
        """Sampling temperature, >= 0 (0 is greedy)."""
        return self._set("temperature", v.number("temperature", temperature, lo=0))

    def top_p(self: B, top_p: float) -> B:
        """Nucleus sampling, in (0, 1]."""
        return self._set("top_p", v.number("top_p", top_p, lo=0, hi=1, lo_open=True))

    def top_k(self: B, top_k: int) -> B:
        """Keep only the k most likely tokens; 0 or -1 means all (vLLM)."""
        return self._set("top_k", v.integer("top_k", top_k, lo=-1))

    def min_p(self: B, min_p: float) -> B:
        """Minimum probability relative to the most likely token, in [0, 1] (vLLM)."""
        return self._set("min_p", v.number("min_p", min_p, lo=0, hi=1))

    def n(self: B, n: int) -> B:
        """How many choices to generate, >= 1."""
        return self._set("n", v.integer("n", n, lo=1))

    def max_tokens(self: B, max_tokens: int) -> B:
        """Most tokens to generate, >= 1."""
        return self._set("max_tokens", v.integer("max_tokens", max_tokens, lo=1))

    def stop(self: B, stop: str | list[str]) -> B:
        """A stop string or a list of them."""
        return self._set("stop", v.str_or_str_list("stop", stop))

    def seed(self: B, seed: int) -> B:
        """Random seed, for reproducible sampling."""
        return self._set("seed", v.integer("seed", seed))

    def presence_penalty(self: B, value: float) -> B:
        """Penalty for tokens already present, in [-2, 2]."""
        return self._set("presence_penalty", v.number("presence_penalty", value, lo=-2, hi=2))

    def frequency_penalty(self: B, value: float) -> B:
        """Penalty by token frequency so far, in [-2, 2]."""
        return self._set("frequency_penalty", v.number("frequency_penalty", value, lo=-2, hi=2))

    def repetition_penalty(self: B, value: float) -> B:
        """vLLM repetition penalty, > 0 (1 is none)."""
        return self._set("repetition_penalty", v.number("repetition_penalty", value, lo=0, lo_open=True))

    def logit_bias(self: B, bias: Mapping[str | int, float]) -> B:
        """Token id -> bias in [-100, 100]."""
        if not isinstance(bias, Mapping):
            raise InvalidRequestError(f"logit_bias({bias!r}): expected a dict of token id to bias")
        out: dict[str, float] = {}
        for k, val in bias.items():
            if isinstance(k, bool) or not isinstance(k, (int, str)) or not str(k).lstrip("-").isdigit():
                raise InvalidRequestError(f"logit_bias: key {k!r} is not a token id")
            out[str(k)] = v.number(f"logit_bias[{k!r}]", val, lo=-100, hi=100)
        return self._set("logit_bias", out)

    def user(self: B, user: str) -> B:
        """An end-user id, for the server's logs."""
        return self._set("user", v.string("user", user))

    def stream(self: B, stream: bool) -> B:
        """Ask for a stream (``send()`` then consumes it and returns the final response)."""
        return self._set("stream", v.boolean("stream", stream))

    def _streams(self) -> bool:
        """``stream(True)`` or ``extra({"stream": True})``: ``send()`` streams and accumulates."""
        return self._body.get("stream") is True or self._extra.get("stream") is True

    def stream_options(self: B, options: Mapping[str, Any]) -> B:
        """e.g. ``{"include_usage": True}`` (vLLM also: ``continuous_usage_stats``)."""
        return self._set("stream_options", _copy(v.mapping("stream_options", options)))

    # vLLM sampling extensions (vllm/entrypoints/openai/protocol.py, vLLM 0.11-0.32)

    def min_tokens(self: B, value: int) -> B:
        """Generate at least this many tokens before EOS/stop may end it (vLLM)."""
        return self._set("min_tokens", v.integer("min_tokens", value, lo=0))

    def ignore_eos(self: B, value: bool = True) -> B:
        """Keep generating past the EOS token (vLLM)."""
        return self._set("ignore_eos", v.boolean("ignore_eos", value))

    def stop_token_ids(self: B, ids: list[int]) -> B:
        """Token ids that stop generation (vLLM)."""
        return self._set("stop_token_ids", v.int_list("stop_token_ids", ids))

    def skip_special_tokens(self: B, value: bool) -> B:
        """Drop special tokens from the output text (vLLM; default True)."""
        return self._set("skip_special_tokens", v.boolean("skip_special_tokens", value))

    def spaces_between_special_tokens(self: B, value: bool) -> B:
        """Put spaces between special tokens in the output (vLLM)."""
        return self._set("spaces_between_special_tokens", v.boolean("spaces_between_special_tokens", value))

    def include_stop_str_in_output(self: B, value: bool = True) -> B:
        """Keep the matched stop string in the text (vLLM)."""
        return self._set("include_stop_str_in_output", v.boolean("include_stop_str_in_output", value))

    def truncate_prompt_tokens(self: B, value: int) -> B:
        """Keep only the last k prompt tokens (vLLM; -1 means the model's limit)."""
        return self._set("truncate_prompt_tokens", v.integer("truncate_prompt_tokens", value, lo=-1))

    def prompt_logprobs(self: B, value: int) -> B:
        """Log probabilities of this many top tokens per prompt token (vLLM)."""
        return self._set("prompt_logprobs", v.integer("prompt_logprobs", value, lo=-1))

    def structured_outputs(
        self: B,
        *,
        json: Mapping[str, Any] | str | None = None,
        regex: str | None = None,
        choice: list[str] | None = None,
        grammar: str | None = None,
        json_object: bool | None = None,
        structural_tag: str | None = None,
        **more: Any,
    ) -> B:
        """vLLM structured outputs (``structured_outputs`` field, vLLM >= 0.10.2):
        exactly one of json (a JSON schema), regex, choice, grammar, json_object, structural_tag."""
        spec: dict[str, Any] = {}
        if json is not None:
            spec["json"] = json if isinstance(json, str) else _copy(v.mapping("structured_outputs(json=)", json))
        if regex is not None:
            spec["regex"] = v.string("structured_outputs(regex=)", regex)
        if choice is not None:
            spec["choice"] = v.str_or_str_list("structured_outputs(choice=)", choice)
            if isinstance(spec["choice"], str):
                raise InvalidRequestError("structured_outputs(choice=...): expected a list of strings")
        if grammar is not None:
            spec["grammar"] = v.string("structured_outputs(grammar=)", grammar)
        if json_object is not None:
            spec["json_object"] = v.boolean("structured_outputs(json_object=)", json_object)
        if structural_tag is not None:
            spec["structural_tag"] = v.string("structured_outputs(structural_tag=)", structural_tag)
        kinds = [k for k in ("json", "regex", "choice", "grammar", "json_object", "structural_tag") if k in spec]
        if len(kinds) != 1:
            raise InvalidRequestError(
                "structured_outputs(...): give exactly one of json=, regex=, choice=, grammar=, json_object=, "
                f"structural_tag= (got {kinds or 'none'})")
        spec.update(v.mapping("structured_outputs(**more)", more))
        v.check_finite(spec, "structured_outputs")
        return self._set("structured_outputs", spec)

    def guided_json(self: B, schema: Mapping[str, Any] | str) -> B:
        """Older vLLM name of ``structured_outputs(json=...)`` (deprecated: see ``_guided_warning``)."""
        _guided_warning("guided_json")
        return self._set("guided_json", schema if isinstance(schema, str) else _copy(v.mapping("guided_json", schema)))

    def guided_regex(self: B, regex: str) -> B:
        """Older vLLM name of ``structured_outputs(regex=...)`` (deprecated)."""
        _guided_warning("guided_regex")
        return self._set("guided_regex", v.string("guided_regex", regex))

    def guided_choice(self: B, choices: list[str]) -> B:
        """Older vLLM name of ``structured_outputs(choice=...)`` (deprecated)."""
        _guided_warning("guided_choice")
        c = v.str_or_str_list("guided_choice", choices)
        if isinstance(c, str):
            raise InvalidRequestError("guided_choice(...): expected a list of strings")
        return self._set("guided_choice", c)

    def guided_grammar(self: B, grammar: str) -> B:
        """Older vLLM name of ``structured_outputs(grammar=...)`` (deprecated)."""
        _guided_warning("guided_grammar")
        return self._set("guided_grammar", v.string("guided_grammar", grammar))

    def priority(self: B, value: int) -> B:
        """Scheduling priority (vLLM, with ``--scheduling-policy priority``; lower runs first)."""
        return self._set("priority", v.integer("priority", value))

    def request_id(self: B, value: str) -> B:
        """vLLM's ``request_id`` field: the id used in the server's logs and the response id."""
        return self._set("request_id", v.string("request_id", value))


def _check_min_max(body: dict[str, Any]) -> None:
    low = body.get("min_tokens")
    if not isinstance(low, int):  # the usual case: nothing to compare
        return
    high = body.get("max_tokens", body.get("max_completion_tokens"))
    if isinstance(high, int) and low > high:
        raise InvalidRequestError(f"min_tokens({low}) is greater than max_tokens({high})")


def _guided_warning(name: str) -> None:
    import warnings

    warnings.warn(
        f"{name}(): vLLM replaced the guided_* fields with structured_outputs (0.10.2) and newer servers "
        "(tested: 0.32) accept but ignore them; use .structured_outputs(...) unless your server is older",
        DeprecationWarning, stacklevel=3)


def _image_part(image: Any) -> dict[str, Any]:
    """An OpenAI image content part from a URL, a data URL, a local path or raw bytes."""
    if isinstance(image, dict):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        mime = _sniff_mime(data)
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}
    if isinstance(image, os.PathLike):
        image = os.fspath(image)
    if not isinstance(image, str) or not image:
        raise InvalidRequestError(f"user_message(images=[{image!r}]): expected a URL, a file path or bytes")
    if image.startswith(("http://", "https://", "data:")):
        return {"type": "image_url", "image_url": {"url": image}}
    if not os.path.isfile(image):
        raise InvalidRequestError(f"user_message(images=[{image!r}]): no such file (and not an http(s) or data URL)")
    with open(image, "rb") as f:
        data = f.read()
    mime = mimetypes.guess_type(image)[0] or _sniff_mime(data)
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class ChatBody(_SamplingMixin):
    """Setters of a chat completion request (OpenAI fields + vLLM extensions)."""

    _path = "/chat/completions"
    _toolset: Any = None  # the ToolSet given to tools(), for run_tools()

    def messages(self: CB, messages: list[dict[str, Any]]) -> CB:
        """Replace the message list (dicts with ``role`` and ``content``)."""
        return self._set("messages", _copy(v.messages("messages", messages)))

    def message(self: CB, message: Mapping[str, Any]) -> CB:
        """Append one message dict."""
        self._body.setdefault("messages", []).append(v.message("message", dict(message)))
        return self

    def system(self: CB, text: str) -> CB:
        """Append a system message."""
        return self.message({"role": "system", "content": v.string("system", text, empty_ok=True)})

    def user_message(self: CB, content: str | list[Any], *, images: Iterable[Any] = ()) -> CB:
        """Append a user message: text or content parts, plus images (URLs, file paths or bytes)."""
        if not isinstance(content, (str, list)):
            raise InvalidRequestError(f"user_message({content!r}): expected text or a list of content parts")
        parts = [_image_part(i) for i in images]
        if parts:
            text_parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            return self.message({"role": "user", "content": text_parts + parts})
        return self.message({"role": "user", "content": content})

    def assistant(self: CB, text: str) -> CB:
        """Append an assistant message."""
        return self.message({"role": "assistant", "content": v.string("assistant", text, empty_ok=True)})

    def max_completion_tokens(self: CB, value: int) -> CB:
        """Most tokens to generate (the newer OpenAI name of max_tokens)."""
        return self._set("max_completion_tokens", v.integer("max_completion_tokens", value, lo=1))

    def logprobs(self: CB, value: bool = True) -> CB:
        """Return log probabilities of the output tokens."""
        return self._set("logprobs", v.boolean("logprobs", value))

    def top_logprobs(self: CB, value: int) -> CB:
        """How many top alternatives per token (0-20; needs logprobs)."""
        return self._set("top_logprobs", v.integer("top_logprobs", value, lo=0, hi=20))

    def tools(self: CB, tools: Iterable[Callable[..., Any] | Mapping[str, Any]]) -> CB:
        """Tools the model may call: Python functions (schema from their signature) or tool dicts."""
        from ._tools import ToolSet

        if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
            raise InvalidRequestError("tools(...): expected a list of functions or tool dicts")
        ts = ToolSet(list(tools))
        self._toolset = ts
        return self._set("tools", ts.schemas)

    def tool_choice(self: CB, choice: str | Mapping[str, Any]) -> CB:
        """"auto", "none", "required", a function name, or a tool_choice dict."""
        if isinstance(choice, str):
            if choice not in ("auto", "none", "required"):
                choice = {"type": "function", "function": {"name": choice}}
        elif isinstance(choice, Mapping):
            choice = dict(choice)
        else:
            raise InvalidRequestError(f"tool_choice({choice!r}): expected 'auto', 'none', 'required', a name or a dict")
        return self._set("tool_choice", choice)

    def parallel_tool_calls(self: CB, value: bool) -> CB:
        """Allow several tool calls in one turn."""
        return self._set("parallel_tool_calls", v.boolean("parallel_tool_calls", value))

    def response_format(self: CB, fmt: Mapping[str, Any]) -> CB:
        """e.g. ``{"type": "json_object"}`` or a json_schema format."""
        return self._set("response_format", _copy(v.mapping("response_format", fmt)))

    def json_schema(self: CB, schema: Mapping[str, Any], name: str = "output", strict: bool = True) -> CB:
        """Ask for JSON matching a schema (``response_format`` of type json_schema)."""
        v.mapping("json_schema", schema)
        return self._set("response_format", {
            "type": "json_schema",
            "json_schema": {"name": v.string("json_schema(name=)", name), "schema": dict(schema),
                            "strict": v.boolean("json_schema(strict=)", strict)},
        })

    # vLLM chat extensions

    def chat_template(self: CB, template: str) -> CB:
        """A Jinja chat template to use instead of the model's (vLLM; the server must run with
        ``--trust-request-chat-template``, else it answers 400)."""
        return self._set("chat_template", v.string("chat_template", template))

    def chat_template_kwargs(self: CB, kwargs: Mapping[str, Any]) -> CB:
        """Extra variables for the chat template, e.g. ``{"enable_thinking": False}`` (Qwen3, DeepSeek)."""
        return self._set("chat_template_kwargs", _copy(v.mapping("chat_template_kwargs", kwargs)))

    def add_generation_prompt(self: CB, value: bool) -> CB:
        """Add the assistant generation prompt (vLLM; default True)."""
        return self._set("add_generation_prompt", v.boolean("add_generation_prompt", value))

    def continue_final_message(self: CB, value: bool = True) -> CB:
        """Continue the last (assistant) message instead of starting a new one (vLLM)."""
        return self._set("continue_final_message", v.boolean("continue_final_message", value))

    def add_special_tokens(self: CB, value: bool) -> CB:
        """Add special tokens (e.g. BOS) on top of the chat template's (vLLM)."""
        return self._set("add_special_tokens", v.boolean("add_special_tokens", value))

    def reasoning_effort(self: CB, effort: str) -> CB:
        """"low", "medium" or "high" (also "minimal"/"none" on some servers)."""
        return self._set("reasoning_effort", v.string("reasoning_effort", effort))

    def include_reasoning(self: CB, value: bool) -> CB:
        """Send the reasoning text back (vLLM; default True)."""
        return self._set("include_reasoning", v.boolean("include_reasoning", value))

    # provider dialects

    def reasoning_format(self: CB, fmt: str) -> CB:
        """Groq: "parsed" (reasoning in its own field), "raw" (in <think> tags) or "hidden"."""
        return self._set("reasoning_format", v.string("reasoning_format", fmt))

    def chat_id(self: CB, chat_id: str) -> CB:
        """FastGPT ``chatId``: the server keeps the conversation's history under this id."""
        return self._set("chatId", v.string("chat_id", chat_id))

    def variables(self: CB, variables: Mapping[str, Any]) -> CB:
        """FastGPT ``variables``: values for the app's workflow variables."""
        return self._set("variables", _copy(v.mapping("variables", variables)))

    def detail(self: CB, value: bool = True) -> CB:
        """FastGPT ``detail``: stream the workflow's node events too (``ServerEvent``s)."""
        return self._set("detail", v.boolean("detail", value))

    def _check(self, body: dict[str, Any]) -> None:
        msgs = body.get("messages")
        if not msgs:
            raise InvalidRequestError("no messages: call .messages([...]) or .user_message('...') first")
        if body.get("continue_final_message") is True and body.get("add_generation_prompt", True) is not False:
            raise InvalidRequestError("continue_final_message(True) needs add_generation_prompt(False) "
                                      "(vLLM refuses the two together)")
        _check_min_max(body)
        if "messages" in self._extra:  # the setters checked theirs; extra() may have replaced them
            v.messages("messages", msgs)


class CompletionBody(_SamplingMixin):
    """Setters of a legacy text completion request."""

    _path = "/completions"

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

    def echo(self: B, value: bool = True) -> B:
        """Return the prompt in front of the completion."""
        return self._set("echo", v.boolean("echo", value))

    def best_of(self: B, value: int) -> B:
        """Generate this many and return the best n."""
        return self._set("best_of", v.integer("best_of", value, lo=1))

    def logprobs(self: B, value: int) -> B:
        """Log probabilities of this many top tokens per output token (0-20)."""
        return self._set("logprobs", v.integer("logprobs", value, lo=0, hi=20))

    def _check(self, body: dict[str, Any]) -> None:
        if "prompt" not in body:
            raise InvalidRequestError("no prompt: call .prompt('...') first")
        _check_min_max(body)


class EmbeddingBody(_Builder):
    """Setters of an embeddings request."""

    _path = "/embeddings"

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
