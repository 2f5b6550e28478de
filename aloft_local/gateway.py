"""A local stand-in for API Gateway's REST proxy integration.

`chalice local` cannot match greedy `{name+}` routes (Aloft needs one for
`.../assets/{path}`) and answers unknown routes like API Gateway does. This server
builds the same proxy event API Gateway would send, calls the Chalice app as
Lambda would, and writes the response back. Threaded, like the real thing is
concurrent.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chalice.local import LambdaContext

log = logging.getLogger("aloft.gateway")
STAGE = "v1"
MAX_BODY_BYTES = 512 * 1024 * 1024


class RouteTable:
    """Matches concrete paths to Chalice route templates, greedy `{x+}` included."""

    def __init__(self, routes):
        compiled = []
        for template in routes:
            pattern = "^"
            for segment in template.strip("/").split("/"):
                if not segment:
                    continue
                greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
                plain = re.fullmatch(r"\{(\w+)\}", segment)
                if greedy:
                    pattern += f"/(?P<{greedy.group(1)}>.+)"
                elif plain:
                    pattern += f"/(?P<{plain.group(1)}>[^/]+)"
                else:
                    pattern += "/" + re.escape(segment)
            compiled.append((template, re.compile((pattern or "^/") + "$"), "+}" in template,
                             template.count("/")))
        # Literal and shallow-parameter routes win over greedy ones, as in API Gateway.
        compiled.sort(key=lambda r: (r[2], -r[3]))
        self._routes = compiled

    def match(self, path: str):
        if path != "/" and path.endswith("/"):
            path = path[:-1]  # API Gateway ignores one trailing slash
        for template, regex, _, _ in self._routes:
            found = regex.match(path)
            if found:
                return template, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        return None, None


def make_handler(app):
    routes = RouteTable(list(app.routes))
    binary_types = set(app.api.binary_types)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "AloftLocal/1"
        # Headers and body go out in two writes: with Nagle's algorithm on, a keep-alive
        # client's delayed ACK held every response back about 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # route through logging, not stderr noise
            log.info("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            names = {k.lower() for k, _ in headers}
            for key, value in headers:
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            if "content-type" not in names:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), [])

        def _handle(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                try:
                    body = self._read_chunked()
                except ValueError:
                    self.close_connection = True
                    self._json(400, {"detail": "Malformed chunked body."})
                    return
                if body is None:
                    self.close_connection = True
                    self._json(413, {"detail": "Request body too large."})
                    return
            else:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0:
                    self.close_connection = True
                    self._json(400, {"detail": "Invalid Content-Length."})
                    return
                if length > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._json(413, {"detail": "Request body too large."})
                    return
                body = self.rfile.read(length) if length else b""
            template, params = routes.match(parsed.path)
            if template is None:
                self._json(404, {"detail": "Not found."})
                return
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
            headers = {k.lower(): v for k, v in self.headers.items()}
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            is_binary = content_type in binary_types
            event = {
                "resource": template,
                "path": parsed.path,
                "httpMethod": self.command,
                "headers": headers,
                "multiValueHeaders": {k: [v] for k, v in headers.items()},
                "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
                "multiValueQueryStringParameters": query or None,
                "pathParameters": params or None,
                "stageVariables": None,
                "requestContext": {
                    "resourcePath": template, "httpMethod": self.command, "path": parsed.path,
                    "stage": STAGE, "identity": {"sourceIp": self.client_address[0]},
                    "requestId": "local"},
                "body": (base64.b64encode(body).decode() if is_binary else body.decode("utf-8", "replace"))
                if body else None,
                "isBase64Encoded": bool(body) and is_binary,
            }
            result = self.server.app(event, LambdaContext("api_handler", 1024, max_runtime_ms=29_000))
            payload = result.get("body") or ""
            raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode("utf-8")
            headers_out: list[tuple[str, str]] = list((result.get("headers") or {}).items())
            for key, values in (result.get("multiValueHeaders") or {}).items():
                headers_out.extend((key, v) for v in values)
            self._send(int(result.get("statusCode", 200)), raw, headers_out)

        def _read_chunked(self) -> bytes | None:
            """A `Transfer-Encoding: chunked` body (None when over the cap)."""
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError(size)
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)

        def _dispatch(self) -> None:
            try:
                self._handle()
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:  # the gateway itself must never die
                log.exception("gateway failure")
                try:
                    self._json(HTTPStatus.BAD_GATEWAY, {"detail": "Internal server error"})
                except OSError:
                    pass

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

        def __getattr__(self, name: str):
            # Any other method (TRACE, CONNECT, PROPFIND...) reaches the app, which answers a
            # DRF 405, rather than http.server's HTML 501.
            if name.startswith("do_"):
                return self._dispatch
            raise AttributeError(name)

    return Handler


class LocalGateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app, host: str = "127.0.0.1", port: int = 8000):
        self.app = app
        super().__init__((host, port), make_handler(app))

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="aloft-gateway", daemon=True)
        thread.start()
        return thread
