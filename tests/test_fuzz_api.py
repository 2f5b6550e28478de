"""Property-based API testing: schemathesis against the local stack's real HTTP gateway.

Every documented operation is fuzzed as alice, a normal user, with schemathesis's valid
and invalid requests (examples, coverage and fuzzing phases), and every answer must:
not be a 5xx, use a documented status code and content type, match the documented
schema, and show nothing of bob's. Before fuzzing, bob owns a project and a completed
task whose name, description and tags carry a unique marker; alice owns the same, and a
processing node exists. Path parameters are alice's ids (3 cases in 5, with real asset
names so downloads can 302), bob's (1 in 5) or schemathesis's own values, so the
interesting code is reached, not only 404s. The admin-only user routes are fuzzed a
second time as a superuser, so their validation is reached too.

Not fuzzed as a superuser: processing-node writes (POST, and PUT/PATCH of the address),
which contact the generated hostname over the network at once; as alice they are 403s,
and tests/test_hostile_input.py and tests/test_nodes_api.py cover them as admin.

Bounded for `make test` (`pytest -n 2`: about a minute of the two workers on its own): a
deterministic run of the examples phase and ALOFT_FUZZ_EXAMPLES (default 25) generated cases
per operation, valid and invalid. The coverage phase (every parameter's wrong types,
boundaries and missing values, one at a time: ~4,000 more requests, 2+ minutes) runs with
ALOFT_FUZZ_COVERAGE=negative (its invalid cases) or =all; what it found is pinned in
tests/test_fuzz_regressions.py. The long run, before a release:
`ALOFT_FUZZ_EXAMPLES=200 ALOFT_FUZZ_RANDOM=1 ALOFT_FUZZ_COVERAGE=all .venv/bin/python -m pytest -n 2 tests/test_fuzz_api.py`.
"""
from __future__ import annotations

import json
import os
import uuid
import zlib

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests.conftest import make_user

MAX_EXAMPLES = int(os.environ.get("ALOFT_FUZZ_EXAMPLES", "25"))
COVERAGE_MODE = os.environ.get("ALOFT_FUZZ_COVERAGE", "")  # "", "negative" or "all"
DETERMINISTIC = os.environ.get("ALOFT_FUZZ_RANDOM", "") != "1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _document() -> dict:
    from chalicelib.openapi import document_json

    return json.loads(document_json())


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict({
    "generation": {"mode": "all", "deterministic": DETERMINISTIC, "max-examples": MAX_EXAMPLES},
    "phases": {"examples": {"enabled": True},
               "coverage": {"enabled": bool(COVERAGE_MODE), "generation": {"mode": COVERAGE_MODE or "negative"}},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
}))
admin_schema = schema.include(path_regex=r"^/api/admin/users/")

_ZIP: list[bytes] = []


def _all_zip() -> bytes:
    if not _ZIP:
        from tests.sample_data import build_all_zip

        _ZIP.append(build_all_zip(scale=0.05))
    return _ZIP[0]


def _digest(case) -> int:
    """A number drawn from the generated values themselves, so that a case replays the same
    way while hypothesis shrinks it (`@schema.given` would turn the coverage phase off)."""
    return zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode("utf-8", "replace"))


