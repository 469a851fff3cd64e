"""An incremental Server-Sent Events decoder (WHATWG event-stream rules), bytes in, events out.

Pure: no I/O. Fed the body as it arrives, in any split. Lines are cut only at
CR / LF bytes, which never occur inside a multi-byte UTF-8 character, so a
character split across reads is never corrupted; ``data`` stays ``bytes`` for
``orjson.loads``. Only the unfinished last line is carried between feeds.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SSEEvent", "SSEDecoder"]

_BOM = b"\xef\xbb\xbf"


class SSEEvent:
    """One dispatched event: its type (``"message"`` by default) and its data bytes."""

    __slots__ = ("event", "data")

    def __init__(self, event: str, data: bytes) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SSEEvent) and self.event == other.event and self.data == other.data

    __hash__ = None  # type: ignore[assignment]


class SSEDecoder:
    """``feed(bytes) -> list[SSEEvent]``; ``flush()`` at end of stream.

    Follows the WHATWG rules (LF / CR / CRLF line ends, a leading BOM dropped,
    one space after the colon removed, data lines joined with LF, comments and
    ``id`` / ``retry`` / unknown fields ignored, an event with no data line not
    dispatched), with one deliberate deviation: at end of stream an event whose
    blank line never came is still dispatched (llama.cpp ends ``data: [DONE]\\n``).
    """

    __slots__ = ("_tail", "_data", "_event", "_started", "_skip_lf", "comments", "_on_comment")

    def __init__(self, on_comment: Callable[[bytes], None] | None = None) -> None:
        self._tail = b""  # the unfinished last line (or, before the start, the bytes that may be a BOM)
        self._data: list[bytes] = []
        self._event = ""
        self._started = False
        self._skip_lf = False  # the last feed ended in CR: an LF first in the next one is its CRLF partner
        self.comments = 0
        self._on_comment = on_comment

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode the next piece of the stream; return the events it completes."""
        if not chunk:
            return []
        if not self._started:
            head = self._tail + chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._tail = head  # could still be a BOM: wait for more
                return []
            self._started = True
            self._tail = b""
            chunk = head[3:] if head.startswith(_BOM) else head
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._tail:
            chunk = self._tail + chunk
        if b"\r" in chunk:
            # Rare: normalise CRLF and lone CR to LF. A CR at the very end is a line end
            # now; if the next feed starts with LF, that LF belongs to it (skip it then).
            if chunk[-1:] == b"\r":
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        self._tail = lines.pop()
        out: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if line[:6] == b"data: ":  # the common case, first
                data.append(line[6:])
            elif not line:
                if data:
                    out.append(SSEEvent(self._event or "message", data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._data = []
                self._event = ""
            else:
                self._field(line)
                data = self._data
        return out

    def single_data(self, chunk: bytes) -> bytes | None:
        """The data of ``chunk`` when it is exactly one ``data: ...`` event and nothing is pending
        (how vLLM writes each event: its own HTTP chunk), else None: then call ``feed``.

        The same result ``feed`` would give, without building lines or an event object.
        """
        if (chunk[:6] == b"data: " and chunk[-2:] == b"\n\n" and self._started and not self._tail
                and not self._data and not self._event and not self._skip_lf
                and chunk.count(b"\n") == 2 and b"\r" not in chunk):
            return chunk[6:-2]
        return None

    def _field(self, line: bytes) -> None:
        if line[:1] == b":":
            self.comments += 1
            if self._on_comment is not None:
                self._on_comment(line[1:])
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1:]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id", "retry" and unknown fields are ignored.

    def flush(self) -> list[SSEEvent]:
        """End of stream: process an unterminated last line and dispatch a pending event."""
        out: list[SSEEvent] = []
        tail = self._tail
        if not self._started and tail.startswith(_BOM[: len(tail)]):
            tail = b""  # only (part of) a BOM arrived
        if tail:
            out.extend(self.feed(b"\n") if self._started else self._feed_all(tail + b"\n"))
        if self._data:
            d = self._data
            out.append(SSEEvent(self._event or "message", d[0] if len(d) == 1 else b"\n".join(d)))
        self._tail = b""
        self._data = []
        self._event = ""
        self._started = False
        self._skip_lf = False
        return out

    def _feed_all(self, data: bytes) -> list[SSEEvent]:
        self._tail = b""
        return self.feed(data)
