"""vLLM 0.32 wire shapes for ``FakeVllmServer``: pure functions, no sockets.

Every body here mirrors a recorded vLLM 0.32.0 response (``tests/wire/``): the key
order, the extra null keys, compact JSON, and the chunk sequence of a stream.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

FAKE_VLLM_VERSION = "0.33.0+fake"
SYSTEM_FINGERPRINT = "vllm-0.33.0-fake"
WEIGHT_VERSION = "fake-weights-1"  # what weight_versions names

# Token-like pieces: a run of up to 8 non-space characters with the whitespace before it
# (how a BPE tokenizer streams words: "one", " two", " three"); trailing whitespace alone.
_PIECE = re.compile(r"\s*\S{1,8}|\s+")
_BYTE_IDS = 256  # ids below this are raw UTF-8 bytes (a byte-level fallback, like BPE)
_ID_SPACE = 1 << 30


def pieces(text: str) -> list[str]:
    """Split text into token-like pieces that join back to exactly ``text``."""
    return _PIECE.findall(text)


class Tokenizer:
    """A deterministic fake tokenizer: one id per piece (a stable hash), reversible.

    Ids of pieces are ``256 + blake2b(piece) % 2**30`` (the same in every process);
    ids 0-255 decode as raw bytes. Pieces seen by ``encode`` are remembered so that
    ``decode`` can invert them.
    """

    def __init__(self) -> None:
        self._vocab: dict[int, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def piece_id(piece: str) -> int:
        digest = hashlib.blake2b(piece.encode("utf-8"), digest_size=8).digest()
        return _BYTE_IDS + int.from_bytes(digest, "little") % _ID_SPACE

    def encode(self, text: str) -> list[int]:
        return self.ids(pieces(text))

    def ids(self, ps: list[str]) -> list[int]:
        """The ids of these pieces (remembered for ``decode``)."""
        ids = [self.piece_id(p) for p in ps]
        with self._lock:
            for i, p in zip(ids, ps, strict=True):
                self._vocab.setdefault(i, p)
        return ids

    def decode(self, ids: list[int], *, lenient: bool = False) -> str:
        """The text of these ids. An id this tokenizer never produced raises ``KeyError(id)``,
        or with ``lenient`` becomes ``<id>`` (prompts given as token ids)."""
        out: list[str] = []
        raw = bytearray()
        for i in ids:
            if 0 <= i < _BYTE_IDS:
                raw.append(i)
                continue
            if raw:
                out.append(raw.decode("utf-8", "replace"))
                raw.clear()
            piece = self._vocab.get(i)
            if piece is None:
                if not lenient:
                    raise KeyError(i)
                piece = f"<{i}>"
            out.append(piece)
        if raw:
            out.append(raw.decode("utf-8", "replace"))
        return "".join(out)

    def token_strs(self, text: str) -> list[str]:
        """The pieces as byte-level BPE shows them (``"Ġweather"``)."""
        return [p.replace(" ", "Ġ").replace("\n", "Ċ").replace("\t", "ĉ") for p in pieces(text)]


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif part.get("type"):
                    out.append(f"<{part['type']}>")
            elif isinstance(part, str):
                out.append(part)
        return "".join(out)
    return ""


def render_chat(messages: list[Any], tools: Any = None, add_generation_prompt: bool = True) -> str:
    """A fake chat template: what the prompt token count is computed from."""
    out = []
    if tools:
        out.append(f"<|tools|>\n{json.dumps(tools)}\n")
    for m in messages:
        if not isinstance(m, dict):
            continue
        text = content_text(m.get("content"))
        if m.get("tool_calls"):
            text += json.dumps(m["tool_calls"])
        out.append(f"<|{m.get('role', 'user')}|>\n{text}\n")
    if add_generation_prompt:
        out.append("<|assistant|>\n")
    return "".join(out)


def last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return content_text(m.get("content"))
    return ""


# -- errors ------------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
    404: "NotFoundError", 405: "MethodNotAllowedError", 408: "RequestTimeoutError",
    409: "ConflictError", 413: "PayloadTooLargeError", 422: "UnprocessableEntityError",
    429: "RateLimitError", 500: "InternalServerError", 501: "NotImplementedError",
    502: "BadGatewayError", 503: "ServiceUnavailableError", 504: "GatewayTimeoutError",
}
_ERROR_MESSAGES = {
    400: "Bad request (scripted by FakeVllmServer).",
    404: "The model `fake` does not exist.",
    429: "Too many requests (scripted by FakeVllmServer).",
    500: "The server had an error while processing your request.",  # vLLM 0.33 (0.32: "EngineCore encountered...")
    503: "The server is overloaded or not ready yet (scripted by FakeVllmServer).",
}


def error_body(status: int, message: str | None = None, type_: str | None = None,
               param: str | None = None) -> bytes:
    """vLLM's error envelope: ``{"error": {"message", "type", "param", "code": <status>}}``."""
    if message is None:
        message = _ERROR_MESSAGES.get(status, f"Error {status} (scripted by FakeVllmServer).")
    return orjson.dumps({"error": {"message": message,
                                   "type": type_ or _ERROR_TYPES.get(status, "InternalServerError"),
                                   "param": param, "code": status}})


