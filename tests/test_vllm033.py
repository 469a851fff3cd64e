"""vLLM 0.33 / 0.34's surface, on both clients: weight versions, the new Responses fields,
decisions, token-embedding matrices (late chunking), batch chat's own fields, FakeVllmServer's
0.33 wire (kv_transfer_params, response.incomplete, the new 500 text), and check_server()."""

from __future__ import annotations

import inspect
import json
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from vllm_client import (
    AsyncVllmClient,
    ChoiceAnswer,
    InternalServerError,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    NotSupportedError,
    PredicateAnswer,
    ScoreAnswer,
    VllmClient,
    WeightVersionSpan,
)
from vllm_client._cli import main as cli_main
from vllm_client.testing import FakeVllmServer

from ._both import CLIENTS

OPENAPI = Path(__file__).parent / "wire" / "openapi"


def client(kind: str, server: FakeVllmServer, **kw: Any) -> Any:
    return (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=kw.pop("max_retries", 0), **kw)


async def call(x: Any) -> Any:
    return await x if inspect.isawaitable(x) else x


async def events_of(kind: str, stream: Any) -> list[Any]:
    if kind == "sync":
        return list(stream)
    return [e async for e in stream]


# -- chat / completions: weight versions, kv_transfer_params -----------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_weight_versions_are_read_on_each_choice(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        r = await call(c.chat.completions().create().user_message("hi").return_weight_versions().send())
        assert server.requests[-1].body["return_weight_versions"] is True
        (span,) = r.choices[0].weight_versions
        assert isinstance(span, WeightVersionSpan) and span.version == "fake-weights-1"
        assert span.start == 0 and span.end == r.usage.completion_tokens
        r = await call(c.completions().create().prompt("Once").return_weight_versions(True).n(2).send())
        assert [ch.weight_versions[0].version for ch in r.choices] == ["fake-weights-1"] * 2
        r = await call(c.chat.completions().create().user_message("hi").send())
        assert r.choices[0].weight_versions is None  # not asked: not sent
        with pytest.raises(InvalidRequestError):
            c.chat.completions().create().return_weight_versions("yes")
        await call(c.close())


@pytest.mark.parametrize("kind", CLIENTS)
async def test_kv_transfer_params_come_back_on_the_answer(kind: str) -> None:
    params = {"do_remote_prefill": True, "remote_engine_id": "e1"}
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        r = await call(c.chat.completions().create().user_message("hi").kv_transfer_params(params).send())
        assert r.kv_transfer_params == params
        r = await call(c.completions().create().prompt("x").kv_transfer_params(params).send())
        assert r.kv_transfer_params == params
        await call(c.close())


