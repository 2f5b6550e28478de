"""Shared fixtures: moto-backed AWS, the Chalice test client, users and tokens.

Environment is set before anything imports boto3 or the app, so every client is
created lazily under moto (a boto3 client made before moto is in place would reach real AWS).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "ALOFT_STAGE": "local",
    "ALOFT_JWT_SECRET": "test-secret-0123456789abcdef-0123456789",
    "ALOFT_PASSWORD_ITERATIONS": "1000",  # hashing stays real, just cheaper in tests
    "ALOFT_FOLLOW_SECONDS": "0",  # in-process tests run the follow-up steps at once (Api.poll)
})
for _var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402
import requests  # noqa: E402
from moto import mock_aws  # noqa: E402

from aloft_local.motoserver import serialize_in_process_moto  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's request log
sys.setswitchinterval(0.0005)  # threads of this process wait on each other's HTTP: hand over the GIL fast
serialize_in_process_moto()  # the poller's threads under mock_aws: one call at a time, as atomic as AWS
TEST_PREFIX = "aloft-test"


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server on 127.0.0.1 for this test process (reset by each test that uses it)."""
    import subprocess
    import time

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "aloft_local.motoserver", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def aws_env(request):
    """Fresh moto DynamoDB and S3 with Aloft's tables and bucket.

    In-process (mock_aws) by default; over a moto server when the test also runs the
    real gateway (`live`), whose Lambda containers are other processes.
    """
    from aloft_local.resources import create_resources
    from chalicelib import aws, config

    if "live" not in request.fixturenames:
        with mock_aws():  # cached boto3 clients keep working across mock_aws contexts
            env = create_resources(TEST_PREFIX, aws.dynamodb(), aws.s3(), seed_presets=False)
            os.environ.update(env)
            config.reset()
            yield env
            config.reset()
        return
    with moto_server_environment(request.getfixturevalue("moto_endpoint")) as env:
        yield env


@pytest.fixture
def settings_env(monkeypatch):
    """Environment variables for one test, read afresh: `settings_env(NAME="value", ...)` sets
    them and clears the settings cache; `settings_env.undo()` (and the test's end) restores."""
    from chalicelib import config

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        config.reset()

    def undo():
        monkeypatch.undo()
        config.reset()

    set_env.undo = undo
    yield set_env
    undo()


@contextlib.contextmanager
def moto_server_environment(endpoint: str):
    """Empty the moto server, point this process's clients at it, create the tables."""
    from aloft_local.resources import create_resources
    from chalicelib import aws, config

    requests.post(endpoint + "/moto-api/reset", timeout=30).raise_for_status()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    aws.reset()
    try:
        env = create_resources(TEST_PREFIX, aws.dynamodb(), aws.s3(), seed_presets=False)
        os.environ.update(env)
        config.reset()
        yield env
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        aws.reset()
        config.reset()


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def limits_response_bytes() -> int:
    from chalicelib import limits

    return limits.LAMBDA_MAX_RESPONSE_BYTES


