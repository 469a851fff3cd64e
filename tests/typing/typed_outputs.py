"""Checked by mypy (tests/test_typing.py), never run: a type given to response_format(T),
json_schema(T) or structured_outputs(json=T) makes the builder's responses' .parsed a T | None."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from typing_extensions import assert_type

from vllm_client import AsyncVllmClient, ChatCompletionResponse, VllmClient


@dataclass
class City:
    name: str
    population: int


class Mood(Enum):
    HAPPY = "happy"
    SAD = "sad"


def sync_client(client: VllmClient) -> None:
    b = client.chat.completions().create().model("m").user_message("Paris?")
    r1 = b.copy().response_format(City).temperature(0).send()
    assert_type(r1, ChatCompletionResponse[City])
    assert_type(r1.parsed, City | None)
    assert_type(r1.choices[0].parsed, City | None)
    r2 = b.copy().json_schema(City, name="city").send()
    assert_type(r2.parsed, City | None)
    r3 = b.copy().structured_outputs(json=City).max_tokens(50).send()
    assert_type(r3.parsed, City | None)
    assert_type(b.copy().structured_outputs(choice=Mood).send().parsed, Mood | None)
    assert_type(b.copy().structured_outputs(regex="a+").send().parsed, Any | None)
    r4 = b.copy().response_format({"type": "json_object"}).send()  # a format dict: no type
    assert_type(r4.parsed, Any | None)
    r5 = b.copy().response_format(City).run_tools()
    assert_type(r5.parsed, City | None)
    r6 = client.chat.completions().create(model="m", messages=[{"role": "user", "content": "x"}]).send()
    assert_type(r6.parsed, Any | None)


async def async_client(client: AsyncVllmClient) -> None:
    b = client.chat.completions().create().model("m").user_message("Paris?")
    r1 = await b.response_format(City).send()
    assert_type(r1.parsed, City | None)
    r2 = await b.copy().structured_outputs(json=City).send()
    assert_type(r2.parsed, City | None)
    r3 = await b.copy().json_schema(City).send()
    assert_type(r3.parsed, City | None)
