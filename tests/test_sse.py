"""The SSE decoder alone: WHATWG event-stream rules, any split of the bytes, real transcripts.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
The property tests compare the decoder, fed in arbitrary pieces, with ``reference()``: a
deliberately naive, line-by-line transcription of the spec (plus our one documented
deviation at end of stream), run on the whole body at once.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllm_client._sse import SSEDecoder, SSEEvent

BOM = b"\xef\xbb\xbf"
Ev = tuple[str, bytes]


# -- helpers -------------------------------------------------------------------------------


def pieces(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class Run:
    """One decoder fed ``chunks``: events from feed() (strict), then from flush(), and comments."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.comment_lines: list[bytes] = []
        self.decoder = SSEDecoder(on_comment=self.comment_lines.append)
        self.strict: list[Ev] = []
        for chunk in chunks:
            self.strict += [(e.event, e.data) for e in self.decoder.feed(chunk)]
        self.flushed: list[Ev] = [(e.event, e.data) for e in self.decoder.flush()]
        self.events = self.strict + self.flushed


def run(data: bytes, cuts: Iterable[int] = ()) -> Run:
    return Run(pieces(data, cuts))


def events(data: bytes, cuts: Iterable[int] = ()) -> list[Ev]:
    return run(data, cuts).events


def every_way(data: bytes) -> list[list[bytes]]:
    """Whole; cut once at every position; and one byte per feed."""
    ways = [[data], [data[i:i + 1] for i in range(len(data))]]
    ways += [pieces(data, [i]) for i in range(1, len(data))]
    return ways


def all_splits_agree(data: bytes) -> list[Ev]:
    """The events of ``data``, asserting every way of feeding it gives the same ones."""
    whole = Run([data]).events
    for chunks in every_way(data):
        assert Run(chunks).events == whole, chunks
    return whole


def reference(stream: bytes, *, at_eof: bool = True) -> tuple[list[Ev], list[bytes]]:
    """The spec's algorithm, literally, on the whole stream: (events, comments).

    ``at_eof``: also process an unterminated last line and dispatch a pending event (our
    deviation); without it, the events a strict parser dispatches while the stream is open.
    """
    if stream.startswith(BOM):
        stream = stream[3:]
    *lines, last = re.split(rb"\r\n|\r|\n", stream)
    if at_eof and last:
        lines.append(last)
    out: list[Ev] = []
    comments: list[bytes] = []
    data, etype = b"", b""

    def dispatch() -> None:
        nonlocal data, etype
        if data == b"":
            etype = b""
            return
        if data.endswith(b"\n"):
            data = data[:-1]
        out.append((etype.decode("utf-8", "replace") or "message", data))
        data, etype = b"", b""

    for line in lines:
        if line == b"":
            dispatch()
        elif line.startswith(b":"):
            comments.append(line[1:])
        else:
            if b":" in line:
                name, value = line.split(b":", 1)
                if value.startswith(b" "):
                    value = value[1:]
            else:
                name, value = line, b""
            if name == b"event":
                etype = value
            elif name == b"data":
                data += value + b"\n"
    if at_eof and data:
        if data.endswith(b"\n"):
            data = data[:-1]
        out.append((etype.decode("utf-8", "replace") or "message", data))
    return out, comments


def check_against_reference(data: bytes, chunks: list[bytes]) -> Run:
    r = Run(chunks)
    ref_events, ref_comments = reference(data)
    assert r.events == ref_events
    assert r.strict == reference(data, at_eof=False)[0]
    assert r.comment_lines == ref_comments
    assert r.decoder.comments == len(ref_comments)
    return r


# -- SSEEvent ------------------------------------------------------------------------------


def test_sse_event_value_semantics() -> None:
    e = SSEEvent("message", b"x")
    assert e.event == "message" and e.data == b"x"
    assert e == SSEEvent("message", b"x")
    assert e != SSEEvent("message", b"y") and e != SSEEvent("answer", b"x")
    assert e != ("message", b"x")
    assert repr(e) == "SSEEvent(event='message', data=b'x')"
    assert not hasattr(e, "__dict__")
    with pytest.raises(TypeError):
        hash(e)


