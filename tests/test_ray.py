"""vllm_client.ray on a real local Ray (one instance for the whole session, 2 CPUs) against
FakeVllmServer: the map_batches processor, the resumable job, cluster-wide limits, and faults
(an actor killed, a server dying, rows answered 400/500/non-JSON/never).

Skipped when Ray is not installed (the README's default test command does not install it);
``VLLM_CLIENT_REQUIRE_RAY=1`` (set by .ci/run) makes that a failure instead.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import orjson
import pytest

from tests._ray_server import LoadServer

if os.environ.get("VLLM_CLIENT_REQUIRE_RAY") == "1":
    import ray  # noqa: F401  (CI: a missing Ray fails here)
else:
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

import ray  # noqa: E402

import vllm_client.ray as vray  # noqa: E402
from vllm_client.ray._budget import Budget, Gate  # noqa: E402


@pytest.fixture
def server() -> Any:
    with LoadServer() as s:
        yield s


def line(cid: str, prompt: str, *, url: str = "/v1/chat/completions", max_tokens: int = 8) -> dict[str, Any]:
    if url == "/v1/completions":
        body: dict[str, Any] = {"model": "fake-model", "prompt": prompt, "max_tokens": max_tokens}
    elif url == "/v1/embeddings":
        body = {"model": "fake-model", "input": prompt}
    else:
        body = {"model": "fake-model", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    return {"custom_id": cid, "method": "POST", "url": url, "body": body}


def write_input(path: Any, lines: list[dict[str, Any]]) -> str:
    with open(path, "wb") as f:
        for obj in lines:
            f.write(orjson.dumps(obj) + b"\n")
    return str(path)


def records(output_dir: Any) -> list[dict[str, Any]]:
    with open(os.path.join(output_dir, vray.OUTPUT_NAME), "rb") as f:
        return [orjson.loads(x) for x in f if x.strip()]


def by_id(recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in recs:
        assert r["custom_id"] not in out, f"custom_id {r['custom_id']} written twice"
        out[r["custom_id"]] = r
    return out


def job(inputs: Any, out: Any, url: Any, **kw: Any) -> dict[str, Any]:
    kw.setdefault("progress", False)
    kw.setdefault("err", io.StringIO())
    kw.setdefault("actors", 2)
    kw.setdefault("num_cpus", 0.25)
    return vray.run_batch(inputs, str(out), base_url=url, **kw)


# -- the processor --------------------------------------------------------------------------


def test_processor_batch_lines_every_endpoint_and_typed_errors(ray_session: Any, server: LoadServer) -> None:
    rows = [line("c1", "hello"), line("c2", "FAULT400 please"), line("c3", "once upon", url="/v1/completions"),
            line("e1", "embed me", url="/v1/embeddings"), line("c4", "FAULT500", max_tokens=4)]
    rows = [{**r, "body": orjson.dumps(r["body"]).decode()} for r in rows]  # JSON text: no schema inferred
    ds = ray.data.from_items(rows)
    out = vray.process(ds, server.url, actors=1, batch_size=8, max_retries=0, default_headers={"X-Job": "ray"},
                       verify=False, trust_env=False).take_all()  # client options reach each actor's client
    got = {r["custom_id"]: r for r in out}
    assert all(r.headers.get("x-job") == "ray" for r in server.requests if r.method == "POST")
    assert set(got) == {"c1", "c2", "c3", "e1", "c4"}
    ok = got["c1"]
    assert ok["error"] is None and ok["status_code"] == 200
    assert ok["content"].startswith("Hello! I am a fake vLLM server.")
    assert ok["finish_reason"] == "length" and ok["completion_tokens"] == 8 and ok["prompt_tokens"] > 0
    assert orjson.loads(ok["response"])["object"] == "chat.completion"
    assert ok["latency_s"] > 0 and ok["ttft_s"] > 0 and ok["attempts"] == 1
    assert got["c3"]["content"].startswith(" and so the story")  # completions: choices[0].text
    assert orjson.loads(got["e1"]["response"])["data"][0]["object"] == "embedding"
    assert got["e1"]["content"] is None and got["e1"]["error"] is None
    bad = orjson.loads(got["c2"]["error"])
    assert bad == {"type": "BadRequestError", "status": 400, "message": "bad prompt", "retryable": False}
    assert got["c2"]["response"] is None and got["c2"]["status_code"] == 400
    failed = orjson.loads(got["c4"]["error"])
    assert failed["type"] == "InternalServerError" and failed["status"] == 500 and failed["retryable"] is True


def test_processor_preprocess_builder_and_postprocess(ray_session: Any, server: LoadServer) -> None:
    ds = ray.data.from_items([{"id": i, "question": f"q{i}"} for i in range(20)])

    def pre(row: dict[str, Any], client: Any) -> Any:  # a builder of the actor's client
        return client.chat.completions().create().model("fake-model").user_message(row["question"]).max_tokens(3)

    def post(row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"id": row["id"], "answer": row["content"], "n": response.usage.completion_tokens}

    out = ds.map_batches(vray.BatchProcessor, fn_constructor_kwargs={
        "base_url": server.url, "preprocess": pre, "postprocess": post, "concurrency": 8},
        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.25, batch_size=10).take_all()
    assert sorted(r["id"] for r in out) == list(range(20))
    assert all(r["n"] == 3 and r["answer"].startswith("Hello!") for r in out)
    sent = [r.body for r in server.requests if r.path == "/v1/chat/completions"]
    assert sorted(b["messages"][-1]["content"] for b in sent) == sorted(f"q{i}" for i in range(20))

    # a plain body from preprocess goes to `endpoint`
    out = vray.process(ray.data.from_items([{"p": "x"}]), server.url,
                       preprocess=lambda row: {"model": "fake-model", "prompt": row["p"], "max_tokens": 2},
                       endpoint="/v1/completions").take_all()
    assert out[0]["content"] and out[0]["completion_tokens"] == 2


def test_processor_unreachable_server_raises(ray_session: Any, tmp_path: Any) -> None:
    dead = LoadServer().start()
    url = dead.url
    dead.stop()
    ds = ray.data.from_items([line("a", "hi"), line("b", "hi")])  # (numpy batches, dict bodies)
    with pytest.raises(Exception, match="cannot reach the server"):
        ds.map_batches(vray.BatchProcessor, fn_constructor_kwargs={"base_url": url, "max_retries": 0},
                       compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.25).take_all()


# -- the job --------------------------------------------------------------------------------


def _normal(rec: dict[str, Any]) -> Any:
    """A record without what differs between two runs (ids, timestamps)."""
    r = rec["response"]
    if r is None:
        return (rec["custom_id"], None, rec["error"]["code"])
    body = dict(r["body"]) if isinstance(r["body"], dict) else r["body"]
    if isinstance(body, dict):
        body.pop("id", None)
        body.pop("created", None)
    return (rec["custom_id"], r["status_code"], body)


def test_job_output_equals_the_single_machine_cli(ray_session: Any, server: LoadServer, tmp_path: Any) -> None:
    lines = [line(f"r{i}", f"prompt {i}" + (" FAULT400" if i % 17 == 0 else ""),
                  url="/v1/completions" if i % 5 == 0 else "/v1/chat/completions") for i in range(120)]
    half = len(lines) // 2
    a = write_input(tmp_path / "a.jsonl", lines[:half])
    b = write_input(tmp_path / "b.jsonl", lines[half:])
    summary = job(str(tmp_path / "*.jsonl"), tmp_path / "out", server.url)
    assert summary["written"] == 120 and summary["failed"] == 8 and summary["stopped"] is None
    assert summary["ttft_p50_s"] is not None and summary["latency_p99_s"] is not None

    both = write_input(tmp_path / "all.jsonl.in", lines)
    from vllm_client._cli import main

    assert main(["batch", both, "-o", str(tmp_path / "cli.jsonl"), "--base-url", server.url,
                 "--no-progress"]) == 1  # (8 rows failed: status 1)
    with open(tmp_path / "cli.jsonl", "rb") as f:
        cli = [orjson.loads(x) for x in f]
    ray_recs = records(tmp_path / "out")
    assert sorted(map(_normal, ray_recs), key=str) == sorted(map(_normal, cli), key=str)
    assert set(ray_recs[0]) == set(cli[0]) == {"id", "custom_id", "response", "error"}
    del a, b


def test_job_resume_skips_done_and_resends_exactly_the_retryable(ray_session: Any, server: LoadServer,
                                                                   tmp_path: Any) -> None:
    lines = [line(f"r{i}", f"p{i}" + (" FAULT500" if i % 10 == 0 else " FAULT400" if i % 10 == 5 else ""))
             for i in range(100)]
    src = write_input(tmp_path / "in.jsonl", lines)
    first = job(src, tmp_path / "out", server.url, max_retries=0)
    assert first["written"] == 100 and first["failed"] == 20
    server.reset_counts()
    err = io.StringIO()
    second = job(src, tmp_path / "out", server.url, max_retries=0, err=err)
    assert server.generations == 10  # exactly the ten 500s; the 400s are done for good
    assert second["skipped_done"] == 90 and second["written"] == 10
    recs = by_id(records(tmp_path / "out"))  # one record per custom_id
    assert len(recs) == 100
    assert "10 record(s) dropped" in err.getvalue()


def test_job_server_unreachable_fails_fast_writing_nothing(ray_session: Any, tmp_path: Any) -> None:
    dead = LoadServer().start()
    url = dead.url
    dead.stop()
    src = write_input(tmp_path / "in.jsonl", [line(f"r{i}", "x") for i in range(50)])
    t0 = time.monotonic()
    summary = job(src, tmp_path / "out", url, max_retries=0)
    assert summary["stopped"] is not None and "cannot reach the server" in summary["stopped"]
    assert summary["written"] == 0 and records(tmp_path / "out") == []
    assert time.monotonic() - t0 < 60


def test_job_server_dies_mid_job_then_resumes(ray_session: Any, tmp_path: Any) -> None:
    server = LoadServer(latency=0.02).start()
    port = server.port
    src = write_input(tmp_path / "in.jsonl", [line(f"r{i}", f"p{i}") for i in range(600)])
    killer = threading.Thread(target=_stop_when, args=(server, 150), daemon=True)
    killer.start()
    first = job(src, tmp_path / "out", server.url, max_retries=0, concurrency=8, batch_size=16)
    killer.join()
    assert first["stopped"] is not None
    assert "stopped answering" in first["stopped"] or "cannot reach" in first["stopped"]
    done_first = {r["custom_id"] for r in records(tmp_path / "out") if r["response"] is not None}
    assert 0 < len(done_first) < 600
    with LoadServer(port=port) as back:
        second = job(src, tmp_path / "out", back.url, max_retries=0)
        assert second["stopped"] is None
    recs = by_id(records(tmp_path / "out"))
    assert set(recs) == {f"r{i}" for i in range(600)}
    assert all(r["response"]["status_code"] == 200 for r in recs.values())


def map_workers() -> list[int]:
    """The pids of this session's Ray Data actors (``ray::MapWorker...`` processes whose
    raylet is a child of this test process)."""
    def parent(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            if b"MapWorker" in cmd and parent(parent(int(entry))) == os.getpid():
                found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _stop_when(server: LoadServer, n: int) -> None:
    deadline = time.monotonic() + 60
    while server.generations < n and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop()


def test_job_actor_killed_mid_job_every_id_exactly_once(ray_session: Any, tmp_path: Any) -> None:
    with LoadServer(latency=0.05) as server:
        src = write_input(tmp_path / "in.jsonl", [line(f"r{i}", f"p{i}") for i in range(400)])
        killed: list[int] = []

        def kill_one() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and server.generations < 100:
                time.sleep(0.02)
            pids = map_workers()
            if pids:
                os.kill(pids[0], signal.SIGKILL)  # the actor's process, as a lost node would
                killed.append(pids[0])

        t = threading.Thread(target=kill_one, daemon=True)
        t.start()
        summary = job(src, tmp_path / "out", server.url, concurrency=16, batch_size=20)
        t.join()
    assert killed, "no actor was found to kill"
    assert summary["stopped"] is None
    recs = by_id(records(tmp_path / "out"))  # every id exactly once
    assert set(recs) == {f"r{i}" for i in range(400)}
    assert all(r["response"]["status_code"] == 200 for r in recs.values())


def test_job_with_one_percent_faulty_rows_completes_with_typed_errors(ray_session: Any, tmp_path: Any) -> None:
    faults = {7: "FAULT400", 107: "FAULT500", 207: "FAULT502TEXT", 307: "FAULTBADJSON", 407: "FAULTNEVER"}
    lines = [line(f"r{i}", f"p{i} {faults.get(i, '')}") for i in range(500)]
    src = write_input(tmp_path / "in.jsonl", lines)
    with LoadServer() as server:
        summary = job(src, tmp_path / "out", server.url, max_retries=0, timeout=2.0, concurrency=16,
                      batch_size=25)
    assert summary["stopped"] is None and summary["written"] == 500 and summary["failed"] == 5
    recs = by_id(records(tmp_path / "out"))
    assert recs["r7"]["response"]["status_code"] == 400
    assert recs["r107"]["response"]["status_code"] == 500
    assert recs["r207"]["response"]["status_code"] == 502
    assert recs["r207"]["response"]["body"] == "<html>502 Bad Gateway</html>"
    assert recs["r307"]["error"]["code"] == "ResponseDecodeError"
    assert recs["r407"]["error"]["code"] == "APITimeoutError"
    assert sum(1 for r in recs.values() if r["error"] is None and r["response"]["status_code"] == 200) == 495


def test_cluster_wide_max_in_flight_measured_at_the_server(ray_session: Any, tmp_path: Any) -> None:
    src = write_input(tmp_path / "in.jsonl", [line(f"r{i}", f"p{i}") for i in range(150)])
    with LoadServer(latency=0.03) as server:
        summary = job(src, tmp_path / "out", server.url, concurrency=64, max_in_flight=6, batch_size=25)
        assert summary["written"] == 150
        assert 2 <= server.peak <= 6  # two actors of 64 each, never more than 6 at the server
        server.reset_counts()
        job(src, tmp_path / "out2", server.url, concurrency=64, batch_size=25)
        assert server.peak > 6  # (without the limit the same job goes wider)


def test_cluster_wide_requests_per_second_measured_at_the_server(ray_session: Any, tmp_path: Any) -> None:
    src = write_input(tmp_path / "in.jsonl", [line(f"r{i}", f"p{i}") for i in range(40)])
    with LoadServer() as server:
        summary = job(src, tmp_path / "out", server.url, concurrency=64, max_requests_per_second=20,
                      batch_size=10)
        starts = sorted(server.starts)
    assert summary["written"] == 40 and len(starts) == 40
    # two actors, one budget: 40 starts evenly spaced at 20/s span 39/20 s (less the first
    # request's own connection set-up); unlimited, the two actors send all 40 at once
    assert starts[-1] - starts[0] >= 1.5


def test_cli_batch_ray(ray_session: Any, server: LoadServer, tmp_path: Any) -> None:
    from vllm_client._cli import main

    a = write_input(tmp_path / "a.jsonl", [line(f"a{i}", "x") for i in range(10)])
    b = write_input(tmp_path / "b.jsonl", [line(f"b{i}", "y") for i in range(10)])
    out = tmp_path / "out"
    summary_path = tmp_path / "summary.json"
    # (`--ray FILE`: FILE is an input, not an address)
    rc = main(["batch", "--ray", a, b, "-o", str(out), "--base-url", server.url, "--no-progress",
               "--actors", "1", "--summary-json", str(summary_path)])
    assert rc == 0
    assert {r["custom_id"] for r in records(out)} == {f"a{i}" for i in range(10)} | {f"b{i}" for i in range(10)}
    s = orjson.loads(summary_path.read_bytes())
    assert s["ok"] == 20 and s["failed"] == 0


def test_retry_after_pauses_the_actor(ray_session: Any, tmp_path: Any) -> None:
    rows = [line(f"r{i}", f"p{i}" + (" FAULT429" if i == 10 else "")) for i in range(60)]
    with LoadServer(latency=0.05) as server:
        out = vray.process(ray.data.from_items(rows), server.url, actors=1, concurrency=4, batch_size=60,
                           max_retries=2).take_all()
        starts = sorted(server.starts)
    assert all(r["error"] is None for r in out) and len(out) == 60
    t = server.answered_429  # it said Retry-After: 1; the whole actor waits, not only that row
    assert t is not None and [s for s in starts if s > t]
    assert not [s for s in starts if t + 0.3 < s < t + 0.8]


# -- the budget (no Ray needed: the actor's class is plain Python) ---------------------------


class _Handle:
    """A stand-in for a Ray actor handle of a Budget: ``h.method.remote(...)`` is awaitable."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.budget, name)

        class _M:
            @staticmethod
            def remote(*a: Any) -> Any:
                r = fn(*a)
                if asyncio.iscoroutine(r):
                    return asyncio.ensure_future(r)
                fut = asyncio.get_event_loop().create_future()
                fut.set_result(r)
                return fut

        return _M()


