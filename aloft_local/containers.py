"""Local Lambda functions: a pool of containers per function, one event at a time each.

On AWS every concurrent request gets its own execution environment; a container
handles one event, then the next. Here each container is a child process
(aloft_local/lambda_runtime.py) started on demand, up to `max_containers` per
function, so concurrent requests never share Chalice's `current_request`, module
state or a slow neighbour's time. A container still running at its timeout is
killed and replaced, as Lambda does.

A pool keeps one spare container started whenever it hands out its last idle one, so a
burst of events waits for a container's start (~1 s: Python, the app, boto3) less often
than on AWS, never more; the spare counts toward `max_containers` like any other.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .lambda_runtime import read_frame, write_frame

log = logging.getLogger("aloft.lambda")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAX_CONTAINERS = 10


@dataclass
class Invocation:
    """What an invoke gave: a JSON payload, a function error, or a timeout."""
    payload: bytes = b""
    error: dict | None = None
    timed_out: bool = False
    seconds: float = 0.0


class Container:
    """One child process running one function of the app."""
    _serial = itertools.count(1)

    def __init__(self, app_spec: str, function: str, env: dict[str, str]):
        self.function = function
        self.number = next(self._serial)
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        child_env = {**env, "AWS_LAMBDA_FUNCTION_NAME": f"aloft-local-{function}",
                     "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aloft_local.lambda_runtime", app_spec, str(child_read), str(child_write),
             function],  # the last one only names the container for `ps`
            cwd=ROOT, env=child_env, pass_fds=(child_read, child_write))
        os.close(child_read)
        os.close(child_write)
        self._requests = os.fdopen(parent_write, "wb")
        self._replies_fd = parent_read
        self._replies = os.fdopen(parent_read, "rb", buffering=0)

    def invoke(self, event: bytes, timeout: float, request_id: str, memory_mb: int) -> Invocation:
        started = time.monotonic()
        header = {"function": self.function, "timeout_ms": int(timeout * 1000), "request_id": request_id,
                  "memory_mb": memory_mb}
        try:
            write_frame(self._requests, json.dumps(header).encode())
            write_frame(self._requests, event)
            self._requests.flush()
        except OSError:
            return Invocation(error={"errorType": "Runtime.ExitError", "errorMessage": "container exited"})
        ready, _, _ = select.select([self._replies_fd], [], [], timeout)
        if not ready:
            self.kill()
            return Invocation(timed_out=True, seconds=time.monotonic() - started)
        try:
            reply = json.loads(read_frame(self._replies) or b"{}")
            payload = read_frame(self._replies) or b""
        except (EOFError, ValueError):
            self.kill()
            return Invocation(error={"errorType": "Runtime.ExitError", "errorMessage": "container exited"},
                              seconds=time.monotonic() - started)
        seconds = time.monotonic() - started
        if reply.get("status") != "ok":
            return Invocation(error=reply, seconds=seconds)
        return Invocation(payload=payload, seconds=seconds)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self._requests, self._replies):
            try:
                stream.close()
            except OSError:
                pass


class FunctionPool:
    """The containers of one Lambda function: reuse an idle one, start one more while
    under `max_containers`, else wait for one to free up (throttling, locally)."""

    def __init__(self, app_spec: str, function: str, timeout: float, env: dict[str, str] | None = None,
                 max_containers: int = DEFAULT_MAX_CONTAINERS, memory_mb: int = 1024):
        self.app_spec = app_spec
        self.function = function
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.env = dict(env if env is not None else os.environ)
        self.max_containers = max(1, max_containers)
        self._idle: list[Container] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        self.cold_starts = 0

    def _acquire(self) -> Container:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError(f"function {self.function} is shut down")
                while self._idle:
                    container = self._idle.pop()
                    if container.alive:
                        return container
                    self._count -= 1
                if self._count < self.max_containers:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            container = Container(self.app_spec, self.function, self.env)
        except Exception:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        self.cold_starts += 1
        return container

    def _release(self, container: Container) -> None:
        with self._cond:
            if container.alive and not self._closed:
                self._idle.append(container)
            else:
                self._count -= 1
                container.kill()
            self._cond.notify()

    def _keep_a_spare(self) -> None:
        """Start one container ahead when none is idle (its imports run while we work)."""
        with self._cond:
            if self._closed or self._idle or self._count >= self.max_containers:
                return
            self._count += 1
        try:
            spare = Container(self.app_spec, self.function, self.env)
        except Exception:  # noqa: BLE001 - the next request starts one itself
            log.exception("could not start a spare %s container", self.function)
            with self._cond:
                self._count -= 1
            return
        self.cold_starts += 1
        with self._cond:
            if self._closed:
                self._count -= 1
                spare.kill()
                return
            self._idle.insert(0, spare)  # the warm ones (end of the list) are reused first
            self._cond.notify()

    def invoke(self, event: bytes, request_id: str | None = None) -> Invocation:
        container = self._acquire()
        self._keep_a_spare()
        try:
            return container.invoke(event, self.timeout, request_id or str(uuid.uuid4()), self.memory_mb)
        finally:
            self._release(container)

    def warm(self) -> None:
        """Start one container ahead of the first request (in the background)."""
        def start():
            try:
                container = self._acquire()
            except Exception:  # noqa: BLE001 - a failed warm-up is retried by the first request
                log.exception("could not start a %s container", self.function)
                return
            self._release(container)

        threading.Thread(target=start, daemon=True, name=f"warm-{self.function}").start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for container in idle:
            container.kill()
