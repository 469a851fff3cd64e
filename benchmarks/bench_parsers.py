"""Hostile inputs for the parsers (issue 31 item 10) and the cost of exact JSON (item 9): CPU time,
in memory.

    python benchmarks/bench_parsers.py [--mb 1] [--repeat 3]

1. ``parse_metrics`` on one ``/metrics`` line with an N MB label: unquoted (refused), quoted
   (read); then at 2N MB (linear: about 2x).
2. ``PartialJSON`` on an N MB number and an N MB string fed in 16-character pieces; then 2N.
3. ``vllm_client._json.loads`` against ``orjson.loads`` on a ~500-byte vLLM chat body (the
   per-request fast path: orjson plus a digit-run check), and on one holding a big integer
   (the exact fall-back).

CPU is ``time.process_time``, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import orjson

from vllm_client import ResponseDecodeError
from vllm_client._endpoints.server import parse_metrics
from vllm_client._json import loads
from vllm_client._structured import PartialJSON

MB = 1 << 20


def best(fn: Callable[[], Any], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return min(out)


def metrics(line: str) -> None:
    try:
        parse_metrics(line)
    except ResponseDecodeError:
        pass


def partial(text: str) -> None:
    p = PartialJSON()
    for i in range(0, len(text), 16):
        p.feed(text[i:i + 16])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print("| input | CPU s |\n|---|---|")
    for scale in (1, 2):
        n = int(a.mb * MB * scale)
        size = f"{a.mb * scale:g} MB"
        rows = [
            (f"/metrics, unquoted label of {size} (refused)", lambda: metrics("x{a=" + "a" * n + "} 1")),
            (f"/metrics, quoted label of {size}", lambda: metrics('x{a="' + "a" * n + '"} 1')),
            (f"PartialJSON, number of {size} in 16-char pieces", lambda: partial("[0." + "1" * n + "]")),
            (f"PartialJSON, string of {size} in 16-char pieces", lambda: partial('["' + "b" * n + '"]')),
        ]
        for name, fn in rows:
            print(f"| {name} | {best(fn, a.repeat):.3f} |")
    body = orjson.dumps({"id": "chatcmpl-abc123def456", "object": "chat.completion", "created": 1733600000,
                         "model": "Qwen/Qwen3-0.6B", "choices": [{"index": 0, "message": {
                             "role": "assistant", "content": "Hello there! How can I help you today? " * 5},
                             "finish_reason": "stop", "logprobs": None}],
                         "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52}})
    big = body[:-1] + b',"seed":12345678901234567890123}'
    k = 100_000
    for name, data in (("chat body", body), ("chat body + a big integer", big)):
        t_or = best(lambda: [orjson.loads(data) for _ in range(k)], a.repeat) / k * 1e6
        t_ours = best(lambda: [loads(data) for _ in range(k)], a.repeat) / k * 1e6
        print(f"| {name} ({len(data)} B): orjson.loads / _json.loads, us | {t_or:.2f} / {t_ours:.2f} |")


if __name__ == "__main__":
    main()
