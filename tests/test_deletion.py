"""Deleting a project or a user whose work grows with their data: the route does what fits
in a short budget and answers; the poller finishes the job (chalicelib/removal.py)."""
from __future__ import annotations

import time
import uuid

from chalicelib import aws, config
from chalicelib.store import output, projects as project_store, tasks as task_store, work
from chalicelib.store.dynamo import transact
from tests.helpers import new_project, s3_keys


def _stored_task(project_id: int, status: int = 40) -> str:
    """A finished task as the poller leaves it: row, images and assets in S3, a console."""
    return _stored_tasks(project_id, 1, status)[0]


def _stored_tasks(project_id: int, count: int, status: int = 40) -> list[str]:
    """`count` finished tasks as the poller leaves them (row, an image and an asset in S3,
    a console chunk), written in batches: the test is about removing them."""
    from chalicelib.models import utcnow
    from chalicelib.store.dynamo import serialize

    settings = config.settings()
    task_ids = [str(uuid.uuid4()) for _ in range(count)]
    rows, chunks = [], []
    for task_id in task_ids:
        for key in ("images/a.jpg", "assets/odm_orthophoto/odm_orthophoto.tif"):
            aws.s3().put_object(Bucket=settings.bucket, Key=f"tasks/{task_id}/{key}", Body=b"x" * 100)
        rows.append({"project_id": project_id, "id": task_id, "created_at": utcnow(), "partial": False,
                     "status": status, "pending_action": None, "auto_processing_node": True,
                     "processing_node": None, "uuid": "", "options": [], "images_count": 1,
                     "processing_time": 10, "name": "t", "available_assets": ["orthophoto.tif"], "version": 1,
                     **output.reset_fields(), "output_count": 2, "output_tail_start": 0,
                     "output_tail_lines": 2, "output_tail_bytes": 12, "node_output_lines": 2})
        chunks.append({"task_id": task_id, "start": 0, "lines": ["line 1", "line 2"], "n": 2, "bytes": 12})
    for table, items in ((settings.tasks_table, rows), (settings.task_output_table, chunks)):
        for start in range(0, len(items), 25):
            aws.dynamodb().batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": serialize(item)}} for item in items[start:start + 25]]})
    project_store._table.update({"id": project_id}, add={"tasks": set(task_ids)})
    return task_ids


def _gone(project_id: int, task_ids: list[str]) -> None:
    assert project_store.get(project_id, include_deleting=True) is None
    assert task_store.list_for_project(project_id) == []
    for task_id in task_ids:
        assert s3_keys(f"tasks/{task_id}/") == []
        chunks = aws.dynamodb().query(TableName=config.settings().task_output_table,
                                      KeyConditionExpression="task_id = :t",
                                      ExpressionAttributeValues={":t": {"S": task_id}})
        assert chunks["Count"] == 0
    assert work.list_all() == []


def _dynamodb_calls(run) -> dict[str, int]:
    calls: dict[str, int] = {}

    def record(model=None, **_):
        calls[model.name] = calls.get(model.name, 0) + 1

    client = aws.dynamodb()
    client.meta.events.register("before-call.dynamodb.*", record)
    try:
        run()
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", record)
    return calls


def test_deleting_a_project_with_150_tasks_answers_at_once_and_the_poller_finishes(api, alice):
    from chalicelib.removal import ROUTE_WORK_SECONDS

    project = new_project(api, alice)
    task_ids = _stored_tasks(project["id"], 150)
    started = time.monotonic()
    reply = api.delete(f"/api/projects/{project['id']}/", token=alice["token"])
    elapsed = time.monotonic() - started
    assert reply.status == 204
    assert elapsed < ROUTE_WORK_SECONDS + 3  # the budget, one task's removal, the rest of the request
    # hidden at once
    assert api.get(f"/api/projects/{project['id']}/", token=alice["token"]).status == 404
    assert api.get("/api/projects/", token=alice["token"]).json == []
    assert api.get(f"/api/projects/{project['id']}/tasks/{task_ids[-1]}/", token=alice["token"]).status == 404
    # 150 removals (about ten DynamoDB and S3 calls each) do not fit 2 s: the rest waits for the poller
    remaining = task_store.list_for_project(project["id"])
    assert 0 < len(remaining) < 150
    assert [j["job"] for j in work.list_all()] == [f"remove-project#{project['id']}"]
    # one cycle (50 s of work) finishes it on any machine but a very loaded one, which takes two
    for cycles in range(1, 4):
        stats = api.poll()
        assert stats["jobs"] == 1 and stats.get("errors", 0) == 0
        if stats.get("jobs_done"):
            break
        assert stats["jobs_continued"] == 1 and len(task_store.list_for_project(project["id"])) < len(remaining)
    assert stats["jobs_done"] == 1
    _gone(project["id"], task_ids)
    # the next cycle is idle: the node list, the active tasks, the jobs, the webhook attempts
    # due (chalicelib/webhooks.py) and the hourly clean-up's claim (taken by an earlier tick of
    # this hour), nothing else
    calls = _dynamodb_calls(lambda: stats.update(api.poll()))
    assert stats["jobs"] == 0 and stats["active"] == 0
    assert calls == {"Scan": 1, "Query": 3, "UpdateItem": 1}


