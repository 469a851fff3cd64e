"""Basic chat: one request, the whole answer, usage.

    python examples/basic_chat.py                 # against a built-in fake server
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/basic_chat.py
"""

from _server import server

from vllm_client import VllmClient

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    resp = (
        client.chat.completions().create()
        .system("You are a concise assistant.")
        .user_message("Name three rivers in Europe.")
        .temperature(0.7)
        .max_tokens(64)
        .send()
    )
    print("content:      ", resp.content)
    print("finish_reason:", resp.finish_reason)
    print("usage:        ", resp.usage)
