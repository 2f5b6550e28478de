"""Webhooks (issue 13 §3): the routes, the SSRF guard, signed deliveries from the work queue,
retries on the schedule, and disabling a hook that keeps failing.

Receivers are real HTTP servers on 127.0.0.1 that verify each delivery with the Standard
Webhooks reference library (`standardwebhooks`); tasks run on the fake NodeODM.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from chalicelib import config
from tests.conftest import register_node
from tests.fake_nodeodm import FakeNodeODM
from tests.helpers import image_files, new_project
from tests.sample_data import fake_image

HOOKS = "/api/webhooks/"


class Receiver:
    """A webhook receiver on 127.0.0.1: verifies every delivery with `standardwebhooks` once it
    knows the secret, answers `status`, and keeps what it got (with the time)."""

    def __init__(self, status: int = 204):
        self.status = status
        self.secret: str | None = None
        self.got: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = None
                if receiver.secret:
                    try:
                        verified = Webhook(receiver.secret).verify(body, headers)
                    except Exception as exc:  # noqa: BLE001 - recorded, the test asserts on it
                        verified = exc
                receiver.got.append({"at": time.time(), "headers": headers, "body": body, "verified": verified,
                                     "path": self.path})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.server_address[1]}{path}"

    def events(self) -> list[str]:
        return [json.loads(g["body"])["type"] for g in self.got]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(status: int = 204) -> Receiver:
        made.append(Receiver(status))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def private_refused(settings_env):
    settings_env(ALOFT_WEBHOOK_ALLOW_PRIVATE="0")


def create(api, user, **body):
    return api.post(HOOKS, token=user["token"], json=body)


# ------------------------------------------------------------------ the routes

def test_create_shows_the_secret_once_and_only_the_owner_sees_the_hook(api, alice, bob, admin, receiver):
    project = new_project(api, alice)
    reply = create(api, alice, url=receiver().url(), events=["task.completed", "task.running"], project=project["id"])
    assert reply.status == 201, reply.json
    hook = reply.json
    assert hook["secret"].startswith("whsec_") and len(base64.b64decode(hook["secret"][6:])) >= 24
    assert hook["events"] == ["task.completed", "task.running"] and hook["project"] == project["id"]
    assert hook["active"] is True and hook["disabled_reason"] is None and hook["user"] == alice["id"]
    one = f"{HOOKS}{hook['id']}/"
    shown = api.get(one, token=alice["token"]).json
    assert "secret" not in shown and shown == {k: v for k, v in hook.items() if k != "secret"}
    assert [h["id"] for h in api.get(HOOKS, token=alice["token"]).json] == [hook["id"]]
    assert all("secret" not in h for h in api.get(HOOKS, token=alice["token"]).json)

    # another user: 404 everywhere, and their list is their own
    for method in ("get", "patch", "delete"):
        assert getattr(api, method)(one, token=bob["token"], json={"active": False}).status == 404
    assert api.get(f"{one}deliveries/", token=bob["token"]).status == 404
    assert api.get(HOOKS, token=bob["token"]).json == []
    assert api.get(HOOKS + f"?user={alice['id']}", token=bob["token"]).status == 403

    # a superuser lists and reads it, never its secret; cannot change it, may delete it
    listed = api.get(HOOKS + f"?user={alice['id']}", token=admin["token"]).json
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    read = api.get(one, token=admin["token"])
    assert read.status == 200 and "secret" not in read.json and hook["secret"] not in read.body.decode()
    assert api.patch(one, token=admin["token"], json={"active": False}).status == 404

    patched = api.patch(one, token=alice["token"], json={"events": ["task.failed"], "project": None})
    assert patched.status == 200 and patched.json["events"] == ["task.failed"] and patched.json["project"] is None
    assert api.get(one, token=alice["token"]).json["events"] == ["task.failed"]
    assert api.delete(one, token=admin["token"]).status == 204
    assert api.get(one, token=alice["token"]).status == 404
    assert api.delete(one, token=alice["token"]).status == 404


def test_validation_answers_drf_400s(api, alice, bob, receiver):
    url = receiver().url()
    bobs = new_project(api, bob)
    cases = [
        ({"events": ["task.completed"]}, "url"),
        ({"url": url}, "events"),
        ({"url": url, "events": []}, "events"),
        ({"url": url, "events": ["task.exploded"]}, "events"),
        ({"url": url, "events": "task.completed"}, None),  # a form-like string is accepted
        ({"url": url, "events": ["task.completed"], "project": bobs["id"]}, "project"),
        ({"url": url, "events": ["task.completed"], "project": 999999}, "project"),
        ({"url": url, "events": ["task.completed"], "project": "x"}, "project"),
        ({"url": "ftp://example.com/x", "events": ["task.completed"]}, "url"),
        ({"url": "not a url", "events": ["task.completed"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1/", "events": ["task.completed"]}, "url"),
    ]
    for body, field in cases:
        reply = create(api, alice, **body)
        if field is None:
            assert reply.status == 201, reply.json
            continue
        assert reply.status == 400, (body, reply.json)
        assert list(reply.json) == [field] and isinstance(reply.json[field], list), reply.json
    hook = create(api, alice, url=url, events=["task.completed"]).json
    bad = api.patch(f"{HOOKS}{hook['id']}/", token=alice["token"], json={"events": ["nope"]})
    assert bad.status == 400 and "events" in bad.json
    assert api.get(f"{HOOKS}0123456789abcdef/", token=alice["token"]).status == 404
    assert api.get(f"{HOOKS}nothex/", token=alice["token"]).status == 404


def test_ssrf_refusals_at_create(api, alice, receiver, private_refused):
    local = receiver()
    for url in (local.url(), "https://127.0.0.1/hook", "https://169.254.169.254/latest/meta-data/",
                "https://10.0.0.7/hook", local.url(host="localhost").replace("http:", "https:"),
                "https://[::1]/hook", "https://[::ffff:127.0.0.1]/x", "http://example.com/hook"):
        reply = create(api, alice, url=url, events=["task.completed"])
        assert reply.status == 400 and list(reply.json) == ["url"], (url, reply.json)
    assert "not a public address" in create(api, alice, url="https://10.0.0.7/", events=["task.failed"]).json["url"][0]
    assert "https" in create(api, alice, url="http://example.com/", events=["task.failed"]).json["url"][0]
    assert local.got == []


def test_a_stage_other_than_local_refuses_private_targets_by_default(monkeypatch, settings_env):
    monkeypatch.delenv("ALOFT_WEBHOOK_ALLOW_PRIVATE", raising=False)
    settings_env(ALOFT_STAGE="prod", ALOFT_JWT_SECRET="x" * 32)
    assert config.settings().webhook_allow_private is False
    assert config.settings().webhook_retry_seconds == (5, 300, 1800, 7200, 18000, 36000)
    assert config.settings().webhook_disable_seconds == 86400
    settings_env(ALOFT_WEBHOOK_RETRY_SECONDS="1,x")
    with pytest.raises(config.ConfigError):
        config.settings()
    settings_env.undo()
    assert config.settings().webhook_allow_private is True  # the local stage (tests)


# ------------------------------------------------------------------ deliveries in process

def _run_task(api, user, project, fake_node):
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=user["token"], files=image_files(2)).json
    deadline = time.time() + 30
    while time.time() < deadline:
        api.poll()
        current = api.get(f"/api/projects/{project['id']}/tasks/{task['id']}/", token=user["token"]).json
        if current["status"] in (30, 40, 50):
            return current
        time.sleep(0.1)
    raise AssertionError("task did not finish")


def test_deliveries_are_signed_and_carry_the_task_as_get_shows_it(api, admin, alice, bob, fake_node, receiver):
    register_node(api, admin, fake_node)
    project = new_project(api, alice)
    good = receiver()
    hook = create(api, alice, url=good.url(), events=["task.completed", "task.removed"]).json
    good.secret = hook["secret"]
    other = receiver()  # bob's hook on his own projects hears nothing of alice's
    other.secret = create(api, bob, url=other.url(), events=["task.completed"]).json["secret"]
    done = _run_task(api, alice, project, fake_node)
    assert done["status"] == 40
    api.work()
    assert good.events() == ["task.completed"] and other.got == []
    delivery = good.got[0]
    assert delivery["verified"] == json.loads(delivery["body"]), delivery["verified"]
    assert delivery["verified"]["data"] == api.get(
        f"/api/projects/{project['id']}/tasks/{done['id']}/", token=alice["token"]).json
    assert delivery["headers"]["webhook-id"].startswith("msg_")
    assert delivery["headers"]["webhook-signature"].startswith("v1,")
    # a tampered body fails the same verification
    with pytest.raises(Exception):
        Webhook(hook["secret"]).verify(delivery["body"].replace(b"40", b"41"), delivery["headers"])

    assert api.delete(f"/api/projects/{project['id']}/tasks/{done['id']}/", token=alice["token"]).status == 204
    api.poll()
    assert good.events() == ["task.completed", "task.removed"]
    assert json.loads(good.got[1]["body"])["data"]["id"] == done["id"]
    attempts = api.get(f"{HOOKS}{hook['id']}/deliveries/", token=alice["token"]).json
    assert [(a["event"], a["attempt"], a["status_code"], a["delivered"]) for a in attempts] == [
        ("task.removed", 1, 204, True), ("task.completed", 1, 204, True)]
    assert attempts[1]["webhook_id"] == delivery["headers"]["webhook-id"] and attempts[1]["duration_ms"] >= 0
    api.work()  # nothing sent twice
    assert len(good.got) == 2


def test_a_redelivered_job_message_sends_the_attempt_once(api, admin, alice, fake_node, receiver):
    from chalicelib import queue

    register_node(api, admin, fake_node)
    project = new_project(api, alice)
    good = receiver()
    hook = create(api, alice, url=good.url(), events=["task.completed"]).json
    _run_task(api, alice, project, fake_node)
    api.work()
    assert len(good.got) == 1
    message = good.got[0]["headers"]["webhook-id"]
    for _ in range(3):  # SQS delivers at least once
        queue.send_job("webhook", f"{hook['id']}/{message}/1")
    api.work()
    assert len(good.got) == 1


def test_delivery_rechecks_the_address(api, admin, alice, fake_node, receiver, settings_env):
    """Hooks made while private targets were allowed are refused at delivery once they are not:
    nothing reaches the loopback receiver, and each attempt says why."""
    register_node(api, admin, fake_node)
    project = new_project(api, alice)
    local = receiver()
    port = local.server.server_address[1]
    urls = {local.url(): "https", f"https://127.0.0.1:{port}/hook": "127.0.0.1 is not a public address",
            "https://169.254.169.254/latest/meta-data/": "169.254.169.254 is not a public address",
            "https://10.0.0.7/hook": "10.0.0.7 is not a public address",
            f"https://localhost:{port}/hook": "is not a public address"}
    hooks = {url: create(api, alice, url=url, events=["task.completed"]).json for url in urls}
    assert all("id" in h for h in hooks.values()), hooks  # allowed: the local stage
    settings_env(ALOFT_WEBHOOK_ALLOW_PRIVATE="0")
    _run_task(api, alice, project, fake_node)
    api.work()
    assert local.got == []
    for url, why in urls.items():
        (attempt,) = api.get(f"{HOOKS}{hooks[url]['id']}/deliveries/", token=alice["token"]).json
        assert attempt["status_code"] is None and not attempt["delivered"], attempt
        assert why in attempt["error"], (url, attempt["error"])


def test_a_cancel_before_any_node_is_delivered(api, alice, receiver):
    project = new_project(api, alice)  # no node: the cancel completes in the route
    good = receiver()
    good.secret = create(api, alice, url=good.url(), events=["task.canceled"], project=project["id"]).json["secret"]
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json
    assert api.post(f"/api/projects/{project['id']}/tasks/{task['id']}/cancel/", token=alice["token"]).status == 200
    api.work()
    assert good.events() == ["task.canceled"] and isinstance(good.got[0]["verified"], dict)


def test_deleting_a_project_sends_task_removed_for_each_task_to_each_hook(api, admin, alice, bob, receiver):
    """The project's hooks are looked up once for all its tasks; each task still reaches the
    owner's hook and a sharee's project hook, and not a hook that wants other events."""
    project = new_project(api, alice)  # no node: the tasks are removed by the route itself
    api.post(f"/api/projects/{project['id']}/edit/", token=alice["token"],
             json={"permissions": [{"username": "bob", "permissions": ["view"]}]})
    owners, sharees, other = receiver(), receiver(), receiver()
    owners.secret = create(api, alice, url=owners.url(), events=["task.removed"]).json["secret"]
    sharees.secret = create(api, bob, url=sharees.url(), events=["task.removed"], project=project["id"]).json["secret"]
    other.secret = create(api, alice, url=other.url(), events=["task.completed"]).json["secret"]
    ids = {api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json["id"]
           for _ in range(3)}
    assert api.delete(f"/api/projects/{project['id']}/", token=alice["token"]).status == 204
    api.work()
    for hook in (owners, sharees):
        assert hook.events() == ["task.removed"] * 3
        assert {got["verified"]["data"]["id"] for got in hook.got} == ids
    assert other.got == []


# ------------------------------------------------------------------ the live stack

def _wait(predicate, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds} s")


def test_live_stack_delivers_within_seconds_retries_on_schedule_and_disables(stack_process, receiver):
    retries = (1.0, 2.0, 3.0)
    with FakeNodeODM(processing_seconds=1.0) as node:
        stack = stack_process(ALOFT_POLL_SECONDS="60", ALOFT_WEBHOOK_RETRY_SECONDS=",".join(map(str, retries)),
                              ALOFT_WEBHOOK_DISABLE_SECONDS="4")
        token = requests.post(f"{stack.url}/api/token-auth/", data={"username": "admin", "password": "admin"}).json()["token"]
        auth = {"Authorization": f"JWT {token}"}
        assert requests.post(f"{stack.url}/api/processingnodes/", headers=auth,
                             json={"hostname": node.hostname, "port": node.port}).status_code == 201
        project = requests.post(f"{stack.url}/api/projects/", headers=auth, json={"name": "hooks"}).json()
        good, failing = receiver(), receiver(status=500)
        hook = requests.post(f"{stack.url}{HOOKS}", headers=auth, json={
            "url": good.url(), "events": ["task.running", "task.completed"], "project": project["id"]}).json()
        good.secret = hook["secret"]
        bad = requests.post(f"{stack.url}{HOOKS}", headers=auth,
                            json={"url": failing.url(), "events": ["task.completed"]}).json()
        failing.secret = bad["secret"]

        tasks = f"{stack.url}/api/projects/{project['id']}/tasks/"
        files = [("images", (f"IMG_{i}.JPG", fake_image(i, 20_000), "image/jpeg")) for i in range(2)]
        task = requests.post(tasks, headers=auth, files=files).json()

        def status_seen(code):
            def check():
                current = requests.get(f"{tasks}{task['id']}/", headers=auth).json()
                return time.time() if current["status"] == code else None
            return check

        running_at = _wait(status_seen(20), 30, "RUNNING")
        _wait(lambda: "task.running" in good.events(), 10, "task.running delivered")
        completed_at = _wait(status_seen(40), 30, "COMPLETED")
        _wait(lambda: "task.completed" in good.events(), 10, "task.completed delivered")
        by_type = {json.loads(g["body"])["type"]: g for g in good.got}
        print(f"task.running {by_type['task.running']['at'] - running_at:+.2f} s, task.completed "
              f"{by_type['task.completed']['at'] - completed_at:+.2f} s after GET showed the status")
        assert by_type["task.running"]["at"] - running_at < 5
        assert by_type["task.completed"]["at"] - completed_at < 5
        for got in good.got:
            assert isinstance(got["verified"], dict) and got["verified"]["data"]["id"] == task["id"], got["verified"]
        assert by_type["task.completed"]["verified"]["data"]["status"] == 40
        assert by_type["task.running"]["verified"]["data"]["status"] == 20

        # the failing receiver: the first attempt and one retry per delay of the schedule
        _wait(lambda: len(failing.got) >= 1 + len(retries), 30, "every retry")
        time.sleep(max(retries) + 1)
        assert len(failing.got) == 1 + len(retries)
        assert all(isinstance(g["verified"], dict) for g in failing.got)  # each attempt signed anew
        assert len({g["headers"]["webhook-id"] for g in failing.got}) == 1  # the same event
        assert len({g["headers"]["webhook-timestamp"] for g in failing.got}) > 1
        gaps = [b["at"] - a["at"] for a, b in zip(failing.got, failing.got[1:])]
        print("retry gaps", [round(g, 2) for g in gaps], "for delays", retries)
        for gap, delay in zip(gaps, retries):
            assert delay - 0.5 <= gap <= delay + 3.5, gaps  # SQS delays are whole seconds
        attempts = requests.get(f"{stack.url}{HOOKS}{bad['id']}/deliveries/", headers=auth).json()
        assert [a["attempt"] for a in attempts] == [4, 3, 2, 1]
        assert all(a["status_code"] == 500 and a["error"] == "HTTP 500" and not a["delivered"] for a in attempts)
        # failing for longer than the (shortened) window: disabled, and says so
        shown = requests.get(f"{stack.url}{HOOKS}{bad['id']}/", headers=auth).json()
        assert shown["active"] is False and "failed" in shown["disabled_reason"], shown
        assert requests.get(f"{stack.url}{HOOKS}{hook['id']}/", headers=auth).json()["active"] is True


def test_a_deleted_users_hooks_go_with_them(api, admin, bob, receiver):
    create(api, bob, url=receiver().url(), events=["task.completed"])
    assert len(api.get(HOOKS + f"?user={bob['id']}", token=admin["token"]).json) == 1
    assert api.delete(f"/api/admin/users/{bob['id']}/", token=admin["token"]).status == 204
    api.schedule()
    assert api.get(HOOKS + f"?user={bob['id']}", token=admin["token"]).json == []


def test_a_retry_later_than_sqs_can_delay_waits_for_the_schedule(api, admin, alice, fake_node, receiver, settings_env):
    """Past SQS's 900 s: no job message, only `due_at` in the sparse index, which the minute
    schedule queries; the same query resends an attempt whose job message was lost."""
    from chalicelib.store import webhooks as hook_store

    settings_env(ALOFT_WEBHOOK_RETRY_SECONDS="3600,1")
    register_node(api, admin, fake_node)
    project = new_project(api, alice)
    target = receiver(status=503)
    hook = create(api, alice, url=target.url(), events=["task.completed"]).json
    _run_task(api, alice, project, fake_node)
    api.work()
    assert len(target.got) == 1
    (message,) = hook_store.due_before(time.time() + 7200)
    assert message["by_schedule"] is True and message["attempts"] == 1
    assert message["due_at"] > time.time() + 3500
    assert api.work() == 0 and api.schedule().get("webhooks_sent") is None  # nothing before it is due
    # an hour later (the item's due time moved, as the clock would)
    key = {"hook_id": message["hook_id"], "sk": message["sk"]}
    hook_store._deliveries.update(key, set={"due_at": time.time() - 1})
    assert api.schedule()["webhooks_sent"] == 1
    target.status = 200
    api.work()
    assert len(target.got) == 2 and target.got[0]["headers"]["webhook-id"] == target.got[1]["headers"]["webhook-id"]
    assert list(hook_store.due_before(time.time() + 7200)) == []  # delivered: out of the index
    attempts = api.get(f"{HOOKS}{hook['id']}/deliveries/", token=alice["token"]).json
    assert [(a["attempt"], a["status_code"], a["delivered"]) for a in attempts] == [(2, 200, True), (1, 503, False)]


def test_a_lost_job_message_is_sent_again_by_the_schedule(api, alice, receiver):
    from chalicelib import aws, queue
    from chalicelib.store import webhooks as hook_store

    project = new_project(api, alice)
    target = receiver()
    create(api, alice, url=target.url(), events=["task.canceled"], project=project["id"])
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json
    api.post(f"/api/projects/{project['id']}/tasks/{task['id']}/cancel/", token=alice["token"])
    aws.client("sqs").purge_queue(QueueUrl=queue.queue_url())  # the job message is lost
    assert api.work() == 0 and target.got == []
    assert api.schedule().get("webhooks_sent") is None  # not overdue yet: its message may be on its way
    (message,) = hook_store.due_before(time.time())
    hook_store._deliveries.update({"hook_id": message["hook_id"], "sk": message["sk"]},
                                  set={"due_at": time.time() - 120})
    assert api.schedule()["webhooks_sent"] == 1
    api.work()
    assert len(target.got) == 1
