"""Tasks move the moment something happens: the work queue against `make run` itself.

Every stack here runs the schedule at its default 60 s, so only messages can explain
these timings: a commit reaches the node, a cancel or a remove reaches it, and a task
the node finished shows COMPLETED, each within seconds.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from tests.fake_nodeodm import FakeNodeODM
from tests.sample_data import fake_image

FOLLOW_SECONDS = 5  # ALOFT_FOLLOW_SECONDS' default
# Issue 10's figures (≤ 2 s to the node) are measured on an idle machine by
# benchmarks/bench_work.py. Here the suite's other worker shares the 2 cores (tiles, COGs),
# which has stretched a 0.3 s path to 4 s: the bound stays far below the 60 s schedule, so
# only a message can meet it, without making CI depend on the neighbour's load.
MESSAGE_BOUND = 6.0


class Client:
    def __init__(self, stack):
        self.url = stack.url
        token = requests.post(f"{stack.url}/api/token-auth/", data={"username": "admin", "password": "admin"}).json()["token"]
        self.headers = {"Authorization": f"JWT {token}"}
        self.project = requests.post(f"{stack.url}/api/projects/", headers=self.headers, json={"name": "q"}).json()
        self.tasks = f"{stack.url}/api/projects/{self.project['id']}/tasks/"

    def node(self, node: FakeNodeODM) -> None:
        reply = requests.post(f"{self.url}/api/processingnodes/", headers=self.headers,
                              json={"hostname": node.hostname, "port": node.port})
        assert reply.status_code == 201, reply.text

    def partial_with_images(self, count: int = 3, size: int = 50_000) -> dict:
        task = requests.post(self.tasks, headers=self.headers, json={"partial": True}).json()
        files = [("images", (f"DJI_{i:04d}.JPG", fake_image(i, size), "image/jpeg")) for i in range(count)]
        assert requests.post(f"{self.tasks}{task['id']}/upload/", headers=self.headers, files=files).status_code == 200
        return task

    def post(self, task: dict, action: str) -> float:
        """The action's time (just before it is sent)."""
        started = time.time()
        reply = requests.post(f"{self.tasks}{task['id']}/{action}/", headers=self.headers)
        assert reply.status_code == 200, reply.text
        return started

    def get(self, task: dict) -> dict:
        return requests.get(f"{self.tasks}{task['id']}/", headers=self.headers).json()

    def wait(self, task: dict, done, seconds: float = 60) -> tuple[dict, float]:
        deadline = time.time() + seconds
        while time.time() < deadline:
            current = self.get(task)
            if done(current):
                return current, time.time()
            time.sleep(0.05)
        raise AssertionError(f"not reached in {seconds} s: {current}")


def _first_after(node: FakeNodeODM, route: str, since: float, seconds: float = 30) -> float:
    deadline = time.time() + seconds
    while time.time() < deadline:
        later = [t for t in node.call_times[route] if t >= since]
        if later:
            return later[0]
        time.sleep(0.02)
    raise AssertionError(f"the node never saw {route}")


@pytest.fixture
def setup(stack_process):
    node = FakeNodeODM(processing_seconds=3, output_lines=20).start()
    stack = stack_process(ALOFT_POLL_SECONDS="60")  # the schedule as on AWS: messages do the work
    client = Client(stack)
    client.node(node)
    yield client, node, stack
    node.stop()


def test_commit_cancel_remove_and_completion_reach_the_node_in_seconds(setup):
    client, node, _ = setup
    task = client.partial_with_images()
    committed = client.post(task, "commit")
    init = _first_after(node, "init", committed)
    assert init - committed <= MESSAGE_BOUND, f"commit → node init took {init - committed:.2f} s"
    current, _ = client.wait(task, lambda t: t["status"] == 20)
    on_node = node.tasks[current["uuid"]]
    done, seen = client.wait(task, lambda t: t["status"] in (30, 40, 50))
    assert done["status"] == 40
    finished = on_node.finished_at
    assert finished is not None and seen - finished <= FOLLOW_SECONDS + MESSAGE_BOUND, \
        f"node COMPLETED → Aloft 40 took {seen - finished:.2f} s"

    node.processing_seconds = 60
    second = client.partial_with_images()
    client.post(second, "commit")
    client.wait(second, lambda t: t["status"] == 20)
    canceled = client.post(second, "cancel")
    cancel = _first_after(node, "cancel", canceled)
    assert cancel - canceled <= MESSAGE_BOUND, f"cancel → node cancel took {cancel - canceled:.2f} s"
    client.wait(second, lambda t: t["status"] == 50 and t["pending_action"] is None)

    third = client.partial_with_images()
    client.post(third, "commit")
    client.wait(third, lambda t: t["status"] == 20)
    removed = client.post(third, "remove")
    remove = _first_after(node, "remove", removed)
    assert remove - removed <= MESSAGE_BOUND, f"remove → node remove took {remove - removed:.2f} s"
    deadline = time.time() + 10
    while requests.get(f"{client.tasks}{third['id']}/", headers=client.headers).status_code != 404:
        assert time.time() < deadline
        time.sleep(0.05)


