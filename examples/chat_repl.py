"""A multi-turn chat in the terminal, streamed token by token; /reset clears, /exit quits.

    python examples/chat_repl.py            # against a built-in fake server
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/chat_repl.py

Reads lines from stdin, so it also works piped: printf 'Hi\\nWho are you?\\n' | python examples/chat_repl.py
"""

import sys

from _server import server

from vllm_client import VllmClient

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    chat = client.chat.conversation(system="You are a friendly, brief assistant.", max_tokens=64)
    if sys.stdin.isatty():
        print("Type a message; /reset clears the history, /exit quits.")
        lines = iter(lambda: input("> "), "/exit")
    else:
        lines = sys.stdin.readlines() or ["Hi!", "What did I just say?"]
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            chat.reset()
            continue
        if not sys.stdin.isatty():
            print(f"> {text}")
        with chat.stream(text) as stream:
            for piece in stream.text_stream():
                print(piece, end="", flush=True)
        print()
    print(f"({len(chat.messages)} messages in the history)")
