"""The schema check (``vllm_client._openapi``, behind ``client.check_server()``) on the recorded
``/openapi.json`` of vLLM 0.32, 0.33 and 0.34, each runner: every request field of every covered
route is a setter or listed, every route is covered or listed, no covered route disappears,
response fields are read or listed; and the check fails when a copy loses or gains one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vllm_client import _openapi as o
from vllm_client._endpoints.chat import BATCH_CHAT_FIELDS

from ._schema_coverage import RELEASES, RUNNERS, covered, documented, expected_routes, load

ALL = [(r, n) for r in RELEASES for n in RUNNERS]
ids = [f"{r}-{n}" for r, n in ALL]


@pytest.mark.parametrize(("release", "runner"), ALL, ids=ids)
def test_every_request_field_is_a_setter_or_listed(release: str, runner: str) -> None:
    assert o.untyped_fields(load(release, runner), listed=False) == []


@pytest.mark.parametrize(("release", "runner"), ALL, ids=ids)
def test_every_route_is_covered_or_listed(release: str, runner: str) -> None:
    assert o.uncovered_routes(load(release, runner), listed=False) == []


@pytest.mark.parametrize(("release", "runner"), ALL, ids=ids)
def test_no_covered_route_disappears(release: str, runner: str) -> None:
    assert o.missing_routes(load(release, runner), expected_routes(release, runner)) == []


@pytest.mark.parametrize(("release", "runner"), ALL, ids=ids)
def test_every_response_field_is_read_or_listed(release: str, runner: str) -> None:
    assert o.unread_response_fields(load(release, runner)) == []


def test_the_checks_walk_every_request_model() -> None:
    """Responses, tokenize and batch chat are walked too: each has its request model(s)."""
    doc = load("034", "generate")
    for route in ("/v1/responses", "/tokenize", "/v1/chat/completions/batch", "/v1/decisions", "/detokenize"):
        assert o.request_fields(doc, route), route
    assert set(o.request_models(doc, "/tokenize")) == {"TokenizeCompletionRequest", "TokenizeChatRequest"}
    assert "/v1/embeddings" in covered(load("034", "token_embed"))
    assert o.request_models(load("034", "token_embed"), "/v1/embeddings") == ["TokenEmbeddingRequest"]


def test_recordings_cover_every_builder_route() -> None:
    served = {r for rel in RELEASES for n in RUNNERS for r in load(rel, n)["paths"]}
    assert set(o.BUILDERS) <= served


# -- the check fails when a copy changes ---------------------------------------


def test_a_removed_route_fails_the_check() -> None:
    doc = load("034", "generate")
    del doc["paths"]["/v1/decisions"]
    del doc["paths"]["/tokenize"]
    assert o.missing_routes(doc, expected_routes("034", "generate")) == ["/tokenize", "/v1/decisions"]


def test_a_removed_field_fails_the_check() -> None:
    """A field the SDK sends that the server's schema lost is named (the report's 'rejected')."""
    doc = load("034", "generate")
    assert o.rejected_fields(doc) == []
    del doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]["return_weight_versions"]
    del doc["components"]["schemas"]["ResponsesRequest"]["properties"]["thinking_token_budget"]
    assert o.rejected_fields(doc) == ["/v1/chat/completions return_weight_versions",
                                      "/v1/responses thinking_token_budget"]


def test_a_new_field_or_route_fails_the_check() -> None:
    doc = load("034", "embed")
    doc["components"]["schemas"]["RerankRequest"]["properties"]["brand_new_knob"] = {"type": "boolean"}
    doc["components"]["schemas"]["TokenizeChatRequest"]["properties"]["tokenize_knob"] = {"type": "boolean"}
    doc["paths"]["/v1/brand_new_route"] = {"post": {}}
    assert o.untyped_fields(doc, listed=False) == ["/tokenize tokenize_knob", "/v1/rerank brand_new_knob"]
    assert o.uncovered_routes(doc, listed=False) == ["/v1/brand_new_route"]


def test_a_new_response_field_fails_the_check() -> None:
    doc = load("033", "generate")
    doc["components"]["schemas"]["ChatCompletionResponseChoice"]["properties"]["brand_new"] = {}
    doc["components"]["schemas"]["ScoreAnswer"]["properties"]["margin"] = {}
    assert o.unread_response_fields(doc) == ["ChatCompletionResponseChoice.brand_new", "ScoreAnswer.margin"]


def test_a_batch_route_field_must_be_a_setter() -> None:
    doc = load("034", "generate")
    doc["components"]["schemas"]["BatchChatCompletionRequest"]["properties"]["tools"] = {}
    assert o.untyped_fields(doc, listed=False) == ["/v1/chat/completions/batch tools"]


# -- the lists are true and agree with the recordings and the doc ---------------


def test_known_fields_are_the_recorded_fields_the_sdk_types() -> None:
    """KNOWN_FIELDS (what the report calls rejected when a server lacks it) is exactly the
    recorded releases' request fields that the SDK types, route by route."""
    docs = [load(r, n) for r in RELEASES for n in RUNNERS]
    want: dict[str, frozenset[str]] = {}
    for route in set(o.BUILDERS) | set(o.METHODS):
        fields = set().union(*(o.request_fields(d, route) for d in docs)) & (o.typed_fields(route) or set())
        if fields:
            want[route] = frozenset(fields)
    assert o.KNOWN_FIELDS == want


