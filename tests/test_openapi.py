"""The OpenAPI document: generated, complete, valid, served, and committed up to date."""
from __future__ import annotations

import json

from openapi_spec_validator import validate

from chalicelib.openapi import build, document_json
from tests.conftest import ROOT


def _routes():
    from app import app

    for path, entries in app.routes.items():
        if path == "/{proxy+}":
            continue
        for method, entry in entries.items():
            if not getattr(entry.view_function, "is_method_not_allowed", False):
                yield path, method


def _doc_path(path: str) -> str:
    """The document's path of a route: the generator's own rule (WebODM's trailing slashes)."""
    from chalicelib.openapi import _doc_path as doc_path

    return doc_path(path)


def test_every_route_and_method_is_documented():
    from app import app

    document = build(app)
    documented = {(p, m.upper()) for p, ops in document["paths"].items() for m in ops}
    expected = {(_doc_path(p), m) for p, m in _routes()}
    assert expected - documented == set()
    assert len(expected) >= 36


def test_document_is_valid_openapi_3_1():
    document = json.loads(document_json())
    assert document["openapi"] == "3.1.0"
    validate(document)
    task_create = document["paths"]["/api/projects/{project_id}/tasks/"]["post"]
    assert set(task_create["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    assert task_create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskOut"}
    node = document["components"]["schemas"]["NodeOut"]
    assert "token" not in node["properties"]


def test_served_document_equals_committed_file(api):
    reply = api.get("/api/openapi.json")
    assert reply.status == 200
    committed = (ROOT / "openapi.json").read_text()
    assert reply.json == json.loads(committed)
    assert committed == document_json(), "openapi.json is stale: run `make openapi`"