def default_error_body(status: int) -> bytes:
    """What vLLM sends for this status when a test just says ``fail(status)``."""
    if status == 401:  # vLLM's --api-key middleware
        return b'{"error":"Unauthorized"}'
    return error_body(status)


def bad_param(message: str, param: str | None, value: Any = None, *, with_value: bool = True) -> bytes:
    """A 400 ``BadRequestError`` the way vLLM words parameter errors."""
    if param is not None:
        suffix = f"parameter={param}, value={value}" if with_value else f"parameter={param}"
        message = f"{message} ({suffix})"
    return error_body(400, message, "BadRequestError", param)


def validation_error(kind: str, loc: str, msg: str, input_: str, extra: str = "") -> bytes:
    """A FastAPI/pydantic request validation failure: ``type: "Bad Request"``."""
    detail = f"{{'type': '{kind}', 'loc': '{loc}', 'msg': '{msg}', 'input': {input_}{extra}}}"
    return error_body(400, f"1 validation error:\n  {detail}", "Bad Request", loc)


# Request fields and their pydantic types (lax mode, as vLLM's FastAPI models validate them).
_INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "top_k", "seed", "min_tokens", "top_logprobs",
               "truncate_prompt_tokens", "dimensions", "top_n", "max_output_tokens", "prompt_logprobs")
_FLOAT_FIELDS = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty")
_BOOL_FIELDS = ("stream", "echo", "ignore_eos", "skip_special_tokens", "add_generation_prompt",
                "continue_final_message", "add_special_tokens", "include_stop_str_in_output")
_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")


def _number(v: Any) -> float | None:
    """A number as pydantic's lax mode reads one (numbers, bools and numeric strings), else None."""
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def type_error(body: dict[str, Any]) -> bytes | None:
    """vLLM's 400 for the first ill-typed common field (``max_tokens: 1.5``, ``temperature: "hot"``,
    ``stream: "maybe"``, ``model: 7``), worded as pydantic words it; None when all are fine."""
    for key in ("model", "user"):
        v = body.get(key)
        if v is not None and not isinstance(v, str):
            return validation_error("string_type", f"body.{key}", "Input should be a valid string", repr(v))
    for key in _INT_FIELDS:
        v = body.get(key)
        if v is None or isinstance(v, int):
            continue
        if isinstance(v, float) and v.is_integer():
            continue
        if isinstance(v, float):
            return validation_error("int_from_float", f"body.{key}", "Input should be a valid integer, got a "
                                    "number with a fractional part", repr(v))
        if isinstance(v, str):
            x = _number(v)
            if x is None or not x.is_integer():
                return validation_error("int_parsing", f"body.{key}", "Input should be a valid integer, unable "
                                        "to parse string as an integer", repr(v))
            continue
        return validation_error("int_type", f"body.{key}", "Input should be a valid integer", repr(v))
    for key in _FLOAT_FIELDS:
        v = body.get(key)
        if v is None or isinstance(v, (int, float)):
            continue
        if isinstance(v, str):
            if _number(v) is None:
                return validation_error("float_parsing", f"body.{key}", "Input should be a valid number, unable "
                                        "to parse string as a number", repr(v))
            continue
        return validation_error("float_type", f"body.{key}", "Input should be a valid number", repr(v))
    for key in _BOOL_FIELDS:
        v = body.get(key)
        if v is None or isinstance(v, bool) or (isinstance(v, (int, float)) and v in (0, 1)):
            continue
        if isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
            continue
        if isinstance(v, (str, int, float)):
            return validation_error("bool_parsing", f"body.{key}", "Input should be a valid boolean, unable to "
                                    "interpret input", repr(v))
        return validation_error("bool_type", f"body.{key}", "Input should be a valid boolean", repr(v))
    return None