def test_batch_chat_fields_are_the_recorded_ones() -> None:
    fields = set().union(*(o.request_fields(load(r, "generate"), "/v1/chat/completions/batch") for r in RELEASES))
    assert fields == BATCH_CHAT_FIELDS


def test_a_token_embed_server_takes_no_chat_input() -> None:
    """The token_embed runner's embeddings request (0.33+) has no messages: the report says so."""
    assert o.rejected_fields(load("034", "token_embed")) == [
        f"/v1/embeddings {f}" for f in ("add_generation_prompt", "chat_template", "chat_template_kwargs",
                                        "continue_final_message", "media_io_kwargs", "messages")]


def test_listed_fields_have_no_setter_and_are_real() -> None:
    docs = [load(r, n) for r in RELEASES for n in RUNNERS]
    for route, fields in o.EXTRA_FIELDS.items():
        typed = o.typed_fields(route)
        assert typed is not None, route
        served = set().union(*(o.request_fields(d, route) for d in docs))
        for f in fields:
            assert f in served, (route, f)
            assert f not in typed, (route, f)


def test_the_doc_lists_what_the_library_lists() -> None:
    doc = documented()
    assert doc["covered"] == set(o.BUILDERS) | set(o.METHODS)
    assert doc["fields"] == {(r, f) for r, fs in o.EXTRA_FIELDS.items() for f in fs}
    assert doc["routes"] == {r: how for r, (how, _) in o.ROUTES_LEFT.items()}
    assert doc["response"] == {(s, f) for s, (_, listed) in o.RESPONSE_MODELS.items() for f in listed}


def test_the_doc_names_routes_behind_flags() -> None:
    routes = documented()["routes"]
    for r in ("/v1/realtime", "/v1/chat/completions/render", "/derender", "/tokenizer_info", "/start_profile",
              "/sleep", "/wake_up", "/v1/fault_tolerance/status", "/checkpoint/save", "/update_weights"):
        assert r in routes, r


def test_check_openapi_report() -> None:
    report = o.check_openapi(load("034", "generate"), "0.34.0")
    assert report.version == "0.34.0" and report.ok
    assert "/v1/messages" in report.untyped_routes
    assert "/v1/responses prompt" in report.untyped_fields
    assert report.lines()[0] == "version: 0.34.0"
    old: dict[str, Any] = json.loads(json.dumps(load("032", "generate")))
    report = o.check_openapi(old, "0.32.0")
    assert not report.ok
    assert "/v1/chat/completions return_weight_versions" in report.rejected_fields
