"""Testing support: ``FakeVllmServer``, a real local HTTP server speaking vLLM's API.

::

    from vllm_client.testing import FakeVllmServer

    with FakeVllmServer() as server:
        server.reply(content="Paris")
        ...  # point your code at server.url

The pytest plugin (installed with the package) adds a ``vllm_server`` fixture that
yields a started ``FakeVllmServer``. The server module is imported on first use, so
importing this package (and the plugin) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._server import FakeVllmServer, RecordedRequest

__all__ = ["FakeVllmServer", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
