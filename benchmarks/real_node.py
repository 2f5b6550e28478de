"""The acceptance checks of issues 12 and 13 against a running `make run` and a REAL NodeODM.

`make test` can only use the fake node in tests/ (no Docker there); this script is how the
same flows are seen end to end on a real one (`docker run -p 3000:3000 opendronemap/nodeodm
--test`, or a full node). Start `make run`, then:

    .venv/bin/python -m benchmarks.real_node --node 127.0.0.1:3000 [--node-data DIR]

It registers the node (superuser `admin`/`admin`, or ALOFT_ADMIN_USERNAME/PASSWORD), then:
1. WebODM's API quickstart flow with an API key as `?jwt=` (no password), `resize_to: 512`,
   and a webhook receiver on 127.0.0.1 that verifies each delivery with `standardwebhooks`:
   prints when `task.completed` arrived against the poll that saw status 40. With
   `--node-data` (the node's task folder: `/var/www/data` in its container, `tests/data` in
   test mode) it reads the images the node received: longest side and GPS EXIF.
2. `aloft process DIR --wait --download orthophoto.tif`, killed (SIGKILL) mid-upload, then
   run again: the same task, every image once.
3. Sharing (view → PATCH 403 → change → PATCH 200 → removed → 404), then backup → import
   into another project: the fields and every asset's bytes (zips by their entries).
4. Cancel while running, restart, remove: on the node too.
Each line says what it saw; the exit code is the number of failed checks.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import requests

FAILED: list[str] = []


def check(ok: bool, what: str) -> bool:
    print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
    if not ok:
        FAILED.append(what)
    return ok


def drone_images(folder: Path, count: int, size=(1200, 900)) -> list[Path]:
    """JPEGs with the EXIF photogrammetry reads (camera, focal length, GPS)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.effect_noise(size, 40).convert("RGB")
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "DJI", "FC6310"
        exif.get_ifd(0x8769)[0x920A] = 8.8
        exif.get_ifd(0x8825).update({1: "N", 2: (46.0, 50.0, 30.0 + i % 30), 3: "W", 4: (91.0, 59.0, 40.25),
                                     5: 0, 6: 160.5})
        path = folder / f"IMG_{i:04d}.JPG"
        image.save(path, "JPEG", quality=85, exif=exif)
        paths.append(path)
    return paths


class Api:
    def __init__(self, base: str, headers: dict | None = None, key: str | None = None):
        self.base, self.headers, self.key = base.rstrip("/"), headers or {}, key

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        params = dict(kwargs.pop("params", {}) or {})
        if self.key:
            params["jwt"] = self.key  # as WebODM's quickstart would send a token in the query
        return requests.request(method, self.base + path, headers=self.headers, params=params, timeout=60, **kwargs)

    def wait(self, path: str, until, seconds: float = 300) -> dict:
        deadline = time.time() + seconds
        while True:
            item = self("GET", path).json()
            if until(item) or time.time() > deadline:
                return item
            time.sleep(0.25)


def login(base: str, username: str, password: str) -> Api:
    token = requests.post(f"{base}/api/token-auth/", data={"username": username, "password": password}).json()["token"]
    return Api(base, {"Authorization": f"JWT {token}"})


def finished(task: dict) -> bool:
    return task["status"] in (30, 40, 50)


def register(admin: Api, host: str, port: int) -> None:
    for node in admin("GET", "/api/processingnodes/").json():
        if node["hostname"] == host and node["port"] == port:
            return
    admin("POST", "/api/processingnodes/", data={"hostname": host, "port": port})
    online = False
    for _ in range(130):
        online = any(n["online"] for n in admin("GET", "/api/processingnodes/").json()
                     if n["hostname"] == host and n["port"] == port)
        if online:
            break
        time.sleep(0.5)
    check(online, f"node {host}:{port} registered and online")


