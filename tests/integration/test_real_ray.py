"""vllm_client.ray against a real vLLM: the resumable job on a local Ray (the session's one,
from tests/conftest.py), with a bad row among good ones, and its output compared with the
single-machine CLI's on the same input."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import orjson
import pytest

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration


def test_ray_job_on_a_real_server(ray_session: Any, real_server: Target, tmp_path: Any) -> None:
    import vllm_client.ray as vray
    from vllm_client._cli import main

    lines = []
    for i in range(24):
        body: dict[str, Any] = {"model": real_server.model, "max_tokens": 3, "temperature": 0, "seed": i,
                                "messages": [{"role": "user", "content": f"Count to {i}"}]}
        if i == 5:
            body["max_tokens"] = 10**9  # refused by the server: a 400 row, done for good
        lines.append({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
    lines.append({"custom_id": "c1", "method": "POST", "url": "/v1/completions",
                  "body": {"model": real_server.model, "prompt": "The weather", "max_tokens": 2, "temperature": 0}})
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))

    summary = vray.run_batch(str(src), str(tmp_path / "out"), base_url=real_server.base_url, actors=1,
                             concurrency=8, batch_size=8, progress=False, err=io.StringIO())
    assert summary["stopped"] is None and summary["written"] == 25 and summary["failed"] == 1
    assert summary["ttft_p50_s"] is not None and summary["output_tokens"] == 23 * 3 + 2
    with open(os.path.join(tmp_path / "out", vray.OUTPUT_NAME), "rb") as f:
        recs = {r["custom_id"]: r for r in map(orjson.loads, f)}
    assert len(recs) == 25
    assert recs["r5"]["response"]["status_code"] == 400 and "max_tokens" in str(recs["r5"]["response"]["body"])
    ok = recs["r1"]["response"]
    assert ok["status_code"] == 200 and ok["body"]["object"] == "chat.completion"
    assert ok["body"]["usage"]["completion_tokens"] == 3
    assert recs["c1"]["response"]["body"]["object"] == "text_completion"

    # the same input through the single-machine CLI: the same answers (temperature 0, seeds)
    assert main(["batch", str(src), "-o", str(tmp_path / "cli.jsonl"), "--base-url", real_server.base_url,
                 "--no-progress"]) == 1
    with open(tmp_path / "cli.jsonl", "rb") as f:
        cli = {r["custom_id"]: r for r in map(orjson.loads, f)}
    assert set(cli) == set(recs)
    for cid, r in recs.items():
        assert cli[cid]["response"]["status_code"] == r["response"]["status_code"]
        if r["response"]["status_code"] == 200:
            a, b = r["response"]["body"], cli[cid]["response"]["body"]
            assert a["choices"][0].get("message", a["choices"][0].get("text")) == \
                b["choices"][0].get("message", b["choices"][0].get("text"))

    # a re-run has nothing left to send
    again = vray.run_batch(str(src), str(tmp_path / "out"), base_url=real_server.base_url, actors=1,
                           progress=False, err=io.StringIO())
    assert again["skipped_done"] == 25 and again["written"] == 0
