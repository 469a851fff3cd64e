"""An incremental Server-Sent Events decoder (WHATWG event-stream rules), bytes in, events out.

Pure: no I/O; the sync and async transports both feed it the body as it arrives,
in any split. Lines are cut only at CR / LF bytes, which never occur inside a
multi-byte UTF-8 character, so a character split across reads is never
corrupted and nothing is decoded on the hot path: ``data`` stays ``bytes`` for
``orjson.loads``. Only the unfinished last line is carried between feeds.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SSEEvent", "SSEDecoder"]

_BOM = b"\xef\xbb\xbf"
# Byte membership tests with an int (``13 in chunk``) are a plain memchr, several
# times faster than ``b"\r" in chunk`` (which goes through the substring search).
_CR = 13
_LF = 10


class SSEEvent:
    """One dispatched event: its type (``"message"`` by default) and its data bytes."""

    __slots__ = ("event", "data")

    def __init__(self, event: str, data: bytes) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return self.event == other.event and self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


class SSEDecoder:
    """``feed(bytes) -> list[SSEEvent]`` for each piece of the body; ``flush()`` at its end.

    WHATWG rules: LF / CR / CRLF line ends (a CRLF may be split across feeds), a
    leading UTF-8 BOM dropped, one space after the colon removed, ``data`` lines
    joined with LF, ``event`` sets the type (reset after every dispatch), ``id`` /
    ``retry`` / unknown fields ignored, ``:`` comments counted in ``comments`` and
    passed (without the colon) to ``on_comment``, and a blank line dispatching an
    event only if at least one ``data`` line came.

    One deliberate deviation, in ``flush()``: an event whose blank line never came
    is dispatched anyway (llama.cpp ends its streams with ``data: [DONE]\\n``);
    the spec discards it.

    Never raises on any input bytes (an exception from ``on_comment`` propagates).
    """

    __slots__ = ("_head", "_pending", "_data", "_event", "_skip_lf", "comments", "_on_comment")

    def __init__(self, on_comment: Callable[[bytes], None] | None = None) -> None:
        self._on_comment = on_comment
        self.comments = 0
        self._reset()

    def _reset(self) -> None:
        # The first bytes of the stream, held back while they may be a BOM split across
        # feeds (at most 2 bytes); None once past that check.
        self._head: bytes | None = b""
        # The unfinished last line, as the pieces that came (none has a CR or LF): joined
        # only when its line end arrives, so a huge line in many reads is copied once.
        self._pending: list[bytes] = []
        # The data buffer, one item per data line. Empty <=> the spec's data buffer is
        # the empty string: each data line appends "value" + LF to it, so even an empty
        # value (``data:``) makes it non-empty and the event IS dispatched, with b"".
        self._data: list[bytes] = []
        self._event = ""  # the event type buffer
        self._skip_lf = False  # the last feed ended in CR: an LF first in the next is its CRLF partner

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode the next piece of the stream; return the events it completes."""
        if self._head is not None:  # start of the stream: drop a BOM, even a split one
            chunk = self._head + chunk
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._head = chunk  # empty or maybe part of a BOM: wait for more
                return []
            self._head = None
            if chunk[:3] == _BOM:
                chunk = chunk[3:]
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        pending = self._pending
        if pending:
            pending.append(chunk)
            if _LF not in chunk and _CR not in chunk:
                return []  # still inside the same line
            chunk = b"".join(pending)
            pending.clear()
        elif chunk[:6] == b"data: " and chunk[-2:] == b"\n\n" and not self._data:
            # Fast path: vLLM writes each event as its own "data: <json>\n\n" HTTP chunk.
            # With no line pending, no data line waiting (it would be joined in) and no
            # CR / LF inside the value, the chunk is exactly one data line and one blank
            # line: the event is the value, no split needed. (A pending LF of a split
            # CRLF was already dropped above; an `event:` type still applies.)
            value = chunk[6:-2]
            if _LF not in value and _CR not in value:
                event = SSEEvent(self._event or "message", value)
                self._event = ""
                return [event]
        if _CR in chunk:
            # Rare: normalise CRLF and lone CR to LF. A CR at the very end is a complete
            # line end; an LF at the start of the next feed is then its partner, skipped.
            self._skip_lf = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        last = lines.pop()  # after the last line end: unfinished (b"" if the chunk ended a line)
        if last:
            pending.append(last)
        out: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:  # blank line: dispatch
                if data:
                    out.append(SSEEvent(self._event or "message", data[0] if len(data) == 1 else b"\n".join(data)))
                    data.clear()
                self._event = ""
            elif line[:6] == b"data: ":  # the common field, before the general parse
                data.append(line[6:])
            else:
                self._field(line)
        return out

    def _field(self, line: bytes) -> None:
        """A non-blank line other than ``data: ...``: a comment or a field."""
        if line[0] == 0x3A:  # ":" first: a comment
            self.comments += 1
            if self._on_comment is not None:
                self._on_comment(line[1:])
            return
        # "name:value" with one leading space of the value dropped; a line without a
        # colon is all name, with an empty value (partition then gives value b"").
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id", "retry" and any other field: ignored.

    def single_data(self, chunk: bytes) -> bytes | None:
        """The data of ``chunk`` if it is exactly one ``data: ...`` event and nothing is
        pending (how vLLM writes each event, one per HTTP chunk), else None: then call
        ``feed``. Same result as ``feed``, without building the event object; used by
        the stream accumulator, which only needs the bytes (the type is "message")."""
        if (chunk[:6] == b"data: " and chunk[-2:] == b"\n\n" and self._head is None
                and not self._pending and not self._data and not self._event and not self._skip_lf):
            value = chunk[6:-2]
            if _LF not in value and _CR not in value:
                return value
        return None

    def flush(self) -> list[SSEEvent]:
        """End of stream: process an unterminated last line, dispatch a pending event
        (even without its blank line, see the class doc), and reset the decoder."""
        out: list[SSEEvent] = []
        # A held-back head (at most two bytes of a BOM) is dropped: as a line it would be
        # a field named U+FFFD, ignored. An unterminated last line is terminated.
        if self._pending:
            out = self.feed(b"\n")
        data = self._data
        if data:
            out.append(SSEEvent(self._event or "message", data[0] if len(data) == 1 else b"\n".join(data)))
        self._reset()
        return out
