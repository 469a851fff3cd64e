"""A FakeVllmServer that the Ray tests and benchmarks/bench_ray.py share: every generation
answered after ``latency`` seconds, the peak of requests in flight measured at the server, and
faults chosen by the prompt (a row's text), since Ray runs rows in no fixed order:

- ``FAULT400`` / ``FAULT500``: that status with vLLM's error JSON;
- ``FAULT502TEXT``: 502 with a plain-text (non-JSON) body;
- ``FAULTBADJSON``: 200 with a body that is not JSON;
- ``FAULTNEVER``: no answer until the server stops;
- ``FAULT429``: 429 with ``Retry-After: 1`` the first time this prompt is seen.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from vllm_client.testing import FakeVllmServer
from vllm_client.testing import _wire as w
from vllm_client.testing._server import _Answer


def _prompt(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    msgs = body.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
        return str(msgs[-1].get("content"))
    return ""


class LoadServer(FakeVllmServer):
    """FakeVllmServer with a fixed latency, the server's own in-flight count, and prompt-chosen faults."""

    def __init__(self, latency: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.latency = latency
        self.now = 0
        self.peak = 0
        self.generations = 0
        self.starts: list[float] = []
        self._count = threading.Lock()
        self._seen429: set[str] = set()
        self.answered_429: float | None = None  # when the first 429 was answered

    def reset_counts(self) -> None:
        with self._count:
            self.peak = self.now
            self.generations = 0
            self.starts = []

    def _dispatch(self, h: Any) -> None:
        with self._count:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            super()._dispatch(h)
        finally:
            with self._count:
                self.now -= 1

    def _route(self, method: str, path: str, headers: Any, raw: bytes, body: Any, bad_json: bool,
               reply: Any) -> tuple[Any, bool]:
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            with self._count:
                self.generations += 1
                self.starts.append(time.monotonic())
            prompt = _prompt(body)
            if "FAULTNEVER" in prompt:
                self._stopping.wait(120)
                return _Answer(500, w.error_body(500, "stopped")), False
            if self.latency:
                self._stopping.wait(self.latency)
            if "FAULT400" in prompt:
                return _Answer(400, w.error_body(400, "bad prompt", "BadRequestError")), False
            if "FAULT500" in prompt:
                return _Answer(500, w.error_body(500, "engine failed", "InternalServerError")), False
            if "FAULT502TEXT" in prompt:
                return _Answer(502, b"<html>502 Bad Gateway</html>", "text/html"), False
            if "FAULTBADJSON" in prompt:
                return _Answer(200, b"{not json", "application/json"), False
            if "FAULT429" in prompt and prompt not in self._seen429:
                self._seen429.add(prompt)
                self.answered_429 = time.monotonic()
                return _Answer(429, w.error_body(429, "slow down"), headers=[("retry-after", "1")]), False
        return super()._route(method, path, headers, raw, body, bad_json, reply)
