"""Testing support: ``FakeVllmServer``, a real local HTTP server speaking vLLM's API.

The pytest plugin (installed with the package) adds a ``vllm_server`` fixture that
yields a started ``FakeVllmServer``.
"""

from ._server import FakeVllmServer, RecordedRequest

__all__ = ["FakeVllmServer", "RecordedRequest"]
