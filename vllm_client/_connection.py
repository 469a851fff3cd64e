"""Connection options (``verify``, ``cert``, ``proxy``, ``trust_env``) and what they decide,
written once for both transports: which CA bundle, which client certificate, which proxy for
a URL (``NO_PROXY`` with hosts, domains, ``host:port`` and CIDR ranges), what a redirect keeps,
and how a TLS or oversized-header failure is named. No HTTP library is imported here.

Precedence: an explicit option beats the environment; ``trust_env=False`` ignores the
environment altogether. ``NO_PROXY`` (read while ``trust_env``) exempts hosts from any proxy,
the one given as ``proxy=`` included (as curl does).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import urljoin, urlsplit

from ._exceptions import InvalidRequestError
from ._urls import SECRET_HEADERS, redact_url

__all__ = ["ConnectionOptions", "ConnectionPlan", "redirect_target", "REDIRECT_STATUSES", "MAX_REDIRECTS",
           "failure_reason", "headers_too_large", "cli_connection"]

CertTypes = Union[str, "os.PathLike[str]", tuple[Union[str, "os.PathLike[str]"], Union[str, "os.PathLike[str]"]], None]
VerifyTypes = Union[bool, str, "os.PathLike[str]"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
# The longest response header line both transports read (http.client's own limit; aiohttp's is set to it)
MAX_HEADER_LINE = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _path(what: str, value: Any, *, directory_ok: bool = False) -> str:
    """A path given as str or os.PathLike that exists, as str."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise InvalidRequestError(f"{what}: expected a file path, got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise InvalidRequestError(f"{what}: expected a file path")
    if not (os.path.isfile(path) or (directory_ok and os.path.isdir(path))):
        raise InvalidRequestError(f"{what}={path!r}: no such file")
    return path


def _proxy_url(what: str, value: str) -> str:
    """A proxy URL checked: http(s)://host[:port] (``host:port`` alone means http://)."""
    url = value.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise InvalidRequestError(f"{what}={redact_url(url)!r}: not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError(
            f"{what}={redact_url(url)!r}: only http:// and https:// proxies are supported")
    if not parts.hostname or any(c in url for c in "\r\n\t "):
        raise InvalidRequestError(f"{what}={redact_url(url)!r}: expected a URL such as http://proxy:3128")
    return url


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """The connection options of a client or transport, checked when set.

    ``verify``: True (the default CAs, or ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` while
    ``trust_env``), False (no verification), or a CA bundle path (a PEM file or a directory).
    ``cert``: a PEM file holding the client certificate and its key, or ``(cert, key)``.
    ``proxy``: one proxy URL for every request (in place of ``*_PROXY``). ``trust_env``: read
    ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` and the CA variables.
    """

    verify: Any = True
    cert: Any = None
    proxy: str | None = None
    trust_env: bool = True

    def __post_init__(self) -> None:
        verify = self.verify
        if not isinstance(verify, bool):
            object.__setattr__(self, "verify", _path("verify", verify, directory_ok=True))
        cert = self.cert
        if cert is not None:
            if isinstance(cert, tuple):
                if len(cert) != 2:
                    raise InvalidRequestError("cert: expected a PEM path or a (cert_path, key_path) pair")
                cert = (_path("cert", cert[0]), _path("key", cert[1]))
            else:
                cert = _path("cert", cert)
            object.__setattr__(self, "cert", cert)
        if self.proxy is not None:
            if not isinstance(self.proxy, str):
                raise InvalidRequestError(f"proxy: expected a URL string, got {type(self.proxy).__name__}")
            object.__setattr__(self, "proxy", _proxy_url("proxy", self.proxy) if self.proxy.strip() else None)
        if not isinstance(self.trust_env, bool):
            raise InvalidRequestError(f"trust_env={self.trust_env!r}: expected True or False")

    def __repr__(self) -> str:  # a proxy URL may carry user:password
        proxy = None if self.proxy is None else redact_url(self.proxy)
        return f"ConnectionOptions(verify={self.verify!r}, cert={self.cert!r}, proxy={proxy!r}, trust_env={self.trust_env})"

    @property
    def is_default(self) -> bool:
        return self.verify is True and self.cert is None and self.proxy is None and self.trust_env

    def kwargs(self) -> dict[str, Any]:
        """As keyword arguments of a client or transport constructor."""
        return {"verify": self.verify, "cert": self.cert, "proxy": self.proxy, "trust_env": self.trust_env}

    def plan(self, env: Mapping[str, str] | None = None) -> ConnectionPlan:
        """What these options decide, the environment read now (``os.environ`` by default)."""
        return ConnectionPlan(self, os.environ if env is None else env)