async def test_budget_bounds_in_flight_across_gates_and_shares_a_pause() -> None:
    budget = Budget(3, None)
    handle = _Handle(budget)
    gates = [Gate(10, handle, limits=True) for _ in range(3)]
    now = peak = 0

    async def one(g: Gate) -> None:
        nonlocal now, peak
        await g.enter()
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.01)
        now -= 1
        g.leave()

    await asyncio.gather(*(one(gates[i % 3]) for i in range(30)))
    await asyncio.sleep(0)
    assert peak == 3 and budget.in_flight == 0 and budget.peak == 3
    gates[0].pause(0.3)  # a Retry-After seen by one actor...
    await asyncio.sleep(0)
    assert budget.heartbeat(gates[1].holder) > 0.2  # ...reaches the others at their next heartbeat
    for g in gates:
        g.close()


async def test_budget_reclaims_the_slots_of_a_lost_actor(monkeypatch: Any) -> None:
    from vllm_client.ray import _budget

    budget = Budget(2, None)
    await budget.acquire("dead")
    await budget.acquire("dead")
    monkeypatch.setattr(_budget, "HOLDER_LOST_S", 0.05)
    await asyncio.sleep(0.1)
    await asyncio.wait_for(budget.acquire("alive"), 5)  # the dead holder's slots came back
    assert budget.held == {"alive": 1}


def test_import_vllm_client_does_not_import_ray() -> None:
    code = "import sys, vllm_client, vllm_client.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
