"""The SSRF guard (chalicelib/netguard.py): address policy, one DNS resolution, pinned
connections, redirects re-checked hop by hop, timeouts. Real HTTP servers on 127.0.0.1; the
policy's hooks (`resolver`, `address_allowed`) are constructor arguments of `Fetcher`."""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import netguard
from chalicelib.netguard import FetchError, Fetcher, RefusedURL, is_public_address


class _Server:
    """A tiny HTTP server: `routes` maps a path to (status, headers, body)."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.methods: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                outer.methods.append(self.command)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers, body = outer.routes.get(self.path, (404, {}, b"no"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made: list[_Server] = []

    def make(routes: dict) -> _Server:
        server = _Server(routes)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


REFUSED = ["127.0.0.1", "127.1.2.3", "10.0.0.5", "10.255.255.255", "172.16.0.1", "192.168.1.1",
           "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
           "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
           "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "2002:7f00:1::1",
           "64:ff9b::a9fe:a9fe", "fec0::1"]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert not is_public_address(address)
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert is_public_address(address)


@pytest.mark.parametrize("url", ["http://127.0.0.1/all.zip", "http://169.254.169.254/latest/meta-data/",
                                 "http://10.1.2.3:8080/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/",
                                 "https://192.168.0.10/all.zip", "http://0.0.0.0:80/", "http://2130706433/"])
def test_literal_private_urls_are_refused_before_any_connection(url):
    with pytest.raises(RefusedURL, match="not a public address"):
        Fetcher(False).request("GET", url)


def test_a_name_resolving_to_loopback_is_refused(servers):
    server = servers({"/all.zip": (200, {}, b"zip")})
    with pytest.raises(RefusedURL, match=r"localhost \((127\.0\.0\.1|::1)\) is not a public address"):
        netguard.open_public_url(f"http://localhost:{server.port}/all.zip")
    assert server.requests == []


def test_every_resolved_address_must_be_public():
    """A name answering one public and one private address is refused (no picking)."""
    fetcher = Fetcher(False, resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(RefusedURL, match=r"mixed\.test \(127\.0\.0\.1\)"):
        fetcher.target("http://mixed.test/x")


@pytest.mark.parametrize("url", ["ftp://example.com/all.zip", "file:///etc/passwd", "javascript:void(0)",
                                 "gopher://example.com/", "http:///nohost", "http://user:pw@example.com/",
                                 "http://exa mple.com/", "example.com/all.zip"])
def test_other_schemes_and_malformed_urls_are_refused(url):
    with pytest.raises(RefusedURL):
        Fetcher(True).request("GET", url)


def test_dns_is_resolved_once_and_the_connection_pinned(servers):
    """The connection goes to the one address resolved; Host still names the host."""
    server = servers({"/data": (200, {"Content-Type": "application/zip"}, b"payload")})
    calls = []

    def resolver(host, port):
        calls.append((host, port))
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.1"]  # a rebinding answer, never used

    fetcher = Fetcher(True, resolver=resolver)
    with fetcher.request("GET", f"http://import.test:{server.port}/data") as answer:
        assert answer.status == 200
        assert answer.read() == b"payload"
        assert answer.length == 7
    assert calls == [("import.test", server.port)]
    assert server.requests == [("/data", f"import.test:{server.port}")]


def test_allow_private_lifts_only_the_address_check(servers):
    server = servers({"/x": (200, {}, b"ok")})
    with netguard.open_public_url(f"http://127.0.0.1:{server.port}/x", allow_private=True) as answer:
        assert answer.read() == b"ok"
    with pytest.raises(RefusedURL):
        netguard.open_public_url("ftp://127.0.0.1/x", allow_private=True)


def _only_port(port):
    """A test policy: the one server's port counts as public, every other loopback port not."""
    return lambda ip, p: p == port or is_public_address(ip)