# -- line ends -----------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_each_line_end_style(eol: bytes) -> None:
    data = b"data: a" + eol + b"data: b" + eol + eol + b"event: e" + eol + b"data: c" + eol + eol
    assert all_splits_agree(data) == [("message", b"a\nb"), ("e", b"c")]


def test_mixed_line_ends() -> None:
    assert all_splits_agree(b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r\n\n") == [
        ("message", b"a\nb\nc"), ("message", b"d")]
    # CR CR: a line end then a blank line; LF CR: the same; CR LF: ONE line end
    assert all_splits_agree(b"data: a\r\rdata: b\n\rdata: c\r\n") == [("message", b"a"), ("message", b"b"),
                                                                         ("message", b"c")]


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\r") == []
    # the LF is the partner of the CR: no blank line here, so no dispatch of "a" alone
    assert d.feed(b"\ndata: b\r\n\r") == [SSEEvent("message", b"a\nb")]
    assert d.feed(b"\ndata: c\r") == []
    assert d.feed(b"") == []  # an empty read keeps the pending CR
    assert d.feed(b"\n") == []  # ... so this LF is its partner, not a blank line
    assert d.feed(b"data: d\n\n") == [SSEEvent("message", b"c\nd")]
    assert d.flush() == []


def test_cr_at_end_of_chunk_skips_only_one_lf() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\r") == []
    assert d.feed(b"\n\n") == [SSEEvent("message", b"a")]  # CRLF, then a blank line
    assert d.feed(b"data: b\r") == []
    assert d.feed(b"\r") == [SSEEvent("message", b"b")]  # CR, then CR: a blank line
    assert d.feed(b"data: c\r") == []
    assert d.feed(b"data: d\n\n") == [SSEEvent("message", b"c\nd")]  # no LF to skip


# -- BOM -----------------------------------------------------------------------------------


def test_bom_at_start_dropped_whole_or_split() -> None:
    assert all_splits_agree(BOM + b"data: x\n\n") == [("message", b"x")]
    assert events(BOM + b"data: x\n\n", [1, 2]) == [("message", b"x")]
    d = SSEDecoder()
    assert [d.feed(bytes([b])) for b in BOM] == [[], [], []]
    assert d.feed(b"data: x\n\n") == [SSEEvent("message", b"x")]


def test_bom_only_once_and_only_at_start() -> None:
    # later, a BOM is part of the line: a field named "\ufeffdata", ignored
    assert all_splits_agree(b"data: a\n\n" + BOM + b"data: b\n\n") == [("message", b"a")]
    assert all_splits_agree(BOM + BOM + b"data: a\n\ndata: b\n\n") == [("message", b"b")]
    # only part of a BOM: not dropped, the line's field name is not "data"
    assert all_splits_agree(b"\xef\xbbdata: a\n\ndata: b\n\n") == [("message", b"b")]
    assert all_splits_agree(b"\xefdata: a\n\ndata: b\n\n") == [("message", b"b")]


def test_bom_only_or_part_of_it_then_end() -> None:
    for data in (BOM, BOM[:1], BOM[:2], BOM + b"\n\n"):
        r = run(data)
        assert r.events == [] and r.comment_lines == []


# -- fields --------------------------------------------------------------------------------


def test_only_one_leading_space_removed() -> None:
    assert all_splits_agree(b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n") == [
        ("message", b"x"), ("message", b"x"), ("message", b" x"), ("message", b"\tx")]
    assert all_splits_agree(b"event:  e\ndata: x\n\nevent:e\ndata: x\n\n") == [(" e", b"x"), ("e", b"x")]
    assert events(b"data: x \n\n") == [("message", b"x ")]  # trailing space kept


