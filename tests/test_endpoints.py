"""Legacy completions, embeddings, models and the vLLM server extras, against recorded vLLM 0.32 bodies."""

from __future__ import annotations

import base64
import json
import struct
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest

from vllm_client import (
    AsyncVllmClient,
    BadRequestError,
    CompletionResponse,
    EmbeddingResponse,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    VllmClient,
)

EP = Path(__file__).parent / "wire" / "vllm032-endpoints"
URL = "http://vllm.test/v1"


def recorded(name: str) -> tuple[dict[str, Any], bytes]:
    meta = json.loads((EP / f"vllm032_{name}.meta.json").read_text())
    body = (EP / meta["file"]).read_bytes()
    return meta, body


def serve(name: str) -> MockTransport:
    meta, body = recorded(name)
    chunks = [body[i:i + 37] for i in range(0, len(body), 37)] if meta["file"].endswith(".sse") else body
    return MockTransport(lambda r: MockResponse(status=meta["http_status"], body=chunks))


def sent(t: MockTransport) -> Any:
    return t.requests[-1].json()


@pytest.mark.parametrize("name,build", [
    ("main-completions-prompt-string", lambda b: b.prompt("The weather in Paris").max_tokens(6).seed(7)),
    ("main-completions-prompt-list2", lambda b: b.prompt(["The weather in Paris", "Once upon a time"]).max_tokens(6).seed(7)),
    ("main-completions-prompt-token-ids", None),
    ("main-completions-prompt-token-ids-batch", None),
    ("main-completions-echo", lambda b: b.prompt("The weather in Paris").max_tokens(3).seed(7).echo(True)),
    ("main-completions-echo-logprobs",
     lambda b: b.prompt("The weather in Paris").max_tokens(2).seed(7).echo(True).logprobs(1)),
    ("main-completions-logprobs2", None),
    ("main-completions-stop", None),
    ("main-completions-return-token-ids", None),
])
def test_completions_bodies_and_responses(name: str, build: Any) -> None:
    meta, body = recorded(name)
    want_req = meta["request"]["body"]
    t = serve(name)
    with VllmClient(URL, transport=t) as client:
        b = client.completions().create().model(want_req["model"])
        if build is None:  # set every recorded field through its setter
            for k, val in want_req.items():
                if k == "model":
                    continue
                b = getattr(b, k)(val) if hasattr(b, k) else b.extra({k: val})
        else:
            b = build(b)
        r = b.send()
    assert sent(t) == want_req  # our builder sends exactly what vLLM was sent
    raw = orjson.loads(body)
    assert isinstance(r, CompletionResponse) and r.raw == raw
    assert [(c.index, c.text, c.finish_reason, c.logprobs) for c in r.choices] == [
        (c["index"], c["text"], c["finish_reason"], c["logprobs"]) for c in raw["choices"]]
    assert r.text == raw["choices"][0]["text"]
    assert r.usage is not None and r.usage.total_tokens == raw["usage"]["total_tokens"]


@pytest.mark.parametrize("name", ["main-completions-stream", "main-completions-stream-include-usage",
                                  "main-completions-stream-list2", "main-completions-stream-logprobs"])
def test_completions_stream(name: str) -> None:
    meta, body = recorded(name)
    req = meta["request"]["body"]
    # what the stream says, by reading the SSE by hand
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    usage = None
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            obj = orjson.loads(line[6:])
            usage = obj.get("usage") or usage
            for c in obj["choices"]:
                texts[c["index"]] = texts.get(c["index"], "") + c["text"]
                if c["finish_reason"]:
                    finish[c["index"]] = c["finish_reason"]
    t = serve(name)
    with VllmClient(URL, transport=t) as client:
        b = client.completions().create().model(req["model"]).prompt(req["prompt"]).max_tokens(req["max_tokens"])
        for k in ("seed", "stream_options", "logprobs"):
            if k in req:
                b = getattr(b, k)(req[k])
        s = b.send_stream()
        events = list(s)
        final = s.final_response()
    assert sent(t) == req
    assert isinstance(final, CompletionResponse)
    assert {c.index: c.text for c in final.choices} == texts
    assert {c.index: c.finish_reason for c in final.choices} == finish
    assert (final.usage.raw if final.usage else None) == usage
    assert events[-1].type == "done" and events[-1].response is final
    if "logprobs" in req:
        assert all(c.logprobs for c in final.choices)


