"""FakeVllmServer's routes beyond chat / completions / embeddings, in vLLM 0.32's shapes (as
recorded in tests/wire/vllm032-surface) and 0.33's: the Responses API (JSON and named SSE
events, ``response.incomplete`` when cut, a response store for retrieve / cancel), batched chat,
``/metrics``, runtime LoRA adapters, audio transcription / translation (multipart forms),
``/v1/decisions`` and a token-embedding server's ``/v1/embeddings`` (0.33)."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson

from . import _wire as w
from ._wire import _Answer

if TYPE_CHECKING:
    from ._server import _Headers, _Item

__all__ = ["SurfaceRoutes", "RESPONSES", "CHAT_BATCH"]

RESPONSES = "/v1/responses"
CHAT_BATCH = "/v1/chat/completions/batch"
_AUDIO = ("/v1/audio/transcriptions", "/v1/audio/translations")
_LORA = ("/v1/load_lora_adapter", "/v1/unload_lora_adapter")
DECISIONS = "/v1/decisions"
_EMBEDDINGS = "/v1/embeddings"
_RESPONSE_ID = re.compile(r"^/v1/responses/([^/]+)(/cancel)?$")
_SSE = "text/event-stream; charset=utf-8"


def _answer(status: int, body: bytes = b"", content_type: str | None = "application/json", **kw: Any) -> _Answer:
    return _Answer(status, body, content_type, **kw)


def _named(name: str, obj: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(obj) + b"\n\n"


def _responses_usage(prompt: int, output: int, reasoning: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                                             "input_tokens_per_turn": [],
                                                             "cached_tokens_per_turn": []},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning,
                                                               "tool_output_tokens": 0,
                                                               "output_tokens_per_turn": [],
                                                               "tool_output_tokens_per_turn": []},
            "total_tokens": prompt + output}


def _input_text(given: Any) -> str:
    """The last user text of a Responses ``input`` (a string or input items)."""
    if isinstance(given, str):
        return given
    return w.last_user_text([i for i in given if isinstance(i, dict) and "role" in i]) if isinstance(given, list) \
        else ""


def _has_tool_output(given: Any) -> bool:
    return isinstance(given, list) and any(isinstance(i, dict) and i.get("type") == "function_call_output"
                                           for i in given)


def _multipart(headers: _Headers, raw: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]] | None:
    """(fields, files) of a multipart/form-data body; None when it is not one."""
    ctype = headers.get("content-type") or ""
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not ctype.lower().startswith("multipart/form-data") or m is None:
        return None
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in raw.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        data = data[:-2] if data.endswith(b"\r\n") else data
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        if name is None:
            continue
        filename = re.search(r'filename="([^"]*)"', disposition)
        if filename is not None:
            files[name.group(1)] = (filename.group(1), data)
        else:
            fields[name.group(1)] = data.decode("utf-8", "replace")
    return fields, files


class SurfaceRoutes:
    """Mixed into ``FakeVllmServer``: answers the routes above (``_surface_route``)."""

    model: str
    max_model_len: int
    root: str
    _lock: threading.Lock
    _in_flight: int
    _tokenizer: w.Tokenizer
    token_embed: bool
    embedding_dim: int

    def _surface_init(self) -> None:
        self.lora_adapters: dict[str, str] = {}  # name -> path, as loaded with /v1/load_lora_adapter
        self.stored_responses: dict[str, dict[str, Any]] = {}  # id -> response object (store: true)

    def _surface_route(self, method: str, path: str, headers: _Headers, raw: bytes, body: Any,
                       reply: _Item | None) -> tuple[_Answer, bool] | None:
        """The answer for a route of this module, or None for the others."""
        if path == "/metrics" and method == "GET":
            return _answer(200, self._metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8"), False
        if path == "/v1/models" and method == "GET" and self.lora_adapters:
            listing = orjson.loads(w.models_json(self.model, self.root, self.max_model_len))
            for name, lora_path in self.lora_adapters.items():
                listing["data"].append({**listing["data"][0], "id": name, "root": lora_path, "parent": self.model})
            return _answer(200, orjson.dumps(listing)), False
        m = _RESPONSE_ID.match(path)
        if m is not None and method == ("POST" if m.group(2) else "GET"):
            return self._stored(m.group(1), bool(m.group(2))), False
        if method != "POST" or path not in (RESPONSES, CHAT_BATCH, DECISIONS, *_AUDIO, *_LORA) and not (
                path == _EMBEDDINGS and self.token_embed):
            return None
        if path in _AUDIO:
            return self._audio(path, headers, raw), False
        if not isinstance(body, dict):
            return _answer(400, w.error_body(400, "1 validation error: expected a JSON object", "Bad Request")), False
        if path in _LORA:
            return self._lora(path, body), False
        if path == DECISIONS:
            return self._decisions(body), False
        if path == _EMBEDDINGS:
            return self._token_embeddings(body), False
        if path == CHAT_BATCH:
            return self._chat_batch(body, headers, reply)
        with self._lock:
            self._in_flight += 1
        try:
            return self._responses(body, reply)
        finally:
            with self._lock:
                self._in_flight -= 1

    # -- /metrics and LoRA -----------------------------------------------------------------

    def _metrics_text(self) -> str:
        labels = f'engine="0",model_name="{self.model}"'
        return (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{{{labels}}} {float(self._in_flight)}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{{{labels}}} 0.0\n"
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f"vllm:kv_cache_usage_perc{{{labels}}} 0.0\n"
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{{{labels}}} 0.0\n"
        )

    def _lora(self, path: str, body: dict[str, Any]) -> _Answer:
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            return _answer(400, w.error_body(400, "Both 'lora_name' and 'lora_path' must be provided.",
                                             "InvalidUserInput"))
        if path.endswith("/load_lora_adapter"):
            lora_path = body.get("lora_path")
            if not isinstance(lora_path, str) or not lora_path:
                return _answer(400, w.error_body(400, "Both 'lora_name' and 'lora_path' must be provided.",
                                                 "InvalidUserInput"))
            if name in self.lora_adapters and not body.get("load_inplace"):
                return _answer(400, w.error_body(400, f"The lora adapter '{name}' has already been loaded. If you "
                                                      "want to load the adapter in place, set 'load_inplace' to "
                                                      "True.", "InvalidUserInput"))
            self.lora_adapters[name] = lora_path
            return _answer(200, f"Success: LoRA adapter '{name}' added successfully.".encode(), None)
        if self.lora_adapters.pop(name, None) is None:
            return _answer(404, w.error_body(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError"))
        return _answer(200, f"Success: LoRA adapter '{name}' removed successfully.".encode(), None)

    # -- batched chat ----------------------------------------------------------------------

    def _chat_batch(self, body: dict[str, Any], headers: _Headers, reply: _Item | None) -> tuple[_Answer, bool]:
        convs = body.get("messages")
        if not isinstance(convs, list) or not convs or not all(isinstance(c, list) for c in convs):
            return _answer(400, w.validation_error("list_type", "body.messages", "Input should be a valid list of "
                                                   "conversations", repr(convs)[:60])), False
        merged: dict[str, Any] | None = None
        used = False
        for i, conv in enumerate(convs):
            one = {k: x for k, x in body.items() if k != "stream"}
            one["messages"] = conv
            answer, took = self._generate(one, headers, True, reply if not used else None)  # type: ignore[attr-defined]
            used = used or took
            if answer.status != 200:
                return answer, used
            obj = orjson.loads(answer.body)
            choice = {**obj["choices"][0], "index": i}
            if merged is None:
                merged = obj
                merged["choices"] = []
                usage = merged["usage"] = dict(obj["usage"])
            else:
                for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    usage[k] += obj["usage"][k]
            merged["choices"].append(choice)
        return _answer(200, orjson.dumps(merged)), used

    # -- the Responses API -----------------------------------------------------------------

    def _stored(self, response_id: str, cancel: bool) -> _Answer:
        stored = self.stored_responses.get(response_id)
        if stored is None:
            return _answer(404, orjson.dumps({"error": {"message": f"Response with id '{response_id}' not found.",
                                                        "type": "invalid_request_error", "param": "response_id",
                                                        "code": 404}}))
        if cancel:
            if stored["status"] not in ("queued", "in_progress"):
                return _answer(400, w.error_body(400, "Cannot cancel a synchronous response.",
                                                 "invalid_request_error"))
            stored["status"] = "cancelled"
        return _answer(200, orjson.dumps(stored))

    def _responses(self, body: dict[str, Any], reply: _Item | None) -> tuple[_Answer, bool]:
        given = body.get("input")
        if given in (None, "", []):
            return _answer(400, w.validation_error("missing", "body.input", "Field required",
                                                   f"'<dict of {len(body)} items>'")), False
        model = body.get("model") if isinstance(body.get("model"), str) else self.model
        limit = body.get("max_output_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > self.max_model_len:
            return _answer(400, w.bad_param(f"max_output_tokens={limit} cannot be greater than max_model_len="
                                            f"{self.max_model_len}.", "max_output_tokens", limit)), False
        scripted = reply.args.get("reply") if reply is not None else None
        used = scripted is not None
        if scripted is None:
            last = _input_text(given)
            if body.get("tools") and body.get("tool_choice") == "required" and not _has_tool_output(given):
                name = body["tools"][0].get("name", "tool")
                scripted = w.scripted_reply(None, None, [{"name": name, "arguments": {}}], None, None)
            else:
                text = "Hello! I am a fake vLLM server." + (f" You said: {last}" if last else "")
                scripted = w.default_reply(text, limit if isinstance(limit, int) else None)
        prompt_text = (body.get("instructions") or "") + (given if isinstance(given, str) else orjson.dumps(given)
                                                          .decode())
        prompt_tokens = len(self._tokenizer.encode(prompt_text))
        rid = f"resp_{secrets.token_hex(8)}"
        output: list[dict[str, Any]] = []
        if scripted.reasoning is not None:
            output.append({"id": f"rs_{secrets.token_hex(8)}", "summary": [], "type": "reasoning",
                           "content": [{"text": "".join(scripted.reasoning), "type": "reasoning_text"}],
                           "encrypted_content": None, "status": None})
        if scripted.content is not None:
            output.append({"id": f"msg_{secrets.token_hex(8)}", "content": [
                {"annotations": [], "text": "".join(scripted.content), "type": "output_text", "logprobs": None}],
                "role": "assistant", "status": "completed", "type": "message", "phase": None})
        for call in scripted.tool_calls:
            output.append({"arguments": call.arguments, "call_id": call.id, "name": call.name,
                           "type": "function_call", "id": f"fc_{secrets.token_hex(8)}", "async": None,
                           "caller": None, "namespace": None, "status": "completed"})
        incomplete = scripted.finish_reason == "length"
        if incomplete and output:  # vLLM 0.33: the item the limit cut is incomplete
            output[-1]["status"] = "incomplete"
        response = {
            "id": rid, "created_at": int(time.time()),
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"), "metadata": body.get("metadata"), "model": model,
            "object": "response", "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "temperature": float(body.get("temperature", 1.0)), "tool_choice": body.get("tool_choice", "none"),
            "tools": body.get("tools") or [], "top_p": float(body.get("top_p", 1.0)),
            "background": bool(body.get("background")), "max_output_tokens": limit, "max_tool_calls": None,
            "previous_response_id": body.get("previous_response_id"), "prompt": None,
            "reasoning": body.get("reasoning"), "service_tier": "auto",
            "status": "incomplete" if incomplete else "completed", "text": body.get("text"), "top_logprobs": None,
            "truncation": "disabled",
            "usage": _responses_usage(prompt_tokens, w.completion_tokens(scripted), len(scripted.reasoning or ())),
            "user": None,
        }
        if body.get("store") is not False:
            self.stored_responses[rid] = response
        if not body.get("stream"):
            return _answer(200, orjson.dumps(response)), used
        return _answer(200, content_type=_SSE, events=_response_events(response, scripted)), used

    # -- vLLM 0.33: decisions and token embeddings ------------------------------------------

    def _decisions(self, body: dict[str, Any]) -> _Answer:
        """Deterministic probabilities from a hash of (input, question): the shapes of vLLM 0.33."""
        for key in ("model", "input", "questions"):
            if key not in body:
                return _answer(400, w.validation_error("missing", f"body.{key}", "Field required",
                                                       f"'<dict of {len(body)} items>'"))
        given, questions = body["input"], body["questions"]
        if not isinstance(questions, list) or not 1 <= len(questions) <= 200:
            return _answer(400, w.bad_param("questions: give 1 to 200 questions", "questions", with_value=False))
        text = given if isinstance(given, str) else orjson.dumps(given).decode()
        answers = []
        for q in questions:
            kind = q.get("type") if isinstance(q, dict) else None
            if kind not in ("predicate", "choice", "score") or not isinstance(q.get("instructions"), str):
                return _answer(400, w.validation_error("union_tag_invalid", "body.questions", "Input tag does not "
                                                       "match any of the expected tags", repr(kind)))
            got = q.get("choices") if kind == "choice" else q.get("levels") if kind == "score" else []
            options: list[Any] = got if isinstance(got, list) else []
            if kind != "predicate" and len(options) < 2:
                return _answer(400, w.bad_param(f"a {kind} question needs at least 2 options", "questions",
                                                with_value=False))
            weights = [_unit(text, q["instructions"], i) for i in range(len(options) if options else 1)]
            name = q.get("name")
            if kind == "predicate":
                answers.append({"type": "predicate", "name": name, "probability": round(weights[0], 6)})
                continue
            probs = _softmax(weights)
            best = max(range(len(probs)), key=probs.__getitem__)
            if kind == "choice":
                answers.append({"type": "choice", "name": name, "choice": options[best]["value"],
                                "probabilities": [{"value": o["value"], "probability": p}
                                                  for o, p in zip(options, probs, strict=True)],
                                "confidence": probs[best]})
            else:
                answers.append({"type": "score", "name": name,
                                "score": round(sum(i * p for i, p in enumerate(probs)), 6),
                                "probabilities": [{"value": i, "label": o["label"], "probability": p}
                                                  for i, (o, p) in enumerate(zip(options, probs, strict=True))],
                                "confidence": probs[best]})
        tokens = len(self._tokenizer.encode(text))
        usage = {"input_tokens": tokens, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": tokens}
        model = body["model"] if isinstance(body["model"], str) else self.model
        return _answer(200, orjson.dumps({"model": model, "answers": answers, "usage": usage}))

    def _token_embeddings(self, body: dict[str, Any]) -> _Answer:
        """A ``token_embed`` pooling server (vLLM 0.33): a matrix per input, one unit vector per
        token, or per chunk of ``late_chunking_params.chunk_size`` tokens (their mean), with
        ``late_chunking`` saying the chunks' token spans."""
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given if isinstance(given, list) and given and all(
            isinstance(x, str) for x in given) else None
        if texts is None:
            return _answer(400, w.validation_error("missing", "body.input", "Field required",
                                                   f"'<dict of {len(body)} items>'"))
        if (body.get("encoding_format") or "float") != "float":
            return _answer(400, w.validation_error("literal_error", "body.encoding_format", "Input should be 'float'",
                                                   repr(body.get("encoding_format"))))
        late = body.get("late_chunking_params")
        size = late.get("chunk_size") if isinstance(late, dict) else None
        if late is not None and not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
            return _answer(400, w.validation_error("greater_than", "body.late_chunking_params.chunk_size",
                                                   "Input should be greater than 0", repr(size)))
        data, total = [], 0
        for i, text in enumerate(texts):
            pieces = w.pieces(text) or [""]
            total += len(pieces)
            rows = [w.embedding([text, k, p], self.embedding_dim) for k, p in enumerate(pieces)]
            item: dict[str, Any] = {"index": i, "object": "embedding", "embedding": rows}
            if size:
                spans = [[a, min(a + size, len(rows))] for a in range(0, len(rows), size)]
                item["embedding"] = [w.embedding_normalise([sum(c) / (b - a) for c in zip(*rows[a:b], strict=True)])
                                     for a, b in spans]
                item["late_chunking"] = {"chunk_size": size, "spans": spans}
            data.append(item)
        return _answer(200, orjson.dumps({
            "id": f"embd-{secrets.token_hex(8)}", "object": "list", "created": int(time.time()),
            "model": body["model"] if isinstance(body.get("model"), str) else self.model, "data": data,
            "usage": {"prompt_tokens": total, "total_tokens": total, "completion_tokens": 0,
                      "prompt_tokens_details": None}}))

    # -- audio -----------------------------------------------------------------------------

    def _audio(self, path: str, headers: _Headers, raw: bytes) -> _Answer:
        form = _multipart(headers, raw)
        if form is None:
            return _answer(400, w.error_body(400, "Expected a multipart/form-data body", "Bad Request"))
        fields, files = form
        audio = files.get("file")
        if audio is None or not audio[1]:
            return _answer(400, w.validation_error("missing", "body.file", "Field required", "None"))
        verb = "translation" if path.endswith("translations") else "transcription"
        text = f"Fake {verb} of {audio[0]} ({len(audio[1])} bytes)."
        fmt = fields.get("response_format") or "json"
        model = fields.get("model") or self.model
        duration = round(len(audio[1]) / 32000, 3)  # 16 kHz, 16-bit mono
        if fields.get("stream") == "true":
            cid = f"trsc-{secrets.token_hex(8)}"
            now = int(time.time())
            events = [b"data: " + orjson.dumps({"id": cid, "object": "transcription.chunk", "created": now,
                                                "model": model, "choices": [{"delta": {"content": p},
                                                                             "finish_reason": None,
                                                                             "stop_reason": None}]}) + b"\n\n"
                      for p in w.pieces(text)]
            events.append(b"data: " + orjson.dumps({"id": cid, "object": "transcription.chunk", "created": now,
                                                    "model": model, "choices": [{"delta": {},
                                                                                 "finish_reason": "stop",
                                                                                 "stop_reason": None}]}) + b"\n\n")
            events.append(w.DONE)
            return _answer(200, content_type=_SSE, events=events)
        if fmt in ("text", "srt", "vtt"):
            return _answer(200, text.encode(), "text/plain; charset=utf-8")
        usage = {"type": "duration", "seconds": max(1, round(duration))}
        if fmt == "verbose_json":
            return _answer(200, orjson.dumps({
                "duration": duration, "language": fields.get("language") or "en", "text": text,
                "segments": [{"id": 0, "avg_logprob": -0.1, "compression_ratio": 1.0, "end": duration,
                              "no_speech_prob": 0.0, "seek": 0, "start": 0.0, "temperature": 0.0, "text": text,
                              "tokens": self._tokenizer.encode(text)}],
                "usage": usage, "words": None}))
        return _answer(200, orjson.dumps({"text": text, "usage": usage}))


