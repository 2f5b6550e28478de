"""Project sharing through HTTP: permissions for users and groups, `permissions/` and `edit/`,
the share dialog's look-ups, admin groups, and WebODM's rules (app/tests/test_api_projects.py,
the sharing parts of test_api.py and test_api_task.py).
"""
from __future__ import annotations

import pytest

from tests.conftest import make_user, token_for
from tests.helpers import complete_in_s3, new_project, new_task
from tests.sample_data import build_all_zip

ALL = ["add", "change", "delete", "view"]


def person(name: str, **extra) -> dict:
    user = make_user(name, **extra)
    return {**user, "token": token_for(user)}


def share(api, owner: dict, project: dict, rows: list[dict], **fields) -> None:
    reply = api.post(f"/api/projects/{project['id']}/edit/", token=owner["token"],
                     json={"permissions": rows, **fields})
    assert reply.status == 200, reply.json
    assert reply.json == {"success": True}


def new_group(api, admin: dict, name: str, members: list[dict] = ()) -> dict:
    reply = api.post("/api/admin/groups/", token=admin["token"],
                     json={"name": name, "members": [m["id"] for m in members]})
    assert reply.status == 201, reply.json
    return reply.json


def token_of(who: dict | None) -> str | None:
    return who["token"] if who else None


# ------------------------------------------------------------------ the scenario

def test_share_view_then_change_then_remove(api, alice, bob):
    """A shares with B (view): B lists it, reads tasks and downloads, gets 403 on PATCH.
    A grants change: B's PATCH works. A removes B: 404 again."""
    project = new_project(api, alice, "Shared")
    task = new_task(api, alice, project, name="Flight")
    complete_in_s3(project["id"], task["id"], build_all_zip())
    base = f"/api/projects/{project['id']}/"
    one = f"{base}tasks/{task['id']}/"
    assert api.get(base, token=bob["token"]).status == 404
    assert [p["id"] for p in api.get("/api/projects/", token=bob["token"]).json] == []

    share(api, alice, project, [{"username": "bob", "permissions": ["view"]}])
    listed = api.get("/api/projects/", token=bob["token"]).json
    assert [(p["id"], p["owned"], p["permissions"]) for p in listed] == [(project["id"], False, ["view"])]
    assert listed[0]["tasks"] == [task["id"]]
    assert [t["id"] for t in api.get(base + "tasks/", token=bob["token"]).json] == [task["id"]]
    assert api.get(one, token=bob["token"]).json["status"] == 40
    assert api.get(one + "output/", token=bob["token"]).status == 200
    download = api.get(one + "download/orthophoto.tif", token=bob["token"])
    assert download.status == 302 and "odm_orthophoto.tif" in download.headers["Location"]
    denied = api.patch(base, token=bob["token"], json={"name": "mine"})
    assert denied.status == 403
    assert denied.json == {"detail": "You do not have permission to perform this action."}
    assert api.get(base, token=alice["token"]).json["name"] == "Shared"

    share(api, alice, project, [{"username": "bob", "permissions": ["view", "change"]}])
    changed = api.patch(base, token=bob["token"], json={"name": "Renamed by Bob"})
    assert changed.status == 200
    assert (changed.json["name"], changed.json["owned"], changed.json["permissions"]) == \
        ("Renamed by Bob", False, ["change", "view"])
    assert api.get(base, token=alice["token"]).json["name"] == "Renamed by Bob"

    share(api, alice, project, [])
    assert api.get(base, token=bob["token"]).status == 404
    assert api.patch(base, token=bob["token"], json={"name": "again"}).status == 404
    assert api.get(base + "tasks/", token=bob["token"]).status == 404
    assert api.get(one + "download/orthophoto.tif", token=bob["token"]).status == 404
    assert api.get("/api/projects/", token=bob["token"]).json == []


# ------------------------------------------------------------------ the permission matrix

