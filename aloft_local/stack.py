"""The embedded local stack: moto (DynamoDB, S3, SQS), the API gateway, the worker's SQS
event source and the schedule, each function in Lambda-like containers.

Several stacks pointed at one endpoint (AWS_ENDPOINT_URL...) share every table, the
bucket and the work queue, and behave like several Lambda containers on one deployment.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading

from .gateway import LocalGateway
from .resources import create_resources

log = logging.getLogger("aloft.local")
RESOURCE_PREFIX = "aloft-local"
DEFAULT_MOTO_PORT = 4566
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStack:
    def __init__(self, port: int = 8000, host: str = "127.0.0.1", poll_seconds: float = 60.0, workers: int = 4):
        self.port = port
        self.host = host
        self.poll_seconds = poll_seconds
        self.workers = workers
        self.event_source = None
        self.endpoint: str | None = None
        self.storage = None  # persistence.PersistentStorage: moto and its data folder
        self.gateway: LocalGateway | None = None
        self.admin: tuple[str, str, bool] | None = None
        self._stop = threading.Event()
        self._poller_thread: threading.Thread | None = None

    # ------------------------------------------------------------ setup
    def _start_storage(self) -> None:
        """The external endpoint, or the embedded moto with its data folder (restored first).
        Raises persistence.DataDirError when the data folder must not be used."""
        if any(os.environ.get(v) for v in _ENDPOINT_VARS):
            self.endpoint = ", ".join(f"{v}={os.environ[v]}" for v in _ENDPOINT_VARS if os.environ.get(v))
            return
        from .persistence import PersistentStorage, default_data_dir, reset_requested

        port = int(os.environ.get("ALOFT_MOTO_PORT") or DEFAULT_MOTO_PORT)
        if not _port_free(port):
            port = _free_port()
        self.storage = PersistentStorage(default_data_dir(), reset=reset_requested())
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint = self.storage.start("127.0.0.1", port)

    def _configure_environment(self) -> None:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ["ALOFT_STAGE"] = "local"
        from chalicelib import aws, config

        aws.reset()
        env = create_resources(RESOURCE_PREFIX, aws.dynamodb(), aws.s3())
        os.environ.update(env)
        config.reset()

    def _seed_admin(self) -> None:
        from .admin import seed_superuser

        username = os.environ.get("ALOFT_ADMIN_USERNAME") or "admin"
        password = os.environ.get("ALOFT_ADMIN_PASSWORD") or "admin"
        self.admin = (username, password, seed_superuser(username, password))

    def start(self) -> "LocalStack":
        self._start_storage()
        self._configure_environment()
        self._seed_admin()
        self.gateway = LocalGateway("app:app", self.host, self.port)
        self.port = self.gateway.port
        self.gateway.start_in_thread()
        if self.workers > 0:
            self._start_worker()
        if self.poll_seconds > 0:
            self._poller_thread = threading.Thread(target=self._schedule_loop, name="aloft-schedule", daemon=True)
            self._poller_thread.start()
        return self

    # ------------------------------------------------------------ worker and schedule
    def _start_worker(self) -> None:
        """The `worker` function's SQS event source: ALOFT_WORKERS pollers of the work queue."""
        from chalicelib import aws, queue

        from .eventsource import EventSourceMapping, QueueSource

        batch_size = next((getattr(s, "batch_size", 1) for s in self.gateway.api.app.event_sources
                           if s.name == "worker"), 1)

        def invoke(event: dict) -> bool:
            outcome = self.gateway.invoke("worker", json.dumps(event).encode())
            return outcome.error is None and not outcome.timed_out

        self.gateway.pool("worker").warm()
        self.event_source = EventSourceMapping(
            QueueSource(aws.client("sqs"), queue.queue_url(), invoke, batch_size), threads=self.workers)
        self.event_source.start()

    def _schedule_loop(self) -> None:
        """The `poller` function every ALOFT_POLL_SECONDS, as EventBridge runs it every minute."""
        from .scheduler import scheduled_event

        while not self._stop.is_set():  # a first tick at start: nodes refreshed, overdue steps sent
            outcome = self.gateway.invoke("poller", json.dumps(scheduled_event()).encode())
            if outcome.error is not None or outcome.timed_out:
                log.warning("the scheduled function failed: %s", outcome.error or "timed out")
            self._stop.wait(self.poll_seconds)

    # ------------------------------------------------------------ teardown
    def stop(self) -> None:
        self._stop.set()
        if self.event_source:
            self.event_source.stop()
        if self.gateway:
            self.gateway.close()
        if self._poller_thread:
            self._poller_thread.join(timeout=30)
        if self.storage:
            self.storage.stop()  # the last writes, a fresh snapshot, the folder's lock released

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"
