"""``Printer``: stream events to a terminal or a pipe, for the CLI and the demo."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["Printer", "DIM", "BOLD", "RESET"]

DIM, BOLD, RESET = "\033[2m", "\033[1m", "\033[0m"


class Printer:
    """Writes stream events to a terminal (reasoning dimmed) or a pipe (reasoning prefixed)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
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