@pytest.fixture
def world(api, admin, alice):
    """alice's project with a completed task, shared with a viewer, a changer, a deleter and
    a group; a stranger; a public project of alice's."""
    people = {"owner": alice, "viewer": person("viewer"), "changer": person("changer"),
              "deleter": person("deleter"), "member": person("member"), "stranger": person("stranger"),
              "superuser": admin, "anonymous": None}
    group = new_group(api, admin, "Crew", [people["member"]])
    project = new_project(api, alice, "Matrix")
    task = new_task(api, alice, project, name="T")
    complete_in_s3(project["id"], task["id"], build_all_zip())
    share(api, alice, project, [
        {"username": "viewer", "permissions": ["view"]},
        {"username": "changer", "permissions": ["view", "add", "change"]},
        {"username": "deleter", "permissions": ["view", "delete"]},
        {"groupname": "Crew", "permissions": ["view", "change"]},
    ])
    public = new_project(api, alice, "Public")
    public_task = new_task(api, alice, public)
    complete_in_s3(public["id"], public_task["id"], build_all_zip())
    assert api.patch(f"/api/projects/{public['id']}/", token=alice["token"], json={"public": True}).status == 200
    return people, group, project, task, public, public_task


def statuses(people: dict, call) -> dict[str, int]:
    return {role: call(who).status for role, who in people.items()}


def test_matrix_project_get_patch(api, world):
    people, _, project, _, public, _ = world
    url = f"/api/projects/{project['id']}/"
    assert statuses(people, lambda who: api.get(url, token=token_of(who))) == {
        "owner": 200, "viewer": 200, "changer": 200, "deleter": 200, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}
    assert statuses(people, lambda who: api.patch(url, token=token_of(who), json={"description": "x"})) == {
        "owner": 200, "viewer": 403, "changer": 200, "deleter": 403, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}
    assert statuses(people, lambda who: api.put(url, token=token_of(who), json={"name": "M"})) == {
        "owner": 200, "viewer": 403, "changer": 200, "deleter": 403, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}
    # a public project is still no project to those who cannot view it (WebODM's test)
    public_url = f"/api/projects/{public['id']}/"
    assert api.get(public_url, token=people["stranger"]["token"]).status == 404
    assert api.get(public_url).status == 403
    shown = {role: api.get(url, token=who["token"]).json for role, who in people.items() if who}
    assert {role: (p["owned"], p["permissions"]) for role, p in shown.items() if "id" in p} == {
        "owner": (True, ALL), "viewer": (False, ["view"]), "changer": (False, ["add", "change", "view"]),
        "deleter": (False, ["delete", "view"]), "member": (False, ["change", "view"]),
        "superuser": (True, ALL)}


def test_matrix_project_list(api, world):
    people, _, project, _, public, _ = world
    listed = {role: [p["id"] for p in api.get("/api/projects/", token=who["token"]).json]
              for role, who in people.items() if who}
    assert listed == {"owner": [public["id"], project["id"]], "viewer": [project["id"]],
                      "changer": [project["id"]], "deleter": [project["id"]], "member": [project["id"]],
                      "stranger": [], "superuser": [public["id"], project["id"]]}
    page = api.get("/api/projects/", token=people["member"]["token"], params={"page": 1}).json
    assert page["count"] == 1 and page["results"][0]["owned"] is False
    assert api.get("/api/projects/", token=people["viewer"]["token"], params={"id": public["id"]}).json == []


