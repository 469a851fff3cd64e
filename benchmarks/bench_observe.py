"""What observability costs per request and per streamed chunk (client CPU, no network).

    python benchmarks/bench_observe.py [--requests 20000] [--chunks 20000]

Requests go to an in-memory transport answering a vLLM-shaped body (as in
``instructions.py``'s ``request`` scenario); streams are fed from memory, one event per
read. Rows: nothing on (timings are always on), a no-op request and response hook, the
``vllm_client`` logger at DEBUG into a ``NullHandler``, and ``instrument()`` with the
OpenTelemetry SDK's providers (spans and metric points made and dropped: no exporter).
Best of 5 runs of ``time.process_time``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import EVENTS, MODEL, NONSTREAM, NONSTREAM_TEXT  # noqa: E402

MESSAGES = [{"role": "user", "content": "Hello"}]


def _client(**kw: object) -> object:
    from vllm_client import MockResponse, MockTransport, VllmClient

    reply = MockResponse(200, body=NONSTREAM, headers={"content-type": "application/json"})
    stream_reply = MockResponse(200, body=[e for e in EVENTS], headers={"content-type": "text/event-stream"})
    return VllmClient("http://127.0.0.1:8000/v1", max_retries=0,
                      transport=MockTransport(lambda req: stream_reply if req.stream else reply), **kw)


def requests_loop(client: object, n: int) -> None:
    for _ in range(n):
        text = client.chat.completions().create().model(MODEL).messages(MESSAGES).send().content  # type: ignore[attr-defined]
    assert text == NONSTREAM_TEXT


def best(fn: Callable[[], None], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    n = args.requests
    import vllm_client

    rows: list[tuple[str, float]] = []
    plain = _client()
    rows.append(("plain (timings on)", best(lambda: requests_loop(plain, n)) / n))
    hooked = _client(event_hooks={"request": [lambda info: None], "response": [lambda info: None]})
    rows.append(("no-op request + response hooks", best(lambda: requests_loop(hooked, n)) / n))
    log = logging.getLogger("vllm_client")
    log.setLevel(logging.DEBUG)
    rows.append(("logger at DEBUG (NullHandler)", best(lambda: requests_loop(plain, n)) / n))
    log.setLevel(logging.WARNING)
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        print("(opentelemetry-sdk not installed: instrument() not measured)")
    else:
        vllm_client.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
        rows.append(("instrument() (OTel SDK, no exporter)", best(lambda: requests_loop(plain, n)) / n))
        vllm_client.uninstrument()
    base = rows[0][1]
    print(f"| {n} requests, in-memory transport | CPU per request | vs plain | added |\n|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t * 1e6:.1f} µs | {t / base:.2f}x | {(t - base) * 1e6:+.1f} µs |")


if __name__ == "__main__":
    main()