@pytest.mark.parametrize("prompt", [123, [], [1, "a"], [[1], ["x"]], [[]], None, {"a": 1}, [True]])
def test_bad_prompts_rejected(prompt: Any) -> None:
    t = MockTransport(lambda r: MockResponse(json={}))
    with VllmClient(URL, transport=t) as client:
        b = client.completions().create().model("m")
        if prompt is None:
            with pytest.raises(InvalidRequestError, match="no prompt"):
                b.send()
        else:
            with pytest.raises(InvalidRequestError, match="prompt"):
                b.prompt(prompt)
    assert t.requests == []


def test_completion_errors_from_vllm() -> None:
    with VllmClient(URL, transport=serve("main-completions-suffix"), max_retries=0) as client:
        with pytest.raises(BadRequestError, match="suffix") as ei:
            client.completions().create().model("tiny-llama").prompt("x").suffix("y").send()
        assert ei.value.param == "suffix"
    with VllmClient(URL, transport=serve("main-err-unknown-model-completions"), max_retries=0) as client:
        with pytest.raises(NotFoundError, match="does not exist"):
            client.completions().create().model("nope").prompt("x").send()


@pytest.mark.parametrize("name", ["embed-embed-single", "embed-embed-list2", "embed-embed-token-ids",
                                  "embed-embed-base64"])
def test_embeddings(name: str) -> None:
    meta, body = recorded(name)
    req = meta["request"]["body"]
    t = serve(name)
    with VllmClient(URL, transport=t) as client:
        b = client.embeddings().create().model(req["model"]).input(req["input"])
        if "encoding_format" in req:
            b = b.encoding_format(req["encoding_format"])
        r = b.send()
    assert sent(t) == req
    raw = orjson.loads(body)
    assert isinstance(r, EmbeddingResponse) and len(r.embeddings) == len(raw["data"])
    for got, item in zip(r.embeddings, raw["data"]):
        emb = item["embedding"]
        if isinstance(emb, str):  # base64 little-endian float32, decoded for the user
            data = base64.b64decode(emb)
            emb = list(struct.unpack(f"<{len(data) // 4}f", data))
            assert isinstance(got, array) and got.typecode == "f"  # float32 vectors, 4 bytes a value
        assert list(got) == emb and all(isinstance(x, float) for x in got)
    assert abs(sum(x * x for x in r.embeddings[0]) - 1.0) < 1e-3  # vLLM normalises
    assert r.usage is not None and r.usage.prompt_tokens == raw["usage"]["prompt_tokens"]


def test_embedding_errors() -> None:
    with VllmClient(URL, transport=serve("embed-embed-dimensions"), max_retries=0) as client:
        with pytest.raises(BadRequestError, match="Matryoshka"):
            client.embeddings().create().model("tiny-llama").input("x").dimensions(8).send()
    with VllmClient(URL, transport=serve("embed-embed-chat-on-pooling"), max_retries=0) as client:
        with pytest.raises(NotFoundError, match="Not Found"):
            client.chat.completions().create().model("tiny-llama").user_message("x").send()
    t = MockTransport(lambda r: MockResponse(json={}))
    with VllmClient(URL, transport=t) as client:
        for bad in (5, [], [1.5], [["a"]]):
            with pytest.raises(InvalidRequestError):
                client.embeddings().create().input(bad)
        with pytest.raises(InvalidRequestError):
            client.embeddings().create().encoding_format("hex")


def test_models() -> None:
    _, body = recorded("main-models")
    t = serve("main-models")
    with VllmClient(URL, transport=t) as client:
        models = client.models()
    raw = orjson.loads(body)["data"][0]
    m = models[0]
    assert (m.id, m.owned_by, m.max_model_len, m.root, m.parent, m.created) == (
        raw["id"], raw["owned_by"], raw["max_model_len"], raw["root"], raw["parent"], raw["created"])
    assert m.raw == raw and t.requests[0].method == "GET" and t.requests[0].url == f"{URL}/models"


