"""pytest plugin (entry point ``pytest11``): the ``vllm_server`` fixture.

Kept cheap to import: it is loaded in every pytest run where vllm_client is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import FakeVllmServer


@pytest.fixture
def vllm_server() -> Iterator[FakeVllmServer]:
    """A started ``FakeVllmServer`` (``.url``, ``.reply()``, ``.fail()``, ``.requests`` ...), stopped afterwards."""
    from ._server import FakeVllmServer

    with FakeVllmServer() as server:
        yield server