def quickstart_with_key_and_webhook(admin: Api, images: list[Path], node_data: Path | None) -> None:
    from standardwebhooks.webhooks import Webhook

    print("1. WebODM's quickstart with an API key as ?jwt=, resize_to 512, a webhook receiver")
    key = admin("POST", "/api/keys/", json={"name": "real-node check"}).json()["key"]
    api = Api(admin.base, key=key)
    got: list[tuple[float, str, bool]] = []
    secret = {}

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                kind, verified = Webhook(secret["value"]).verify(body, dict(self.headers))["type"], True
            except Exception:  # noqa: BLE001 - a bad signature is what we look for
                kind, verified = "?", False
            got.append((time.time(), kind, verified))
            self.send_response(204)
            self.end_headers()

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = api("POST", "/api/webhooks/", json={"url": f"http://127.0.0.1:{server.server_port}/hook",
                                               "events": ["task.completed"]}).json()
    secret["value"] = hook["secret"]
    project = api("POST", "/api/projects/", data={"name": "Hello WebODM!"}).json()
    files = [("images", (p.name, p.open("rb"), "image/jpg")) for p in images]
    created = api("POST", f"/api/projects/{project['id']}/tasks/", files=files,
                  data={"options": json.dumps([{"name": "orthophoto-resolution", "value": 24}]), "resize_to": 512})
    check(created.status_code == 201, f"task created with the key: {created.status_code}")
    path = f"/api/projects/{project['id']}/tasks/{created.json()['id']}/"
    task = api.wait(path, finished)
    seen = time.time()
    check(task["status"] == 40, f"task status {task['status']}, resize_progress {task['resize_progress']}")
    while time.time() - seen < 10 and not any(kind == "task.completed" for _, kind, _ in got):
        time.sleep(0.05)
    arrivals = [(at - seen, ok) for at, kind, ok in got if kind == "task.completed"]
    check(bool(arrivals) and arrivals[0][1] and arrivals[0][0] < 10,
          f"task.completed delivered and verified, {arrivals[0][0]:+.2f} s from the poll that saw 40"
          if arrivals else "task.completed delivered within 10 s")
    download = api("GET", path + "download/orthophoto.tif")
    check(download.status_code == 200 and len(download.content) > 0,
          f"orthophoto.tif downloaded with ?jwt=<key>: {len(download.content)} bytes")
    if node_data is not None:
        from PIL import Image

        folder = node_data / task["uuid"] / "images"
        for stored in sorted(folder.glob("*")):
            with Image.open(stored) as image:
                gps = image.getexif().get_ifd(0x8825)
                check(max(image.size) == 512 and gps.get(2) is not None and gps.get(4) == (91.0, 59.0, 40.25),
                      f"on the node: {stored.name} {image.size}, GPS {gps.get(1)} {gps.get(2)} {gps.get(3)} {gps.get(4)}")
    server.shutdown()


def cli_resume(base: str, images_dir: Path) -> None:
    print("2. aloft process, killed mid-upload, run again")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "XDG_CONFIG_HOME": tempfile.mkdtemp(prefix="aloft-cli-")}
    username = os.environ.get("ALOFT_ADMIN_USERNAME", "admin")
    password = os.environ.get("ALOFT_ADMIN_PASSWORD", "admin")
    subprocess.run([bin_dir / "aloft", "login", base, "--username", username, "--password-stdin"],
                   input=password, text=True, env=env, check=True, capture_output=True)
    out_dir = Path(tempfile.mkdtemp(prefix="aloft-out-"))
    name = f"resume check {time.strftime('%H:%M:%S')}"
    command = [bin_dir / "aloft", "process", str(images_dir), "--project", "Demo", "--name", name,
               "-j", "1", "--wait", "--download", "orthophoto.tif", "-o", str(out_dir)]
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in first.stderr:
        if line.startswith("upload ") and int(line.split()[1].rstrip("%:")) >= 25:
            first.send_signal(signal.SIGKILL)
            break
    first.wait()
    check(first.returncode == -signal.SIGKILL, "first run killed mid-upload")
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    print("    " + "\n    ".join(second.stderr.strip().splitlines()[:3]))
    ref = second.stdout.strip().splitlines()[-1] if second.stdout.strip() else ""
    check(second.returncode == 0 and (out_dir / "orthophoto.tif").exists(),
          f"second run: exit {second.returncode}, out/orthophoto.tif {(out_dir / 'orthophoto.tif').exists()}")
    admin = login(base, username, password)
    project_id, task_id = ref.split("/") if "/" in ref else ("0", "")
    tasks = [t for t in admin("GET", f"/api/projects/{project_id}/tasks/").json() if t["name"] == name]
    count = len(list(images_dir.glob("*.JPG")))
    check(len(tasks) == 1 and tasks[0]["id"] == task_id and tasks[0]["images_count"] == count,
          f"one task ({len(tasks)}), {tasks[0]['images_count'] if tasks else 0} of {count} images, status "
          f"{tasks[0]['status'] if tasks else '-'}")