def unknown_model(model: str, served: Iterable[str]) -> bytes:
    """vLLM 0.32's 404 for a model it does not serve."""
    return error_body(404, f"The model `{model}` does not exist. Valid aliases: {', '.join(served)}.",
                      "NotFoundError", "model")


def json_decode_error(raw: bytes) -> bytes:
    try:
        json.loads(raw)
        pos, msg = 0, "Expecting value"
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        pos = getattr(e, "pos", 0) or 0
        msg = getattr(e, "msg", "Invalid JSON")
    return validation_error("json_invalid", f"body.{pos}", "JSON decode error", "'<dict of 0 items>'",
                            f", 'ctx': {{'error': '{msg}'}}")


# -- replies -----------------------------------------------------------------------------------


@dataclass
class ToolCallSpec:
    id: str
    name: str
    arguments: str


@dataclass
class Reply:
    """A resolved reply: what one choice says, already cut into pieces."""

    content: list[str] | None
    reasoning: list[str] | None
    tool_calls: list[ToolCallSpec]
    finish_reason: str
    usage_override: dict[str, Any] | None = None


def make_tool_calls(specs: list[dict[str, Any]] | None) -> list[ToolCallSpec]:
    out = []
    for spec in specs or []:
        fn: dict[str, Any] = spec["function"] if isinstance(spec.get("function"), dict) else spec
        args = fn.get("arguments", {})
        # vLLM's tool parsers re-serialise with json.dumps: '{"city": "Paris"}' (spaced).
        text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        out.append(ToolCallSpec(spec.get("id") or f"chatcmpl-tool-{secrets.token_hex(8)}",
                                str(fn.get("name", "")), text))
    return out


def scripted_reply(content: str | None, reasoning: str | None, tool_calls: list[dict[str, Any]] | None,
                   usage: dict[str, Any] | None, finish_reason: str | None) -> Reply:
    calls = make_tool_calls(tool_calls)
    return Reply(pieces(content) if content is not None else None,
                 pieces(reasoning) if reasoning is not None else None,
                 calls, finish_reason or ("tool_calls" if calls else "stop"), usage)


def schema_example(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value valid for a JSON schema (what a constrained server would send): the first
    enum value / anyOf arm, empty arrays, every property of an object."""
    if not isinstance(schema, dict) or depth > 20:
        return None
    defs = defs if defs is not None else schema.get("$defs") or {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema_example(defs.get(ref[8:]), defs, depth + 1)
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_example(schema[key][0], defs, depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = t[0] if t else None
    if t == "object" or "properties" in schema:
        return {k: schema_example(v, defs, depth + 1) for k, v in (schema.get("properties") or {}).items()}
    if t == "array":
        return [schema_example(x, defs, depth + 1) for x in schema.get("prefixItems") or ()]
    return {"string": "text", "integer": 0, "number": 0.0, "boolean": False}.get(t) if t else None


def structured_text(body: dict[str, Any]) -> str | None:
    """The reply text a structured-outputs request asks for (a JSON schema's example, the first
    choice), or None when the request asks for none."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        return json.dumps(schema_example(fmt["json_schema"].get("schema")))
    so = body.get("structured_outputs")
    if isinstance(so, dict):
        if isinstance(so.get("json"), dict):
            return json.dumps(schema_example(so["json"]))
        if isinstance(so.get("choice"), list) and so["choice"]:
            return str(so["choice"][0])
    return None


def default_reply(text: str, max_tokens: int | None) -> Reply:
    ps = pieces(text)
    if max_tokens is not None and 0 < max_tokens < len(ps):
        return Reply(ps[:max_tokens], None, [], "length")
    return Reply(ps, None, [], "stop")


def completion_tokens(r: Reply) -> int:
    n = len(r.content or ()) + len(r.reasoning or ())
    for c in r.tool_calls:
        n += len(pieces(c.name)) + len(pieces(c.arguments))
    return n


def usage_dict(prompt_tokens: int, completion: int, r: Reply, *, details: bool) -> dict[str, Any]:
    """vLLM's usage object; ``details`` adds the ``*_details`` keys (non-stream bodies)."""
    usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion,
                             "completion_tokens": completion}
    reasoning_details = {"reasoning_tokens": len(r.reasoning or ())} if r.reasoning is not None else None
    if details:
        usage["prompt_tokens_details"] = None
        usage["completion_tokens_details"] = reasoning_details
    elif reasoning_details is not None:
        usage["completion_tokens_details"] = reasoning_details
    if r.usage_override:
        usage.update(r.usage_override)
        if "total_tokens" not in r.usage_override:
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def new_id(prefix: str, request_id: str | None) -> str:
    return f"{prefix}-{request_id}" if request_id else f"{prefix}-{secrets.token_hex(8)}"


