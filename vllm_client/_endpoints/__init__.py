"""One module per endpoint: its request body (setters), its response types, its sync and
async builders. Shared parts: ``base`` (the base builder, the senders, ``Creator``) and
``sampling`` (the sampling setters of every text-generating endpoint).

Adding an endpoint is adding a module here (a body class with ``_path``, ``_what`` and
``_parse``; a builder per client: body + ``Sender``/``AsyncSender``, or the stream
senders), one method on each client returning ``Creator(self, Builder)``, its public
names in ``vllm_client/__init__.py``, and its body class in ``_BODIES`` below when
``batch()`` should parse its ``{"url", "body"}`` requests.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["parsers"]

# (module, body class) of the endpoints whose batch requests are parsed into their response type
_BODIES = (("chat", "ChatBody"), ("completions", "CompletionBody"), ("embeddings", "EmbeddingBody"),
           ("rerank", "RerankBody"), ("score", "ScoreBody"))  # (not the root routes: a dict's url is under /v1)


@lru_cache(maxsize=1)
def parsers() -> dict[str, tuple[Callable[[dict[str, Any]], Any], str]]:
    """API path -> (parse, what) for every endpoint in ``_BODIES``."""
    import importlib

    out: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {}
    for module, name in _BODIES:
        cls = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        out[cls._path] = (cls._parse, cls._what)
    return out
