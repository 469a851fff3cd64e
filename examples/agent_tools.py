"""An agent in a few lines: typed Python functions as tools, run by the SDK's tool loop.

    python examples/agent_tools.py
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/agent_tools.py   # needs --enable-auto-tool-choice
"""

from typing import Literal

from _server import server

from vllm_client import VllmClient, tool


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather for a city.

    Args:
        city: The city name, e.g. "Paris".
        unit: Temperature unit.
    """
    return f"Sunny, 22 degrees {unit.upper()} in {city}."


def local_time(city: str) -> dict[str, str]:
    """The local time in a city."""
    return {"city": city, "time": "14:05"}


print("The schema the model sees:", tool(get_weather)["function"]["parameters"])

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    import _server

    if _server.FAKE is not None:  # offline: script what a model would do  # script what a model would do: call both tools, then answer
        _server.FAKE.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}},
                               {"name": "local_time", "arguments": {"city": "Paris"}}])
        _server.FAKE.reply(content="In Paris it is sunny and 22 C; the local time is 14:05.")
    agent = client.chat.conversation(system="Use the tools to answer.", tools=[get_weather, local_time],
                                     max_tokens=128)
    answer = agent.send("What's the weather and the time in Paris?")
    print("answer:", answer.content)
    for m in agent.messages:
        if m["role"] == "tool":
            print("tool result sent back:", m["content"])
