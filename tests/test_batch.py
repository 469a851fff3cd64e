"""Batch jobs and replicas (with mock transports; CLI and real-socket tests use FakeVllmServer)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vllm_client import (
    APIConnectionError,
    AsyncVllmClient,
    BadRequestError,
    ChatCompletionResponse,
    CompletionResponse,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    VllmClient,
)
from vllm_client._batch import Progress
from vllm_client._replicas import ReplicaSet


def echo_model(delay: float = 0.0, fail: set[str] | None = None) -> Any:
    def handler(req: Any) -> MockResponse:
        body = req.json()
        if "messages" in body:
            text = body["messages"][-1]["content"]
            if fail and text in fail:
                return MockResponse(400, json={"error": {"message": f"bad {text}"}})
            return MockResponse(json={"choices": [{"index": 0, "message": {"role": "assistant", "content": text.upper()},
                                                   "finish_reason": "stop"}]})
        return MockResponse(json={"object": "text_completion",
                                  "choices": [{"index": 0, "text": body["prompt"] + "!", "finish_reason": "stop"}]})
    return handler


def test_batch_in_input_order_with_partial_failures() -> None:
    t = MockTransport(echo_model(fail={"p3"}))
    with VllmClient("http://b.test/v1", transport=t, max_retries=0) as client:
        reqs: list[Any] = [client.chat.completions().create().model("m").user_message(f"p{i}") for i in range(10)]
        reqs.append({"url": "/v1/completions", "body": {"model": "m", "prompt": "raw"}})
        results = client.batch(reqs, concurrency=4, progress=False)
    assert len(results) == 11
    for i in range(10):
        if i == 3:
            assert isinstance(results[i], BadRequestError) and "bad p3" in str(results[i])
        else:
            assert isinstance(results[i], ChatCompletionResponse) and results[i].content == f"P{i}"
    assert isinstance(results[10], CompletionResponse) and results[10].text == "raw!"


def test_batch_bad_input_fails_before_sending() -> None:
    t = MockTransport(echo_model())
    with VllmClient("http://b.test/v1", transport=t) as client:
        for bad in ([{"url": "chat", "body": {}}], [{"url": "/v1/chat/completions"}], ["text"]):
            with pytest.raises(InvalidRequestError):
                client.batch(bad, progress=False)
    assert t.requests == []


def test_batch_iter_completion_order_and_concurrency_bound() -> None:
    inflight = 0
    peak = 0

    async def main() -> list[tuple[int, Any]]:
        async def slow_send(req: Any) -> Any:
            nonlocal inflight, peak
            inflight += 1
            peak = max(peak, inflight)
            n = int(req.json()["messages"][0]["content"])
            await asyncio.sleep(0.01 * (5 - n % 5))
            inflight -= 1
            return await MockTransport(echo_model()).asend(req)

        class Slow(MockTransport):
            async def asend(self, request: Any) -> Any:
                return await slow_send(request)

        async with AsyncVllmClient("http://b.test/v1", transport=Slow(echo_model())) as client:
            reqs = [client.chat.completions().create().model("m").user_message(str(i)) for i in range(20)]
            return [pair async for pair in client.batch_iter(reqs, concurrency=3)]

    pairs = asyncio.run(main())
    assert sorted(i for i, _ in pairs) == list(range(20))
    assert [i for i, _ in pairs] != list(range(20))  # completion order, not input order
    assert peak == 3


def test_rate_limit_spaces_requests() -> None:
    t = MockTransport(echo_model())
    with VllmClient("http://b.test/v1", transport=t) as client:
        reqs = [client.chat.completions().create().model("m").user_message("x") for _ in range(6)]
        start = time.monotonic()
        client.batch(reqs, concurrency=6, progress=False, max_requests_per_second=20)
        assert time.monotonic() - start >= 0.2  # 6 starts at 20/s: the last one after 0.25 s


def test_progress_line() -> None:
    import io

    out = io.StringIO()
    p = Progress(4, out=out, every=0)
    p.update()
    p.update(error=True)
    p.close()
    text = out.getvalue()
    assert "2/4" in text and "errors 1" in text and "req/s" in text and "ETA" in text


def test_replicas_least_outstanding_and_failover() -> None:
    rs = ReplicaSet(["http://a/v1", "http://b/v1"])
    a, b = rs.replicas
    first = rs.pick()
    second = rs.pick()
    assert {first, second} == {a, b}  # spread
    rs.release(first)
    assert rs.pick() is first  # fewest in flight
    rs.mark_down(a, now=100.0)
    assert all(rs.pick() is b for _ in range(3))
    assert rs.due_for_probe(now=100.5) == [] and rs.due_for_probe(now=103.0) == [a]
    rs.mark_up(a)
    assert a.down_until is None


def test_client_fails_over_and_brings_replica_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vllm_client._sync.time.sleep", lambda s: None)
    down = {"a.test"}
    seen: list[str] = []

    def handler(req: Any) -> MockResponse:
        host = req.url.split("/")[2]
        seen.append(f"{host}{'/health' if req.url.endswith('/health') else ''}")
        if host in down:
            raise APIConnectionError(f"refused by {host}")
        if req.url.endswith("/health"):
            return MockResponse(200, body=b"")
        return echo_model()(req)

    t = MockTransport(handler)
    with VllmClient(["http://a.test/v1", "http://b.test/v1"], transport=t, max_retries=2) as client:
        for i in range(4):
            assert client.chat.completions().create().model("m").user_message(f"q{i}").send().content == f"Q{i}"
        assert seen.count("a.test") == 1  # taken out after its first failure
        a = client._replicas.replicas[0]  # type: ignore[union-attr]
        assert a.down_until is not None
        down.clear()
        a.down_until = 0.0  # cooldown over
        client.chat.completions().create().model("m").user_message("x").send()
        assert "a.test/health" in seen and a.down_until is None  # /health brought it back


# -- lazy input with a bounded window ------------------------------------------------------------

def _window_run(kind: str, n: int, concurrency: int) -> tuple[int, int, list[int]]:
    """Feed a generator of n dicts to batch_iter (sync or async client) with a consumer slower
    than the server; (most taken from the generator but not yet consumed, taken, positions)."""
    taken = consumed = peak = 0

    def gen() -> Any:
        nonlocal taken, peak
        for i in range(n):
            taken += 1
            peak = max(peak, taken - consumed)
            yield {"url": "/v1/completions", "body": {"model": "m", "prompt": str(i)}}

    seen: list[int] = []
    if kind == "sync":
        with VllmClient("http://b.test/v1", transport=MockTransport(echo_model()), max_retries=0) as c:
            for k, (i, r) in enumerate(c.batch_iter(gen(), concurrency=concurrency)):
                assert r.text == f"{i}!"
                seen.append(i)
                consumed += 1
                if k % 50 == 0:
                    time.sleep(0.002)
    else:
        async def main() -> None:
            nonlocal consumed
            async with AsyncVllmClient("http://b.test/v1", transport=MockTransport(echo_model()),
                                       max_retries=0) as c:
                k = 0
                async for i, r in c.batch_iter(gen(), concurrency=concurrency):
                    assert r.text == f"{i}!"
                    seen.append(i)
                    consumed += 1
                    k += 1
                    if k % 50 == 0:
                        await asyncio.sleep(0.002)
        asyncio.run(main())
    return peak, taken, seen


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_batch_iter_reads_a_generator_lazily_within_a_bounded_window(kind: str) -> None:
    n, c = 3000, 8
    peak, taken, seen = _window_run(kind, n, c)
    assert taken == n and sorted(seen) == list(range(n))
    # in flight (c) + finished waiting for the consumer (c) + handed over to the sync consumer (c + 1)
    assert peak <= 3 * c + 2, peak


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_batch_takes_a_generator_and_ends_a_bad_item_alone(kind: str) -> None:
    def gen(c: Any) -> Any:
        for i in range(5):
            yield c.completions().create().model("m").prompt(f"p{i}") if i != 2 else {"url": "nope", "body": {}}

    if kind == "sync":
        with VllmClient("http://b.test/v1", transport=MockTransport(echo_model()), max_retries=0) as c:
            results = c.batch(gen(c), concurrency=2, progress=False)
    else:
        async def main() -> list[Any]:
            async with AsyncVllmClient("http://b.test/v1", transport=MockTransport(echo_model()),
                                       max_retries=0) as c:
                return await c.batch(gen(c), concurrency=2, progress=False)
        results = asyncio.run(main())
    assert [getattr(r, "text", None) for r in results] == ["p0!", "p1!", None, "p3!", "p4!"]
    assert isinstance(results[2], InvalidRequestError)  # a lazy item is checked when taken


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_iterable_that_raises_ends_the_batch_with_its_error(kind: str) -> None:
    def gen() -> Any:
        yield {"url": "/v1/completions", "body": {"model": "m", "prompt": "a"}}
        raise OSError("input file vanished")

    with pytest.raises(OSError, match="vanished"):
        if kind == "sync":
            with VllmClient("http://b.test/v1", transport=MockTransport(echo_model())) as c:
                c.batch(gen(), progress=False)
        else:
            async def main() -> None:
                async with AsyncVllmClient("http://b.test/v1", transport=MockTransport(echo_model())) as c:
                    await c.batch(gen(), progress=False)
            asyncio.run(main())


def test_summary_figures() -> None:
    import io

    p = Progress(3, out=io.StringIO(), enabled=False)
    for ms, tokens in ((100, 5), (300, 7)):
        p.update(latency=ms / 1000, tokens=tokens)
    p.update(error=True, latency=0.2)
    s = p.summary()
    assert (s["requests"], s["ok"], s["failed"], s["output_tokens"]) == (3, 2, 1, 12)
    assert s["latency_p50_s"] == pytest.approx(0.2, rel=0.01) and s["latency_p99_s"] == pytest.approx(0.3, rel=0.01)
