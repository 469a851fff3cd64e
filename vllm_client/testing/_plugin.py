"""pytest plugin (entry point ``pytest11``): the ``vllm_server`` fixture.

Loaded in every pytest run where vllm_client is installed, so it imports nothing
heavy: the server module is imported inside the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import FakeVllmServer


@pytest.fixture
def vllm_server(request: pytest.FixtureRequest) -> Iterator[FakeVllmServer]:
    """A started ``FakeVllmServer`` (``.url``, ``.reply()``, ``.fail()``, ``.requests`` ...), stopped after the test.

    Constructor arguments can be given with indirect parametrisation:
    ``@pytest.mark.parametrize("vllm_server", [{"model": "m"}], indirect=True)``.
    """
    from ._server import FakeVllmServer

    kwargs = getattr(request, "param", None) or {}
    with FakeVllmServer(**kwargs) as server:
        yield server
