"""Duplicating projects and tasks (WebODM's `ProjectViewSet.duplicate` and `TaskViewSet.duplicate`;
`test_api.py`'s project duplicate lines, `test_api_task.py`'s task duplicate): WebODM's answers and
permission rules, the copy's fields, every S3 object copied byte for byte (a large one in
UploadPartCopy parts), the console and the map fields, a copy whose files are still being copied,
and a job handed on between runners."""
from __future__ import annotations

import pytest
import requests

from chalicelib import aws, config
from chalicelib.store import tasks as task_store
from tests.helpers import complete_in_s3, new_project, s3_bytes, s3_keys
from tests.sample_data import build_all_zip
from tests.test_backup import CONSOLE, append_console

FIELDS = ("status", "available_assets", "options", "images_count", "size", "processing_time", "tags",
          "public", "resize_to", "extent", "epsg", "statistics", "srs", "orthophoto_bands", "partial",
          "processing_node", "auto_processing_node", "last_error", "pending_action")


def run_jobs(api) -> None:
    while api.work():
        pass


def objects(task_id: str) -> dict[str, bytes]:
    """Every object of a task but what it derives on request, by path under its prefix."""
    prefix = f"tasks/{task_id}/"
    return {k[len(prefix):]: s3_bytes(k) for k in s3_keys(prefix)
            if not k[len(prefix):].startswith(("exports/", "backup/"))}


def completed(api, user, project, name="Flight 1") -> dict:
    files = [("images", (f"IMG_{i}.JPG", b"\xff\xd8" + bytes([i]) * 4000)) for i in range(3)]
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=user["token"], files=files,
                     data={"partial": "true", "name": name, "tags": "a b"})
    assert reply.status == 201, reply.json
    complete_in_s3(project["id"], reply.json["id"], build_all_zip())
    append_console(project["id"], reply.json["id"], list(CONSOLE))
    return reply.json


def task_url(task: dict) -> str:
    return f"/api/projects/{task['project']}/tasks/{task['id']}/"


def console(api, user, task) -> dict:
    return api.get(task_url(task) + "output/", token=user["token"], params={"f": "json"}).json


def assert_twins(api, user, source: dict, copy: dict) -> None:
    assert {f: copy[f] for f in FIELDS} == {f: source[f] for f in FIELDS}
    assert copy["id"] != source["id"] and copy["created_at"] > source["created_at"]
    source_objects, copy_objects = objects(source["id"]), objects(copy["id"])
    assert source_objects and copy_objects.keys() == source_objects.keys()
    for path, data in source_objects.items():
        assert copy_objects[path] == data, path
    assert console(api, user, copy) == console(api, user, source)


@pytest.fixture
def project(api, alice):
    reply = api.post("/api/projects/", token=alice["token"],
                     json={"name": "Survey", "description": "north field", "tags": ["farm", "2026"],
                           "public": True})
    assert reply.status == 201
    return reply.json


def no_route_work(monkeypatch) -> None:
    """The route leaves all the copying to the worker (as with a large project)."""
    monkeypatch.setenv("ALOFT_DUPLICATE_ROUTE_SECONDS", "0")
    config.reset()


def test_project_duplicate(api, alice, project, monkeypatch):
    no_route_work(monkeypatch)
    first = completed(api, alice, project)
    partial = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"],
                       data={"partial": "true", "name": "Still uploading"}).json
    reply = api.post(f"/api/projects/{project['id']}/duplicate/", token=alice["token"])
    assert reply.status == 200, reply.json
    assert reply.json["success"] is True
    copy = reply.json["project"]
    assert copy["id"] != project["id"] and copy["name"] == "Copy of Survey"
    assert copy["description"] == "north field" and copy["tags"] == ["farm", "2026"]
    assert (copy["public"], copy["public_edit"], copy["public_id"]) == (False, False, None)
    assert copy["owned"] is False and copy["permissions"] == []  # WebODM: serialized without the request
    assert copy["created_at"] > project["created_at"] and len(copy["tasks"]) == 2
    assert not set(copy["tasks"]) & {first["id"], partial["id"]}

    # the route left the copying to the worker: the rows follow the answer's ids
    assert api.get(f"/api/projects/{copy['id']}/tasks/", token=alice["token"]).json == []
    run_jobs(api)
    listed = api.get(f"/api/projects/{copy['id']}/tasks/", token=alice["token"]).json
    assert sorted(t["id"] for t in listed) == sorted(copy["tasks"])

    mine = api.get(f"/api/projects/{copy['id']}/", token=alice["token"]).json
    assert mine["owned"] is True and mine["permissions"] == ["add", "change", "delete", "view"]
    copies = {t["name"]: t for t in api.get(f"/api/projects/{copy['id']}/tasks/", token=alice["token"]).json}
    assert sorted(copies) == ["Flight 1", "Still uploading"]  # names kept
    source = api.get(task_url(first), token=alice["token"]).json
    assert_twins(api, alice, source, copies["Flight 1"])
    assert copies["Flight 1"]["status"] == 40 and "orthophoto.tif" in copies["Flight 1"]["available_assets"]
    assert copies["Still uploading"]["partial"] is True
    # the copy stands alone: removing the original leaves it whole
    copied = objects(copies["Flight 1"]["id"])
    assert api.delete(task_url(first), token=alice["token"]).status == 204
    assert objects(copies["Flight 1"]["id"]) == copied
    download = api.get(task_url(copies["Flight 1"]) + "download/orthophoto.tif", token=alice["token"])
    assert download.status == 302


