"""Connection options on both clients: proxies from the arguments and the environment
(NO_PROXY hosts, domains, host:port, CIDR), CA settings, redirects that drop credentials,
header values checked when set, response headers up to 64 KiB, and no key in any error, log
line or span. Real servers on 127.0.0.1 (FakeVllmServer and a small recording proxy); nginx
and tinyproxy are in tests/real_parts/."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tests._both import CLIENTS, call, close, make
from vllm_client import (
    APIConnectionError,
    AuthenticationError,
    InvalidRequestError,
    ResponseDecodeError,
    VllmClient,
)
from vllm_client._connection import ConnectionOptions, cli_connection, redirect_target
from vllm_client.testing import FakeVllmServer

KEY = "sk-test-SECRET-4242"
ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
       "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# -- the plan (pure) ---------------------------------------------------------------------------


def plan(env: dict[str, str], **options: Any) -> Any:
    return ConnectionOptions(**options).plan(env)


@pytest.mark.parametrize("no_proxy, url, bypass", [
    ("localhost", "http://localhost:8000/v1", True),
    ("example.com", "http://api.example.com/v1", True),
    (".example.com", "http://example.com/v1", True),
    ("*.example.com", "https://a.b.example.com/v1", True),
    ("example.com", "http://notexample.com/v1", False),
    ("127.0.0.0/8", "http://127.0.0.1:8000/v1", True),
    ("10.0.0.0/8", "http://127.0.0.1:8000/v1", False),
    ("::1/128", "http://[::1]:8000/v1", True),
    ("127.0.0.1:8000", "http://127.0.0.1:8000/v1", True),
    ("127.0.0.1:8000", "http://127.0.0.1:9000/v1", False),
    ("gpu.internal:443", "https://gpu.internal/v1", True),
    ("gpu.internal:443", "http://gpu.internal/v1", False),
    ("foo, 127.0.0.1 ,bar", "http://127.0.0.1/v1", True),
    ("*", "http://anything/v1", True),
])
def test_no_proxy_forms(no_proxy: str, url: str, bypass: bool) -> None:
    p = plan({"ALL_PROXY": "http://proxy:3128", "no_proxy": no_proxy})
    assert p.proxy_for(url) == (None if bypass else "http://proxy:3128")


def test_proxy_precedence() -> None:
    env = {"HTTPS_PROXY": "http://secure:1", "http_proxy": "http://lower:2", "HTTP_PROXY": "http://upper:3",
           "ALL_PROXY": "http://all:4", "NO_PROXY": "bypassed"}
    p = plan(env)
    assert p.proxy_for("https://h/v1") == "http://secure:1"
    assert p.proxy_for("http://h/v1") == "http://lower:2"  # lower case first, like urllib and requests
    assert plan({"ALL_PROXY": "all:4"}).proxy_for("https://h/v1") == "http://all:4"  # (http:// assumed)
    explicit = plan(env, proxy="http://mine:5")  # the argument beats *_PROXY ...
    assert explicit.proxy_for("https://h/v1") == explicit.proxy_for("http://h/v1") == "http://mine:5"
    assert explicit.proxy_for("http://bypassed/v1") is None  # ... and NO_PROXY still exempts (as curl)
    assert plan(env, trust_env=False).proxy_for("http://h/v1") is None
    assert plan(env, proxy="http://mine:5", trust_env=False).proxy_for("http://bypassed/v1") == "http://mine:5"
    assert plan({"HTTP_PROXY": "http://cgi:1", "REQUEST_METHOD": "GET"}).proxy_for("http://h/") is None


def test_ca_precedence(tmp_path: Any) -> None:
    a, b, c = (tmp_path / n for n in ("a.pem", "b.pem", "c.pem"))
    for f in (a, b, c):
        f.write_text("x")
    env = {"REQUESTS_CA_BUNDLE": str(a), "SSL_CERT_FILE": str(b)}
    assert plan(env).ca_file == str(a) and plan(env).requests_verify == str(a)
    assert plan({"SSL_CERT_FILE": str(b)}).ca_file == str(b)
    assert plan(env, verify=str(c)).ca_file == str(c)  # the argument beats the environment
    assert plan(env, verify=c).ca_file == str(c)  # (a pathlib.Path too)
    assert plan(env, trust_env=False).ca_file is None
    assert plan(env, verify=False).requests_verify is False
    assert plan({}, verify=str(tmp_path)).ca_dir == str(tmp_path)
    with pytest.raises(InvalidRequestError, match="REQUESTS_CA_BUNDLE"):
        plan({"REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize("options, match", [
    ({"verify": "/no/such/ca.pem"}, "verify='/no/such/ca.pem': no such file"),
    ({"verify": 1}, "verify"),
    ({"cert": "/no/such/cert.pem"}, "cert="),
    ({"cert": ("a", "b", "c")}, "cert"),
    ({"proxy": "socks5://user:pw@p:1080"}, "only http"),
    ({"proxy": 3128}, "proxy"),
    ({"trust_env": "yes"}, "trust_env"),
])
def test_bad_options_are_refused_when_the_client_is_made(options: dict[str, Any], match: str) -> None:
    for kind in CLIENTS:
        with pytest.raises(InvalidRequestError, match=match) as e:
            make(kind, "http://127.0.0.1:1/v1", **options)
        assert "pw" not in str(e.value)


def test_options_with_your_own_transport_are_refused() -> None:
    from vllm_client import MockTransport

    with pytest.raises(InvalidRequestError, match="your transport"):
        VllmClient("http://x/v1", transport=MockTransport(lambda r: None), verify=False)


def test_cli_flags() -> None:
    import argparse

    from vllm_client._cli import build_parser

    args = build_parser().parse_args(["models", "--cacert", "ca.pem", "--cert", "c.pem", "--key", "k.pem",
                                      "--proxy", "http://p:1"])
    assert cli_connection(args) == {"verify": "ca.pem", "cert": ("c.pem", "k.pem"), "proxy": "http://p:1"}
    assert cli_connection(build_parser().parse_args(["chat", "-k", "hi"])) == {"verify": False}
    with pytest.raises(InvalidRequestError, match="--key needs --cert"):
        cli_connection(argparse.Namespace(key="k.pem"))
    with pytest.raises(InvalidRequestError, match="contradict"):
        cli_connection(argparse.Namespace(insecure=True, ca_bundle="ca.pem"))


def test_redirect_target() -> None:
    h = {"Authorization": "Bearer k", "api-key": "k", "X-Api-Key": "k", "Content-Type": "application/json",
         "X-Other": "1"}
    same = redirect_target("POST", "http://a:1/v1/x", h, b"{}", 307, "/v2/x")
    assert same == ("POST", "http://a:1/v2/x", h, b"{}")
    _, url, headers, _ = redirect_target("POST", "http://a:1/v1/x", h, b"{}", 308, "http://b:1/v1/x")  # type: ignore[misc]
    assert url == "http://b:1/v1/x" and headers == {"Content-Type": "application/json", "X-Other": "1"}
    assert redirect_target("GET", "http://a/v1", h, None, 301, "https://a/v1")[2] == h  # type: ignore[index]
    assert redirect_target("GET", "https://a/v1", h, None, 301, "http://a/v1")[2] == {  # type: ignore[index]
        "Content-Type": "application/json", "X-Other": "1"}  # a downgrade leaves the origin
    method, _, headers, body = redirect_target("POST", "http://a/x", h, b"{}", 303, "/y")  # type: ignore[misc]
    assert (method, body, "Content-Type" in headers) == ("GET", None, False)
    assert redirect_target("POST", "http://a/x", h, b"{}", 302, None) is None
    assert redirect_target("POST", "http://a/x", h, b"{}", 302, "ftp://a/x") is None


# -- header values ------------------------------------------------------------------------------


BAD_VALUES = [" " + KEY, KEY + "\n", KEY + "\u200b", "Bearer " + KEY + "\r\nX-Evil: 1", "\u20ac" + KEY]


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("value", BAD_VALUES)
async def test_bad_header_values_are_refused_without_showing_them(kind: str, value: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vllm_client")
    with pytest.raises(InvalidRequestError, match="'Authorization'") as e:
        make(kind, "http://127.0.0.1:1/v1", default_headers={"Authorization": value})
    assert KEY not in str(e.value) and KEY not in repr(e.value)
    with pytest.raises(InvalidRequestError, match=r"api_key \(header 'Authorization'\)") as e:
        make(kind, "http://127.0.0.1:1/v1", api_key=value.replace("Bearer ", ""))
    assert KEY not in str(e.value) and KEY not in repr(e.value)
    with FakeVllmServer() as server:
        client = make(kind, server.url, api_key=KEY, default_model="m")
        try:
            b = client.chat.completions().create().user_message("hi")
            with pytest.raises(InvalidRequestError, match="'X-Api-Key'") as e:
                b.header("X-Api-Key", value)
            assert KEY not in str(e.value)
            with pytest.raises(InvalidRequestError, match="'api-key'"):
                client.with_options(default_headers={"api-key": value})
        finally:
            await close(kind, client)
        assert server.requests == []  # nothing was sent
    assert KEY not in caplog.text


# -- redirects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_credentials_are_dropped_on_a_cross_origin_redirect(kind: str) -> None:
    with FakeVllmServer() as a, FakeVllmServer() as b:
        headers = {"api-key": KEY, "X-Api-Key": KEY, "Cookie": "s=" + KEY, "X-Trace": "t1"}
        # same origin: kept
        a.raw(307, {"Location": a.url + "/chat/completions?again"}, b"")
        client = make(kind, a.url, api_key=KEY, default_model="fake-model", default_headers=headers)
        try:
            r = await call(kind, client.chat.completions().create().user_message("hi"), "send")
            assert r.content
            again = a.requests[-1]
            assert again.headers["authorization"] == "Bearer " + KEY and again.headers["x-api-key"] == KEY
            # another origin (another port): every credential dropped, the rest kept, the body resent (307)
            a.raw(307, {"Location": b.url + "/chat/completions"}, b"")
            r = await call(kind, client.chat.completions().create().user_message("hi"), "send")
            got = b.requests[-1].headers
            assert "Hello" in (r.content or "")
            for name in ("authorization", "api-key", "x-api-key", "cookie"):
                assert name not in got, name
            assert got["x-trace"] == "t1" and b.requests[-1].body["messages"][0]["content"] == "hi"
            # streams follow the same rules
            a.raw(308, {"Location": b.url + "/chat/completions"}, b"")
            s = await call(kind, client.chat.completions().create().user_message("hi"), "send_stream")
            final = await call(kind, s, "final_response")
            assert "Hello" in (final.content or "") and "authorization" not in b.requests[-1].headers
        finally:
            await close(kind, client)


# -- response headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_large_response_headers(kind: str) -> None:
    ok = orjson.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]})
    with FakeVllmServer() as server:
        client = make(kind, server.url, max_retries=2)
        try:
            server.raw(200, {"Content-Type": "application/json", "Set-Cookie": "g=" + "c" * 60_000}, ok, path="*")
            assert [m.id for m in await call(kind, client, "models")] == ["m"]
            server.raw(200, {"Content-Type": "application/json", "Set-Cookie": "g=" + "c" * 100_000}, ok, path="*")
            server.raw(200, {"Content-Type": "application/json"}, ok, path="*")
            before = len(server.requests)
            with pytest.raises(ResponseDecodeError, match="response headers .* are too large"):
                await call(kind, client, "models")
            assert len(server.requests) == before + 1  # not retried as a connection error
        finally:
            await close(kind, client)


# -- proxies, end to end --------------------------------------------------------------------------


class _Proxy:
    """A forward proxy stand-in on 127.0.0.1: records each request line and its headers, and
    answers itself: ``GET`` with one model, ``POST`` with a chat completion, both "via-proxy"."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                outer.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = orjson.dumps({"object": "list", "data": [{"id": "via-proxy", "object": "model"}]})
                if self.command == "POST":
                    body = orjson.dumps({"id": "x", "object": "chat.completion", "model": "m", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "via-proxy"},
                         "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    p = _Proxy()
    yield p
    p.close()


async def _models(kind: str, url: str, **kw: Any) -> list[str]:
    client = make(kind, url, api_key=KEY, **kw)
    try:
        return [m.id for m in await call(kind, client, "models")]
    finally:
        await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_proxies_from_the_environment(kind: str, proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeVllmServer(model="direct") as server:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        assert await _models(kind, server.url) == ["via-proxy"]  # ALL_PROXY, on both clients
        assert proxy.seen[-1][0] == server.url + "/models"  # (an absolute URL: a proxy's request)
        for no_proxy in ("127.0.0.0/8", f"127.0.0.1:{server.port}", "127.0.0.1"):
            monkeypatch.setenv("NO_PROXY", no_proxy)
            assert await _models(kind, server.url) == ["direct"], no_proxy
        monkeypatch.setenv("NO_PROXY", "127.0.0.1:1")  # another port: not bypassed
        assert await _models(kind, server.url) == ["via-proxy"]
        monkeypatch.delenv("NO_PROXY")
        assert await _models(kind, server.url, trust_env=False) == ["direct"]
        monkeypatch.delenv("ALL_PROXY")
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # a dead proxy, beaten by the argument
        assert await _models(kind, server.url, proxy=proxy.url) == ["via-proxy"]
        assert len(proxy.seen) == 3


@pytest.mark.parametrize("kind", CLIENTS)
async def test_batch_and_copies_use_the_proxy(kind: str, proxy: _Proxy) -> None:
    with FakeVllmServer(model="direct") as server:
        client = make(kind, server.url, proxy=proxy.url)
        try:
            assert [m.id for m in await call(kind, client.with_options(max_retries=0), "models")] == ["via-proxy"]
            builders = [client.chat.completions().create().model("m").user_message("hi") for _ in range(3)]
            results = await call(kind, client, "batch", builders, progress=False)
            assert [r.content for r in results] == ["via-proxy"] * 3
            results = await call(kind, client.with_options(timeout=30), "batch", builders[:1], progress=False)
            assert [r.content for r in results] == ["via-proxy"]
            assert len(proxy.seen) == 5
        finally:
            await close(kind, client)


def test_cli_uses_the_proxy(proxy: _Proxy, capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_client._cli import main

    with FakeVllmServer(model="direct") as server:
        assert main(["models", "--base-url", server.url, "--proxy", proxy.url]) == 0
    assert "via-proxy" in capsys.readouterr().out


# -- no key in any error, log line or span ----------------------------------------------------------


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("kind", CLIENTS)
async def test_no_key_in_errors_logs_or_spans(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    from tests._otel import instrumented

    caplog.set_level(logging.DEBUG, logger="vllm_client")
    errors: list[BaseException] = []
    headers = {"api-key": KEY, "X-Api-Key": KEY}
    with instrumented() as (spans, _reader), FakeVllmServer() as server:
        # refused connection (retried: INFO lines), through a dead proxy with credentials,
        # a 401, and a too-large header
        cases: list[tuple[str, dict[str, Any]]] = [
            (f"http://u:{KEY}@127.0.0.1:{_dead_port()}/v1", {}),
            (server.url, {"proxy": f"http://u:{KEY}@127.0.0.1:{_dead_port()}"}),
            (server.url, {}),
            (server.url, {}),
        ]
        server.fail(401, {"error": {"message": "bad key", "type": "auth"}})
        server.raw(200, {"Set-Cookie": "x" * 100_000}, b"{}")
        for url, kw in cases:
            client = make(kind, url, api_key=KEY, default_headers=headers, max_retries=1, default_model="m", **kw)
            try:
                await call(kind, client.chat.completions().create().user_message("hi"), "send")
            except Exception as e:
                errors.append(e)
            finally:
                await close(kind, client)
    assert [type(e) for e in errors] == [APIConnectionError, APIConnectionError, AuthenticationError,
                                         ResponseDecodeError]
    for e in errors:
        for text in (str(e), repr(e), repr(e.__dict__), str(e.__cause__), repr(e.__cause__)):
            assert KEY not in text, (type(e), text)
    assert "INFO" in {r.levelname for r in caplog.records} and "DEBUG" in {r.levelname for r in caplog.records}
    assert KEY not in caplog.text
    for r in caplog.records:
        assert KEY not in repr(r.__dict__)
    finished = spans.get_finished_spans()
    assert finished
    for span in finished:
        assert KEY not in repr(dict(span.attributes or {}))
        for ev in span.events:
            assert KEY not in repr(dict(ev.attributes or {})) and KEY not in ev.name
        assert KEY not in str(span.status.description)
