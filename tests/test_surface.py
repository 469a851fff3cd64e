"""Issue 23: the Responses API, batched chat, load / metrics, LoRA adapters and audio, on vLLM
0.32's recorded bodies (tests/wire/vllm032-surface) and on FakeVllmServer; both clients each time."""

from __future__ import annotations

import inspect
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vllm_client import (
    AsyncVllmClient,
    ContentDelta,
    Done,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    PreparedRequest,
    ResponseFunctionCall,
    ResponseMessage,
    ResponsesResponse,
    ServerEvent,
    StreamError,
    ToolCallComplete,
    ToolCallDelta,
    ToolLoopError,
    UsageEvent,
    VllmClient,
)
from vllm_client._endpoints.audio import encode_multipart
from vllm_client._endpoints.responses import ResponsesAccumulator
from vllm_client._endpoints.server import parse_metrics
from vllm_client.testing import FakeVllmServer
from vllm_client.testing._surface import _multipart

SURFACE = Path(__file__).parent / "wire" / "vllm032-surface"
CLIENTS = ["sync", "async"]


def body_of(name: str) -> bytes:
    return (SURFACE / f"{name}.body").read_bytes()


def request_of(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SURFACE / f"{name}.request.json").read_text())
    return data


def status_of(name: str) -> int:
    return int((SURFACE / f"{name}.headers").read_text().split()[1])


def recorded(name: str) -> MockResponse:
    """The recorded answer, split at random places when it is a stream."""
    body = body_of(name)
    ctype = "text/event-stream" if body.startswith(b"event:") else "application/json"
    if ctype == "application/json":
        return MockResponse(status_of(name), body=body, headers={"content-type": ctype})
    return MockResponse(status_of(name), body=random_split(body), headers={"content-type": ctype})


def random_split(body: bytes, seed: int = 0) -> list[bytes]:
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(body)), min(40, len(body) - 1)))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def client_for(kind: str, answer: Any, **kw: Any) -> tuple[Any, MockTransport]:
    handler = answer if callable(answer) else (lambda req: answer)
    transport = MockTransport(handler)
    cls = VllmClient if kind == "sync" else AsyncVllmClient
    return cls("http://test.local/v1", transport=transport, max_retries=0, **kw), transport


async def call(x: Any) -> Any:
    """A client call's result on either client (awaited when it is awaitable)."""
    return await x if inspect.isawaitable(x) else x


async def events_of(kind: str, stream: Any) -> list[Any]:
    if kind == "sync":
        return list(stream)
    return [e async for e in stream]


async def close(client: Any) -> None:
    await call(client.close())


# -- Responses API: send ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_send_sends_the_recorded_body_and_reads_the_recorded_answer(kind: str) -> None:
    c, t = client_for(kind, recorded("responses-basic"))
    b = c.responses().create().model("tiny-llama").input("Hello").max_output_tokens(8).temperature(0).seed(1)
    r = await call(b.send())
    assert t.requests[0].url == "http://test.local/v1/responses"
    assert t.requests[0].json() == request_of("responses-basic")
    assert isinstance(r, ResponsesResponse)
    assert (r.id, r.status, r.output_text) == ("resp_864cb53954f0dd71", "incomplete", "ogTheke seTheke seThe")
    assert r.incomplete_details == {"reason": "max_output_tokens"} and r.finish_reason == "length"
    assert isinstance(r.output[0], ResponseMessage) and r.output[0].role == "assistant"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (15, 8, 23)
    assert r.tool_calls == [] and r.reasoning_text is None and r.parsed is None
    await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_instructions_and_message_input(kind: str) -> None:
    c, t = client_for(kind, recorded("responses-instructions-messages"))
    b = (c.responses().create().model("tiny-llama").instructions("Be terse.")
         .input([{"role": "user", "content": "Hi"}]).max_output_tokens(6).temperature(0))
    r = await call(b.send())
    assert t.requests[0].json() == request_of("responses-instructions-messages")
    assert r.output_text == "The seThe seThe se"
    await close(c)


def get_weather(city: str) -> str:
    """Weather"""
    return f"It is sunny in {city}."


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_function_tools_are_sent_flat_and_calls_come_back_typed(kind: str) -> None:
    c, t = client_for(kind, recorded("responses-tool"))
    b = (c.responses().create().model("tiny-llama").input("Weather in Paris?").tools([get_weather])
         .tool_choice("required").max_output_tokens(40).temperature(0))
    r = await call(b.send())
    assert t.requests[0].json() == request_of("responses-tool")  # the Responses tool shape, from a function
    (call_item,) = r.output
    assert isinstance(call_item, ResponseFunctionCall) and call_item.call_id == "chatcmpl-tool-aecde183c5b728e4"
    (tc,) = r.tool_calls
    assert (tc.id, tc.name, tc.arguments_json()) == ("chatcmpl-tool-aecde183c5b728e4", "get_weather",
                                                     {"city": "Paris"})
    assert r.finish_reason == "tool_calls" and r.output_text == ""
    await close(c)


