"""Both clients behind real parts: nginx terminating TLS with a private CA (and mutual TLS),
gzip on for JSON and SSE, and tinyproxy as the forward proxy (see conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._both import CLIENTS, call, close, make, recording_hooks
from tests.real_parts.conftest import Gateway, Pki, Proxy, env_without_proxies
from vllm_client import APIConnectionError, APIStatusError, TLSError

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env_without_proxies(monkeypatch)


async def chat_both_ways(kind: str, url: str, **kw: Any) -> tuple[Any, Any]:
    """One chat request and one stream through ``url``; (response, final streamed response)."""
    client = make(kind, url, default_model="fake-model", max_retries=0, **kw)
    try:
        r = await call(kind, client.chat.completions().create().user_message("through the gateway"), "send")
        s = await call(kind, client.chat.completions().create().user_message("streamed"), "send_stream")
        final = await call(kind, s, "final_response")
        return r, final
    finally:
        await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_tls_with_a_private_ca_and_gzip(kind: str, gateway: Gateway, pki: Pki) -> None:
    r, final = await chat_both_ways(kind, gateway.tls_url, verify=pki.ca)
    assert "through the gateway" in r.content and "streamed" in final.content
    assert r.headers.get("content-encoding") == "gzip"  # nginx compressed it; the client decoded it
    assert len(gateway.backend.requests) == 2


@pytest.mark.parametrize("kind", CLIENTS)
async def test_sse_is_gzipped_by_the_gateway(kind: str, gateway: Gateway, pki: Pki) -> None:
    client = make(kind, gateway.tls_url, default_model="fake-model", verify=pki.ca)
    try:
        s = await call(kind, client.chat.completions().create().user_message("a b c d e f"), "send_stream")
        assert s.headers.get("content-encoding") == "gzip"
        final = await call(kind, s, "final_response")
        assert "a b c d e f" in final.content
    finally:
        await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_untrusted_certificate_is_a_named_connection_error(kind: str, gateway: Gateway) -> None:
    with pytest.raises(APIConnectionError, match="certificate verify failed") as e:
        await chat_both_ways(kind, gateway.tls_url)
    assert "--ca-bundle" in str(e.value)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_untrusted_certificate_is_not_retried(kind: str, gateway: Gateway) -> None:
    seen, hooks = recording_hooks(kind)
    client = make(kind, gateway.tls_url, default_model="fake-model", max_retries=3, event_hooks=hooks)
    try:
        with pytest.raises(TLSError, match="certificate verify failed"):
            await call(kind, client.chat.completions().create().user_message("hi"), "send")
    finally:
        await close(kind, client)
    assert len(seen) == 1  # one attempt: the same settings would fail the same way, no backoff


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
async def test_ca_from_the_environment_on_both_clients(kind: str, variable: str, gateway: Gateway, pki: Pki,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, pki.ca)
    r, final = await chat_both_ways(kind, gateway.tls_url)
    assert r.content and final.content
    # batch() (the async engine, also for the sync client) reads the same settings
    client = make(kind, gateway.tls_url, default_model="fake-model", max_retries=0)
    try:
        results = await call(kind, client, "batch",
                             [client.chat.completions().create().user_message(f"n{i}") for i in range(3)],
                             progress=False)
        assert [f"n{i}" in x.content for i, x in enumerate(results)] == [True] * 3, results
        # an explicit argument beats the environment
        with pytest.raises(APIConnectionError, match="certificate verify failed"):
            await chat_both_ways(kind, gateway.tls_url, verify=str(Path(pki.server_cert)))
        with pytest.raises(APIConnectionError, match="certificate verify failed"):
            await chat_both_ways(kind, gateway.tls_url, trust_env=False)
    finally:
        await close(kind, client)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_verify_false(kind: str, gateway: Gateway) -> None:
    r, final = await chat_both_ways(kind, gateway.tls_url, verify=False)
    assert r.content and final.content


@pytest.mark.parametrize("kind", CLIENTS)
async def test_mutual_tls(kind: str, gateway: Gateway, pki: Pki) -> None:
    for cert in ((pki.client_cert, pki.client_key), pki.client_pem):
        r, final = await chat_both_ways(kind, gateway.mtls_url, verify=pki.ca, cert=cert)
        assert "through the gateway" in r.content and "streamed" in final.content
    # no client certificate: nginx answers 400 "No required SSL certificate was sent"
    with pytest.raises((APIStatusError, APIConnectionError)) as e:
        await chat_both_ways(kind, gateway.mtls_url, verify=pki.ca)
    assert getattr(e.value, "status_code", 400) == 400


@pytest.mark.parametrize("kind", CLIENTS)
async def test_forward_proxy_and_no_proxy(kind: str, gateway: Gateway, pki: Pki, tinyproxy: Proxy,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    r, final = await chat_both_ways(kind, gateway.http_url, proxy=tinyproxy.url)
    assert r.content and final.content
    assert tinyproxy.passed() == 2
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    await chat_both_ways(kind, gateway.http_url)
    assert tinyproxy.passed() == 4
    # HTTPS through the proxy (CONNECT), the CA still checked end to end
    r, _ = await chat_both_ways(kind, gateway.tls_url, verify=pki.ca)
    assert r.content and "CONNECT" in tinyproxy.log.read_text()
    before = tinyproxy.passed()
    for no_proxy in ("127.0.0.0/8", "127.0.0.1", gateway.http_url.split("/")[2]):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        await chat_both_ways(kind, gateway.http_url)
    assert tinyproxy.passed() == before  # bypassed: nothing more went through it
    monkeypatch.setenv("NO_PROXY", "127.0.0.1:1")
    await chat_both_ways(kind, gateway.http_url)
    assert tinyproxy.passed() == before + 2


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    e = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and "CA_BUNDLE" not in k}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "vllm_client", *args], capture_output=True, text=True,
                          timeout=120, env=e)


def test_cli_flags_through_the_gateway(gateway: Gateway, pki: Pki, tinyproxy: Proxy, tmp_path: Path) -> None:
    r = cli("chat", "--base-url", gateway.tls_url, "--ca-bundle", pki.ca, "hello", "there")
    assert r.returncode == 0 and "hello there" in r.stdout, r.stderr
    r = cli("chat", "--base-url", gateway.tls_url, "hello")
    assert r.returncode == 1 and "certificate verify failed" in r.stderr
    r = cli("chat", "--base-url", gateway.tls_url, "--insecure", "hi")
    assert r.returncode == 0, r.stderr
    r = cli("models", "--base-url", gateway.mtls_url, "--cacert", pki.ca, "--cert", pki.client_cert,
            "--key", pki.client_key)
    assert r.returncode == 0 and "fake-model" in r.stdout, r.stderr
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(
        f'{{"custom_id": "c{i}", "method": "POST", "url": "/v1/chat/completions", '
        f'"body": {{"model": "fake-model", "messages": [{{"role": "user", "content": "x{i}"}}]}}}}\n'
        for i in range(3)))
    r = cli("batch", str(inp), "-o", str(out), "--base-url", gateway.http_url, "--proxy", tinyproxy.url,
            "--no-progress")
    assert r.returncode == 0 and out.read_text().count("\n") == 3, r.stderr
    assert tinyproxy.passed() == 3
    r = cli("batch", str(inp), "-o", str(tmp_path / "out2.jsonl"), "--base-url", gateway.mtls_url,
            "--ca-bundle", pki.ca, "--cert", pki.client_pem, "--no-progress")
    assert r.returncode == 0, r.stderr


def test_a_user_sessions_verify_beats_requests_ca_bundle(gateway: Gateway, pki: Pki,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    from vllm_client import RequestsTransport, VllmClient

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.server_cert)  # not the CA: would fail verification
    session = requests.Session()
    session.verify = pki.ca
    with VllmClient(gateway.tls_url, transport=RequestsTransport(session=session), max_retries=0) as client:
        assert [m.id for m in client.models()] == ["fake-model"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_ca_bundle_replaced_on_disk_is_read_by_the_next_client(kind: str, gateway: Gateway, pki: Pki,
                                                                      tmp_path: Path) -> None:
    """Contexts are made once per process for the same CA file (loading a bundle costs ~30 ms),
    but a bundle rotated on disk is not served from that cache."""
    import os

    import trustme

    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(pki.ca).read_bytes())
    r, _ = await chat_both_ways(kind, gateway.tls_url, verify=str(ca))
    assert r.content
    trustme.CA().cert_pem.write_to_path(str(ca))  # another CA: the gateway is no longer trusted
    st = ca.stat()
    os.utime(ca, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(TLSError):
        await chat_both_ways(kind, gateway.tls_url, verify=str(ca))
    ca.write_bytes(Path(pki.ca).read_bytes())
    os.utime(ca, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    r, _ = await chat_both_ways(kind, gateway.tls_url, verify=str(ca))
    assert r.content
