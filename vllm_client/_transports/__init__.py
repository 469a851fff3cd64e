"""Transports: the only code that does network I/O.

- ``base``: ``PreparedRequest``, ``Response``, the ``SyncTransport`` / ``AsyncTransport``
  Protocols, and ``MapErrors`` (an HTTP library's exceptions -> the SDK's).
- ``requests``: ``RequestsTransport`` (sync). ``requests`` is imported when one is made.
- ``aiohttp``: ``AiohttpTransport`` (async) and its read-deadline timer; import it only
  when needed (it imports asyncio and aiohttp).
- ``mock``: ``MockTransport``, both Protocols at once, for tests.
"""

from __future__ import annotations

from .base import AsyncTransport, PreparedRequest, Response, SyncTransport
from .mock import MockResponse, MockTransport
from .requests import RequestsTransport

__all__ = ["AsyncTransport", "PreparedRequest", "Response", "SyncTransport", "MockResponse", "MockTransport",
           "RequestsTransport"]
