"""The `aloft` command line through its real entry point (`python -m aloft_cli`, what
.venv/bin/aloft runs) against `make run`'s stack and the fake node: login, a folder processed in
one command with a byte-equal download, resume after a kill -9 mid-upload, WebODM's `upload/`
fallback on a stack with presigned uploads off, `--json` and the exit codes.

One stack and one fake node serve the module (the fallback test starts its own stack).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import ROOT, StackProcess, free_port
from tests.fake_nodeodm import FakeNodeODM
from tests.sample_data import fake_image, sample_files

ORTHOPHOTO = sample_files()["odm_orthophoto/odm_orthophoto.tif"]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def node():
    fake = FakeNodeODM(processing_seconds=0.5, output_lines=20).start()
    yield fake
    fake.stop()


def start_stack(node: FakeNodeODM, **env) -> StackProcess:
    stack = StackProcess(**{"ALOFT_FOLLOW_SECONDS": "1", **env})
    stack.headers = {"Authorization": f"JWT {token(stack.url)}"}
    added = requests.post(f"{stack.url}/api/processingnodes/", headers=stack.headers,
                          json={"hostname": node.hostname, "port": node.port})
    assert added.status_code == 201, added.text
    return stack


def end_stack(stack: StackProcess) -> None:
    stack.stop()
    shutil.rmtree(stack.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stacks(node):
    """Aloft's stack, and one with presigned uploads switched off (a WebODM-like server), both
    started (and stopped) at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_stack, node), pool.submit(start_stack, node, ALOFT_PRESIGNED_UPLOADS="0")]
        started = [f.result() for f in futures]
    yield started
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(end_stack, started))


@pytest.fixture
def stack(stacks):
    return stacks[0]


@pytest.fixture
def webodm_like(stacks):
    return stacks[1]


@pytest.fixture
def config(tmp_path):
    """The CLI's config dir for one test (credentials, resume state)."""
    return tmp_path / "config"


