"""Map tiles against the field's anchor, TiTiler, on the same rasters in the same S3.

    python -m benchmarks tiles          (or `make bench`)

1. A synthetic orthophoto (8,000 × 8,000 RGB + alpha, 5 cm, UTM 15N, an irregular flight
   footprint, deflate) and a DSM on the same grid (float32, nodata -9999), written as NodeODM
   leaves them: tiled GeoTIFFs without overviews, not COGs.
2. COG conversion of each, in a fresh interpreter: wall time and peak RSS (what the worker's
   completion step does; GDAL's block cache at 5 % of the worker's memory, GDAL's default).
3. Both COGs in moto S3 (a moto server in a child process), a completed Aloft task on them.
4. 200 tiles, zoom 14–20 (100 orthophoto tiles as the map shows them, 100 DSM tiles with
   hillshade and a colour map), each requested from Aloft through the local gateway and from
   TiTiler (`titiler.core`'s TilerFactory under uvicorn, the same S3 objects through /vsis3/
   with the same GDAL options, chalicelib/rasters/gdal.py), one after the other, in turns:
   p50/p95 per tile for both and their ratio (goal: Aloft ≤ 1.2 × TiTiler).
5. The first tile after a cold start (a new container: process start, `import app`, the
   raster imports, the first read), the task thumbnail, the deployment zip's size.

moto answers a ranged GET by reading the whole object (~130 ms for a 150 MB object); S3 does
not. The S3 server here answers single ranges from the object's bytes directly (`RangeReads`),
so both tile servers see an S3 whose cost per read does not grow with the file.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from benchmarks.common import ROOT, make_user

SIZE = int(os.environ.get("BENCH_TILES_SIZE", 8000))  # smaller only to try the script quickly
PIXEL = 0.05  # metres: a drone orthophoto's ground sampling distance
ORIGIN = (500_000.0 - SIZE * PIXEL / 2, 4_650_000.0)  # UTM 15N, on its central meridian, 42° N
CRS = "EPSG:32615"
ZOOMS = range(14, 21)
TILES_PER_KIND = 100
# The DSM as WebODM's map shows it with hillshade (its layer defaults), and TiTiler's nearest
# equivalent: the same buffered bilinear read, hillshade, the same colour map.
DSM_RESCALE = "240,280"
ALOFT_DSM_QUERY = {"color_map": "viridis", "hillshade": "6", "rescale": DSM_RESCALE}
TITILER_DSM_QUERY = {"algorithm": "hillshade",
                     "algorithm_params": json.dumps({"azimuth": 315, "angle_altitude": 45, "buffer": 16,
                                                     "z_exaggeration": 6}),
                     "buffer": "16", "resampling": "bilinear", "colormap_name": "viridis"}
WORKER_MEMORY_MB = 3008  # .chalice/config.json, the worker's


# -- S3: moto, with ranged reads that cost the range -------------------------------------------

class RangeReads:
    """WSGI: a GET of one object with a single `Range: bytes=a-b` is answered from that slice of
    the object's bytes. moto builds the whole object for every ranged GET and slices it after."""

    _RANGE = re.compile(r"bytes=(\d+)-(\d*)")

    STATS = "/bench-stats"  # GET: the requests counted so far, as JSON

    def __init__(self, app):
        self.app = app
        self.counts = {"ranged": 0, "ranged_bytes": 0, "other": 0, "dynamodb": 0}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.STATS:
            body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        found = self._RANGE.fullmatch(environ.get("HTTP_RANGE") or "")
        parts = (environ.get("PATH_INFO") or "").lstrip("/").split("/", 1)
        if (environ.get("REQUEST_METHOD") != "GET" or not found or environ.get("QUERY_STRING")
                or len(parts) != 2 or environ.get("HTTP_X_AMZ_TARGET")):
            target = environ.get("HTTP_X_AMZ_TARGET") or ""
            self.counts["dynamodb" if target.startswith("DynamoDB") else "other"] += 1
            return self.app(environ, start_response)
        obj = self._object(parts[0], parts[1])
        begin = int(found[1])
        if obj is None or begin >= obj.size:
            self.counts["other"] += 1
            return self.app(environ, start_response)  # moto's own 404 / 416
        end = min(int(found[2]) if found[2] else obj.size - 1, obj.size - 1)
        with obj.lock:
            obj._value_buffer.seek(begin)
            data = obj._value_buffer.read(end - begin + 1)
        self.counts["ranged"] += 1
        self.counts["ranged_bytes"] += len(data)
        start_response("206 Partial Content", [
            ("Content-Type", obj.metadata.get("Content-Type") or "binary/octet-stream"), ("Content-Length", str(len(data))),
            ("Content-Range", f"bytes {begin}-{end}/{obj.size}"), ("ETag", obj.etag),
            ("Last-Modified", obj.last_modified_RFC1123), ("Accept-Ranges", "bytes")])
        return [data]

    @staticmethod
    def _object(bucket_name: str, key: str):
        from moto.s3.models import FakeKey, s3_backends

        for account in list(s3_backends.keys()):
            for backend in list(s3_backends[account].values()):
                bucket = backend.buckets.get(bucket_name)
                versions = dict.get(bucket.keys, key) if bucket is not None else None
                if versions and isinstance(versions[-1], FakeKey):
                    return versions[-1]
        return None