def test_matrix_tasks(api, world):
    people, _, project, task, _, _ = world
    tasks_url = f"/api/projects/{project['id']}/tasks/"
    one = f"{tasks_url}{task['id']}/"
    assert statuses(people, lambda who: api.get(tasks_url, token=token_of(who))) == {
        "owner": 200, "viewer": 200, "changer": 200, "deleter": 200, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}
    # every failure of get_and_check_project is a 404 (a viewer's writes too, as WebODM)
    assert statuses(people, lambda who: api.post(tasks_url, token=token_of(who), json={"partial": True})) == {
        "owner": 201, "viewer": 404, "changer": 201, "deleter": 404, "member": 201, "stranger": 404,
        "superuser": 201, "anonymous": 403}
    assert statuses(people, lambda who: api.patch(one, token=token_of(who), json={"name": "n"})) == {
        "owner": 200, "viewer": 404, "changer": 200, "deleter": 404, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}
    assert statuses(people, lambda who: api.get(one, token=token_of(who))) == {
        "owner": 200, "viewer": 200, "changer": 200, "deleter": 200, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 404}
    assert statuses(people, lambda who: api.get(one + "output/", token=token_of(who))) == {
        "owner": 200, "viewer": 200, "changer": 200, "deleter": 200, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}
    assert statuses(people, lambda who: api.post(one + "cancel/", token=token_of(who))) == {
        "owner": 200, "viewer": 404, "changer": 200, "deleter": 404, "member": 200, "stranger": 404,
        "superuser": 200, "anonymous": 403}


def test_matrix_task_remove_needs_delete(api, world):
    people, _, project, _, _, _ = world
    tasks_url = f"/api/projects/{project['id']}/tasks/"
    removed = {}
    for role in ("viewer", "changer", "member", "stranger", "deleter"):
        spare = api.post(tasks_url, token=people["owner"]["token"], json={"partial": True}).json
        removed[role] = api.post(f"{tasks_url}{spare['id']}/remove/", token=people[role]["token"]).status
    assert removed == {"viewer": 404, "changer": 404, "member": 404, "stranger": 404, "deleter": 200}


def test_matrix_downloads_and_public(api, world):
    people, _, project, task, public, public_task = world
    download = f"/api/projects/{project['id']}/tasks/{task['id']}/download/orthophoto.tif"
    assert statuses(people, lambda who: api.get(download, token=token_of(who))) == {
        "owner": 302, "viewer": 302, "changer": 302, "deleter": 302, "member": 302, "stranger": 404,
        "superuser": 302, "anonymous": 404}
    base = f"/api/projects/{public['id']}/tasks/"
    public_download = f"{base}{public_task['id']}/download/orthophoto.tif"
    assert statuses(people, lambda who: api.get(public_download, token=token_of(who))) == {
        role: 302 for role in people}
    assert statuses(people, lambda who: api.get(f"{base}{public_task['id']}/", token=token_of(who))) == {
        role: 200 for role in people}
    # public lets everyone read, never write, nor list the project's tasks
    stranger = people["stranger"]["token"]
    assert api.patch(f"{base}{public_task['id']}/", token=stranger, json={"name": "x"}).status == 404
    assert api.get(base, token=stranger).status == 404
    # a public task of a private project, and public_edit, as WebODM's test_api_task sharing part
    private_one = f"/api/projects/{project['id']}/tasks/{task['id']}/"
    assert api.patch(private_one, token=people["owner"]["token"], json={"public": True, "public_edit": True}).status == 200
    assert api.get(private_one).status == 200 and api.get(private_one, token=stranger).status == 200
    assert api.patch(private_one, token=stranger, json={"name": "x"}).status == 404
    assert api.get(f"/api/projects/{project['id']}/", token=stranger).status == 404


def test_matrix_delete(api, world):
    """The owner or a superuser deletes; a sharee only leaves (their own rights go), as WebODM."""
    people, _, project, _, public, _ = world
    url = f"/api/projects/{project['id']}/"
    assert api.delete(url).status == 403
    assert api.delete(url, token=people["stranger"]["token"]).status == 404
    for role in ("viewer", "deleter", "changer"):
        assert api.delete(url, token=people[role]["token"]).status == 204
        assert api.get(url, token=people[role]["token"]).status == 404
        assert api.get(url, token=people["owner"]["token"]).status == 200
    # a group member's own rights go; the group's stay (WebODM removes the user's perms only)
    assert api.delete(url, token=people["member"]["token"]).status == 204
    assert api.get(url, token=people["member"]["token"]).status == 200
    rows = api.get(url + "permissions/", token=people["owner"]["token"]).json
    assert [r.get("username") or r.get("groupname") for r in rows] == ["alice", "Crew"]
    assert api.delete(url, token=people["superuser"]["token"]).status == 204
    assert api.get(url, token=people["owner"]["token"]).status == 404
    assert api.get(url, token=people["member"]["token"]).status == 404
    from chalicelib.store import shares

    assert shares.for_project(project["id"]) == []  # a deleted project's shares go with it
    assert api.delete(f"/api/projects/{public['id']}/", token=people["owner"]["token"]).status == 204


