"""The live servers' own ``GET /openapi.json``: every request field of the routes the SDK
covers is a setter or listed in docs/vllm-fields.md, and every route is covered or listed.
When vLLM adds a field or a route, this fails and names it."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from .._schema_coverage import uncovered_fields, uncovered_routes

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration


def openapi(target: Target) -> dict[str, Any]:
    with urllib.request.urlopen(f"{target.root_url}/openapi.json", timeout=60) as r:
        data: dict[str, Any] = json.load(r)
    return data


@pytest.mark.parametrize("fixture", ["real_server", "embed_server", "classify_server"])
def test_live_schema_is_covered(fixture: str, request: pytest.FixtureRequest) -> None:
    target: Target = request.getfixturevalue(fixture)
    doc = openapi(target)
    assert uncovered_fields(doc) == [], "request fields with neither a setter nor a line in docs/vllm-fields.md"
    assert uncovered_routes(doc) == [], "routes neither covered nor listed in docs/vllm-fields.md"
