"""Tasks API through HTTP: create, partial and chunked uploads, list, update, actions."""
from __future__ import annotations

import json

import pytest

from chalicelib import aws, config
from chalicelib.store import projects as project_store
from chalicelib.store import tasks as task_store
from tests.helpers import image_files, new_project, new_task, s3_bytes, s3_keys
from tests.sample_data import fake_image

TASK_FIELDS = {
    "id", "project", "processing_node", "processing_node_name", "images_count", "available_assets",
    "uuid", "name", "processing_time", "auto_processing_node", "status", "last_error", "options",
    "created_at", "pending_action", "partial", "upload_progress", "resize_progress",
    "running_progress", "public", "public_edit", "tags", "size", "can_rerun_from", "statistics",
    "extent", "epsg", "wkt", "srs", "media", "import_url", "resize_to", "crop", "potree_scene",
    "orthophoto_bands", "compacted"}


def tasks_url(project, task=None, suffix=""):
    base = f"/api/projects/{project['id']}/tasks/"
    return base + (f"{task['id']}/" if task else "") + suffix


def test_quickstart_create_with_images_and_options(api, alice):
    project = new_project(api, alice)
    files = image_files(3)
    reply = api.post(tasks_url(project), token=alice["token"], files=files,
                     data={"options": '[{"name": "orthophoto-resolution", "value": 24}]', "name": "Flight 1"})
    assert reply.status == 201
    task = reply.json
    assert set(task) == TASK_FIELDS
    assert task["status"] is None and task["processing_time"] == -1 and task["images_count"] == 3
    assert task["options"] == [{"name": "orthophoto-resolution", "value": 24}]
    assert task["partial"] is False and task["uuid"] == "" and task["pending_action"] is None
    assert task["auto_processing_node"] is True and task["can_rerun_from"] == []
    assert task["srs"] == {"name": "", "units": "m"} and task["extent"] is None
    assert task["size"] > 0
    for _, (name, content) in files:
        assert s3_bytes(f"tasks/{task['id']}/images/{name}") == content
    fetched = api.get(tasks_url(project, task), token=alice["token"]).json
    assert fetched == task
    assert project_store.get(project["id"])["tasks"] == {task["id"]}
    assert api.get(f"/api/projects/{project['id']}/", token=alice["token"]).json["tasks"] == [task["id"]]


def test_options_as_list_in_json_body_is_partial_placeholder(api, alice):
    project = new_project(api, alice)
    reply = api.post(tasks_url(project), token=alice["token"],
                     json={"partial": True, "options": [{"name": "dsm", "value": True}], "tags": ["a"]})
    assert reply.status == 201 and reply.json["partial"] is True and reply.json["images_count"] == 0
    assert reply.json["options"] == [{"name": "dsm", "value": True}] and reply.json["tags"] == ["a"]


@pytest.mark.parametrize("count", [0, 1])
def test_needs_two_images(api, alice, count):
    project = new_project(api, alice)
    reply = api.post(tasks_url(project), token=alice["token"], files=image_files(count) or None,
                     data={"name": "x"})
    assert reply.status == 400 and reply.json == ["Cannot create task, you need at least 2 images"]
    assert api.get(tasks_url(project), token=alice["token"]).json == []


@pytest.mark.parametrize("flag", ["false", "0", ""])
def test_falsy_partial_strings_mean_not_partial(api, alice, flag):
    project = new_project(api, alice)
    reply = api.post(tasks_url(project), token=alice["token"], files=image_files(1), data={"partial": flag})
    assert reply.status == 400  # not partial, so two images are required
    reply = api.post(tasks_url(project), token=alice["token"], files=image_files(2), data={"partial": flag})
    assert reply.status == 201 and reply.json["partial"] is False


def test_invalid_create_bodies(api, alice):
    project = new_project(api, alice)
    cases = [({"options": "not json"}, "options"), ({"options": '{"a": 1}'}, "options"),
             ({"options": '[{"value": 1}]'}, "options"), ({"options": '[{"name": ""}]'}, "options"),
             ({"processing_node": "9999"}, "processing_node"), ({"processing_node": "x"}, "processing_node"),
             ({"resize_to": "big"}, "resize_to"), ({"name": "n" * 256}, "name")]
    for data, field in cases:
        reply = api.post(tasks_url(project), token=alice["token"], files=image_files(2), data=data)
        assert reply.status == 400 and field in reply.json, (data, reply.json)
    reply = api.post(tasks_url(project), token=alice["token"], files=image_files(2),
                     data={"processing_node": "9999"})
    assert reply.json == {"processing_node": ['Invalid pk "9999" - object does not exist.']}
    assert api.get(tasks_url(project), token=alice["token"]).json == []
    assert s3_keys("tasks/") == []


