"""The habits people bring (issue 34): installing this project, reusable builders (copy(),
deepcopy, pickle, the system() rule), create(**fields), openai-python spellings, the message
attribute view, typed setter errors, the OPENAI_API_KEY rule, to_dict/to_json/pickling and
total_usage. Behaviour tests run on both clients."""

from __future__ import annotations

import copy
import inspect
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses
from aioresponses import aioresponses

import vllm_client as vc
from tests._both import CLIENTS, call, close, drain, make
from vllm_client import (
    ChatCompletionResponse,
    ChatMessage,
    ContentDelta,
    Done,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    OutputParseError,
    StreamError,
    ToolCallComplete,
    Usage,
    UsageEvent,
    VllmClient,
)
from vllm_client._endpoints.base import _NOT_FIELDS

ROOT = Path(__file__).resolve().parent.parent
URL = "http://127.0.0.1:9/v1"


def usage(p: int, c: int) -> dict[str, Any]:
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def answer(content: str | None = "ok", *, calls: list[tuple[str, str, str]] | None = None,
           u: dict[str, Any] | None = None, **top: Any) -> MockResponse:
    msg: dict[str, Any] = {"role": "assistant", "content": content, "reasoning": "thought"}
    if calls:
        msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                             for i, n, a in calls]
    body = {"id": "x", "object": "chat.completion", "model": "m", **top,
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if calls else "stop"}]}
    if u is not None:
        body["usage"] = u
    return MockResponse(json=body, headers={"X-Request-Id": "req-1"})


class Script:
    """A MockTransport handler answering from a list, recording each request."""

    def __init__(self, *answers: MockResponse) -> None:
        self.answers = list(answers)
        self.requests: list[Any] = []

    def __call__(self, req: Any) -> MockResponse:
        self.requests.append(req)
        return self.answers.pop(0)


def client_for(kind: str, *answers: MockResponse, **kw: Any) -> tuple[Any, Script]:
    script = Script(*answers)
    return make(kind, URL, transport=MockTransport(script), **kw), script


# -- 1. installing -----------------------------------------------------------------------------


def test_distribution_name_does_not_collide_with_the_index_project() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    name = re.search(r'^name = "([^"]+)"', text, re.M).group(1)  # type: ignore[union-attr]
    normal = re.sub(r"[-_.]+", "-", name).lower()
    assert normal not in ("vllm-client", "vllmclient"), name  # the index's unrelated vllm_client
    assert name == "vllm-fluent-client"


def _install_lines() -> list[tuple[str, str]]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*.md"),
             *ROOT.glob("vllm_client/**/*.py"), *ROOT.glob("examples/*.py")]
    out = []
    for f in files:
        for line in f.read_text().splitlines():
            for m in re.finditer(r"pip install ([^`\n)]*)", line):
                out.append((f.name, m.group(1)))
    return out


def test_every_install_line_installs_this_project() -> None:
    lines = _install_lines()
    assert len(lines) >= 5
    ours = 0
    for where, args in lines:
        words = [w.strip("\"'") for w in args.split()]
        # never the index's name (it is another project), and never a registry's host name
        assert not any(re.match(r"vllm[-_.]?client\b", w, re.I) for w in words), (where, args)
        assert "pypi" not in args.lower(), (where, args)
        if any(w in (".", "-e") or w.startswith((".[", "-e", "vllm-fluent-client")) for w in words):
            ours += 1
    assert ours >= 4  # the README's set-up, its Installing section and the extras' hints
    readme = (ROOT / "README.md").read_text()
    assert 'pip install "vllm-fluent-client[otel] @ git+<repository URL>"' in readme


