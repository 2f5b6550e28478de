"""The work queue: latencies, the relay, and what running tasks and the schedule cost.

- latencies against `make run` itself (`python -m aloft_local`, schedule at its 60 s) and a
  fake NodeODM: commit → node init, cancel → node cancel, node COMPLETED → Aloft 40;
- relay vs direct: 60 images of 4 MiB sent to one fake NodeODM by a direct client (files
  on disk, ALOFT_UPLOAD_CONCURRENCY requests at once) and by the worker's relay (S3 on a
  moto server → node, the same concurrency), alternately, 3 rounds each;
- a running task's steps (a poll every ALOFT_FOLLOW_SECONDS): DynamoDB, S3, SQS and node
  calls per step and per task-minute, request units, and what 1,000 running tasks cost
  for an hour at us-east-1 list prices (bench_idle_cost's table);
- the schedule's tick: idle, and with 10 running tasks beside 0, 1,000 and 10,000 finished
  ones (its cost follows overdue tasks only);
- deleting a project with 1,000 finished tasks: the route's 2 s, then the tick that finishes.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import counting, make_user, moto_server_aloft

RELAY_IMAGES = 60
RELAY_IMAGE_BYTES = 4 * 1024 * 1024
RUNNING_TASKS_PRICED = 1000


# ------------------------------------------------------------------------------ latencies

def _latencies() -> None:
    from tests.conftest import StackProcess
    from tests.fake_nodeodm import FakeNodeODM
    from tests.test_work_queue import Client, _first_after

    print("== Latencies against make run (schedule every 60 s, ALOFT_FOLLOW_SECONDS 5; fake NodeODM) ==")
    node = FakeNodeODM(processing_seconds=3, output_lines=20).start()
    with tempfile.TemporaryDirectory() as data:
        stack = StackProcess(data_dir=Path(data), ALOFT_POLL_SECONDS="60")
        try:
            client = Client(stack)
            client.node(node)
            inits, cancels, completions = [], [], []
            for _ in range(3):
                node.processing_seconds = 3
                task = client.partial_with_images()
                committed = client.post(task, "commit")
                inits.append(_first_after(node, "init", committed) - committed)
                current, _ = client.wait(task, lambda t: t["status"] == 20)
                done, seen = client.wait(task, lambda t: t["status"] in (30, 40, 50))
                completions.append(seen - node.tasks[current["uuid"]].finished_at)
                node.processing_seconds = 60
                other = client.partial_with_images()
                client.post(other, "commit")
                client.wait(other, lambda t: t["status"] == 20)
                canceled = client.post(other, "cancel")
                cancels.append(_first_after(node, "cancel", canceled) - canceled)
            for label, values in (("commit → node init", inits), ("cancel → node cancel", cancels),
                                  ("node COMPLETED → Aloft 40", completions)):
                print(f"{label}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
                      f"({', '.join(f'{v:.2f}' for v in values)})")
        finally:
            stack.stop()
            node.stop()


# ------------------------------------------------------------------------------ relay

class _NodeProcess:
    """The fake NodeODM in its own process, as a real node is (not sharing this one's GIL),
    its uploads limited to `mbps` megabits per second when given (a node behind a link)."""

    hostname = "127.0.0.1"

    def __init__(self, mbps: float | None = None):
        self.mbps = mbps

    def __enter__(self):
        import socket
        import subprocess
        import sys

        from benchmarks.common import ROOT

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_nodeodm", "--port", str(self.port), "--processing-seconds",
             "3600", "--parallel-tasks", "100"] + (["--ingress-mbps", str(self.mbps)] if self.mbps else []),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.process.stdout.readline()  # "fake NodeODM listening on ..."
        return self

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait()


def _direct(node, files: list[Path], concurrency: int) -> float:
    from chalicelib.nodeodm import NodeClient

    client = NodeClient(node.hostname, node.port)
    node_uuid = client.init_task("direct", [])
    started = time.perf_counter()

    def send(path: Path) -> None:
        with open(path, "rb") as stream:
            NodeClient(node.hostname, node.port).upload(node_uuid, path.name, stream, path.stat().st_size)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, files))
    client.commit(node_uuid)
    elapsed = time.perf_counter() - started
    client.remove(node_uuid)  # the fake node keeps images in memory: keep it lean for the next round
    return elapsed


def _relay(node, project_id: int, node_id: int, images: dict[str, bytes]) -> float:
    from chalicelib import aws, config, queue
    from chalicelib.nodeodm import NodeClient
    from chalicelib.models import utcnow
    from chalicelib.steps import advance_task
    from chalicelib.store import output, projects, tasks
    from chalicelib.store.dynamo import transact

    task_id = str(uuid.uuid4())
    for name, content in images.items():
        aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task_id}/images/{name}", Body=content)
    task = {"project_id": project_id, "id": task_id, "created_at": utcnow(), "partial": False, "status": None,
            "pending_action": None, "auto_processing_node": False, "processing_node": node_id, "uuid": "",
            "options": [], "images_count": len(images), "processing_time": -1, "name": "relay",
            **output.reset_fields(), **queue.wake_fields()}
    transact(tasks.create_request(task), ("Update", projects.add_task_request(project_id, task_id)))
    started, cpu = time.perf_counter(), time.process_time()
    step = advance_task({"project_id": project_id, "id": task_id}, task["step_token"])
    elapsed = time.perf_counter() - started
    _relay.cpu = time.process_time() - cpu
    stored = tasks.get(project_id, task_id)
    assert step == "submit" and stored["node_committed"], step
    NodeClient(node.hostname, node.port).remove(stored["uuid"])
    tasks.delete(stored)  # its follow-up message finds nothing: the later figures are not about it
    return elapsed


def _relay_vs_direct(client, headers: dict) -> None:
    images = {f"DJI_{i:04d}.JPG": os.urandom(RELAY_IMAGE_BYTES) for i in range(RELAY_IMAGES)}
    for mbps, where in ((1000, "behind a 1 Gbit/s link (a node on the LAN or in the cloud)"),
                        (None, "on loopback, unlimited: bound by this 2-core machine's CPU, which moto "
                               "(standing in for S3), the node and the relay share")):
        _relay_round(client, headers, images, mbps, where)


def _relay_round(client, headers: dict, images: dict[str, bytes], mbps: float | None, where: str) -> None:
    from chalicelib.config import settings

    concurrency = settings().upload_concurrency
    print(f"\n== Relay vs direct upload: {RELAY_IMAGES} × {RELAY_IMAGE_BYTES // 2**20} MiB, "
          f"{concurrency} requests at once, one fake NodeODM in its own process, {where} ==")
    with tempfile.TemporaryDirectory() as folder, _NodeProcess(mbps) as node:
        files = []
        for name, content in images.items():
            path = Path(folder) / name
            path.write_bytes(content)
            files.append(path)
        created = client.http.post("/api/processingnodes/", headers=headers,
                                   body=json.dumps({"hostname": node.hostname, "port": node.port})).json_body
        project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "relay"})).json_body
        direct, relay = [], []
        for _ in range(5):
            direct.append(_direct(node, files, concurrency))
            relay.append(_relay(node, project["id"], created["id"], images))
        d, r = statistics.median(direct), statistics.median(relay)
        megabytes = RELAY_IMAGES * RELAY_IMAGE_BYTES / 1e6
        print(f"direct (init, uploads from disk, commit): median {d:.2f} s ({megabytes / d:.0f} MB/s; {', '.join(f'{v:.2f}' for v in direct)})")
        print(f"relay (the worker's submit step: init, S3 → node, commit): median {r:.2f} s "
              f"({megabytes / r:.0f} MB/s; {', '.join(f'{v:.2f}' for v in relay)})")
        print(f"relay / direct = {r / d:.2f}×")


# ------------------------------------------------------------------------------ running tasks

def _create_running(client, headers: dict, project_id: int, count: int) -> list[dict]:
    """Tasks created through the API, then driven by the worker until the node runs them."""
    from aloft_local.eventsource import QueueSource, drain
    from chalicelib import aws, queue
    from chalicelib.store import tasks

    created = []
    for i in range(count):
        body = (b"--b\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.jpg\"\r\n\r\n"
                + b"x" * 1000 + b"\r\n--b\r\nContent-Disposition: form-data; name=\"images\"; "
                b"filename=\"b.jpg\"\r\n\r\n" + b"y" * 1000 + b"\r\n--b--\r\n")
        reply = client.http.post(f"/api/projects/{project_id}/tasks/",
                                 headers={**headers, "Content-Type": "multipart/form-data; boundary=b"}, body=body)
        created.append(reply.json_body)
    source = QueueSource(aws.client("sqs"), queue.queue_url(), _invoke_worker)
    for _ in range(20):
        drain(source, 10 * count)
        if all(tasks.get(project_id, t["id"]).get("status") == 20 for t in created):
            break
        time.sleep(0.2)
    return created


def _invoke_worker(event: dict) -> bool:
    from chalice.local import LambdaContext

    from app import app

    app.handler_map["worker"](event, LambdaContext("worker", 1769, max_runtime_ms=900_000))
    return True


def _step_costs(project_id: int, running: int) -> dict:
    """The next `running` poll steps of running tasks (one per task), counted."""
    from aloft_local.eventsource import QueueSource, drain
    from benchmarks.bench_idle_cost import CapacityMeter
    from chalicelib import aws, queue
    from chalicelib.config import settings
    from chalicelib.nodeodm import CALLS

    follow = settings().follow_seconds
    time.sleep(follow + 0.5)  # every running task's follow-up is due
    meter = CapacityMeter()
    dynamodb = aws.dynamodb()
    dynamodb.meta.events.register("before-call.dynamodb.*", meter.before)
    dynamodb.meta.events.register("after-call.dynamodb.*", meter.after)
    sqs_calls: dict[str, int] = {}

    def count_sqs(model=None, **_):
        sqs_calls[model.name] = sqs_calls.get(model.name, 0) + 1

    aws.client("sqs").meta.events.register("before-call.sqs.*", count_sqs)
    CALLS.reset()
    try:
        with counting() as counter:
            started = time.perf_counter()
            steps = drain(QueueSource(aws.client("sqs"), queue.queue_url(), _invoke_worker), running)
            elapsed = time.perf_counter() - started
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.*", meter.before)
        dynamodb.meta.events.unregister("after-call.dynamodb.*", meter.after)
        aws.client("sqs").meta.events.unregister("before-call.sqs.*", count_sqs)
    per_minute = 60 / max(1, follow)
    ddb = counter.total("dynamodb") / steps
    node_calls = CALLS.count / steps
    # the worker sends the follow-up; Lambda's event source receives and deletes it
    messages = sqs_calls.get("SendMessage", 0) / steps
    print(f"one poll step of a running task ({steps} steps): {ddb:.1f} DynamoDB calls "
          f"({counter.describe('dynamodb')}), {node_calls:.1f} node calls, {messages:.1f} message sent, "
          f"{meter.read_units / steps:.1f} RRU + {meter.write_units / steps:.1f} WRU, "
          f"{elapsed / steps * 1000:.0f} ms")
    print(f"per running task-minute (a step every {follow} s): {per_minute * messages:.0f} messages, "
          f"{per_minute * ddb:.0f} DynamoDB calls, {per_minute * node_calls:.0f} node calls")
    return {"steps_per_minute": per_minute, "dynamodb_calls": ddb, "read_units": meter.read_units / steps,
            "write_units": meter.write_units / steps, "seconds": elapsed / steps}


def _price_running(costs: dict) -> None:
    from benchmarks.bench_idle_cost import (DYNAMODB_READ_UNIT, DYNAMODB_WRITE_UNIT, LAMBDA_GB_SECOND,
                                            LAMBDA_REQUEST, PRICES_DATE, SQS_REQUEST)

    steps = costs["steps_per_minute"] * 60 * RUNNING_TASKS_PRICED
    memory_gb = 1769 / 1024
    seconds = max(0.05, costs["seconds"])  # a node on the network answers in tens of ms
    lambda_cost = steps * (seconds * memory_gb * LAMBDA_GB_SECOND + LAMBDA_REQUEST)
    sqs = steps * 3 * SQS_REQUEST  # SendMessage by the step; ReceiveMessage and DeleteMessage by Lambda
    dynamodb = steps * (costs["read_units"] * DYNAMODB_READ_UNIT + costs["write_units"] * DYNAMODB_WRITE_UNIT)
    print(f"{RUNNING_TASKS_PRICED:,} running tasks for an hour ({steps:,.0f} steps; us-east-1 list prices of "
          f"{PRICES_DATE}, no free tier): Lambda ${lambda_cost:.2f} ({seconds * 1000:.0f} ms × 1769 MB a step), "
          f"SQS ${sqs:.2f}, DynamoDB ${dynamodb:.2f}: ${lambda_cost + sqs + dynamodb:.2f}")


def _tick(label: str) -> None:
    from aloft_local.scheduler import run_poller_once
    from chalicelib.nodeodm import CALLS

    CALLS.reset()
    with counting() as counter:
        started = time.perf_counter()
        stats = run_poller_once(timeout_seconds=120)
        elapsed = time.perf_counter() - started
    print(f"schedule tick, {label}: {counter.total('dynamodb')} DynamoDB calls ({counter.describe('dynamodb')}), "
          f"{CALLS.count} node calls, {stats.get('sent_again', 0)} sent again, {elapsed:.2f} s")


def _insert_finished(project_id: int, count: int) -> None:
    from chalicelib import aws, config
    from chalicelib.store.dynamo import serialize

    table = config.settings().tasks_table
    for start in range(0, count, 25):
        items = [{"PutRequest": {"Item": serialize({
            "project_id": project_id, "id": str(uuid.uuid4()), "created_at": "2026-01-01T00:00:00.000000Z",
            "status": 40, "partial": False, "auto_processing_node": True, "version": 1,
            "available_assets": ["all.zip"], "options": []})}} for _ in range(min(25, count - start))]
        aws.dynamodb().batch_write_item(RequestItems={table: items})


def _running_and_schedule(client, headers: dict) -> None:
    from tests.fake_nodeodm import FakeNodeODM

    print("\n== Running tasks and the schedule (fake NodeODM; moto server in a child process) ==")
    with FakeNodeODM(processing_seconds=3600, parallel_tasks=1000, output_lines=0) as node:
        client.http.post("/api/processingnodes/", headers=headers,
                         body=json.dumps({"hostname": node.hostname, "port": node.port}))
        project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "run"})).json_body
        _tick("1 node, nothing active")
        _create_running(client, headers, project["id"], 10)
        costs = _step_costs(project["id"], 10)
        _price_running(costs)
        finished_total = 0
        for finished in (0, 1_000, 10_000):
            _insert_finished(project["id"], finished - finished_total)
            finished_total = finished
            _tick(f"10 running + {finished:,} finished tasks")


def main() -> None:
    _latencies()
    os.environ["ALOFT_FOLLOW_SECONDS"] = "5"  # the default (importing the tests' conftest set 0)
    from chalicelib import config

    config.reset()
    with moto_server_aloft() as client:
        _, token = make_user("admin", superuser=True)
        headers = {"Authorization": f"JWT {token}", "Content-Type": "application/json"}
        from app import app

        level = app.log.level
        app.log.setLevel("WARNING")  # not one line per step
        try:
            _relay_vs_direct(client, headers)
            _running_and_schedule(client, headers)
        finally:
            app.log.setLevel(level)


if __name__ == "__main__":
    main()