def _sse_chunks(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    req = urllib.request.Request(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    return [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]


@pytest.mark.parametrize("route", ["chat/completions", "completions"])
def test_fake_server_streams_the_033_chunk_keys(route: str) -> None:
    """kv_transfer_params null on every chunk and the value on the last; weight_versions only
    on each choice's finish chunk; a choice with no token gets a ``delta: {}`` finish chunk."""
    with FakeVllmServer(model="m") as server:
        body: dict[str, Any] = {"model": "m", "stream": True, "return_weight_versions": True, "n": 2,
                                "kv_transfer_params": {"k": 1}, "stream_options": {"include_usage": True}}
        body.update({"messages": [{"role": "user", "content": "hi"}]} if route.startswith("chat") else
                    {"prompt": "Once"})
        chunks = _sse_chunks(f"{server.url}/{route}", body)
        assert all("kv_transfer_params" in ch for ch in chunks)
        assert [ch["kv_transfer_params"] for ch in chunks][-1] == {"k": 1}
        assert all(ch["kv_transfer_params"] is None for ch in chunks[:-1])
        with_wv = [c for ch in chunks for c in ch["choices"] if "weight_versions" in c]
        assert sorted(c["index"] for c in with_wv) == [0, 1] and all(c["finish_reason"] for c in with_wv)
        if route.startswith("chat"):
            server.reply(content="")
            chunks = _sse_chunks(f"{server.url}/{route}", {"model": "m", "stream": True,
                                                           "messages": [{"role": "user", "content": "hi"}]})
            assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_500_is_an_internal_server_error_whatever_the_wording(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        server.fail(500)
        c = client(kind, server)
        with pytest.raises(InternalServerError) as e:
            await call(c.chat.completions().create().user_message("hi").send())
        assert e.value.status_code == 500
        assert e.value.message == "The server had an error while processing your request."  # vLLM 0.33's text
        await call(c.close())


# -- Responses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_033_fields_are_sent(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        b = (c.responses().create().input("hi").prompt_cache_options({"mode": "explicit", "prewarm": True})
             .prompt_cache_retention("24h").safety_identifier("user-1").spaces_between_special_tokens(False)
             .thinking_token_budget(64).skip_special_tokens(False))
        await call(b.send())
        sent = server.requests[-1].body
        assert sent["prompt_cache_options"] == {"mode": "explicit", "prewarm": True}
        assert (sent["prompt_cache_retention"], sent["safety_identifier"]) == ("24h", "user-1")
        assert sent["spaces_between_special_tokens"] is False and sent["thinking_token_budget"] == 64
        assert sent["skip_special_tokens"] is False
        n = len(server.requests)
        for bad in (lambda: b.safety_identifier("x" * 129), lambda: b.prompt_cache_options({"mode": "sometimes"}),
                    lambda: b.thinking_token_budget(-2), lambda: b.spaces_between_special_tokens(1)):
            with pytest.raises(InvalidRequestError):
                bad()
        assert len(server.requests) == n
        await call(c.close())


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_stream_cut_by_max_output_tokens_ends_incomplete(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        b = c.responses().create().input("tell me a long story").max_output_tokens(3)
        r = await call(b.send())
        assert r.status == "incomplete" and r.finish_reason == "length"
        assert r.raw["output"][-1]["status"] == "incomplete"
        stream = await call(b.send_stream())
        events = await events_of(kind, stream)
        done = events[-1].response
        assert done.status == "incomplete" and done.finish_reason == "length"
        assert done.raw["output"][-1]["status"] == "incomplete"
        await call(c.close())


# -- decisions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_decisions_answers_typed_questions(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        r = await call(c.decisions().create().model("m").input("Buy cheap pills now!!!")
                       .predicate("Is this spam?", name="spam")
                       .choice("Which language?", ["en", "fr", {"value": "de", "description": "German"}], name="lang")
                       .score("How urgent?", ["low", "medium", "high"], name="urgency").send())
        sent = server.requests[-1]
        assert sent.path == "/v1/decisions"
        assert [q["type"] for q in sent.body["questions"]] == ["predicate", "choice", "score"]
        assert sent.body["questions"][1]["choices"][2] == {"value": "de", "description": "German"}
        spam, lang, urgency = r.answers
        assert isinstance(spam, PredicateAnswer) and 0 < spam.probability < 1 and r.answer("spam") is spam
        assert isinstance(lang, ChoiceAnswer) and lang.choice in ("en", "fr", "de")
        assert [p.value for p in lang.probabilities] == ["en", "fr", "de"]
        assert abs(sum(p.probability for p in lang.probabilities) - 1) < 1e-4
        assert lang.confidence == max(p.probability for p in lang.probabilities)
        assert isinstance(urgency, ScoreAnswer) and 0 <= urgency.score <= 2
        assert [p.label for p in urgency.probabilities] == ["low", "medium", "high"]
        assert r.usage.prompt_tokens > 0 and r.model == "m"
        msgs = [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]
        r = await call(c.decisions().create().model("m").input(msgs).questions(
            [{"type": "predicate", "instructions": "Is it a greeting?"}]).send())
        assert server.requests[-1].body["input"] == msgs and len(r.answers) == 1
        with pytest.raises(KeyError):
            r.answer("nope")
        await call(c.close())


@pytest.mark.parametrize("kind", CLIENTS)
async def test_decisions_refuses_bad_questions_before_sending(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        b = c.decisions().create().model("m")
        for bad in (lambda: b.input([{"role": "assistant", "content": "x"}]), lambda: b.input(3),
                    lambda: b.choice("pick", ["only one"]), lambda: b.score("rate", ["a"] * 11),
                    lambda: b.questions([{"type": "essay", "instructions": "?"}]),
                    lambda: b.safety_identifier("x" * 200)):
            with pytest.raises(InvalidRequestError):
                bad()
        with pytest.raises(InvalidRequestError, match="input"):
            await call(b.predicate("spam?").send())
        with pytest.raises(InvalidRequestError, match="question"):
            await call(c.decisions().create().model("m").input("x").send())
        assert not [q for q in server.requests if q.path == "/v1/decisions"]
        await call(c.close())


@pytest.mark.parametrize("kind", CLIENTS)
async def test_decisions_501_is_not_supported_and_not_retried(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        server.fail(501, {"error": {"message": "This model has no decisions strategy.", "type": "NotImplementedError",
                                    "param": None, "code": 501}}, path="/v1/decisions")
        c = client(kind, server, max_retries=3)
        with pytest.raises(NotSupportedError) as e:
            await call(c.decisions().create().model("m").input("x").predicate("spam?").send())
        assert isinstance(e.value, InternalServerError) and e.value.status_code == 501
        assert "does not support" in str(e.value)
        assert len([q for q in server.requests if q.path == "/v1/decisions"]) == 1
        await call(c.close())


# -- token embeddings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_token_embeddings_are_multi_vectors(kind: str) -> None:
    with FakeVllmServer(model="m", token_embed=True, embedding_dim=8) as server:
        c = client(kind, server)
        r = await call(c.embeddings().create().model("m").input(["one two three", "four"]).send())
        assert r.multi_vector and r.embeddings == []
        assert [len(m) for m in r.multi_vectors] == [3, 1] and all(len(v) == 8 for m in r.multi_vectors for v in m)
        assert r.late_chunking is None
        r = await call(c.embeddings().create().model("m").input("a b c d e").late_chunking_params(
            {"chunk_size": 2}).send())
        assert server.requests[-1].body["late_chunking_params"] == {"chunk_size": 2}
        assert len(r.multi_vectors[0]) == 3 and r.late_chunking[0]["spans"] == [[0, 2], [2, 4], [4, 5]]
        for bad in ({"chunk_size": 0}, {}, {"chunk_size": "2"}, "2"):
            with pytest.raises(InvalidRequestError):
                c.embeddings().create().late_chunking_params(bad)
        await call(c.close())


def test_token_embeddings_numpy_shapes() -> None:
    np = pytest.importorskip("numpy")
    from vllm_client import EmbeddingResponse

    r = EmbeddingResponse.from_dict({"data": [{"index": 0, "embedding": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]},
                                              {"index": 1, "embedding": [[0.5, 0.5]]}]})
    arrays = r.numpy()
    assert [a.shape for a in arrays] == [(3, 2), (1, 2)] and arrays[0].dtype == np.float32
    flat = EmbeddingResponse.from_dict({"data": [{"index": 0, "embedding": [1.0, 2.0]}]}).numpy()
    assert flat.shape == (1, 2)


# -- batch chat takes its own fields only -------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_chat_refuses_fields_its_route_does_not_take(kind: str) -> None:
    with FakeVllmServer(model="m") as server:
        c = client(kind, server)
        convs = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
        b = c.chat.completions().create().tools([{"type": "function", "function": {"name": "f", "parameters": {}}}])
        b = b.conversations(convs).return_weight_versions()
        with pytest.raises(InvalidRequestError, match="return_weight_versions, tools"):
            await call(b.send())
        assert not server.requests
        r = await call(c.chat.completions().create().conversations(convs).temperature(0).max_tokens(5).send())
        assert len(r.choices) == 2
        await call(c.close())


# -- check_server -------------------------------------------------------------------------------------


def _openapi_server(release: str, runner: str = "generate", drop: str | None = None) -> MockTransport:
    doc = json.loads((OPENAPI / f"vllm{release}-{runner}.json").read_text())
    if drop:
        del doc["components"]["schemas"]["ChatCompletionRequest"]["properties"][drop]

    def handler(req: Any) -> MockResponse:
        if req.url.endswith("/openapi.json"):
            return MockResponse(json=doc)
        if req.url.endswith("/version"):
            return MockResponse(json={"version": f"0.{release[1:]}.0"})
        return MockResponse(404, json={"detail": "Not Found"})
    return MockTransport(handler)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_check_server_reports_untyped_and_rejected_fields(kind: str) -> None:
    cls = VllmClient if kind == "sync" else AsyncVllmClient
    c = cls("http://test.local/v1", transport=_openapi_server("034"), max_retries=0)
    report = await call(c.check_server())
    assert report.version == "0.34.0" and report.ok and report.rejected_fields == []
    assert "/v1/messages" in report.untyped_routes and "/v1/chat/completions" not in report.untyped_routes
    assert "/v1/responses mm_processor_kwargs" in report.untyped_fields
    await call(c.close())
    c = cls("http://test.local/v1", transport=_openapi_server("034", drop="return_weight_versions"), max_retries=0)
    report = await call(c.check_server())
    assert not report.ok and report.rejected_fields == ["/v1/chat/completions return_weight_versions"]
    await call(c.close())


def test_server_info_check_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    transport = _openapi_server("033", drop="tools")
    real = VllmClient.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        kw["transport"] = transport
        real(self, *a, **kw)

    monkeypatch.setattr(VllmClient, "__init__", init)
    code = cli_main(["server-info", "--check", "--base-url", "http://test.local/v1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "version: 0.33.0" in out
    assert "untyped route: /v1/messages (client.request())" in out
    assert "untyped field: /v1/responses prompt (extra())" in out
    assert any(line.startswith("rejected field: /v1/chat/completions tools") for line in out)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_check_server_without_openapi_says_so(kind: str) -> None:
    with FakeVllmServer(model="m") as server:  # serves no /openapi.json
        c = client(kind, server)
        with pytest.raises(NotFoundError, match="publishes no /openapi.json"):
            await call(c.check_server())
        await call(c.close())


@pytest.mark.parametrize("kind", CLIENTS)
async def test_decisions_on_an_older_vllm_says_which_release_serves_it(kind: str) -> None:
    cls = VllmClient if kind == "sync" else AsyncVllmClient
    transport = MockTransport(lambda req: MockResponse(404, json={"detail": "Not Found"}))
    c = cls("http://test.local/v1", transport=transport, max_retries=0)
    with pytest.raises(NotFoundError, match="from 0.33 on"):
        await call(c.decisions().create().model("m").input("x").predicate("spam?").send())
    await call(c.close())
