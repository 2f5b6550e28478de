"""Projects API through HTTP (WebODM's `app/api/projects.py`)."""
from __future__ import annotations

import re

import pytest

from chalicelib.store import projects as project_store

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def create(api, user, **body):
    reply = api.post("/api/projects/", token=user["token"], json={"name": "P", **body})
    assert reply.status == 201, reply.json
    return reply.json


def test_create_json_and_form_and_representation(api, alice):
    created = create(api, alice, name="Survey", description="north field", tags=["a", "b"],
                     owner=999, id=77)
    assert set(created) == {"id", "tasks", "owned", "created_at", "permissions", "tags", "name",
                            "description", "public", "public_edit", "public_id"}
    assert isinstance(created["id"], int) and created["id"] != 77
    assert created["tasks"] == [] and created["owned"] is True
    assert sorted(created["permissions"]) == ["add", "change", "delete", "view"]
    assert created["tags"] == ["a", "b"] and created["description"] == "north field"
    assert ISO_Z.match(created["created_at"])
    assert project_store.get(created["id"])["owner"] == alice["id"]  # body's owner ignored
    form = api.post("/api/projects/", token=alice["token"], data={"name": "Hello", "tags": "x y",
                                                                   "public": "true"})
    assert form.status == 201
    assert form.json["tags"] == ["x", "y"] and form.json["public"] is True
    assert re.match(r"^[0-9a-f-]{36}$", form.json["public_id"])  # public gets a share id


def test_create_requires_name(api, alice):
    for body in ({}, {"name": ""}, {"name": None}, {"description": "x"}):
        reply = api.post("/api/projects/", token=alice["token"], json=body)
        assert reply.status == 400
        assert list(reply.json) == ["name"]
    assert api.post("/api/projects/", json={"name": "x"}).status == 403


def test_list_is_array_newest_first_and_envelope_with_page(api, alice):
    ids = [create(api, alice, name=f"p{i}")["id"] for i in range(12)]
    listed = api.get("/api/projects/", token=alice["token"])
    assert listed.status == 200 and isinstance(listed.json, list)
    assert [p["id"] for p in listed.json] == list(reversed(ids))
    page1 = api.get("/api/projects/", token=alice["token"], params={"page": 1}).json
    assert page1["count"] == 12 and len(page1["results"]) == 10
    assert page1["previous"] is None and page1["next"].endswith("/api/projects/?page=2")
    page2 = api.get("/api/projects/", token=alice["token"], params={"page": 2}).json
    assert [p["id"] for p in page2["results"]] == ids[1::-1]
    assert page2["next"] is None and page2["previous"].endswith("/api/projects/")
    last = api.get("/api/projects/", token=alice["token"], params={"page": "last"}).json
    assert last["results"] == page2["results"]
    for bad in (3, 0, -1, "abc", 10**20):
        reply = api.get("/api/projects/", token=alice["token"], params={"page": bad})
        assert reply.status == 404 and reply.json == {"detail": "Invalid page."}


def test_filters_search_and_ordering(api, alice):
    a = create(api, alice, name="Alpha field", description="d1", tags=["farm"])
    b = create(api, alice, name="Beta quarry", description="d2")
    c = create(api, alice, name="Gamma field", description="d1")
    get = lambda **q: [p["id"] for p in api.get("/api/projects/", token=alice["token"], params=q).json]
    assert get(id=a["id"]) == [a["id"]]
    assert get(name="Beta quarry") == [b["id"]]
    assert get(description="d1") == [c["id"], a["id"]]
    assert get(created_at=b["created_at"]) == [b["id"]]
    assert get(search="field") == [c["id"], a["id"]]
    assert get(search="gamma FIELD") == [c["id"]]
    assert get(search="#farm") == [a["id"]]
    assert get(ordering="name") == [a["id"], b["id"], c["id"]]
    assert get(ordering="-name") == [c["id"], b["id"], a["id"]]
    assert get(ordering="created_at") == [a["id"], b["id"], c["id"]]
    assert get(ordering="nonsense") == [c["id"], b["id"], a["id"]]  # unknown fields ignored
    assert get(name="999") == []
    reply = api.get("/api/projects/", token=alice["token"], params={"id": "x"})
    assert reply.status == 400 and "id" in reply.json