def test_colon_in_value_kept() -> None:
    assert all_splits_agree(b'data: {"a": "b:c"}\ndata::\n\n') == [("message", b'{"a": "b:c"}\n:')]


def test_line_without_colon_is_a_name_with_empty_value() -> None:
    assert all_splits_agree(b"data\n\n") == [("message", b"")]
    assert all_splits_agree(b"data\ndata\n\n") == [("message", b"\n")]
    assert all_splits_agree(b"event\ndata: x\n\n") == [("message", b"x")]  # empty type -> "message"
    assert all_splits_agree(b"data: a\ndata\ndata: b\n\n") == [("message", b"a\n\nb")]


def test_empty_data_line_is_dispatched() -> None:
    # Spec: a data line appends its value AND an LF to the data buffer, and dispatch only
    # bails out when the buffer "is the empty string". After "data:" the buffer is "\n",
    # so the event is dispatched, with its trailing LF removed: data "".
    assert all_splits_agree(b"data:\n\n") == [("message", b"")]
    assert all_splits_agree(b"data: \n\n") == [("message", b"")]
    assert all_splits_agree(b"event: ping\ndata:\n\n") == [("ping", b"")]


def test_multi_line_data_joined_with_lf() -> None:
    assert all_splits_agree(b"data: a\ndata: b\ndata: c\n\n") == [("message", b"a\nb\nc")]
    assert all_splits_agree(b"data: a\ndata:\n\n") == [("message", b"a\n")]
    assert all_splits_agree(b"data:\ndata: a\n\n") == [("message", b"\na")]


def test_field_names_are_exact() -> None:
    assert all_splits_agree(b"Data: a\n\ndata : b\n\n data: c\n\nDATA: d\n\ndata2: e\n\n") == []


def test_id_retry_and_unknown_fields_ignored() -> None:
    data = (b"id: 7\nretry: 100\nretry: not-a-number\nid: \x00\xff\nfoo: bar\nid\nretry\n"
            b"data: x\nid: 8\nx-unknown: y\n\n")
    assert all_splits_agree(data) == [("message", b"x")]
    assert all_splits_agree(b"retry: 3000\n\nid: 1\n\nfoo\n\n") == []


def test_data_is_raw_bytes_never_decoded() -> None:
    assert all_splits_agree(b"data: \xff\xfe\x00\xc3\n\n") == [("message", b"\xff\xfe\x00\xc3")]
    text = "Grüße 👋🏽 世界 — naïve café ✓"
    assert all_splits_agree(b"data: " + text.encode() + b"\n\n") == [("message", text.encode())]


# -- comments ------------------------------------------------------------------------------


def test_comments_counted_and_reported_without_colon() -> None:
    data = b":\n: keep-alive\n:x:y\ndata: 1\n: inside the event\n\n:data: not data\n\n: \xff\n"
    r = run(data)
    assert r.events == [("message", b"1")]
    assert r.comment_lines == [b"", b" keep-alive", b"x:y", b" inside the event", b"data: not data", b" \xff"]
    assert r.decoder.comments == 6
    for chunks in every_way(data):
        again = Run(chunks)
        assert again.comment_lines == r.comment_lines and again.events == r.events


def test_comments_counted_without_callback() -> None:
    d = SSEDecoder()
    assert d.feed(b": a\n: b\n\n:c") == []
    assert d.comments == 2
    assert d.flush() == []
    assert d.comments == 3  # the unterminated last line is a line too


# -- event type ----------------------------------------------------------------------------


def test_event_names() -> None:
    assert all_splits_agree(b"event: answer\ndata: 1\n\n") == [("answer", b"1")]
    assert all_splits_agree(b"event: a\nevent: b\ndata: 1\n\n") == [("b", b"1")]  # last one wins
    assert all_splits_agree(b"data: 1\nevent: late\n\n") == [("late", b"1")]  # anywhere in the event
    assert all_splits_agree("event: 世界\ndata: 1\n\n".encode()) == [("世界", b"1")]
    assert all_splits_agree(b"event: \xff\xe4\xb8\ndata: 1\n\n") == [("\ufffd\ufffd", b"1")]