def test_server_extras_at_root() -> None:
    answers = {
        "/health": recorded("main-health"),
        "/version": recorded("main-version"),
        "/tokenize": recorded("main-tokenize-prompt"),
        "/detokenize": recorded("main-detokenize"),
    }

    def handler(r: Any) -> MockResponse:
        meta, body = answers[r.url.removeprefix("http://vllm.test")]
        return MockResponse(status=meta["http_status"], body=body)

    t = MockTransport(handler)
    with VllmClient(URL, transport=t) as client:
        assert client.health() is True
        assert client.version() == "0.32.0"
        tok = orjson.loads(answers["/tokenize"][1])
        assert client.tokenize("The weather in Paris", model="tiny-llama") == tok["tokens"]
        res = client.tokenize_result("The weather in Paris", model="tiny-llama")
        assert (res.count, res.max_model_len) == (tok["count"], tok["max_model_len"])
        assert client.detokenize([1, 2], model="tiny-llama") == orjson.loads(answers["/detokenize"][1])["prompt"]
    assert [r.url for r in t.requests][:2] == ["http://vllm.test/health", "http://vllm.test/version"]
    assert t.requests[2].json() == answers["/tokenize"][0]["request"]["body"]


def test_tokenize_messages_body() -> None:
    meta, body = recorded("main-tokenize-messages")
    t = MockTransport(lambda r: MockResponse(body=body))
    with VllmClient(URL, transport=t) as client:
        req = meta["request"]["body"]
        ids = client.tokenize_result(req["messages"], model=req["model"],
                                     extra={"add_generation_prompt": True}).tokens
    assert sent(t) == req and ids == orjson.loads(body)["tokens"]


def test_health_never_raises() -> None:
    def refuse(r: Any) -> MockResponse:
        from vllm_client import APIConnectionError
        raise APIConnectionError("refused")

    with VllmClient(URL, transport=MockTransport(refuse), max_retries=3) as client:
        assert client.health() is False
    with VllmClient(URL, transport=serve("midstream-after-engine-death-health")) as client:
        assert client.health() is False  # 503 from a dead engine
    with VllmClient("http://127.0.0.1:9/v1", timeout=0.5) as client:  # nothing listens on port 9
        assert client.health() is False


async def test_async_endpoints() -> None:
    t = serve("main-completions-prompt-string")
    async with AsyncVllmClient(URL, transport=t) as client:
        r = await client.completions().create().model("tiny-llama").prompt("The weather in Paris").send()
        assert r.text == orjson.loads(recorded("main-completions-prompt-string")[1])["choices"][0]["text"]
    async with AsyncVllmClient(URL, transport=serve("main-models")) as client:
        assert (await client.models())[0].max_model_len == 512
    async with AsyncVllmClient(URL, transport=serve("embed-embed-base64")) as client:
        e = await client.embeddings().create().model("tiny-llama").input("Hello").encoding_format("base64").send()
        assert len(e.embeddings[0]) == 128
    async with AsyncVllmClient("http://127.0.0.1:9/v1", timeout=0.5) as client:
        assert await client.health() is False


@pytest.mark.filterwarnings("ignore:guided_choice")
def test_vllm_typed_setters_bodies() -> None:
    t = MockTransport(lambda r: MockResponse(json={"choices": []}))
    with VllmClient(URL, transport=t) as client:
        b = (client.chat.completions().create().model("m").user_message("x")
             .min_p(0.05).repetition_penalty(1.1).min_tokens(2).ignore_eos().stop_token_ids([1, 2])
             .skip_special_tokens(False).include_stop_str_in_output().truncate_prompt_tokens(100)
             .prompt_logprobs(1).chat_template("{{ x }}").chat_template_kwargs({"enable_thinking": False})
             .add_generation_prompt(True).continue_final_message(False).structured_outputs(regex="[a-z]+")
             .guided_choice(["a", "b"]).reasoning_effort("low").priority(-1).request_id("req-1"))
        b.send()
    assert sent(t) == {
        "model": "m", "messages": [{"role": "user", "content": "x"}], "min_p": 0.05, "repetition_penalty": 1.1,
        "min_tokens": 2, "ignore_eos": True, "stop_token_ids": [1, 2], "skip_special_tokens": False,
        "include_stop_str_in_output": True, "truncate_prompt_tokens": 100, "prompt_logprobs": 1,
        "chat_template": "{{ x }}", "chat_template_kwargs": {"enable_thinking": False},
        "add_generation_prompt": True, "continue_final_message": False,
        "structured_outputs": {"regex": "[a-z]+"}, "guided_choice": ["a", "b"], "reasoning_effort": "low",
        "priority": -1, "request_id": "req-1"}


