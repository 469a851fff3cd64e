"""A batch job: many prompts, 64 at a time, results in input order, failures kept apart.

    python examples/batch.py
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/batch.py
"""

from _server import server

from vllm_client import VllmClient, VllmError

prompts = [f"Write a haiku about the number {i}." for i in range(200)]

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    requests = [client.chat.completions().create().user_message(p).max_tokens(48) for p in prompts]
    results = client.batch(requests, concurrency=64, progress=True)
    failed = [r for r in results if isinstance(r, VllmError)]
    print(f"{len(results) - len(failed)} answers, {len(failed)} failures")
    print("first answer:", results[0].content if not isinstance(results[0], VllmError) else results[0])
