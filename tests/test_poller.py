"""Tasks end to end: the public API, the work messages and their `worker` function, the
`poller` schedule, and a fake NodeODM (Api.poll: the schedule once, then the due messages)."""
from __future__ import annotations

import threading
import time

import pytest

from chalicelib.store import nodes as node_store
from chalicelib.store import projects as project_store
from chalicelib.store import tasks as task_store
from tests.conftest import register_node
from tests.fake_nodeodm import FakeNodeODM
from tests.helpers import image_files, new_project, new_task, s3_bytes, s3_keys
from tests.sample_data import sample_files


def task_url(project, task, suffix=""):
    return f"/api/projects/{project['id']}/tasks/{task['id']}/{suffix}"


def poll_until(api, user, project, task, done, cycles=60, pause=0.1):
    """Run poll cycles until `done(task)`; returns the task as the API shows it."""
    current = None
    for _ in range(cycles):
        api.poll()
        current = api.get(task_url(project, task), token=user["token"]).json
        if current is None or done(current):
            return current
        time.sleep(pause)
    raise AssertionError(f"task never reached the expected state: {current}")


def finished(task):
    return task["status"] in (30, 40, 50)


@pytest.fixture
def setup(api, admin, alice, fake_node):
    node = register_node(api, admin, fake_node)
    project = new_project(api, alice)
    return node, project


def test_quickstart_flow(api, alice, fake_node, setup):
    node, project = setup
    files = image_files(3)
    options = '[{"name": "orthophoto-resolution", "value": 24}]'
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=files,
                    data={"options": options, "name": "Quick"}).json
    assert task["status"] is None and task["processing_time"] == -1
    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and done["running_progress"] == 1.0 and done["last_error"] is None
    assert done["processing_node"] == node["id"] and done["processing_node_name"] == node["label"]
    assert done["processing_time"] >= 0 and done["upload_progress"] == 1.0
    assert "rerun-from" not in done["can_rerun_from"] and "odm_dem" in done["can_rerun_from"]
    on_node = fake_node.tasks[done["uuid"]]
    assert {name: content for _, (name, content) in files} == on_node.images
    assert {"name": "orthophoto-resolution", "value": 24.0} in on_node.options
    assert fake_node.task_creations == 1
    # downloads: bytes equal to the node's
    reply = api.get(task_url(project, task, "download/orthophoto.tif"), token=alice["token"])
    assert reply.status == 302
    assert s3_bytes(f"tasks/{task['id']}/assets/odm_orthophoto/odm_orthophoto.tif") == \
        sample_files()["odm_orthophoto/odm_orthophoto.tif"]
    assert api.get(task_url(project, task, "download/all.zip"), token=alice["token"]).status == 302
    assert s3_bytes(f"tasks/{task['id']}/all.zip") == fake_node.all_zip
    # console: every node line exactly once
    console = api.get(task_url(project, task, "output/"), token=alice["token"], params={"f": "json"}).json
    assert console["lines"] == fake_node.tasks[done["uuid"]].output()
    # delete the project: the poller removes the task here and on the node
    assert api.delete(f"/api/projects/{project['id']}/", token=alice["token"]).status == 204
    api.poll()
    assert done["uuid"] not in fake_node.tasks
    assert task_store.get(project["id"], task["id"]) is None
    assert project_store.get(project["id"], include_deleting=True) is None
    assert s3_keys(f"tasks/{task['id']}/") == []


def test_a_task_being_set_up_on_a_busy_node_reads_queued_not_running(api, alice, fake_node, setup):
    """A real NodeODM reports a new task RUNNING with processingTime -1 while it sets it up,
    then QUEUED behind the running one: Aloft shows 10 until the run starts, never 20 → 10."""
    _, project = setup
    fake_node.processing_seconds, fake_node.setup_seconds = 60, 60
    first = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json
    poll_until(api, alice, project, first, lambda t: t["status"] == 20)
    second = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json
    queued = poll_until(api, alice, project, second, lambda t: t["uuid"] is not None and t["status"] is not None)
    node_view = fake_node.tasks[queued["uuid"]]
    for _ in range(3):
        api.poll()
        assert node_view.info_json(time.monotonic())["status"] == {"code": 20}  # what the node says
        assert node_view.processing_time == -1
        assert api.get(task_url(project, second), token=alice["token"]).json["status"] == 10
    fake_node.processing_seconds = 0.5
    api.post(task_url(project, first, "cancel/"), token=alice["token"])  # frees the node's slot
    seen = []
    done = poll_until(api, alice, project, second, lambda t: seen.append(t["status"]) or finished(t))
    assert done["status"] == 40 and (20 not in seen or 10 not in seen[seen.index(20):]), seen


