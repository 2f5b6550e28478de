"""The OpenAPI 3.1 document, generated from Chalice's route table and the pydantic models.

Served at GET /api/openapi.json and written to openapi.json by `make openapi`
(`python -m chalicelib.openapi`). Every route must carry apidoc metadata.
"""
from __future__ import annotations

import functools
import json
import re
import sys
from typing import Any

from pydantic import BaseModel, RootModel
from pydantic.json_schema import models_json_schema

from . import apidoc

TITLE = "Aloft: WebODM's REST API on AWS Lambda"
VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
# Routes WebODM serves with a trailing slash (router routes) keep it in the document.
_NO_TRAILING_SLASH = re.compile(r"/(download/\{[^}]+\}|assets/\{[^}]+\}|openapi\.json|thumbnail|"
                                r"images/(thumbnail|download)/\{[^}]+\}|\w+/export|workers/(check|get)/\{[^}]+\}|"
                                r"tasks/import(/presign|/external/(init|upload|commit))?)$")


class MissingDoc(Exception):
    """A route has no apidoc metadata."""


class FieldErrors(RootModel[dict[str, list[str]]]):
    """DRF field errors: {"field": ["message", ...]}."""


class ErrorList(RootModel[list[str]]):
    """DRF's ValidationError("text"): ["text"]."""


def _path_params(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\+?\}", path)


def _doc_path(path: str) -> str:
    path = re.sub(r"\{(\w+)\+\}", r"{\1}", path)
    return path if _NO_TRAILING_SLASH.search(path) or path.endswith("/") else path + "/"