def test_event_type_resets_after_dispatch_and_after_empty_event() -> None:
    assert all_splits_agree(b"event: answer\ndata: 1\n\ndata: 2\n\nevent: flowResponses\ndata: [1]\n\n") == [
        ("answer", b"1"), ("message", b"2"), ("flowResponses", b"[1]")]
    # a blank line with no data dispatches nothing but still resets the type
    assert all_splits_agree(b"event: x\n\ndata: y\n\n") == [("message", b"y")]


def test_event_type_from_an_earlier_read_applies_to_a_one_event_read() -> None:
    d = SSEDecoder()
    assert d.feed(b"event: answer\n") == []
    assert d.feed(b"data: 1\n\n") == [SSEEvent("answer", b"1")]
    assert d.feed(b"data: 2\n\n") == [SSEEvent("message", b"2")]


# -- dispatch ------------------------------------------------------------------------------


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert all_splits_agree(b"\n\n\n\r\n\r\revent: x\n\nid: 1\n\n: c\n\nretry: 5\n\n") == []


def test_feed_returns_only_the_events_that_chunk_completes() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\n") == []
    assert d.feed(b"\ndata: b\n\ndata: c\n\nda") == [SSEEvent("message", b"a"), SSEEvent("message", b"b"),
                                                     SSEEvent("message", b"c")]
    assert d.feed(b"ta: d\n") == []
    assert d.feed(b"\n") == [SSEEvent("message", b"d")]


def test_one_event_reads_that_are_not_one_data_line() -> None:
    # each starts with "data: " and ends with a blank line, but is not a single data line
    d = SSEDecoder()
    assert d.feed(b"data: a\nevent: x\n\n") == [SSEEvent("x", b"a")]
    assert d.feed(b"data: a\ndata: b\n\n") == [SSEEvent("message", b"a\nb")]
    assert d.feed(b"data: a\rb: c\n\n") == [SSEEvent("message", b"a")]  # CR ends the line
    assert d.feed(b"data: a\n\ndata: b\n\n") == [SSEEvent("message", b"a"), SSEEvent("message", b"b")]
    assert d.feed(b"data: a\n") == []
    assert d.feed(b"data: b\n\n") == [SSEEvent("message", b"a\nb")]  # joins the waiting data line
    assert d.feed(b"data: a") == []
    assert d.feed(b"data: b\n\n") == [SSEEvent("message", b"adata: b")]  # completes the pending line


# -- end of stream -------------------------------------------------------------------------


def test_final_event_without_blank_line_dispatched_by_flush() -> None:
    r = run(b"data: a\n\ndata: [DONE]\n")
    assert r.strict == [("message", b"a")]  # a strict parser stops here
    assert r.flushed == [("message", b"[DONE]")]  # our deviation
    assert events(b"event: e\ndata: x\ndata: y\r\n") == [("e", b"x\ny")]


def test_final_line_without_line_end() -> None:
    for data in (b"data: [DONE]", b"data:[DONE]", b"event: e\ndata: [DONE]", b"data: a\r\ndata: [DONE]"):
        r = run(data)
        assert r.strict == []
        assert r.flushed == reference(data)[0] and r.flushed[-1][1].endswith(b"[DONE]")
    assert events(b"data: a\n\nevent: e") == [("message", b"a")]  # a last line with no data
    assert events(b"data: a\r") == [("message", b"a")]


def test_flush_resets_the_decoder() -> None:
    d = SSEDecoder()
    assert d.feed(b"event: e\ndata: a\ndata: b") == []
    assert d.flush() == [SSEEvent("e", b"a\nb")]
    assert d.flush() == []
    # clean state: no leftover type, data, partial line or pending CR; a BOM is a BOM again
    assert d.feed(BOM + b"data: c\n\n") == [SSEEvent("message", b"c")]
    assert d.feed(b"event: e\ndata: x\r") == []
    assert [e.data for e in d.flush()] == [b"x"]
    assert d.feed(b"\ndata: y\n\n") == [SSEEvent("message", b"y")]  # this LF is a blank line now
    d.feed(b"event: pending")
    assert d.flush() == []
    assert d.feed(b"data: z\n\n") == [SSEEvent("message", b"z")]


