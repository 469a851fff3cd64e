"""Every request field of vLLM 0.32's protocol (the recorded /openapi.json of each runner) is a
setter or listed as left to extra() in docs/vllm-fields.md; every route is covered or listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ._schema_coverage import BUILDERS, documented, uncovered_fields, uncovered_routes

OPENAPI = Path(__file__).parent / "wire" / "openapi"
RUNNERS = ["generate", "embed", "classify"]


def load(runner: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OPENAPI / f"vllm032-{runner}.json").read_text())
    return data


@pytest.mark.parametrize("runner", RUNNERS)
def test_every_request_field_is_a_setter_or_documented(runner: str) -> None:
    assert uncovered_fields(load(runner)) == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_every_route_is_covered_or_documented(runner: str) -> None:
    assert uncovered_routes(load(runner)) == []


def test_the_recorded_schemas_cover_every_builder() -> None:
    served = set().union(*(load(r)["paths"] for r in RUNNERS))
    assert set(BUILDERS) <= served


def test_a_new_field_fails_the_check() -> None:
    """What CI says when vLLM adds a field: the check names it."""
    doc = load("embed")
    doc["components"]["schemas"]["RerankRequest"]["properties"]["brand_new_knob"] = {"type": "boolean"}
    doc["paths"]["/v1/brand_new_route"] = {"post": {}}
    assert uncovered_fields(doc) == ["/v1/rerank RerankRequest.brand_new_knob"]
    assert uncovered_routes(doc) == ["/v1/brand_new_route"]


def test_documented_fields_have_no_setter_and_are_real() -> None:
    """The list stays short and true: no listed field has a setter, each is in some schema."""
    fields, routes = documented()
    assert fields and routes
    all_fields = {f for r in RUNNERS for s in load(r)["components"]["schemas"].values()
                  for f in s.get("properties", {})}
    for f in fields:
        assert f in all_fields, f
        assert not any(callable(getattr(cls, f, None)) for cls in BUILDERS.values()), f