def test_project_duplicate_permissions(api, alice, bob, admin, project):
    completed(api, alice, project)
    path = f"/api/projects/{project['id']}/duplicate/"
    assert api.post(path, token=bob["token"]).status == 404
    assert api.post(path).status == 403  # anonymous: WebODM's authentication answer
    assert api.post("/api/projects/999999/duplicate/", token=alice["token"]).status == 404
    share = api.post(f"/api/projects/{project['id']}/edit/", token=alice["token"],
                     json={"permissions": [{"username": "bob", "permissions": ["view"]}]})
    assert share.status == 200, share.json
    assert api.post(path, token=bob["token"]).status == 404  # view is not enough
    share = api.post(f"/api/projects/{project['id']}/edit/", token=alice["token"],
                     json={"permissions": [{"username": "bob", "permissions": ["view", "change"]}]})
    assert share.status == 200, share.json
    reply = api.post(path, token=bob["token"])
    assert reply.status == 200 and reply.json["success"] is True
    run_jobs(api)
    copy_id = reply.json["project"]["id"]
    bobs = {p["id"]: p for p in api.get("/api/projects/", token=bob["token"]).json}
    assert bobs[copy_id]["owned"] is True  # the requester owns the copy
    assert copy_id not in {p["id"] for p in api.get("/api/projects/", token=alice["token"]).json}
    assert api.post(path, token=admin["token"]).json["success"] is True  # a superuser may


def test_a_project_that_cannot_be_duplicated(api, alice):
    long_name = new_project(api, alice, name="x" * 250)  # "Copy of ..." would pass 255 characters
    before = len(api.get("/api/projects/", token=alice["token"]).json)
    reply = api.post(f"/api/projects/{long_name['id']}/duplicate/", token=alice["token"])
    assert reply.status == 200 and reply.json == {"error": "Cannot duplicate project"}
    assert len(api.get("/api/projects/", token=alice["token"]).json) == before
    empty = new_project(api, alice, name="Empty")
    reply = api.post(f"/api/projects/{empty['id']}/duplicate/", token=alice["token"])
    assert reply.json["success"] is True and reply.json["project"]["tasks"] == []


def test_task_duplicate(api, alice, bob, project):
    source = completed(api, alice, project)
    path = task_url(source) + "duplicate/"
    assert api.post(path, token=bob["token"]).status == 404
    share = api.post(f"/api/projects/{project['id']}/edit/", token=alice["token"],
                     json={"permissions": [{"username": "bob", "permissions": ["view"]}]})
    assert share.status == 200
    assert api.post(path, token=bob["token"]).status == 404  # WebODM: change_project, else 404
    other = new_project(api, alice, name="Other")
    assert api.post(f"/api/projects/{other['id']}/tasks/{source['id']}/duplicate/",
                    token=alice["token"]).status == 404
    reply = api.post(path, token=alice["token"])
    assert reply.status == 200, reply.json
    assert reply.json["success"] is True
    copy = reply.json["task"]
    assert copy["name"] == "Copy of Flight 1" and copy["project"] == project["id"]
    assert copy["status"] == 40 and copy["available_assets"] == source_assets(api, alice, source)
    source = api.get(task_url(source), token=alice["token"]).json
    copy = api.get(task_url(copy), token=alice["token"]).json
    assert_twins(api, alice, source, copy)
    assert copy["name"] == "Copy of Flight 1"
    ids = api.get(f"/api/projects/{project['id']}/", token=alice["token"]).json["tasks"]
    assert sorted(ids) == sorted([source["id"], copy["id"]])
    # a second message for the finished job changes nothing
    from chalicelib import queue

    before = objects(copy["id"])
    job = next(j for j in _jobs() if j.get("kind") == "duplicate")
    queue.send_job("duplicate", job["job"])
    run_jobs(api)
    assert objects(copy["id"]) == before
    assert len(api.get(f"/api/projects/{project['id']}/tasks/", token=alice["token"]).json) == 2


