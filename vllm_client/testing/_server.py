"""``FakeVllmServer``: a real HTTP/1.1 server on 127.0.0.1 that speaks vLLM's OpenAI-compatible API.

It answers in vLLM 0.32's wire format (chat and legacy completions as JSON or SSE
piece by piece, models, embeddings, health, version, tokenize/detokenize at the
root; the Responses API, batched chat, /load, /metrics, runtime LoRA adapters and audio
transcription: see ``_surface``), with scripted replies and faults taken from a FIFO queue. Standard library
and orjson only; ``http.server.ThreadingHTTPServer`` in a daemon thread.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from . import _wire as w
from ._retrieval import Pooled
from ._surface import CHAT_BATCH, RESPONSES, SurfaceRoutes
from ._wire import _Answer

__all__ = ["FakeVllmServer", "RecordedRequest"]

_CHAT = "/v1/chat/completions"
_COMPLETIONS = "/v1/completions"
_GENERATION = (_CHAT, _COMPLETIONS, RESPONSES, CHAT_BATCH)
_ROUTES: dict[str, tuple[str, ...]] = {
    _CHAT: ("POST",), _COMPLETIONS: ("POST",), "/v1/embeddings": ("POST",), "/v1/models": ("GET",),
    "/health": ("GET",), "/ping": ("GET", "POST"), "/version": ("GET",), "/load": ("GET",),
    "/tokenize": ("POST",), "/detokenize": ("POST",),
    # the pooling endpoints (vLLM serves them on pooling runners; this fake serves them always)
    "/v1/rerank": ("POST",), "/rerank": ("POST",), "/v2/rerank": ("POST",), "/v1/score": ("POST",),
    "/score": ("POST",), "/classify": ("POST",), "/pooling": ("POST",), "/v2/embed": ("POST",),
}
_MODIFIERS = frozenset({"delay", "trickle", "disconnect_after", "stall"})
_DEFAULT_CHAT = "Hello! I am a fake vLLM server."
_DEFAULT_COMPLETION = " and so the story goes on."
_NOT_FOUND = b'{"detail":"Not Found"}'


class _Headers(dict[str, str]):
    """Request headers as a dict with lower-case keys; look-ups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # noqa: D102
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class RecordedRequest:
    """One request the server received.

    ``headers`` is a dict with lower-case keys whose look-ups ignore case; ``body`` is
    the parsed JSON (``None`` when there was no body or it was not JSON); ``raw`` the bytes.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = field(repr=False, default=b"")
    query: str = ""


@dataclass
class _Item:
    kind: str
    path: str | None
    args: dict[str, Any]

    def matches(self, method: str, path: str) -> bool:
        if self.path is None:
            return method == "POST" and path in _GENERATION
        return self.path == "*" or self.path == path


@dataclass
class _Plan:
    """What the queue says about one request: at most one terminal item and one of each modifier."""

    terminal: _Item | None = None
    delay: float = 0.0
    trickle: float = 0.0
    disconnect_after: int | None = None
    stall: tuple[float, int] | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, fake: FakeVllmServer, address: tuple[str, int]) -> None:
        self.fake = fake
        self.conns: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.track = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS look-up (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def serve(self, stopping: threading.Event, wake: socket.socket) -> None:
        """Accept until ``wake`` becomes readable (stop() writes to its peer): no polling."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.socket, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while not stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is wake or stopping.is_set():
                        return
                    try:
                        request, client_address = self.get_request()
                    except OSError:
                        continue
                    self.process_request(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(target=self._serve_conn, args=(request, client_address), daemon=True,
                             name=f"FakeVllmServer-conn-{client_address[1]}")
        with self.track:
            self.conns.add(request)
            self.threads.add(t)
        t.start()

    def _serve_conn(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.track:
                self.conns.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (mid-stream, on keep-alive, at stop()) are normal here: stay silent.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.fake._stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # every SSE event leaves at once, in its own segment
    server: _HTTPServer

    def version_string(self) -> str:
        return "FakeVllmServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake._dispatch(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    # -- body in -----------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- bytes out ---------------------------------------------------------------------------

    def cut(self) -> None:
        """End the connection here: whatever was sent is all the client gets (a FIN)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def head(self, a: _Answer, length: int | None) -> None:
        self.send_response(a.status)
        if a.content_type:
            self.send_header("content-type", a.content_type)
        if length is not None:
            self.send_header("content-length", str(length))
        for k, v in a.headers:
            self.send_header(k, v)
        self.end_headers()

    def send_answer(self, a: _Answer, plan: _Plan) -> None:
        stop = self.server.fake._stopping
        if a.events is None:
            cut = plan.disconnect_after is not None or (plan.terminal is not None
                                                         and plan.terminal.kind == "mid_body")
            framed = a.exact and any(k.lower() in ("content-length", "transfer-encoding") for k, _ in a.headers)
            self.head(a, None if framed else len(a.body))
            if plan.stall is not None and stop.wait(plan.stall[0]):
                return self.cut()
            if cut:
                self.wfile.write(a.body[: len(a.body) // 2])
                return self.cut()
            self.wfile.write(a.body)
            if framed:
                self.close_connection = True
            return None
        chunked = self.request_version != "HTTP/1.0"
        if chunked:
            a.headers.insert(0, ("transfer-encoding", "chunked"))
        else:
            self.close_connection = True
        self.head(a, None)
        mid_body = plan.terminal is not None and plan.terminal.kind == "mid_body"
        for k, event in enumerate(a.events):
            if plan.disconnect_after is not None and k >= plan.disconnect_after:
                return self.cut()
            if plan.stall is not None and k == plan.stall[1]:
                if stop.wait(plan.stall[0]):
                    return self.cut()
            elif plan.trickle and k and stop.wait(plan.trickle):
                return self.cut()
            if stop.is_set():
                return self.cut()
            if mid_body:  # a chunk header promising the whole event, then half of it
                self.wfile.write(b"%x\r\n" % len(event) + event[: len(event) // 2] if chunked else event[:1])
                return self.cut()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
        if plan.disconnect_after is not None:
            return self.cut()
        if plan.stall is not None and plan.stall[1] >= len(a.events) and stop.wait(plan.stall[0]):
            return self.cut()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return None


class FakeVllmServer(SurfaceRoutes):
    """A fake vLLM server for tests: real sockets, vLLM 0.33's wire format, scripted replies and faults.

    ::

        with FakeVllmServer(model="fake-model") as server:
            server.reply(content="Paris", reasoning="The capital of France...")
            ...  # point the code under test at server.url ("http://127.0.0.1:PORT/v1")
            server.requests[-1].body   # what arrived

    ``model`` is what ``/v1/models`` lists and the one name requests may use (with the LoRA
    adapters loaded at runtime): another gets vLLM's 404 (``The model `x` does not exist.``),
    and an ill-typed common field (``max_tokens: 1.5``, ``temperature: "hot"``) vLLM's 400, as
    pydantic words it; a request that takes a queued ``reply`` is not checked (the reply answers
    it, whatever model it names). ``max_model_len`` (4096) bounds prompts and ``max_tokens`` as vLLM
    does (400 beyond it); ``port=0`` picks a free port (a restarted server keeps its port).
    The pooling endpoints answer too: ``/v1/rerank`` (and ``/rerank``, ``/v2/rerank``),
    ``/v1/score``, ``/pooling``, ``/v2/embed``, scored with deterministic unit embeddings of
    ``embedding_dim`` dimensions; ``/classify`` only when ``labels`` are given (else 404, as
    on an embedding model). ``/v1/decisions`` answers predicate / choice / score questions with
    deterministic probabilities (``fail(501, path="/v1/decisions")`` plays a model without a
    decisions strategy); ``token_embed=True`` makes ``/v1/embeddings`` a token-embedding pooler's
    (a matrix per input; ``late_chunking_params`` pools chunks).

    **The queue.** ``reply``, ``fail``, ``raw``, ``sse``, ``disconnect_before_response`` and
    ``disconnect_mid_body`` each answer one request; ``delay``, ``stall``, ``trickle`` and
    ``disconnect_after`` modify an answer, so queue them *before* it
    (``server.stall(2).reply(content="slow")``; alone, they modify the default answer).
    A request takes, in FIFO order, the queued modifiers up to and including the first
    answer item, at most one modifier of each kind (a second ``delay`` waits for the next
    request). By default items are taken only by ``POST /v1/chat/completions``,
    ``/v1/completions``, ``/v1/responses`` and ``/v1/chat/completions/batch``, so a client that first looks up ``/v1/models`` or probes
    ``/health`` does not eat them; pass ``path="/v1/embeddings"`` (any exact path) or
    ``path="*"`` (any request) to script other endpoints. With nothing queued the
    server answers normally: chat says ``"Hello! I am a fake vLLM server. You said:
    <last user message>"`` (cut to ``max_tokens`` pieces, finish ``length``), completions
    continue with ``" and so the story goes on."``. Scripted replies are sent as given
    (``max_tokens`` does not cut them). A request the server rejects as vLLM would
    (bad JSON, no ``messages``, ``n: 0``, ``max_tokens`` > ``max_model_len`` ...) leaves a
    queued ``reply`` in place. Thread-safe.

    **Wire format** (vLLM 0.33; 0.32's but for what 0.33 changed: ``kv_transfer_params`` on every
    streamed chunk, null but on the last, which echoes the request's; ``weight_versions`` with
    ``return_weight_versions``; a Responses answer cut by ``max_output_tokens`` ends with
    ``response.incomplete`` and its last item ``incomplete``; 500s say "The server had an error
    while processing your request."): compact JSON with vLLM's extra null keys, SSE events
    ``data: {...}\\n\\n`` each in its own HTTP chunk, a role chunk with ``content: ""``
    first, ``delta.reasoning``, tool calls as one delta with two same-index entries,
    the ``choices: []`` usage chunk for ``stream_options.include_usage``, ``data: [DONE]``;
    errors as ``{"error": {"message", "type", "param", "code": <status>}}``, unknown routes
    as ``{"detail": "Not Found"}``. Text is streamed as token-like pieces (words with their
    leading whitespace, at most 8 characters); token counts use the same pieces, and so do
    ``/tokenize`` and ``/detokenize``. ``request_id_headers=True`` answers with an
    ``x-request-id`` header (the request's ``X-Request-Id``, else a new id), as vLLM does
    with ``--enable-request-id-headers``.
    """

    def __init__(self, model: str = "fake-model", *, host: str = "127.0.0.1", port: int = 0,
                 max_model_len: int = 4096, root: str | None = None, embedding_dim: int = 128,
                 labels: Iterable[str] | None = None,
                 request_id_headers: bool = False, token_embed: bool = False) -> None:
        self.model = model
        self.token_embed = token_embed  # a token_embed pooler (vLLM 0.33): /v1/embeddings answers matrices
        self.request_id_headers = request_id_headers
        self.max_model_len = max_model_len
        self.root = root if root is not None else model
        self.embedding_dim = embedding_dim
        self.requests: list[RecordedRequest] = []
        self.port = port
        self._host = host
        self._queue: list[_Item] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stopping = threading.Event()
        self._tokenizer = w.Tokenizer()
        self._pooled = Pooled(self._tokenizer, embedding_dim, list(labels) if labels is not None else None)
        self._in_flight = 0
        self._surface_init()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI base URL: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The server root, where ``/health``, ``/version`` and ``/tokenize`` live."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> FakeVllmServer:
        """Bind (a free port unless one was given) and serve in a daemon thread; returns at once."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(self, (self._host, self.port))
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=httpd.serve, args=(self._stopping, self._wake[0]),
                                        name=f"FakeVllmServer-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close every connection (idle keep-alive ones too), free the port, join the threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes delays, stalls and trickles
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        httpd.server_close()
        with httpd.track:
            conns, threads = list(httpd.conns), list(httpd.threads)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 2
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        for sock in [*conns, *(self._wake or ())]:
            with contextlib.suppress(OSError):
                sock.close()
        self._wake = None

    def __enter__(self) -> FakeVllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeVllmServer(url={self.url!r}, model={self.model!r})"

    # -- scripting ---------------------------------------------------------------------------

    def _push(self, kind: str, path: str | None, **args: Any) -> FakeVllmServer:
        with self._lock:
            self._queue.append(_Item(kind, path, args))
        return self

    def reply(self, content: str | None = None, reasoning: str | None = None,
              tool_calls: list[dict[str, Any]] | None = None, usage: dict[str, Any] | None = None,
              finish_reason: str | None = None) -> FakeVllmServer:
        """Queue the next chat/completions reply, served as JSON or SSE to match the request's ``stream``.

        ``tool_calls``: ``[{"name": ..., "arguments": dict or JSON text, "id": optional}]``
        (ids default to ``chatcmpl-tool-<16 hex>``); ``usage`` keys override the computed
        usage; ``finish_reason`` defaults to ``"tool_calls"`` with tool calls, else ``"stop"``.
        With no content, reasoning or tool calls, the default reply text is used.
        """
        if content is None and reasoning is None and not tool_calls:
            return self._push("reply", None, reply=None, usage=usage, finish_reason=finish_reason)
        return self._push("reply", None, reply=w.scripted_reply(content, reasoning, tool_calls, usage, finish_reason))

    def fail(self, status: int, body: dict[str, Any] | list[Any] | str | bytes | None = None,
             retry_after: float | str | None = None, *, path: str | None = None) -> FakeVllmServer:
        """Queue an error answer: ``body`` a dict (sent as JSON), str (as text) or None
        (vLLM's error JSON for that status); ``retry_after`` sets the ``Retry-After`` header."""
        return self._push("fail", path, status=status, body=body, retry_after=retry_after)

    def delay(self, seconds: float, *, path: str | None = None) -> FakeVllmServer:
        """Wait ``seconds`` before answering the next request (nothing is sent meanwhile)."""
        return self._push("delay", path, seconds=seconds)

    def trickle(self, interval: float, *, path: str | None = None) -> FakeVllmServer:
        """Sleep ``interval`` between the SSE events of the next stream (JSON answers: no effect)."""
        return self._push("trickle", path, interval=interval)

    def disconnect_after(self, n_events: int, *, path: str | None = None) -> FakeVllmServer:
        """Close the next stream abruptly after ``n_events`` SSE events (``[DONE]`` counts), without
        the terminating chunk. A JSON answer is cut after half its body instead."""
        return self._push("disconnect_after", path, n=n_events)

    def stall(self, seconds: float, after_events: int = 0, *, path: str | None = None) -> FakeVllmServer:
        """Go silent for ``seconds`` with the connection open, then carry on: a stream after
        ``after_events`` events, a JSON answer after its headers."""
        return self._push("stall", path, seconds=seconds, after=after_events)

    def disconnect_before_response(self, *, path: str | None = None) -> FakeVllmServer:
        """Read the next request, then close the connection without answering."""
        return self._push("reset", path)

    def disconnect_mid_body(self, *, path: str | None = None) -> FakeVllmServer:
        """Send the next answer's headers (with its full Content-Length) and half its body, then close.
        A stream gets a chunk header for its first event and half of that event."""
        return self._push("mid_body", path)

    def raw(self, status: int, headers: Mapping[str, str] | None, body_bytes: bytes | str, *,
            path: str | None = None) -> FakeVllmServer:
        """Answer the next request with exactly this status, these headers and these body bytes
        (Content-Length is added unless ``headers`` frame the body themselves)."""
        body = body_bytes.encode() if isinstance(body_bytes, str) else bytes(body_bytes)
        return self._push("raw", path, status=status, headers=dict(headers or {}), body=body)

    def sse(self, events: Iterable[bytes | str], status: int = 200, *, path: str | None = None) -> FakeVllmServer:
        """Answer the next request with these raw SSE blocks, each in its own HTTP chunk, then
        end the chunked body properly (replays a recorded transcript as is)."""
        blocks = [e.encode() if isinstance(e, str) else bytes(e) for e in events]
        return self._push("sse", path, events=blocks, status=status)

    def _take(self, method: str, path: str) -> _Plan:
        plan = _Plan()
        seen: set[str] = set()
        with self._lock:
            i = 0
            while i < len(self._queue):
                item = self._queue[i]
                if not item.matches(method, path):
                    i += 1
                    continue
                if item.kind in _MODIFIERS:
                    if item.kind in seen:
                        break
                    seen.add(item.kind)
                    del self._queue[i]
                    if item.kind == "delay":
                        plan.delay = float(item.args["seconds"])
                    elif item.kind == "trickle":
                        plan.trickle = float(item.args["interval"])
                    elif item.kind == "disconnect_after":
                        plan.disconnect_after = int(item.args["n"])
                    else:
                        plan.stall = (float(item.args["seconds"]), int(item.args["after"]))
                    continue
                plan.terminal = self._queue.pop(i)
                break
        return plan

    def _put_back(self, item: _Item) -> None:
        with self._lock:
            self._queue.insert(0, item)

    # -- serving -----------------------------------------------------------------------------

    def _dispatch(self, h: _Handler) -> None:
        method = h.command
        path, _, query = h.path.partition("?")
        headers = _Headers((k.lower(), v) for k, v in h.headers.items())
        try:
            raw = h.read_body()
        except (ValueError, OSError):
            h.close_connection = True
            return
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad_json = True
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body, raw, query))
        plan = self._take(method, path)
        if plan.delay and self._stopping.wait(plan.delay):
            return h.cut()
        t = plan.terminal
        if t is not None and t.kind == "reset":
            return h.cut()
        try:
            if t is not None and t.kind in ("fail", "raw", "sse"):
                answer = self._scripted_answer(t)
            else:
                reply = t if t is not None and t.kind == "reply" else None
                answer, used = self._route(method, path, headers, raw, body, bad_json, reply)
                if reply is not None and not used:
                    self._put_back(reply)
        except Exception as e:  # a bug here should show up in the test, not hang it
            answer = _Answer(500, w.error_body(500, f"FakeVllmServer internal error: {e!r}"))
        if method == "HEAD":
            answer.body, answer.events = b"", None
        if self.request_id_headers and not answer.exact:
            answer.headers.append(("x-request-id", headers.get("x-request-id") or w.new_id("req", None)[4:]))
        h.send_answer(answer, plan)
        return None

    def _scripted_answer(self, t: _Item) -> _Answer:
        a = t.args
        if t.kind == "sse":
            return _Answer(a["status"], content_type="text/event-stream; charset=utf-8", events=list(a["events"]))
        if t.kind == "raw":
            return _Answer(a["status"], a["body"], None, list(a["headers"].items()), exact=True)
        body, status = a["body"], a["status"]
        if body is None:
            answer = _Answer(status, w.default_error_body(status))
        elif isinstance(body, (dict, list)):
            answer = _Answer(status, orjson.dumps(body))
        elif isinstance(body, bytes):
            answer = _Answer(status, body, None)
        else:
            answer = _Answer(status, str(body).encode(), "text/plain; charset=utf-8")
        if a["retry_after"] is not None:
            ra = a["retry_after"]
            answer.headers.append(("retry-after", str(int(ra)) if isinstance(ra, float) and ra.is_integer()
                                   else str(ra)))
        return answer

    def _route(self, method: str, path: str, headers: _Headers, raw: bytes, body: Any, bad_json: bool,
               reply: _Item | None) -> tuple[_Answer, bool]:
        """The normal answer to a request; the bool says whether a queued reply was used."""
        if reply is None and method == "POST" and isinstance(body, dict) and not path.endswith("lora_adapter"):
            refused = self._refusal(body)
            if refused is not None:
                return refused, False
        surface = self._surface_route(method, path, headers, raw, body, reply)
        if surface is not None:
            return surface
        methods = _ROUTES.get(path)
        if methods is None:
            return _Answer(404, _NOT_FOUND), False
        if method not in methods:
            return _Answer(405, b'{"detail":"Method Not Allowed"}', headers=[("allow", ", ".join(methods))]), False
        if path in ("/health", "/ping"):
            return _Answer(200, b"", None), False
        if path == "/version":
            return _Answer(200, orjson.dumps({"version": w.FAKE_VLLM_VERSION})), False
        if path == "/load":
            return _Answer(200, orjson.dumps({"server_load": self._in_flight})), False
        if path == "/v1/models":
            return _Answer(200, w.models_json(self.model, self.root, self.max_model_len)), False
        # POST endpoints with a JSON body.
        ctype = (headers.get("content-type") or "application/json").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return _Answer(400, w.error_body(400, "1 validation error:\n  Unsupported Media Type: Only "
                                                  "'application/json' is allowed", "Bad Request")), False
        if bad_json:
            return _Answer(400, w.json_decode_error(raw)), False
        if not isinstance(body, dict):
            if not raw:
                return _Answer(400, w.validation_error("missing", "body", "Field required", "None")), False
            return _Answer(400, w.validation_error(
                "model_attributes_type", "body", "Input should be a valid dictionary or object to extract "
                "fields from", repr(body)[:60])), False
        if path == "/tokenize":
            return self._tokenize(body), False
        if path == "/detokenize":
            return self._detokenize(body), False
        if path == "/v1/embeddings":
            return self._embeddings(body), False
        pooled = self._pooled_answer(path, body)
        if pooled is not None:
            return pooled, False
        with self._lock:
            self._in_flight += 1
        try:
            return self._generate(body, headers, path == _CHAT, reply)
        finally:
            with self._lock:
                self._in_flight -= 1

    # -- chat and completions ----------------------------------------------------------------

    def _check_sampling(self, body: dict[str, Any]) -> bytes | None:
        """vLLM's parameter checks (400 ``BadRequestError``), as worded by vLLM 0.32."""
        n = body.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            return w.error_body(400, f"n must be at least 1, got {n}.", "BadRequestError")
        if body.get("stream_options") is not None and not body.get("stream"):
            return w.bad_param("Stream options can only be defined when `stream=True`.", "stream_options",
                               with_value=False)
        for key in ("max_completion_tokens", "max_tokens"):
            v = body.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                if v < 1:
                    return w.bad_param(f"{key} must be at least 1, got {v}.", key, v)
                if v > self.max_model_len:
                    return w.bad_param(f"{key}={v} cannot be greater than max_model_len={self.max_model_len}. "
                                       "Please request fewer output tokens.", key, v)
        t = body.get("temperature")
        if isinstance(t, (int, float)) and not isinstance(t, bool) and t < 0:
            return w.bad_param(f"temperature must be non-negative, got {float(t)}.", "temperature", float(t))
        return None

    def served_models(self) -> list[str]:
        """The model names requests may use: ``model`` and the LoRA adapters loaded at runtime."""
        return [self.model, *self.lora_adapters]

    def _refusal(self, body: dict[str, Any]) -> _Answer | None:
        """vLLM's 400 for an ill-typed field, then its 404 for a model it does not serve (a request
        with a queued reply is not checked: the reply answers it whatever its model)."""
        err = w.type_error(body)
        if err is not None:
            return _Answer(400, err)
        model = body.get("model")
        served = self.served_models()
        if isinstance(model, str) and model not in served:
            return _Answer(404, w.unknown_model(model, served))
        return None

    def _model_of(self, body: dict[str, Any]) -> str:
        """The response's ``model``: the name the request used (any is accepted), else ours."""
        model = body.get("model")
        return model if isinstance(model, str) and model else self.model

    def _too_long(self, prompt_tokens: int) -> bytes | None:
        if prompt_tokens <= self.max_model_len:
            return None
        value = self.max_model_len + 1
        return w.bad_param(f"This model's maximum context length is {self.max_model_len} tokens. However, your "
                           f"prompt contains at least {value} input tokens, which exceeds this limit even "
                           "without any output tokens. Please reduce the length of the input prompt.",
                           "input_tokens", value)

    def _prompts(self, prompt: Any) -> list[str | list[int]] | None:
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt, list) and prompt:
            if all(isinstance(x, int) and not isinstance(x, bool) for x in prompt):
                return [list(prompt)]
            if all(isinstance(x, str) for x in prompt):
                return list(prompt)
            if all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in prompt):
                return [list(x) for x in prompt]
        return None

    def _generate(self, body: dict[str, Any], headers: _Headers, chat: bool,
                  reply: _Item | None) -> tuple[_Answer, bool]:
        tok = self._tokenizer
        if chat:
            if "messages" not in body:
                return _Answer(400, w.validation_error("missing", "body.messages", "Field required",
                                                       f"'<dict of {len(body)} items>'")), False
            messages = body["messages"]
            if not isinstance(messages, list):
                return _Answer(400, w.validation_error("list_type", "body.messages", "Input should be a valid "
                                                       "list", repr(messages)[:60])), False
            if body.get("tool_choice") not in (None, "none") and not body.get("tools"):
                return _Answer(400, w.bad_param("When using `tool_choice`, `tools` must be set.", "tool_choice",
                                                with_value=False)), False
            prompt_text = w.render_chat(messages, body.get("tools"))
            prompt_ids = tok.encode(prompt_text)
            prompt_tokens = len(prompt_ids)
            prompts: list[str] = []
            per_prompt_ids: list[list[int]] = [prompt_ids]
        else:
            if body.get("prompt") in (None, "", []):
                return _Answer(400, w.bad_param("Either prompt or prompt_embeds must be provided and non-empty.",
                                                "prompt", with_value=False)), False
            raw_prompts = self._prompts(body["prompt"])
            if raw_prompts is None:
                return _Answer(400, w.validation_error("string_type", "body.prompt", "Input should be a valid "
                                                       "string", repr(body["prompt"])[:60])), False
            if body.get("suffix") is not None:
                return _Answer(400, w.error_body(400, "suffix is only supported for models with FIM completion "
                                                      "rendering", "BadRequestError", "suffix")), False
            per_prompt_ids = [p if isinstance(p, list) else tok.encode(p) for p in raw_prompts]
            prompts = [tok.decode(p, lenient=True) if isinstance(p, list) else p for p in raw_prompts]
            prompt_tokens = sum(len(ids) for ids in per_prompt_ids)
            messages = []
        err = self._check_sampling(body) or self._too_long(max(len(ids) for ids in per_prompt_ids))
        if err is not None:
            return _Answer(400, err), False

        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        max_tokens = max_tokens if isinstance(max_tokens, int) else (None if chat else 16)
        scripted = reply.args.get("reply") if reply is not None else None
        if scripted is None:
            last = w.last_user_text(messages)
            text = (_DEFAULT_CHAT + (f" You said: {last}" if last else "")) if chat else _DEFAULT_COMPLETION
            structured = w.structured_text(body) if chat else None
            if structured is not None:  # a schema or a choice: a valid example, as a constrained server would
                text = structured
            scripted = w.default_reply(text, max_tokens)
            if reply is not None:  # reply() with only usage / finish_reason
                scripted.usage_override = reply.args.get("usage")
                scripted.finish_reason = reply.args.get("finish_reason") or scripted.finish_reason
        want_ids = bool(body.get("return_token_ids"))
        out_ids = tok.ids([*(scripted.reasoning or ()), *(scripted.content or ())]) if want_ids else None
        model = self._model_of(body)
        body_rid = body.get("request_id")  # vLLM: the X-Request-Id header's id first, else the body's
        rid = headers.get("x-request-id") or (body_rid if isinstance(body_rid, str) and body_rid else None)
        gen = w.Gen(id=w.new_id("chatcmpl" if chat else "cmpl", rid), model=model,
                    n=body.get("n") or 1, reply=scripted, prompt_tokens=prompt_tokens,
                    prompt_token_ids=per_prompt_ids[0] if want_ids and chat else None, token_ids=out_ids,
                    kv_transfer_params=body.get("kv_transfer_params"),
                    weight_versions=body.get("return_weight_versions") is True)
        options: dict[str, Any] = body["stream_options"] if isinstance(body.get("stream_options"), dict) else {}
        if body.get("stream"):
            include_usage = bool(options.get("include_usage"))
            if chat:
                events = w.chat_events(gen, include_usage, bool(options.get("continuous_usage_stats")))
            else:
                events = w.completion_events(gen, prompts, bool(body.get("echo")), include_usage)
            return _Answer(200, content_type="text/event-stream; charset=utf-8", events=events), True
        if chat:
            return _Answer(200, w.chat_json(gen)), True
        return _Answer(200, w.completion_json(gen, prompts, bool(body.get("echo")),
                                              per_prompt_ids if want_ids else None)), True

    # -- other endpoints ---------------------------------------------------------------------

    def _tokenize(self, body: dict[str, Any]) -> _Answer:
        if isinstance(body.get("messages"), list):
            text = w.render_chat(body["messages"], body.get("tools"), body.get("add_generation_prompt", True))
        elif isinstance(body.get("prompt"), str):
            text = body["prompt"]
        else:
            return _Answer(400, w.validation_error("missing", "body.prompt", "Field required",
                                                   f"'<dict of {len(body)} items>'"))
        ids = self._tokenizer.encode(text)
        strs = self._tokenizer.token_strs(text) if body.get("return_token_strs") else None
        return _Answer(200, orjson.dumps({"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids,
                                          "token_strs": strs}))

    def _detokenize(self, body: dict[str, Any]) -> _Answer:
        ids = body.get("tokens")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return _Answer(400, w.validation_error("list_type", "body.tokens", "Input should be a valid list",
                                                   repr(ids)[:60]))
        try:
            text = self._tokenizer.decode(ids)
        except KeyError as e:
            return _Answer(400, w.bad_param(f"Token id {e.args[0]} is out of vocabulary", "tokens",
                                            with_value=False))
        return _Answer(200, orjson.dumps({"prompt": text}))

    def _pooled_answer(self, path: str, body: dict[str, Any]) -> _Answer | None:
        p, model = self._pooled, self._model_of(body)
        if path in ("/v1/rerank", "/rerank", "/v2/rerank"):
            status, data = p.rerank(model, body)
        elif path in ("/v1/score", "/score"):
            status, data = p.score(model, body)
        elif path == "/classify":
            answer = p.classify(model, body)
            if answer is None:  # an embedding model does not mount /classify
                return _Answer(404, _NOT_FOUND)
            status, data = answer
        elif path == "/pooling":
            status, data = p.pooling(model, body)
        elif path == "/v2/embed":
            status, data = p.cohere_embed(model, body)
        else:
            return None
        return _Answer(status, data)

    def _embeddings(self, body: dict[str, Any]) -> _Answer:
        inputs: Any = self._prompts(body.get("input")) if "messages" not in body else self._pooled.inputs(body)
        if inputs is None:
            return _Answer(400, w.bad_param("Either input or prompt_embeds must be provided and non-empty.",
                                            "input", with_value=False))
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            return _Answer(400, w.validation_error("literal_error", "body.encoding_format",
                                                   "Input should be 'float' or 'base64'", repr(fmt)))
        dim = self.embedding_dim
        dims = body.get("dimensions")
        if dims is not None:
            if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= dim:
                return _Answer(400, w.bad_param(f"dimensions must be between 1 and {dim}, got {dims}.",
                                                "dimensions", dims))
        vectors = []
        tokens = 0
        for item in inputs:
            ids = item if isinstance(item, list) else self._tokenizer.encode(item)
            tokens += len(ids)
            if len(ids) > self.max_model_len:
                return _Answer(400, self._too_long(len(ids)) or b"")
            vec = w.embedding(item, dim)
            if dims is not None and dims < dim:  # Matryoshka: truncate and re-normalise
                vec = w.embedding_normalise(vec[:dims])
            vectors.append(vec)
        return _Answer(200, w.embeddings_json(self._model_of(body), vectors, tokens, fmt == "base64"))
