"""Deleting a project with 1,000 tasks: what the route removes in its 2 s budget, and the
schedule's ticks that finish the job (calls per task, time)."""
from __future__ import annotations

import json
import time
import uuid

from benchmarks.common import counting, make_user, moto_server_aloft


def _insert_removable(project_id: int, count: int) -> list[str]:
    """Finished tasks as the poller leaves them (row, an image and an asset in S3, a console
    chunk), in batches, and their ids in the project's task set."""
    from chalicelib import aws, config
    from chalicelib.store import output
    from chalicelib.store.dynamo import serialize, serialize_value

    settings = config.settings()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows, chunks = [], []
    for task_id in ids:
        for key in ("images/a.jpg", "assets/odm_orthophoto/odm_orthophoto.tif"):
            aws.s3().put_object(Bucket=settings.bucket, Key=f"tasks/{task_id}/{key}", Body=b"x" * 1000)
        rows.append({"project_id": project_id, "id": task_id, "created_at": "2026-01-01T00:00:00.000000Z",
                     "status": 40, "partial": False, "auto_processing_node": True, "version": 1, "uuid": "",
                     "available_assets": ["orthophoto.tif"], "options": [], **output.reset_fields(),
                     "output_count": 2, "output_tail_start": 0, "output_tail_lines": 2, "output_tail_bytes": 12})
        chunks.append({"task_id": task_id, "start": 0, "lines": ["line 1", "line 2"], "n": 2, "bytes": 12})
    for table, items in ((settings.tasks_table, rows), (settings.task_output_table, chunks)):
        for start in range(0, len(items), 25):
            aws.dynamodb().batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": serialize(item)}} for item in items[start:start + 25]]})
    aws.dynamodb().update_item(TableName=settings.projects_table, Key={"id": {"N": str(project_id)}},
                               UpdateExpression="ADD tasks :t", ExpressionAttributeValues={":t": serialize_value(set(ids))})
    return ids


def _project_removal(client, headers: dict) -> None:
    """DELETE a project with 1,000 finished tasks: what the route does in its budget, then
    the schedule's tick that finishes the job."""
    from chalicelib.store import tasks

    project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "gone"})).json_body
    count = 1000
    _insert_removable(project["id"], count)
    with counting() as counter:
        started = time.perf_counter()
        reply = client.http.delete(f"/api/projects/{project['id']}/", headers=headers)
        elapsed = time.perf_counter() - started
    assert reply.status_code == 204
    left = len(tasks.list_for_project(project["id"]))
    print(f"DELETE a project with {count} tasks: 204 after {elapsed:.2f} s, {count - left} tasks removed in "
          f"the route ({counter.total('dynamodb')} DynamoDB calls: {counter.describe('dynamodb')}; "
          f"S3: {counter.describe('s3')})")
    for cycle in range(1, 6):  # each local tick has 110 s (on AWS: 890 s)
        counter, _, elapsed, stats = _cycle()
        now_left = len(tasks.list_for_project(project["id"]))
        removed, left = left - now_left, now_left
        print(f"schedule tick {cycle} removes {removed} tasks in {elapsed:.2f} s "
              f"({elapsed / max(1, removed) * 1000:.0f} ms each): {counter.total('dynamodb')} DynamoDB calls "
              f"({counter.describe('dynamodb')}), {counter.total('dynamodb') / max(1, removed):.1f} per task; "
              f"S3 {counter.describe('s3')} ({stats})")
        if stats.get("jobs_done"):
            break


def _cycle():
    from aloft_local.scheduler import run_poller_once
    from chalicelib.nodeodm import CALLS

    CALLS.reset()
    with counting() as counter:
        started = time.perf_counter()
        stats = run_poller_once(timeout_seconds=120)
        elapsed = time.perf_counter() - started
    return counter, CALLS.count, elapsed, stats


def main() -> None:
    print("== Deleting a project with 1,000 finished tasks (moto server in a child process) ==")
    with moto_server_aloft() as client:
        _, token = make_user("admin", superuser=True)
        headers = {"Authorization": f"JWT {token}", "Content-Type": "application/json"}
        _project_removal(client, headers)
        counter, _, _, _ = _cycle()
        print(f"idle tick again: {counter.total('dynamodb')} DynamoDB calls ({counter.describe('dynamodb')})")


if __name__ == "__main__":
    main()
