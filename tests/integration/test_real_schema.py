"""The live servers' own ``GET /openapi.json``, through ``client.check_server()`` (the library's
one schema check): every request field of the routes the SDK covers is a setter or listed in
docs/vllm-fields.md, every route is covered or listed, and the SDK sends no field the server
lacks. When vLLM adds a field or a route, this fails and names it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from vllm_client import VllmClient, _openapi

if TYPE_CHECKING:
    from .conftest import Target

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fixture", ["real_server", "embed_server", "classify_server"])
def test_live_schema_is_covered(fixture: str, request: pytest.FixtureRequest) -> None:
    target: Target = request.getfixturevalue(fixture)
    with VllmClient(target.base_url, timeout=60) as client:
        report = client.check_server()
    doc = report.openapi
    assert report.version
    assert _openapi.untyped_fields(doc, listed=False) == [], "fields with neither a setter nor a line in the doc"
    assert _openapi.uncovered_routes(doc, listed=False) == [], "routes neither covered nor listed in the doc"
    assert _openapi.unread_response_fields(doc) == []