def test_task_moved_only_into_a_project_one_can_change(api, world):
    """PATCH `project` needs change on the target: 403 otherwise (WebODM's test_api)."""
    people, _, project, task, public, _ = world
    one = f"/api/projects/{project['id']}/tasks/{task['id']}/"
    changer = people["changer"]
    assert api.patch(one, token=changer["token"], json={"project": public["id"]}).status == 403
    own = new_project(api, changer, "Changer's")
    viewed = new_project(api, people["owner"], "Viewed only")
    share(api, people["owner"], viewed, [{"username": "changer", "permissions": ["view"]}])
    assert api.patch(one, token=changer["token"], json={"project": viewed["id"]}).status == 403
    moved = api.patch(one, token=changer["token"], json={"project": own["id"]})
    assert moved.status == 200 and moved.json["project"] == own["id"]


# ------------------------------------------------------------------ WebODM's test_api_projects.py

def test_webodm_test_project(api, alice, bob):
    project = new_project(api, alice, "test project")
    edit = f"/api/projects/{project['id']}/edit/"
    url = f"/api/projects/{project['id']}/"
    assert api.post(edit, data={"name": "edited"}).status == 403
    assert api.post(edit, token=alice["token"], data={"name": "edited"}).status == 200
    mine = api.get(url, token=alice["token"]).json
    assert (mine["name"], mine["description"]) == ("edited", "")
    assert api.post(edit, token=bob["token"], data={"name": "edited2"}).status == 404
    assert api.get(url, token=bob["token"]).status == 404

    share(api, alice, project, [{"username": "bob", "permissions": ["view"]}])
    seen = api.get(url, token=bob["token"])
    assert seen.status == 200 and seen.json["owned"] is False
    assert api.post(edit, token=bob["token"], data={"name": "edited2"}).status == 404

    share(api, alice, project, [{"username": "bob", "permissions": ["view", "add", "change", "delete"]}])
    assert api.post(edit, token=bob["token"], data={"name": "edited3"}).status == 200
    assert api.get(url, token=alice["token"]).json["name"] == "edited3"

    share(api, alice, project, [])
    assert api.get(url, token=bob["token"]).status == 404
    mine = api.get(url, token=alice["token"]).json
    assert mine["owned"] is True and sorted(mine["permissions"]) == ALL

    share(api, alice, project, [{"username": "bob", "permissions": ["view", "add", "change", "delete"]}])
    assert api.delete(url, token=bob["token"]).status == 204
    assert api.get(url, token=bob["token"]).status == 404
    assert api.get(url, token=alice["token"]).status == 200
    rows = api.get(url + "permissions/", token=alice["token"]).json
    assert rows == [{"username": "alice", "owner": True, "permissions": ALL}]
    assert api.delete(url, token=alice["token"]).status == 204
    assert api.get(url, token=alice["token"]).status == 404