@dataclass
class Gen:
    """Everything a chat or completions answer is built from."""

    id: str
    model: str
    n: int
    reply: Reply
    prompt_tokens: int
    prompt_token_ids: list[int] | None  # set when the request asked return_token_ids
    token_ids: list[int] | None
    created: int = field(default_factory=lambda: int(time.time()))
    kv_transfer_params: Any = None  # the final answer's (the fake echoes the request's)
    weight_versions: bool = False  # return_weight_versions: each choice says which weights sampled it


def _weight_versions(g: Gen, tokens: int) -> list[dict[str, Any]] | None:
    return [{"version": WEIGHT_VERSION, "start": 0, "end": tokens}] if g.weight_versions else None


def chat_json(g: Gen) -> bytes:
    r = g.reply
    choices = []
    content = "".join(r.content) if r.content is not None else None
    for i in range(g.n):
        msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": None,
                               "audio": None, "function_call": None}
        if r.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name,
                                                                                "arguments": c.arguments}}
                                 for c in r.tool_calls]
        msg["reasoning"] = "".join(r.reasoning) if r.reasoning is not None else None
        choices.append({"index": i, "message": msg, "logprobs": None, "finish_reason": r.finish_reason,
                        "stop_reason": None, "token_ids": g.token_ids, "routed_experts": None})
        if g.weight_versions:
            choices[-1]["weight_versions"] = _weight_versions(g, completion_tokens(r))
    return orjson.dumps({
        "id": g.id, "object": "chat.completion", "created": g.created, "model": g.model, "choices": choices,
        "service_tier": None, "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage_dict(g.prompt_tokens, g.n * completion_tokens(r), r, details=True),
        "prompt_logprobs": None, "prompt_token_ids": g.prompt_token_ids, "prompt_text": None,
        "kv_transfer_params": g.kv_transfer_params, "ec_transfer_params": None, "metrics": None})


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chat_events(g: Gen, include_usage: bool, continuous_usage: bool) -> list[bytes]:
    """The SSE events of a streamed chat answer, in vLLM 0.33's order and shapes.

    Role chunk per choice (``content: ""``, top-level ``prompt_token_ids``/``prompt_text``),
    reasoning then content pieces (choices interleaved), one chunk per tool call holding
    two same-index entries (name, then arguments) with ``content: null``; the finish rides
    on the last piece for ``length``, else comes as a ``delta: {}`` chunk; the
    ``choices: []`` usage chunk when asked; ``system_fingerprint`` on the last JSON chunk;
    ``kv_transfer_params`` on every chunk (null, the value on the last); ``weight_versions``
    (when asked) on each choice's finish chunk.
    """
    r = g.reply
    head = {"id": g.id, "object": "chat.completion.chunk", "created": g.created, "model": g.model}
    chunks: list[dict[str, Any]] = []
    emitted = 0

    def add(choice: dict[str, Any], counts: bool = True) -> None:
        nonlocal emitted
        emitted += counts
        chunk = {**head, "choices": [choice], "kv_transfer_params": None}
        if continuous_usage:
            chunk["usage"] = {"prompt_tokens": g.prompt_tokens, "total_tokens": g.prompt_tokens + emitted,
                              "completion_tokens": emitted}
        chunks.append(chunk)

    for i in range(g.n):
        add({"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
             "finish_reason": None}, counts=False)
        chunks[-1]["prompt_token_ids"] = g.prompt_token_ids
        chunks[-1]["prompt_text"] = None
    deltas: list[dict[str, Any]] = [{"reasoning": p} for p in r.reasoning or ()]
    deltas += [{"content": p} for p in r.content or ()]
    token_ids = g.token_ids or []
    finish_on_last = r.finish_reason == "length" and bool(deltas) and not r.tool_calls
    for k, delta in enumerate(deltas):
        last = finish_on_last and k == len(deltas) - 1
        for i in range(g.n):
            choice: dict[str, Any] = {"index": i, "delta": delta, "logprobs": None,
                                      "finish_reason": r.finish_reason if last else None}
            if last:
                choice["stop_reason"] = None
            choice["token_ids"] = [token_ids[k]] if k < len(token_ids) else None
            if last and g.weight_versions:
                choice["weight_versions"] = _weight_versions(g, completion_tokens(r))
            add(choice)
    for t, c in enumerate(r.tool_calls):
        entries = [{"id": c.id, "type": "function", "index": t, "function": {"name": c.name}},
                   {"index": t, "function": {"arguments": c.arguments}}]
        for i in range(g.n):
            add({"index": i, "delta": {"content": None, "tool_calls": entries}, "logprobs": None,
                 "finish_reason": None, "token_ids": None})
    if not finish_on_last:
        for i in range(g.n):
            add({"index": i, "delta": {}, "logprobs": None, "finish_reason": r.finish_reason,
                 "stop_reason": None, "token_ids": None}, counts=False)
            if g.weight_versions:
                chunks[-1]["choices"][0]["weight_versions"] = _weight_versions(g, completion_tokens(r))
    return _finish_stream(g, chunks, head, include_usage)


