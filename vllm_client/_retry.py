"""When to retry and how long to wait: pure decisions, no sleeping here."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from ._exceptions import APIConnectionError, TLSError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})  # not 501: not implemented stays so
MAX_RETRY_AFTER = 60.0  # a server asking for longer than this is not waited for
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is not None:
        return v
    lname = name.lower()
    for k, val in headers.items():
        if k.lower() == lname:
            return val
    return None


def retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``Retry-After`` seconds or
    HTTP-date), or None when absent, unparseable, negative or over 60 s."""
    if not headers:
        return None
    delay: float | None = None
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            delay = float(ms) / 1000.0
        except ValueError:
            delay = None
    if delay is None:
        ra = _header(headers, "retry-after")
        if ra is not None:
            ra = ra.strip()
            try:
                delay = float(ra)
            except ValueError:
                from email.utils import parsedate_to_datetime  # rare path: keep import time low

                try:
                    when = parsedate_to_datetime(ra)
                except (TypeError, ValueError, IndexError):
                    when = None
                if when is not None:
                    delay = when.timestamp() - (time.time() if now is None else now)
    if delay is None or delay != delay or delay < 0 or delay > MAX_RETRY_AFTER:
        return None
    return delay


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: ~0.5 s, 1 s, 2 s ... capped at 8 s."""
    base = min(INITIAL_BACKOFF * (2.0**attempt), MAX_BACKOFF)
    return base * (1.0 - 0.25 * random.random())


def should_retry_status(status: int) -> bool:
    """True for the statuses worth another try (408, 409, 429, 500, 502-504); never other 4xx, nor 501."""
    return status in RETRY_STATUSES


def resend_at_once(error: BaseException, resent: bool) -> bool:
    """Whether to send a request again at once, outside ``max_retries``: it went out on a reused
    keep-alive connection that the server had closed before any byte of an answer arrived
    (``APIConnectionError.stale_connection``), and has not been resent so already. The server
    never answered it, so nothing the user saw is repeated (what browsers and curl do)."""
    return not resent and getattr(error, "stale_connection", False) is True


def decide(
    attempt: int,
    max_retries: int,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    error: BaseException | None = None,
) -> float | None:
    """Seconds to wait before the next try, or None to give up.

    ``attempt`` counts the retries already made (0 after the first failure).
    """
    if attempt >= max_retries:
        return None
    if error is not None:
        retryable = isinstance(error, APIConnectionError) and not isinstance(error, TLSError)
        return backoff(attempt) if retryable else None
    if status is None or not should_retry_status(status):
        return None
    asked = retry_after(headers)
    return asked if asked is not None else backoff(attempt)