def test_a_route_killed_after_hiding_leaves_a_job_the_poller_finishes(api, alice):
    """The transaction that hides the project records its job: nothing else need happen."""
    from chalicelib.removal import request_removal
    from chalicelib import storage

    project = new_project(api, alice)
    task_ids = _stored_tasks(project["id"], 5)
    assert project_store.mark_deleting(project["id"])
    # ... and one task half removed (marked, objects gone, row left) when the Lambda died
    request_removal({"project_id": project["id"], "id": task_ids[0]})
    storage.delete_task_objects(task_ids[0])
    assert api.get(f"/api/projects/{project['id']}/", token=alice["token"]).status == 404
    stats = api.poll()
    assert stats["jobs_done"] == 1
    _gone(project["id"], task_ids)
    assert api.poll()["jobs"] == 0


def test_a_project_whose_task_is_on_a_node_goes_when_the_poller_removed_it_there(api, alice):
    project = new_project(api, alice)
    on_node = _stored_task(project["id"], status=20)
    task_store.mutate(project["id"], on_node, lambda t: {"uuid": "on-node"})
    others = _stored_tasks(project["id"], 3)
    assert api.delete(f"/api/projects/{project['id']}/", token=alice["token"]).status == 204
    assert task_store.list_for_project(project["id"])[0]["pending_action"] == 2  # left to the poller
    assert project_store.get(project["id"], include_deleting=True)["deleting"] is True
    api.poll()  # its node is gone: the step removes the task; the project and its job follow
    _gone(project["id"], [on_node, *others])


def test_deleting_a_user_hands_over_at_once_and_the_poller_closes_the_job(api, admin, alice):
    mine = [new_project(api, alice, name=f"a{i}")["id"] for i in range(3)]
    deleting = new_project(api, alice, name="going")
    assert api.delete(f"/api/projects/{deleting['id']}/", token=alice["token"]).status == 204
    assert api.delete(f"/api/admin/users/{alice['id']}/", token=admin["token"]).status == 204
    assert [project_store.get(p)["owner"] for p in mine] == [admin["id"]] * 3
    assert api.get("/api/projects/", token=alice["token"]).status == 403  # her token died with her
    assert api.get(f"/api/admin/users/{alice['id']}/", token=admin["token"]).status == 404
    assert [j["job"] for j in work.list_all()] == [f"hand-over#{alice['id']}"]
    stats = api.poll()
    assert stats["jobs_done"] == 1 and work.list_all() == []
    assert api.delete(f"/api/admin/users/{alice['id']}/", token=admin["token"]).status == 404


def test_a_user_deletion_killed_before_the_hand_over_is_finished_by_the_poller(api, admin, alice):
    from chalicelib.store import users

    mine = [new_project(api, alice, name=f"a{i}")["id"] for i in range(25)]
    transact(users.delete_request(users.get("alice")), work.hand_over_request(alice["id"], admin["id"]))
    assert users.get("alice") is None
    stats = api.poll()
    assert stats["jobs_done"] == 1 and work.list_all() == []
    assert [project_store.get(p)["owner"] for p in mine] == [admin["id"]] * 25
    listed = api.get("/api/projects/", token=admin["token"]).json
    assert sorted(p["id"] for p in listed) == sorted(mine)
