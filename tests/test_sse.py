"""The SSE decoder alone: WHATWG event-stream rules, any split of the bytes, no server."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_client._sse import SSEDecoder, SSEEvent


def decode(data: bytes, splits: list[int] | None = None) -> tuple[list[SSEEvent], SSEDecoder]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    pos = 0
    for cut in sorted(splits or []):
        out += d.feed(data[pos:cut])
        pos = cut
    out += d.feed(data[pos:])
    out += d.flush()
    return out, d


def events(data: bytes) -> list[tuple[str, bytes]]:
    return [(e.event, e.data) for e in decode(data)[0]]


def test_line_endings_lf_cr_crlf() -> None:
    for eol in (b"\n", b"\r", b"\r\n"):
        assert events(b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol) == [
            ("message", b"a\nb"), ("message", b"c")]


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    data = b"data: a\r\n\r\ndata: b\r\n\r\n"
    for cut in range(1, len(data)):
        assert [(e.event, e.data) for e in decode(data, [cut])[0]] == [("message", b"a"), ("message", b"b")]


def test_bom_dropped_only_at_start_even_when_split() -> None:
    data = b"\xef\xbb\xbfdata: x\n\n"
    for cut in range(1, 4):
        assert [e.data for e in decode(data, [cut])[0]] == [b"x"]
    assert events(b"\xef\xbb\xbf") == []
    # a BOM later is part of the field name: not "data", so ignored
    assert events(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [("message", b"a")]


def test_one_leading_space_removed_only() -> None:
    assert events(b"data:x\n\ndata: x\n\ndata:  x\n\n") == [("message", b"x"), ("message", b"x"),
                                                            ("message", b" x")]


def test_field_without_colon_and_empty_data() -> None:
    assert events(b"data\n\n") == [("message", b"")]  # an empty data line is still dispatched
    assert events(b"data\ndata\n\n") == [("message", b"\n")]
    assert events(b"data:\n\n") == [("message", b"")]


def test_comments_counted_and_reported_not_dispatched() -> None:
    seen: list[bytes] = []
    d = SSEDecoder(on_comment=seen.append)
    out = d.feed(b": keep-alive\n:another\ndata: x\n\n: tail\n\n")
    assert [e.data for e in out] == [b"x"] and d.comments == 3 and seen == [b" keep-alive", b"another", b" tail"]


def test_event_names_reset_after_dispatch() -> None:
    assert events(b"event: answer\ndata: 1\n\ndata: 2\n\nevent: flowResponses\ndata: [1]\n\n") == [
        ("answer", b"1"), ("message", b"2"), ("flowResponses", b"[1]")]
    assert events(b"event: x\n\ndata: y\n\n") == [("message", b"y")]  # an empty event resets the type too


def test_id_retry_unknown_ignored() -> None:
    assert events(b"id: 7\nretry: 100\nfoo: bar\ndata: x\nid\n\n") == [("message", b"x")]


def test_empty_events_not_dispatched() -> None:
    assert events(b"\n\n\n\nevent: x\n\nid: 1\n\n") == []


def test_final_event_without_blank_line_and_final_line_without_newline() -> None:
    assert events(b"data: [DONE]\n") == [("message", b"[DONE]")]
    assert events(b"data: [DONE]") == [("message", b"[DONE]")]
    d = SSEDecoder()
    assert d.feed(b"data: a") == []
    assert [e.data for e in d.flush()] == [b"a"]
    assert d.flush() == [] and [e.data for e in d.feed(b"data: b\n\n")] == [b"b"]  # flush resets


def test_multibyte_utf8_split_everywhere() -> None:
    text = "Grüße 👋🏽 世界".encode()
    data = b"data: " + text + b"\n\n"
    for cut in range(1, len(data)):
        (ev,), _ = decode(data, [cut])
        assert ev.data.decode() == "Grüße 👋🏽 世界"


def test_single_data_fast_path_agrees_with_feed() -> None:
    d = SSEDecoder()
    assert d.single_data(b"data: x\n\n") is None  # not started yet: the BOM check comes first
    d.feed(b"data: a\n\n")
    assert d.single_data(b"data: x\n\n") == b"x"
    for not_single in (b"data: x\n\ndata: y\n\n", b"data: x\r\n\r\n", b"data: x\n", b"event: e\ndata: x\n\n"):
        assert d.single_data(not_single) is None
    d.feed(b"data: pending")
    assert d.single_data(b"data: x\n\n") is None  # a partial line is waiting


FIELDS = st.sampled_from([b"data", b"event", b"id", b"retry", b"foo", b""])
VALUES = st.text(alphabet=st.sampled_from(list("abc xyz:é世🎉{}\"")), max_size=12).map(str.encode)
EOLS = st.sampled_from([b"\n", b"\r", b"\r\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 3))
        eol = draw(EOLS)
        if kind == 0:
            parts.append(eol)  # blank line: dispatch
        elif kind == 1:
            parts.append(b":" + draw(VALUES) + eol)
        else:
            sep = draw(st.sampled_from([b":", b": ", b":  ", b""]))
            parts.append(draw(FIELDS) + sep + draw(VALUES) + eol)
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + b"".join(parts)


@settings(max_examples=400, deadline=None)
@given(streams(), st.lists(st.integers(1, 400), max_size=12))
def test_any_split_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    whole = [(e.event, e.data) for e in decode(data)[0]]
    cuts = [c for c in cuts if c < len(data)]
    assert [(e.event, e.data) for e in decode(data, cuts)[0]] == whole
    one_by_one = [(e.event, e.data) for e in decode(data, list(range(1, len(data))))[0]]
    assert one_by_one == whole


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 2**32))
def test_random_bytes_never_raise(data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.randrange(1, len(data)) for _ in range(min(5, len(data) - 1))) if len(data) > 1 else []
    out, _ = decode(data, cuts)
    assert all(isinstance(e.data, bytes) and isinstance(e.event, str) for e in out)


def test_wire_transcripts_event_counts_and_comments() -> None:
    """Each recorded stream: the number of events a strict parser dispatches, its comments,
    and whether [DONE] is dispatched, as the transcript's sidecar says (our flush() adds the
    final event a strict parser drops: counted apart)."""
    import json
    from pathlib import Path

    wire = Path(__file__).parent / "wire"
    checked = 0
    for path in sorted(wire.glob("*.sse")):
        exp = json.loads((wire / f"{path.stem}.meta.json").read_text())["expected"]
        data = path.read_bytes()
        comments: list[bytes] = []
        d = SSEDecoder(on_comment=comments.append)
        strict = d.feed(data)
        tail = d.flush()
        if "n_sse_events" in exp:
            assert len(strict) == exp["n_sse_events"], path.name
        if "sse_comments" in exp:
            assert [c.decode().strip() for c in comments] == [c.strip() for c in exp["sse_comments"]], path.name
        if "done_sentinel_seen" in exp:
            assert any(e.data == b"[DONE]" for e in strict) == exp["done_sentinel_seen"], path.name
        if tail:
            assert not data.endswith(b"\n\n") and not data.endswith(b"\r\n\r\n"), path.name
        checked += 1
    assert checked >= 30