def test_instrument_hint_installs_this_project(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vllm_client._otel", None)  # as when opentelemetry-api is missing
    monkeypatch.delattr(vc, "_otel", raising=False)
    with pytest.raises(ImportError) as ei:
        vc.instrument()
    msg = str(ei.value)
    assert "pip install opentelemetry-api" in msg and "pip install -e '.[otel]'" in msg
    assert "vllm_client[" not in msg


# -- 2. reusable builders ----------------------------------------------------------------------


def weather(city: str) -> str:
    """The weather."""
    return f"sunny in {city}"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_copy_gives_independent_builders(kind: str) -> None:
    client, script = client_for(kind, answer("A"), answer("B"))
    base = (client.chat.completions().create().model("m").system("terse").tools([weather])
            .header("X-Team", "a").extra({"seed_list": [1]}))
    a = base.copy().user_message("A").header("X-Only", "a")
    b = base.copy().user_message("B")
    a.build()["tools"].append("leak?")
    a._extra["seed_list"].append(2)
    assert [m["content"] for m in base.build()["messages"]] == ["terse"]
    assert [m["content"] for m in a.build()["messages"]] == ["terse", "A"]
    assert [m["content"] for m in b.build()["messages"]] == ["terse", "B"]
    assert b.build()["seed_list"] == [1] and len(b.build()["tools"]) == 1
    assert copy.copy(base).user_message("C").build()["messages"] != base.build()["messages"]
    deep = copy.deepcopy(a)
    assert deep._client is client and deep.build() == a.build()  # the client is shared, not copied
    await call(kind, a, "send")
    await call(kind, b, "send")
    sent = [orjson.loads(r.body) for r in script.requests]
    assert [m["content"] for m in sent[0]["messages"]] == ["terse", "A"]
    assert [m["content"] for m in sent[1]["messages"]] == ["terse", "B"]
    assert script.requests[0].headers.get("X-Only") == "a" and "X-Only" not in script.requests[1].headers
    assert script.requests[1].headers["X-Team"] == "a"
    await close(kind, client)


@dataclass
class City:
    name: str
    population: int


@pytest.mark.parametrize("kind", CLIENTS)
async def test_pickled_builder_sends_the_same_request(kind: str) -> None:
    client = make(kind, "http://127.0.0.1:9/v1", api_key="sk-test", default_model="m", timeout=7)
    b = client.chat.completions().create(temperature=0.2).system("s").user_message("u").response_format(City)
    b.header("X-A", "1")
    b2 = pickle.loads(pickle.dumps(b))
    assert b2.build() == b.build() and b2._headers == {"X-A": "1"}
    assert b2._client is not client and b2._client.base_url == client.base_url
    assert b2._client.timeout == client.timeout and b2._client.default_model == "m"
    assert type(b2._client) is type(client) and b2._output is not None
    parsed = b2._parse({"choices": [{"index": 0, "message": {"content": '{"name": "Oslo", "population": 7}'}}]})
    assert parsed.parsed == City("Oslo", 7)
    await close(kind, b2._client)
    await close(kind, client)


def _builder_classes() -> list[type]:
    return [getattr(vc, n) for n in vc.__all__ if n.endswith("Builder")]


@pytest.mark.parametrize("cls", _builder_classes(), ids=lambda c: c.__name__)
def test_every_builder_copies_deep_copies_and_pickles(cls: type) -> None:
    client = VllmClient(URL)
    b = cls(client).header("X-A", "1").extra({"k": [1]})
    for other in (b.copy(), copy.deepcopy(b), copy.copy(b), pickle.loads(pickle.dumps(b))):
        assert type(other) is cls and other._body == b._body and other._headers == b._headers
        other.header("X-B", "2").extra({"k": [2]})
        assert b._headers == {"X-A": "1"} and b._extra == {"k": [1]}
    client.close()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_system_prompt_stays_first_in_either_order(kind: str) -> None:
    client = make(kind, URL)
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    c = client.chat.completions()
    first = c.create().system("S").messages(history).build()["messages"]
    after = c.create().messages(history).system("S").build()["messages"]
    assert first == after == [{"role": "system", "content": "S"}, *history]
    assert c.create().user_message("x").system("S").build()["messages"][0] == {"role": "system", "content": "S"}
    same = [{"role": "system", "content": "S"}, *history]
    assert c.create().system("S").messages(same).build()["messages"] == same  # not twice
    assert c.create().messages(same).system("S").build()["messages"] == same
    with pytest.raises(InvalidRequestError, match="two different system prompts"):
        c.create().system("S").messages([{"role": "system", "content": "T"}, *history])
    with pytest.raises(InvalidRequestError, match="two different system prompts"):
        c.create().messages([{"role": "system", "content": "T"}, *history]).system("S")
    with pytest.raises(InvalidRequestError, match="two different system prompts"):
        c.create().system("S").user_message("x").system("T")
    await close(kind, client)


# -- 3. openai-python habits -----------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_create_takes_fields_as_keywords(kind: str) -> None:
    client, script = client_for(kind, answer("hi"))
    msgs = [{"role": "user", "content": "Hi"}]
    b = client.chat.completions().create(model="m", messages=msgs, temperature=0.2, max_tokens=5,
                                         structured_outputs={"regex": "a+"}, extra_body={"x": 1},
                                         extra_headers={"X-A": "1"}, timeout=3)
    setters = (client.chat.completions().create().model("m").messages(msgs).temperature(0.2).max_tokens(5)
               .structured_outputs(regex="a+").extra({"x": 1}))
    assert b.build() == setters.build()
    resp = await call(kind, b, "send")
    assert resp.content == "hi" and script.requests[0].headers["X-A"] == "1"
    assert script.requests[0].timeout.read == 3
    e = client.embeddings().create(model="e", input=["a", "b"])
    assert e.build() == {"model": "e", "input": ["a", "b"]}
    with pytest.raises(InvalidRequestError, match=r"create\(temprature=.*extra\(\{'temprature'"):
        client.chat.completions().create(temprature=0.2)
    with pytest.raises(InvalidRequestError, match="temperature"):
        client.chat.completions().create(temperature="hot")
    with pytest.raises(InvalidRequestError, match="send"):
        client.chat.completions().create(send=True)
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_openai_spellings_show_this_sdks_spelling(kind: str) -> None:
    client = make(kind, URL)
    with pytest.raises(AttributeError, match=r"client\.chat\.completions\(\)\.create\(model=\.\.\., "
                                             r"messages=\[\.\.\.\]\)\.send\(\)"):
        client.chat.completions.create(model="m", messages=[])
    with pytest.raises(AttributeError, match=r"client\.embeddings\(\)\.create\(.*\)\.send\(\)"):
        client.embeddings.create(model="m", input="x")
    with pytest.raises(AttributeError, match=r"client\.audio\.transcriptions\(\)\.create"):
        client.audio.transcriptions.create(file=b"")
    with pytest.raises(AttributeError, match=r"client\.responses\(\)\.create\("):
        client.responses.create(model="m", input="x")
    assert client.chat.completions().create().__class__.__name__.endswith("ChatCompletionBuilder")
    await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_choice_message_answers_attributes_and_stays_a_dict(kind: str) -> None:
    client, _ = client_for(kind, answer("hi", calls=[("c1", "weather", '{"city": "Oslo"}')]))
    resp = await call(kind, client.chat.completions().create(model="m").user_message("x"), "send")
    m = resp.choices[0].message
    assert isinstance(m, dict) and isinstance(m, ChatMessage)
    assert m.content == m["content"] == "hi" and m.role == "assistant" and m.reasoning == "thought"
    assert m.refusal is None and m.get("refusal") is None
    (tc,) = m.tool_calls
    assert tc.function.name == tc.name == "weather" and tc.function.arguments == '{"city": "Oslo"}'
    assert orjson.loads(orjson.dumps(m)) == dict(m)  # still serializes as the plain dict
    assert pickle.loads(pickle.dumps(m)) == m
    with pytest.raises(AttributeError, match="no field 'audio'"):
        m.audio  # noqa: B018
    await close(kind, client)


_NO_VALUE = inspect.Parameter.empty
_WRONG = [object(), b"bytes", 1.5j, {1: 2}, [object()], {"k": object()}, set(), float("nan")]


def _setters(cls: type) -> list[tuple[str, list[inspect.Parameter]]]:
    out = []
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or (name in _NOT_FIELDS and name != "header"):
            continue
        params = [p for p in list(inspect.signature(fn).parameters.values())[1:]
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        out.append((name, params))
    return out


@pytest.mark.parametrize("cls", _builder_classes(), ids=lambda c: c.__name__)
def test_every_setter_rejects_wrong_types_with_invalid_request_error(cls: type) -> None:
    client = VllmClient(URL)
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the guided_* setters warn
        for name, params in _setters(cls):
            for i, param in enumerate(params):
                for wrong in _WRONG:
                    args: list[Any] = []
                    kw: dict[str, Any] = {}
                    for j, q in enumerate(params):
                        if j != i and q.default is not _NO_VALUE:
                            continue
                        value = wrong if j == i else "x"
                        if q.kind == q.KEYWORD_ONLY:
                            kw[q.name] = value
                        else:
                            args.append(value)
                    try:
                        getattr(cls(client), name)(*args, **kw)
                    except InvalidRequestError:
                        pass
                    except Exception as e:  # a raw ValueError / TypeError from inside
                        pytest.fail(f"{cls.__name__}.{name}({param.name}={wrong!r:.20}) raised "
                                    f"{type(e).__name__}: {e}")
                    else:
                        assert wrong.__class__ is not object, f"{cls.__name__}.{name} accepted object()"
                    checked += 1
    assert checked > 20
    with pytest.raises(InvalidRequestError, match="message dict"):
        client.chat.completions().create().message("Hi")  # type: ignore[arg-type]
    client.close()


# -- 4. environment ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_openai_key_goes_only_to_the_openai_base_url(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("VLLM_BASE_URL", "OPENAI_BASE_URL", "VLLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")

    async def auth(**kw: Any) -> str | None:
        client, script = client_for(kind, answer(), **kw)
        await call(kind, client.chat.completions().create(model="m").user_message("x"), "send")
        await close(kind, client)
        return script.requests[0].headers.get("Authorization")  # type: ignore[no-any-return]

    assert await auth() is None  # the default local URL: the OpenAI key stays home
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert await auth() == "Bearer sk-openai-secret"  # the URL is $OPENAI_BASE_URL's (given or not)
    client = make(kind)
    assert client.base_url == URL and client.api_key == "sk-openai-secret"
    await close(kind, client)
    client = make(kind, "http://127.0.0.1:8000/v1")  # another server
    assert client.api_key is None
    await close(kind, client)
    monkeypatch.setenv("VLLM_BASE_URL", "http://127.0.0.1:8000/v1")  # VLLM_BASE_URL wins: not OpenAI's
    client = make(kind)
    assert client.base_url == "http://127.0.0.1:8000/v1" and client.api_key is None
    await close(kind, client)
    monkeypatch.setenv("VLLM_API_KEY", "sk-vllm")
    assert await auth() == "Bearer sk-vllm"  # VLLM_API_KEY first, wherever the URL came from
    assert await auth(api_key="sk-arg") == "Bearer sk-arg"


# -- 5. serialization ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_response_to_dict_to_json_and_pickle_keep_everything(kind: str) -> None:
    body = {"id": "r1", "object": "chat.completion", "model": "m", "usage": usage(3, 4), "future_field": [1],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": '{"name": "Oslo", "population": 7}'}}]}
    url = f"{URL}/chat/completions"
    if kind == "sync":  # the real transports' own header mappings
        with responses.RequestsMock() as rs:
            rs.add(responses.POST, url, json=body, headers={"X-Request-Id": "abc"})
            with VllmClient(URL) as client:
                resp = client.chat.completions().create(model="m").user_message("x").response_format(City).send()
    else:
        with aioresponses() as m:
            m.post(url, payload=body, headers={"X-Request-Id": "abc"})
            async with vc.AsyncVllmClient(URL) as client:
                resp = await client.chat.completions().create(model="m").user_message("x") \
                    .response_format(City).send()
    assert resp.to_dict() == body and orjson.loads(resp.to_json()) == body
    d = resp.to_dict()
    d["choices"].clear()
    assert resp.raw["choices"]  # a copy
    assert ChatCompletionResponse.from_dict(resp.to_dict()) == resp
    back = pickle.loads(pickle.dumps(resp))
    assert back == resp and back.parsed == City("Oslo", 7) and back.status_code == 200
    assert back.headers["x-request-id"] == back.headers["X-Request-Id"] == "abc" and back.request_id == "abc"
    assert back.timing is not None and back.timing.total == resp.timing.total
    assert back.timing.output_tokens == 4 and back.usage == Usage(3, 4, 7)
    assert copy.deepcopy(resp).parsed == City("Oslo", 7)


def test_every_response_type_pickles_and_serializes() -> None:
    from vllm_client._endpoints.server import Model

    samples: list[Any] = [
        vc.CompletionResponse.from_dict({"id": "c", "choices": [{"index": 0, "text": "hi"}], "usage": usage(1, 1)}),
        vc.EmbeddingResponse.from_dict({"data": [{"index": 0, "embedding": [0.5, 1.0]}], "model": "e"}),
        vc.RerankResponse.from_dict({"results": [{"index": 0, "relevance_score": 0.5,
                                                  "document": {"text": "a"}}], "model": "r"}),
        vc.ScoreResponse.from_dict({"data": [{"index": 0, "score": 0.5}], "model": "s"}),
        vc.ClassifyResponse.from_dict({"data": [{"index": 0, "label": "a", "probs": [1.0], "num_classes": 1}]}),
        vc.PoolingResponse.from_dict({"data": [{"index": 0, "data": [1.0]}]}),
        vc.TokenizeResult.from_dict({"tokens": [1, 2], "count": 2}),
        vc.TranscriptionResponse.from_dict({"text": "hello"}),
        vc.ResponsesResponse.from_dict({"id": "resp_1", "status": "completed", "output": []}),
        vc.CohereEmbedResponse.from_dict({"id": "e", "embeddings": {"float": [[0.5]]}}),
        vc.Metrics([("vllm:num_requests_running", {}, 2.0)], ["vllm:num_requests_running"],
                   "vllm:num_requests_running 2\n"),
        vc.ModelList([Model.from_dict({"id": "m", "object": "model"})]),
    ]
    for r in samples:
        r._status = 200
        r._headers = {"X-Request-Id": "q"}
        back = pickle.loads(pickle.dumps(r))
        assert type(back) is type(r) and back.status_code == 200 and back.request_id == "q", type(r)
        assert back.to_dict() == r.to_dict() and orjson.loads(r.to_json()) == r.to_dict(), type(r)
        if hasattr(r, "raw"):
            assert r.to_dict() == r.raw
    assert list(pickle.loads(pickle.dumps(samples[-1]))) == list(samples[-1])
    metrics = pickle.loads(pickle.dumps(samples[-2]))
    assert metrics.num_requests_running == 2.0 and metrics.to_dict() == {"vllm:num_requests_running": 2.0}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_stream_events_and_errors_serialize(kind: str) -> None:
    chunks = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}\n\n',
              b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\ndata: [DONE]\n\n']
    client, _ = client_for(kind, MockResponse(body=chunks), MockResponse(body=chunks[:1]),
                           MockResponse(status=404, json={"message": "no such model", "type": "NotFoundError"}))
    stream = await call(kind, client.chat.completions().create(model="m").user_message("x"), "send_stream")
    events = await drain(kind, stream)
    dicts = [e.to_dict() for e in events]
    assert {"type": "content", "text": "Hel", "index": 0} in dicts
    done = [d for d in dicts if d["type"] == "done"][0]
    assert done["response"]["choices"][0]["message"]["content"] == "Hello"
    assert [d for d in dicts if d["type"] == "usage"][0]["usage"]["total_tokens"] == 3
    assert all(orjson.loads(e.to_json()) == e.to_dict() for e in events)
    assert pickle.loads(pickle.dumps(events[-1])).response == events[-1].response
    assert any(isinstance(e, ContentDelta) for e in events) and isinstance(events[-1], Done)
    call_event = ToolCallComplete(0, vc.ToolCall("c", "f", "{}"))
    assert call_event.to_dict() == {"type": "tool_call", "index": 0,
                                    "tool_call": {"id": "c", "type": "function", "function": {"name": "f",
                                                                                            "arguments": "{}"}}}
    assert UsageEvent(Usage(1, 2, 3)).to_dict()["usage"] == {"prompt_tokens": 1, "completion_tokens": 2,
                                                              "total_tokens": 3}
    stream = await call(kind, client.chat.completions().create(model="m").user_message("x"), "send_stream")
    with pytest.raises(StreamError) as se:
        await drain(kind, stream)
    d = se.value.to_dict()
    assert d["error"] == "StreamError" and d["partial"]["choices"][0]["message"]["content"] == "Hel"
    assert orjson.loads(se.value.to_json()) == d
    with pytest.raises(NotFoundError) as nf:
        await call(kind, client.chat.completions().create(model="m").user_message("x"), "send")
    d = nf.value.to_dict()
    assert d["status_code"] == 404 and d["body"]["message"] == "no such model" and d["error"] == "NotFoundError"
    assert orjson.loads(nf.value.to_json())["status_code"] == 404
    await close(kind, client)


# -- 6. whole-exchange usage ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_total_usage_sums_every_request(kind: str) -> None:
    tool_round = answer(None, calls=[("c1", "weather", '{"city": "Oslo"}')], u=usage(10, 5))
    client, _ = client_for(kind, tool_round, answer("done", u=usage(20, 7)))
    b = client.chat.completions().create(model="m").user_message("weather?").tools([weather])
    resp = await call(kind, b, "run_tools")
    assert resp.usage == Usage(20, 7, 27)  # the last response's own
    assert resp.total_usage == Usage(30, 12, 42)
    await close(kind, client)

    chunks = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":20,"completion_tokens":7,"total_tokens":27}}\n\ndata: [DONE]\n\n']
    tc = (b'data: {"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1",'
          b'"type":"function","function":{"name":"weather","arguments":"{\\"city\\": \\"Oslo\\"}"}}]},'
          b'"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}'
          b'\n\ndata: [DONE]\n\n')
    client, _ = client_for(kind, MockResponse(body=[tc]), MockResponse(body=chunks))
    b = client.chat.completions().create(model="m").user_message("weather?").tools([weather])
    events = await drain(kind, b.run_tools_stream())
    dones = [e for e in events if isinstance(e, Done)]
    assert [d.response.total_usage for d in dones] == [Usage(10, 5, 15), Usage(30, 12, 42)]
    assert dones[-1].response.usage == Usage(20, 7, 27)
    await close(kind, client)

    client, _ = client_for(kind, answer("not json", u=usage(5, 1)), answer('{"name": "Oslo", "population": 7}',
                                                                         u=usage(9, 3)))
    b = client.chat.completions().create(model="m").user_message("city?").response_format(City).parse_retries(1)
    resp = await call(kind, b, "send")
    assert resp.parsed == City("Oslo", 7) and resp.total_usage == Usage(14, 4, 18)
    await close(kind, client)

    client, _ = client_for(kind, answer("no", u=usage(5, 1)), answer("still no", u=usage(6, 1)))
    b = client.chat.completions().create(model="m").user_message("city?").response_format(City).parse_retries(1)
    with pytest.raises(OutputParseError) as pe:
        await call(kind, b, "send")
    assert pe.value.response.total_usage == Usage(11, 2, 13)
    await close(kind, client)

    client, _ = client_for(kind, answer("one", u=usage(1, 1)), tool_round, answer("two", u=usage(20, 7)))
    conv = client.chat.conversation(model="m")
    assert conv.total_usage is None
    await call(kind, conv, "send", "hi")
    assert conv.total_usage == Usage(1, 1, 2)
    await call(kind, conv, "send", "weather?", tools=[weather])
    assert conv.total_usage == Usage(31, 13, 44)
    await close(kind, client)


def test_usage_adds_up() -> None:
    assert Usage(1, 2, 3) + Usage(4, 5, 9, reasoning_tokens=2) == Usage(5, 7, 12, reasoning_tokens=2)
    assert (Usage(1, 2, 3, cached_tokens=1) + Usage(1, 1, 2, cached_tokens=2)).cached_tokens == 3
    assert (Usage(1, 1, 2) + Usage(1, 1, 2)).cached_tokens is None


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_pickled_client_keeps_its_connection_options(kind: str) -> None:
    client = make(kind, URL, proxy="http://127.0.0.1:3128", trust_env=False, max_retries=5)
    back = pickle.loads(pickle.dumps(client))
    assert back._connection == client._connection and back.max_retries == 5 and back is not client
    assert back._transport is not client._transport
    await close(kind, back)
    await close(kind, client)