def test_flush_on_a_fresh_decoder() -> None:
    assert SSEDecoder().flush() == []


# -- splits and sizes ----------------------------------------------------------------------


def test_multibyte_utf8_split_at_every_byte() -> None:
    text = "héllo 世界 🎉 Grüße 👋🏽".encode()
    data = b"event: \xe4\xb8\x96\ndata: " + text + b"\r\ndata: " + text + b"\r\n\r\n"
    assert all_splits_agree(data) == [("世", text + b"\n" + text)]


def test_huge_line_in_small_reads() -> None:
    value = bytes(range(32, 127)) * 22_000  # ~2 MB, one line
    data = b"data: " + value + b"\n\n" + b": " + value + b"\ndata: " + value
    r = run(data, range(0, len(data), 997))
    assert r.strict == [("message", value)]
    assert r.flushed == [("message", value)]
    assert r.comment_lines == [b" " + value]


def test_many_events_in_one_read() -> None:
    evs = [b'{"i":%d,"s":"\xe4\xb8\x96"}' % i for i in range(500)]
    data = b"".join(b"data: " + e + b"\n\n" for e in evs)
    assert Run([data]).strict == [("message", e) for e in evs]
    assert Run([data[i:i + 4096] for i in range(0, len(data), 4096)]).strict == [("message", e) for e in evs]


# -- feed_data (the stream accumulator's view) --------------------------------------------


def test_feed_data_gives_message_events_as_their_bytes() -> None:
    d = SSEDecoder()
    got = d.feed_data(b"data: a\n\nevent: answer\ndata: b\n\nevent: message\ndata: c\n\ndata: d\ndata: e\n\ndata: f")
    assert got == [b"a", SSEEvent("answer", b"b"), b"c", b"d\ne"]
    assert d.feed_data(b"\n\n") == [b"f"]
    assert d.feed_data(b"data: \n\n") == [b""]  # an empty data line is still an event
    assert d.feed_data(b"event: x\ndata: y\n") == []
    assert d.flush_data() == [SSEEvent("x", b"y")]


def test_whole_events_in_one_read_take_the_fast_path_and_agree_with_lines() -> None:
    events = [b"data: {\"i\":%d}\n\n" % i for i in range(5)]
    body = b"".join(events)
    d = SSEDecoder()
    assert d.feed_data(body) == [b'{"i":%d}' % i for i in range(5)]
    # the same with an unfinished event after them, then its end
    d = SSEDecoder()
    assert d.feed_data(body + b"data: {\"i\":5") == [b'{"i":%d}' % i for i in range(5)]
    assert d.feed_data(b"}\n") == []
    assert d.feed_data(b"\ndata: [DONE]\n\n") == [b'{"i":5}', b"[DONE]"]


@pytest.mark.parametrize("odd", [b": keep-alive\n\n", b"data: x\ndata: y\n\n", b"event: e\ndata: z\n\n",
                                 b"data: x\r\n\r\n", b"\n", b"id: 1\n\n", b"data:no-space\n\n"])
def test_anything_but_plain_events_falls_back_to_lines(odd: bytes) -> None:
    data = b"data: 1\n\n" + odd + b"data: 2\n\n"
    assert Run([data]).events == reference(data)[0]
    assert Run([data[:3], data[3:]]).events == reference(data)[0]


# -- property tests ------------------------------------------------------------------------

TEXT = st.lists(st.sampled_from(list("abc xyz:{}\"é世界🎉\t") + ["héllo", " 世界 ", "👋🏽", "[DONE]"]),
                max_size=8).map(lambda words: "".join(words).encode())