def source_assets(api, user, task) -> list[str]:
    return api.get(task_url(task), token=user["token"]).json["available_assets"]


def _jobs() -> list[dict]:
    from chalicelib.store.dynamo import Table

    return list(Table("work_table").query("#q = :q", names={"#q": "queue"}, values={":q": "export"}))


def test_large_objects_are_copied_in_parts(api, alice, project, monkeypatch):
    monkeypatch.setenv("ALOFT_COPY_MULTIPART_BYTES", str(5 * 1024 * 1024))
    config.reset()
    source = completed(api, alice, project)
    big = bytes(range(256)) * (12 * 1024 * 1024 // 256) + b"tail"  # 12 MiB: three parts of 5 MiB at most
    key = f"tasks/{source['id']}/assets/odm_georeferencing/odm_georeferenced_model.las"
    aws.s3().put_object(Bucket=config.settings().bucket, Key=key, Body=big, ContentType="application/vnd.las",
                        Metadata={"origin": "node"})
    no_route_work(monkeypatch)
    reply = api.post(task_url(source) + "duplicate/", token=alice["token"])
    assert reply.json["task"]["status"] == 20 and reply.json["task"]["pending_action"] == 5  # being copied
    run_jobs(api)
    copy_id = reply.json["task"]["id"]
    copied_key = key.replace(source["id"], copy_id)
    assert s3_bytes(copied_key) == big
    head = aws.s3().head_object(Bucket=config.settings().bucket, Key=copied_key)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three UploadPartCopy parts
    assert head["ContentType"] == "application/vnd.las" and head["Metadata"] == {"origin": "node"}
    assert objects(copy_id) == objects(source["id"])


def test_a_small_project_is_copied_by_the_route(api, alice, project):
    """Within ALOFT_DUPLICATE_ROUTE_SECONDS the route copies a small project itself: its answer is
    the finished copy, as WebODM's, and the worker's message then finds nothing to do."""
    first = completed(api, alice, project)
    reply = api.post(f"/api/projects/{project['id']}/duplicate/", token=alice["token"])
    assert reply.json["success"] is True
    (copy,) = api.get(f"/api/projects/{reply.json['project']['id']}/tasks/", token=alice["token"]).json
    assert_twins(api, alice, api.get(task_url(first), token=alice["token"]).json, copy)
    assert next(j for j in _jobs() if j.get("kind") == "duplicate")["state"] == "done"


def test_a_job_out_of_time_is_handed_on(api, alice, project, monkeypatch):
    """A runner whose time ends mid-way hands the job on; the next one finishes it, copying
    nothing twice into a different result."""
    from chalice.local import LambdaContext

    from chalicelib import duplicate

    no_route_work(monkeypatch)
    for n in range(3):
        task = completed(api, alice, project, name=f"Flight {n}")
    # 64 MiB: more than the runner below may start copying in its last second
    aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task['id']}/assets/big.las",
                        Body=b"\0" * (64 * 1024 * 1024))
    reply = api.post(f"/api/projects/{project['id']}/duplicate/", token=alice["token"])
    job = next(j for j in _jobs() if j.get("kind") == "duplicate")
    # a worker with 16 s left keeps 15 s of margin: it creates the rows, then hands the job on
    assert duplicate.run_job(job["job"], LambdaContext("worker", 1769, max_runtime_ms=16_000)) == "continued"
    state = next(j for j in _jobs() if j["job"] == job["job"])
    assert state["state"] == "pending" and state["attempts"] == 0
    # the rows are there, shown as WebODM shows an import until their files are
    listed = api.get(f"/api/projects/{reply.json['project']['id']}/tasks/", token=alice["token"]).json
    assert sorted(t["id"] for t in listed) == sorted(reply.json["project"]["tasks"])
    assert {(t["status"], t["pending_action"], tuple(t["available_assets"])) for t in listed} == {(20, 5, ())}
    run_jobs(api)
    assert next(j for j in _jobs() if j["job"] == job["job"])["state"] == "done"
    copies = {t["name"]: t for t in api.get(f"/api/projects/{reply.json['project']['id']}/tasks/",
                                            token=alice["token"]).json}
    sources = {t["name"]: t for t in api.get(f"/api/projects/{project['id']}/tasks/", token=alice["token"]).json}
    assert sorted(copies) == sorted(sources)
    for name, source in sources.items():
        assert_twins(api, alice, source, copies[name])
    assert all(not task_store.get(c["project"], c["id"]).get("copying") for c in copies.values())


