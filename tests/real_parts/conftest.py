"""Real parts on 127.0.0.1 for the connection tests: nginx as a TLS gateway (a private CA made
by ``trustme``; a second server block that requires a client certificate; gzip on for JSON and
SSE with ``proxy_buffering off``) in front of a ``FakeVllmServer``, and tinyproxy as a forward
proxy whose log counts what passed through it.

Each runs as a subprocess from its own temporary directory (config, pid, logs) on a free port.
Without the binaries (Debian: ``apt-get install -y nginx tinyproxy``) the tests skip, unless
``VLLM_CLIENT_REQUIRE_REAL_PARTS=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vllm_client.testing import FakeVllmServer

REQUIRED = os.environ.get("VLLM_CLIENT_REQUIRE_REAL_PARTS") == "1"


def _binary(name: str) -> str:
    """The program's path (also looked for in /usr/sbin, /usr/local/sbin: often not on PATH)."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
        None)
    if found is None:
        why = f"{name} is not installed (Debian: apt-get install -y nginx tinyproxy)"
        if REQUIRED:
            pytest.fail(f"VLLM_CLIENT_REQUIRE_REAL_PARTS=1 but {why}")
        pytest.skip(why)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within 15 s: {_tail(log)}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Pki:
    """The private CA and the certificates made from it (PEM files)."""

    ca: str  # the CA certificate (what clients verify with)
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    client_pem: str  # certificate and key in one file


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    trustme = pytest.importorskip("trustme", reason="trustme is a test dependency (pip install -e '.[test]')")
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.test")
    paths = {n: str(d / f"{n}.pem") for n in ("ca", "server_cert", "server_key", "client_cert", "client_key",
                                                "client_pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["server_cert"])
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(paths["server_cert"], append=True)
    server.private_key_pem.write_to_path(paths["server_key"])
    client.cert_chain_pems[0].write_to_path(paths["client_cert"])
    client.private_key_pem.write_to_path(paths["client_key"])
    client.private_key_and_cert_chain_pem.write_to_path(paths["client_pem"])
    return Pki(**paths)


@dataclass
class Gateway:
    """nginx in front of ``backend``: ``tls_url`` (server certificate only) and ``mtls_url``
    (client certificate required), both ``https://127.0.0.1:PORT/v1``; ``http_url`` plain."""

    backend: FakeVllmServer
    tls_url: str
    mtls_url: str
    http_url: str
    access_log: Path


NGINX_CONF = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
{user}
events {{ worker_connections 128; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    gzip on;
    gzip_types application/json text/event-stream;
    gzip_min_length 1;
    gzip_proxied any;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{http};
        {location}
    }}
    server {{
        listen 127.0.0.1:{tls} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {location}
    }}
    server {{
        listen 127.0.0.1:{mtls} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        {location}
    }}
}}
"""


# every server block passes requests on unbuffered (SSE as it comes), on kept-alive upstream connections
LOCATION = 'location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; ' \
           'proxy_buffering off; }'


@pytest.fixture
def gateway(pki: Pki, tmp_path: Path) -> Iterator[Gateway]:
    nginx = _binary("nginx")
    d = tmp_path / "nginx"
    d.mkdir()
    ports = {"http": free_port(), "tls": free_port(), "mtls": free_port()}
    with FakeVllmServer(model="fake-model") as backend:
        conf = d / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # (workers must read this temporary directory)
        conf.write_text(NGINX_CONF.format(d=d, user=user, backend=backend.port, cert=pki.server_cert,
                                          key=pki.server_key, ca=pki.ca, location=LOCATION, **ports))
        log = d / "error.log"
        proc = subprocess.Popen([nginx, "-p", str(d), "-c", str(conf), "-e", str(log), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for p in ports.values():
                _wait_listening(p, proc, log, "nginx")
            yield Gateway(backend, f"https://127.0.0.1:{ports['tls']}/v1", f"https://127.0.0.1:{ports['mtls']}/v1",
                          f"http://127.0.0.1:{ports['http']}/v1", d / "access.log")
        finally:
            _stop(proc)


@dataclass
class Proxy:
    """tinyproxy: ``url``; ``passed()`` counts the requests it has forwarded (from its log)."""

    url: str
    log: Path

    def passed(self) -> int:
        text = _tail_all(self.log)
        return text.count("Request (file descriptor")


def _tail_all(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


TINYPROXY_CONF = """
Port {port}
Listen 127.0.0.1
Timeout 60
LogFile "{d}/tinyproxy.log"
LogLevel Connect
PidFile "{d}/tinyproxy.pid"
MaxClients 50
Allow 127.0.0.1
DisableViaHeader Yes
{user}
"""


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Proxy]:
    binary = _binary("tinyproxy")
    d = tmp_path / "tinyproxy"
    d.mkdir()
    port = free_port()
    conf = d / "tinyproxy.conf"
    user = "User root\nGroup root" if os.geteuid() == 0 else ""
    conf.write_text(TINYPROXY_CONF.format(port=port, d=d, user=user))
    log = d / "tinyproxy.log"
    proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc, log, "tinyproxy")
        yield Proxy(f"http://127.0.0.1:{port}", log)
    finally:
        _stop(proc)


def env_without_proxies(monkeypatch: Any) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
