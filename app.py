"""Aloft: WebODM's REST API on AWS Chalice.

This module only wires things together: the blueprints, the error middleware and
the scheduled poller. No work happens at import beyond that (cold start).
"""
from __future__ import annotations

import logging
import os
import time

from chalice import Chalice, Rate, Response

from chalicelib.api import auth as auth_routes
from chalicelib.api import copies as copy_routes
from chalicelib.api import exports as export_routes
from chalicelib.api import groups as group_routes
from chalicelib.api import keys as key_routes
from chalicelib.api import imports as import_routes
from chalicelib.api import nodes as node_routes
from chalicelib.api import pictures as picture_routes
from chalicelib.api import presets as preset_routes
from chalicelib.api import projects as project_routes
from chalicelib.api import sharing as sharing_routes
from chalicelib.api import tasks as task_routes
from chalicelib.api import uploads as upload_routes
from chalicelib.api import users as user_routes
from chalicelib.api import webhooks as webhook_routes
from chalicelib.api import cors
from chalicelib.api import maps as map_routes
from chalicelib.api.common import BODY_CONTENT_TYPES, domain_error_body
from chalicelib.apidoc import GATEWAY_ROUTES, doc
from chalicelib import logs
from chalicelib.config import LOCAL_STAGE, settings
from chalicelib.errors import ApiError, DomainError

if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    settings()  # a deployed stage without its JWT secret fails at start, not on a request

app = Chalice(app_name="aloft")
app.log.setLevel(logging.INFO)
if os.environ.get("ALOFT_STAGE", LOCAL_STAGE) != LOCAL_STAGE:
    logs.use_json(app.log)  # one JSON object per line for CloudWatch Logs Insights
app.api.binary_types.append("multipart/form-data")
# Images answer real bytes whatever the client's Accept (a browser's, QGIS's, `*/*`): API
# Gateway decodes a base64 body only when the first Accept type is a binary media type,
# so every type is one. Request bodies then all arrive base64-encoded, JSON answers
# travel base64-encoded too and are decoded for the client (chalicelib/api/cors.py).
app.api.binary_types.append("*/*")

for blueprint in (auth_routes.bp, user_routes.bp, project_routes.bp, node_routes.bp,
                  task_routes.bp, upload_routes.bp, preset_routes.bp, map_routes.bp, picture_routes.bp,
                  export_routes.bp, sharing_routes.bp, group_routes.bp, key_routes.bp, copy_routes.bp,
                  import_routes.bp, webhook_routes.bp):
    app.register_blueprint(blueprint)

_JSON = {"Content-Type": "application/json"}
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]  # OPTIONS: _options below


def _drf_body(response: Response, method: str) -> Response:
    """Chalice's own {"Code", "Message"} errors (405, 415, 500...) in DRF's shape."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
        return response
    if response.status_code == 405:
        detail = f'Method "{method}" not allowed.'
    elif response.status_code >= 500:
        detail = "Internal server error"
    else:
        detail = body["Message"]
    response.body = {"detail": detail}
    response.headers = {**(response.headers or {}), **_JSON}
    return response


@app.middleware("http")
def drf_errors(event, get_response):
    """ApiError and domain errors -> DRF bodies; anything unexpected -> a logged 500. Deployed,
    one access line per request (locally the gateway prints it, with what never reaches here)."""
    started = time.perf_counter()
    cors.normalise_request(event)
    try:
        response = _drf_body(get_response(event), event.method)
    except ApiError as error:
        response = Response(body=error.body, status_code=error.status, headers={**_JSON, **error.headers})
    except DomainError as error:
        status, body = domain_error_body(error)
        response = Response(body=body, status_code=status, headers=_JSON)
    except Exception:  # noqa: BLE001 - the last line of defence
        app.log.exception("Unhandled error on %s %s", event.method, event.path)
        response = Response(body={"detail": "Internal server error"}, status_code=500, headers=_JSON)
    response = cors.add_headers(event, cors.normalise_response(response))
    if settings().stage != LOCAL_STAGE:
        fact = logs.request_fact(event.method, event.path, response.status_code, started)
        app.log.info("%(method)s %(path)s %(status)s %(ms)s ms", fact, extra={"fact": fact})
    return response


@app.schedule(Rate(1, unit=Rate.MINUTES))
def poller(event):
    """The safety net: refresh nodes, carry on jobs, resend overdue steps (chalicelib/poller.py)."""
    from chalicelib.poller import run_cycle

    return run_cycle(event.context)


# One message per task step. Batch size 1: a step may take minutes (a relay, a result
# download) and must not hold other tasks' steps, nor make them retry when it fails.
# At most 50 at once: a burst of new tasks then opens at most 50 × ALOFT_UPLOAD_CONCURRENCY
# uploads to the nodes, and leaves the account's concurrency to the API. The queue is the
# template's WorkQueue: `chalice package` writes this name into a Fn::Sub of its ARN.
@app.on_sqs_message(queue="${WorkQueue.QueueName}", batch_size=1, maximum_concurrency=50)
def worker(event):
    """Advance the task each work message names (chalicelib/steps, `advance_task`)."""
    from chalicelib.steps import handle_record

    for record in event:
        handle_record(record.to_dict(), event.context)


@app.lambda_function(name="upload_authorizer")
def upload_authorizer(event, context):
    """API Gateway's REQUEST authorizer of POST .../upload/ (chalicelib/upload_authorizer.py)."""
    from chalicelib.upload_authorizer import authorize

    return authorize(event)


