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
        return _events(self.feed_data(chunk))

    def feed_data(self, chunk: bytes) -> list[bytes | SSEEvent]:
        """Like ``feed``, but an event of the default type ``"message"`` comes as its data
        bytes alone (no event object): the stream accumulator's hot path."""
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
        out: list[bytes | SSEEvent] = []
        if not self._data and not self._event and _CR not in chunk and chunk[:6] == b"data: ":
            # Fast path, at an event boundary (no data line waiting, no type set), with LF
            # line ends: events written as "data: <value>\n\n" each, as vLLM and every
            # OpenAI-compatible server write them (vLLM: one event per HTTP chunk).
            if chunk[-1] == _LF and chunk[-2] == _LF:  # one event and nothing else?
                value = chunk[6:-2]
                if _LF not in value:
                    out.append(value)
                    return out
            # Many: cut the complete part at its "\n\ndata: " seams. If its only LFs are the
            # two after each value, every piece is one event's value; else (comments, other
            # fields, multi-line data) it all goes line by line.
            end = chunk.rfind(b"\n\n")
            if end > 0:
                values: list[bytes | SSEEvent] = chunk[6:end].split(b"\n\ndata: ")  # type: ignore[assignment]
                if chunk.count(_LF, 0, end + 2) == 2 * len(values):
                    if end + 2 < len(chunk):  # an unfinished event after them
                        self._lines(chunk[end + 2:], values)
                    return values
        self._lines(chunk, out)
        return out

    def _lines(self, chunk: bytes, out: list[bytes | SSEEvent]) -> None:
        """The general case: process ``chunk`` line by line (the line ends it contains)."""
        if _CR in chunk:
            # Rare: normalise CRLF and lone CR to LF. A CR at the very end is a complete
            # line end; an LF at the start of the next feed is then its partner, skipped.
            self._skip_lf = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        last = lines.pop()  # after the last line end: unfinished (b"" if the chunk ended a line)
        if last:
            self._pending.append(last)
        data = self._data
        for line in lines:
            if not line:  # blank line: dispatch
                if data:
                    self._dispatch(out)
                self._event = ""
            elif line[:6] == b"data: ":  # the common field, before the general parse
                data.append(line[6:])
            else:
                self._field(line)

    def _dispatch(self, out: list[bytes | SSEEvent]) -> None:
        data = self._data
        value = data[0] if len(data) == 1 else b"\n".join(data)
        data.clear()
        out.append(SSEEvent(self._event, value) if self._event and self._event != "message" else value)

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

    def flush(self) -> list[SSEEvent]:
        """End of stream: process an unterminated last line, dispatch a pending event
        (even without its blank line, see the class doc), and reset the decoder."""
        return _events(self.flush_data())

    def flush_data(self) -> list[bytes | SSEEvent]:
        """``flush`` with "message" events as bare data bytes, like ``feed_data``."""
        out: list[bytes | SSEEvent] = []
        # A held-back head (at most two bytes of a BOM) is dropped: as a line it would be
        # a field named U+FFFD, ignored. An unterminated last line is terminated.
        if self._pending:
            out = self.feed_data(b"\n")
        if self._data:
            self._dispatch(out)
        self._reset()
        return out


def _events(items: list[bytes | SSEEvent]) -> list[SSEEvent]:
    """``feed_data`` / ``flush_data`` items as events: bare data bytes are "message" events."""
    return [e if isinstance(e, SSEEvent) else SSEEvent("message", e) for e in items]