@dataclass
class Ok:
    ok: bool


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("fmt", ["dict", "type"])
async def test_responses_text_format_schema_dict_or_type(kind: str, fmt: str) -> None:
    c, t = client_for(kind, recorded("responses-json-schema"))
    schema = request_of("responses-json-schema")["text"]["format"]["schema"]
    b = c.responses().create().model("tiny-llama").input("JSON please").max_output_tokens(30)
    b.text_format(schema if fmt == "dict" else Ok, name="w")
    r = await call(b.send())
    sent = t.requests[0].json()["text"]["format"]
    assert sent["type"] == "json_schema" and sent["name"] == "w" and sent["strict"] is True
    assert sent["schema"]["properties"] == {"ok": {"type": "boolean"}} and sent["schema"]["required"] == ["ok"]
    if fmt == "dict":
        assert sent == request_of("responses-json-schema")["text"]["format"] and r.parsed is None
    else:
        assert r.parsed == Ok(ok=True)
    assert json.loads(r.output_text) == {"ok": True}
    await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_errors_are_typed(kind: str) -> None:
    c, _ = client_for(kind, recorded("responses-bad-model"))
    with pytest.raises(NotFoundError) as e:
        await call(c.responses().create().model("nope").input("Hello").send())
    assert e.value.message == "The model `nope` does not exist. Valid aliases: tiny-llama."
    await close(c)
    for what in ("retrieve", "cancel"):
        c, t = client_for(kind, recorded(f"responses-{what}"))
        with pytest.raises(NotFoundError) as e:
            await call(getattr(c.responses(), what)("resp_b16a79b61691e428"))
        assert "Response with id 'resp_b16a79b61691e428' not found." in str(e.value)
        req = t.requests[0]
        assert (req.method, req.url) == (("GET", "http://test.local/v1/responses/resp_b16a79b61691e428")
                                         if what == "retrieve" else
                                         ("POST", "http://test.local/v1/responses/resp_b16a79b61691e428/cancel"))
        await close(c)


def test_responses_bad_input_is_refused_before_sending() -> None:
    c, t = client_for("sync", MockResponse(500))
    b = c.responses().create()
    with pytest.raises(InvalidRequestError, match="no input"):
        b.send()
    for bad in (3, [], ["text"], [{"content": "no role or type"}]):
        with pytest.raises(InvalidRequestError):
            b.input(bad)
    with pytest.raises(InvalidRequestError):
        b.max_output_tokens(0)
    with pytest.raises(InvalidRequestError):
        b.input("x").temperature(float("nan"))
    with pytest.raises(InvalidRequestError):
        c.responses().retrieve("")
    assert t.requests == []
    c.close()


# -- Responses API: streams -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_responses_stream_maps_named_events_onto_chat_events(kind: str, seed: int) -> None:
    body = body_of("responses-stream")
    c, t = client_for(kind, MockResponse(200, body=random_split(body, seed)))
    b = c.responses().create().model("tiny-llama").input("Hello").max_output_tokens(8).temperature(0).seed(1)
    events = await events_of(kind, await call(b.send_stream()))
    assert t.requests[0].json() == request_of("responses-stream")
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "ogTheke seTheke seThe"
    names = [e.event for e in events if isinstance(e, ServerEvent)]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert "response.output_text.delta" not in names and "response.completed" not in names
    assert isinstance(events[-2], UsageEvent) and isinstance(events[-1], Done)
    final = events[-1].response
    assert isinstance(final, ResponsesResponse) and final.id == "resp_bb229500e08c378a"
    assert final.output_text == "ogTheke seTheke seThe" and events[-1].finish_reason == "length"
    await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_stream_of_a_function_call(kind: str) -> None:
    c, _ = client_for(kind, recorded("responses-tool-stream"))
    b = c.responses().create().model("tiny-llama").input("Weather in Paris?").tools([get_weather])
    events = await events_of(kind, await call(b.send_stream()))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert (deltas[0].id, deltas[0].name) == ("chatcmpl-tool-935cf85d395dc28a", "get_weather")
    assert "".join(d.arguments for d in deltas) == '{"city": "Paris"}'
    (done_call,) = [e for e in events if isinstance(e, ToolCallComplete)]
    assert done_call.tool_call.arguments_json() == {"city": "Paris"}
    assert events[-1].response.tool_calls == [done_call.tool_call]
    await close(c)