def test_webodm_test_project_group_permissions(api, admin, alice, bob):
    group = new_group(api, admin, "ProjectReaders", [bob])
    new_group(api, admin, "Default")
    project = new_project(api, alice, "group perm project")
    url = f"/api/projects/{project['id']}/"
    edit = url + "edit/"
    assert api.get(url, token=bob["token"]).status == 404
    refused = api.post(edit, token=alice["token"],
                       json={"permissions": [{"groupname": "NoSuchGroup", "permissions": ["view"]}]})
    assert refused.status == 400 and refused.json == {"error": "Invalid group in permissions list"}
    share(api, alice, project, [{"groupname": "ProjectReaders", "permissions": ["view"]}])
    assert api.get(url, token=bob["token"]).status == 200

    listed = api.get(url + "permissions/", token=alice["token"])
    assert listed.status == 200
    assert [r for r in listed.json if r.get("groupname") == "ProjectReaders"] == [
        {"groupname": "ProjectReaders", "permissions": ["view"]}]
    assert int(listed.headers["X-Groups-Count"]) == 2

    found = api.get("/api/groups/", token=alice["token"], params={"search": "Project", "limit": 10})
    assert found.status == 200 and found.json == [{"name": "ProjectReaders", "id": group["id"]}]
    assert api.get("/api/groups/", params={"search": "P"}).status == 403

    share(api, alice, project, [])
    assert api.get(url, token=bob["token"]).status == 404


def test_webodm_only_view_granted(api, alice, bob):
    """test_api: with only view_project, `permissions` is ["view"]; DELETE answers 204, the
    project stays, and the user then gets 404."""
    project = new_project(api, alice)
    url = f"/api/projects/{project['id']}/"
    share(api, alice, project, [{"username": "bob", "permissions": ["view"]}])
    assert api.get(url, token=bob["token"]).json["permissions"] == ["view"]
    assert api.delete(url, token=bob["token"]).status == 204
    assert api.get(url, token=alice["token"]).status == 200
    assert api.get(url, token=bob["token"]).status == 404


# ------------------------------------------------------------------ permissions/ and edit/

def test_permissions_list_shape_and_access(api, admin, alice, bob):
    carol = person("carol")
    crew = new_group(api, admin, "crew")
    project = new_project(api, alice)
    url = f"/api/projects/{project['id']}/permissions/"
    share(api, alice, project, [{"username": "carol", "permissions": ["view", "change"]},
                                {"username": "bob", "permissions": ["view"]},
                                {"groupname": "crew", "permissions": ["view", "add"]},
                                {"username": "alice", "owner": True, "permissions": []}])
    reply = api.get(url, token=alice["token"])
    assert reply.status == 200 and reply.headers["X-Groups-Count"] == "1"
    assert reply.json == [
        {"username": "alice", "owner": True, "permissions": ALL},
        {"username": "bob", "owner": False, "permissions": ["view"]},
        {"username": "carol", "owner": False, "permissions": ["change", "view"]},
        {"groupname": "crew", "permissions": ["add", "view"]}]
    assert api.get(url, token=bob["token"]).status == 404  # needs change
    assert api.get(url, token=carol["token"]).status == 200
    assert api.get(url, token=admin["token"]).status == 200
    assert api.get(url).status == 403
    assert api.get("/api/projects/999/permissions/", token=alice["token"]).status == 404
    assert crew["id"]


def test_edit_refusals_and_rules(api, alice, bob):
    project = new_project(api, alice, "Named")
    edit = f"/api/projects/{project['id']}/edit/"
    url = f"/api/projects/{project['id']}/"

    def post(body):
        return api.post(edit, token=alice["token"], json=body)

    assert post({"permissions": [{"username": "ghost", "permissions": ["view"]}]}).json == {
        "error": "Invalid user in permissions list"}
    for bad in ("view", 5, [5], [{"username": "bob", "permissions": "view"}], {"a": 1}):
        reply = post({"permissions": bad})
        assert (reply.status, reply.json) == (400, {"error": "Invalid permissions"}), bad
    # the owner's rights never change, rows flagged owner and rows naming nobody are skipped
    share(api, alice, project, [{"username": "alice", "permissions": []},
                                {"username": "", "permissions": ["view"]},
                                {"username": "bob", "owner": True, "permissions": ["view"]}])
    assert api.get(url, token=alice["token"]).json["permissions"] == ALL
    assert api.get(url, token=bob["token"]).status == 404
    # unknown permission names are ignored; no known one left means no access
    share(api, alice, project, [{"username": "bob", "permissions": ["fly", "view"]}])
    assert api.get(url, token=bob["token"]).json["permissions"] == ["view"]
    share(api, alice, project, [{"username": "bob", "permissions": ["fly"]}])
    assert api.get(url, token=bob["token"]).status == 404
    # fields: a sharing-only edit leaves the name alone (WebODM would blank it); tags as WebODM
    assert api.get(url, token=alice["token"]).json["name"] == "Named"
    assert post({"tags": ["b", "c", ".hidden"], "description": "d"}).status == 200
    shown = api.get(url, token=alice["token"]).json
    assert (shown["name"], shown["tags"], shown["description"]) == ("Named", ["b", "c", ".hidden"], "d")
    assert post({"name": "x" * 256}).status == 400
    assert post({"name": ""}).json == {"name": ["This field may not be blank."]}
    # a form body works as the UI's first test sends it; `permissions` as a JSON string too
    assert api.post(edit, token=alice["token"], data={
        "permissions": '[{"username": "bob", "permissions": ["view"]}]'}).status == 200
    assert api.get(url, token=bob["token"]).status == 200
    assert api.post("/api/projects/abc/edit/", token=alice["token"], json={}).status == 404
    assert api.get(edit, token=alice["token"]).status == 405