def test_partial_task_commit_counts_presigned_uploads(api, alice):
    """The partial flow with presigned PUTs (upload/ itself is API Gateway's: test_upload_flow.py)."""
    project = new_project(api, alice)
    task = api.post(tasks_url(project), token=alice["token"], data={"partial": "true", "name": "p"}).json
    assert task["partial"] is True
    commit = api.post(tasks_url(project, task, "commit/"), token=alice["token"])
    assert commit.status == 400 and commit.json == ["You need to upload at least 1 file before commit"]
    contents = [fake_image(i, 2000) for i in range(3)]
    spec = {"files": [{"name": f"img{i}.jpg", "size": len(c)} for i, c in enumerate(contents)]}
    uploads = api.post(tasks_url(project, task, "presign/"), token=alice["token"], json=spec).json["uploads"]
    for upload, content in zip(uploads, contents):  # what the client's PUT to the URL stores
        aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task['id']}/images/{upload['name']}",
                            Body=content)
    assert task_store.get(project["id"], task["id"]).get("active") is None  # never polled while partial
    committed = api.post(tasks_url(project, task, "commit/"), token=alice["token"])
    assert committed.status == 200
    assert committed.json["id"] == task["id"] and committed.json["partial"] is False
    assert committed.json["images_count"] == 3
    for i in range(3):
        assert s3_bytes(f"tasks/{task['id']}/images/img{i}.jpg") == contents[i]


def test_presign_answers_urls_per_file(api, alice):
    project = new_project(api, alice)
    task = api.post(tasks_url(project), token=alice["token"], json={"partial": True}).json
    reply = api.post(tasks_url(project, task, "presign/"), token=alice["token"],
                     json={"files": [{"name": "a.jpg", "size": 123}, {"name": "a.jpg", "size": 5},
                                     {"name": "../b.jpg", "size": 0}]})
    assert reply.status == 200 and reply.json["success"] is True
    uploads = reply.json["uploads"]
    assert [u["name"] for u in uploads] == ["a.jpg", "a_1.jpg", "b.jpg"]
    assert all(u["method"] == "PUT" and "X-Amz-Signature=" in u["url"] for u in uploads)
    assert f"tasks/{task['id']}/images/a_1.jpg" in uploads[1]["url"]
    assert uploads[0]["headers"] == {"Content-Length": "123"} and 0 < uploads[0]["expires_in"] <= 3600
    for body in ({"files": []}, {"files": [{"name": "x"}]}, {"files": [{"name": "x", "size": -1}]},
                 {"files": "nope"}):
        bad = api.post(tasks_url(project, task, "presign/"), token=alice["token"], json=body)
        assert bad.status == 400 and "files" in bad.json, body


def test_list_filter_order_and_wrong_project(api, alice):
    project = new_project(api, alice)
    other = new_project(api, alice, "other")
    first = new_task(api, alice, project, name="b")
    second = new_task(api, alice, project, name="a")
    task_store.mutate(project["id"], first["id"], lambda t: {"status": 40})
    listed = api.get(tasks_url(project), token=alice["token"], params={"ordering": "-created_at"}).json
    assert [t["id"] for t in listed] == [second["id"], first["id"]]
    by_name = api.get(tasks_url(project), token=alice["token"], params={"ordering": "name"}).json
    assert [t["name"] for t in by_name] == ["a", "b"]
    done = api.get(tasks_url(project), token=alice["token"], params={"status": 40}).json
    assert [t["id"] for t in done] == [first["id"]]
    bad = api.get(tasks_url(project), token=alice["token"], params={"status": "done"})
    assert bad.status == 400 and bad.json == ["Invalid status parameter"]
    assert api.get(tasks_url(other, first), token=alice["token"]).status == 404
    assert api.get(f"/api/projects/{project['id']}/tasks/not-a-uuid/", token=alice["token"]).status == 404


