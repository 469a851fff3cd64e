"""The library's batch() progress (issue 34 item 10): drawn only when stderr is a terminal,
never for an empty input, never with progress=False. Both clients."""

from __future__ import annotations

import io
import sys

import pytest

from vllm_client import MockTransport

from ._both import CLIENTS, call, close, make, reply


class _Stderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(("tty", "n", "progress", "drawn"), [
    (True, 3, True, True),
    (False, 3, True, False),  # a log file, a CI job: nothing
    (True, 0, True, False),  # batch([]): nothing
    (True, 3, False, False),
])
async def test_progress_only_on_a_terminal(kind: str, tty: bool, n: int, progress: bool, drawn: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Stderr(tty)
    monkeypatch.setattr(sys, "stderr", err)
    client = make(kind, "http://test/v1", transport=MockTransport(lambda req: reply("ok")))
    try:
        reqs = [client.chat.completions().create().model("m").user_message(str(i)) for i in range(n)]
        results = await call(kind, client, "batch", reqs, progress=progress)
    finally:
        await close(kind, client)
    assert [r.content for r in results] == ["ok"] * n
    text = err.getvalue()
    if drawn:
        assert f"{n}/{n}" in text and text.endswith("\n") and text.count("\n") == 1
    else:
        assert text == ""