class World:
    """What exists before fuzzing, restored after any example that may have removed it."""

    def __init__(self, base_url: str, alice: dict, bob: dict):
        from chalicelib.models import utcnow
        from chalicelib.store import nodes

        self.base_url = base_url
        self.session = requests.Session()
        self.alice, self.bob = alice, bob
        self.marker = f"BOBSECRET{uuid.uuid4().hex[:12]}"
        self.node = nodes.create({"hostname": "127.0.0.1", "port": 9, "token": "", "label": "fuzz",
                                  "created_at": utcnow()})
        self.bob_project = self._post(bob, "/api/projects/", {
            "name": f"{self.marker} project", "description": f"{self.marker} description",
            "tags": [self.marker]})["id"]
        bob_task = self._task(bob, self.bob_project, f"{self.marker} task")
        self.bob_task = bob_task["id"]
        self.forbidden = [self.marker, self.bob_task]
        self.alice_project = self.alice_task = None
        self.assets: list[str] = []
        self.restore()

    def _post(self, user: dict, path: str, body: dict) -> dict:
        reply = self.session.post(self.base_url + path, json=body,
                                  headers={"Authorization": f"JWT {user['token']}"})
        assert reply.status_code == 201, reply.text
        return reply.json()

    def _task(self, user: dict, project_id: int, name: str) -> dict:
        from tests.helpers import complete_in_s3

        files = [("images", (f"img{i}.jpg", b"\xff\xd8\xff" + bytes(200))) for i in range(2)]
        reply = self.session.post(f"{self.base_url}/api/projects/{project_id}/tasks/", files=files,
                                  data={"name": name}, headers={"Authorization": f"JWT {user['token']}"})
        assert reply.status_code == 201, reply.text
        return complete_in_s3(project_id, reply.json()["id"], _all_zip())

    def restore(self) -> None:
        """alice's project and completed task, again if a fuzzed DELETE, remove or move took them."""
        from chalicelib.store import projects, tasks

        self.dirty = False
        project = projects.get(self.alice_project) if self.alice_project else None
        if project is None or project.get("owner") != self.alice["id"]:
            self.alice_project = self._post(self.alice, "/api/projects/", {"name": "alice fuzz"})["id"]
            self.alice_task = None
        task = tasks.get(self.alice_project, self.alice_task) if self.alice_task else None
        if task is None or tasks.is_hidden(task):
            task = self._task(self.alice, self.alice_project, "alice task")
            self.alice_task = task["id"]
        self.assets = task["available_assets"]

    def path_values(self, case) -> dict:
        digest = _digest(case)
        who = ("alice", "alice", "alice", "bob", "generated")[digest % 5]
        if who == "generated":
            return {}
        project, task = (self.alice_project, self.alice_task) if who == "alice" else \
            (self.bob_project, self.bob_task)
        return {"project_id": project, "task_id": task, "node_id": self.node["id"],
                "user_id": (self.alice if who == "alice" else self.bob)["id"],
                "asset": self.assets[digest // 5 % len(self.assets)],
                "asset_path": "odm_orthophoto/odm_orthophoto.tif"}


@pytest.fixture(scope="module")
def stack(moto_endpoint):
    """One gateway, one set of users and one world for every fuzzed operation of this
    module (a world per operation cost seconds each: its completed tasks)."""
    from types import SimpleNamespace

    from tests.conftest import moto_server_environment, running_gateway, token_for

    with moto_server_environment(moto_endpoint), running_gateway() as url:
        users = {name: make_user(name, superuser=name == "admin") for name in ("alice", "bob", "admin")}
        yield SimpleNamespace(url=url, **{name: {**user, "token": token_for(user)} for name, user in users.items()})


@pytest.fixture(scope="module")
def world(stack):
    return World(stack.url, stack.alice, stack.bob)


def _no_leak(world: World):
    """A check: nothing of bob's in any answer to alice (text, ids, redirects)."""
    def nothing_of_bobs(ctx, response, case):
        text = response.content.decode("utf-8", "replace")
        for secret in world.forbidden:
            assert secret not in text, f"bob's {secret!r} is visible to alice"
        for location in response.headers.get("location") or []:
            assert f"tasks/{world.bob_task}" not in location, "a redirect to bob's files"
        try:
            stack = [json.loads(text)]
        except ValueError:
            return None
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                assert not ("owned" in item and item.get("id") == world.bob_project), "bob's project shown"
                assert not ("images_count" in item and item.get("project") == world.bob_project), \
                    "a task of bob's project shown"
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return None

    return nothing_of_bobs


def _use_path_values(case, values: dict) -> None:
    for name in case.path_parameters or {}:
        if name in values:
            case.path_parameters[name] = values[name]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=MAX_EXAMPLES)
def test_api_conforms_and_isolates_users(case, world):
    if world.dirty:
        world.restore()
    _use_path_values(case, world.path_values(case))
    world.dirty = case.method.upper() != "GET"
    case.call_and_validate(base_url=world.base_url, session=world.session,
                           headers={"Authorization": f"JWT {world.alice['token']}"},
                           checks=CHECKS, additional_checks=[_no_leak(world)],
                           allow_redirects=False, timeout=30)


class AdminWorld:
    """A superuser and a user to edit; both restored after any example that changed them."""

    def __init__(self, base_url: str, admin: dict):
        self.base_url = base_url
        self.session = requests.Session()
        self.admin = admin
        self.record = {k: v for k, v in admin.items() if k != "token"}
        self.victim = make_user("carol")

    def restore(self) -> None:
        from chalicelib.store import users

        current = users.get_by_id(self.admin["id"])
        if current != self.record:
            squatter = users.get(self.record["username"])
            if squatter is not None and squatter["id"] != self.admin["id"]:
                users.delete(squatter)
            users.update(current, self.record)
        if users.get_by_id(self.victim["id"]) is None:
            self.victim = make_user(f"carol{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def admin_world(stack):
    return AdminWorld(stack.url, stack.admin)


@admin_schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=MAX_EXAMPLES)
def test_admin_user_routes_conform(case, admin_world):
    """The same checks as a superuser: creating, editing and deleting users with fuzzed bodies."""
    admin_world.restore()
    user_id = (admin_world.victim["id"], admin_world.victim["id"], admin_world.victim["id"],
               admin_world.admin["id"], None)[_digest(case) % 5]
    if user_id is not None:
        _use_path_values(case, {"user_id": user_id})
    case.call_and_validate(base_url=admin_world.base_url, session=admin_world.session,
                           headers={"Authorization": f"JWT {admin_world.admin['token']}"},
                           checks=CHECKS, timeout=30)