def _models(routes: list[tuple[str, str, apidoc.RouteDoc]]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [FieldErrors, ErrorList]
    from .models import Detail, OutputJson

    found += [Detail, OutputJson]

    def add(kind: Any) -> None:
        for model in _flatten(kind):
            if isinstance(model, type) and issubclass(model, BaseModel) and model not in found:
                found.append(model)

    for _, _, meta in routes:
        add(meta.body)
        add(meta.form_body)
        for kind in meta.responses.values():
            add(kind)
    return found


def _flatten(kind: Any) -> list:
    if isinstance(kind, (list, tuple)):
        return [m for item in kind for m in _flatten(item)]
    return [kind]


def _schema_of(kind: Any) -> dict:
    """A response kind -> JSON schema: Model, [Model] (array), (A, B) (anyOf)."""
    if isinstance(kind, tuple):
        return {"anyOf": [_schema_of(k) for k in kind]}
    if isinstance(kind, list):
        return {"type": "array", "items": _schema_of(kind[0])}
    if kind is dict:
        return {"type": "object"}
    return {"$ref": _REF.format(model=kind if isinstance(kind, str) else kind.__name__)}


def _response(status: int, kind: Any) -> dict:
    if kind == apidoc.NO_CONTENT:
        return {"description": "No content"}
    if kind == apidoc.REDIRECT:
        return {"description": "Redirect to a short-lived presigned S3 URL",
                "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}}}
    if kind == apidoc.TEXT:
        return {"description": "Plain text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    if kind == apidoc.CONSOLE:
        return {"description": "Console lines: a JSON string (f=text), lines and count (f=json) or text (f=raw)",
                "content": {"application/json": {"schema": {"anyOf": [
                    {"type": "string"}, {"$ref": _REF.format(model="OutputJson")}]}},
                    "text/plain": {"schema": {"type": "string"}}}}
    if kind == apidoc.TILE:
        image = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
        return {"description": "A map tile (an explicit extension, else JPEG when every pixel has data, "
                               "WEBP when Accept names image/webp, PNG otherwise)",
                "content": {"image/png": image, "image/jpg": image, "image/webp": image}}
    if kind == apidoc.PICTURE:
        image = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
        return {"description": "A picture (bytes)",
                "content": {"image/png": image, "image/webp": image, "image/jpeg": image}}
    if kind == apidoc.INVALID:
        return {"description": "Invalid input", "content": {"application/json": {"schema": _ERROR_400}}}
    descriptions = {200: "OK", 201: "Created", 400: "Invalid input", 403: "Not allowed",
                    404: "Not found", 409: "Conflict", 413: "Too large", 415: "Unsupported media type"}
    return {"description": descriptions.get(status, "Response"),
            "content": {"application/json": {"schema": _schema_of(kind)}}}


_ERROR_400 = {"anyOf": [{"$ref": _REF.format(model="FieldErrors")}, {"$ref": _REF.format(model="ErrorList")},
                        {"$ref": _REF.format(model="Detail")}]}


def _operation(path: str, method: str, meta: apidoc.RouteDoc, view_name: str) -> dict:
    from .models import Detail

    params = []
    for name in _path_params(path):
        schema = meta.path_types.get(name) or (
            {"type": "integer"} if name.endswith("_id") and name != "task_id" else
            {"type": "string", "format": "uuid"} if name == "task_id" else {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for param in meta.query:
        params.append({"name": param.name, "in": "query", "required": False, "schema": param.schema,
                       **({"description": param.description} if param.description else {})})
    responses = {str(status): _response(status, kind) for status, kind in meta.responses.items()}
    if meta.listed:
        responses["200"]["headers"] = {"Link": {
            "description": "`<url>; rel=\"next\"`: the next page, when this answer does not hold the rest",
            "schema": {"type": "string"}}}
    if meta.body is not None or meta.query or meta.files:
        responses.setdefault("400", _response(400, apidoc.INVALID))
    if meta.auth == "required":
        responses.setdefault("403", _response(403, Detail))
    if _path_params(path) or apidoc.PAGE in meta.query:  # a page past the end: 404 "Invalid page."
        responses.setdefault("404", _response(404, Detail))
    if meta.body is not None or meta.files:
        responses.setdefault("413", _response(413, Detail))  # a JSON or form body over 4 MiB
        responses.setdefault("415", _response(415, Detail))
    operation: dict = {"operationId": view_name, "summary": meta.summary, "parameters": params,
                       "responses": responses, "tags": list(meta.tags)}
    if meta.description:
        operation["description"] = meta.description
    if meta.auth == "none":
        operation["security"] = []
    elif meta.auth == "optional":
        operation["security"] = [{"jwtHeader": []}, {"jwtQuery": []}, {}]
    if meta.body is not None or meta.files:
        operation["requestBody"] = _request_body(meta)
    return operation


def _request_body(meta: apidoc.RouteDoc) -> dict:
    content = {}
    if meta.body is not None:
        content["application/json"] = {"schema": _schema_of(meta.body)}
    form_model = meta.form_body or meta.body
    fields = [_schema_of(form_model)] if form_model is not None else []
    if form_model is not None:
        content["application/x-www-form-urlencoded"] = {"schema": fields[0]}
    files = [{"type": "object", "properties": {meta.files: {
        "type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
        "description": "Files (any field name is accepted)"}}}] if meta.files else []
    parts = fields + files
    content["multipart/form-data"] = {"schema": parts[0] if len(parts) == 1 else {"allOf": parts}}
    return {"required": False, "content": content}


def build(app) -> dict:
    routes: list[tuple[str, str, apidoc.RouteDoc, str]] = []
    for path, entries in sorted(app.routes.items()):
        if path == "/{proxy+}":
            continue
        for method, entry in sorted(entries.items()):
            view = entry.view_function
            if getattr(view, "is_method_not_allowed", False):
                continue
            meta = getattr(view, "__apidoc__", None)
            if meta is None:
                raise MissingDoc(f"{method} {path} ({entry.view_name}) has no apidoc metadata")
            routes.append((path, method, meta, entry.view_name))
    for path, method, operation_id, meta in apidoc.GATEWAY_ROUTES:  # served by API Gateway itself
        routes.append((path, method, meta, operation_id.removesuffix(f"_{method.lower()}")))
    models = _models([(p, m, d) for p, m, d, _ in routes])
    _, schemas = models_json_schema([(m, "serialization" if m.__name__.endswith("Out") else "validation")
                                     for m in models], ref_template=_REF)
    paths: dict = {}
    for path, method, meta, view_name in routes:
        operation = _operation(path, method, meta, f"{view_name}_{method.lower()}")
        paths.setdefault(_doc_path(path), {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": _description()},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "jwtHeader": {"type": "apiKey", "in": "header", "name": "Authorization",
                              "description": "`JWT <token>` from POST /api/token-auth/, or an API key from "
                                             "POST /api/keys/ as `JWT <key>` or `Bearer <key>`"},
                "jwtQuery": {"type": "apiKey", "in": "query", "name": "jwt",
                             "description": "A token, or an API key"},
            },
        },
        "security": [{"jwtHeader": []}, {"jwtQuery": []}],
    }


def _description() -> str:
    from . import limits

    return (
        "WebODM-compatible REST API. Authenticate with `POST /api/token-auth/` and send "
        "`Authorization: JWT <token>` (or `?jwt=<token>`). A long-lived API key (`POST /api/keys/`) goes "
        "wherever a token does, and as `Authorization: Bearer <key>` too.\n\n"
        "Limits on AWS (API Gateway REST API + Lambda), enforced by the local stack too: a request body "
        f"of at most {limits.API_GATEWAY_MAX_BODY_BYTES:,} bytes (else 413, text body "
        f"`HTTP content length exceeded {limits.API_GATEWAY_MAX_BODY_BYTES} bytes.`); for routes run by "
        f"Lambda, a proxy event of at most {limits.LAMBDA_MAX_EVENT_BYTES:,} bytes as JSON, with a binary "
        "body (multipart included) base64-encoded in it, so about 4.7 MB of files (else 413 "
        f"`{{\"message\": \"Request Too Long\"}}`); a response of at most {limits.LAMBDA_MAX_RESPONSE_BYTES:,} "
        "bytes (else 502 `{\"message\": \"Internal server error\"}`: lists and console output are bounded "
        f"so they never reach it); {limits.API_TIMEOUT_SECONDS} s per request (else 504 "
        "`{\"message\": \"Endpoint request timed out\"}`). Upload paths and their ceiling per request: "
        "`POST .../tasks/` with `images` (one Lambda event: ~4.7 MB of images), `POST .../upload/` "
        f"(API Gateway writes the body to S3: {limits.API_GATEWAY_MAX_BODY_BYTES:,} bytes, one image or one "
        "Dropzone chunk), `POST .../presign/` then PUT to S3 (5 GB per file: the path for real datasets).")


@functools.lru_cache(maxsize=1)
def document_json() -> str:
    """The document as served (built once per Lambda container)."""
    from app import app

    return json.dumps(build(app), indent=2, sort_keys=False) + "\n"


def main() -> None:
    sys.stdout.write(document_json())


if __name__ == "__main__":
    main()
