"""A scriptable raw TCP server on 127.0.0.1 for fault tests: each connection is handed to a
Python function that reads the request and writes exactly the bytes (and faults) it wants."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

Handler = Callable[["Conn"], None]


class Conn:
    """One accepted connection: read requests, write raw bytes, close or reset."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self.buf = b""

    def read_request(self, timeout: float = 5.0) -> tuple[str, str, dict[str, str], bytes] | None:
        """(method, path, headers, body) of the next request, or None when the client closed."""
        self.sock.settimeout(timeout)
        try:
            while b"\r\n\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.buf += data
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            n = int(headers.get("content-length", "0"))
            while len(rest) < n:
                data = self.sock.recv(65536)
                if not data:
                    return None
                rest += data
            body, self.buf = rest[:n], rest[n:]
        except (OSError, ValueError):
            return None
        self.server.log.append((method, path, headers, body))
        return method, path, headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(self, status: int = 200, body: bytes | dict[str, Any] | str = b"", headers: dict[str, str] | None = None,
                ctype: str = "application/json") -> None:
        if isinstance(body, dict):
            body = orjson.dumps(body)
        elif isinstance(body, str):
            body = body.encode()
        hdrs = {"content-type": ctype, "content-length": str(len(body)), **(headers or {})}
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.send(head.encode() + body)

    def start_stream(self, status: int = 200) -> None:
        self.send(f"HTTP/1.1 {status} OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".encode())

    def chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.send(b"0\r\n\r\n")

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0): the client sees 'connection reset'."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class RawServer:
    """Accepts connections in a thread; connection k (from 0) goes to handlers[min(k, last)]."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.log: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.lsock.accept()
            except (TimeoutError, OSError):
                continue
            k = self.connections
            self.connections += 1
            handler = self.handlers[min(k, len(self.handlers) - 1)]
            t = threading.Thread(target=self._run, args=(handler, Conn(sock, self)), daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, handler: Handler, conn: Conn) -> None:
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    @property
    def requests(self) -> int:
        return len(self.log)

    def close(self) -> None:
        self._stop.set()
        self.lsock.close()
        self._accept.join(timeout=2)
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


CHAT_OK = {"id": "c", "object": "chat.completion", "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def sse(content: str, finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": content},
                                                  "finish_reason": finish}]}) + b"\n\n"


def serve_ok(conn: Conn) -> None:
    """Answer every request on the connection with a chat completion (keep-alive)."""
    while conn.read_request() is not None:
        conn.respond(200, CHAT_OK)


def serve_stream(texts: list[str], *, gap: float = 0.0) -> Handler:
    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.start_stream()
            for i, t in enumerate(texts):
                if gap:
                    time.sleep(gap)
                conn.chunk(sse(t, "stop" if i == len(texts) - 1 else None))
            conn.chunk(b"data: [DONE]\n\n")
            conn.end_stream()
    return handler


def open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def hanging_listener() -> Iterator[str]:
    """A port whose accept queue is full, so a new connect() hangs (SYNs dropped)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        for s in fillers:
            s.close()
        lsock.close()


# -- hostile servers (wire faults: framing, trickles, interim heads, kept-open streams) ---------------

def trickle(conn: Conn, data: bytes, step: int = 2, every: float = 1.0, stop: threading.Event | None = None) -> None:
    """Send ``data`` ``step`` bytes at a time, one piece every ``every`` seconds, until done or
    the client has gone (or ``stop`` is set)."""
    for i in range(0, len(data), step):
        if stop is not None and stop.is_set():
            return
        conn.send(data[i:i + step])
        time.sleep(every)


def gzip_bytes(data: bytes, coding: str = "gzip") -> bytes:
    import gzip
    import zlib

    if coding == "gzip":
        return gzip.compress(data)
    return zlib.compress(data)  # deflate (zlib-wrapped, as RFC 9110 says)


def serve_encoded(coding: str = "gzip", *, chunked: bool = False) -> Handler:
    """Answer a chat completion or a stream compressed with ``coding``, framed by Content-Length
    (Starlette's GZipMiddleware, a buffering gateway) or chunked (nginx)."""
    def handler(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            stream = b'"stream":true' in req[3]
            if stream:
                body = sse("o") + sse("k", "stop") + b"data: [DONE]\n\n"
                ctype = "text/event-stream"
            else:
                body, ctype = orjson.dumps(CHAT_OK), "application/json"
            data = gzip_bytes(body, coding)
            if chunked:
                conn.send(f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-encoding: {coding}\r\n"
                          "transfer-encoding: chunked\r\n\r\n".encode())
                half = len(data) // 2
                conn.chunk(data[:half])
                conn.chunk(data[half:])
                conn.end_stream()
            else:
                conn.respond(200, data, {"content-encoding": coding}, ctype=ctype)
    return handler
