"""Legacy text completions (``/v1/completions``) against a real vLLM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from vllm_client import BadRequestError, CompletionResponse, ContentDelta, Done, UsageEvent

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration

PROMPT = "The weather in Paris"


def completion(client: Any, prompt: Any = PROMPT, max_tokens: int = 4) -> Any:
    return client.completions().create().prompt(prompt).max_tokens(max_tokens)


@pytest.mark.parametrize("prompt,n", [
    (PROMPT, 1),
    (["The weather in Paris", "The city of Rome"], 2),
    ([290, 487, 288, 821], 1),
    ([[290, 487], [288, 821]], 2),
], ids=["str", "list_of_str", "token_ids", "list_of_token_ids"])
def test_prompt_forms(client: Any, real_server: Target, prompt: Any, n: int) -> None:
    r = completion(client, prompt).seed(1).send()
    assert isinstance(r, CompletionResponse) and r.object == "text_completion" and r.id.startswith("cmpl-")
    assert [c.index for c in r.choices] == list(range(n))
    assert all(c.text and c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 4 * n and r.text == r.choices[0].text
    with completion(client, prompt).seed(1).stream_options({"include_usage": True}).send_stream() as s:
        events = list(s)
        final = s.final_response()
    assert [c.text for c in final.choices] == [c.text for c in r.choices]  # same seed, streamed or not
    assert {e.index for e in events if isinstance(e, ContentDelta)} == set(range(n))
    assert isinstance(events[-2], UsageEvent) and isinstance(events[-1], Done)
    assert final.usage.completion_tokens == 4 * n and events[-1].response is final


def test_echo(client: Any) -> None:
    r = completion(client, max_tokens=2).echo().send()
    assert r.text.startswith(PROMPT) and len(r.text) > len(PROMPT)
    with completion(client, max_tokens=2).echo().send_stream() as s:
        assert s.final_response().text.startswith(PROMPT)


def test_logprobs(client: Any) -> None:
    r = completion(client, max_tokens=3).seed(1).logprobs(2).send()
    lp = r.choices[0].logprobs
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["text_offset"]) == 3
    assert "".join(lp["tokens"]) == r.text
    # vLLM: up to N+1 entries per position (the sampled token, then the top N)
    assert all(1 <= len(t) <= 3 for t in lp["top_logprobs"])
    e = completion(client, max_tokens=1).echo().logprobs(1).send()
    elp = e.choices[0].logprobs
    assert elp["token_logprobs"][0] is None  # the first prompt token has no logprob
    assert "".join(elp["tokens"]) == e.text
    # vLLM adds its own prompt_logprobs to the choice; the SDK keeps it in raw only
    assert e.raw["choices"][0]["prompt_logprobs"][0] is None


def test_streamed_logprobs_match_send(client: Any) -> None:
    r = completion(client, max_tokens=3).seed(1).logprobs(1).send()
    with completion(client, max_tokens=3).seed(1).logprobs(1).send_stream() as s:
        final = s.final_response()
    assert final.choices[0].logprobs["tokens"] == r.choices[0].logprobs["tokens"]


def test_streamed_logprobs_are_merged_like_send(client: Any) -> None:
    r = completion(client, max_tokens=3).seed(1).logprobs(1).send()
    with completion(client, max_tokens=3).seed(1).logprobs(1).send_stream() as s:
        final = s.final_response()
    merged = final.choices[0].logprobs  # one legacy object, lists concatenated over the chunks
    assert set(merged) >= {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(merged["text_offset"]) == len(r.choices[0].logprobs["text_offset"])


async def test_async_completions(aclient: Any) -> None:
    r = await completion(aclient, ["a", "b"], 2).seed(3).send()
    s = await completion(aclient, ["a", "b"], 2).seed(3).send_stream()
    texts: dict[int, str] = {0: "", 1: ""}
    async for ev in s:
        if isinstance(ev, ContentDelta):
            texts[ev.index] += ev.text
    assert [texts[0], texts[1]] == [c.text for c in r.choices]


def test_stop_and_suffix(client: Any, real_server: Target) -> None:
    r = completion(client, max_tokens=40).seed(7).stop("e").send()
    assert r.finish_reason == "stop" and r.choices[0].stop_reason == "e" and "e" not in r.text
    with pytest.raises(BadRequestError) as e:  # no fill-in-the-middle for this model
        completion(client).suffix("!").send()
    assert e.value.param == "suffix" and "suffix" in e.value.message
