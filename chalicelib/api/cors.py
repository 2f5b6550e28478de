"""Cross-origin requests and the binary rule, for every route the API function serves.

CORS as WebODM configures django-cors-headers (`CORS_ORIGIN_ALLOW_ALL` with
`CORS_ALLOW_CREDENTIALS`): any origin may call, with credentials, so a request carrying
`Origin` gets that origin back in `Access-Control-Allow-Origin` (`*` is not allowed
with credentials), `Access-Control-Allow-Credentials: true` and `Vary: Origin`. A
preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered 200
with django-cors-headers' default methods, headers and max-age.

Preflights are answered by the API function, not by API Gateway mock integrations
(Chalice's `CORSConfig`): a mock integration can only send a fixed origin, never echo
the caller's, and under binary media type `*/*` needs care of its own.

The binary rule (issue 11): the API's binary media types include `*/*`, so API Gateway
base64-encodes every request body into the proxy event and decodes every base64
response body, whatever the client's `Accept` says. Chalice then base64-encodes every
response body, and refuses a binary response to a request without `Accept`
("Request did not specify an Accept header"); `normalise_request` and
`normalise_response` keep both working.
"""
from __future__ import annotations

from chalice.app import CaseInsensitiveMapping, Request, Response

# django-cors-headers' defaults (corsheaders/defaults.py), which WebODM keeps.
ALLOW_HEADERS = ("accept", "accept-encoding", "authorization", "content-type", "dnt", "origin",
                 "user-agent", "x-csrftoken", "x-requested-with")
ALLOW_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")
PREFLIGHT_MAX_AGE = 86400


def normalise_request(request: Request) -> None:
    """A request without `Accept` accepts any media type (RFC 9110 §12.5.1): say so, so
    that Chalice's check of binary answers against `Accept` lets images through."""
    if request is not None and "accept" not in request.headers:
        request.headers = CaseInsensitiveMapping({**dict(request.headers), "accept": "*/*"})


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return not kind or kind == "application/json" or kind.endswith("+json")


def normalise_response(response: Response) -> Response:
    """Under `*/*` Chalice base64-encodes every body; it takes text only for JSON (or no
    type), so a text body of another type (console `f=raw`, `text/plain`) goes as bytes."""
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    if isinstance(response.body, str) and not _is_json(str(headers.get("content-type", ""))):
        response.body = response.body.encode("utf-8")
    return response


def is_preflight(request: Request) -> bool:
    return (request.method == "OPTIONS" and bool(request.headers.get("origin"))
            and "access-control-request-method" in request.headers)


def preflight_headers() -> dict[str, str]:
    return {"Access-Control-Allow-Headers": ", ".join(ALLOW_HEADERS),
            "Access-Control-Allow-Methods": ", ".join(ALLOW_METHODS),
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE)}


def add_headers(request: Request, response: Response) -> Response:
    """The CORS headers of an answer to a request that names its `Origin`."""
    origin = request.headers.get("origin") if request is not None else None
    if not origin:
        return response
    headers = dict(response.headers or {})
    for name in [k for k in headers if k.lower() in ("access-control-allow-origin",
                                                     "access-control-allow-credentials")]:
        del headers[name]
    headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Allow-Credentials"] = "true"
    vary_key = next((k for k in headers if k.lower() == "vary"), None)
    vary = [v.strip() for v in str(headers.pop(vary_key, "")).split(",") if v.strip()] if vary_key else []
    if not any(v.lower() == "origin" for v in vary):
        vary.append("Origin")
    headers["Vary"] = ", ".join(vary)
    response.headers = headers
    return response