def _finish_stream(g: Gen, chunks: list[dict[str, Any]], head: dict[str, Any], include_usage: bool) -> list[bytes]:
    if include_usage:
        usage = usage_dict(g.prompt_tokens, g.n * completion_tokens(g.reply), g.reply, details=False)
        chunks.append({**head, "choices": [], "usage": usage, "kv_transfer_params": None})
    chunks[-1]["system_fingerprint"] = SYSTEM_FINGERPRINT
    chunks[-1]["kv_transfer_params"] = g.kv_transfer_params
    return [_event(c) for c in chunks] + [DONE]


def completion_json(g: Gen, prompts: list[str], echo: bool, prompt_ids: list[list[int]] | None) -> bytes:
    r = g.reply
    text = "".join(r.content or ())
    choices = []
    for p_index, prompt in enumerate(prompts):
        for j in range(g.n):
            choices.append({"index": p_index * g.n + j, "text": (prompt if echo else "") + text, "logprobs": None,
                            "finish_reason": r.finish_reason, "stop_reason": None, "token_ids": g.token_ids,
                            "prompt_logprobs": None,
                            "prompt_token_ids": prompt_ids[p_index] if prompt_ids is not None else None,
                            "routed_experts": None})
            if g.weight_versions:
                choices[-1]["weight_versions"] = _weight_versions(g, completion_tokens(r))
    return orjson.dumps({
        "id": g.id, "object": "text_completion", "created": g.created, "model": g.model, "choices": choices,
        "service_tier": None, "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage_dict(g.prompt_tokens, len(choices) * completion_tokens(r), r, details=True),
        "kv_transfer_params": g.kv_transfer_params, "ec_transfer_params": None, "metrics": None})


