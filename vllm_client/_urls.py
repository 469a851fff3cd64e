"""URL helpers with no dependency inside the SDK: the server root, and ``user:password@`` kept out
of every URL that is printed, logged or put into an error."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = ["server_root", "redact_url", "SECRET_HEADERS"]

# Headers that carry credentials (lower case): never shown to hooks, logs or spans, and
# dropped when a redirect leaves the origin they were meant for.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"})


def server_root(base_url: str) -> str:
    """The server root, where vLLM serves /health, /version and /tokenize: the base URL minus ``/v1``."""
    return base_url[:-3] if base_url.endswith("/v1") else base_url


def redact_url(url: str) -> str:
    """The URL with any user:password@ replaced, safe to print."""
    if "@" not in url:
        return url  # no user info possible
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username is None and parts.password is None:
        return url
    return _without_userinfo(parts, "***@")


def _without_userinfo(parts: SplitResult, mark: str = "") -> str:
    """The URL of ``parts`` with its ``user:password@`` replaced by ``mark``."""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, mark + host, parts.path, parts.query, parts.fragment))
