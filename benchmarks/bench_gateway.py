"""The local gateway (API Gateway + Lambda containers) and the ingest of `upload/` bodies.

- request latency: `GET /api/projects/` through the gateway (warm containers: event JSON, pipe,
  one container per request) beside the same request through the Chalice test client in this
  process, both against one moto server in a child process;
- container cold start: the first request a fresh gateway answers (a new process imports the
  app and builds its clients), median of 5;
- concurrency: 48 requests from 8 threads, each taking 200 ms in the app (the `commit/` of a
  task whose lease is held returns at once, so a sleep route is used through the test app);
- ingest: 20 bodies of 9.5 MB (one image each) sent to `upload/` (API Gateway's S3 integration),
  then ingested as `commit/` or the poller do: seconds, MB/s and S3 calls per body; and the
  wall time of a `commit/` that ingests 3 Dropzone chunks of 8,000,000 bytes itself.
"""
from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import counting, make_user, moto_server_aloft


def _gateway(app_spec: str = "app:app", **options):
    from aloft_local.gateway import LocalGateway

    server = LocalGateway(app_spec, "127.0.0.1", 0, **options)
    server.start_in_thread()
    return server, f"http://127.0.0.1:{server.port}"


def _latency(client, url: str, token: str) -> None:
    import requests

    session = requests.Session()
    headers = {"Authorization": f"JWT {token}"}
    for _ in range(5):
        session.get(url + "/api/projects/", headers=headers)
    runs = 100
    started = time.perf_counter()
    for _ in range(runs):
        session.get(url + "/api/projects/", headers=headers)
    through_gateway = (time.perf_counter() - started) / runs * 1000
    started = time.perf_counter()
    for _ in range(runs):
        client.http.get("/api/projects/", headers=headers)
    in_process = (time.perf_counter() - started) / runs * 1000
    print(f"GET /api/projects/: {through_gateway:.1f} ms through the gateway, {in_process:.1f} ms "
          f"through the test client in process; the gateway adds {through_gateway - in_process:.1f} ms")


def _cold_starts(token: str) -> None:
    import requests

    times = []
    for _ in range(5):
        server, url = _gateway()
        started = time.perf_counter()
        requests.get(url + "/api/projects/", headers={"Authorization": f"JWT {token}"})
        times.append(time.perf_counter() - started)
        server.close()
    print(f"cold start (first request of a new container): median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms")


def _concurrency() -> None:
    import requests

    server, url = _gateway("tests.gateway_app:app", template={"Resources": {}}, max_containers=8)
    requests.get(url + "/slow", params={"seconds": 0})
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: requests.get(url + "/slow", params={"seconds": 0.2}), range(48)))
    wall = time.perf_counter() - started
    pids = {r.json()["pid"] for r in replies}
    cold = server.pool("api_handler").cold_starts
    server.close()
    print(f"48 requests of 200 ms from 8 threads: {wall:.2f} s (ideal 1.20 s, the containers start on "
          f"demand), {len(pids)} containers, {cold} cold starts")


def _ingest(token: str) -> None:
    import requests

    from chalicelib import ingest

    server, url = _gateway()
    headers = {"Authorization": f"JWT {token}"}
    project = requests.post(url + "/api/projects/", headers=headers, json={"name": "bench"}).json()
    tasks_url = f"{url}/api/projects/{project['id']}/tasks/"
    task = requests.post(tasks_url, headers=headers, json={"partial": True}).json()
    image = os.urandom(9_500_000)
    bodies = 20
    started = time.perf_counter()
    for i in range(bodies):
        reply = requests.post(f"{tasks_url}{task['id']}/upload/", headers=headers,
                              files=[("images", (f"DJI_{i:04d}.JPG", image, "image/jpeg"))])
        assert reply.status_code == 200, reply.text
    sent = time.perf_counter() - started
    with counting() as calls:
        started = time.perf_counter()
        result = ingest.ingest(task["id"])
        seconds = time.perf_counter() - started
    megabytes = bodies * len(image) / 1e6
    print(f"upload/: {bodies} bodies of 9.5 MB sent in {sent:.1f} s ({megabytes / sent:.0f} MB/s through the gateway)")
    print(f"ingest: {len(result.stored)} images in {seconds:.1f} s ({megabytes / seconds:.0f} MB/s), "
          f"{calls.total('s3') / bodies:.1f} S3 calls per body ({calls.describe('s3')})")

    chunked = requests.post(tasks_url, headers=headers, json={"partial": True}).json()
    big = os.urandom(24_000_000)
    for index in range(3):
        requests.post(f"{tasks_url}{chunked['id']}/upload/", headers=headers,
                      files=[("file", ("DJI_BIG.JPG", big[index * 8_000_000:(index + 1) * 8_000_000]))],
                      data={"dzuuid": "bench", "dzchunkindex": index, "dztotalchunkcount": 3,
                            "dzchunkbyteoffset": index * 8_000_000})
    started = time.perf_counter()
    committed = requests.post(f"{tasks_url}{chunked['id']}/commit/", headers=headers).json()
    print(f"commit/ ingesting 3 Dropzone chunks of 8 MB: {time.perf_counter() - started:.1f} s, "
          f"images_count {committed['images_count']}")
    server.close()


def main() -> None:
    with moto_server_aloft() as client:
        _, token = make_user("bench-gateway")
        server, url = _gateway()
        _latency(client, url, token)
        server.close()
        _cold_starts(token)
        _concurrency()
        _ingest(token)


if __name__ == "__main__":
    main()