def completion_events(g: Gen, prompts: list[str], echo: bool, include_usage: bool) -> list[bytes]:
    """Legacy completions SSE: ``object: text_completion`` chunks, choices interleaved by index;
    ``length`` rides on the last piece, otherwise an empty-text chunk carries the finish."""
    r = g.reply
    head = {"id": g.id, "object": "text_completion", "created": g.created, "model": g.model}
    per_choice: list[list[str]] = []
    for prompt in prompts:
        for _ in range(g.n):
            texts = list(r.content or ())
            if echo:  # vLLM prepends the prompt to the first delta
                texts = [prompt + texts[0], *texts[1:]] if texts else [prompt]
            per_choice.append(texts)
    separate_finish = r.finish_reason != "length" or not (r.content or ())
    if separate_finish:
        for texts in per_choice:
            texts.append("")
    chunks: list[dict[str, Any]] = []
    longest = max((len(t) for t in per_choice), default=0)
    for k in range(longest):
        for index, texts in enumerate(per_choice):
            if k < len(texts):
                last = k == len(texts) - 1
                chunks.append({**head, "choices": [{
                    "index": index, "text": texts[k], "logprobs": None,
                    "finish_reason": r.finish_reason if last else None, "stop_reason": None,
                    "prompt_token_ids": None, "token_ids": None}], "kv_transfer_params": None})
                if last and g.weight_versions:
                    chunks[-1]["choices"][0]["weight_versions"] = _weight_versions(g, completion_tokens(r))
    if include_usage:
        usage = usage_dict(g.prompt_tokens, len(per_choice) * completion_tokens(r), r, details=False)
        chunks.append({**head, "choices": [], "usage": usage, "kv_transfer_params": None})
    chunks[-1]["system_fingerprint"] = SYSTEM_FINGERPRINT
    chunks[-1]["kv_transfer_params"] = g.kv_transfer_params
    return [_event(c) for c in chunks] + [DONE]


# -- other endpoints ---------------------------------------------------------------------------


def models_json(model: str, root: str, max_model_len: int) -> bytes:
    now = int(time.time())
    return orjson.dumps({"object": "list", "data": [{
        "id": model, "object": "model", "created": now, "owned_by": "vllm", "root": root, "parent": None,
        "max_model_len": max_model_len,
        "permission": [{"id": f"modelperm-{secrets.token_hex(8)}", "object": "model_permission", "created": now,
                        "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                        "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                        "organization": "*", "group": None, "is_blocking": False}]}]})


_WORD = re.compile(r"\w+")
_STOP = frozenset("a an and are as at be by do does for from how in is it its of on or that the this to was "
                  "were what when where which who why with".split())


def embedding(item: Any, dim: int) -> list[float]:
    """A deterministic unit vector for this input (float32-exact, so base64 and floats agree):
    a hashed bag of its words (lower-cased, a plural's ``s`` dropped, common words weighing
    less), so texts that share words get related vectors and rerank / RAG examples rank
    sensibly; plus a small component hashed from the whole input, so no two inputs are equal."""
    text = item if isinstance(item, str) else orjson.dumps(item).decode()
    vec = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        weight = 0.2 if word in _STOP else 1.0
        vec[int.from_bytes(h[:4], "little") % dim] += weight  # (two places: one collision costs half)
        vec[int.from_bytes(h[4:], "little") % dim] += weight
    seed = orjson.dumps(item)
    raw = b"".join(hashlib.blake2b(seed + k.to_bytes(4, "little"), digest_size=64).digest()
                   for k in range((dim * 2 + 63) // 64))
    noise = embedding_normalise([(int.from_bytes(raw[2 * i:2 * i + 2], "little") - 32767.5) / 32767.5
                                 for i in range(dim)])
    norm = sum(v * v for v in vec) ** 0.5
    scale = 0.15 * norm if norm else 1.0  # the words dominate; an input without words is all noise
    return embedding_normalise([v + scale * n for v, n in zip(vec, noise, strict=True)])


def embedding_normalise(vec: list[float]) -> list[float]:
    """Scale to unit length, rounded to float32 values."""
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return list(struct.unpack(f"<{len(vec)}f", struct.pack(f"<{len(vec)}f", *(v / norm for v in vec))))


def embeddings_json(model: str, vectors: list[list[float]], prompt_tokens: int, base64_format: bool) -> bytes:
    data = []
    for i, vec in enumerate(vectors):
        emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if base64_format else vec
        data.append({"index": i, "object": "embedding", "embedding": emb})
    return orjson.dumps({"id": f"embd-{secrets.token_hex(8)}", "object": "list", "created": int(time.time()),
                         "model": model, "data": data,
                         "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens,
                                   "completion_tokens": 0, "prompt_tokens_details": None,
                                   "completion_tokens_details": None}})


@dataclass
class _Answer:
    """One HTTP answer of the fake server (status, body, headers; SSE events for a stream)."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    events: list[bytes] | None = None  # an SSE answer
    exact: bool = False  # raw(): the caller's headers are the framing
