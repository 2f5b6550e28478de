"""Restarting `make run` on a data folder holding 1,000 tasks and 1 GB of images, and what a
kill -9 loses.

- populate: BENCH_RESTART_TASKS tasks (default 1000) in 10 projects, 2 images each, BENCH_RESTART_GB
  (default 1) of images in all, through the API's multipart task create, 4 requests at a time;
- kill -9 right after, so the next start replays all of it from the log (the worst case), then a
  clean stop (SIGTERM: the last writes and a snapshot) and a start from the snapshot alone: for
  each start the time from process start to serving, and the restore's own figure;
- the data folder's size beside the image bytes, the stack's RSS empty, populated, restored;
- the kill -9 loss window: a writer doing PutItem and a 64 KB PutObject back to back against the
  embedded moto, a kill -9 at a random moment, a restart; how many acknowledged writes are
  missing and how long before the kill the oldest of them was acknowledged (10 runs).
"""
from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import ROOT

TASKS = int(os.environ.get("BENCH_RESTART_TASKS") or 1000)
TOTAL_BYTES = int(float(os.environ.get("BENCH_RESTART_GB") or 1) * 2**30)
PROJECTS = 10
LOSS_RUNS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """`python -m aloft_local` on `data_dir`, timed from process start to serving."""

    def __init__(self, data_dir: Path, **env):
        self.port = _free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("ALOFT_", "AWS_"))}
        environment.update({"PORT": str(self.port), "ALOFT_MOTO_PORT": str(_free_port()),
                            "ALOFT_POLL_SECONDS": "0", "ALOFT_DATA_DIR": str(data_dir),
                            "PYTHONUNBUFFERED": "1", **env})
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "aloft_local"], cwd=ROOT, env=environment,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.banner: list[str] = []
        for line in self.process.stdout:
            self.banner.append(line.rstrip())
            if "storage:" in line:
                self.storage_url = line.split("storage:", 1)[1].strip()
            if "Ctrl-C" in line:
                break
        else:
            raise RuntimeError("the stack did not start:\n" + "\n".join(self.banner))
        self.ready_seconds = time.perf_counter() - started
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    @property
    def data_line(self) -> str:
        return next((line.strip() for line in self.banner if line.strip().startswith("data:")), "")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def end(self, sig: int) -> float:
        started = time.perf_counter()
        self.process.send_signal(sig)
        self.process.wait(timeout=600)
        return time.perf_counter() - started


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _token(url: str) -> dict:
    import requests

    reply = requests.post(f"{url}/api/token-auth/", data={"username": "admin", "password": "admin"})
    return {"Authorization": f"JWT {reply.json()['token']}"}


def _populate(stack: Stack) -> tuple[int, float]:
    import requests

    headers = _token(stack.url)
    projects = [requests.post(f"{stack.url}/api/projects/", headers=headers, json={"name": f"p{i}"}).json()["id"]
                for i in range(PROJECTS)]
    image_bytes = TOTAL_BYTES // (2 * TASKS)
    payload = random.Random(7).randbytes(image_bytes)
    session = threading.local()

    def create(number: int) -> int:
        if not hasattr(session, "s"):
            session.s = requests.Session()
        files = [("images", (f"IMG_{number:04d}_{k}.JPG", number.to_bytes(4, "big") + bytes([k]) + payload[5:],
                             "image/jpeg")) for k in range(2)]
        reply = session.s.post(f"{stack.url}/api/projects/{projects[number % PROJECTS]}/tasks/",
                               headers=headers, files=files)
        reply.raise_for_status()
        return 2 * image_bytes

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(create, range(TASKS)))
    return total, time.perf_counter() - started


def _count_tasks(stack: Stack) -> int:
    import requests

    headers = _token(stack.url)
    projects = requests.get(f"{stack.url}/api/projects/", headers=headers).json()
    return sum(len(requests.get(f"{stack.url}/api/projects/{p['id']}/tasks/", headers=headers).json())
               for p in projects)