@pytest.mark.parametrize("call", [
    lambda b: b.min_p(1.5), lambda b: b.repetition_penalty(0), lambda b: b.min_tokens(-1),
    lambda b: b.ignore_eos("yes"), lambda b: b.stop_token_ids([1.5]), lambda b: b.structured_outputs(),
    lambda b: b.structured_outputs(regex="a", choice=["b"]), lambda b: b.structured_outputs(choice="ab"),
    lambda b: b.chat_template_kwargs(["x"]), lambda b: b.priority("high"), lambda b: b.guided_choice("ab"),
])
@pytest.mark.filterwarnings("ignore:guided_choice")
def test_vllm_setters_check_types(call: Any) -> None:
    with VllmClient(URL, transport=MockTransport(lambda r: MockResponse(json={}))) as client:
        with pytest.raises(InvalidRequestError):
            call(client.chat.completions().create())


def test_min_tokens_above_max_tokens_refused_before_sending() -> None:
    sent: list[Any] = []
    ok = {"choices": [{"message": {"content": "hi"}, "text": "hi"}]}
    with VllmClient(URL, transport=MockTransport(lambda r: sent.append(r) or MockResponse(json=ok))) as client:
        chat = lambda: client.chat.completions().create().model("m").user_message("x")  # noqa: E731
        legacy = lambda: client.completions().create().model("m").prompt("x")  # noqa: E731
        for b in (chat().min_tokens(5).max_tokens(2), chat().min_tokens(5).max_completion_tokens(4),
                  chat().max_tokens(2).extra({"min_tokens": 3}), legacy().min_tokens(5).max_tokens(2)):
            with pytest.raises(InvalidRequestError, match=r"min_tokens\(\d\) is greater than max_tokens"):
                b.send()
        assert sent == []
        assert chat().min_tokens(2).max_tokens(2).send().content == "hi"  # equal is fine
        assert chat().max_tokens(2).send().content == "hi"
        assert len(sent) == 2


def test_images_become_content_parts(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    jpeg = b"\xff\xd8\xff" + b"1" * 10
    with VllmClient(URL, transport=MockTransport(lambda r: MockResponse(json={}))) as client:
        b = client.chat.completions().create().model("m").user_message(
            "What is this?", images=["https://x/cat.jpg", path, jpeg])
        parts = b.build()["messages"][0]["content"]
        assert parts[0] == {"type": "text", "text": "What is this?"}
        assert parts[1] == {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}}
        assert parts[2]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
        assert parts[3]["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        with pytest.raises(InvalidRequestError, match="never read from disk"):  # a str is a URL (issue 31)
            client.chat.completions().create().user_message("x", images=[str(path)])
        with pytest.raises(InvalidRequestError, match="cannot read"):
            client.chat.completions().create().user_message("x", images=[tmp_path / "missing.png"])


def test_provider_dialect_setters() -> None:
    t = MockTransport(lambda r: MockResponse(json={"choices": []}))
    with VllmClient("http://fastgpt.test/api/v1", transport=t, api_key="fastgpt-key") as client:
        client.chat.completions().create().model("m").user_message("x").chat_id("abc").variables(
            {"uid": "u1"}).detail().send()
        client.chat.completions().create().model("qwen/qwen3-32b").user_message("x").reasoning_format("parsed").send()
    assert t.requests[0].url == "http://fastgpt.test/api/v1/chat/completions"
    assert t.requests[0].json() == {"model": "m", "messages": [{"role": "user", "content": "x"}], "chatId": "abc",
                                    "variables": {"uid": "u1"}, "detail": True}
    assert t.requests[1].json()["reasoning_format"] == "parsed"
