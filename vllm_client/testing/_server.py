"""``FakeVllmServer``: a real HTTP/1.1 server on 127.0.0.1 that speaks vLLM's OpenAI-compatible API.

It answers in vLLM 0.32's wire format (chat JSON and SSE token by token, legacy
completions, models, embeddings, health, version, tokenize/detokenize at the root),
with scripted replies and faults queued in order. Standard library + orjson only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["FakeVllmServer", "RecordedRequest"]

_PIECE = re.compile(r"\s*\S+|\s+$")
FAKE_VERSION = "0.0.0+fake"


class _Headers(dict[str, str]):
    """Request headers; keys are lower-case, look-ups are case-insensitive."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class RecordedRequest:
    """What the server received: method, path, headers (case-insensitive), parsed JSON body, raw bytes."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw: bytes = field(repr=False, default=b"")


@dataclass
class _Plan:
    """How the next generation request is answered (built from the queue)."""

    kind: str = "reply"  # reply | fail | raw | sse | reset | mid_body
    reply: dict[str, Any] | None = None
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    trickle: float = 0.0
    disconnect_after: int | None = None
    stall: tuple[float, int] | None = None


_MODIFIERS = {"delay", "trickle", "disconnect_after", "stall"}


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_request(self) -> tuple[str, str, _Headers, bytes] | None:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
            if len(self.buf) > 1 << 20:
                return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, path, _ = lines[0].split(" ", 2)
        except ValueError:
            return None
        headers = _Headers()
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length") or 0)
        while len(rest) < n:
            data = self.sock.recv(65536)
            if not data:
                return None
            rest += data
        body, self.buf = rest[:n], rest[n:]
        return method, path, headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(self, status: int, body: bytes, ctype: str | None = "application/json",
                headers: Mapping[str, str] | None = None) -> None:
        hdrs = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-length: {len(body)}",
                "server: FakeVllmServer"]
        if ctype and body:
            hdrs.append(f"content-type: {ctype}")
        hdrs += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(hdrs) + "\r\n\r\n").encode("latin-1") + body)

    def start_chunked(self, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        hdrs = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "content-type: text/event-stream; charset=utf-8",
                "transfer-encoding: chunked", "server: FakeVllmServer"]
        hdrs += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(hdrs) + "\r\n\r\n").encode("latin-1"))

    def chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self.send(b"0\r\n\r\n")

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}
_ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                404: "NotFoundError", 422: "UnprocessableEntityError", 429: "RateLimitError"}


def _pieces(text: str) -> list[str]:
    """Token-like pieces: words with their leading spaces (as a BPE tokenizer would stream them)."""
    return _PIECE.findall(text) or ([text] if text else [])


def _fake_tokens(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _message_text(messages: Any) -> str:
    out = []
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        out.append(f"<|{m.get('role')}|>{content or ''}\n")
    return "".join(out)


class FakeVllmServer:
    """A fake vLLM server for tests: real sockets, vLLM's wire format, scripted replies and faults.

    ::

        with FakeVllmServer() as server:
            server.reply(content="Paris", reasoning="Capital of France...")
            client = VllmClient(server.url)
            ...
            server.requests[-1].body   # what the client sent

    Queued items (``reply``, ``fail``, ``raw``, ``sse``, ``disconnect_before_response``,
    ``disconnect_mid_body``) answer the next chat or completions request, in order;
    ``delay``, ``trickle``, ``stall`` and ``disconnect_after`` modify the reply they
    precede. With nothing queued, a default reply echoes the last user message.
    Other endpoints (models, health, tokenize, ...) never consume the queue.
    """

    def __init__(self, model: str = "fake-model", *, host: str = "127.0.0.1", port: int = 0,
                 max_model_len: int = 4096) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.requests: list[RecordedRequest] = []
        self._host = host
        self._port = port
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._lsock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[_Conn] = set()
        self._stopping = threading.Event()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ending in ``/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The server root (``/health``, ``/version``, ``/tokenize`` live here)."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> FakeVllmServer:
        """Bind a free port and serve in a daemon thread (returns at once)."""
        if self._thread is not None:
            return self
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self._host, self._port))
        lsock.listen(256)
        lsock.settimeout(0.1)
        self._lsock = lsock
        self.port = lsock.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"FakeVllmServer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection (idle keep-alive ones too) and free the port."""
        self._stopping.set()
        if self._lsock is not None:
            with contextlib.suppress(OSError):
                self._lsock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self._lsock = None

    def __enter__(self) -> FakeVllmServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeVllmServer(url={self.url!r}, model={self.model!r})"

    # -- scripting ---------------------------------------------------------------------------

    def _push(self, kind: str, **kw: Any) -> FakeVllmServer:
        with self._lock:
            self._queue.append((kind, kw))
        return self

    def reply(self, content: str | None = None, reasoning: str | None = None,
              tool_calls: list[dict[str, Any]] | None = None, usage: dict[str, Any] | None = None,
              finish_reason: str | None = None) -> FakeVllmServer:
        """Queue the next chat/completions reply; served as JSON or SSE to match the request.

        ``tool_calls``: ``[{"name": ..., "arguments": dict or JSON text, "id": optional}]``.
        """
        return self._push("reply", content=content, reasoning=reasoning, tool_calls=tool_calls, usage=usage,
                          finish_reason=finish_reason)

    def fail(self, status: int, body: Any = None, retry_after: float | str | None = None) -> FakeVllmServer:
        """Queue an error answer: ``body`` a dict (JSON), str (text) or None (vLLM's error JSON)."""
        return self._push("fail", status=status, body=body, retry_after=retry_after)

    def delay(self, seconds: float) -> FakeVllmServer:
        """Wait this long before answering the next generation request."""
        return self._push("delay", seconds=seconds)

    def trickle(self, interval: float) -> FakeVllmServer:
        """Sleep ``interval`` between the events of the next stream."""
        return self._push("trickle", interval=interval)

    def disconnect_after(self, n_events: int) -> FakeVllmServer:
        """Cut the next stream abruptly after ``n_events`` SSE events (no terminating chunk)."""
        return self._push("disconnect_after", n=n_events)

    def stall(self, seconds: float, after_events: int = 0) -> FakeVllmServer:
        """Go silent for ``seconds`` (connection open): a stream after ``after_events`` events;
        a JSON answer after its headers."""
        return self._push("stall", seconds=seconds, after=after_events)

    def disconnect_before_response(self) -> FakeVllmServer:
        """Read the next request, then close the connection without answering."""
        return self._push("reset")

    def disconnect_mid_body(self) -> FakeVllmServer:
        """Answer the next request with headers and half its JSON body, then close."""
        return self._push("mid_body")

    def raw(self, status: int, headers: Mapping[str, str] | None, body: bytes | str) -> FakeVllmServer:
        """Answer the next request with exactly this status, headers and body."""
        return self._push("raw", status=status, headers=dict(headers or {}),
                          body=body.encode() if isinstance(body, str) else body)

    def sse(self, events: Iterable[bytes | str], status: int = 200) -> FakeVllmServer:
        """Answer the next request with these raw SSE blocks, each its own HTTP chunk, then end properly."""
        return self._push("sse", events=[e.encode() if isinstance(e, str) else e for e in events], status=status)

    def _plan(self) -> _Plan:
        plan = _Plan()
        with self._lock:
            while self._queue:
                kind, kw = self._queue.popleft()
                if kind == "delay":
                    plan.delay += kw["seconds"]
                elif kind == "trickle":
                    plan.trickle = kw["interval"]
                elif kind == "disconnect_after":
                    plan.disconnect_after = kw["n"]
                elif kind == "stall":
                    plan.stall = (kw["seconds"], kw["after"])
                else:
                    plan.kind = kind
                    if kind == "reply":
                        plan.reply = kw
                    elif kind == "fail":
                        plan.status = kw["status"]
                        plan.body = kw["body"]
                        if kw["retry_after"] is not None:
                            plan.headers["retry-after"] = str(kw["retry_after"])
                    elif kind == "raw":
                        plan.status, plan.headers, plan.body = kw["status"], kw["headers"], kw["body"]
                    elif kind == "sse":
                        plan.status, plan.events = kw["status"], kw["events"]
                    break
        return plan

    # -- serving -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._lsock is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._lsock.accept()
            except (TimeoutError, OSError):
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: _Conn) -> None:
        try:
            while not self._stopping.is_set():
                req = conn.read_request()
                if req is None:
                    return
                if not self._handle(conn, *req):
                    return
        except (OSError, ValueError):
            return
        finally:
            conn.close()
            with self._lock:
                self._conns.discard(conn)

    def _handle(self, conn: _Conn, method: str, path: str, headers: _Headers, raw: bytes) -> bool:
        """Answer one request; False when the connection must be closed."""
        path = path.split("?", 1)[0]
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad_json = True
        self.requests.append(RecordedRequest(method, path, headers, body, raw))
        routes = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
            ("GET", "/health"): self._health,
            ("GET", "/ping"): self._health,
            ("GET", "/version"): self._version,
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/detokenize"): self._detokenize,
        }
        handler = routes.get((method, path))
        if handler is None:
            if any(p == path for _, p in routes):
                conn.respond(405, b'{"detail":"Method Not Allowed"}')
            else:
                conn.respond(404, b'{"detail":"Not Found"}')
            return True
        if bad_json or (raw and not isinstance(body, dict)):
            conn.respond(400, _error(400, "1 validation error: JSON decode error", "Bad Request", "body"))
            return True
        if method == "POST" and body is None:
            body = {}
        return handler(conn, body or {})

    def _error_for(self, conn: _Conn, plan: _Plan) -> None:
        if plan.body is None:
            payload = _error(plan.status, f"Fake error {plan.status}")
        elif isinstance(plan.body, (dict, list)):
            payload = orjson.dumps(plan.body)
        else:
            payload = str(plan.body).encode()
        ctype = "application/json" if payload[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
        conn.respond(plan.status, payload, ctype, plan.headers)

    def _generation(self, conn: _Conn, body: dict[str, Any], chat: bool) -> bool:
        plan = self._plan()
        if plan.delay:
            time.sleep(plan.delay)
        if plan.kind == "reset":
            conn.reset()
            return False
        if plan.kind == "fail":
            self._error_for(conn, plan)
            return True
        if plan.kind == "raw":
            conn.respond(plan.status, plan.body, None, plan.headers)
            return True
        if plan.kind == "sse":
            conn.start_chunked(plan.status)
            for e in plan.events:
                conn.chunk(e)
            conn.end_chunked()
            return True
        if chat and not isinstance(body.get("messages"), list):
            conn.respond(400, _error(400, "1 validation error: Field required", "Bad Request", "body.messages"))
            return True
        if not chat and "prompt" not in body:
            conn.respond(400, _error(400, "Either prompt or prompt_embeds must be provided and non-empty."))
            return True
        reply = self._make_reply(body, plan.reply, chat)
        if body.get("stream"):
            return self._stream(conn, body, reply, plan, chat)
        payload = orjson.dumps(self._json_body(body, reply, chat))
        if plan.kind == "mid_body":
            conn.send(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
                      .encode() + payload[: len(payload) // 2])
            conn.reset()
            return False
        if plan.stall:
            conn.send(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
                      .encode())
            self._sleep(plan.stall[0])
            conn.send(payload)
            return True
        conn.respond(200, payload)
        return True

    def _chat(self, conn: _Conn, body: dict[str, Any]) -> bool:
        return self._generation(conn, body, chat=True)

    def _completions(self, conn: _Conn, body: dict[str, Any]) -> bool:
        return self._generation(conn, body, chat=False)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # -- reply content -----------------------------------------------------------------------

    def _prompt_texts(self, body: dict[str, Any]) -> list[str]:
        p = body.get("prompt")
        if isinstance(p, str):
            return [p]
        if isinstance(p, list) and p and all(isinstance(x, int) for x in p):
            return [bytes(x % 256 for x in p).decode("utf-8", "replace")]
        if isinstance(p, list):
            return [x if isinstance(x, str) else bytes(t % 256 for t in x).decode("utf-8", "replace")
                    for x in p if isinstance(x, (str, list))]
        return [""]

    def _make_reply(self, body: dict[str, Any], scripted: dict[str, Any] | None, chat: bool) -> dict[str, Any]:
        scripted = scripted or {}
        content = scripted.get("content")
        tool_calls = scripted.get("tool_calls")
        if content is None and not tool_calls and scripted.get("reasoning") is None:
            if chat:
                last = next((m.get("content") for m in reversed(body.get("messages") or [])
                             if isinstance(m, dict) and m.get("role") == "user"), "")
                if isinstance(last, list):
                    last = " ".join(str(p.get("text", "")) for p in last if isinstance(p, dict))
                content = f"Hello! I am a fake vLLM server. You said: {last}"
            else:
                content = " and so the story goes on."
        pieces = _pieces(content or "")
        finish = scripted.get("finish_reason")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and limit > 0 and len(pieces) > limit and finish is None:
            pieces = pieces[:limit]
            finish = "length"
        calls = []
        for i, tc in enumerate(tool_calls or []):
            args = tc.get("arguments", {})
            calls.append({"id": tc.get("id") or f"chatcmpl-tool-{secrets.token_hex(8)}", "type": "function",
                          "name": tc.get("name", ""),
                          "arguments": args if isinstance(args, str) else orjson.dumps(args).decode(), "index": i})
        if finish is None:
            finish = "tool_calls" if calls else "stop"
        prompt_text = _message_text(body.get("messages")) if chat else "".join(self._prompt_texts(body))
        reasoning = scripted.get("reasoning")
        completion_tokens = len(pieces) + len(_pieces(reasoning or "")) + 4 * len(calls)
        usage: dict[str, Any] = {"prompt_tokens": len(_fake_tokens(prompt_text)), "total_tokens": 0,
                 "completion_tokens": completion_tokens, "prompt_tokens_details": None}
        usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
        if scripted.get("usage"):
            usage.update(scripted["usage"])
        return {"pieces": pieces, "content": "".join(pieces) if (pieces or content == "") else None,
                "reasoning": reasoning, "tool_calls": calls, "finish_reason": finish, "usage": usage,
                "id": f"{'chatcmpl' if chat else 'cmpl'}-{secrets.token_hex(8)}", "created": int(time.time())}

    def _json_body(self, body: dict[str, Any], r: dict[str, Any], chat: bool) -> dict[str, Any]:
        n = _n(body)
        if chat:
            choices = []
            for i in range(n):
                msg: dict[str, Any] = {"role": "assistant", "content": r["content"], "refusal": None,
                                       "annotations": None, "audio": None, "function_call": None,
                                       "reasoning": r["reasoning"]}
                if r["tool_calls"]:
                    msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                          "function": {"name": c["name"], "arguments": c["arguments"]}}
                                         for c in r["tool_calls"]]
                choices.append({"index": i, "message": msg, "logprobs": None, "finish_reason": r["finish_reason"],
                                "stop_reason": None, "token_ids": None})
            usage = dict(r["usage"])
            usage["completion_tokens"] *= n
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            return {"id": r["id"], "object": "chat.completion", "created": r["created"], "model": self.model,
                    "choices": choices, "service_tier": None, "system_fingerprint": None, "usage": usage,
                    "prompt_logprobs": None, "prompt_token_ids": None, "kv_transfer_params": None}
        prompts = self._prompt_texts(body)
        choices = []
        for i, p in enumerate(prompts * n):
            text = (p if body.get("echo") else "") + (r["content"] or "")
            choices.append({"index": i, "text": text, "logprobs": None, "finish_reason": r["finish_reason"],
                            "stop_reason": None, "prompt_logprobs": None, "prompt_token_ids": None,
                            "token_ids": None})
        return {"id": r["id"], "object": "text_completion", "created": r["created"], "model": self.model,
                "choices": choices, "service_tier": None, "system_fingerprint": None, "usage": r["usage"],
                "kv_transfer_params": None}

    def _stream(self, conn: _Conn, body: dict[str, Any], r: dict[str, Any], plan: _Plan, chat: bool) -> bool:
        events = list(self._stream_events(body, r, chat))
        conn.start_chunked()
        for k, ev in enumerate(events):
            if plan.disconnect_after is not None and k >= plan.disconnect_after:
                conn.reset()
                return False
            if plan.stall is not None and k == plan.stall[1]:
                self._sleep(plan.stall[0])
            if plan.trickle and k:
                self._sleep(plan.trickle)
            if self._stopping.is_set():
                return False
            conn.chunk(ev)
        conn.end_chunked()
        return True

    def _stream_events(self, body: dict[str, Any], r: dict[str, Any], chat: bool) -> Iterator[bytes]:
        def ev(obj: dict[str, Any]) -> bytes:
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        n = _n(body)
        base = {"id": r["id"], "object": "chat.completion.chunk" if chat else "text_completion",
                "created": r["created"], "model": self.model}
        include_usage = isinstance(body.get("stream_options"), dict) and body["stream_options"].get("include_usage")
        if chat:
            for i in range(n):
                yield ev({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                               "logprobs": None, "finish_reason": None}],
                          "prompt_token_ids": None, "prompt_text": None})
            for piece in _pieces(r["reasoning"] or ""):
                for i in range(n):
                    yield ev({**base, "choices": [{"index": i, "delta": {"reasoning": piece}, "logprobs": None,
                                                   "finish_reason": None, "token_ids": None}]})
            pieces = r["pieces"]
            for k, piece in enumerate(pieces):
                last = k == len(pieces) - 1 and not r["tool_calls"] and r["finish_reason"] == "length"
                for i in range(n):
                    choice: dict[str, Any] = {"index": i, "delta": {"content": piece}, "logprobs": None,
                                              "finish_reason": r["finish_reason"] if last else None, "token_ids": None}
                    if last:
                        choice["stop_reason"] = None
                    yield ev({**base, "choices": [choice]})
            if r["tool_calls"]:
                for i in range(n):
                    entries: list[dict[str, Any]] = []
                    for c in r["tool_calls"]:
                        entries.append({"id": c["id"], "type": "function", "index": c["index"],
                                        "function": {"name": c["name"]}})
                        entries.append({"index": c["index"], "function": {"arguments": c["arguments"]}})
                    yield ev({**base, "choices": [{"index": i, "delta": {"content": None, "tool_calls": entries},
                                                   "logprobs": None, "finish_reason": None, "token_ids": None}]})
            if r["tool_calls"] or not r["pieces"] or r["finish_reason"] != "length":
                for i in range(n):
                    yield ev({**base, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                                   "finish_reason": r["finish_reason"], "stop_reason": None,
                                                   "token_ids": None}]})
        else:
            prompts = self._prompt_texts(body) * n
            for i, p in enumerate(prompts):
                pieces = ([p] if body.get("echo") and p else []) + r["pieces"]
                for k, piece in enumerate(pieces):
                    last = k == len(pieces) - 1
                    yield ev({**base, "choices": [{"index": i, "text": piece, "logprobs": None,
                                                   "finish_reason": r["finish_reason"] if last else None,
                                                   "stop_reason": None, "prompt_token_ids": None,
                                                   "token_ids": None}]})
        if include_usage:
            usage = {k: v for k, v in r["usage"].items() if not k.endswith("_details")}
            yield ev({**base, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    # -- other endpoints ---------------------------------------------------------------------

    def _models(self, conn: _Conn, body: Any) -> bool:
        conn.respond(200, orjson.dumps({"object": "list", "data": [{
            "id": self.model, "object": "model", "created": int(time.time()), "owned_by": "vllm",
            "root": self.model, "parent": None, "max_model_len": self.max_model_len,
            "permission": [{"id": f"modelperm-{secrets.token_hex(8)}", "object": "model_permission",
                            "created": int(time.time()), "allow_create_engine": False, "allow_sampling": True,
                            "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                            "allow_fine_tuning": False, "organization": "*", "group": None,
                            "is_blocking": False}]}]}))
        return True

    def _health(self, conn: _Conn, body: Any) -> bool:
        conn.respond(200, b"", None)
        return True

    def _version(self, conn: _Conn, body: Any) -> bool:
        conn.respond(200, orjson.dumps({"version": FAKE_VERSION}))
        return True

    def _tokenize(self, conn: _Conn, body: dict[str, Any]) -> bool:
        if "messages" in body:
            text = _message_text(body["messages"])
        elif isinstance(body.get("prompt"), str):
            text = body["prompt"]
        else:
            conn.respond(400, _error(400, "Either prompt or messages must be provided"))
            return True
        tokens = _fake_tokens(text)
        strs = [chr(t) for t in tokens] if body.get("return_token_strs") else None
        conn.respond(200, orjson.dumps({"count": len(tokens), "max_model_len": self.max_model_len,
                                        "tokens": tokens, "token_strs": strs}))
        return True

    def _detokenize(self, conn: _Conn, body: dict[str, Any]) -> bool:
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            conn.respond(400, _error(400, "tokens must be a list of integers"))
            return True
        conn.respond(200, orjson.dumps({"prompt": bytes(t % 256 for t in tokens).decode("utf-8", "replace")}))
        return True

    def _embeddings(self, conn: _Conn, body: dict[str, Any]) -> bool:
        inp = body.get("input")
        items = inp if isinstance(inp, list) and inp and not all(isinstance(x, int) for x in inp) else [inp]
        data = []
        for i, item in enumerate(items):
            seed = hashlib.sha256(orjson.dumps(item)).digest()
            vec = [b / 255.0 - 0.5 for b in seed[:16]]
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            vec = [v / norm for v in vec]
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"index": i, "object": "embedding", "embedding": emb})
        tokens = sum(len(_fake_tokens(str(x))) for x in items)
        conn.respond(200, orjson.dumps({"id": f"embd-{secrets.token_hex(8)}", "object": "list",
                                        "created": int(time.time()), "model": self.model, "data": data,
                                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                                                  "completion_tokens": 0, "prompt_tokens_details": None}}))
        return True


def _n(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _error(status: int, message: str, typ: str | None = None, param: str | None = None) -> bytes:
    """vLLM's error envelope: ``{"error": {"message", "type", "param", "code": <status>}}``."""
    return orjson.dumps({"error": {"message": message, "type": typ or _ERROR_TYPES.get(status, "InternalServerError"),
                                   "param": param, "code": status}})
