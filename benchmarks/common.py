"""Helpers for benchmark scripts: a moto-backed Aloft, an HTTP client, AWS call counters."""
from __future__ import annotations

import collections
import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_DEFAULT_REGION": "us-east-1", "ALOFT_STAGE": "local",
                   "ALOFT_PASSWORD_ITERATIONS": "1000"})
for _var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_var, None)


class CallCounter:
    """Counts AWS API calls per operation through botocore's before-call events."""

    def __init__(self):
        self.calls: collections.Counter = collections.Counter()

    def __call__(self, model=None, **_):
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def total(self, service: str) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith(service + ":"))

    def describe(self, service: str) -> str:
        ops = sorted((op.split(":", 1)[1], n) for op, n in self.calls.items() if op.startswith(service + ":"))
        return ", ".join(f"{op}×{n}" for op, n in ops) or "none"


@contextlib.contextmanager
def counting():
    """Count every DynamoDB and S3 call made inside the block."""
    from chalicelib import aws

    counter = CallCounter()
    clients = [aws.dynamodb(), aws.s3()]
    for client in clients:
        client.meta.events.register("before-call.*.*", counter)
    try:
        yield counter
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", counter)


@contextlib.contextmanager
def _aloft_client():
    from chalice.test import Client

    from aloft_local.resources import create_resources
    from chalicelib import aws, config

    aws.reset()
    os.environ.update(create_resources("aloft-bench", aws.dynamodb(), aws.s3()))
    os.environ.setdefault("ALOFT_JWT_SECRET", "benchmark-secret-0123456789abcdef0123")
    config.reset()
    from app import app

    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        yield client


@contextlib.contextmanager
def moto_aloft():
    """Aloft's tables and bucket in in-process moto; yields a Chalice test client."""
    from moto import mock_aws

    from aloft_local.motoserver import serialize_in_process_moto

    serialize_in_process_moto()
    with mock_aws(), _aloft_client() as client:
        yield client


@contextlib.contextmanager
def moto_server_aloft():
    """Aloft on a moto server in a child process, so moto's own CPU time is not charged
    to Aloft's process (closer to a real, remote DynamoDB); yields a Chalice test client."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "aloft_local.motoserver", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        with _aloft_client() as client:
            yield client
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.terminate()
        server.wait()


def make_user(username: str, superuser: bool = False) -> tuple[dict, str]:
    from chalicelib.auth import hash_password, issue_token
    from chalicelib.models import utcnow
    from chalicelib.store import users

    user = users.create({"username": username, "email": "", "first_name": "", "last_name": "",
                         "is_superuser": superuser, "is_active": True, "date_joined": utcnow(),
                         "password": hash_password("pw")})
    return user, issue_token(user)