def _serve_s3(port: int) -> None:
    """`python -m benchmarks.bench_tiles s3 PORT`: Aloft's moto server with RangeReads."""
    import logging

    from aloft_local.motoserver import make_server, moto_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    make_server("127.0.0.1", port, RangeReads(moto_app())).serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start")
            time.sleep(0.1)


@contextlib.contextmanager
def _aloft_on_s3_server():
    """Aloft's tables and bucket on the range-reading moto server; yields the endpoint."""
    from aloft_local.resources import create_resources
    from chalicelib import aws, config

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_tiles", "s3", str(port)], cwd=ROOT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(endpoint + "/moto-api/", server)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        aws.reset()
        os.environ.update(create_resources("aloft-bench", aws.dynamodb(), aws.s3()))
        os.environ.setdefault("ALOFT_JWT_SECRET", "benchmark-secret-0123456789abcdef0123")
        config.reset()
        yield endpoint
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        aws.reset()
        server.terminate()
        server.wait()


# -- the synthetic rasters ------------------------------------------------------------------------

def _inside_footprint(rows, cols):
    """An irregular flight footprint: an ellipse with a wavy edge (outside: no data)."""
    import numpy as np

    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    u = (xx - SIZE / 2) / (SIZE * 0.48)
    v = (yy - SIZE / 2) / (SIZE * 0.46)
    return (u * u + v * v) < (1 + 0.06 * np.sin(7 * np.arctan2(v, u))) ** 2


def _blocks():
    import numpy as np

    cols = np.arange(SIZE)
    for top in range(0, SIZE, 512):
        rows = np.arange(top, min(SIZE, top + 512))
        yy, xx = np.meshgrid(rows, cols, indexing="ij")
        yield top, rows, cols, yy, xx


def _odm_profile(**extra) -> dict:
    from rasterio.transform import from_origin

    return dict(driver="GTiff", width=SIZE, height=SIZE, crs=CRS, transform=from_origin(*ORIGIN, PIXEL, PIXEL),
                tiled=True, blockxsize=512, blockysize=512, compress="deflate", zlevel=1, **extra)