def test_maps_work_on_the_copy(live, api, alice, project):
    """Tiles, metadata and the thumbnail of the copy, through the gateway: the same pictures."""
    from tests.test_pictures import completed_task

    source = completed_task(api, alice, project)
    headers = {"Authorization": f"JWT {alice['token']}"}
    base = f"{live}/api/projects/{project['id']}/tasks/"
    reply = requests.post(f"{base}{source['id']}/duplicate/", headers=headers, timeout=60)
    assert reply.status_code == 200 and reply.json()["success"] is True
    run_jobs(api)
    copy_id = reply.json()["task"]["id"]
    copy = requests.get(f"{base}{copy_id}/", headers=headers, timeout=30).json()
    assert copy["status"] == 40 and copy["pending_action"] is None
    tilejson = requests.get(f"{base}{copy_id}/orthophoto/tiles.json", headers=headers, timeout=30).json()
    import morecantile

    lon, lat = (tilejson["bounds"][0] + tilejson["bounds"][2]) / 2, (tilejson["bounds"][1] + tilejson["bounds"][3]) / 2
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, tilejson["maxzoom"])
    for path in ("thumbnail", f"orthophoto/tiles/{tile.z}/{tile.x}/{tile.y}.png", "orthophoto/metadata",
                 "dsm/metadata"):
        mine = requests.get(f"{base}{copy_id}/{path}", headers=headers, timeout=60)
        theirs = requests.get(f"{base}{source['id']}/{path}", headers=headers, timeout=60)
        assert mine.status_code == 200, (path, mine.text[:200])
        if path.endswith("metadata"):  # the same raster's, under the copy's name and URLs
            ours, other = mine.json(), theirs.json()
            assert ours.pop("name") == "Copy of " + other.pop("name")
            assert ours.pop("tiles") == [u.replace(source["id"], copy_id) for u in other.pop("tiles")]
            assert ours == other, path
        else:
            assert mine.content == theirs.content, path
    stored = task_store.get(project["id"], copy_id)
    assert stored["rasters"]["orthophoto"]["key"] == \
        f"tasks/{copy_id}/assets/odm_orthophoto/odm_orthophoto.tif"


def test_a_copy_of_a_copy_being_made_waits_for_it(api, alice, project, monkeypatch):
    from chalice.local import LambdaContext

    from chalicelib import duplicate

    no_route_work(monkeypatch)
    source = completed(api, alice, project)
    first = api.post(task_url(source) + "duplicate/", token=alice["token"]).json["task"]
    second = api.post(task_url(first) + "duplicate/", token=alice["token"]).json["task"]
    assert second["name"] == "Copy of Copy of Flight 1" and second["status"] == 20
    jobs = {j["pairs"][0][1]: j["job"] for j in _jobs() if j.get("kind") == "duplicate"}
    context = LambdaContext("worker", 1769, max_runtime_ms=60_000)
    # its source's files are not all there yet: it waits (its attempt counts), never copies half
    assert duplicate.run_job(jobs[second["id"]], context) == "continued"
    assert task_store.get(project["id"], second["id"])["copying"] is True
    assert objects(second["id"]) == {}
    assert duplicate.run_job(jobs[first["id"]], context) == "done"
    assert duplicate.run_job(jobs[second["id"]], context) == "done"
    source = api.get(task_url(source), token=alice["token"]).json
    assert_twins(api, alice, source, api.get(task_url(second), token=alice["token"]).json)
