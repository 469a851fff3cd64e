"""Issue 31 item 10: the ``/metrics`` parser and ``PartialJSON`` are linear in their input. No
timing: the tests count how many characters the parsers' patterns scan (each must be looked at
a bounded number of times), check the answers on 1 MB inputs, and hypothesis checks the metrics
parser against the format. Speed: ``python benchmarks/bench_parsers.py``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_client import Metrics, MockResponse, MockTransport, ResponseDecodeError
from vllm_client import _structured
from vllm_client._endpoints import server
from vllm_client._endpoints.server import parse_metrics
from vllm_client._structured import PartialJSON

from ._both import CLIENTS, call, close, make

MB = 1 << 20


class Counting:
    """A compiled pattern that counts the characters its matches scan (from where each match
    starts to where it ends, plus the one it stopped at)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.scanned = 0

    def match(self, s: str, pos: int = 0) -> Any:
        m = self.pattern.match(s, pos)
        self.scanned += (m.end() - pos if m else 0) + 1
        return m

    def fullmatch(self, s: str, pos: int = 0) -> Any:
        self.scanned += len(s) - pos
        return self.pattern.fullmatch(s, pos)


def count_scans(monkeypatch: pytest.MonkeyPatch, module: Any, names: list[str]) -> list[Counting]:
    out = []
    for name in names:
        c = Counting(getattr(module, name))
        monkeypatch.setattr(module, name, c)
        out.append(c)
    return out


METRIC_PATTERNS = ["_METRIC_NAME", "_LABEL_NAME", "_BLANKS", "_LABEL_CHARS", "_TIMESTAMP"]


@pytest.mark.parametrize("line", [
    "x{a=" + "a" * MB + "} 1",  # the 60 KB unquoted label that took 24 s (hours at 1 MB)
    "x{" + "a" * MB + " 1",
    "x{a=\"" + "b" * MB + " 1",  # no closing quote
    "x{a=\"" + "\\\\" * (MB // 8) + "\"} 1",  # escapes all along
    "x{" + "a=\"1\"," * (MB // 60) + "} 1",  # many labels
    "x{a=\"" + "b" * MB + "\"} 1",
])
def test_metrics_parser_scans_each_character_a_bounded_number_of_times(
        line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counters = count_scans(monkeypatch, server, METRIC_PATTERNS)
    try:
        parse_metrics(line + "\n")
    except ResponseDecodeError:
        pass
    assert sum(c.scanned for c in counters) <= 3 * len(line)


def test_a_1mb_label_is_read_or_refused_as_a_whole() -> None:
    m = parse_metrics('vllm:x{model_name="' + "m" * MB + '",engine="0"} 7\n')
    assert m.samples[0][1]["model_name"] == "m" * MB and m.samples[0][2] == 7.0
    with pytest.raises(ResponseDecodeError, match="line 2 is not a Prometheus sample"):
        parse_metrics("ok 1\nx{a=" + "a" * MB + "} 1\n")


@pytest.mark.parametrize("kind", CLIENTS)
async def test_client_metrics_with_a_hostile_label(kind: str) -> None:
    body = "# HELP vllm:num_requests_running x\nvllm:num_requests_running{engine=\"0\"} 3\nevil{a=" + "a" * MB + "} 1\n"
    t = MockTransport(lambda r: MockResponse(body=body))
    c = make(kind, "http://test.local/v1", transport=t, max_retries=0)
    with pytest.raises(ResponseDecodeError, match="line 3 is not a Prometheus sample"):
        await call(kind, c, "metrics")
    t.handler = lambda r: MockResponse(body=body.rsplit("\n", 2)[0] + '\nok{a="' + "a" * MB + '"} 1\n')
    m = await call(kind, c, "metrics")
    assert isinstance(m, Metrics) and m.num_requests_running == 3.0 and len(m.find("ok")[0][0]["a"]) == MB
    await close(kind, c)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(names, st.dictionaries(label_names, st.text(max_size=20), max_size=4),
       st.floats(allow_nan=False), st.booleans(), st.sampled_from(["", " ", "  "]))
def test_metrics_parser_reads_what_the_format_allows(name: str, labels: dict[str, str], value: float,
                                                     stamp: bool, pad: str) -> None:
    text = ",".join(f'{k}{pad}={pad}"{_escape(v)}"' for k, v in labels.items())
    line = f"{name}{{{text}}} {value!r}" if labels else f"{name} {value!r}"
    if stamp:
        line += " 1700000000000"
    m = parse_metrics(f"# TYPE {name} gauge\n{line}\n")
    assert m.samples == [(name, labels, value)]
    assert list(m) == [f"{name}{{{text}}}" if labels else name]


# -- PartialJSON ---------------------------------------------------------------------------------

def test_partial_json_does_not_rescan_a_long_number_fed_in_small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    (number,) = count_scans(monkeypatch, _structured, ["_NUMBER"])
    p = PartialJSON()
    digits = "1" * 200_000
    text = '{"x": 0.' + digits + ', "s": "' + "y" * 200_000 + '"}'
    for i in range(0, len(text), 7):
        p.feed(text[i:i + 7])
        assert len(p._buf) <= 12  # nothing long is carried (and re-joined) from feed to feed
    assert p.value == {"x": float("0." + digits), "s": "y" * 200_000} and not p.failed
    assert number.scanned <= 2 * len(text)


def test_partial_json_on_1mb_pieces() -> None:
    p = PartialJSON()
    p.feed('{"a": [' + "1, " * (MB // 30))
    p.feed('2], "b": "' + "z" * MB)
    assert p.value["b"] == "z" * MB
    p.feed('"}')
    assert len(p.value["a"]) == MB // 30 + 1 and not p.failed