NAMES = st.sampled_from([b"data", b"data", b"data", b"event", b"id", b"retry", b"foo", b"Data", b"data ", b""])
SEPS = st.sampled_from([b":", b": ", b": ", b":  ", b""])
EOLS = st.sampled_from([b"\n", b"\n", b"\r", b"\r\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    parts = [BOM] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["blank", "blank", "comment", "field", "field", "field", "bom"]))
        if kind == "blank":
            parts.append(draw(EOLS))
        elif kind == "comment":
            parts.append(b":" + draw(TEXT) + draw(EOLS))
        elif kind == "field":
            parts.append(draw(NAMES) + draw(SEPS) + draw(TEXT) + draw(EOLS))
        else:
            parts.append(BOM)
    if draw(st.booleans()):  # an unterminated last line
        parts.append(draw(NAMES) + draw(SEPS) + draw(TEXT))
    return b"".join(parts)


def cuts_for(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, max(len(data), 1)), max_size=15)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.data())
def test_any_split_matches_the_reference(data: bytes, draw: st.DataObject) -> None:
    cuts = draw.draw(cuts_for(data))
    check_against_reference(data, pieces(data, cuts))
    check_against_reference(data, [data[i:i + 1] for i in range(len(data))])


# Fragments that sit on every edge of the parser: line ends, BOM pieces, colons, spaces, fields.
FRAGMENTS = st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n", b":", b" ", b"data",
                             b"\ndata:", b"\rdata: ", b"\r\ndata:  ", b"\nevent:", b"\nevent: ", b"\nid: 1",
                             b"\nretry", b"[DONE]", BOM, BOM[:1], BOM[1:], b"\x00", b"\xff", b"\xe4\xb8", b"\x96",
                             b"x", b"{}"]) | st.binary(max_size=6)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS, max_size=40).map(b"".join), st.data())
def test_adversarial_bytes_match_the_reference(data: bytes, draw: st.DataObject) -> None:
    check_against_reference(data, pieces(data, draw.draw(cuts_for(data))))
    check_against_reference(data, [data[i:i + 1] for i in range(len(data))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.data())
def test_random_bytes_never_raise(data: bytes, draw: st.DataObject) -> None:
    r = check_against_reference(data, pieces(data, draw.draw(cuts_for(data))))
    assert all(type(e) is str and type(d) is bytes for e, d in r.events)


PLAIN = st.builds(lambda t: b"data: " + t + b"\n\n", TEXT.filter(lambda t: b"\n" not in t and b"\r" not in t))
ODD = st.sampled_from([b": c\n\n", b"event: e\n", b"data: p", b"data: q\n", b"\r", b"\n", b"\r\n", b"data: a\rb\n\n",
                       b"data: m\ndata: n\n\n", b"event: message\n", b"id: 7\n", BOM, b""])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(PLAIN, PLAIN, PLAIN, ODD), max_size=30).map(b"".join), st.data())
def test_streams_of_mostly_plain_events_match_the_reference(data: bytes, draw: st.DataObject) -> None:
    # mostly the shape the fast paths take, cut anywhere, with odd pieces that must end them
    check_against_reference(data, pieces(data, draw.draw(cuts_for(data))))
    d = SSEDecoder()
    got: list[Ev] = []
    for chunk in pieces(data, draw.draw(cuts_for(data))):
        got += [(e.event, e.data) if isinstance(e, SSEEvent) else ("message", e) for e in d.feed_data(chunk)]
    got += [(e.event, e.data) if isinstance(e, SSEEvent) else ("message", e) for e in d.flush_data()]
    assert got == reference(data)[0]


# -- real wire transcripts -----------------------------------------------------------------

WIRE = Path(__file__).parent / "wire"
CASES = sorted(p.name[: -len(".sse")] for p in WIRE.glob("*.sse"))