def _env(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of these variables set to a non-empty value, lower case spelling first: (name, value)."""
    for name in names:
        for spelled in (name.lower(), name.upper()):
            value = env.get(spelled)
            if value and value.strip():
                return spelled, value.strip()
    return None


class _NoProxy:
    """The ``NO_PROXY`` rules: ``*``, host names and domains (``example.com`` and ``.example.com``
    match it and its subdomains), IP addresses, CIDR ranges, each optionally with ``:port``."""

    __slots__ = ("everything", "names", "networks")

    def __init__(self, text: str) -> None:
        self.everything = False
        self.names: list[tuple[str, int | None]] = []
        self.networks: list[tuple[Any, int | None]] = []
        import ipaddress  # (only when NO_PROXY is set)

        for raw in text.replace(" ", ",").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self.everything = True
                continue
            host, port = _split_port(entry)
            try:
                self.networks.append((ipaddress.ip_network(host.strip("[]"), strict=False), port))
                continue
            except ValueError:
                pass
            self.names.append((host.lstrip("*").lstrip("."), port))

    def matches(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        for name, p in self.names:
            if (p is None or p == port) and (host == name or host.endswith("." + name)):
                return True
        if self.networks:
            import ipaddress

            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                return False
            for net, p in self.networks:
                if (p is None or p == port) and ip.version == net.version and ip in net:
                    return True
        return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``10.0.0.0/8`` / a bare IPv6 address -> (host, port or None)."""
    if entry.startswith("["):
        end = entry.find("]")
        rest = entry[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
        return entry[1:end], int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


class ConnectionPlan:
    """What the options and the environment decide, once, for a transport to apply.

    ``verify`` (bool), ``ca_file`` / ``ca_dir`` (None: the HTTP library's default CAs),
    ``ca_source`` (where the CA setting came from, for messages), ``cert_file`` / ``key_file``,
    and ``proxy_for(url)``: the proxy to use for a URL, or None.
    """

    __slots__ = ("options", "verify", "ca_file", "ca_dir", "ca_source", "cert_file", "key_file",
                 "proxies", "no_proxy", "_cache")

    def __init__(self, options: ConnectionOptions, env: Mapping[str, str]) -> None:
        self.options = options
        trust = options.trust_env
        self.verify = options.verify is not False
        self.ca_file: str | None = None
        self.ca_dir: str | None = None
        self.ca_source = ""
        if isinstance(options.verify, str):
            self.ca_source = "verify="
            if os.path.isdir(options.verify):
                self.ca_dir = options.verify
            else:
                self.ca_file = options.verify
        elif self.verify and trust:
            found = _env(env, "REQUESTS_CA_BUNDLE") or _env(env, "CURL_CA_BUNDLE") or _env(env, "SSL_CERT_FILE")
            if found is not None:
                self.ca_source = found[0]
                self.ca_file = _path(found[0], found[1], directory_ok=True)
                if os.path.isdir(self.ca_file):
                    self.ca_dir, self.ca_file = self.ca_file, None
            found = _env(env, "SSL_CERT_DIR")
            if found is not None and self.ca_dir is None and os.path.isdir(found[1]):
                self.ca_dir = found[1]
        cert = options.cert
        self.cert_file, self.key_file = (cert if isinstance(cert, tuple) else (cert, None))
        self.proxies: dict[str, str] = {}
        if options.proxy is not None:
            self.proxies = {"http": options.proxy, "https": options.proxy}
        elif trust:
            cgi = "REQUEST_METHOD" in env  # (httpoxy: a CGI request's Proxy header becomes HTTP_PROXY)
            for scheme in ("http", "https"):
                found = _env(env, f"{scheme}_proxy") or _env(env, "all_proxy")
                if found is not None and not (cgi and found[0] == "HTTP_PROXY"):
                    self.proxies[scheme] = _proxy_url(found[0], found[1])
        no_proxy = _env(env, "no_proxy") if trust else None
        self.no_proxy = _NoProxy(no_proxy[1]) if no_proxy is not None else None
        self._cache: dict[str, str | None] = {}

    def proxy_for(self, url: str) -> str | None:
        """The proxy for this URL, or None (remembered per URL)."""
        if not self.proxies:
            return None
        cache = self._cache
        try:
            return cache[url]
        except KeyError:
            pass
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme)
        if proxy is not None and self.no_proxy is not None:
            host = (parts.hostname or "").lower()
            if self.no_proxy.matches(host, parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)):
                proxy = None
        if len(cache) >= 512:
            cache.clear()
        cache[url] = proxy
        return proxy

    @property
    def requests_verify(self) -> bool | str:
        """``verify`` as requests takes it."""
        if not self.verify:
            return False
        return self.ca_file or self.ca_dir or True

    @property
    def requests_cert(self) -> str | tuple[str, str] | None:
        """``cert`` as requests takes it."""
        if self.cert_file is None:
            return None
        return (self.cert_file, self.key_file) if self.key_file else self.cert_file


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def redirect_target(method: str, url: str, headers: Mapping[str, str], body: bytes | None, status: int,
                    location: str | None) -> tuple[str, str, dict[str, str], bytes | None] | None:
    """The next request of a redirect (method, URL, headers, body), or None when it is not
    followed (no ``Location``, not http(s)). 303 (and 301/302 after a POST) becomes a GET without
    body; 307/308 keep both. Leaving the origin (scheme, host, port; an upgrade from http to https
    on the same host excepted) drops every credential header (``SECRET_HEADERS``)."""
    if not location:
        return None
    target = urljoin(url, location.strip())
    try:
        if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
            return None
    except ValueError:
        return None
    new = dict(headers)
    if status == 303 and method != "HEAD" or status in (301, 302) and method == "POST":
        method, body = "GET", None
        for k in [k for k in new if k.lower() in ("content-type", "content-length")]:
            del new[k]
    a, b = _origin(url), _origin(target)
    upgrade = a[0] == "http" and b[0] == "https" and a[1] == b[1] and a[2] == 80 and b[2] == 443
    if a != b and not upgrade:
        for k in [k for k in new if k.lower() in SECRET_HEADERS]:
            del new[k]
    return method, target, new, body


