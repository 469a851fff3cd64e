"""What a vLLM ``/openapi.json`` asks of the SDK: every request field of the routes it covers
is a setter on that route's builder or listed in docs/vllm-fields.md (under a heading that
mentions ``extra()``), and every route is covered or listed there. Used by the unit test on
the recorded schemas and by the integration test on the live servers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vllm_client._endpoints.chat import ChatBody
from vllm_client._endpoints.classify import ClassifyBody
from vllm_client._endpoints.cohere_embed import CohereEmbedBody
from vllm_client._endpoints.completions import CompletionBody
from vllm_client._endpoints.embeddings import EmbeddingBody
from vllm_client._endpoints.pooling import PoolingBody
from vllm_client._endpoints.rerank import RerankBody
from vllm_client._endpoints.score import ScoreBody

DOC = Path(__file__).resolve().parent.parent / "docs" / "vllm-fields.md"

# route -> the body class whose setters must cover its request schema(s)
BUILDERS: dict[str, type] = {
    "/v1/chat/completions": ChatBody,
    "/v1/completions": CompletionBody,
    "/v1/embeddings": EmbeddingBody,
    "/v1/rerank": RerankBody,
    "/v1/score": ScoreBody,
    "/classify": ClassifyBody,
    "/pooling": PoolingBody,
    "/v2/embed": CohereEmbedBody,
}
# routes the SDK covers whose request fields this check does not (yet) walk: client methods
# running flows, and builders whose fields are listed elsewhere (the Responses API's in README)
FLOWS = {"/v1/models", "/health", "/version", "/tokenize", "/detokenize", "/load", "/metrics",
         "/v1/responses", "/v1/responses/{response_id}", "/v1/responses/{response_id}/cancel",
         "/v1/chat/completions/batch"}


def _table_names(section: str) -> set[str]:
    """The backticked names in the first column of the section's table rows."""
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def documented() -> tuple[set[str], set[str]]:
    """(fields left to extra(), routes left out) as docs/vllm-fields.md lists them."""
    text = DOC.read_text()
    sections = re.split(r"^#+ ", text, flags=re.M)
    fields: set[str] = set()
    routes: set[str] = set()
    for s in sections:
        heading = s.split("\n", 1)[0]
        if "extra()" in heading:
            fields |= _table_names(s)
        elif "Routes" in heading:
            routes |= _table_names(s)
    return fields, routes


def _request_schemas(openapi: dict[str, Any], route: str) -> list[str]:
    body = openapi["paths"][route]["post"].get("requestBody") or {}
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    return [ref["$ref"].rsplit("/", 1)[1] for ref in schema.get("anyOf", [schema]) if "$ref" in ref]


def uncovered_fields(openapi: dict[str, Any]) -> list[str]:
    """``route schema.field`` for every request field with neither a setter nor a doc line."""
    left_to_extra, _ = documented()
    schemas = openapi["components"]["schemas"]
    out = []
    for route, cls in BUILDERS.items():
        if route not in openapi["paths"]:
            continue
        names = _request_schemas(openapi, route)
        assert names, f"{route}: no request schema in the openapi document"
        for name in names:
            for field in schemas[name].get("properties", {}):
                if not callable(getattr(cls, field, None)) and field not in left_to_extra:
                    out.append(f"{route} {name}.{field}")
    return out


def uncovered_routes(openapi: dict[str, Any]) -> list[str]:
    """Routes the server serves that the SDK neither covers nor lists as left out."""
    _, left_out = documented()
    return sorted(p for p in openapi["paths"] if p not in BUILDERS and p not in FLOWS and p not in left_out)