def test_status_40_only_once_downloads_work(api, alice, fake_node, setup):
    _, project = setup
    task = new_task(api, alice, project)
    seen = []
    for _ in range(60):
        api.poll()
        current = api.get(task_url(project, task), token=alice["token"]).json
        seen.append(current["status"])
        if current["status"] == 40:
            assert current["available_assets"] and current["running_progress"] == 1.0
            assert api.get(task_url(project, task, "download/orthophoto.tif"), token=alice["token"]).status == 302
            break
        assert api.get(task_url(project, task, "download/orthophoto.tif"), token=alice["token"]).status == 404
        time.sleep(0.05)
    assert seen[-1] == 40 and 30 not in seen


def test_cancel_while_running_then_restart(api, alice, fake_node, setup):
    _, project = setup
    fake_node.processing_seconds = 30
    task = new_task(api, alice, project)
    running = poll_until(api, alice, project, task, lambda t: t["status"] == 20)
    assert 0 <= running["running_progress"] <= 0.85
    api.post(task_url(project, task, "cancel/"), token=alice["token"])
    canceled = poll_until(api, alice, project, task, lambda t: t["pending_action"] is None)
    assert canceled["status"] == 50
    assert fake_node.tasks[running["uuid"]].status == 50
    assert fake_node.calls["cancel"] == 1
    fake_node.processing_seconds = 0.2
    restarted = api.post(task_url(project, task, "restart/"), token=alice["token"])
    assert restarted.status == 200
    pending = api.get(task_url(project, task), token=alice["token"]).json
    assert pending["pending_action"] == 3 and pending["status"] == 50
    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and fake_node.calls["restart"] == 1 and fake_node.task_creations == 1
    assert done["uuid"] == running["uuid"]  # restarted on the node, not re-uploaded
    lines = api.get(task_url(project, task, "output/"), token=alice["token"], params={"f": "json"}).json
    assert lines["lines"] == fake_node.tasks[done["uuid"]].output()  # the console started again


def test_node_fails_the_task_then_restart(api, alice, fake_node, setup):
    _, project = setup
    fake_node.fail_tasks = True
    task = new_task(api, alice, project)
    failed = poll_until(api, alice, project, task, finished)
    assert failed["status"] == 30 and failed["last_error"]  # a clear message even without one from the node
    assert task_store.get(project["id"], task["id"]).get("active") is None  # costs nothing any more
    fake_node.fail_tasks = False
    fake_node.fail_message = None
    api.post(task_url(project, task, "restart/"), token=alice["token"])
    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and done["last_error"] is None


def test_node_failure_message_is_kept(api, alice, fake_node, setup):
    _, project = setup
    fake_node.fail_message = "Not enough memory"
    task = new_task(api, alice, project)
    failed = poll_until(api, alice, project, task, finished)
    assert failed["status"] == 30 and failed["last_error"] == "Not enough memory"


def test_remove_while_running(api, alice, fake_node, setup):
    _, project = setup
    fake_node.processing_seconds = 30
    task = new_task(api, alice, project)
    running = poll_until(api, alice, project, task, lambda t: t["status"] == 20)
    assert api.post(task_url(project, task, "remove/"), token=alice["token"]).json == {"success": True}
    assert api.get(task_url(project, task), token=alice["token"]).status == 404
    api.poll()
    assert running["uuid"] not in fake_node.tasks and fake_node.calls["remove"] == 1
    assert task_store.get(project["id"], task["id"]) is None and s3_keys(f"tasks/{task['id']}/") == []