def test_retrieve_patch_put(api, alice):
    project = create(api, alice, name="Original", description="keep", tags=["t"])
    url = f"/api/projects/{project['id']}/"
    assert api.get(url, token=alice["token"]).json == project
    patched = api.patch(url, token=alice["token"], json={"name": "Renamed", "id": 5, "owned": False})
    assert patched.status == 200
    assert patched.json["name"] == "Renamed" and patched.json["description"] == "keep"
    assert patched.json["id"] == project["id"]
    put = api.put(url, token=alice["token"], json={"name": "Put", "public": True})
    assert put.status == 200 and put.json["public"] is True and put.json["description"] == "keep"
    assert project_store.get(project["id"])["owner"] == alice["id"]
    missing_name = api.put(url, token=alice["token"], json={"description": "x"})
    assert missing_name.status == 400 and missing_name.json == {"name": ["This field is required."]}
    assert api.get(url, token=alice["token"]).json["name"] == "Put"


def test_delete_hides_project_at_once(api, alice):
    project = create(api, alice)
    url = f"/api/projects/{project['id']}/"
    reply = api.delete(url, token=alice["token"])
    assert reply.status == 204 and reply.body in (b"", b"null")
    assert api.get(url, token=alice["token"]).status == 404
    assert api.get("/api/projects/", token=alice["token"]).json == []
    assert project_store.get(project["id"], include_deleting=True) is None  # no tasks: row gone
    assert api.delete(url, token=alice["token"]).status == 404


def test_other_users_project_is_404_everywhere(api, alice, bob):
    project = create(api, alice, name="Secret")
    url = f"/api/projects/{project['id']}/"
    assert api.get(url, token=bob["token"]).status == 404
    assert api.patch(url, token=bob["token"], json={"name": "hacked"}).status == 404
    assert api.put(url, token=bob["token"], json={"name": "hacked"}).status == 404
    assert api.delete(url, token=bob["token"]).status == 404
    assert api.get("/api/projects/", token=bob["token"]).json == []
    assert api.get("/api/projects/", token=bob["token"], params={"id": project["id"], "page": 1}
                   ).json["results"] == []
    assert api.get(url, token=alice["token"]).json["name"] == "Secret"
    # public does not open the project resource itself
    api.patch(url, token=alice["token"], json={"public": True})
    assert api.get(url, token=bob["token"]).status == 404


def test_superuser_sees_and_changes_every_project(api, alice, admin):
    project = create(api, alice, name="Alice's")
    listed = api.get("/api/projects/", token=admin["token"]).json
    assert [p["id"] for p in listed] == [project["id"]]
    assert listed[0]["owned"] is True
    reply = api.patch(f"/api/projects/{project['id']}/", token=admin["token"], json={"name": "Admin"})
    assert reply.status == 200 and reply.json["name"] == "Admin"
    assert project_store.get(project["id"])["owner"] == alice["id"]


@pytest.mark.parametrize("path", ["/api/projects/abc/", "/api/projects/0/", "/api/projects/-3/",
                                  "/api/projects/99999/", "/api/projects/1.5/"])
def test_bad_or_unknown_ids_are_404(api, alice, path):
    reply = api.get(path, token=alice["token"])
    assert reply.status == 404 and reply.json == {"detail": "Not found."}


def test_invalid_field_values(api, alice):
    project = create(api, alice)
    url = f"/api/projects/{project['id']}/"
    cases = [({"name": "x" * 256}, "name"), ({"public": "maybe"}, "public"),
             ({"tags": [1, 2]}, "tags"), ({"public_id": "not-a-uuid"}, "public_id"),
             ({"name": 12}, "name"), ({"description": ["a"]}, "description")]
    for body, field in cases:
        reply = api.patch(url, token=alice["token"], json=body)
        assert reply.status == 400 and field in reply.json, (body, reply.json)
    assert api.get(url, token=alice["token"]).json == project  # nothing stored