def write_orthophoto(path: Path) -> None:
    """Fields of 20 m in two colours over smooth shading, with sensor-like noise; alpha outside
    the footprint."""
    import numpy as np
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window

    rng = np.random.default_rng(11)
    profile = _odm_profile(count=4, dtype="uint8", photometric="RGB", predictor=2)
    with rasterio.open(path, "w", **profile) as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
        for top, rows, cols, yy, xx in _blocks():
            fields = ((xx // 400 + yy // 400) % 2).astype(np.int16)
            base = (90 + 60 * np.sin(xx / 700.0) * np.cos(yy / 900.0)).astype(np.int16)
            noise = rng.integers(-20, 21, (3,) + xx.shape, dtype=np.int16)
            rgb = np.stack([base + 40 * fields, base + 70 * (1 - fields), base * 7 // 10]) + noise
            data = np.clip(rgb, 1, 255).astype(np.uint8)
            alpha = _inside_footprint(rows, cols).astype(np.uint8) * 255
            data[:, alpha == 0] = 0
            dst.write(np.concatenate([data, alpha[None]]), window=Window(0, top, SIZE, len(rows)))


def write_dsm(path: Path) -> None:
    """Rolling terrain around 250 m with 6 m buildings; nodata outside the footprint."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    rng = np.random.default_rng(12)
    with rasterio.open(path, "w", **_odm_profile(count=1, dtype="float32", predictor=3, nodata=-9999.0)) as dst:
        for top, rows, cols, yy, xx in _blocks():
            x, y = xx.astype(np.float32), yy.astype(np.float32)
            z = 250 + 12 * np.sin(x / 1500) + 9 * np.cos(y / 1100) + 4 * np.sin((x + y) / 300)
            z += (((xx % 600) < 200) & ((yy % 600) < 160)) * np.float32(6)
            z += rng.standard_normal(xx.shape, dtype=np.float32) * np.float32(0.05)
            z[~_inside_footprint(rows, cols)] = -9999.0
            dst.write(z[None], window=Window(0, top, SIZE, len(rows)))


# -- COG conversion ---------------------------------------------------------------------------------

_CONVERT = r"""
import json, resource, shutil, sys, time
from chalicelib.rasters import cog
source, target = sys.argv[1], sys.argv[2]
shutil.copyfile(source, target)
started = time.perf_counter()
converted = cog.ensure_cog(target)
print(json.dumps({"seconds": time.perf_counter() - started, "converted": converted,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def convert(source: Path, target: Path) -> dict:
    """The completion step's COG conversion (chalicelib/rasters/cog.py `ensure_cog`) in a fresh
    interpreter, so its peak RSS is the conversion's own."""
    env = {**os.environ, "GDAL_CACHEMAX": str(WORKER_MEMORY_MB * 5 // 100)}
    done = subprocess.run([sys.executable, "-c", _CONVERT, str(source), str(target)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the Aloft task and TiTiler ------------------------------------------------------------------

def _completed_task(ortho: Path, dsm: Path) -> tuple[dict, dict, str, dict]:
    """A user, a project and a task completed on these COGs by the completion step's raster
    function (it finds them valid COGs and describes them into the task item)."""
    from chalice.test import Client

    from app import app
    from chalicelib import assets, aws, config, storage
    from chalicelib.rasters.completion import finish_rasters
    from chalicelib.store import tasks

    _, token = make_user("bench-tiles")
    headers = {"Authorization": f"JWT {token}", "Content-Type": "application/json"}
    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "tiles"})).json_body
        task = client.http.post(f"/api/projects/{project['id']}/tasks/", headers=headers,
                                body=json.dumps({"partial": True, "name": "bench orthophoto"})).json_body
    prefix = storage.task_prefix(task["id"])
    available = ["orthophoto.tif", "dsm.tif"]
    for path, asset in ((ortho, "orthophoto.tif"), (dsm, "dsm.tif")):
        aws.s3().upload_file(str(path), config.settings().bucket, assets.asset_key(prefix, asset))
    fields = finish_rasters(task["id"], available)
    fields.pop("size_delta")
    assert set(fields["rasters"]) == {"orthophoto", "dsm"}, fields
    tasks.mutate(project["id"], task["id"], lambda t: {
        **fields, "status": 40, "running_progress": 1.0, "available_assets": available})
    return project, task, token, {kind: raster["key"] for kind, raster in fields["rasters"].items()}


def titiler_app():
    """uvicorn --factory: TiTiler's COG endpoints reading /vsis3/ with Aloft's GDAL options."""
    from fastapi import FastAPI
    from titiler.core.factory import TilerFactory

    os.environ["AWS_ENDPOINT_URL"] = os.environ["BENCH_TILES_S3"]
    from chalicelib.rasters import gdal

    app = FastAPI()
    app.include_router(TilerFactory(environment_dependency=gdal.s3_options).router, prefix="/cog")
    return app


@contextlib.contextmanager
def _titiler(endpoint: str):
    port = _free_port()
    env = {**os.environ, "BENCH_TILES_S3": endpoint}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "benchmarks.bench_tiles:titiler_app",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                               "--workers", "1"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/docs", server)
        yield url
    finally:
        server.terminate()
        server.wait()


def _gateway():
    from aloft_local.gateway import LocalGateway

    server = LocalGateway("app:app", "127.0.0.1", 0)
    server.start_in_thread()
    return server, f"http://127.0.0.1:{server.port}"


# -- the tiles ------------------------------------------------------------------------------------

def _tile_set(cog: Path) -> list[tuple[int, int, int]]:
    """TILES_PER_KIND distinct tiles over zoom 14–20 inside the footprint: every tile of zoom
    14–17 (a map fitted to the orthophoto), the rest spread over 18, 19 and 20 (a user zooming
    in; zoom 18 has only ~10), shuffled as panning mixes them."""
    import morecantile
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(cog) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    # keep tiles whose centre is inside the footprint's inner ellipse
    cx, cy, rx, ry = (west + east) / 2, (south + north) / 2, (east - west) * 0.42, (north - south) * 0.40
    tms = morecantile.tms.get("WebMercatorQuad")

    def inside(tile) -> bool:
        b = tms.bounds(tile)
        x, y = (b.left + b.right) / 2, (b.bottom + b.top) / 2
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1 or tile.z <= 16

    by_zoom = {z: [t for t in tms.tiles(west, south, east, north, [z]) if inside(t)] for z in ZOOMS}
    rng = random.Random(20)
    chosen = [t for z in range(14, 18) for t in by_zoom[z]]
    for index, z in enumerate((18, 19, 20)):  # what a zoom lacks, the next one gives
        share = -(-(TILES_PER_KIND - len(chosen)) // (3 - index))
        chosen += rng.sample(by_zoom[z], min(share, len(by_zoom[z])))
    rng.shuffle(chosen)
    return [(t.z, t.x, t.y) for t in chosen]


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def _timed_get(session, url: str, params: dict | None = None, **kw) -> tuple[float, object]:
    started = time.perf_counter()
    reply = session.get(url, params=params, timeout=60, **kw)
    return time.perf_counter() - started, reply


def _compare(aloft_base: str | None, token: str | None, titiler: str, endpoint: str, bucket: str, keys: dict,
             tiles: list[tuple[int, int, int]]) -> None:
    import requests

    def s3_counts() -> dict:
        return requests.get(endpoint + RangeReads.STATS, timeout=10).json()

    reads = {}
    aloft = requests.Session()
    if token:
        aloft.headers["Authorization"] = f"JWT {token}"
    anchor = requests.Session()
    kinds = {"orthophoto": (keys["orthophoto"], {}, {}), "dsm": (keys["dsm"], ALOFT_DSM_QUERY, TITILER_DSM_QUERY)}
    results = {(kind, server): [] for kind in kinds for server in ("aloft", "titiler")}
    formats = {(kind, server): set() for kind in kinds for server in ("aloft", "titiler")}
    for kind, (key, aloft_query, titiler_query) in kinds.items():
        titiler_params = {"url": f"/vsis3/{bucket}/{key}", **titiler_query}
        first = tiles[0]
        # warm both (the gateway's container, GDAL's header cache): not counted
        for _ in range(2):
            anchor.get(f"{titiler}/cog/tiles/WebMercatorQuad/{first[0]}/{first[1]}/{first[2]}", params=titiler_params)
            if aloft_base:
                aloft.get(f"{aloft_base}/{kind}/tiles/{first[0]}/{first[1]}/{first[2]}", params=aloft_query)
        for index, (z, x, y) in enumerate(tiles):
            calls = [("titiler", anchor, f"{titiler}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}", titiler_params)]
            if aloft_base:
                calls.append(("aloft", aloft, f"{aloft_base}/{kind}/tiles/{z}/{x}/{y}", aloft_query))
            if index % 2:
                calls.reverse()  # neither server always goes first
            for server, session, url, params in calls:
                before = s3_counts()
                seconds, reply = _timed_get(session, url, params)
                if reply.status_code != 200:
                    raise RuntimeError(f"{server} {url}: {reply.status_code} {reply.text[:300]}")
                results[kind, server].append(seconds)
                after = s3_counts()
                total = reads.setdefault((kind, server), dict.fromkeys(after, 0))
                for name in total:
                    total[name] += after[name] - before[name] - (1 if name == "other" else 0)
                formats[kind, server].add(reply.headers.get("Content-Type"))
    print(f"{len(tiles)} tiles per raster (zoom {min(t[0] for t in tiles)}–{max(t[0] for t in tiles)}), "
          "sequential, keep-alive, in turns; milliseconds per tile:")
    for kind in kinds:
        for scope in (kind,):
            titiler_p50, titiler_p95 = _percentiles(results[scope, "titiler"])
            line = f"  {scope:<11} TiTiler p50 {titiler_p50:6.1f} p95 {titiler_p95:6.1f}"
            if aloft_base:
                aloft_p50, aloft_p95 = _percentiles(results[scope, "aloft"])
                line += (f" | Aloft p50 {aloft_p50:6.1f} p95 {aloft_p95:6.1f} | Aloft/TiTiler p50 "
                         f"{aloft_p50 / titiler_p50:.2f}× p95 {aloft_p95 / titiler_p95:.2f}×")
            print(line + f"  ({', '.join(sorted(filter(None, formats[kind, 'titiler'])))} / "
                  f"{', '.join(sorted(filter(None, formats[kind, 'aloft']))) or '-'})")
            for server in ("titiler", "aloft"):
                if (kind, server) in reads:
                    count = reads[kind, server]
                    print(f"    {server}: per tile {count['ranged'] / len(tiles):.1f} ranged S3 GETs "
                          f"({count['ranged_bytes'] / len(tiles) / 1024:.0f} KiB), "
                          f"{count['other'] / len(tiles):.2f} other S3 requests, "
                          f"{count['dynamodb'] / len(tiles):.2f} DynamoDB requests")
    every_titiler = results["orthophoto", "titiler"] + results["dsm", "titiler"]
    titiler_p50, titiler_p95 = _percentiles(every_titiler)
    line = f"  {f'all {len(every_titiler)}':<11} TiTiler p50 {titiler_p50:6.1f} p95 {titiler_p95:6.1f}"
    if aloft_base:
        aloft_p50, aloft_p95 = _percentiles(results["orthophoto", "aloft"] + results["dsm", "aloft"])
        line += (f" | Aloft p50 {aloft_p50:6.1f} p95 {aloft_p95:6.1f} | Aloft/TiTiler p50 "
                 f"{aloft_p50 / titiler_p50:.2f}× p95 {aloft_p95 / titiler_p95:.2f}× (goal ≤ 1.2×)")
    print(line)
    print("  p50 per zoom (tiles per zoom: " + ", ".join(
        f"z{z} {sum(1 for t in tiles if t[0] == z)}" for z in ZOOMS) + "):")
    for kind in kinds:
        for server in ("titiler", "aloft") if aloft_base else ("titiler",):
            by_zoom = {z: [s for t, s in zip(tiles, results[kind, server]) if t[0] == z] for z in ZOOMS}
            print(f"    {kind:<10} {server:<7} " + " ".join(
                f"z{z} {statistics.median(v) * 1000:5.0f}" for z, v in by_zoom.items() if v))


def _floors(session_url: str | None, token: str | None, endpoint: str, bucket: str, key: str) -> None:
    """What a tile pays besides rendering: one 64 KB ranged S3 read, a JSON route through the
    gateway (event, container pipe, the app's middleware)."""
    import requests

    def p50(url, **kw) -> float:
        session = requests.Session()
        for _ in range(3):
            session.get(url, **kw)
        times = [_timed_get(session, url, **kw)[0] for _ in range(30)]
        return statistics.median(times) * 1000

    parts = [f"S3 ranged GET of 64 KB {p50(f'{endpoint}/{bucket}/{key}', headers={'Range': 'bytes=0-65535'}):.1f} ms"]
    if session_url:
        parts.append(f"Aloft GET /api/projects/ through the gateway "
                     f"{p50(session_url + '/api/projects/', headers={'Authorization': f'JWT {token}'}):.1f} ms")
    print("floors (p50): " + ", ".join(p for p in parts if p))


def _first_tile_after_cold_start(token: str, path: str, tile: tuple[int, int, int]) -> None:
    """A new gateway: its first request starts a container (process start, import app, the
    route's raster imports, GDAL's first open of the COG over S3)."""
    import requests

    times = []
    for _ in range(3):
        server, url = _gateway()
        started = time.perf_counter()
        reply = requests.get(f"{url}{path}/orthophoto/tiles/{tile[0]}/{tile[1]}/{tile[2]}",
                             headers={"Authorization": f"JWT {token}"}, timeout=60)
        times.append(time.perf_counter() - started)
        server.close()
        if reply.status_code != 200:
            raise RuntimeError(f"{reply.status_code} {reply.text[:300]}")
    print(f"first tile after a cold start (new container: process start to the tile's last byte): "
          f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms (3 runs)")


def _raster_imports() -> None:
    """What the first raster request of a container adds to its cold start: the raster stack's
    imports in a fresh interpreter (bytecode cache warm), beyond `import app, boto3` (any
    request's first DynamoDB read loads boto3 anyway, and rasterio imports it too)."""
    def median_ms(code: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=120)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    interpreter = median_ms("pass")
    app = median_ms("import app, boto3")
    stack = median_ms("import app, boto3, numpy, rasterio, rio_tiler.io, morecantile, PIL.Image")
    print(f"fresh interpreter (median of 5): `pass` {interpreter:.0f} ms, `import app, boto3` {app:.0f} ms, "
          f"+ numpy, rasterio, rio_tiler, morecantile, Pillow {stack:.0f} ms (the raster imports: "
          f"{stack - app:.0f} ms, paid by a container's first raster request only)")


def _thumbnail(url: str, token: str, path: str) -> None:
    """The task thumbnail (a square of the whole orthophoto read from its overviews), warm
    container: the default 256 px and the largest, 1024 px."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"JWT {token}"
    first = session.get(f"{url}{path}/thumbnail")
    if first.status_code == 404 and not first.headers.get("Content-Type", "").startswith("image/"):
        print("task thumbnail: no route yet")
        return
    if first.status_code != 200:
        raise RuntimeError(f"thumbnail: {first.status_code} {first.text[:300]}")
    parts = []
    for size in (256, 1024):
        times = [_timed_get(session, f"{url}{path}/thumbnail", {"size": size})[0] for _ in range(5)]
        parts.append(f"{size} px p50 {statistics.median(times) * 1000:.0f} ms (max {max(times) * 1000:.0f})")
    print(f"task thumbnail (GET .../thumbnail, {first.headers.get('Content-Type')}, warm container, 5 runs): "
          + ", ".join(parts))


def package_size() -> None:
    """`make package`'s zip: bytes, unzipped bytes against Lambda's 250 MB, the largest packages."""
    import collections
    import zipfile

    with tempfile.TemporaryDirectory() as out:
        chalice = Path(sys.executable).with_name("chalice")
        subprocess.run([str(chalice), "package", "--merge-template", "infra/resources.json", "--stage", "prod",
                        out + "/build"], cwd=ROOT, check=True, capture_output=True, timeout=900,
                       env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
        archive = Path(out) / "build" / "deployment.zip"
        infos = zipfile.ZipFile(archive).infolist()
        zipped = archive.stat().st_size
    unzipped = sum(i.file_size for i in infos)
    per_package = collections.Counter()
    for info in infos:
        top = info.filename.split("/")[0]
        top = re.sub(r"(\.libs|-[\w.]+\.dist-info)$", "", top).lower()
        top = {"pil": "pillow"}.get(top, top)
        per_package[top] += info.file_size
    print(f"deployment.zip: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped = "
          f"{unzipped / 262_144_000:.0%} of Lambda's 250 MB (262,144,000 bytes), "
          f"margin {(262_144_000 - unzipped) / 1e6:.1f} MB")
    print("  largest (with their .libs): " + ", ".join(
        f"{name} {size / 1e6:.1f}" for name, size in per_package.most_common(8)) + " MB")


def main() -> None:
    print("== Map tiles: Aloft beside TiTiler on the same COGs in the same S3 ==")
    package_size()
    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as folder:
        folder = Path(folder)
        started = time.perf_counter()
        write_orthophoto(folder / "ortho_odm.tif")
        write_dsm(folder / "dsm_odm.tif")
        print(f"synthetic rasters ({SIZE:,} × {SIZE:,}, {PIXEL * 100:.0f} cm, {CRS}) written in "
              f"{time.perf_counter() - started:.0f} s: orthophoto RGBA {(folder / 'ortho_odm.tif').stat().st_size / 1e6:.0f} MB, "
              f"DSM float32 {(folder / 'dsm_odm.tif').stat().st_size / 1e6:.0f} MB (deflate, no overviews)")
        for name in ("ortho", "dsm"):
            done = convert(folder / f"{name}_odm.tif", folder / f"{name}_cog.tif")
            assert done["converted"]
            print(f"COG conversion, {'orthophoto' if name == 'ortho' else 'DSM'} (cog.ensure_cog, rio-cogeo): "
                  f"{done['seconds']:.1f} s, peak RSS {done['peak_mb']:.0f} MB "
                  f"(GDAL_CACHEMAX {WORKER_MEMORY_MB * 5 // 100} MB), COG {(folder / f'{name}_cog.tif').stat().st_size / 1e6:.0f} MB")
        tiles = _tile_set(folder / "ortho_cog.tif")
        with _aloft_on_s3_server() as endpoint:
            from chalicelib import config

            project, task, token, keys = _completed_task(folder / "ortho_cog.tif", folder / "dsm_cog.tif")
            bucket = config.settings().bucket
            path = f"/api/projects/{project['id']}/tasks/{task['id']}"
            server, url = _gateway()
            import requests

            probe = requests.get(f"{url}{path}/orthophoto/tiles.json", headers={"Authorization": f"JWT {token}"})
            aloft_base = f"{url}{path}" if probe.status_code == 200 else None
            if aloft_base is None:
                print(f"Aloft: no tile routes yet ({probe.status_code} on tiles.json): TiTiler only")
            with _titiler(endpoint) as titiler:
                _floors(url if aloft_base else None, token, endpoint, bucket, keys["orthophoto"])
                _compare(aloft_base, token, titiler, endpoint, bucket, keys, tiles)
            if aloft_base:
                _thumbnail(url, token, path)
            server.close()
            if aloft_base:
                _first_tile_after_cold_start(token, path, tiles[0])
    _raster_imports()


if __name__ == "__main__":
    if sys.argv[1:2] == ["s3"]:
        _serve_s3(int(sys.argv[2]))
    else:
        main()
