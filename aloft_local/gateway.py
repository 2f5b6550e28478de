"""The local stand-in for the deployed API Gateway (REST API) and its Lambda functions.

For every request it does what AWS does, in AWS's order:
1. route (greedy `{x+}` routes included, which `chalice local` cannot match);
2. refuse a body over API Gateway's 10 MB quota from its Content-Length, unread;
3. for a Lambda proxy route: build the proxy event (a binary body base64-encoded),
   refuse it when the event is over Lambda's 6 MB, run it in a container of the
   API function (one event per container at a time, killed at its timeout: 504),
   refuse a response over 6 MB (502), and turn a base64 body into bytes only under
   API Gateway's binary rule (the first `Accept` type is a binary media type, or
   the binary types include `*/*`);
4. for an AWS service route (`upload/`, an S3 integration defined in
   infra/resources.json): run its REQUEST authorizer, write the raw body to S3
   with the mapped key and headers, answer the mapped response.
Gateway errors use the template's GatewayResponses, else AWS's defaults.
The numbers come from chalicelib/limits.py, the deployment's own.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chalicelib import limits
from chalicelib.logs import request_fact

from . import apigateway
from .apigateway import ApiDefinition, GatewayResponse, content_type_matches, first_accept_type
from .containers import DEFAULT_MAX_CONTAINERS, FunctionPool, Invocation

log = logging.getLogger("aloft.gateway")
_QUERY = re.compile(r"\?[^\s'\"]*")
STAGE = apigateway.STAGE
API_FUNCTION = "api_handler"
# API Gateway's answer to a body over its quota: plain text, before any integration.
BODY_TOO_LARGE = f"HTTP content length exceeded {limits.API_GATEWAY_MAX_BODY_BYTES} bytes."


class RouteTable:
    """Matches concrete paths to route templates, greedy `{x+}` included."""

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


class _BodyTooLarge(Exception):
    pass


def make_handler(gateway: "LocalGateway"):
    api = gateway.api
    routes = RouteTable(api.resource_templates())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "AloftLocal/2"
        # Headers and body go out in two writes: with Nagle's algorithm on, a keep-alive
        # client's delayed ACK held every response back about 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # route through logging, not stderr noise
            # http.server's own lines (a malformed request's) may quote the request line:
            # never its query string, where tokens and API keys travel (`?jwt=`).
            log.debug("%s %s", self.address_string(), _QUERY.sub("?...", fmt % args))

        def log_request(self, code="-", size="-"):
            pass  # one access line per request instead, without the query string (tokens)

        # -------------------------------------------------------------- writing
        def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self._status = status
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

        def _gateway(self, reply: GatewayResponse) -> None:
            self._send(reply.status, reply.body, reply.headers)

        def _too_large(self) -> None:
            self.close_connection = True  # the body stays unread
            self._send(413, BODY_TOO_LARGE.encode(), [("Content-Type", "text/plain")])

        # -------------------------------------------------------------- reading
        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._read_chunked()
            raw = self.headers.get("Content-Length")
            try:
                length = int(raw) if raw is not None else 0
            except ValueError:
                length = -1
            if length < 0:
                raise ValueError("Invalid Content-Length.")
            if length > limits.API_GATEWAY_MAX_BODY_BYTES:
                raise _BodyTooLarge()
            return self.rfile.read(length) if length else b""

        def _read_chunked(self) -> bytes:
            parts: list[bytes] = []
            total = 0
            while True:
                try:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise ValueError("Malformed chunked body.") from None
                if size < 0:
                    raise ValueError("Malformed chunked body.")
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > limits.API_GATEWAY_MAX_BODY_BYTES:
                    raise _BodyTooLarge()
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)

        # -------------------------------------------------------------- one request
        def _handle(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            template, params = routes.match(parsed.path)
            if template is None:
                self._gateway(api.gateway_response("MISSING_AUTHENTICATION_TOKEN"))
                return
            try:
                body = self._read_body()
            except _BodyTooLarge:
                self._too_large()
                return
            except ValueError as error:
                self.close_connection = True
                self._send(400, json.dumps({"detail": str(error)}).encode(), [])
                return
            event = self._proxy_event(parsed, template, params, body)
            integration = api.integration_for(template, self.command)
            if integration is not None:
                self._gateway(gateway.service_integration(integration, event, body))
                return
            self._lambda_proxy(event)

        def _proxy_event(self, parsed, template: str, params: dict, body: bytes) -> dict:
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
            headers = {k.lower(): v for k, v in self.headers.items()}
            multi_headers: dict[str, list[str]] = {}
            for key, value in self.headers.items():
                multi_headers.setdefault(key.lower(), []).append(value)
            is_binary = content_type_matches(headers.get("content-type", ""), api.binary_types)
            return {
                "resource": template,
                "path": parsed.path,
                "httpMethod": self.command,
                "headers": headers,
                "multiValueHeaders": multi_headers,
                "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
                "multiValueQueryStringParameters": query or None,
                "pathParameters": params or None,
                "stageVariables": None,
                "requestContext": {
                    "resourcePath": template, "httpMethod": self.command, "path": parsed.path,
                    "stage": STAGE, "identity": {"sourceIp": self.client_address[0]},
                    "requestId": str(uuid.uuid4()), "requestTimeEpoch": int(apigateway.request_time_epoch()),
                    "apiId": apigateway.API_ID, "protocol": self.request_version},
                "body": (base64.b64encode(body).decode() if is_binary else body.decode("utf-8", "replace"))
                if body else None,
                "isBase64Encoded": bool(body) and is_binary,
            }

        def _lambda_proxy(self, event: dict) -> None:
            payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
            if len(payload) > limits.LAMBDA_MAX_EVENT_BYTES:
                self._gateway(api.gateway_response("REQUEST_TOO_LARGE"))
                return
            outcome = gateway.invoke(API_FUNCTION, payload, event["requestContext"]["requestId"])
            if outcome.timed_out:
                self._gateway(api.gateway_response("INTEGRATION_TIMEOUT"))
                return
            if outcome.error is not None or len(outcome.payload) > limits.LAMBDA_MAX_RESPONSE_BYTES:
                if outcome.payload:
                    log.warning("%s %s: response of %d bytes is over Lambda's %d", self.command,
                                event["path"], len(outcome.payload), limits.LAMBDA_MAX_RESPONSE_BYTES)
                self._gateway(api.gateway_response("DEFAULT_5XX"))
                return
            try:
                result = json.loads(outcome.payload)
                status = int(result["statusCode"])
            except (ValueError, KeyError, TypeError):
                log.warning("malformed Lambda proxy response for %s %s", self.command, event["path"])
                self._gateway(api.gateway_response("DEFAULT_5XX"))
                return
            body = result.get("body") or ""
            headers_out: list[tuple[str, str]] = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
            for key, values in (result.get("multiValueHeaders") or {}).items():
                headers_out.extend((key, str(v)) for v in values)
            if result.get("isBase64Encoded") and self._wants_binary():
                raw = base64.b64decode(body)
            else:
                raw = body.encode("utf-8")  # a base64 body the client did not ask as binary stays text
            self._send(status, raw, headers_out)

        def _wants_binary(self) -> bool:
            """API Gateway decodes a base64 body only when the request's first Accept type
            is a binary media type, or when `*/*` is one."""
            if "*/*" in api.binary_types:
                return True
            return content_type_matches(first_accept_type(self.headers.get("Accept")), api.binary_types)

        def _dispatch(self) -> None:
            started = time.perf_counter()
            self._status = 0
            try:
                self._handle()
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:  # the gateway itself must never die
                log.exception("gateway failure")
                try:
                    self._gateway(api.gateway_response("DEFAULT_5XX"))
                except OSError:
                    pass
            fact = request_fact(self.command, urllib.parse.urlsplit(self.path).path, self._status, started)
            log.info("%(method)s %(path)s %(status)s %(ms)s ms", fact, extra={"fact": fact})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

        def __getattr__(self, name: str):
            # Any other method (TRACE, CONNECT, PROPFIND...) reaches the app, which answers a
            # DRF 405, rather than http.server's HTML 501.
            if name.startswith("do_"):
                return self._dispatch
            raise AttributeError(name)

    return Handler


class LocalGateway(ThreadingHTTPServer):
    """API Gateway + the app's Lambda functions on one local port.

    `app_spec` names the Chalice app (`module:attribute`); it is imported here only
    to read its routes and binary types (the deployed swagger), and run in
    containers. `timeout` overrides the API function's configured timeout (tests).
    """
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, app_spec: str = "app:app", host: str = "127.0.0.1", port: int = 8000, *,
                 timeout: float | None = None, max_containers: int | None = None,
                 template: dict | None = None, env: dict[str, str] | None = None):
        from .lambda_runtime import load_app

        self.app_spec = app_spec
        self.api = ApiDefinition(load_app(app_spec), template=template)
        self._timeout = timeout
        self._env = env
        self._max_containers = max_containers or int(os.environ.get("ALOFT_LOCAL_CONTAINERS")
                                                     or DEFAULT_MAX_CONTAINERS)
        self._pools: dict[str, FunctionPool] = {}
        self._pools_lock = threading.Lock()
        super().__init__((host, port), make_handler(self))

    @property
    def port(self) -> int:
        return self.server_address[1]

    # ------------------------------------------------------------------ functions
    def pool(self, function: str) -> FunctionPool:
        with self._pools_lock:
            if function not in self._pools:
                settings = self.api.function_settings(function)
                timeout = settings.timeout if self._timeout is None else self._timeout
                if function == API_FUNCTION:  # API Gateway gives up at its own timeout
                    timeout = min(timeout, limits.API_TIMEOUT_SECONDS)
                env = {**settings.environment, **(self._env if self._env is not None else os.environ)}
                self._pools[function] = FunctionPool(self.app_spec, function, timeout, env=env,
                                                     max_containers=self._max_containers,
                                                     memory_mb=settings.memory_mb)
            return self._pools[function]

    def invoke(self, function: str, payload: bytes, request_id: str | None = None) -> Invocation:
        return self.pool(function).invoke(payload, request_id)

    # ------------------------------------------------------------------ service integrations
    def service_integration(self, integration, event: dict, body: bytes) -> GatewayResponse:
        context: dict[str, str] = {"requestId": event["requestContext"]["requestId"],
                                   "requestTimeEpoch": str(event["requestContext"]["requestTimeEpoch"])}
        if integration.authorizer:
            verdict = self._authorize(integration.authorizer, event)
            if isinstance(verdict, GatewayResponse):
                return verdict
            context.update(verdict)
        path_values, headers = self._map_parameters(integration, event, context)
        key = integration.key_template.format(**path_values)
        status = self._s3_put(integration.bucket_ref, key, body, headers)
        return self._integration_response(integration, status, context)

    def _authorize(self, function: str, event: dict) -> dict | GatewayResponse:
        request = apigateway.authorizer_event(event)
        outcome = self.invoke(function, json.dumps(request).encode())
        if outcome.error is not None and outcome.error.get("errorMessage") == "Unauthorized":
            return self.api.gateway_response("UNAUTHORIZED")
        if outcome.error is not None or outcome.timed_out:
            return self.api.gateway_response("AUTHORIZER_CONFIGURATION_ERROR")
        try:
            result = json.loads(outcome.payload)
            allowed = apigateway.policy_allows(result, request["methodArn"])
        except ValueError:
            return self.api.gateway_response("AUTHORIZER_CONFIGURATION_ERROR")
        context = apigateway.authorizer_context(result)
        if not allowed:
            return self.api.gateway_response("ACCESS_DENIED", context)
        return context

    @staticmethod
    def _map_parameters(integration, event: dict, context: dict) -> tuple[dict, dict]:
        headers = event["headers"]
        path_values: dict[str, str] = {}
        out_headers: dict[str, str] = {}
        for target, source in integration.parameters.items():
            if source.startswith("'") and source.endswith("'"):
                value = source[1:-1]
            elif source.startswith("context."):
                value = context.get(source[len("context."):], "")
            elif source.startswith("method.request.header."):
                value = headers.get(source[len("method.request.header."):].lower(), "")
            elif source.startswith("method.request.path."):
                value = (event.get("pathParameters") or {}).get(source[len("method.request.path."):], "")
            elif source.startswith("method.request.querystring."):
                value = (event.get("queryStringParameters") or {}).get(
                    source[len("method.request.querystring."):], "")
            else:
                value = ""
            if target.startswith("integration.request.path."):
                path_values[target[len("integration.request.path."):]] = value
            elif target.startswith("integration.request.header.") and value:
                out_headers[target[len("integration.request.header."):]] = value
        return path_values, out_headers

    def _s3_put(self, bucket_ref: str, key: str, body: bytes, headers: dict[str, str]) -> int:
        from botocore.exceptions import ClientError

        from chalicelib import aws

        bucket = self._bucket_name(bucket_ref)
        params: dict = {"Bucket": bucket, "Key": key, "Body": body}
        metadata = {}
        for name, value in headers.items():
            lowered = name.lower()
            if lowered == "content-type":
                params["ContentType"] = value
            elif lowered.startswith("x-amz-meta-"):
                metadata[lowered[len("x-amz-meta-"):]] = value
        if metadata:
            params["Metadata"] = metadata
        try:
            aws.s3().put_object(**params)
        except ClientError as exc:
            log.warning("S3 integration write of %s failed: %s", key, exc)
            return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        return 200

    def _bucket_name(self, logical_id: str) -> str:
        variables = self.api.template.get("Globals", {}).get("Function", {}).get("Environment", {}) \
            .get("Variables", {})
        for setting, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") == logical_id:
                return (self._env if self._env is not None else os.environ)[setting]
        raise KeyError(f"no setting names the bucket {logical_id}")

    def _integration_response(self, integration, status: int, context: dict) -> GatewayResponse:
        chosen = None
        for pattern, response in integration.responses.items():
            if pattern != "default" and re.fullmatch(response.get("selectionPattern", pattern), str(status)):
                chosen = response
                break
        if chosen is None:
            chosen = integration.responses.get("default") or {"statusCode": "200"}
        template = (chosen.get("responseTemplates") or {}).get("application/json", "")
        headers = [("Content-Type", "application/json")]
        for target, source in (chosen.get("responseParameters") or {}).items():  # static values only
            if target.startswith("method.response.header.") and source.startswith("'") and source.endswith("'"):
                headers.append((target[len("method.response.header."):], source[1:-1]))
        return GatewayResponse(int(chosen.get("statusCode", 200)),
                               apigateway.render(template, context).encode(), headers)

    # ------------------------------------------------------------------ lifecycle
    def start_in_thread(self) -> threading.Thread:
        self.pool(API_FUNCTION).warm()
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="aloft-gateway", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


__all__ = ["LocalGateway", "RouteTable", "BODY_TOO_LARGE"]