@app.route("/api", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("The API root", {200: dict}, auth="none", tags=("meta",))
def api_root():
    """The API root, like DRF's router root."""
    return {"projects": "/api/projects/", "processingnodes": "/api/processingnodes/",
            "presets": "/api/presets/"}


@app.route("/api/openapi.json", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("This OpenAPI 3.1 document", {200: dict}, auth="none", tags=("meta",))
def openapi_document():
    """Generated from the route table and the pydantic models (chalicelib/openapi.py)."""
    from chalicelib.openapi import document_json

    return Response(body=document_json(), status_code=200, headers=_JSON)


@app.route("/{proxy+}", methods=_ALL_METHODS, content_types=BODY_CONTENT_TYPES)
def not_found_fallback():
    """Unknown paths are DRF 404s rather than API Gateway's 403 "Missing Authentication Token"."""
    return Response(body={"detail": "Not found."}, status_code=404, headers=_JSON)


def _method_not_allowed_view(allowed: list[str]):
    def method_not_allowed(**_path_params):
        method = app.current_request.method
        return Response(body={"detail": f'Method "{method}" not allowed.'}, status_code=405,
                        headers={**_JSON, "Allow": ", ".join(allowed)})

    method_not_allowed.is_method_not_allowed = True  # the OpenAPI generator skips these
    return method_not_allowed


# API Gateway answers a method a resource lacks with 403 "Missing Authentication Token";
# routing every other method to a 405 view keeps WebODM's 405 in AWS as well as locally.
# Methods API Gateway serves itself (GATEWAY_ROUTES: `upload/`) are not Chalice routes.
_served = {path: set(entries) for path, entries in app.routes.items() if path != "/{proxy+}"}
for _path, _method, _, _ in GATEWAY_ROUTES:
    _served.setdefault(_path, set()).add(_method)
for _path, _methods in _served.items():
    _missing = [m for m in _ALL_METHODS if m not in _methods]
    if _missing:
        app.route(_path, methods=_missing, content_types=BODY_CONTENT_TYPES)(
            _method_not_allowed_view(sorted(_methods)))


def _options_view(allowed: list[str] | None):
    def options(**_path_params):
        """CORS preflight (WebODM's django-cors-headers: any origin, with credentials); a plain
        OPTIONS names the methods (an unknown path: 404). The middleware adds the origin's headers."""
        if cors.is_preflight(app.current_request):
            return Response(body="", status_code=200, headers=cors.preflight_headers())
        if allowed is None:
            return not_found_fallback()
        return Response(body="", status_code=200, headers={"Allow": ", ".join([*allowed, "OPTIONS"])})

    options.is_method_not_allowed = True  # not an operation of the OpenAPI document
    return options


# Every resource answers OPTIONS through the API function (API Gateway would answer a
# resource without it with 403), unknown paths included, as django-cors-headers does.
for _path, _methods in _served.items():
    app.route(_path, methods=["OPTIONS"], content_types=BODY_CONTENT_TYPES)(_options_view(sorted(_methods)))
app.route("/{proxy+}", methods=["OPTIONS"], content_types=BODY_CONTENT_TYPES)(_options_view(None))