class Api:
    """HTTP through chalice.test.Client with requests-style arguments (json=, data=, files=).

    The test client calls the app directly, so it also refuses what API Gateway and Lambda
    would (the same numbers as the local gateway): a test cannot pass here with a request or
    an answer a deployment would refuse. Tests of the gateway itself use `live`."""

    def __init__(self, client):
        self._client = client

    @staticmethod
    def _aws_refusal(method: str, path: str, headers: dict, body: bytes) -> Reply | None:
        import base64

        from aloft_local.apigateway import content_type_matches
        from app import app
        from chalicelib import limits

        if len(body) > limits.API_GATEWAY_MAX_BODY_BYTES:
            return Reply(413, {"Content-Type": "text/plain"},
                         f"HTTP content length exceeded {limits.API_GATEWAY_MAX_BODY_BYTES} bytes.".encode())
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        in_event = base64.b64encode(body) if content_type_matches(content_type, app.api.binary_types) else body
        event_bytes = len(in_event) + len(json.dumps(headers)) * 2 + len(path) * 3 + 1024  # the event's own JSON
        if event_bytes > limits.LAMBDA_MAX_EVENT_BYTES:
            return Reply(413, {"Content-Type": "application/json"}, b'{"message": "Request Too Long"}')
        return None

    def request(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                data: Any = None, files: Any = None, headers: dict | None = None,
                params: dict | None = None) -> Reply:
        prepared = requests.Request(method, "http://testserver" + path, json=json, data=data,
                                    files=files, params=params).prepare()
        sent_headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        if token:
            sent_headers["Authorization"] = f"JWT {token}"
        sent_headers.update(headers or {})
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        url = prepared.url.removeprefix("http://testserver")
        refused = self._aws_refusal(method, url, sent_headers, body)
        if refused is not None:
            return refused
        response = self._client.http.request(method, url, headers=sent_headers, body=body)
        if len(response.body or b"") > limits_response_bytes():
            return Reply(502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}')
        return Reply(response.status_code, dict(response.headers), response.body)

    def schedule(self) -> dict:
        """One run of the scheduled `poller` function, invoked as Lambda would (with the
        60 s budget of a real invocation: the test client's own context allows only 3 s)."""
        from chalice.local import LambdaContext

        from app import app

        event = self._client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=["arn:aws:events:us-east-1:000000000000:rule/poller"])
        return app.handler_map["poller"](event, LambdaContext("poller", 1769, max_runtime_ms=60_000))

    def work(self, limit: int = 25) -> int:
        """Deliver the work messages visible now to the `worker` function, as its SQS event
        source does (a failed invocation leaves its message for the visibility timeout)."""
        from chalice.local import LambdaContext

        from aloft_local.eventsource import QueueSource, drain
        from app import app
        from chalicelib import aws, queue

        def invoke(event: dict) -> bool:
            try:
                app.handler_map["worker"](event, LambdaContext("worker", 1769, max_runtime_ms=60_000))
            except Exception:  # noqa: BLE001 - what Lambda reports as a function error
                return False
            return True

        return drain(QueueSource(aws.client("sqs"), queue.queue_url(), invoke), limit)

    def poll(self) -> dict:
        """What a few seconds of a deployment do: the schedule once, then the due messages."""
        stats = self.schedule()
        return {**stats, "messages": self.work()}

    def get(self, path, **kw): return self.request("GET", path, **kw)
    def post(self, path, **kw): return self.request("POST", path, **kw)
    def put(self, path, **kw): return self.request("PUT", path, **kw)
    def patch(self, path, **kw): return self.request("PATCH", path, **kw)
    def delete(self, path, **kw): return self.request("DELETE", path, **kw)


@pytest.fixture
def api(aws_env):
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        yield Api(client)


def make_user(username: str, password: str = "secret-pass", superuser: bool = False, **extra) -> dict:
    from chalicelib.auth import hash_password
    from chalicelib.models import utcnow
    from chalicelib.store import users

    return users.create({"username": username, "email": f"{username}@example.com", "first_name": "",
                         "last_name": "", "is_superuser": superuser, "is_active": True,
                         "date_joined": utcnow(), "password": hash_password(password), **extra})


def token_for(user: dict) -> str:
    from chalicelib.auth import issue_token

    return issue_token(user)


@pytest.fixture
def admin(aws_env):
    user = make_user("admin", "admin-pass", superuser=True)
    return {**user, "token": token_for(user)}


@pytest.fixture
def alice(aws_env):
    user = make_user("alice", "alice-pass")
    return {**user, "token": token_for(user)}


@pytest.fixture
def bob(aws_env):
    user = make_user("bob", "bob-pass")
    return {**user, "token": token_for(user)}


@pytest.fixture
def live(aws_env, _live_gateway):
    """The local stack's real HTTP gateway on a free port: API Gateway's limits, the app's
    functions in Lambda-like containers (child processes), moto as a server (emptied for
    each test by `aws_env`)."""
    return _live_gateway


@pytest.fixture(scope="session")
def _live_gateway(moto_endpoint):
    """One gateway per test process for every `live` test, so its containers stay warm as a
    deployment's do: a gateway per test paid a container start (~1 s) on each test's first
    request. Containers keep nothing of a request but clients and the app (Lambda's rule), so
    a test sees only the data its emptied moto server holds. Their environment is fixed here:
    a test that needs other settings in the containers starts its own `running_gateway`."""
    from aloft_local.resources import resource_environment

    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, **resource_environment(TEST_PREFIX)}
    with running_gateway(env=env) as url:
        yield url