def _cut_before_completed() -> bytes:
    body = body_of("responses-stream")
    return body[: body.index(b"event: response.output_text.done")]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_stream_cut_before_completed_raises_with_the_text_so_far(kind: str) -> None:
    c, _ = client_for(kind, MockResponse(200, body=random_split(_cut_before_completed())))
    stream = await call(c.responses().create().input("Hello").model("m").send_stream())
    with pytest.raises(StreamError, match="response.completed") as e:
        await events_of(kind, stream)
    assert isinstance(e.value.partial, ResponsesResponse)
    assert e.value.partial.output_text == "ogTheke seTheke seThe" and e.value.partial.status == "in_progress"
    await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("ending", ["error", "failed"])
async def test_responses_stream_error_events_raise(kind: str, ending: str) -> None:
    if ending == "error":
        tail = (b'event: error\ndata: {"type":"error","code":"500","message":"engine died",'
                b'"param":null,"sequence_number":9}\n\n')
    else:
        tail = (b'event: response.failed\ndata: {"type":"response.failed","response":{"id":"r","status":"failed",'
                b'"error":{"code":"server_error","message":"engine died"},"output":[]}}\n\n')
    c, _ = client_for(kind, MockResponse(200, body=[_cut_before_completed(), tail]))
    stream = await call(c.responses().create().input("Hello").model("m").send_stream())
    with pytest.raises(StreamError) as e:
        await events_of(kind, stream)
    assert e.value.message == "engine died" and e.value.partial.output_text == "ogTheke seTheke seThe"
    await close(c)


def test_accumulator_unnamed_events_use_their_type() -> None:
    """Servers that send the Responses events as plain ``data:`` lines (the ``type`` names them)."""
    acc = ResponsesAccumulator()
    body = body_of("responses-stream").replace(b"event: ", b": was ")  # comments: only data lines remain
    events = [e for piece in random_split(body, 3) for e in acc.feed(piece)] + acc.finish()
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "ogTheke seTheke seThe"
    assert isinstance(events[-1], Done)


# -- Responses API: tool loop and FakeVllmServer ----------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_run_tools_sends_function_call_outputs_back(kind: str) -> None:
    with FakeVllmServer() as server:
        c = (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=0)
        b = c.responses().create().input("Weather in Paris?").tools([get_weather]).tool_choice("required")
        r = await call(b.run_tools())
        assert r.output_text.startswith("Hello! I am a fake vLLM server.") and r.tool_calls == []
        sent = [q.body for q in server.requests if q.path == "/v1/responses"]
        assert len(sent) == 2
        call_item, output_item = sent[1]["input"][1:]
        assert call_item["type"] == "function_call" and call_item["name"] == "get_weather"
        assert output_item == {"type": "function_call_output", "call_id": call_item["call_id"],
                               "output": "It is sunny in Paris."} or output_item["output"].startswith("error:")
        with pytest.raises(ToolLoopError):
            await call(b.run_tools(max_rounds=0))
        await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_responses_run_tools_stream_yields_every_round_and_sends_outputs_back(kind: str) -> None:
    with FakeVllmServer() as server:
        server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
        server.reply(content="It is sunny.")
        c = (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=0)
        b = c.responses().create().input("Weather in Paris?").tools([get_weather])
        events = await events_of(kind, b.run_tools_stream())
        dones = [e for e in events if isinstance(e, Done)]
        assert len(dones) == 2 and events[-1] is dones[-1]  # a Done per round, the final answer's last
        assert [e.tool_call.name for e in events if isinstance(e, ToolCallComplete)] == ["get_weather"]
        assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "It is sunny."
        assert isinstance(dones[-1].response, ResponsesResponse) and dones[-1].response.tool_calls == []
        sent = [q.body for q in server.requests if q.path == "/v1/responses"]
        assert len(sent) == 2 and all(s["stream"] is True for s in sent)
        call_item, output_item = sent[1]["input"][1:]
        assert call_item["type"] == "function_call" and call_item["name"] == "get_weather"
        assert output_item == {"type": "function_call_output", "call_id": call_item["call_id"],
                               "output": "It is sunny in Paris."}
        server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        with pytest.raises(ToolLoopError):
            await events_of(kind, b.run_tools_stream(max_rounds=0))
        await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_fake_server_responses_stream_store_and_retrieve(kind: str) -> None:
    with FakeVllmServer() as server:
        c = (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=0)
        server.reply(content="Paris is sunny.", reasoning="Think first.")
        events = await events_of(kind, await call(c.responses().create().input("Hi").send_stream()))
        final = events[-1].response
        assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Paris is sunny."
        assert final.reasoning_text == "Think first." and final.output_text == "Paris is sunny."
        again = await call(c.responses().retrieve(final.id))
        assert again.output_text == "Paris is sunny."
        with pytest.raises(NotFoundError):
            await call(c.responses().retrieve("resp_unknown"))
        await close(c)


