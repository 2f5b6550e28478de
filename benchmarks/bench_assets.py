"""Completion step on a ~100 MB all.zip: time, S3 requests and memory of extract_assets.

    python -m benchmarks.bench_assets [--size-mb 100] [--workers 8] [--no-isolated]

The all.zip is synthesized member by member into a temporary file (NodeODM's layout and
realistic sizes: big rasters and point cloud, a textured model, thousands of tiles;
deflate level 1 as NodeODM's archiver), then uploaded to moto S3.

Two runs of the same extraction:
1. in-process moto (`mock_aws`): wall time and S3 requests. Its memory figures include
   moto itself, which materialises the whole object for every ranged GET and keeps
   small objects in memory.
2. isolated: moto in a child process (`python -m moto.server`) reached over HTTP, so
   tracemalloc and max RSS measure only Aloft's code (plus boto3).
Each run does extract_assets twice on separate task prefixes: once untraced (wall time,
max RSS delta) and once under tracemalloc (peak Python memory).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MB = 1_000_000
MiB = 1024 * 1024
BUCKET = "aloft-bench-assets"


# -- a realistic all.zip ------------------------------------------------------------------

def _layout(scale: float) -> list[tuple[str, int, str]]:
    """(member, size, kind) with kind "random" (already compressed data) or "text"."""
    s = lambda n: max(1, int(n * scale))  # noqa: E731
    members = [
        ("odm_orthophoto/odm_orthophoto.tif", s(30 * MB), "random"),
        ("odm_orthophoto/odm_orthophoto.tfw", 120, "text"),
        ("odm_orthophoto/odm_orthophoto.png", s(6 * MB), "random"),
        ("odm_orthophoto/odm_orthophoto.mbtiles", s(5 * MB), "random"),
        ("odm_orthophoto/odm_orthophoto.kmz", s(2 * MB), "random"),
        ("odm_orthophoto/cutline.gpkg", s(200_000), "random"),
        ("odm_dem/dsm.tif", s(8 * MB), "random"),
        ("odm_dem/dtm.tif", s(8 * MB), "random"),
        ("odm_georeferencing/odm_georeferenced_model.laz", s(12 * MB), "random"),
        ("odm_georeferencing/ground_control_points.geojson", 3000, "text"),
        ("odm_texturing/odm_textured_model_geo.obj", s(6 * MB), "text"),
        ("odm_texturing/odm_textured_model_geo.mtl", 2000, "text"),
        ("odm_texturing/odm_textured_model_geo.glb", s(5 * MB), "random"),
        ("odm_report/report.pdf", s(1 * MB), "random"),
        ("odm_report/shots.geojson", s(200_000), "text"),
        ("odm_report/stats.json", 0, "stats"),
        ("images.json", s(150_000), "text"),
        ("cameras.json", 800, "text"),
        ("task_output.txt", s(300_000), "text"),
        ("log.json", s(50_000), "text"),
    ]
    members += [(f"odm_texturing/odm_textured_model_geo_material{i:04d}_map_Kd.png",
                 s(2 * MB), "random") for i in range(4)]
    rng = random.Random(42)
    for folder, count, mean in (("orthophoto_tiles", 1200, 8000), ("dsm_tiles", 300, 4000),
                                ("dtm_tiles", 300, 4000)):
        for i in range(max(1, int(count * scale))):
            z = 14 + i % 8
            members.append((f"{folder}/{z}/{i // 32}/{i % 32}.png",
                            int(rng.uniform(0.3, 1.7) * mean), "random"))
    for kind, count in (("model", 50), ("pointcloud", 50)):
        members.append((f"3d_tiles/{kind}/tileset.json", 4000, "text"))
        members += [(f"3d_tiles/{kind}/{i // 10}/{i}.{'glb' if kind == 'model' else 'pnts'}",
                     s(40_000), "random") for i in range(max(1, int(count * scale)))]
    members.append(("entwine_pointcloud/ept.json", 1500, "text"))
    members += [(f"entwine_pointcloud/ept-data/{i // 4}-{i % 4}-0-0.laz", s(10_000), "random")
                for i in range(max(1, int(400 * scale)))]
    return members


STATS = (b'{"point_cloud_statistics": {"dense": true, "stats": {"statistic": [{"count": 9876543}]}},'
         b' "odm_processing_statistics": {"average_gsd": 2.1},'
         b' "processing_statistics": {"area": 51234.5, "start_date": "01/01/2026 10:00:00",'
         b' "end_date": "01/01/2026 10:30:00"},'
         b' "reconstruction_statistics": {"has_gps": true, "has_gcp": false}}')


def _write_member(zf: zipfile.ZipFile, name: str, size: int, kind: str, rng: random.Random):
    with zf.open(name, "w", force_zip64=size > 2**31) as dst:
        if kind == "stats":
            dst.write(STATS)
            return
        left = size
        while left:
            n = min(left, 4 * MiB)
            if kind == "random":
                dst.write(rng.randbytes(n))
            else:
                line = b"v %.6f %.6f %.6f\n" % (rng.random(), rng.random(), rng.random())
                dst.write((line * (n // len(line) + 1))[:n])
            left -= n


def build_zip(path: Path, target_mb: float) -> int:
    total = sum(size for _, size, _ in _layout(1.0))
    layout = _layout(target_mb * MB / total)
    rng = random.Random(7)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, size, kind in layout:
            _write_member(zf, name, size, kind, rng)
    return len(layout)


# -- S3 plumbing ------------------------------------------------------------------------------------

class S3Counter:
    def __init__(self):
        self.calls: collections.Counter = collections.Counter()

    def __call__(self, model=None, **_):
        self.calls[model.name] += 1

    def reset(self):
        self.calls.clear()

    def describe(self) -> str:
        return ", ".join(f"{op} {n}" for op, n in sorted(self.calls.items()))


def _client(endpoint: str | None):
    import boto3
    from botocore.config import Config

    cfg = Config(max_pool_connections=32, retries={"max_attempts": 4, "mode": "standard"},
                 s3={"addressing_style": "path"})
    return boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, config=cfg)


@contextlib.contextmanager
def in_process_s3():
    from moto import mock_aws

    with mock_aws():
        yield _client(None)


@contextlib.contextmanager
def isolated_s3():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.1)
        yield _client(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


@contextlib.contextmanager
def rss_delta():
    """Yields a dict filled with the rise of the process's peak RSS over the block (MiB).

    On Linux the peak (VmHWM) is reset first through /proc/self/clear_refs, so earlier
    work in this process does not hide the figure; elsewhere ru_maxrss is used.
    """
    out: dict = {}
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    before = _status_mib("VmRSS") if reset else None
    if before is None:
        reset, before = False, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    yield out
    after = _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["mib"] = max(0.0, after - before)


def _use_fake_credentials() -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)


def run(label: str, s3_factory, zip_path: Path, members: int, workers: int) -> None:
    from chalicelib.assets import extract_assets

    _use_fake_credentials()

    with s3_factory() as s3:
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(zip_path), BUCKET, "tasks/timed/all.zip")
        s3.copy_object(Bucket=BUCKET, Key="tasks/traced/all.zip",
                       CopySource={"Bucket": BUCKET, "Key": "tasks/timed/all.zip"})
        counter = S3Counter()
        s3.meta.events.register("before-call.s3.*", counter)

        with rss_delta() as rss:
            started = time.perf_counter()
            result = extract_assets(s3, BUCKET, "tasks/timed/", max_workers=workers)
            wall = time.perf_counter() - started
        requests = sum(counter.calls.values())
        described = counter.describe()

        tracemalloc.start()
        extract_assets(s3, BUCKET, "tasks/traced/", max_workers=workers)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    print(f"[{label}]")
    print(f"  all.zip size          : {zip_path.stat().st_size / MB:.1f} MB")
    print(f"  members               : {members} ({result.files} files extracted, "
          f"{len(result.available_assets)} assets available)")
    print(f"  size_bytes            : {result.size_bytes / MB:.1f} MB")
    print(f"  wall time             : {wall:.2f} s")
    print(f"  S3 requests           : {requests} ({described})")
    print(f"  tracemalloc peak      : {peak / MiB:.1f} MiB")
    print(f"  max RSS delta         : {rss['mib']:.1f} MiB", flush=True)


MODES = {
    "inprocess": ("in-process moto (mock_aws)", in_process_s3),
    "isolated": ("moto in a child process (memory = Aloft only)", isolated_s3),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-isolated", action="store_true",
                        help="skip the run against an out-of-process moto server")
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--zip", help=argparse.SUPPRESS)
    parser.add_argument("--members", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])

    if args.child:  # one measured run, in a fresh process so RSS figures are its own
        label, factory = MODES[args.child]
        run(label, factory, Path(args.zip), args.members, args.workers)
        return

    print("== extract_assets on a NodeODM-like all.zip ==", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "all.zip"
        started = time.perf_counter()
        members = build_zip(zip_path, args.size_mb)
        print(f"(built {zip_path.stat().st_size / MB:.1f} MB all.zip with {members} members "
              f"in {time.perf_counter() - started:.1f} s)", flush=True)
        modes = ["inprocess"] + ([] if args.no_isolated else ["isolated"])
        for mode in modes:
            subprocess.run([sys.executable, "-m", "benchmarks.bench_assets", "--child", mode,
                            "--zip", str(zip_path), "--members", str(members),
                            "--workers", str(args.workers)], cwd=ROOT, check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
