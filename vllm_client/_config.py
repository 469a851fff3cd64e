"""Client configuration as small value objects: timeouts, base URL, headers."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union
from urllib.parse import unquote, urlsplit

from ._exceptions import InvalidRequestError
from ._urls import _without_userinfo, redact_url
from ._version import __version__

DEFAULT_BASE_URL = "http://localhost:8000/v1"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 600.0
USER_AGENT = f"vllm_client/{__version__} (python)"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts in seconds.

    ``connect``: establishing the connection. ``read``: the longest gap between
    two pieces of the answer (so a long stream that keeps sending never times
    out). ``total``: the whole request, retries excluded; None for no limit.
    On the async client, a request that waits for a free pooled connection (more
    than 256 in flight) counts that wait in its first ``read``, never in ``connect``.
    """

    connect: float | None = DEFAULT_CONNECT_TIMEOUT
    read: float | None = DEFAULT_READ_TIMEOUT
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise InvalidRequestError(f"Timeout({name}={v!r}): expected a positive number of seconds or None")


TimeoutTypes = Union[float, int, Timeout, None]  # noqa: UP007 (a runtime alias: keep it 3.10-safe)


def to_timeout(value: TimeoutTypes, *, what: str = "timeout") -> Timeout:
    """A ``Timeout`` from a number of seconds (connect and read), a Timeout, or None (defaults)."""
    if value is None:
        return Timeout()
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{what}={value!r}: expected seconds (a number) or Timeout(...)")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InvalidRequestError(f"{what}={value!r}: expected a positive number of seconds")
    return Timeout(connect=v, read=v)


def resolve_base_url(base_url: str | None) -> str:
    """The base URL to use: the argument, else $VLLM_BASE_URL, $OPENAI_BASE_URL, the default.

    Checks that it is an http(s) URL with a host and no query or fragment; drops a trailing slash.
    """
    url = base_url or os.environ.get("VLLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    if not isinstance(url, str):
        raise InvalidRequestError(f"base_url={url!r}: expected a string such as {DEFAULT_BASE_URL!r}")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            f"base_url={redact_url(url)!r}: expected an http:// or https:// URL such as {DEFAULT_BASE_URL!r}"
        )
    if any(c in url for c in "\r\n\t "):
        raise InvalidRequestError(f"base_url={redact_url(url)!r}: contains whitespace or line breaks")
    if "?" in url or "#" in url:  # every path is appended to the base URL: a query would swallow it
        # (not shown: a query may hold a key, and a '#' in an unescaped password breaks redaction)
        raise InvalidRequestError("base_url: has a '?query' or '#fragment', which would end up before every "
                                  "request's path; give the server's URL alone, e.g. http://host:8000/v1")
    return url.rstrip("/")


def check_header(name: object, value: object, *, what: str = "") -> None:
    """Refuse header names and values both HTTP libraries would not send as given: CR/LF (they
    could split a request), leading or trailing whitespace (a pasted key), characters outside
    latin-1 (a zero-width space). The message names the header (``what``: how it was given),
    never the value: it may be a key."""
    if not isinstance(name, str) or not name or any(c in name for c in "\r\n:\0 \t") or not name.isascii():
        raise InvalidRequestError(f"header name {name!r}: expected a non-empty token without CR/LF, ':' or spaces")
    where = what or f"header {name!r}"
    if not isinstance(value, str):
        raise InvalidRequestError(f"{where}: value must be a str, got {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidRequestError(f"{where}: the value contains CR, LF or NUL (value not shown)")
    if value != value.strip():
        raise InvalidRequestError(f"{where}: the value has leading or trailing whitespace (value not shown)")
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                f"{where}: the value has characters outside latin-1, such as a pasted zero-width space "
                "(value not shown)") from None


def split_credentials(urls: list[str]) -> tuple[list[str], str | None]:
    """The URLs without any ``user:password@``, and the ``Authorization: Basic`` value they carried.

    Replicas may all carry the same credentials; different credentials per replica are refused.
    """
    out: list[str] = []
    found: set[tuple[str, str]] = set()
    for url in urls:
        if "@" not in url:
            out.append(url)
            continue
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            out.append(url)
            continue
        found.add((unquote(parts.username or ""), unquote(parts.password or "")))
        out.append(_without_userinfo(parts))
    if len(found) > 1:
        raise InvalidRequestError("base_url: the replicas carry different user:password credentials; "
                                  "give one set, or use api_key= / default_headers=")
    if not found:
        return out, None
    user, password = found.pop()
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return out, f"Basic {token}"


def build_headers(api_key: str | None, default_headers: Mapping[str, str] | None, *,
                  basic: str | None = None) -> dict[str, str]:
    """The headers every request carries (``basic``: a Basic auth value from the URL, used without a key)."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    if api_key:
        check_header("Authorization", api_key, what="api_key (header 'Authorization')")
        headers["Authorization"] = f"Bearer {api_key}"
    elif basic:
        headers["Authorization"] = basic
    for k, v in (default_headers or {}).items():
        check_header(k, v)
        headers[k] = v
    return headers


def resolve_api_key(api_key: str | None, base_urls: list[str] | None = None) -> str | None:
    """The argument, else $VLLM_API_KEY, else $OPENAI_API_KEY, else None.

    $OPENAI_API_KEY is used only when every base URL in use (``base_urls``, as resolved) is
    $OPENAI_BASE_URL's: an OpenAI key from the shell never goes to another server (a local vLLM).
    """
    if api_key is not None:
        key: str | None = api_key
    else:
        key = os.environ.get("VLLM_API_KEY") or None
        if key is None and _openai_key_allowed(base_urls):
            key = os.environ.get("OPENAI_API_KEY")
    if key is not None and not isinstance(key, str):
        raise InvalidRequestError("api_key: expected a string")
    return key or None


def _openai_key_allowed(base_urls: list[str] | None) -> bool:
    """True when $OPENAI_BASE_URL is set and every URL in use is that one."""
    openai_url = os.environ.get("OPENAI_BASE_URL")
    if not openai_url or not base_urls:
        return False
    try:
        openai_url = resolve_base_url(openai_url)
    except InvalidRequestError:
        return False
    return all(u == openai_url for u in base_urls)
