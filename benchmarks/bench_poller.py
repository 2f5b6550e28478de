"""Poll cycle cost: DynamoDB and node HTTP calls per cycle, and cycle wall time under latency.

The cost of a cycle must follow active tasks (and nodes), never all tasks ever made.
"""
from __future__ import annotations

import json
import time
import uuid

from benchmarks.common import counting, make_user, moto_server_aloft


def _insert_finished(project_id: int, count: int) -> None:
    """Finished tasks written straight to the table (as years of use would leave them)."""
    from chalicelib import aws, config
    from chalicelib.store.dynamo import serialize

    table = config.settings().tasks_table
    for start in range(0, count, 25):
        items = [{"PutRequest": {"Item": serialize({
            "project_id": project_id, "id": str(uuid.uuid4()), "created_at": "2026-01-01T00:00:00.000000Z",
            "status": 40, "partial": False, "auto_processing_node": True, "version": 1,
            "available_assets": ["all.zip"], "options": []})}} for _ in range(min(25, count - start))]
        aws.dynamodb().batch_write_item(RequestItems={table: items})


def _create_tasks(client, headers: dict, project_id: int, count: int) -> None:
    from chalicelib.store.dynamo import transact
    from chalicelib.store import projects, tasks
    from chalicelib.models import utcnow
    from chalicelib.store import output

    # Tasks as the API makes them, with their images already in S3 (the upload path is not measured).
    from chalicelib import aws, config

    for _ in range(count):
        task_id = str(uuid.uuid4())
        aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task_id}/images/a.jpg", Body=b"x" * 1000)
        aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task_id}/images/b.jpg", Body=b"y" * 1000)
        task = {"project_id": project_id, "id": task_id, "created_at": utcnow(), "partial": False,
                "status": None, "pending_action": None, "auto_processing_node": True, "processing_node": None,
                "uuid": "", "options": [], "images_count": 2, "processing_time": -1, "name": None,
                **output.reset_fields()}
        transact(tasks.create_request(task), ("Update", projects.add_task_request(project_id, task_id)))


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
    the poll cycle that finishes the job."""
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
    for cycle in range(1, 6):  # each local cycle has 110 s (on AWS: 890 s)
        counter, _, elapsed, stats = _cycle()
        now_left = len(tasks.list_for_project(project["id"]))
        removed, left = left - now_left, now_left
        print(f"poll cycle {cycle} removes {removed} tasks in {elapsed:.2f} s "
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
    from chalicelib.config import settings
    from tests.fake_nodeodm import FakeNodeODM

    print("== Poll cycle cost (fake NodeODM; moto server in a child process) ==")
    with moto_server_aloft() as client, FakeNodeODM(processing_seconds=3600, parallel_tasks=1000, output_lines=0) as node:
        _, token = make_user("admin", superuser=True)
        headers = {"Authorization": f"JWT {token}", "Content-Type": "application/json"}
        client.http.post("/api/processingnodes/", headers=headers,
                         body=json.dumps({"hostname": node.hostname, "port": node.port}))
        project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "b"})).json_body
        pid = project["id"]

        counter, node_calls, elapsed, _ = _cycle()
        print(f"idle cycle (1 node, nothing active): {counter.total('dynamodb')} DynamoDB calls "
              f"({counter.describe('dynamodb')}), {node_calls} node HTTP calls")

        _project_removal(client, headers)
        counter, node_calls, elapsed, _ = _cycle()
        print(f"idle cycle again: {counter.total('dynamodb')} DynamoDB calls ({counter.describe('dynamodb')})")

        _create_tasks(client, headers, pid, 10)
        for _ in range(3):  # assign, submit, first status: then the 10 tasks are RUNNING on the node
            _cycle()
        finished_total = 0
        for finished in (0, 1_000, 10_000):
            _insert_finished(pid, finished - finished_total)
            finished_total = finished
            counter, node_calls, elapsed, stats = _cycle()
            print(f"10 active + {finished:>6} finished tasks: {counter.total('dynamodb'):>3} DynamoDB calls "
                  f"({counter.describe('dynamodb')}), {node_calls} node HTTP calls, {elapsed:.2f} s")

        # 200 active tasks, 50 ms per node request
        _create_tasks(client, headers, pid, 190)
        for _ in range(4):
            _cycle()
        pool = settings().poll_workers
        _, _, no_latency, _ = _cycle()
        node.latency = 0.05
        counter, node_calls, elapsed, stats = _cycle()
        ideal = 200 * 0.05 / pool
        print(f"200 active tasks, 50 ms node latency, pool of {pool}: cycle {elapsed:.2f} s; "
              f"ideal 200 × 50 ms ÷ {pool} = {ideal:.2f} s; the same cycle with no node latency "
              f"{no_latency:.2f} s (DynamoDB/moto time), so latency added {elapsed - no_latency:.2f} s "
              f"({node_calls} node calls, {counter.total('dynamodb')} DynamoDB calls, {stats})")


if __name__ == "__main__":
    main()
