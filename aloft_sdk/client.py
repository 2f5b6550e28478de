"""A small client for Aloft's API, which is WebODM's: projects, tasks, nodes, downloads.

    from aloft_sdk import Client
    client = Client("http://localhost:8000").login("admin", "admin")   # or Client(url, token=key)
    project = client.find_or_create_project("Demo")
    task = client.process(project["id"], ["DJI_0001.JPG", ...], wait=True)
    client.download(project["id"], task["id"], "orthophoto.tif", "out/")

Requests go through one `requests.Session` with `Authorization: JWT <token>` (an API key is sent
the same way). Connection failures are retried with backoff for every method, and 429/502/503/504
answers for the idempotent ones (urllib3's Retry). Errors become aloft_sdk.errors exceptions.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .config import normalize_url
from .errors import ApiError, AuthError, NotFound, TaskFailed, Unreachable, UsageError, describe

QUEUED, RUNNING, FAILED, COMPLETED, CANCELED = 10, 20, 30, 40, 50
STATUS_NAMES = {None: "WAITING", QUEUED: "QUEUED", RUNNING: "RUNNING", FAILED: "FAILED",
                COMPLETED: "COMPLETED", CANCELED: "CANCELED"}
FINAL = (FAILED, COMPLETED, CANCELED)
# ODM announces each stage on the console ("Running opensfm stage"); WebODM has no stage field.
_STAGE = re.compile(r"Running (\w+) stage")
USER_AGENT = "aloft-sdk/0.1"


def retrying_session(retries: int = 3, backoff: float = 0.5) -> requests.Session:
    """A session whose connections retry with exponential backoff (0, 2×backoff, 4×backoff, ...)."""
    session = requests.Session()
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                  status_forcelist=(429, 502, 503, 504), allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
                  raise_on_status=False, respect_retry_after_header=True)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def status_name(status: int | None) -> str:
    return STATUS_NAMES.get(status, str(status))


class Client:
    """One server, one identity. `token` is a JWT from `token-auth/` or an API key."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60,
                 retries: int | None = None):
        self.url = normalize_url(url)
        self.timeout = timeout
        if retries is None:
            retries = int(os.environ.get("ALOFT_RETRIES", "3"))
        self.retries = retries
        self.session = retrying_session(retries)
        self.token = None
        if token:
            self.authenticate(token)

    # ------------------------------------------------------------------ plumbing

    def authenticate(self, token: str) -> "Client":
        self.token = token
        self.session.headers["Authorization"] = f"JWT {token}"
        return self

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201, 204),
                **kwargs) -> requests.Response:
        """One API call; the answer when its status is expected, else the matching exception."""
        url = path if path.startswith(("http://", "https://")) else self.url + path
        kwargs.setdefault("timeout", self.timeout)
        try:
            reply = self.session.request(method, url, **kwargs)
        except requests.exceptions.RetryError as exc:
            raise Unreachable(f"{self.url} keeps failing: {exc}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if reply.status_code in expect:
            return reply
        body = _body(reply)
        if reply.status_code in (401, 403):
            raise AuthError(f"{describe(body)} (HTTP {reply.status_code}; run `aloft login` again?)"
                            if reply.status_code == 401 or self.token else describe(body))
        if reply.status_code == 404:
            raise NotFound(404, body)
        if reply.status_code >= 500:
            raise Unreachable(f"{self.url} answered HTTP {reply.status_code}: {describe(body)}")
        raise ApiError(reply.status_code, body)

    def get(self, path: str, **kwargs) -> Any:
        return _body(self.request("GET", path, **kwargs))

    def post(self, path: str, **kwargs) -> Any:
        return _body(self.request("POST", path, **kwargs))

    # ------------------------------------------------------------------ auth

    def login(self, username: str, password: str) -> "Client":
        """WebODM's `POST /api/token-auth/`; a refusal (HTTP 400) is an AuthError."""
        try:
            reply = self.request("POST", "/api/token-auth/", json={"username": username, "password": password})
        except ApiError as exc:
            if exc.status == 400:
                raise AuthError(describe(exc.body)) from None
            raise
        return self.authenticate(reply.json()["token"])

    def check(self) -> None:
        """One authenticated read: an AuthError when the token or key is not accepted."""
        self.request("GET", "/api/projects/", params={"page": 1})

    # ------------------------------------------------------------------ projects

    def projects(self) -> list[dict]:
        return list(self._pages("/api/projects/"))

    def project(self, project_id: int) -> dict:
        return self.get(f"/api/projects/{int(project_id)}/")

    def create_project(self, name: str, description: str = "") -> dict:
        return self.post("/api/projects/", json={"name": name, "description": description})

    def delete_project(self, project_id: int) -> None:
        self.request("DELETE", f"/api/projects/{int(project_id)}/")

    def find_project(self, name_or_id: str | int) -> dict | None:
        """A project by id (digits) or exact name; None when there is none."""
        text = str(name_or_id).strip()
        if text.isdigit():
            try:
                return self.project(int(text))
            except NotFound:
                pass
        named = [p for p in self._pages("/api/projects/", {"name": text}) if p.get("name") == text]
        return min(named, key=lambda p: p["id"]) if named else None

    def find_or_create_project(self, name_or_id: str | int) -> tuple[dict, bool]:
        """(project, created): an existing project by id or name, else a new one with that name."""
        found = self.find_project(name_or_id)
        if found is not None:
            return found, False
        return self.create_project(str(name_or_id)), True

    # ------------------------------------------------------------------ tasks

    def tasks(self, project_id: int) -> list[dict]:
        return self.get(f"/api/projects/{int(project_id)}/tasks/")

    def task(self, project_id: int, task_id: str) -> dict:
        return self.get(self._task_path(project_id, task_id))

    def find_task(self, ref: str, project: str | int | None = None) -> dict:
        """A task from `PROJECT/TASK`, or a task id (or a unique prefix of one) looked up in
        `project` or in every project the caller sees."""
        ref = ref.strip()
        if "/" in ref:
            project, ref = ref.split("/", 1)
        if project is not None:
            found = self.find_project(project)
            if found is None:
                raise UsageError(f"no project {project!r}")
            candidates = [found]
        else:
            candidates = self.projects()
        for candidate in candidates:
            if re.fullmatch(r"[0-9a-fA-F-]{36}", ref):
                try:
                    return self.task(candidate["id"], ref)
                except NotFound:
                    continue
            matches = [t for t in self.tasks(candidate["id"]) if t["id"].startswith(ref.lower())] if ref else []
            if len(matches) > 1:
                raise UsageError(f"{ref!r} names {len(matches)} tasks: give more of the id")
            if matches:
                return matches[0]
        raise UsageError(f"no task {ref!r}" + (f" in project {project}" if project is not None else ""))

    def create_task(self, project_id: int, *, name: str | None = None, options: list[dict] | None = None,
                    processing_node: int | None = None, partial: bool = True, **fields) -> dict:
        body: dict[str, Any] = {"partial": partial, "options": options or [], **fields}
        if name:
            body["name"] = name
        if processing_node is not None:
            body["processing_node"] = processing_node
            body["auto_processing_node"] = False
        return self.post(f"/api/projects/{int(project_id)}/tasks/", json=body)

    def presign(self, project_id: int, task_id: str, files: list[tuple[str, int]]) -> list[dict]:
        """Presigned S3 PUTs for (name, size) pairs; NotFound where the server has no `presign/`."""
        reply = self.post(self._task_path(project_id, task_id) + "presign/",
                          json={"files": [{"name": n, "size": s} for n, s in files]})
        return reply["uploads"]

    def commit(self, project_id: int, task_id: str) -> dict:
        return self.post(self._task_path(project_id, task_id) + "commit/")

    def action(self, project_id: int, task_id: str, action: str) -> dict:
        """`cancel`, `restart` or `remove`: WebODM answers {"success": true}."""
        if action not in ("cancel", "restart", "remove"):
            raise UsageError(f"unknown action {action!r}")
        return self.post(self._task_path(project_id, task_id) + f"{action}/")

    def output(self, project_id: int, task_id: str, line: int = 0) -> list[str]:
        """Console lines from `line` (WebODM's `output/?line=N`, a JSON string of lines)."""
        text = self.get(self._task_path(project_id, task_id) + "output/", params={"line": max(0, line)})
        if not isinstance(text, str) or not text:
            return []
        return text.split("\n")

    def follow(self, project_id: int, task_id: str, *, interval: float = 1.0,
               from_line: int = 0) -> Iterator[tuple[dict, list[str]]]:
        """(task, new console lines) every `interval` seconds until the task ends (the last
        yield is the final state, with the lines that were still to read)."""
        line = from_line
        while True:
            task = self.task(project_id, task_id)
            lines = self.output(project_id, task_id, line)
            line += len(lines)
            yield task, lines
            if task.get("status") in FINAL and not task.get("pending_action"):
                return
            time.sleep(interval)

    def wait(self, project_id: int, task_id: str, *, interval: float = 1.0,
             on_update: Callable[[dict, list[str]], None] | None = None) -> dict:
        """Follow a task to its end; TaskFailed when it ends FAILED or CANCELED."""
        task: dict = {}
        for task, lines in self.follow(project_id, task_id, interval=interval):
            if on_update:
                on_update(task, lines)
        if task.get("status") != COMPLETED:
            detail = f": {task['last_error']}" if task.get("last_error") else ""
            raise TaskFailed(task, f"task {task_id} {status_name(task.get('status'))}{detail}")
        return task

    # ------------------------------------------------------------------ downloads

    def download(self, project_id: int, task_id: str, asset: str, directory: str | os.PathLike = ".",
                 *, on_start: Callable[[int | None], None] | None = None,
                 on_bytes: Callable[[int], None] | None = None) -> Path:
        """Save one named asset as DIR/ASSET: Aloft answers 302 to a presigned S3 URL (fetched
        without our credentials), WebODM streams it itself. Written to a .part file, then renamed."""
        path = self._task_path(project_id, task_id) + f"download/{asset}"
        first = self.request("GET", path, expect=(200, 301, 302, 303, 307), allow_redirects=False, stream=True)
        if first.status_code == 200:
            reply = first
        else:
            first.close()
            location = first.headers.get("Location", "")
            try:
                reply = retrying_session(self.retries).get(requests.compat.urljoin(self.url + path, location),
                                                           stream=True, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise Unreachable(f"cannot download {asset}: {type(exc).__name__}") from None
            if reply.status_code != 200:
                raise Unreachable(f"download of {asset} answered HTTP {reply.status_code}")
        size = reply.headers.get("Content-Length")
        if on_start:
            on_start(int(size) if size and size.isdigit() else None)
        target = Path(directory) / asset
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with reply, open(partial, "wb") as out:
            for chunk in reply.iter_content(1 << 20):
                out.write(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        os.replace(partial, target)
        return target

    # ------------------------------------------------------------------ nodes, presets

    def nodes(self) -> list[dict]:
        return list(self._pages("/api/processingnodes/"))

    def presets(self) -> list[dict]:
        return list(self._pages("/api/presets/"))

    def preset_options(self, name: str) -> list[dict]:
        for preset in self.presets():
            if preset.get("name") == name or str(preset.get("id")) == name:
                options = preset.get("options") or []
                return json.loads(options) if isinstance(options, str) else list(options)
        raise UsageError(f"no preset {name!r}")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _task_path(project_id: int, task_id: str) -> str:
        return f"/api/projects/{int(project_id)}/tasks/{task_id}/"

    def _pages(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a list route: the plain array, following a `Link: rel="next"` page."""
        reply = self.request("GET", path, params=params)
        body = _body(reply)
        if isinstance(body, dict) and "results" in body:  # already paginated
            yield from body["results"]
            next_url = body.get("next")
        else:
            yield from body
            next_url = reply.links.get("next", {}).get("url")
        while next_url:
            page = self.get(next_url)
            yield from page["results"]
            next_url = page.get("next")


def _body(reply: requests.Response) -> Any:
    if not reply.content:
        return None
    try:
        return reply.json()
    except ValueError:
        return reply.text


def stage_of(lines: list[str], previous: str | None = None) -> str | None:
    """The last ODM stage the console named, else `previous`."""
    for line in reversed(lines):
        match = _STAGE.search(line)
        if match:
            return match.group(1)
    return previous
