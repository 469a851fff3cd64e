"""``Printer``: stream events to a terminal or a pipe, for the CLI and the demo."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["Printer", "DIM", "BOLD", "RESET"]

DIM, BOLD, RESET = "\033[2m", "\033[1m", "\033[0m"


class Printer:
    """Writes stream events to a terminal (reasoning dimmed) or a pipe (reasoning prefixed)."""

    def __init__(self, out: TextIO | None = None) -> None:
        out = sys.stdout if out is None else out  # (looked up now: a default bound at import goes stale)
        self.out = out
        self.tty = out.isatty() and os.environ.get("NO_COLOR") is None
        self.mode = ""  # "reasoning" | "content" | ""

    def _switch(self, mode: str) -> None:
        if mode == self.mode:
            return
        if self.mode == "reasoning" and self.tty:
            self.out.write(RESET)
        if self.mode:
            self.out.write("\n")
        if mode == "reasoning":
            self.out.write(DIM if self.tty else "[thinking] ")
        self.mode = mode

    def event(self, ev: Any) -> None:
        t = ev.type
        if t == "reasoning":
            self._switch("reasoning")
            self.out.write(ev.text)
        elif t == "content":
            self._switch("content")
            self.out.write(ev.text)
        elif t == "tool_call":
            self._switch("")
            self.out.write(f"[tool call] {ev.tool_call.name}({ev.tool_call.arguments})\n")
        elif t == "event":
            pass
        elif t == "done":
            self.end()
            return
        else:
            return
        self.out.flush()

    def end(self) -> None:
        """Close the current line and reset colours."""
        if self.mode == "reasoning" and self.tty:
            self.out.write(RESET)
        if self.mode:
            self.out.write("\n")
        self.mode = ""
        self.out.flush()


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def stats_line(timing: Any) -> str:
    """One line of a reply's timings: ``TTFT 0.120 s, 45.2 tokens/s, total 1.234 s``."""
    tps = timing.output_tokens_per_second if timing is not None else None
    parts = [f"TTFT {_s(timing.time_to_first_token if timing is not None else None)}",
             f"{tps:.1f} tokens/s" if tps is not None else "tokens/s -",
             f"total {_s(timing.total if timing is not None else None)}"]
    if timing is not None and timing.retries:
        parts.append(f"{timing.retries} retr{'y' if timing.retries == 1 else 'ies'}")
    return ", ".join(parts)

