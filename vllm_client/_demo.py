"""``vllm-client demo``: a short guided tour of the SDK.

With no server given it starts a built-in ``FakeVllmServer`` and scripts its
replies, so it runs anywhere in a second; with a base URL it runs the same
steps against that server.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ._printer import Printer


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: The city name, e.g. "Paris".
    """
    return f"It is sunny and 22 C in {city}."


def _step(n: int, title: str, code: str) -> None:
    print(f"\n== {n}. {title}")
    for line in code.strip("\n").splitlines():
        print(f"   {line}")
    print()


@contextlib.contextmanager
def _target(base_url: str | None) -> Iterator[tuple[str, Any]]:
    if base_url:
        yield base_url, None
        return
    from .testing import FakeVllmServer

    with FakeVllmServer(model="demo-model") as fake:
        yield fake.url, fake


def run_demo(base_url: str | None, *, api_key: str | None = None, model: str | None = None) -> int:
    """Run the tour; returns the exit status."""
    from . import VllmClient

    with _target(base_url) as (url, fake):
        where = "a built-in FakeVllmServer (no GPU, no network)" if fake else url
        print(f"vllm_client demo against {where}")
        with VllmClient(url, api_key=api_key, default_model=model) as client:
            if model is None:
                model = client.models()[0].id
                print(f"model: {model} (from GET /models)")

            _step(1, "A builder call: every setter chains, send() returns a typed response", """
r = client.chat.completions().create().model(m).user_message("Say hello").temperature(0.7).max_tokens(32).send()
print(r.content, r.finish_reason, r.usage)""")
            if fake:
                fake.reply(content="Hello! Nice to meet you.")
            r = (client.chat.completions().create().model(model).user_message("Say hello")
                 .temperature(0.7).max_tokens(32).send())
            print(f"   content:       {r.content!r}")
            print(f"   finish_reason: {r.finish_reason}")
            print(f"   usage:         {r.usage}")

            _step(2, "Streaming: reasoning and content arrive as typed events, token by token", """
for ev in client.chat.completions().create().model(m).user_message("Why is the sky blue?").send_stream():
    if ev.type == "reasoning": ...   # dimmed
    elif ev.type == "content": print(ev.text, end="")""")
            if fake:
                fake.reply(reasoning="Sunlight scatters off air molecules; blue scatters most.",
                           content="Because air scatters blue light more than red (Rayleigh scattering).")
            printer = Printer()
            with (client.chat.completions().create().model(model).user_message("Why is the sky blue? Briefly.")
                  .max_tokens(48).send_stream()) as stream:
                for ev in stream:
                    printer.event(ev)

            _step(3, "Tools: a typed Python function becomes a tool; run_tools() runs the calls", """
def get_weather(city: str) -> str:
    \"\"\"Current weather for a city.\"\"\"
r = client.chat.completions().create().model(m).user_message("Weather in Paris?").tools([get_weather]).run_tools()""")
            if fake:
                fake.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
                fake.reply(content="It is sunny and 22 C in Paris.")
            b = (client.chat.completions().create().model(model).user_message("What's the weather in Paris?")
                 .tools([get_weather]).max_tokens(48))
            printer = Printer()
            for ev in b.run_tools_stream(max_rounds=2):  # the streamed twin of run_tools()
                printer.event(ev)

            _step(4, "A multi-turn conversation keeps its history as plain dicts", """
chat = client.chat.conversation(model=m, system="You are terse.")
chat.send("My name is Ming.")
chat.send("What is my name?")""")
            if fake:
                fake.reply(content="Nice to meet you, Ming.")
                fake.reply(content="Your name is Ming.")
            chat = client.chat.conversation(model=model, system="You are terse.", max_tokens=32)
            print(f"   > My name is Ming.\n   {chat.send('My name is Ming.').content}")
            print(f"   > What is my name?\n   {chat.send('What is my name?').content}")
            print(f"   history: {len(chat.messages)} messages ({', '.join(m['role'] for m in chat.messages)})")
    print("\nDone. Next: README.md, examples/, and `vllm-client chat --help`.")
    sys.stdout.flush()
    return 0