def token(url: str, username: str = "admin", password: str = "admin") -> str:
    reply = requests.post(f"{url}/api/token-auth/", json={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


def cli_env(config: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALOFT_SERVER", "ALOFT_PASSWORD", "ALOFT_API_KEY")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update({"ALOFT_CONFIG_DIR": str(config), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def aloft(config: Path, *args: str, input: str | None = None, timeout: float = 60,
          **env) -> subprocess.CompletedProcess:
    """`aloft ARGS...` as a user runs it; stderr is a pipe, not a terminal."""
    return subprocess.run([sys.executable, "-m", "aloft_cli", *args], cwd=ROOT, env=cli_env(config, **env),
                          input=input, capture_output=True, text=True, timeout=timeout)


def login(stack, config: Path) -> None:
    done = aloft(config, "login", stack.url, "-u", "admin", "--password-stdin", input="admin\n")
    assert done.returncode == 0, done.stderr


def image_folder(path: Path, count: int, size: int = 50_000, big: dict | None = None) -> dict[str, bytes]:
    path.mkdir(parents=True)
    images = {f"DJI_{i:04d}.JPG": fake_image(i, size) for i in range(count)}
    images.update(big or {})
    for name, content in images.items():
        (path / name).write_bytes(content)
    (path / "notes.md").write_text("not an image: left out")
    return images


def project_tasks(stack, name: str) -> tuple[dict, list[dict]]:
    projects = requests.get(f"{stack.url}/api/projects/", headers=stack.headers, params={"name": name}).json()
    assert len(projects) == 1, projects
    tasks = requests.get(f"{stack.url}/api/projects/{projects[0]['id']}/tasks/", headers=stack.headers).json()
    return projects[0], tasks


def stored_image(stack, task: dict, name: str) -> bytes:
    reply = requests.get(f"{stack.url}/api/projects/{task['project']}/tasks/{task['id']}/images/download/{name}",
                         headers=stack.headers)
    assert reply.status_code == 200, reply.text
    return reply.content


# ---------------------------------------------------------------------------- tests
def test_login_process_wait_download(stack, config, tmp_path):
    images = image_folder(tmp_path / "images", 6)
    login(stack, config)
    saved = config / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    entry = json.loads(saved.read_text())["servers"][stack.url]
    assert set(entry) == {"token", "username"}  # the token it bought, never the password
    out = tmp_path / "out"
    done = aloft(config, "process", str(tmp_path / "images"), "--project", "Demo", "--name", "Flight 1",
                 "-O", "orthophoto-resolution=2", "--wait", "--download", "orthophoto.tif", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "orthophoto.tif").read_bytes() == ORTHOPHOTO  # through the 302, byte for byte
    project, tasks = project_tasks(stack, "Demo")  # created by `process`
    assert len(tasks) == 1 and tasks[0]["status"] == 40 and tasks[0]["images_count"] == len(images)
    assert tasks[0]["name"] == "Flight 1"
    assert {"name": "orthophoto-resolution", "value": 2} in tasks[0]["options"]
    assert done.stdout.strip() == f"{project['id']}/{tasks[0]['id']}"
    for name in ("DJI_0000.JPG", "DJI_0005.JPG"):
        assert stored_image(stack, tasks[0], name) == images[name]
    # Not a terminal: plain log lines, no bars or escape codes.
    assert "\x1b[" not in done.stderr and "\r" not in done.stderr
    assert "uploading 6 files" in done.stderr and "(presigned PUTs to S3)" in done.stderr
    assert "upload 100%: 300.0 kB of 300.0 kB sent, 6/6 files done" in done.stderr
    # --wait follows the task: at least one progress line (which stage the 1 s polls catch
    # depends on timing: the fake node takes 0.5 s), then the end.
    assert re.search(r"task \S+: (Queued|Waiting|Running|Completed) \d+%", done.stderr), done.stderr
    assert "COMPLETED" in done.stderr, done.stderr
    assert f"downloaded {out / 'orthophoto.tif'}" in done.stderr
    assert not list((config / "uploads").glob("*.json"))  # the job is over: no resume state left

    again = aloft(config, "download", f"{project['id']}/{tasks[0]['id']}", "orthophoto.tif", "all.zip",
                  "-o", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "orthophoto.tif").read_bytes() == ORTHOPHOTO
    assert (tmp_path / "again" / "all.zip").read_bytes() == FakeNodeODM().all_zip
    assert aloft(config, "logout").returncode == 0
    assert aloft(config, "projects").returncode == 3  # logged out


class CountingProxy(ThreadingHTTPServer):
    """An HTTP proxy on 127.0.0.1 (the CLI's HTTP_PROXY) that counts the PUTs S3 answered with
    2xx, per path, and holds every PUT after the first `admit` until released (never sending it)."""

    daemon_threads = True

    def __init__(self, admit: int | None = None):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.admit = admit
        self.admitted = self.held = 0
        self.stored: Counter = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        proxy: CountingProxy = self.server
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_put = self.command == "PUT"
        if is_put:
            with proxy.lock:
                hold = proxy.admit is not None and proxy.admitted >= proxy.admit
                proxy.admitted += not hold
                proxy.held += hold
            if hold:
                proxy.release.wait()
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""),
                         body=body, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        upstream.close()
        if is_put and 200 <= reply.status < 300:
            with proxy.lock:
                proxy.stored[target.path] += 1
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


def test_resume_after_kill_sends_only_the_missing_files(stack, config, tmp_path):
    images = image_folder(tmp_path / "images", 10, size=120_000)
    login(stack, config)
    args = ["process", str(tmp_path / "images"), "--project", "Resume", "--parallel", "2"]
    proxy = CountingProxy(admit=4)
    try:
        first = subprocess.Popen([sys.executable, "-m", "aloft_cli", *args], cwd=ROOT, text=True,
                                 env=cli_env(config, HTTP_PROXY=proxy.url), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not (sum(proxy.stored.values()) == 4 and proxy.held == 2):  # 4 stored, both workers stuck
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        first.kill()  # kill -9 mid-upload
        first.communicate()
        proxy.release.set()
        project, tasks = project_tasks(stack, "Resume")
        assert len(tasks) == 1 and tasks[0]["partial"] is True

        proxy.admit = None
        second = subprocess.run([sys.executable, "-m", "aloft_cli", *args, "--wait"], cwd=ROOT, text=True,
                                env=cli_env(config, HTTP_PROXY=proxy.url), capture_output=True, timeout=60)
        assert second.returncode == 0, second.stderr
    finally:
        proxy.close()
    assert f"resuming task {tasks[0]['id']}" in second.stderr
    assert "already uploaded: sending the 6 left" in second.stderr
    # Every image was stored exactly once, all of them into the one task.
    assert len(proxy.stored) == len(images) and set(proxy.stored.values()) == {1}, proxy.stored
    assert proxy.admitted == len(images)  # 4 PUTs, then only the 6 missing ones: none tried twice
    assert {path.rsplit("/", 1)[-1] for path in proxy.stored} == set(images)
    assert all(f"/tasks/{tasks[0]['id']}/images/" in path for path in proxy.stored)
    _, after = project_tasks(stack, "Resume")
    assert [t["id"] for t in after] == [tasks[0]["id"]]
    assert after[0]["images_count"] == len(images) and after[0]["status"] == 40
    assert second.stdout.strip() == f"{project['id']}/{tasks[0]['id']}"


def test_webodm_upload_fallback_without_presigned_uploads(webodm_like, config, tmp_path):
    big = {"DJI_BIG.JPG": fake_image(99, 250_000)}  # 3 Dropzone chunks of 100,000 bytes
    images = image_folder(tmp_path / "images", 3, size=20_000, big=big)
    login(webodm_like, config)
    done = aloft(config, "process", str(tmp_path / "images"), "-p", "Fallback", "--chunk-size", "100000", "-j", "2",
                 "--wait", "--json")
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["status"] == 40 and task["images_count"] == len(images)
    assert "no presigned uploads: using WebODM's upload/" in done.stderr
    assert "(WebODM upload/)" in done.stderr
    presign = requests.post(f"{webodm_like.url}/api/projects/{task['project']}/tasks/{task['id']}/presign/",
                            headers=webodm_like.headers, json={"files": [{"name": "a.jpg", "size": 1}]})
    assert presign.status_code == 404 and presign.json() == {"detail": "Not found."}
    for name, content in images.items():
        assert stored_image(webodm_like, task, name) == content


def test_json_output_and_exit_codes(stack, node, config, tmp_path):
    assert aloft(config, "projects").returncode == 3  # not logged in
    wrong = aloft(config, "login", stack.url, "-u", "admin", "--password-stdin", input="nope\n")
    assert wrong.returncode == 3 and "Unable to login with provided credentials." in wrong.stderr
    assert aloft(config, "login", stack.url, "--api-key", "not-a-key").returncode == 3
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = aloft(config, "login", dead, "-u", "admin", "--password-stdin", input="admin\n",
                        ALOFT_RETRIES="1")
    assert unreachable.returncode == 4 and "cannot reach" in unreachable.stderr
    assert aloft(config, "process", str(tmp_path)).returncode == 2  # --project is missing
    assert aloft(config, "frobnicate").returncode == 2

    login(stack, config)
    made = aloft(config, "projects", "create", "Scripts", "--json")
    assert made.returncode == 0, made.stderr
    project = json.loads(made.stdout)
    listed = json.loads(aloft(config, "projects", "--json").stdout)
    assert project["id"] in [p["id"] for p in listed]
    assert json.loads(aloft(config, "tasks", "Scripts", "--json").stdout) == []
    nodes = json.loads(aloft(config, "nodes", "--json").stdout)
    assert [(n["hostname"], n["port"]) for n in nodes] == [(node.hostname, node.port)]
    # without --json: tables on stdout, one row per item
    projects_table = aloft(config, "projects").stdout.splitlines()
    assert projects_table[0].split() == ["ID", "NAME", "TASKS", "CREATED"]
    assert any(line.split()[:3] == [str(project["id"]), "Scripts", "0"] for line in projects_table[1:])
    nodes_table = aloft(config, "nodes").stdout.splitlines()
    assert nodes_table[0].split()[:2] == ["ID", "NODE"] and f"{node.hostname}:{node.port}" in nodes_table[1]
    assert aloft(config, "tasks", "Scripts").stdout.split() == ["TASK", "NAME", "STATUS", "PROGRESS", "IMAGES",
                                                               "CREATED"]
    assert aloft(config, "tasks", "No such project").returncode == 2
    assert aloft(config, "status", "00000000-0000-4000-8000-000000000000").returncode == 2

    image_folder(tmp_path / "images", 2, size=5_000)
    node.fail_tasks = True
    try:
        failed = aloft(config, "process", str(tmp_path / "images"), "-p", str(project["id"]), "--wait")
    finally:
        node.fail_tasks = False
    assert failed.returncode == 1 and "FAILED" in failed.stderr, failed.stderr
    [task] = json.loads(aloft(config, "tasks", str(project["id"]), "--json").stdout)
    ref = f"{project['id']}/{task['id']}"
    status = json.loads(aloft(config, "status", ref, "--json").stdout)
    assert status["id"] == task["id"] and status["status"] == 30
    by_prefix = json.loads(aloft(config, "status", task["id"][:8], "--json").stdout)  # looked up
    assert by_prefix["id"] == task["id"]
    lines = json.loads(aloft(config, "output", ref, "--json").stdout)["lines"]
    assert lines and lines[0].startswith("[INFO] step 1 of")
    assert aloft(config, "download", ref, "orthophoto.tif").returncode == 2  # a failed task has none
    assert aloft(config, "output", ref, "--follow").returncode == 1  # it ended FAILED

    assert aloft(config, "restart", ref).returncode == 0
    assert aloft(config, "cancel", ref, "-p", "Scripts").returncode == 0
    assert aloft(config, "remove", ref).returncode == 0
    deadline = time.monotonic() + 20
    while json.loads(aloft(config, "tasks", "Scripts", "--json").stdout):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert aloft(config, "projects", "delete", str(project["id"]), "--yes").returncode == 0


def test_pyproject_dependencies_are_the_pinned_requirements():
    pins = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.split("#")[0].strip().split("==")
                pins[package.lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        package, version = requirement.split("==")
        assert pins[package.lower()] == version, requirement
    assert project["scripts"]["aloft"] == "aloft_cli.main:main"