def test_node_forgets_the_task(api, alice, fake_node, setup):
    _, project = setup
    fake_node.processing_seconds = 30
    task = new_task(api, alice, project)
    running = poll_until(api, alice, project, task, lambda t: t["status"] == 20)
    fake_node.forget_all_tasks()
    failed = poll_until(api, alice, project, task, finished)
    assert failed["status"] == 30 and failed["last_error"] == f"{running['uuid']} not found"


def test_connection_error_while_polling_is_retried(api, alice, fake_node, setup):
    _, project = setup
    fake_node.processing_seconds = 10.0  # still running after the offline polls, even on a loaded machine
    task = new_task(api, alice, project)
    poll_until(api, alice, project, task, lambda t: t["status"] == 20)
    fake_node.go_offline()
    for _ in range(3):
        api.poll()
    during = api.get(task_url(project, task), token=alice["token"]).json
    assert during["status"] == 20 and during["last_error"] is None
    fake_node.go_online()
    assert poll_until(api, alice, project, task, finished, cycles=300)["status"] == 40


def _age_node(node_id: int) -> None:
    node_store.update(node_id, {"last_refreshed": "2000-01-01T00:00:00.000000Z"})


def test_node_offline_while_queued_moves_and_while_running_fails(api, admin, alice, fake_node, setup):
    node_a, project = setup
    fake_node.processing_seconds = 30
    created = [new_task(api, alice, project), new_task(api, alice, project)]
    statuses = {}
    for _ in range(60):  # one runs, the other waits in the node's queue (one slot)
        api.poll()
        statuses = {t["id"]: api.get(task_url(project, t), token=alice["token"]).json["status"] for t in created}
        if sorted(statuses.values(), key=str) == [10, 20]:
            break
        time.sleep(0.05)
    first = next(t for t in created if statuses[t["id"]] == 20)
    second = next(t for t in created if statuses[t["id"]] == 10)
    assert api.get(task_url(project, second), token=alice["token"]).json["processing_node"] == node_a["id"]
    with FakeNodeODM(processing_seconds=0.2) as other:
        node_b = register_node(api, admin, other)
        fake_node.go_offline()
        _age_node(node_a["id"])  # five minutes without an answer
        failed = poll_until(api, alice, project, first, finished)
        assert failed["status"] == 30 and failed["last_error"].startswith("Processing node went offline.")
        moved = poll_until(api, alice, project, second, finished)
        assert moved["status"] == 40 and moved["processing_node"] == node_b["id"]
        assert other.task_creations == 1


def test_manual_node_is_never_reassigned(api, admin, alice, fake_node, setup):
    node_a, project = setup
    task = new_task(api, alice, project, auto_processing_node="false", processing_node=str(node_a["id"]))
    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and done["processing_node"] == node_a["id"]
    idle = new_task(api, alice, project, auto_processing_node="false")
    for _ in range(2):
        api.poll()
    assert api.get(task_url(project, idle), token=alice["token"]).json["processing_node"] is None


def test_node_with_a_token(api, admin, alice):
    with FakeNodeODM(token="s3cret", processing_seconds=0.2) as locked:
        node = register_node(api, admin, locked, token="s3cret")
        assert node["online"] is True and "token" not in node
        project = new_project(api, alice)
        task = new_task(api, alice, project)
        assert poll_until(api, alice, project, task, finished)["status"] == 40