def test_many_grantees_at_once(api, alice):
    """More rows than one DynamoDB transaction holds change in parts; past 1,000 grantees: 400."""
    for number in range(120):
        make_user(f"u{number:03}")
    project = new_project(api, alice)
    url = f"/api/projects/{project['id']}/permissions/"
    share(api, alice, project, [{"username": f"u{n:03}", "permissions": ["view"]} for n in range(120)])
    listed = api.get(url, token=alice["token"]).json
    assert [r["username"] for r in listed] == ["alice"] + [f"u{n:03}" for n in range(120)]
    share(api, alice, project, [{"username": "u007", "permissions": ["view", "change"]}])
    assert api.get(url, token=alice["token"]).json[1:] == [
        {"username": "u007", "owner": False, "permissions": ["change", "view"]}]
    too_many = api.post(f"/api/projects/{project['id']}/edit/", token=alice["token"],
                        json={"permissions": [{"username": f"x{n}", "permissions": ["view"]} for n in range(1001)]})
    assert too_many.status == 400
    assert too_many.json == {"error": "A project is shared with at most 1000 users and groups"}


def test_revoked_share_stops_at_once_for_the_upload_authorizer(live, api, alice, bob):
    """The upload authorizer (API Gateway's, for `upload/`) follows shares: change uploads,
    view does not (404, as WebODM's get_and_check_project), a revoked share at once."""
    import requests

    from tests.helpers import image_files

    project = new_project(api, alice)
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], json={"partial": True}).json
    upload = f"{live}/api/projects/{project['id']}/tasks/{task['id']}/upload/"
    bobs = {"Authorization": f"JWT {bob['token']}"}
    assert requests.post(upload, headers=bobs, files=image_files(1)).status_code == 404
    share(api, alice, project, [{"username": "bob", "permissions": ["view"]}])
    assert requests.post(upload, headers=bobs, files=image_files(1)).status_code == 404
    share(api, alice, project, [{"username": "bob", "permissions": ["view", "change"]}])
    accepted = requests.post(upload, headers=bobs, files=image_files(1))
    assert accepted.status_code == 200 and accepted.json() == {"success": True}
    committed = requests.post(f"{live}/api/projects/{project['id']}/tasks/{task['id']}/commit/", headers=bobs)
    assert committed.status_code == 200 and committed.json()["images_count"] == 1
    share(api, alice, project, [])
    assert requests.post(upload, headers=bobs, files=image_files(1)).status_code == 404


# ------------------------------------------------------------------ the share dialog's look-ups

