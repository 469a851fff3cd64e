"""Sampling setters shared by chat and legacy completions (OpenAI fields + vLLM's), and
the whole-body checks they need. Every endpoint that generates text mixes this in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _validate as v
from .._exceptions import InvalidRequestError
from .base import B, _copy
from .common import _CommonFields

__all__ = ["_SamplingMixin", "_check_min_max", "_guided_warning"]


class _SamplingMixin(_CommonFields):
    """Sampling parameters shared by chat and legacy completions (OpenAI + vLLM)."""

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

    def stream(self: B, stream: bool) -> B:
        """Ask for a stream (``send()`` then consumes it and returns the final response)."""
        return self._set("stream", v.boolean("stream", stream))

    def stream_options(self: B, options: Mapping[str, Any]) -> B:
        """e.g. ``{"include_usage": True}`` (vLLM also: ``continuous_usage_stats``)."""
        return self._set("stream_options", _copy(v.mapping("stream_options", options)))

    def echo(self: B, value: bool = True) -> B:
        """Completions: return the prompt in front of the completion. Chat (vLLM): prepend the
        last message to the reply when both have the same role."""
        return self._set("echo", v.boolean("echo", value))

    # vLLM generation extensions (vLLM 0.32's ChatCompletionRequest / CompletionRequest)

    def thinking_token_budget(self: B, value: int) -> B:
        """Most reasoning tokens before the model is made to answer (vLLM, servers with a reasoning
        parser; -1 means unlimited)."""
        return self._set("thinking_token_budget", v.integer("thinking_token_budget", value, lo=-1))

    def use_beam_search(self: B, value: bool = True) -> B:
        """Beam search instead of sampling (vLLM; ``n`` beams)."""
        return self._set("use_beam_search", v.boolean("use_beam_search", value))

    def length_penalty(self: B, value: float) -> B:
        """Beam search's length penalty (vLLM; 1 is none)."""
        return self._set("length_penalty", v.number("length_penalty", value))

    def allowed_token_ids(self: B, ids: list[int]) -> B:
        """Sample only from these token ids (vLLM)."""
        return self._set("allowed_token_ids", v.int_list("allowed_token_ids", ids))

    def bad_words(self: B, words: list[str]) -> B:
        """Words (token sequences) the model must not generate (vLLM)."""
        w = v.str_or_str_list("bad_words", words)
        return self._set("bad_words", [w] if isinstance(w, str) else w)

    def logprob_token_ids(self: B, ids: list[int]) -> B:
        """Return log probabilities of these token ids at every position (vLLM; e.g. a label set)."""
        return self._set("logprob_token_ids", v.int_list("logprob_token_ids", ids))

    def return_token_ids(self: B, value: bool = True) -> B:
        """Return the prompt's and the output's token ids (vLLM: ``prompt_token_ids`` on the
        response, ``token_ids`` on each choice)."""
        return self._set("return_token_ids", v.boolean("return_token_ids", value))

    def return_tokens_as_token_ids(self: B, value: bool = True) -> B:
        """Logprobs name tokens as ``token_id:N`` instead of their text (vLLM)."""
        return self._set("return_tokens_as_token_ids", v.boolean("return_tokens_as_token_ids", value))

    def session_id(self: B, value: str) -> B:
        """A stable id shared by the requests of one conversation or agent session (vLLM)."""
        return self._set("session_id", v.string("session_id", value))

    def stream_interval(self: B, value: int) -> B:
        """Tokens per streamed chunk (vLLM; raised to the server's ``--stream-interval`` at least)."""
        return self._set("stream_interval", v.integer("stream_interval", value, lo=1))

    def repetition_detection(self: B, *, min_pattern_size: int = 0, max_pattern_size: int = 0,
                             min_count: int = 0) -> B:
        """End generation early when an n-gram of ``min_pattern_size``..``max_pattern_size`` tokens
        repeats ``min_count`` times (vLLM)."""
        spec = {"min_pattern_size": v.integer("repetition_detection(min_pattern_size=)", min_pattern_size, lo=0),
                "max_pattern_size": v.integer("repetition_detection(max_pattern_size=)", max_pattern_size, lo=0),
                "min_count": v.integer("repetition_detection(min_count=)", min_count, lo=0)}
        if spec["max_pattern_size"] < spec["min_pattern_size"]:
            raise InvalidRequestError("repetition_detection(...): max_pattern_size is below min_pattern_size")
        return self._set("repetition_detection", spec)

    def watermarking(self: B, value: bool = True) -> B:
        """Watermark the output (vLLM, servers with a watermarking logits processor)."""
        return self._set("watermarking", v.boolean("watermarking", value))

    def vllm_xargs(self: B, xargs: Mapping[str, str | int | float | list[str | int | float]]) -> B:
        """Extra parameters for the server's custom extensions (vLLM): strings, numbers or lists of them."""
        x = v.mapping("vllm_xargs", xargs)
        if x is not None:
            for k, val in x.items():
                items = val if isinstance(val, list) else [val]
                if not all(isinstance(i, (str, int, float)) and not isinstance(i, bool) for i in items):
                    raise InvalidRequestError(f"vllm_xargs[{k!r}]: expected a string, a number or a list of them")
            v.check_finite(x, "vllm_xargs")
        return self._set("vllm_xargs", _copy(x))

    def kv_transfer_params(self: B, params: Mapping[str, Any]) -> B:
        """KV-cache transfer parameters for disaggregated prefill/decode serving (vLLM); a
        response's ``kv_transfer_params`` go into the next request."""
        return self._set("kv_transfer_params", _copy(v.mapping("kv_transfer_params", params)))

    def ec_transfer_params(self: B, params: Mapping[str, Any]) -> B:
        """Encoder-cache transfer parameters for disaggregated encoder serving (vLLM)."""
        return self._set("ec_transfer_params", _copy(v.mapping("ec_transfer_params", params)))

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
        """Drop special tokens from the output text (vLLM; when not set, the server's default
        comes from the model's generation config, else True)."""
        return self._set("skip_special_tokens", v.boolean("skip_special_tokens", value))

    def return_weight_versions(self: B, value: bool = True) -> B:
        """Report which weight version sampled which output tokens: ``choice.weight_versions``
        (vLLM 0.33+, for RL training loops that update weights during generation)."""
        return self._set("return_weight_versions", v.boolean("return_weight_versions", value))

    def spaces_between_special_tokens(self: B, value: bool) -> B:
        """Put spaces between special tokens in the output (vLLM)."""
        return self._set("spaces_between_special_tokens", v.boolean("spaces_between_special_tokens", value))

    def include_stop_str_in_output(self: B, value: bool = True) -> B:
        """Keep the matched stop string in the text (vLLM)."""
        return self._set("include_stop_str_in_output", v.boolean("include_stop_str_in_output", value))

    def prompt_logprobs(self: B, value: int) -> B:
        """Log probabilities of this many top tokens per prompt token (vLLM)."""
        return self._set("prompt_logprobs", v.integer("prompt_logprobs", value, lo=-1))

    def structured_outputs(
        self: B,
        *,
        json: Mapping[str, Any] | str | Any = None,
        regex: str | None = None,
        choice: list[str] | Any = None,
        grammar: str | None = None,
        json_object: bool | None = None,
        structural_tag: str | None = None,
        **more: Any,
    ) -> B:
        """vLLM structured outputs (``structured_outputs`` field, vLLM >= 0.10.2):
        exactly one of json (a JSON schema), regex, choice, grammar, json_object, structural_tag.

        ``json=`` also takes a type (pydantic model, dataclass, TypedDict, ``list[Item]``, ...) and
        ``choice=`` an Enum subclass or a ``Literal[...]``: the chat response's ``.parsed`` is
        then the validated instance (the Enum member / Literal value)."""
        from .._structured import choice_output, structured_output

        spec: dict[str, Any] = {}
        output = None
        if json is not None:
            if isinstance(json, (str, Mapping)):
                spec["json"] = json if isinstance(json, str) else _copy(v.mapping("structured_outputs(json=)", json))
            else:
                output = structured_output(json, where="structured_outputs(json=)")
                spec["json"] = output.schema
        if regex is not None:
            spec["regex"] = v.string("structured_outputs(regex=)", regex)
        if choice is not None:
            if isinstance(choice, (str, list, tuple)):
                spec["choice"] = v.str_or_str_list("structured_outputs(choice=)", choice)
                if isinstance(spec["choice"], str):
                    raise InvalidRequestError("structured_outputs(choice=...): expected a list of strings")
            else:
                output = choice_output(choice)
                spec["choice"] = output.choices
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
        self._set_output(output)
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