def test_a_redirect_to_loopback_is_refused(servers):
    inner = servers({"/secret": (200, {}, b"internal")})
    outer = servers({})
    outer.routes["/go"] = (302, {"Location": f"http://127.0.0.1:{inner.port}/secret"}, b"")
    fetcher = Fetcher(False, address_allowed=_only_port(outer.port))
    with pytest.raises(RefusedURL, match="127.0.0.1 is not a public address"):
        fetcher.request("GET", f"http://127.0.0.1:{outer.port}/go")
    assert [p for p, _ in outer.requests] == ["/go"]
    assert inner.requests == []  # never reached


def test_a_redirect_to_a_name_resolving_to_loopback_is_refused(servers):
    inner = servers({"/secret": (200, {}, b"internal")})
    outer = servers({})
    outer.routes["/go"] = (301, {"Location": f"http://localhost:{inner.port}/secret"}, b"")
    with pytest.raises(RefusedURL, match="localhost"):
        Fetcher(False, address_allowed=_only_port(outer.port)).request("GET", f"http://127.0.0.1:{outer.port}/go")
    assert inner.requests == []


def test_allowed_redirects_are_followed_and_relative_locations_resolved(servers):
    server = servers({})
    server.routes.update({"/a": (301, {"Location": "/b"}, b""), "/b": (307, {"Location": "c"}, b""),
                          "/c": (200, {}, b"done")})
    with Fetcher(False, address_allowed=_only_port(server.port)).request(
            "GET", f"http://127.0.0.1:{server.port}/a") as answer:
        assert answer.read() == b"done"
        assert answer.url == f"http://127.0.0.1:{server.port}/c"


def test_post_redirects_as_browsers_do(servers):
    """303 (and 301/302) turn a POST into a GET without body; 307 keeps the POST (webhooks)."""
    server = servers({})
    server.routes.update({"/see": (303, {"Location": "/done"}, b""), "/keep": (307, {"Location": "/done"}, b""),
                          "/done": (200, {}, b"ok")})
    fetcher = Fetcher(True)
    with fetcher.request("POST", f"http://127.0.0.1:{server.port}/see", body=b"{}",
                         headers={"Content-Type": "application/json"}) as answer:
        assert answer.status == 200
    with fetcher.request("POST", f"http://127.0.0.1:{server.port}/keep", body=b"{}") as answer:
        assert answer.status == 200
    assert server.methods == ["POST", "GET", "POST", "POST"]


def test_at_most_five_redirects(servers):
    server = servers({})
    for i in range(10):
        server.routes[f"/{i}"] = (302, {"Location": f"/{i + 1}"}, b"")
    server.routes["/6"] = (200, {}, b"six")
    fetcher = Fetcher(True)
    with pytest.raises(FetchError, match="More than 5 redirects"):
        fetcher.request("GET", f"http://127.0.0.1:{server.port}/0")
    with fetcher.request("GET", f"http://127.0.0.1:{server.port}/1") as answer:  # exactly 5 hops
        assert answer.read() == b"six"


def test_a_silent_server_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        started = time.monotonic()
        with pytest.raises(FetchError):
            Fetcher(True, read_timeout=0.5).request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/")
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_a_closed_port_is_a_fetch_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="Cannot reach"):
        Fetcher(True).request("GET", f"http://127.0.0.1:{port}/")


def test_https_certificates_are_verified_against_the_host_name(tmp_path):
    """A self-signed certificate for the very host name is still refused (verification is on)."""
    import ssl
    import datetime

    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "import.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("import.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    server = _Server({"/x": (200, {}, b"secret")})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    try:
        fetcher = Fetcher(True, resolver=lambda host, port: ["127.0.0.1"])
        with pytest.raises(FetchError, match=r"Cannot reach import.test: .*(CERTIFICATE_VERIFY_FAILED|certificate)"):
            fetcher.request("GET", f"https://import.test:{server.port}/x")
    finally:
        server.close()
