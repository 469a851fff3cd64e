"""vLLM's server extras: models, health, version, tokenize / detokenize.

    python examples/server_info.py
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/server_info.py
"""

from _server import server

from vllm_client import VllmClient

with server() as (base_url, model), VllmClient(base_url) as client:
    print("healthy:", client.health())
    print("version:", client.version())
    for m in client.models():
        print(f"model: {m.id} (max_model_len={m.max_model_len}, owned_by={m.owned_by})")
    info = client.tokenize_result("The weather in Paris")
    print(f"tokens: {info.tokens} ({info.count} of max {info.max_model_len})")
    print("detokenized:", repr(client.detokenize(info.tokens)))
