"""Structured outputs into typed objects against a real vLLM: constrained decoding keeps even the
tiny random model's output schema-valid when strings are bounded (Literal / Enum values,
``maxLength``), so ``.parsed`` must come back as the type, streamed or not, on both clients."""

from __future__ import annotations

import copy
import dataclasses
import enum
import re
from typing import Any, Literal

import pytest

from vllm_client import PartialParsed

pytestmark = pytest.mark.integration

try:
    import pydantic
except ImportError:
    pydantic = None  # type: ignore[assignment]


class Sky(enum.Enum):
    SUNNY = "sunny"
    RAINY = "rainy"
    CLOUDY = "cloudy"


@dataclasses.dataclass
class Forecast:
    city: Literal["Paris", "Rome", "Oslo"]
    sky: Sky
    warm: bool


def chat(client: Any, msgs: list[dict[str, Any]], max_tokens: int = 60) -> Any:
    return client.chat.completions().create().messages(msgs).max_tokens(max_tokens)


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_dataclass_comes_back_parsed(client: Any, msgs: Any, seed: int) -> None:
    r = chat(client, msgs).seed(seed).response_format(Forecast).send()
    assert r.finish_reason == "stop", r.content
    assert isinstance(r.parsed, Forecast) and isinstance(r.parsed.sky, Sky), r.content


@pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")
async def test_pydantic_model_comes_back_parsed_on_both_clients(client: Any, aclient: Any, msgs: Any) -> None:
    class Weather(pydantic.BaseModel):
        city: str = pydantic.Field(max_length=12)
        sunny: bool
        days: int = pydantic.Field(ge=0, le=9)

    r = chat(client, msgs).seed(3).response_format(Weather).send()
    assert isinstance(r.parsed, Weather) and len(r.parsed.city) <= 12, r.content
    ar = await chat(aclient, msgs).seed(3).response_format(Weather).send()
    assert ar.parsed == r.parsed  # same seed, same text


async def test_enum_choice(client: Any, aclient: Any, msgs: Any) -> None:
    for seed in (1, 2):
        r = chat(client, msgs, 10).seed(seed).structured_outputs(choice=Sky).send()
        assert isinstance(r.parsed, Sky) and r.parsed.value == r.content
        ar = await chat(aclient, msgs, 10).seed(seed).structured_outputs(choice=Literal["yes", "no"]).send()
        assert ar.parsed in ("yes", "no")


def test_regex_output_matches(client: Any, msgs: Any) -> None:
    r = chat(client, msgs, 20).seed(5).structured_outputs(regex="[a-z]{3}-[0-9]{2}").send()
    assert re.fullmatch("[a-z]{3}-[0-9]{2}", r.content) and r.parsed is None


async def test_streamed_partials_end_in_a_valid_object(client: Any, aclient: Any, msgs: Any) -> None:
    sent = chat(client, msgs).seed(2).response_format(Forecast).send()
    partials = []
    with chat(client, msgs).seed(2).response_format(Forecast).send_stream() as s:
        for ev in s:
            if isinstance(ev, PartialParsed):
                partials.append(copy.deepcopy(ev.value))
        final = s.final_response()
    assert final.parsed == sent.parsed and partials
    assert partials[-1] == dataclasses.asdict(sent.parsed) | {"sky": sent.parsed.sky.value}
    stream = await chat(aclient, msgs).seed(2).response_format(Forecast).send_stream()
    async with stream:
        events = [ev async for ev in stream]
    assert events[-1].response.parsed == sent.parsed