def wire_case(name: str) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    meta: dict[str, Any] = json.loads((WIRE / f"{name}.meta.json").read_text())
    return (WIRE / f"{name}.sse").read_bytes(), meta, meta["expected"]


def test_wire_corpus_present() -> None:
    assert len(CASES) >= 39
    assert all((WIRE / f"{name}.meta.json").is_file() for name in CASES)


def wire_splits(data: bytes, meta: dict[str, Any], rng: random.Random) -> list[list[bytes]]:
    ways = [[data]]
    if "read_boundaries" in meta["expected"]:
        ways.append(pieces(data, meta["expected"]["read_boundaries"]))
    for _ in range(4):
        ways.append(pieces(data, [rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 60))]))
    # inside every multi-byte character and between every CR and its LF, at least once
    ways.append(pieces(data, [i for i in range(1, len(data))
                              if data[i] & 0xC0 == 0x80 or data[i - 1:i + 1] == b"\r\n"]))
    ways.append([data[i:i + 4096] for i in range(0, len(data), 4096)])
    if len(data) < 20_000:
        ways.append([data[i:i + 1] for i in range(len(data))])
    return ways


@pytest.mark.parametrize("name", CASES)
def test_wire_transcript(name: str) -> None:
    """Each transcript, in random splits: the sidecar's strict event count (``n_sse_events``
    counts what a strict WHATWG parser dispatches, so feed() only), its comments, whether
    [DONE] is dispatched; and what flush() adds beyond the strict parser."""
    data, meta, exp = wire_case(name)
    ends_with_blank_line = data.endswith((b"\n\n", b"\r\r", b"\r\n\r\n"))
    first: Run | None = None
    for chunks in wire_splits(data, meta, random.Random(name)):
        r = Run(chunks)
        if first is None:
            first = r
            assert r.events == reference(data)[0]
        else:
            assert r.events == first.events and r.comment_lines == first.comment_lines
        if "n_sse_events" in exp:
            assert len(r.strict) == exp["n_sse_events"]
        if "sse_comments" in exp:
            assert [c.decode("utf-8") for c in r.comment_lines] == exp["sse_comments"]
            assert r.decoder.comments == len(exp["sse_comments"])
        if "done_sentinel_seen" in exp:
            assert any(d == b"[DONE]" for _, d in r.strict) == exp["done_sentinel_seen"]
        if ends_with_blank_line:
            assert r.flushed == []
        else:  # only the llama.cpp capture: "data: [DONE]\n" and no blank line
            assert r.flushed == [("message", b"[DONE]")]
    assert first is not None
    # every payload is JSON (the consumer's orjson.loads on the raw bytes) or the sentinel
    objs = [(e, orjson.loads(d)) for e, d in first.events if d != b"[DONE]"]
    non_chunk = [{"event": e, "obj": o} for e, o in objs if not (isinstance(o, dict) and "choices" in o)]
    assert non_chunk == exp.get("non_chunk_events", [])


def test_wire_only_llamacpp_lacks_the_final_blank_line() -> None:
    lacking = [name for name in CASES if not wire_case(name)[0].endswith((b"\n\n", b"\r\n\r\n"))]
    assert lacking == ["llamacpp_final-timings-done-no-blank"]
    data, _, exp = wire_case(lacking[0])
    r = run(data)
    assert exp["done_sentinel_seen"] is False and exp["n_sse_events"] == 2
    assert len(r.strict) == 2 and r.events[-1] == ("message", b"[DONE]")  # seen thanks to flush()


def test_wire_fastgpt_event_names() -> None:
    data, _, exp = wire_case("fastgpt_detail-stream-events")
    r = run(data, range(7, len(data), 61))
    assert [e for e, _ in r.events] == ["flowNodeStatus"] * 2 + ["answer"] * 7 + ["flowResponses"]
    assert r.events[8] == ("answer", b"[DONE]")
    assert [orjson.loads(d) for e, d in r.events if e == "flowNodeStatus"] == exp["flowNodeStatus"]