def restart_figures() -> None:
    with tempfile.TemporaryDirectory(prefix="aloft-bench-") as folder:
        data = Path(folder) / "data"
        first = Stack(data)
        empty_rss = first.rss_mb()
        image_bytes, seconds = _populate(first)
        time.sleep(2)  # the last batch is written
        populated_rss = first.rss_mb()
        log_bytes = (data / "log").stat().st_size
        first.end(signal.SIGKILL)
        print(f"populated {TASKS} tasks, {image_bytes / 2**30:.2f} GiB of images in {seconds:.1f} s "
              f"({image_bytes / 2**20 / seconds:.0f} MiB/s); log {log_bytes / 2**20:.1f} MiB; then kill -9")

        replayed = Stack(data)
        tasks = _count_tasks(replayed)
        print(f"start after kill -9 (all replayed from the log): serving after {replayed.ready_seconds:.1f} s, "
              f"{tasks} tasks back; {replayed.data_line}")
        replayed_rss = replayed.rss_mb()
        stop_seconds = replayed.end(signal.SIGTERM)
        folder_bytes = _folder_bytes(data)
        print(f"clean stop (SIGTERM: last writes, snapshot): {stop_seconds:.1f} s; data folder "
              f"{folder_bytes / 2**30:.3f} GiB for {image_bytes / 2**30:.3f} GiB of images "
              f"(snapshot {(data / 'snapshot').stat().st_size / 2**20:.1f} MiB)")

        clean = Stack(data)
        tasks = _count_tasks(clean)
        print(f"start after a clean stop (snapshot only): serving after {clean.ready_seconds:.1f} s, "
              f"{tasks} tasks back; {clean.data_line}")
        print(f"RSS of the stack: {empty_rss:.0f} MB empty, {populated_rss:.0f} MB populated, "
              f"{replayed_rss:.0f} MB restored from the log, {clean.rss_mb():.0f} MB restored from the snapshot")
        clean.end(signal.SIGTERM)


def _loss_run(data: Path, seed: int) -> tuple[int, int, float | None, float]:
    """(acknowledged writes, lost acknowledged writes, age of the oldest lost one at the kill,
    age of the newest surviving one)."""
    import boto3
    from botocore.config import Config

    stack = Stack(data)
    options = dict(endpoint_url=stack.storage_url, region_name="us-east-1", aws_access_key_id="x",
                   aws_secret_access_key="x", config=Config(retries={"max_attempts": 0}, connect_timeout=1,
                                                            read_timeout=5, s3={"addressing_style": "path"}))
    dynamodb, s3 = boto3.client("dynamodb", **options), boto3.client("s3", **options)
    dynamodb.create_table(TableName="loss", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "n", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "n", "AttributeType": "N"}])
    s3.create_bucket(Bucket="loss")
    time.sleep(1.5)
    acked: list[tuple[str, int, float]] = []
    stop = threading.Event()
    body = os.urandom(64 * 1024)

    def writer():
        number = 0
        while not stop.is_set():
            try:
                dynamodb.put_item(TableName="loss", Item={"n": {"N": str(number)}})
                acked.append(("item", number, time.time()))
                s3.put_object(Bucket="loss", Key=str(number), Body=body)
                acked.append(("object", number, time.time()))
            except Exception:  # noqa: BLE001 - the server is gone
                return
            number += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(random.Random(seed).uniform(1.0, 3.0))
    killed_at = time.time()
    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait()
    stop.set()
    thread.join()
    acked = [a for a in acked if a[2] <= killed_at]

    again = Stack(data)
    options["endpoint_url"] = again.storage_url
    dynamodb, s3 = boto3.client("dynamodb", **options), boto3.client("s3", **options)
    items = {int(i["n"]["N"]) for page in dynamodb.get_paginator("scan").paginate(TableName="loss")
             for i in page["Items"]}
    objects = {int(o["Key"]) for page in s3.get_paginator("list_objects_v2").paginate(Bucket="loss")
               for o in page.get("Contents", [])}
    again.end(signal.SIGTERM)
    lost = [a for a in acked if a[1] not in (items if a[0] == "item" else objects)]
    lost_set = set(lost)
    kept = [a for a in acked if a not in lost_set]
    oldest_lost = killed_at - min(a[2] for a in lost) if lost else None
    newest_kept = killed_at - max(a[2] for a in kept) if kept else float("nan")
    return len(acked), len(lost), oldest_lost, newest_kept


def loss_window_figures() -> None:
    from aloft_local.persistence import FLUSH_SECONDS

    ages = []
    for run in range(LOSS_RUNS):
        with tempfile.TemporaryDirectory(prefix="aloft-loss-") as folder:
            acked, lost, oldest, newest = _loss_run(Path(folder) / "data", run)
        ages.append(oldest or 0.0)
        print(f"kill -9 run {run + 1}: {acked} writes acknowledged, {lost} lost"
              + (f", the oldest lost acknowledged {oldest * 1000:.0f} ms before the kill" if lost else "")
              + f"; newest kept {newest * 1000:.0f} ms before the kill")
    print(f"kill -9 loss window: at most {max(ages) * 1000:.0f} ms of acknowledged writes "
          f"(median {statistics.median(ages) * 1000:.0f} ms; flush every {FLUSH_SECONDS * 1000:.0f} ms)")


def main() -> None:
    restart_figures()
    loss_window_figures()


if __name__ == "__main__":
    main()
