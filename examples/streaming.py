"""Streaming: reasoning and content printed apart, token by token.

    python examples/streaming.py
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/streaming.py
"""

import sys

from _server import server

from vllm_client import VllmClient

DIM, RESET = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    stream = (
        client.chat.completions().create()
        .user_message("Why is the sky blue? One sentence.")
        .max_tokens(64)
        .stream_options({"include_usage": True})
        .send_stream()
    )
    with stream:
        for ev in stream:
            if ev.type == "reasoning":
                print(f"{DIM}{ev.text}{RESET}", end="", flush=True)
            elif ev.type == "content":
                print(ev.text, end="", flush=True)
            elif ev.type == "tool_call":
                print(f"\n[tool call] {ev.tool_call.name}({ev.tool_call.arguments})")
            elif ev.type == "done":
                print(f"\n[done: {ev.finish_reason}; usage: {ev.response.usage}]")