def test_no_online_node_waits(api, admin, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    for _ in range(2):
        api.poll()
    current = api.get(task_url(project, task), token=alice["token"]).json
    assert current["status"] is None and current["processing_node"] is None
    assert task_store.get(project["id"], task["id"])["active"] == "1"


def test_restart_without_a_node_fails_like_webodm(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project, auto_processing_node="false")
    api.post(task_url(project, task, "restart/"), token=alice["token"])
    api.poll()
    current = api.get(task_url(project, task), token=alice["token"]).json
    assert current["status"] == 30 and "has no processing node" in current["last_error"]


def test_node_deleted_leaves_tasks_without_node(api, admin, alice, fake_node, setup):
    node, project = setup
    task = new_task(api, alice, project, auto_processing_node="false", processing_node=str(node["id"]))
    assert api.delete(f"/api/processingnodes/{node['id']}/", token=admin["token"]).status == 204
    assert api.get(task_url(project, task), token=alice["token"]).json["processing_node"] is None


def test_four_workers_racing_submit_each_task_once(api, alice, fake_node, setup):
    """Four workers and the schedule at once over 20 tasks, every first message delivered three times:
    exactly 20 node tasks, each committed once, each console stored once."""
    from chalicelib import queue

    _, project = setup
    fake_node.parallel_tasks = 20
    fake_node.latency = 0.01
    created = [new_task(api, alice, project) for _ in range(20)]
    for task in created:  # each first message delivered three times (SQS delivers at least once)
        queue.send(task_store.get(project["id"], task["id"]))
        queue.send(task_store.get(project["id"], task["id"]))
    deadline = time.time() + 60

    def race():
        while time.time() < deadline:
            api.poll()
            if all(task_store.get(project["id"], t["id"])["status"] == 40 for t in created):
                return

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(task_store.get(project["id"], t["id"])["status"] == 40 for t in created)
    assert fake_node.task_creations == 20 and fake_node.calls["commit"] == 20
    for t in created:
        lines = api.get(task_url(project, t, "output/"), token=alice["token"], params={"f": "json"}).json
        assert lines["lines"] == fake_node.tasks[task_store.get(project["id"], t["id"])["uuid"]].output()


def test_invalid_zip_fails_the_task(api, alice, fake_node, setup):
    _, project = setup
    fake_node.all_zip = b"this is not a zip"
    task = new_task(api, alice, project)
    failed = poll_until(api, alice, project, task, finished)
    assert failed["status"] == 30 and failed["last_error"] == "Invalid zip file"


def test_an_idle_tick_touches_nothing(api, alice, fake_node, setup):
    _, project = setup
    task = new_task(api, alice, project)
    poll_until(api, alice, project, task, finished)
    stats = api.poll()
    assert stats["active"] == 0 and stats.get("sent_again", 0) == 0 and stats["messages"] == 0


def test_cancel_during_a_slow_upload_stops_it(api, alice, fake_node, setup):
    """A cancel that arrives mid-upload stops the upload; nothing runs on the node."""
    _, project = setup
    fake_node.latency = 1.0  # 24 images, 4 at a time: 6 s of upload, time for a cancel even on a loaded machine
    task = new_task(api, alice, project, count=24)
    worker = threading.Thread(target=api.work, kwargs={"limit": 1})
    worker.start()
    deadline = time.time() + 20
    while fake_node.calls["upload"] < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert fake_node.calls["init"] == 1 and fake_node.calls["upload"] >= 1  # mid-upload now
    assert api.post(task_url(project, task, "cancel/"), token=alice["token"]).status == 200
    worker.join()
    fake_node.latency = 0.0
    api.poll()
    current = api.get(task_url(project, task), token=alice["token"]).json
    assert current["status"] == 50 and current["pending_action"] is None
    assert fake_node.calls["commit"] == 0 and fake_node.calls["upload"] < 24


def test_a_burst_of_tasks_spreads_over_the_nodes(api, admin, alice, setup):
    """30 new tasks, three idle nodes, four workers at once: each node gets its share, counted
    with a conditional write per claim (no worker's memory is shared with another's)."""
    _, project = setup
    extra = [FakeNodeODM(processing_seconds=3600, parallel_tasks=100).start() for _ in range(2)]
    try:
        for node in extra:
            register_node(api, admin, node)
        created = [new_task(api, alice, project) for _ in range(30)]
        threads = [threading.Thread(target=api.work, kwargs={"limit": 40}) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        per_node: dict[int, int] = {}
        for task in created:
            node_id = task_store.get(project["id"], task["id"])["processing_node"]
            per_node[node_id] = per_node.get(node_id, 0) + 1
        assert sum(per_node.values()) == 30 and len(per_node) == 3
        assert max(per_node.values()) - min(per_node.values()) <= 2, per_node
    finally:
        for node in extra:
            node.stop()