def test_user_search_shows_usernames_only(api, alice, bob):
    person("bobby")
    person("Boris")
    reply = api.get("/api/users/", token=alice["token"], params={"limit": 30, "search": "bo"})
    assert reply.status == 200
    assert reply.json == [{"username": "bob"}, {"username": "bobby"}, {"username": "Boris"}]
    everyone = api.get("/api/users/", token=bob["token"]).json
    assert {u["username"] for u in everyone} == {"alice", "bob", "bobby", "Boris"}
    assert all(set(u) == {"username"} for u in everyone)
    assert b"@example.com" not in api.get("/api/users/", token=alice["token"]).body
    # e-mails are not searched either: a prefix of one finds nobody
    assert api.get("/api/users/", token=alice["token"], params={"search": "bob@"}).json == []
    assert len(api.get("/api/users/", token=alice["token"], params={"limit": -2}).json) == 2
    assert api.get("/api/users/", token=alice["token"], params={"limit": "x"}).json == ["Invalid query parameters"]
    assert api.get("/api/users/").status == 403
    assert api.get("/api/groups/", token=alice["token"], params={"limit": "x"}).status == 400


# ------------------------------------------------------------------ admin groups

def test_admin_groups_crud_and_members(api, admin, alice, bob):
    assert api.get("/api/admin/groups/", token=alice["token"]).status == 403
    assert api.post("/api/admin/groups/", token=alice["token"], json={"name": "x"}).status == 403
    assert api.get("/api/admin/groups/").status == 403
    crew = new_group(api, admin, "Crew", [alice])
    assert crew == {"id": crew["id"], "name": "Crew", "permissions": [], "members": [alice["id"]]}
    assert api.post("/api/admin/groups/", token=admin["token"], json={"name": "Crew"}).json == {
        "name": ["group with this name already exists."]}
    assert api.post("/api/admin/groups/", token=admin["token"], json={}).json == {"name": ["This field is required."]}
    assert api.post("/api/admin/groups/", token=admin["token"], json={"name": "  "}).json == {
        "name": ["This field may not be blank."]}
    assert api.post("/api/admin/groups/", token=admin["token"], json={"name": " Crew "}).status == 400  # trimmed
    assert api.post("/api/admin/groups/", token=admin["token"], json={"name": "p", "permissions": [3]}).json == {
        "permissions": ['Invalid pk "3" - object does not exist.']}
    assert api.post("/api/admin/groups/", token=admin["token"], json={"name": "m", "members": [999]}).json == {
        "members": ['Invalid pk "999" - object does not exist.']}
    url = f"/api/admin/groups/{crew['id']}/"
    assert api.get(url, token=admin["token"]).json == crew
    renamed = api.patch(url, token=admin["token"], json={"name": "Flight crew", "members": [bob["id"]]})
    assert renamed.status == 200 and renamed.json["members"] == [bob["id"]] and renamed.json["name"] == "Flight crew"
    # memberships show, and can be set, on the user too (Django's `groups`)
    users_url = "/api/admin/users/"
    assert api.get(f"{users_url}{bob['id']}/", token=admin["token"]).json["groups"] == [crew["id"]]
    assert api.get(f"{users_url}{alice['id']}/", token=admin["token"]).json["groups"] == []
    assert api.patch(f"{users_url}{alice['id']}/", token=admin["token"], json={"groups": [crew["id"]]}).json[
        "groups"] == [crew["id"]]
    assert api.patch(f"{users_url}{alice['id']}/", token=admin["token"], json={"groups": [77]}).json == {
        "groups": ['Invalid pk "77" - object does not exist.']}
    assert api.get(url, token=admin["token"]).json["members"] == sorted([alice["id"], bob["id"]])
    assert api.patch(f"{users_url}{alice['id']}/", token=admin["token"], json={"groups": []}).json["groups"] == []
    other = new_group(api, admin, "Other")
    listed = api.get("/api/admin/groups/", token=admin["token"]).json
    assert [(g["name"], g["members"]) for g in listed] == [("Flight crew", [bob["id"]]), ("Other", [])]
    assert [g["id"] for g in api.get("/api/admin/groups/", token=admin["token"], params={"name": "Other"}).json] == [
        other["id"]]
    assert api.patch(url, token=admin["token"], json={"name": "Other"}).status == 400
    assert api.put(url, token=admin["token"], json={"members": []}).json == {"name": ["This field is required."]}
    assert api.get("/api/admin/groups/abc/", token=admin["token"]).status == 404
    assert api.get("/api/admin/groups/999/", token=admin["token"]).status == 404