def test_two_stacks_on_one_endpoint_make_exactly_one_node_task_each(stack_process):
    """Two `make run`s share the moto endpoint (tables, bucket, queue): 12 tasks, 8 workers in
    all: exactly 12 node tasks, each committed once."""
    with FakeNodeODM(processing_seconds=0.3, parallel_tasks=20) as node:
        # Follow-ups every second instead of 5: the same messages, a quicker test.
        first = stack_process(ALOFT_POLL_SECONDS="60", ALOFT_FOLLOW_SECONDS="1")
        second = stack_process(AWS_ENDPOINT_URL=first.storage_url, ALOFT_POLL_SECONDS="60",
                               ALOFT_FOLLOW_SECONDS="1")
        client, other = Client(first), Client(second)
        client.node(node)
        created = []
        for i in range(12):
            target = client if i % 2 else other
            files = [("images", (f"{j}.jpg", fake_image(i * 10 + j, 5_000))) for j in range(2)]
            created.append((target, requests.post(target.tasks, headers=target.headers, files=files).json()))
        for target, task in created:
            target.wait(task, lambda t: t["status"] in (30, 40, 50), seconds=120)
            assert target.get(task)["status"] == 40
        assert node.task_creations == 12 and node.calls["commit"] == 12
        assert len([t for t in node.tasks.values() if t.committed]) == 12


def _worker_containers(stack) -> list[int]:
    """The pids of the stack's `worker` containers (children whose command names the function)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
        except OSError:
            continue
        if parent == stack.process.pid and b"aloft_local.lambda_runtime" in args and b"worker" in args:
            pids.append(int(entry))
    return pids


def test_a_worker_killed_mid_upload_comes_back_after_the_visibility_timeout(stack_process):
    """kill -9 of the worker's container between init and commit: the message comes back after
    the queue's visibility timeout (shortened here), the lease has run out, and the task is
    committed on a node once, every image once (the cut upload's node task is never committed)."""
    with FakeNodeODM(processing_seconds=0.2) as node:
        stack = stack_process(ALOFT_POLL_SECONDS="60", ALOFT_QUEUE_VISIBILITY_SECONDS="3",
                              ALOFT_LEASE_SECONDS="3", ALOFT_UPLOAD_CONCURRENCY="1")
        client = Client(stack)
        client.node(node)
        node.latency = 0.5  # slow enough to kill the worker between init and commit
        task = client.partial_with_images(count=6, size=20_000)
        client.post(task, "commit")
        deadline = time.time() + 30
        while node.calls["upload"] < 2 and time.time() < deadline:
            time.sleep(0.02)
        for pid in _worker_containers(stack):
            os.kill(pid, signal.SIGKILL)
        killed = time.time()
        assert node.calls["init"] == 1 and node.calls["commit"] == 0
        node.latency = 0.0
        done, seen = client.wait(task, lambda t: t["status"] in (30, 40, 50), seconds=60)
        assert done["status"] == 40, done
        assert seen - killed >= 3  # not before the message came back
        assert node.calls["commit"] == 1  # one node task ever runs it
        committed = [t for t in node.tasks.values() if t.committed]
        assert len(committed) == 1 and committed[0].uuid == done["uuid"]
        # no image twice (NodeODM would rename a second copy: DJI_0000_.JPG)
        assert sorted(committed[0].images) == [f"DJI_{i:04d}.JPG" for i in range(6)]


def test_a_poisoned_message_goes_to_the_dead_letter_queue_and_blocks_nothing(stack_process):
    import boto3

    from aloft_local.resources import resource_environment
    from aloft_local.stack import RESOURCE_PREFIX

    with FakeNodeODM(processing_seconds=0.2) as node:
        stack = stack_process(ALOFT_POLL_SECONDS="60", ALOFT_QUEUE_VISIBILITY_SECONDS="1")
        client = Client(stack)
        client.node(node)
        sqs = boto3.client("sqs", endpoint_url=stack.storage_url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        queues = resource_environment(RESOURCE_PREFIX)
        work = sqs.get_queue_url(QueueName=queues["ALOFT_WORK_QUEUE"])["QueueUrl"]
        dead = sqs.get_queue_url(QueueName=f"{RESOURCE_PREFIX}-WorkDeadLetterQueue")["QueueUrl"]
        sqs.send_message(QueueUrl=work, MessageBody="{not a work message")
        task = client.partial_with_images()
        client.post(task, "commit")
        done, _ = client.wait(task, lambda t: t["status"] in (30, 40, 50))
        assert done["status"] == 40  # the poison never held the others up
        deadline = time.time() + 30
        while time.time() < deadline:
            found = sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=1).get("Messages", [])
            if found:
                assert found[0]["Body"] == "{not a work message"
                break
        else:
            raise AssertionError("the poisoned message never reached the dead-letter queue")