def _unit(text: str, instructions: str, k: int) -> float:
    """A deterministic number in (0, 1) for (text, question, option)."""
    digest = hashlib.blake2b(f"{k}\0{instructions}\0{text}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") % 999_983 + 1) / 999_985


def _softmax(weights: list[float]) -> list[float]:
    exps = [math.exp(4 * x) for x in weights]
    total = sum(exps)
    return [round(e / total, 6) for e in exps]


def _response_events(response: dict[str, Any], scripted: w.Reply) -> list[bytes]:
    """The named SSE events of a streamed response, in vLLM 0.32's order and shapes."""
    seq = iter(range(1 << 30))
    start = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events = [_named("response.created", {"response": start, "sequence_number": next(seq),
                                           "type": "response.created"}),
              _named("response.in_progress", {"response": start, "sequence_number": next(seq),
                                               "type": "response.in_progress"})]

    def ev(kind: str, /, **fields: Any) -> None:
        events.append(_named(kind, {**fields, "sequence_number": next(seq), "type": kind}))

    for idx, item in enumerate(response["output"]):
        kind = item["type"]
        if kind == "message":
            text = item["content"][0]["text"]
            ev("response.output_item.added", item={**item, "content": [], "status": "in_progress"},
               output_index=idx)
            ev("response.content_part.added", content_index=0, item_id=item["id"], output_index=idx,
               part={"annotations": [], "text": "", "type": "output_text", "logprobs": []})
            for p in scripted.content or ():
                ev("response.output_text.delta", content_index=0, delta=p, item_id=item["id"], logprobs=[],
                   output_index=idx)
            ev("response.output_text.done", content_index=0, item_id=item["id"], logprobs=[], output_index=idx,
               text=text)
            ev("response.content_part.done", content_index=0, item_id=item["id"], output_index=idx,
               part=item["content"][0])
        elif kind == "reasoning":
            ev("response.output_item.added", item={**item, "content": []}, output_index=idx)
            for p in scripted.reasoning or ():
                ev("response.reasoning_text.delta", content_index=0, delta=p, item_id=item["id"],
                   output_index=idx)
            ev("response.reasoning_text.done", content_index=0, item_id=item["id"], output_index=idx,
               text=item["content"][0]["text"])
        else:
            ev("response.output_item.added", item={**item, "arguments": "", "status": "in_progress"},
               output_index=idx)
            ev("response.function_call_arguments.delta", delta=item["arguments"], item_id=item["id"],
               output_index=idx)
            ev("response.function_call_arguments.done", arguments=item["arguments"], item_id=item["id"],
               output_index=idx, name=item["name"])
        ev("response.output_item.done", item=item, output_index=idx)
    ev("response.incomplete" if response["status"] == "incomplete" else "response.completed", response=response)
    return events