def test_deleting_a_group_ends_its_shares_and_memberships(api, admin, alice, bob):
    crew = new_group(api, admin, "Crew", [bob])
    project = new_project(api, alice)
    share(api, alice, project, [{"groupname": "Crew", "permissions": ["view"]}])
    url = f"/api/projects/{project['id']}/"
    assert api.get(url, token=bob["token"]).status == 200
    assert api.delete(f"/api/admin/groups/{crew['id']}/", token=alice["token"]).status == 403
    assert api.delete(f"/api/admin/groups/{crew['id']}/", token=admin["token"]).status == 204
    assert api.get(url, token=bob["token"]).status == 404
    assert api.get(f"/api/admin/groups/{crew['id']}/", token=admin["token"]).status == 404
    assert api.get(f"/api/admin/users/{bob['id']}/", token=admin["token"]).json["groups"] == []
    assert api.get(url + "permissions/", token=alice["token"]).headers["X-Groups-Count"] == "0"
    from chalicelib.store import shares, work

    assert shares.for_project(project["id"]) == []
    assert [job["kind"] for job in work.list_all()] == ["remove-group"]  # closed by the schedule's next look
    api.schedule()
    assert work.list_all() == []


def test_deleting_a_user_ends_their_shares(api, admin, alice, bob):
    project = new_project(api, alice)
    share(api, alice, project, [{"username": "bob", "permissions": ["view"]}])
    assert api.delete(f"/api/admin/users/{bob['id']}/", token=admin["token"]).status == 204
    from chalicelib.store import shares

    assert shares.for_project(project["id"]) == []
    rows = api.get(f"/api/projects/{project['id']}/permissions/", token=alice["token"]).json
    assert [r["username"] for r in rows] == ["alice"]
    # a new user of the same name gets nothing of the old one's
    again = person("bob")
    assert api.get(f"/api/projects/{project['id']}/", token=again["token"]).status == 404


# ------------------------------------------------------------------ cost

def _listing_calls(api, user) -> tuple[int, int]:
    """(DynamoDB calls, projects listed) of one GET /api/projects/, counted as botocore makes them."""
    from chalicelib import aws

    calls = []

    def count(model=None, **_):
        calls.append(model.name)

    client = aws.dynamodb()
    client.meta.events.register("before-call.*.*", count)
    try:
        reply = api.get("/api/projects/", token=user["token"])
    finally:
        client.meta.events.unregister("before-call.*.*", count)
    assert reply.status == 200
    return len(calls), len(reply.json)


def test_project_list_costs_the_same_whatever_the_shares(api, admin, alice, bob):
    """Own projects, shared ones and a group's: the DynamoDB calls of a listing do not grow
    with projects or shares (one Query each for own, the user's and each group's shares,
    one BatchGetItem for the shared projects)."""
    carol = person("carol")
    new_group(api, admin, "crew", [bob])
    new_project(api, bob, "bob's own")
    first = new_project(api, alice, "first")
    share(api, alice, first, [{"username": "bob", "permissions": ["view"]}])
    calls_one, listed_one = _listing_calls(api, bob)
    for number in range(12):
        project = new_project(api, alice if number % 2 else carol, f"p{number}")
        owner = alice if number % 2 else carol
        rows = [{"username": "bob", "permissions": ["view"]}] if number % 3 else \
            [{"groupname": "crew", "permissions": ["view", "change"]}]
        share(api, owner, project, rows + [{"username": "carol" if owner is alice else "alice",
                                            "permissions": ["view"]}])
        new_project(api, bob, f"own {number}")
    calls_many, listed_many = _listing_calls(api, bob)
    assert (listed_one, listed_many) == (2, 26)
    assert calls_many == calls_one == 5  # GetItem (caller) + 3 Queries + 1 BatchGetItem