# -- batched chat -----------------------------------------------------------------------------------


CONVS = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Yo"}]]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batched_chat_one_request_one_choice_per_conversation(kind: str) -> None:
    c, t = client_for(kind, recorded("chat-batch"))
    b = c.chat.completions().create().model("tiny-llama").conversations(CONVS).max_tokens(4).temperature(0)
    r = await call(b.send())
    assert t.requests[0].url == "http://test.local/v1/chat/completions/batch"
    assert t.requests[0].json() == request_of("chat-batch")
    assert [ch.content for ch in r.choices] == ["The seTheke", "ogTheke long"]
    await close(c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batched_chat_refuses_streaming_and_explains_a_missing_route(kind: str) -> None:
    c, t = client_for(kind, MockResponse(404, body=b'{"detail":"Not Found"}'))
    b = c.chat.completions().create().model("m").conversations(CONVS)
    with pytest.raises(InvalidRequestError, match="cannot be streamed"):
        await call(b.send_stream())
    with pytest.raises(InvalidRequestError, match="cannot be streamed"):
        await call(b.stream(True).send())
    assert t.requests == []
    with pytest.raises(NotFoundError, match="does not serve this route.*client.batch"):
        await call(b.stream(False).send())
    await close(c)


def test_batched_chat_bad_conversations_and_switching_back() -> None:
    c, t = client_for("sync", MockResponse(200, json={"choices": []}))
    b = c.chat.completions().create().model("m")
    for bad in ([], [[]], [{"role": "user", "content": "not a list"}], "x"):
        with pytest.raises(InvalidRequestError):
            b.conversations(bad)
    b.conversations(CONVS)
    with pytest.raises(InvalidRequestError):
        b.user_message("appended to which one?")
    b.messages(CONVS[0]).send()  # back to a single conversation
    assert t.requests[-1].url == "http://test.local/v1/chat/completions"
    c.close()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_fake_server_batched_chat(kind: str) -> None:
    with FakeVllmServer() as server:
        c = (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=0)
        r = await call(c.chat.completions().create().conversations(CONVS).send())
        assert [ch.content for ch in r.choices] == ["Hello! I am a fake vLLM server. You said: Hi",
                                                    "Hello! I am a fake vLLM server. You said: Yo"]
        assert [ch.index for ch in r.choices] == [0, 1]
        await close(c)


# -- load, metrics, LoRA ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_load_and_metrics_on_the_recorded_bodies(kind: str) -> None:
    def answer(req: PreparedRequest) -> MockResponse:
        name = "load" if req.url.endswith("/load") else "metrics"
        return MockResponse(200, body=body_of(name))

    c, t = client_for(kind, answer)
    assert await call(c.load()) == 0
    m = await call(c.metrics())
    assert [r.url for r in t.requests] == ["http://test.local/load", "http://test.local/metrics"]
    assert (m.num_requests_running, m.num_requests_waiting, m.kv_cache_usage_perc) == (0.0, 0.0, 0.0)
    assert m['vllm:num_requests_running{engine="0",model_name="tiny-llama"}'] == 0.0
    assert m.find("python_info")[0][0]["version"] == "3.11.7"
    assert m["process_virtual_memory_bytes"] == 2.040459264e09
    await close(c)


def test_metrics_parser_labels_escapes_and_special_values() -> None:
    m = parse_metrics('# HELP x y\nfoo{a="1",b="q\\"uo\\\\te"} +Inf 1700000000\nbar NaN\nbaz{le="0.5"} -2e3\n')
    assert m.find("foo")[0][0] == {"a": "1", "b": 'q"uo\\te'} and m.total("foo") == float("inf")
    assert m["baz{le=\"0.5\"}"] == -2000.0 and m.total("bar") != m.total("bar")  # NaN
    assert m.total("missing") is None and m.num_requests_running is None


def test_metrics_parser_agrees_with_prometheus_client() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    text = body_of("metrics").decode()
    ours = parse_metrics(text)
    theirs = [(s.name, s.labels, s.value) for fam in parser.text_string_to_metric_families(text) for s in fam.samples]
    assert len(theirs) == len(ours.samples)
    assert sorted(map(repr, theirs)) == sorted(map(repr, ours.samples))


@pytest.mark.parametrize("kind", CLIENTS)
async def test_lora_adapters_load_list_unload(kind: str) -> None:
    with FakeVllmServer() as server:
        c = (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=0)
        msg = await call(c.load_lora_adapter("sql-lora", "/adapters/sql"))
        assert "added successfully" in msg
        assert server.requests[-1].body == {"lora_name": "sql-lora", "lora_path": "/adapters/sql"}
        models = await call(c.models())
        assert [(m.id, m.parent, m.root) for m in models][1] == ("sql-lora", server.model, "/adapters/sql")
        assert "removed successfully" in await call(c.unload_lora_adapter("sql-lora"))
        with pytest.raises(NotFoundError, match="cannot be found"):
            await call(c.unload_lora_adapter("sql-lora"))
        await close(c)
    c, _ = client_for(kind, MockResponse(404, body=b'{"detail":"Not Found"}'))
    with pytest.raises(NotFoundError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
        await call(c.load_lora_adapter("a", "/p"))
    await close(c)


# -- audio --------------------------------------------------------------------------------------


WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)


def test_multipart_body_is_parsed_back_exactly() -> None:
    data, ctype = encode_multipart({"model": "whisper", "temperature": 0.2, "stream": True,
                                    "timestamp_granularities": ["word", "segment"]},
                                   [("file", 'a "b".wav', "audio/wav", WAV + b"\r\n--x")])
    fields, files = _multipart({"content-type": ctype}, data)  # type: ignore[arg-type]
    assert fields == {"model": "whisper", "temperature": "0.2", "stream": "true",
                      "timestamp_granularities[]": "segment"}  # (the last of a repeated field)
    assert files["file"] == ("a %22b%22.wav", WAV + b"\r\n--x")
    assert data.count(b'name="timestamp_granularities[]"') == 2


@pytest.mark.parametrize("kind", CLIENTS)
async def test_audio_transcription_and_translation(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "hello.wav"
    path.write_bytes(WAV)
    with FakeVllmServer() as server:
        c = (VllmClient if kind == "sync" else AsyncVllmClient)(server.url, max_retries=0)
        r = await call(c.audio.transcriptions().create().file(path).model("whisper").language("en")
                       .prompt("greeting").send())
        req = server.requests[-1]
        assert req.path == "/v1/audio/transcriptions" and req.headers["content-type"].startswith("multipart/")
        assert r.text == f"Fake transcription of hello.wav ({len(WAV)} bytes)."
        v = await call(c.audio.transcriptions().create().file(WAV).response_format("verbose_json").send())
        assert v.language == "en" and v.segments and v.segments[0]["text"] == v.text
        text = await call(c.audio.translations().create().file(WAV).model("w").response_format("text").send())
        assert text.text == f"Fake translation of audio.wav ({len(WAV)} bytes)."
        stream = await call(c.audio.transcriptions().create().file(WAV).model("w").send_stream())
        events = await events_of(kind, stream)
        assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == \
            f"Fake transcription of audio.wav ({len(WAV)} bytes)."
        assert events[-1].response.text == events[-1].response.raw["choices"][0]["message"]["content"]
        await close(c)


def test_audio_bad_input_is_refused_before_sending(tmp_path: Path) -> None:
    c, t = client_for("sync", MockResponse(500))
    b = c.audio.transcriptions().create()
    with pytest.raises(InvalidRequestError, match="no audio"):
        b.send()
    for bad in (b"", str(tmp_path / "missing.wav"), 3):
        with pytest.raises(InvalidRequestError):
            b.file(bad)
    with pytest.raises(InvalidRequestError):
        b.response_format("mp3")
    assert t.requests == []
    c.close()


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_responses_and_server_info(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_client._cli import main

    with FakeVllmServer() as server:
        server.reply(content="Paris.")
        assert main(["responses", "Capital", "of", "France?", "--base-url", server.url, "--max-tokens", "5"]) == 0
        assert capsys.readouterr().out == "Paris.\n"
        assert server.requests[-1].body == {"model": "fake-model", "input": "Capital of France?",
                                            "max_output_tokens": 5, "stream": True}
        assert main(["server-info", "--base-url", server.url]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1:] == ["version: 0.33.0+fake", "model: fake-model, max_model_len 4096",
                           "load: 0 requests in flight", "num_requests_running: 0.0",
                           "num_requests_waiting: 0.0", "kv_cache_usage_perc: 0.0"]