def sharing_backup_import(admin: Api, images: list[Path]) -> None:
    print("3. sharing, presets, backup → import")
    users = {}
    for name in ("check-a", "check-b"):
        admin("POST", "/api/admin/users/", json={"username": name, "password": f"pw-{name}-2026", "email": ""})
        users[name] = login(admin.base, name, f"pw-{name}-2026")
    a, b = users["check-a"], users["check-b"]
    system = [p["name"] for p in a("GET", "/api/presets/").json() if p["system"]]
    check("Default" in system and "Fast Orthophoto" in system, f"system presets: {system}")
    project = a("POST", "/api/projects/", data={"name": "shared survey"}).json()
    files = [("images", (p.name, p.open("rb"), "image/jpeg")) for p in images]
    task = a("POST", f"/api/projects/{project['id']}/tasks/", files=files).json()
    one = f"/api/projects/{project['id']}/tasks/{task['id']}/"
    task = a.wait(one, finished)

    def share(*perms):
        a("POST", f"/api/projects/{project['id']}/edit/",
          json={"permissions": [{"username": "check-b", "permissions": list(perms)}] if perms else []})

    share("view")
    listed = [p for p in b("GET", "/api/projects/").json() if p["id"] == project["id"]]
    check(bool(listed) and listed[0]["owned"] is False, "B lists the shared project (owned: false)")
    codes = [b("GET", one + s).status_code for s in ("", "orthophoto/tiles.json", "download/orthophoto.tif")]
    check(codes == [200, 200, 200], f"B reads the task, tiles.json, a download: {codes}")
    check(b("PATCH", f"/api/projects/{project['id']}/", json={"name": "x"}).status_code == 403, "B's PATCH: 403")
    share("view", "change")
    check(b("PATCH", f"/api/projects/{project['id']}/", json={"description": "B"}).status_code == 200,
          "with change, B's PATCH: 200")
    share()
    check(b("GET", f"/api/projects/{project['id']}/").status_code == 404, "removed: B gets 404")

    reply = a("GET", one + "backup", allow_redirects=False)
    while reply.status_code == 202:
        time.sleep(1)
        reply = a("GET", one + "backup", allow_redirects=False)
    backup = requests.get(reply.headers["Location"], timeout=60).content
    other = a("POST", "/api/projects/", data={"name": "restored"}).json()
    imported = a("POST", f"/api/projects/{other['id']}/tasks/import",
                 files={"file": ("backup.zip", backup, "application/zip")}).json()
    copy_path = f"/api/projects/{other['id']}/tasks/{imported['id']}/"
    copy = a.wait(copy_path, finished)
    fields = ("name", "options", "available_assets", "extent", "epsg", "orthophoto_bands", "public", "tags", "status")
    check(all(copy[f] == task[f] for f in fields), f"imported backup: same {', '.join(fields)}")

    def content(path: str, asset: str):
        data = a("GET", path + "download/" + asset).content
        if not asset.endswith(".zip"):
            return hashlib.sha256(data).hexdigest()
        archive = zipfile.ZipFile(io.BytesIO(data))
        return {n: hashlib.sha256(archive.read(n)).hexdigest() for n in archive.namelist() if not n.endswith("/")}

    differ = [asset for asset in task["available_assets"] if content(one, asset) != content(copy_path, asset)]
    check(not differ, f"{len(task['available_assets']) - len(differ)} of {len(task['available_assets'])} assets "
                      f"equal (zips by their files)" + (f"; differ: {differ}" if differ else ""))


def actions(admin: Api, images: list[Path], node: str) -> None:
    print("4. cancel while running, restart, remove")
    project = admin("POST", "/api/projects/", data={"name": "actions"}).json()
    files = [("images", (p.name, p.open("rb"), "image/jpeg")) for p in images]
    task = admin("POST", f"/api/projects/{project['id']}/tasks/", files=files).json()
    one = f"/api/projects/{project['id']}/tasks/{task['id']}/"
    running = admin.wait(one, lambda t: (t["status"] == 20 and t["uuid"]) or finished(t))
    on_node = f"http://{node}/task/{running['uuid']}/info"
    admin("POST", one + "cancel/")
    canceled = admin.wait(one, lambda t: t["status"] == 50 and t["pending_action"] is None, 60)
    node_says = requests.get(on_node).json()
    check(canceled["status"] == 50 and node_says.get("status", {}).get("code") == 50,
          f"canceled: Aloft {canceled['status']}, node {node_says.get('status')}")
    admin("POST", one + "restart/")
    done = admin.wait(one, lambda t: t["status"] == 40 and t["pending_action"] is None)
    check(done["status"] == 40, f"restarted: status {done['status']}, {len(done['available_assets'])} assets")
    admin("POST", one + "remove/")
    time.sleep(3)
    node_says = requests.get(on_node).json()
    check(admin("GET", one).status_code == 404 and "error" in node_says,
          f"removed from Aloft and from the node: {node_says}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default="http://localhost:8000")
    parser.add_argument("--node", default="127.0.0.1:3000", help="host:port of the NodeODM")
    parser.add_argument("--node-data", type=Path, help="the node's task folder, to read the images it received")
    args = parser.parse_args()
    host, port = args.node.rsplit(":", 1)
    admin = login(args.api, os.environ.get("ALOFT_ADMIN_USERNAME", "admin"),
                  os.environ.get("ALOFT_ADMIN_PASSWORD", "admin"))
    register(admin, host, int(port))
    with tempfile.TemporaryDirectory() as folder:
        small = drone_images(Path(folder) / "small", 3)
        quickstart_with_key_and_webhook(admin, small, args.node_data)
        cli_resume(args.api, drone_images(Path(folder) / "many", 200, size=(600, 450))[0].parent)
        sharing_backup_import(admin, small)
        actions(admin, small[:2], args.node)
    print(f"{len(FAILED)} failed" + (": " + "; ".join(FAILED) if FAILED else ""))
    return len(FAILED)


if __name__ == "__main__":
    sys.exit(main())
