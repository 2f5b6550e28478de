"""A poller killed mid-submission (a Lambda timing out) leaves a task that still completes once."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from tests.conftest import ROOT
from tests.fake_nodeodm import FakeNodeODM
from tests.sample_data import fake_image


def poller_process(stack) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALOFT_", "AWS_"))}
    env.update({"AWS_ENDPOINT_URL": stack.storage_url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "ALOFT_LEASE_SECONDS": "2"})
    return subprocess.Popen([sys.executable, "-m", "aloft_local.scheduler"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_poller_killed_between_init_and_commit(stack_process):
    with FakeNodeODM(processing_seconds=0.2) as node:
        stack = stack_process(ALOFT_POLL_SECONDS="0")  # no background poller: we run them
        token = requests.post(f"{stack.url}/api/token-auth/",
                              data={"username": "admin", "password": "admin"}).json()["token"]
        headers = {"Authorization": f"JWT {token}"}
        created = requests.post(f"{stack.url}/api/processingnodes/", headers=headers,
                                json={"hostname": node.hostname, "port": node.port})
        assert created.status_code == 201
        project = requests.post(f"{stack.url}/api/projects/", headers=headers, json={"name": "crash"}).json()
        files = [("images", (f"i{i}.jpg", fake_image(i, 20_000))) for i in range(4)]
        task = requests.post(f"{stack.url}/api/projects/{project['id']}/tasks/", headers=headers,
                             files=files).json()
        url = f"{stack.url}/api/projects/{project['id']}/tasks/{task['id']}/"

        node.latency = 0.4  # slow enough to kill the poller between init and commit
        victim = poller_process(stack)
        deadline = time.time() + 30
        while node.calls["upload"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        victim.kill()
        victim.wait()
        assert node.calls["init"] == 1 and node.calls["commit"] == 0

        node.latency = 0.0
        time.sleep(2.2)  # the dead poller's lease runs out
        for _ in range(20):
            poller_process(stack).wait(timeout=60)
            current = requests.get(url, headers=headers).json()
            if current["status"] in (30, 40):
                break
            time.sleep(0.2)
        assert current["status"] == 40, current
        assert node.calls["commit"] == 1
        committed = [t for t in node.tasks.values() if t.committed]
        assert len(committed) == 1 and committed[0].uuid == current["uuid"]
        assert sorted(committed[0].images) == [f"i{i}.jpg" for i in range(4)]