def _chain(e: BaseException | None) -> list[BaseException]:
    """An exception and those it wraps (causes, contexts, args, aiohttp's ``os_error`` /
    ``certificate_error``, urllib3's ``reason``), breadth-first, at most 24."""
    out: list[BaseException] = []
    todo = [e]
    while todo and len(out) < 24:
        x = todo.pop(0)
        if x is None or any(x is y for y in out):
            continue
        out.append(x)
        todo.extend(a for a in x.args if isinstance(a, BaseException))
        for attr in ("reason", "os_error", "certificate_error"):
            v = getattr(x, attr, None)
            if isinstance(v, BaseException):
                todo.append(v)
        todo.append(x.__cause__)
        todo.append(x.__context__)
    return out


def failure_reason(e: BaseException | None) -> str | None:
    """A TLS failure named for people (certificate not trusted, expired, wrong host, client
    certificate refused), else None."""
    for x in _chain(e):
        name = type(x).__name__
        if name == "SSLCertVerificationError":
            why = getattr(x, "verify_message", None) or "certificate verify failed"
            return (f"TLS certificate verify failed ({why}): give the server's CA with verify=<CA bundle> "
                    "(CLI --ca-bundle), or verify=False (--insecure) to skip the check")
    for x in _chain(e):
        if type(x).__module__ == "ssl" and type(x).__name__.startswith("SSL"):
            reason = getattr(x, "reason", None)
            text = str(reason) if isinstance(reason, str) else str(x)[:200]
            hint = ""
            if "CERTIFICATE_REQUIRED" in text or "UNKNOWN_CA" in text or "BAD_CERTIFICATE" in text:
                hint = ": the server wants a client certificate it trusts (cert=, CLI --cert/--key)"
            return f"TLS error {text}{hint}"
    return None


def tls_refused(e: BaseException | None) -> bool:
    """Whether a failure is a TLS refusal that a retry cannot mend: the server's certificate
    failed verification, or the server refused the client's certificate (a handshake cut
    short by the network is not one)."""
    for x in _chain(e):
        if type(x).__name__ == "SSLCertVerificationError":
            return True
        if type(x).__module__ == "ssl" and type(x).__name__.startswith("SSL"):
            reason = getattr(x, "reason", None)
            text = str(reason) if isinstance(reason, str) else str(x)
            if any(r in text for r in _REFUSALS):
                return True
    return False


_REFUSALS = ("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
             "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE")


def headers_too_large(e: BaseException | None) -> bool:
    """Whether a failure is the response's header section being over the limit."""
    for x in _chain(e):
        if type(x).__name__ == "LineTooLong" or "got more than" in str(x).lower():
            return True
    return False


def cli_connection(args: Any) -> dict[str, Any]:
    """The client keyword arguments of the CLI's ``--ca-bundle``, ``--cert``, ``--key``,
    ``--insecure`` and ``--proxy``."""
    ca, cert, key = getattr(args, "ca_bundle", None), getattr(args, "cert", None), getattr(args, "key", None)
    insecure, proxy = getattr(args, "insecure", False), getattr(args, "proxy", None)
    if insecure and ca:
        raise InvalidRequestError("--insecure and --ca-bundle contradict each other: give one")
    if key and not cert:
        raise InvalidRequestError("--key needs --cert (the client certificate it belongs to)")
    out: dict[str, Any] = {}
    if insecure:
        out["verify"] = False
    elif ca:
        out["verify"] = ca
    if cert:
        out["cert"] = (cert, key) if key else cert
    if proxy:
        out["proxy"] = proxy
    return out
