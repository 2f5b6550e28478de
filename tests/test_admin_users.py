"""Admin users API: superusers manage users; everyone else is refused."""
from __future__ import annotations

from chalicelib.store import projects as project_store
from chalicelib.store import users as user_store

FIELDS = {"id", "username", "email", "first_name", "last_name", "is_superuser", "is_active",
          "date_joined", "groups"}


def test_superuser_crud(api, admin):
    created = api.post("/api/admin/users/", token=admin["token"],
                       json={"username": "carol", "password": "pw", "email": "c@example.com",
                             "first_name": "Carol"})
    assert created.status == 201 and set(created.json) == FIELDS
    assert "password" not in created.json and created.json["is_superuser"] is False
    user_id = created.json["id"]
    assert api.get(f"/api/admin/users/{user_id}/", token=admin["token"]).json == created.json
    listed = api.get("/api/admin/users/", token=admin["token"]).json
    assert [u["username"] for u in listed] == ["admin", "carol"]
    assert all("password" not in u for u in listed)
    patched = api.patch(f"/api/admin/users/{user_id}/", token=admin["token"],
                        json={"last_name": "Jones", "password": "new-pw"})
    assert patched.status == 200 and patched.json["last_name"] == "Jones"
    assert api.post("/api/token-auth/", data={"username": "carol", "password": "new-pw"}).status == 200
    assert api.post("/api/token-auth/", data={"username": "carol", "password": "pw"}).status == 400
    renamed = api.put(f"/api/admin/users/{user_id}/", token=admin["token"], json={"username": "caroline"})
    assert renamed.status == 200 and renamed.json["username"] == "caroline"
    assert user_store.get("carol") is None
    assert api.post("/api/token-auth/", data={"username": "caroline", "password": "new-pw"}).status == 200
    assert api.delete(f"/api/admin/users/{user_id}/", token=admin["token"]).status == 204
    assert api.get(f"/api/admin/users/{user_id}/", token=admin["token"]).status == 404


def test_duplicate_username_is_400(api, admin, alice):
    reply = api.post("/api/admin/users/", token=admin["token"], json={"username": "alice", "password": "x"})
    assert reply.status == 400 and reply.json == {"username": ["A user with that username already exists."]}
    other = api.post("/api/admin/users/", token=admin["token"], json={"username": "dave"}).json
    reply = api.patch(f"/api/admin/users/{other['id']}/", token=admin["token"], json={"username": "alice"})
    assert reply.status == 400
    assert user_store.get("alice")["id"] == alice["id"] and user_store.get("dave") is not None


def test_invalid_user_input(api, admin):
    for body, field in (({}, "username"), ({"username": "has space"}, "username"),
                        ({"username": "x", "is_superuser": "perhaps"}, "is_superuser"),
                        ({"username": "x", "email": "not-an-email"}, "email")):
        reply = api.post("/api/admin/users/", token=admin["token"], json=body)
        assert reply.status == 400 and field in reply.json, (body, reply.json)


def test_non_superusers_are_refused(api, alice):
    for method, path in (("GET", "/api/admin/users/"), ("POST", "/api/admin/users/"),
                         ("GET", f"/api/admin/users/{alice['id']}/"),
                         ("PATCH", f"/api/admin/users/{alice['id']}/"),
                         ("DELETE", f"/api/admin/users/{alice['id']}/")):
        reply = api.request(method, path, token=alice["token"], json={"is_superuser": True})
        assert reply.status == 403, (method, path)
        assert reply.json == {"detail": "You do not have permission to perform this action."}
    assert api.get("/api/admin/users/").status == 403
    assert user_store.get("alice")["is_superuser"] is False


def test_second_user_cannot_reach_first_users_project(api, admin):
    """The foundation issue's acceptance check, end to end through the API."""
    project = api.post("/api/projects/", token=admin["token"], data={"name": "Hello"}).json
    api.post("/api/admin/users/", token=admin["token"], json={"username": "second", "password": "pw2"})
    token = api.post("/api/token-auth/", data={"username": "second", "password": "pw2"}).json["token"]
    url = f"/api/projects/{project['id']}/"
    assert api.get(url, token=token).status == 404
    assert api.patch(url, token=token, json={"name": "x"}).status == 404
    assert api.put(url, token=token, json={"name": "x"}).status == 404
    assert api.delete(url, token=token).status == 404
    assert api.get("/api/projects/", token=token).json == []
    assert api.get(url, token=admin["token"]).json["name"] == "Hello"


def test_deleting_a_user_hands_projects_to_the_deleting_superuser(api, admin, alice):
    project = api.post("/api/projects/", token=alice["token"], json={"name": "Orphan?"}).json
    assert api.delete(f"/api/admin/users/{alice['id']}/", token=admin["token"]).status == 204
    assert project_store.get(project["id"])["owner"] == admin["id"]
    mine = api.get("/api/projects/", token=admin["token"]).json
    assert [p["id"] for p in mine] == [project["id"]]
    assert api.delete(f"/api/admin/users/{admin['id']}/", token=admin["token"]).status == 400
