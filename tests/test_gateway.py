"""The local gateway is API Gateway + Lambda: their limits, their binary rule, their
timeout, and one event per container at a time. Through real HTTP, with the real app
(`live`) and with a small app that can be made slow, large or binary (gateway_app.py)."""
from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chalicelib import limits
from tests.conftest import make_user, token_for
from tests.gateway_app import PNG

GATEWAY_TOO_LARGE = b"HTTP content length exceeded 10485760 bytes."


@pytest.fixture(scope="module")
def small():
    """gateway_app behind the local gateway, its function timing out after 3 s."""
    from aloft_local.gateway import LocalGateway

    server = LocalGateway("tests.gateway_app:app", "127.0.0.1", 0, timeout=3, max_containers=4,
                          template={"Resources": {}})
    server.start_in_thread()
    yield f"http://127.0.0.1:{server.port}"
    server.close()


def test_body_over_api_gateways_quota_is_refused_unread(small):
    reply = requests.post(small + "/echo", data=b"x" * (limits.API_GATEWAY_MAX_BODY_BYTES + 1),
                          headers={"Content-Type": "text/plain"})
    assert reply.status_code == 413 and reply.content == GATEWAY_TOO_LARGE
    assert reply.headers["Content-Type"] == "text/plain"


@pytest.mark.parametrize("content_type, size, status", [
    ("text/plain", 6_280_000, 200),                 # the event, as JSON, just fits
    ("text/plain", 6_292_000, 413),                 # just does not
    ("application/octet-stream", 4_700_000, 200),   # base64 (4/3) of it fits
    ("application/octet-stream", 4_720_000, 413),   # 6,293,336 bytes of base64: it does not
])
def test_lambda_event_cap_counts_the_whole_event_with_binary_bodies_in_base64(small, content_type, size, status):
    reply = requests.post(small + "/echo", data=b"x" * size, headers={"Content-Type": content_type})
    assert reply.status_code == status, reply.text[:200]
    if status == 413:
        assert reply.json() == {"message": "Request Too Long"}
    else:
        assert reply.json()["bytes"] == size


def test_response_over_lambdas_cap_is_a_502(small):
    fits = requests.get(small + "/big", params={"size": 6_000_000})
    assert fits.status_code == 200 and len(fits.content) == 6_000_000
    too_big = requests.get(small + "/big", params={"size": limits.LAMBDA_MAX_RESPONSE_BYTES})
    assert too_big.status_code == 502 and too_big.json() == {"message": "Internal server error"}


def test_a_route_past_the_timeout_is_a_504_and_its_container_is_replaced(small):
    started = time.monotonic()
    reply = requests.get(small + "/slow", params={"seconds": 10})
    assert reply.status_code == 504 and reply.json() == {"message": "Endpoint request timed out"}
    assert 2.5 < time.monotonic() - started < 6
    after = requests.post(small + "/echo", json={})
    assert after.status_code == 200 and after.json()["remaining_ms"] <= 3000


@pytest.mark.parametrize("accept, binary", [
    ("image/png", True),                       # the first Accept type is a binary media type
    ("image/png, text/html", True),
    ("text/html, image/png", False),           # it is not the first: API Gateway sends base64 text
    ("*/*", False),                            # curl's and requests' default: base64 text too
])
def test_binary_responses_follow_api_gateways_accept_rule(small, accept, binary):
    reply = requests.get(small + "/binary", headers={"Accept": accept})
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/png"
    assert reply.content == (PNG if binary else base64.b64encode(PNG))


def test_a_slow_request_does_not_hold_up_others(small):
    with ThreadPoolExecutor(4) as pool:
        slow = pool.submit(requests.get, small + "/slow", params={"seconds": 2})
        time.sleep(0.3)
        started = time.monotonic()
        fast = [pool.submit(requests.post, small + "/echo", json={}) for _ in range(3)]
        assert all(f.result().status_code == 200 for f in fast)
        assert time.monotonic() - started < 1.5
        assert slow.result().status_code == 200


def test_each_container_serves_one_event_at_a_time(small):
    """Chalice keeps the request on the app object: two requests in one process at once
    would read each other's. Each answer must carry its own marker after a pause."""
    def send(i: int) -> dict:
        return requests.post(small + "/echo", params={"pause": 0.2}, json={},
                             headers={"X-Marker": f"m{i}"}).json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(16)))
    assert all(a["marker"] == a["sent"] for a in answers)
    assert len({a["pid"] for a in answers}) <= 4  # max_containers


def test_many_users_at_once_each_see_only_their_own_data(live):
    """Three users create projects concurrently through the real app (WebODM's UI uploads
    4 files at once, CLIs more): every answer and every list holds only the caller's own."""
    users = [make_user(f"user{i}") for i in range(3)]
    headers = [{"Authorization": f"JWT {token_for(u)}"} for u in users]

    def create(job: tuple[int, int]) -> tuple[int, dict]:
        who, n = job
        reply = requests.post(live + "/api/projects/", headers=headers[who], json={"name": f"u{who}-p{n}"})
        assert reply.status_code == 201, reply.text
        return who, reply.json()

    jobs = [(who, n) for n in range(25) for who in range(3)]
    with ThreadPoolExecutor(12) as pool:
        created = list(pool.map(create, jobs))
    for who, project in created:
        assert project["name"].startswith(f"u{who}-")
    for who in range(3):
        listed = requests.get(live + "/api/projects/", headers=headers[who]).json()
        assert sorted(p["name"] for p in listed) == sorted(f"u{who}-p{n}" for n in range(25))


def test_the_real_app_refuses_a_create_over_one_lambda_event(live, alice):
    auth = {"Authorization": f"JWT {alice['token']}"}
    project = requests.post(live + "/api/projects/", headers=auth, json={"name": "p"}).json()
    url = f"{live}/api/projects/{project['id']}/tasks/"
    two_big = [("images", (f"{i}.jpg", b"\xff" * 2_500_000, "image/jpeg")) for i in range(2)]
    reply = requests.post(url, headers=auth, files=two_big)
    assert reply.status_code == 413 and reply.json() == {"message": "Request Too Long"}
    two_small = [("images", (f"{i}.jpg", b"\xff" * 1_000_000, "image/jpeg")) for i in range(2)]
    reply = requests.post(url, headers=auth, files=two_small)
    assert reply.status_code == 201 and reply.json()["images_count"] == 2
    assert json.loads(requests.get(url, headers=auth).content)[0]["images_count"] == 2


def test_a_console_over_the_response_cap_reads_whole_through_the_gateway(live, alice):
    """The output route bounds its answers: a console of more than 8 MB (43 MB once escaped)
    never hits Lambda's 6 MB response cap (API Gateway would answer 502), and a WebODM client
    reading with `?line=` gets every line."""
    from tests.test_task_output import _huge_console, append

    auth = {"Authorization": f"JWT {alice['token']}"}
    project = requests.post(live + "/api/projects/", headers=auth, json={"name": "p"}).json()
    task = requests.post(f"{live}/api/projects/{project['id']}/tasks/", headers=auth,
                         files=[("images", (f"{i}.jpg", b"\xff" * 100)) for i in range(2)]).json()
    lines = _huge_console()
    append(project["id"], task["id"], lines)
    url = f"{live}/api/projects/{project['id']}/tasks/{task['id']}/output/"
    got: list[str] = []
    while len(got) < len(lines):
        reply = requests.get(url, headers=auth, params={"line": len(got)})
        assert reply.status_code == 200, reply.text[:200]
        got += reply.json().split("\n")
    assert got == lines
