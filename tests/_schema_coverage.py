"""The recorded ``/openapi.json`` of every vLLM release and runner (tests/wire/openapi), and what
docs/vllm-fields.md lists. The checks themselves are library code (``vllm_client._openapi``,
behind ``client.check_server()``); the unit test runs them on the recordings, the integration
test on the live servers."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from vllm_client import _openapi

DOC = Path(__file__).resolve().parent.parent / "docs" / "vllm-fields.md"
OPENAPI = Path(__file__).parent / "wire" / "openapi"
RELEASES = ["032", "033", "034"]
RUNNERS = ["generate", "embed", "classify", "token_embed"]
# covered routes a runner stopped serving, on purpose, from a release on (else the check fails)
REMOVED: dict[tuple[str, str], dict[str, str]] = {
    ("token_embed", "033"): {"/v2/embed": "a token_embed server no longer serves Cohere's /v2/embed"},
}


@cache
def _text(release: str, runner: str) -> str:
    return (OPENAPI / f"vllm{release}-{runner}.json").read_text()


def load(release: str, runner: str) -> dict[str, Any]:
    """A fresh copy of a recorded document (tests may change it)."""
    data: dict[str, Any] = json.loads(_text(release, runner))
    return data


def covered(doc: dict[str, Any]) -> set[str]:
    """The routes of a document the SDK covers."""
    return {r for r in doc["paths"] if _openapi.typed_fields(r) is not None}


def expected_routes(release: str, runner: str) -> set[str]:
    """The covered routes the runner served in the release before (less the listed removals)."""
    i = RELEASES.index(release)
    if i == 0:
        return covered(load(release, runner))
    return covered(load(RELEASES[i - 1], runner)) - set(REMOVED.get((runner, release), {}))


def _rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # no header


def _ticks(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented() -> dict[str, Any]:
    """The doc's tables: ``covered`` routes, ``fields`` {(route, field)}, ``routes`` {route: how}."""
    sections = re.split(r"^## ", DOC.read_text(), flags=re.M)
    out: dict[str, Any] = {"covered": set(), "fields": set(), "routes": {}, "response": set()}
    for s in sections:
        heading = s.split("\n", 1)[0]
        for row in _rows(s):
            if heading.startswith("Routes the SDK covers"):
                out["covered"].update(_ticks(row[0]))
            elif heading.startswith("Request fields left to"):
                out["fields"].update((route, f) for f in _ticks(row[0]) for route in _ticks(row[1]))
            elif heading.startswith("Routes the SDK does not type"):
                for route in _ticks(row[0]):
                    out["routes"][route] = row[1]
            elif heading.startswith("Response fields"):
                out["response"].update((schema, f) for schema in _ticks(row[0]) for f in _ticks(row[1]))
    return out