@contextlib.contextmanager
def running_gateway(app_spec: str = "app:app", **options):
    """The local gateway on a free port, its containers seeing this process's environment."""
    from aloft_local.gateway import LocalGateway

    server = LocalGateway(app_spec, "127.0.0.1", 0, **options)
    server.start_in_thread()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_environment(port: int, data_dir: Path, **env) -> dict:
    """The environment of `python -m aloft_local` in tests: none of the developer's ALOFT_ or AWS_
    settings, its own ports, and its own data folder (never the checkout's .aloft/)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALOFT_", "AWS_"))}
    clean.update({"PORT": str(port), "ALOFT_MOTO_PORT": str(free_port()), "ALOFT_POLL_SECONDS": "1",
                  "PYTHONUNBUFFERED": "1", "ALOFT_DATA_DIR": str(data_dir)})
    clean.update({k: str(v) for k, v in env.items()})
    return clean


class StackProcess:
    """`python -m aloft_local` (what `make run` starts) as a child process.

    Each stack keeps its data in a new temporary folder, unless given `data_dir` (to start a stack
    again on the data of a stopped one: `stack_process(data_dir=first.data_dir)`)."""

    def __init__(self, data_dir: Path | None = None, **env):
        import subprocess
        import sys
        import tempfile

        self.port = free_port()
        self.owns_data_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="aloft-data-")) if data_dir is None else Path(data_dir)
        self.process = subprocess.Popen([sys.executable, "-m", "aloft_local"], cwd=ROOT,
                                        env=stack_environment(self.port, self.data_dir, **env),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.banner: list[str] = []
        self.output: list[str] = []
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage_url = None
        for line in self.process.stdout:
            self.banner.append(line.rstrip())
            if "storage:" in line:
                self.storage_url = line.split("storage:", 1)[1].strip().split("=")[-1]
            if "Ctrl-C" in line:
                break
        else:
            self.process.wait()
            if self.owns_data_dir:
                import shutil

                shutil.rmtree(self.data_dir, ignore_errors=True)
            raise RuntimeError("local stack did not start:\n" + "\n".join(self.banner))
        import threading

        self._drained = threading.Thread(target=self._drain, daemon=True)
        self._drained.start()

    def _drain(self):
        for line in self.process.stdout:
            self.output.append(line.rstrip())

    def _end(self, sig, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except Exception:
            self.process.kill()
            code = self.process.wait()
        self._drained.join(timeout=5)
        return code

    def stop(self) -> int:
        """SIGTERM, as `docker stop` or systemd would; the exit code."""
        import signal

        return self._end(signal.SIGTERM)

    def interrupt(self) -> int:
        """SIGINT, as Ctrl-C does; the exit code."""
        import signal

        return self._end(signal.SIGINT)

    def kill(self) -> int:
        """SIGKILL (kill -9): no chance to write anything more."""
        import signal

        return self._end(signal.SIGKILL)


@pytest.fixture
def stack_process():
    import shutil

    started: list[StackProcess] = []

    def start(data_dir: Path | None = None, **env) -> StackProcess:
        stack = StackProcess(data_dir, **env)
        started.append(stack)
        return stack

    yield start
    for stack in reversed(started):
        stack.stop()
    for stack in started:
        if stack.owns_data_dir:
            shutil.rmtree(stack.data_dir, ignore_errors=True)


@pytest.fixture
def fake_node():
    """A fake NodeODM on 127.0.0.1 (tests/fake_nodeodm.py), quick by default."""
    from tests.fake_nodeodm import FakeNodeODM

    node = FakeNodeODM(processing_seconds=0.2, output_lines=30).start()
    yield node
    node.stop()


def register_node(api, admin, node, **extra) -> dict:
    reply = api.post("/api/processingnodes/", token=admin["token"],
                     json={"hostname": node.hostname, "port": node.port, **extra})
    assert reply.status == 201, reply.json
    return reply.json