def test_patch_ignores_read_only_fields(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    sneaky = {"status": 40, "processing_time": 5, "last_error": "x", "created_at": "2000-01-01T00:00:00Z",
              "pending_action": 2, "available_assets": ["all.zip"], "size": 99.0, "uuid": "abc",
              "upload_progress": 1.0, "running_progress": 0.5, "images_count": 50, "can_rerun_from": ["a"],
              "id": "00000000-0000-0000-0000-000000000000"}
    reply = api.patch(tasks_url(project, task), token=alice["token"], json={**sneaky, "name": "Renamed"})
    assert reply.status == 200
    assert reply.json == {**task, "name": "Renamed"}
    assert api.get(tasks_url(project, task), token=alice["token"]).json["name"] == "Renamed"


def test_patch_validation(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    for body, field in (({"processing_node": None}, "processing_node"), ({"options": "bad"}, "options"),
                        ({"processing_node": 12345}, "processing_node"), ({"public": "sure"}, "public")):
        reply = api.patch(tasks_url(project, task), token=alice["token"], json=body)
        assert reply.status == 400 and field in reply.json, body
    put = api.put(tasks_url(project, task), token=alice["token"], json={"name": "x"})
    assert put.status == 400 and put.json == {"processing_node": ["This field is required."]}
    assert api.get(tasks_url(project, task), token=alice["token"]).json == task


def test_move_task_between_projects(api, alice, bob):
    project = new_project(api, alice)
    target = new_project(api, alice, "target")
    bobs = new_project(api, bob, "bob's")
    task = new_task(api, alice, project)
    denied = api.patch(tasks_url(project, task), token=alice["token"], json={"project": bobs["id"]})
    assert denied.status == 403
    missing = api.patch(tasks_url(project, task), token=alice["token"], json={"project": 424242})
    assert missing.status == 403
    ignored = api.patch(tasks_url(project, task), token=alice["token"], json={"PROJECT": target["id"]})
    assert ignored.status == 200 and ignored.json["project"] == project["id"]
    moved = api.patch(tasks_url(project, task), token=alice["token"], json={"project": target["id"]})
    assert moved.status == 200 and moved.json["project"] == target["id"]
    assert api.get(tasks_url(project, task), token=alice["token"]).status == 404
    assert [t["id"] for t in api.get(tasks_url(target), token=alice["token"]).json] == [task["id"]]
    assert api.get(f"/api/projects/{project['id']}/", token=alice["token"]).json["tasks"] == []
    assert s3_keys(f"tasks/{task['id']}/images/")  # bytes stay where they are


def test_actions_set_pending_action_and_clear_error(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    task_store.mutate(project["id"], task["id"], lambda t: {"uuid": "node-uuid", "status": 20, "last_error": "boom"})
    for action, code in (("cancel", 1), ("restart", 3)):
        reply = api.post(tasks_url(project, task, f"{action}/"), token=alice["token"])
        assert reply.status == 200 and reply.json == {"success": True}
        now = api.get(tasks_url(project, task), token=alice["token"]).json
        assert now["pending_action"] == code and now["last_error"] is None
        assert task_store.get(project["id"], task["id"])["active"] == "1"


def test_cancel_of_a_task_never_sent_completes_at_once(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    api.post(tasks_url(project, task, "cancel/"), token=alice["token"])
    now = api.get(tasks_url(project, task), token=alice["token"]).json
    assert now["status"] == 50 and now["pending_action"] is None and now["last_error"] is None


@pytest.mark.parametrize("how", ["remove", "delete"])
def test_remove_of_a_task_never_sent_is_immediate(api, alice, how):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    keep = new_task(api, alice, project)
    if how == "remove":
        reply = api.post(tasks_url(project, task, "remove/"), token=alice["token"])
        assert reply.status == 200 and reply.json == {"success": True}
    else:
        assert api.delete(tasks_url(project, task), token=alice["token"]).status == 204
    assert api.get(tasks_url(project, task), token=alice["token"]).status == 404
    assert [t["id"] for t in api.get(tasks_url(project), token=alice["token"]).json] == [keep["id"]]
    assert s3_keys(f"tasks/{task['id']}/") == [] and s3_keys(f"tasks/{keep['id']}/")
    assert task_store.get(project["id"], task["id"]) is None
    assert project_store.get(project["id"])["tasks"] == {keep["id"]}


def test_remove_of_a_task_on_a_node_waits_for_the_poller(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    task_store.mutate(project["id"], task["id"], lambda t: {"uuid": "on-node", "status": 20})
    api.post(tasks_url(project, task, "remove/"), token=alice["token"])
    assert api.get(tasks_url(project, task), token=alice["token"]).status == 404  # gone from the API
    stored = task_store.get(project["id"], task["id"])
    assert stored["pending_action"] == 2 and stored["active"] == "1"  # the poller finishes it
    assert s3_keys(f"tasks/{task['id']}/images/")


def test_deleting_a_project_removes_its_tasks(api, alice):
    project = new_project(api, alice)
    tasks = [new_task(api, alice, project) for _ in range(3)]
    assert api.delete(f"/api/projects/{project['id']}/", token=alice["token"]).status == 204
    assert project_store.get(project["id"], include_deleting=True) is None
    for task in tasks:
        assert task_store.get(project["id"], task["id"]) is None
        assert s3_keys(f"tasks/{task['id']}/") == []


def test_deleting_a_project_with_a_task_on_a_node_hides_it_until_the_poller(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    task_store.mutate(project["id"], task["id"], lambda t: {"uuid": "on-node", "status": 20})
    assert api.delete(f"/api/projects/{project['id']}/", token=alice["token"]).status == 204
    assert api.get(f"/api/projects/{project['id']}/", token=alice["token"]).status == 404
    assert project_store.get(project["id"], include_deleting=True)["deleting"] is True
    assert task_store.get(project["id"], task["id"])["pending_action"] == 2


def test_another_users_task_is_404_on_every_route(api, alice, bob):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    bobs_project = new_project(api, bob, "bob")
    token = bob["token"]
    for method, suffix in (("GET", ""), ("PATCH", ""), ("PUT", ""), ("DELETE", ""), ("POST", "presign/"),
                           ("POST", "commit/"), ("POST", "cancel/"), ("POST", "restart/"),
                           ("POST", "remove/"), ("GET", "output/"), ("GET", "download/all.zip"),
                           ("GET", "assets/cameras.json")):
        reply = api.request(method, tasks_url(project, task, suffix), token=token,
                            json={"name": "hijack", "processing_node": 1})
        assert reply.status == 404, (method, suffix, reply.json)
        wrong = api.request(method, f"/api/projects/{bobs_project['id']}/tasks/{task['id']}/{suffix}",
                            token=token, json={"name": "hijack"})
        assert wrong.status == 404, (method, suffix)
    assert api.get(tasks_url(project), token=token).status == 404
    assert api.post(tasks_url(project), token=token, files=image_files(2)).status == 404
    after = api.get(tasks_url(project, task), token=alice["token"]).json
    assert after == task


def test_anonymous_and_public_access(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    assert api.get(tasks_url(project, task)).status == 404
    assert api.get(tasks_url(project)).status == 403
    assert api.post(tasks_url(project), files=image_files(2)).status == 403
    api.patch(tasks_url(project, task), token=alice["token"], json={"public": True})
    assert api.get(tasks_url(project, task)).json["id"] == task["id"]
    assert api.get(tasks_url(project, task, "output/")).status == 403  # console needs login
    api.patch(tasks_url(project, task), token=alice["token"], json={"public": False})
    api.patch(f"/api/projects/{project['id']}/", token=alice["token"], json={"public": True})
    assert api.get(tasks_url(project, task)).status == 200
    assert api.patch(tasks_url(project, task), json={"name": "x"}).status == 403


def test_options_round_trip_as_json(api, alice):
    project = new_project(api, alice)
    options = [{"name": "dsm", "value": True}, {"name": "mesh-size", "value": 100000},
               {"name": "fast-orthophoto", "value": False}]
    task = new_task(api, alice, project, options=json.dumps(options))
    assert task["options"] == options


def test_the_largest_presign_answer_fits_one_lambda_response(api, alice):
    """1,000 files (the most one request may ask) with the longest, costliest names: names are
    cut to 200 bytes, so the answer stays under Lambda's 6 MB response cap."""
    from chalicelib.limits import LAMBDA_MAX_RESPONSE_BYTES
    from tests.helpers import proxy_size

    project = new_project(api, alice)
    task = api.post(tasks_url(project), token=alice["token"], json={"partial": True}).json
    files = [{"name": "\U0001F600" * 1024, "size": 5 * 1024**3} for _ in range(1000)]
    body = json.dumps({"files": files}, ensure_ascii=False).encode()  # 4.1 MB: under the 4 MiB field cap
    reply = api.post(tasks_url(project, task, "presign/"), token=alice["token"], data=body,
                     headers={"Content-Type": "application/json"})
    assert reply.status == 200 and len(reply.json["uploads"]) == 1000
    assert proxy_size(reply) < LAMBDA_MAX_RESPONSE_BYTES
