"""Fetching a URL a user gave us, without letting it reach our own network (SSRF guard).

Task imports from a `url` (and webhooks) make the worker open a connection to an address
a user chose. A function inside AWS can reach what the internet cannot: the instance
metadata service (169.254.169.254), VPC-private hosts, services on loopback. So:

- only `http` and `https`;
- the host name is resolved ONCE; every address it resolves to must be public (not
  private, loopback, link-local, reserved, multicast, unspecified, shared/CGNAT, or an
  IPv4-mapped/6to4/Teredo form of one), else the URL is refused;
- the connection goes to that resolved address (a second DNS answer cannot swap in an
  internal one: no DNS rebinding), while the `Host` header, TLS SNI and certificate check
  still use the host name;
- redirects are followed here, at most `MAX_REDIRECTS`, each hop checked again;
- connect and read timeouts.

`ALOFT_IMPORT_ALLOW_PRIVATE=1` (the default only in the local stage) lifts the address
check for a lab where the source is on a private network; scheme, redirects and timeouts
still apply. Tests of the policy itself pass their own `resolver` and `address_allowed` to
`Fetcher`: those are constructor arguments, never settings, so no deployment can widen them.

Public API: `open_public_url(url, allow_private=...)` (a GET, streamed), `Fetcher` for other
methods (`request(method, url, body=..., headers=...)`), `is_public_address(ip)`,
`RefusedURL` (the URL is not allowed: the message says why) and `FetchError` (it could
not be fetched: connection, timeout, too many redirects, a bad answer).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
REDIRECT_CODES = (301, 302, 303, 307, 308)
USER_AGENT = "Aloft (WebODM API)"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

# Ranges `ipaddress` does not flag as private/reserved everywhere, refused explicitly.
_EXTRA_BLOCKED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",          # "this network"
    "100.64.0.0/10",      # shared address space (carrier-grade NAT)
    "192.0.0.0/24",       # IETF protocol assignments
    "198.18.0.0/15",      # benchmarking
    "64:ff9b::/96",       # NAT64 (embeds an IPv4 address)
    "64:ff9b:1::/48",
    "100::/64",           # discard-only
    "fec0::/10",          # site-local (deprecated, still routed privately)
))


class RefusedURL(Exception):
    """The URL may not be fetched (scheme, host or address); the message says why."""


class FetchError(Exception):
    """The URL could not be fetched (connection, timeout, redirects, TLS)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (IPv4-mapped, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public_address(ip: Address | str) -> bool:
    """True only for a globally routable unicast address."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on the wire
            return is_public_address(ip.ipv4_mapped)
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
    if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
            or ip.is_unspecified or not ip.is_global):
        return False
    return not any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (one DNS resolution)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"Cannot resolve {host}: {exc}") from None
    return [info[4][0] for info in infos]


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str          # as written in the URL (IDNA-encoded), without brackets
    port: int
    path: str          # path and query, for the request line
    address: str       # the one resolved address the connection goes to


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL; RefusedURL otherwise."""
    if not isinstance(url, str) or any(c in url for c in "\r\n\t\x00 "):
        raise RefusedURL("Invalid URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedURL("Invalid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedURL(f"Only http and https URLs can be fetched, not {scheme or 'no scheme'}")
    if parts.username is not None or parts.password is not None:
        raise RefusedURL("URLs with a user name or password are not fetched")
    host = parts.hostname
    if not host:
        raise RefusedURL("The URL has no host")
    try:
        host = host.encode("idna").decode("ascii") if not _is_ip(host) else host
    except UnicodeError:
        raise RefusedURL("Invalid host name") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Response:
    """A streamed answer: `status`, `headers` (lower-case names), `url` (after redirects),
    `read(n)`, `close()`; a context manager."""

    def __init__(self, raw, url: str, pool=None):
        self._raw = raw
        self._pool = pool
        self.status: int = raw.status
        self.headers = {k.lower(): v for k, v in raw.headers.items()}
        self.url = url

    @property
    def length(self) -> int | None:
        try:
            return int(self.headers["content-length"])
        except (KeyError, ValueError):
            return None

    def read(self, n: int = -1) -> bytes:
        import urllib3

        try:
            return self._raw.read(None if n is None or n < 0 else n)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError(f"Reading {self.url} failed: {exc}") from None

    def close(self) -> None:
        self._raw.release_conn()
        self._raw.close()
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Fetcher:
    """Requests to user-given URLs under the address policy. `allow_private` lifts the
    address check; `resolver` and `address_allowed` exist for tests of the policy."""

    def __init__(self, allow_private: bool = False, *, resolver: Resolver | None = None,
                 address_allowed: Callable[[Address, int], bool] | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                 max_redirects: int = MAX_REDIRECTS):
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver
        self.address_allowed = address_allowed or (lambda ip, port: is_public_address(ip))
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_redirects = max_redirects

    def target(self, url: str) -> Target:
        """Check `url` and resolve its host once: the address to connect to, or RefusedURL."""
        scheme, host, port, path = parse(url)
        addresses = [ipaddress.ip_address(host)] if _is_ip(host) else \
            [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolver(host, port)]
        if not addresses:
            raise FetchError(f"Cannot resolve {host}")
        if not self.allow_private:
            for ip in addresses:
                if not self.address_allowed(ip, port):
                    shown = host if str(ip) == host else f"{host} ({ip})"
                    raise RefusedURL(f"{shown} is not a public address")
        return Target(scheme, host, port, path, str(addresses[0]))

    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: dict | None = None) -> Response:
        """Send one request, following redirects (each hop checked again); a streamed Response.
        301/302/303 turn a POST into a GET without body, as browsers do; 307/308 keep both."""
        current = url
        for _ in range(self.max_redirects + 1):
            raw, pool = self._send(self.target(current), method, body, headers)
            if raw.status in REDIRECT_CODES and raw.headers.get("location"):
                location = raw.headers["location"]
                Response(raw, current, pool).close()
                current = urljoin(current, location)
                if raw.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                    method, body = "GET", None
                continue
            return Response(raw, current, pool)
        raise FetchError(f"More than {self.max_redirects} redirects")

    def _send(self, target: Target, method: str, body: bytes | None, headers: dict | None):
        import certifi
        import urllib3

        timeout = urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout)
        host_header = target.host if ":" not in target.host else f"[{target.host}]"
        if (target.scheme, target.port) not in (("http", 80), ("https", 443)):
            host_header += f":{target.port}"
        sent = {"User-Agent": USER_AGENT, **(headers or {}), "Host": host_header}
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                target.address, target.port, timeout=timeout, retries=False, maxsize=1,
                cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
                server_hostname=target.host, assert_hostname=target.host)
        else:
            pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout,
                                              retries=False, maxsize=1)
        try:
            return pool.urlopen(method, target.path, body=body, headers=sent, redirect=False,
                                preload_content=False, decode_content=True, assert_same_host=False), pool
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise FetchError(f"Cannot reach {target.host}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)[:300]


def open_public_url(url: str, allow_private: bool = False, **options) -> Response:
    """GET `url` under the address policy (see the module doc); the caller closes the answer."""
    return Fetcher(allow_private, **options).request("GET", url)
