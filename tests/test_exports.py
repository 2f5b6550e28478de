"""Exports and their jobs (WebODM's `test_api_export.py::test_exports`, `test_worker.py::
test_workers_api` and the export lines of `test_api_task.py::test_task`): WebODM's formats,
parameters, validation messages and file names; the synchronous shortcut; jobs run by the
`worker` function from the work queue end to end, read back through `workers/check` and
`workers/get`, each file opened and checked; a duplicated message; jobs of tasks one may not
read; a removed task's exports.

The worker reads the COGs from S3 through GDAL, so these tests run against the moto server
(`live`); routes are called through the Chalice test client or the local gateway."""
from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests import rasters
from tests.helpers import new_project, s3_keys
from tests.test_pictures import completed_task, jpeg, task_with_images

PROJ = "+proj=tmerc +lat_0=0 +lon_0=-93 +k=0.9996 +x_0=500000 +y_0=0 +datum=WGS84 +units=us-ft +no_defs"
LAZ_MEMBER = "odm_georeferencing/odm_georeferenced_model.laz"
POINTS = 5000


# ------------------------------------------------------------------ test data

def laz_bytes(points: int = POINTS, epsg: int | None = rasters.EPSG) -> bytes:
    """A small LAZ point cloud over the test rasters (UTM 15N), with colours."""
    import laspy
    import numpy as np
    from pyproj import CRS, Transformer

    x0, y0 = Transformer.from_crs("EPSG:4326", f"EPSG:{rasters.EPSG}", always_xy=True).transform(
        rasters.LON, rasters.LAT)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = [0.001, 0.001, 0.001]
    header.offsets = [round(x0), round(y0), 0]
    if epsg:
        header.add_crs(CRS.from_epsg(epsg))
    cloud = laspy.LasData(header)
    rng = np.random.default_rng(3)
    width, height = rasters.SIZE[0] * rasters.PIXEL, rasters.SIZE[1] * rasters.PIXEL
    cloud.x = x0 + rng.random(points) * width
    cloud.y = y0 - rng.random(points) * height
    cloud.z = rasters.DEM_MIN + rng.random(points) * (rasters.DEM_MAX - rasters.DEM_MIN)
    cloud.red = rng.integers(0, 65535, points, dtype="uint16")
    cloud.green = rng.integers(0, 65535, points, dtype="uint16")
    cloud.blue = rng.integers(0, 65535, points, dtype="uint16")
    cloud.intensity = rng.integers(0, 1000, points, dtype="uint16")
    out = io.BytesIO()
    cloud.write(out, do_compress=True)
    return out.getvalue()


def with_point_cloud(zip_bytes: bytes, laz: bytes | None) -> bytes:
    """The all.zip with a real LAZ point cloud (or none)."""
    source = zipfile.ZipFile(io.BytesIO(zip_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for info in source.infolist():
            if info.filename != LAZ_MEMBER:
                zf.writestr(info, source.read(info))
        if laz is not None:
            zf.writestr(zipfile.ZipInfo(LAZ_MEMBER, date_time=(2026, 1, 1, 0, 0, 0)), laz)
    return out.getvalue()


@pytest.fixture
def project(api, alice):
    return new_project(api, alice)


@pytest.fixture
def done(live, api, alice, project):
    return completed_task(api, alice, project, with_point_cloud(rasters.raster_zip(), laz_bytes()))


def base(task: dict) -> str:
    return f"/api/projects/{task.get('project_id', task.get('project'))}/tasks/{task['id']}/"


def export(api, user, task, asset: str, body: dict, token: bool = True):
    return api.post(base(task) + f"{asset}/export", token=user["token"] if token else None, json=body)


def run_jobs(api) -> None:
    """Deliver the work queue's messages to the worker until it is empty."""
    while api.work():
        pass


def redirect_query(reply) -> dict:
    assert reply.status == 302, (reply.status, reply.body[:300])
    return {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["Location"]).query).items()}


def fetch_result(api, user, job_id: str, filename: str | None = None) -> tuple[bytes, dict]:
    """`workers/check` says ready, `workers/get` redirects to the file: its bytes and the
    presigned URL's response headers."""
    check = api.get(f"/api/workers/check/{job_id}", token=user["token"])
    assert check.status == 200 and check.json == {"ready": True}, check.json
    params = {"filename": filename} if filename else None
    reply = api.get(f"/api/workers/get/{job_id}", token=user["token"], params=params)
    query = redirect_query(reply)
    fetched = requests.get(reply.headers["Location"])
    assert fetched.status_code == 200
    return fetched.content, query


# ------------------------------------------------------------------ checking the files

def open_raster(data: bytes):
    from rasterio.io import MemoryFile

    return MemoryFile(data).open()


def check_tif(data: bytes, *, count: int, dtype: str, epsg: int | None = rasters.EPSG, crs_units: str | None = None):
    with open_raster(data) as src:
        assert src.driver == "GTiff" and src.count == count and src.dtypes[0] == dtype
        if epsg is not None:
            assert src.crs.to_epsg() == epsg
        if crs_units is not None:
            assert src.crs.linear_units.lower().startswith(crs_units)
        return src.read(), src.profile


def check_picture(data: bytes, fmt: str, mode: str):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == fmt and image.mode == mode
    return image


def check_kmz(data: bytes, name: str):
    archive = zipfile.ZipFile(io.BytesIO(data))
    doc = archive.read("doc.kml").decode()
    assert f"<name>{name}</name>" in doc and "<LatLonAltBox>" in doc
    tiles = [n for n in archive.namelist() if n.endswith((".jpg", ".png"))]
    assert tiles
    west = float(doc.split("<west>")[1].split("<")[0])
    assert abs(west - rasters.LON) < 0.01  # GDAL made it EPSG:4326


def read_cloud(data: bytes):
    import laspy

    return laspy.read(io.BytesIO(data))


def check_result(fmt: str, data: bytes, asset: str, body: dict) -> None:
    epsg = body.get("epsg")
    if fmt in ("laz", "las"):
        cloud = read_cloud(data)
        assert (data[:4] == b"LASF") and len(cloud.points) > 0
        if fmt == "laz":
            assert cloud.header.are_points_compressed
        crs = cloud.header.parse_crs()
        if epsg == 4326:
            assert crs.to_epsg() == 4326 and abs(float(cloud.x.min()) - rasters.LON) < 0.01
        elif "proj" in body:
            assert crs is not None and "us" in crs.axis_info[0].unit_name.lower()
        return
    if fmt == "ply":
        head, _, rest = data.partition(b"end_header\n")
        count = int(head.split(b"element vertex ")[1].split(b"\n")[0])
        assert b"format binary_little_endian 1.0" in head and len(rest) == count * (3 * 8 + 3 * 2)
        return
    if fmt == "csv":
        lines = data.decode().splitlines()
        assert lines[0].startswith('"X","Y","Z","Intensity"') and len(lines) > 1
        assert len(lines[1].split(",")) == len(lines[0].split(","))
        return
    if fmt == "kmz":
        check_kmz(data, "test task")
        return
    if fmt == "jpg":
        check_picture(data, "JPEG", "RGB")
        return
    if fmt == "png":
        check_picture(data, "PNG", "RGBA")
        return
    # GeoTIFFs
    target = epsg if epsg is not None else (None if "proj" in body else rasters.EPSG)
    units = "us" if "proj" in body and epsg is None else None
    if body.get("formula"):
        values, profile = check_tif(data, count=1, dtype="float32", epsg=target, crs_units=units)
        assert profile["nodata"] == -9999
    elif body.get("format") == "gtiff-rgb":
        check_tif(data, count=4, dtype="uint8", epsg=target, crs_units=units)
    elif asset == "orthophoto":
        check_tif(data, count=4, dtype="uint8", epsg=target, crs_units=units)
    else:
        values, profile = check_tif(data, count=1, dtype="float32", epsg=target, crs_units=units)
        assert profile["nodata"] == -9999
        inside = values[values != -9999]
        assert inside.size and rasters.DEM_MIN - 1 < inside.min() and inside.max() < rasters.DEM_MAX + 1


# ------------------------------------------------------------------ WebODM's tables

SHORTCUT, JOB = "shortcut", "job"
CASES = [
    # (asset, body, extension, result)
    ("orthophoto", {}, ".tif", SHORTCUT),
    ("orthophoto", {"format": "gtiff"}, ".tif", SHORTCUT),
    ("orthophoto", {"format": "gtiff-rgb", "rescale": "10,100"}, ".tif", JOB),
    ("orthophoto", {"format": "jpg", "epsg": 4326}, ".jpg", JOB),
    ("orthophoto", {"format": "jpg", "proj": PROJ}, ".jpg", JOB),
    ("orthophoto", {"format": "jpg", "epsg": 4326, "rescale": "10,200"}, ".jpg", JOB),
    ("orthophoto", {"format": "png"}, ".png", JOB),
    ("orthophoto", {"format": "kmz"}, ".kmz", JOB),
    ("orthophoto", {"bands": "RGN", "formula": "NDVI"}, "-NDVI.tif", JOB),
    ("dsm", {"format": "gtiff"}, ".tif", SHORTCUT),
    ("dsm", {"epsg": 4326}, ".tif", JOB),
    ("dsm", {"format": "jpg", "epsg": 4326}, ".jpg", JOB),
    ("dsm", {"format": "jpg", "proj": PROJ}, ".jpg", JOB),
    ("dsm", {"format": "jpg", "color_map": "jet", "hillshade": 0, "epsg": 3857}, ".jpg", JOB),
    ("dsm", {"format": "gtiff-rgb", "epsg": 4326}, ".tif", JOB),
    ("dsm", {"format": "kmz"}, ".kmz", JOB),
    ("dsm", {"color_map": "viridis", "hillshade": 2, "format": "png"}, ".png", JOB),
    ("dsm", {"rescale": "invalid-but-works-cuz-gtiff"}, ".tif", SHORTCUT),
    ("dtm", {"format": "gtiff"}, ".tif", SHORTCUT),
    ("dtm", {"epsg": 4326}, ".tif", JOB),
    ("dtm", {"proj": PROJ}, ".tif", JOB),
    ("georeferenced_model", {}, ".laz", SHORTCUT),
    ("georeferenced_model", {"format": "las"}, ".las", JOB),
    ("georeferenced_model", {"format": "ply"}, ".ply", JOB),
    ("georeferenced_model", {"format": "csv"}, ".csv", JOB),
    ("georeferenced_model", {"format": "las", "epsg": 4326}, ".las", JOB),
    ("georeferenced_model", {"format": "las", "proj": PROJ}, ".las", JOB),
]
INVALID = [
    ("orthophoto", {"format": "laz"}, "Unsupported format: laz"),
    ("orthophoto", {"formula": "NDVI"}, "Both formula and bands parameters are required"),
    ("orthophoto", {"bands": "RGN"}, "Both formula and bands parameters are required"),
    ("dsm", {"epsg": "invalid"}, "Invalid EPSG code: invalid"),
    ("dsm", {"format": "invalid"}, "Unsupported format: invalid"),
    ("dsm", {"hillshade": "invalid"}, "Invalid hillshade value: invalid"),
    ("dsm", {"color_map": "invalid"}, "Not a valid color_map value"),
    ("dsm", {"format": "gtiff-rgb", "rescale": "invalid"}, "Invalid rescale value: invalid"),
    ("dsm", {"format": "las"}, "Unsupported format: las"),
    ("georeferenced_model", {"format": "tif"}, "Unsupported format: tif"),
    # Beyond WebODM's table, in its order of checks.
    ("dsm", {"epsg": "999999"}, "Invalid EPSG code: 999999"),
    ("dsm", {"proj": "+proj=nothing"}, "Invalid PROJ string: +proj=nothing"),
    ("dsm", {"hillshade": "-1"}, "Invalid hillshade value: -1"),
    ("georeferenced_model", {"resample": "x"}, "Invalid resample value: x"),
    ("orthophoto", {"formula": "NOPE", "bands": "RGB"}, "Cannot find algorithm NOPE"),
    ("orthophoto", {"formula": "VARI", "bands": "RGN"},
     'Cannot find band "B" from "RGN". Choose a proper band order.'),
    ("orthophoto", {"format": "png", "rescale": "1,2,3"}, "Invalid rescale value: 1,2,3"),
]


@pytest.mark.parametrize("cropped", [False, True], ids=["whole", "cropped"])
def test_webodm_export_table(live, api, alice, done, cropped):
    """Every case of WebODM's `test_exports`, without and with a crop (no shortcut then)."""
    if cropped:
        west, south, east, north = done["extent"]
        inset = (east - west) / 5
        crop = {"type": "Polygon", "coordinates": [[[west + inset, south + inset], [east - inset, south + inset],
                                                    [east - inset, north - inset], [west + inset, north - inset],
                                                    [west + inset, south + inset]]]}
        assert api.patch(base(done), token=alice["token"], json={"crop": crop}).status == 200
    jobs = []
    for asset, body, extension, result in CASES:
        reply = export(api, alice, done, asset, body)
        assert reply.status == 200, (asset, body, reply.json)
        expected_name = f"test-task-{asset}{extension}"
        assert reply.json["filename"] == expected_name, (asset, body)
        if result == SHORTCUT and not cropped:
            assert set(reply.json) == {"url", "filename"}
            download = asset.replace("georeferenced_model", "georeferenced_model.laz").replace(
                "orthophoto", "orthophoto.tif").replace("dsm", "dsm.tif").replace("dtm", "dtm.tif")
            assert reply.json["url"] == base(done) + f"download/{download}"
            query = redirect_query(api.get(reply.json["url"], token=alice["token"],
                                           params={"filename": reply.json["filename"]}))
            assert query["response-content-disposition"].startswith("attachment")
        else:
            assert set(reply.json) == {"celery_task_id", "filename"}, (asset, body)
            jobs.append((asset, body, reply.json))
    pending = api.get(f"/api/workers/check/{jobs[0][2]['celery_task_id']}", token=alice["token"])
    assert pending.json == {"ready": False}
    run_jobs(api)
    for asset, body, answer in jobs:
        fmt = body.get("format") or ("laz" if asset == "georeferenced_model" else "gtiff")
        data, query = fetch_result(api, alice, answer["celery_task_id"], answer["filename"])
        assert query["response-content-disposition"] == f"attachment; filename={answer['filename']}"
        check_result(fmt, data, asset, body)


def test_export_validation_messages(api, alice, project, live):
    task = completed_task(api, alice, project, with_point_cloud(rasters.raster_zip(), laz_bytes()))
    for asset, body, message in INVALID:
        reply = export(api, alice, task, asset, body)
        assert reply.status == 400 and reply.json == [message], (asset, body, reply.json)
    # Form bodies as the web client sends them; an empty value counts as absent.
    reply = api.post(base(task) + "dsm/export", token=alice["token"], data={"format": "gtiff", "epsg": ""})
    assert reply.status == 200 and "url" in reply.json


def test_exports_before_processing_are_404(api, alice, project):
    task = task_with_images(api, alice, project, {"a.jpg": jpeg(), "b.jpg": jpeg()})
    for asset, body in (("orthophoto", {"formula": "NDVI", "bands": "RGN"}), ("dsm", {"epsg": 4326}),
                        ("dtm", {"epsg": 4326}), ("georeferenced_model", {"epsg": 4326}),
                        ("georeferenced_model", {"epsg": 4326, "resample": 2.5})):
        reply = export(api, alice, task, asset, body)
        assert reply.status == 404 and reply.json == {"detail": "Not found."}, (asset, body)
    # Parameters are checked first (400 before the 404).
    assert export(api, alice, task, "dsm", {"format": "las"}).status == 400


def test_ndvi_export_and_workers_get(live, api, alice, done):
    """`test_api_task`: NDVI over RGN -> a job; `workers/get?filename=` names the download."""
    reply = export(api, alice, done, "orthophoto", {"formula": "NDVI", "bands": "RGN"})
    job = reply.json["celery_task_id"]
    assert reply.json["filename"] == "test-task-orthophoto-NDVI.tif"
    run_jobs(api)
    data, query = fetch_result(api, alice, job, "odm_orthophoto_NDVI.tif")
    assert query["response-content-disposition"] == "attachment; filename=odm_orthophoto_NDVI.tif"
    assert query["response-content-type"] == "image/tiff"
    values, profile = check_tif(data, count=1, dtype="float32")
    assert (profile["width"], profile["height"]) == rasters.SIZE
    import numpy as np

    red, _, blue = rasters.QUADRANT_COLOURS[2]  # bottom left: NDVI over R,G,N = (N-R)/(N+R) with N = blue
    assert np.isclose(values[0, 150, 50], (blue - red) / (blue + red), atol=1e-4)
    assert values[0, 0, 0] == -9999  # the transparent border
    # Without `filename`, the export's own name.
    _, query = fetch_result(api, alice, job)
    assert query["response-content-disposition"] == "attachment; filename=test-task-orthophoto-NDVI.tif"


def test_picture_exports_hold_the_right_pixels(live, api, alice, done):
    """PNG: the quadrant colours with alpha, transparent border; JPEG: white border; DSM PNG:
    coloured and hillshaded, transparent where there is no data; resampled point cloud."""
    answers = {name: export(api, alice, done, asset, body).json for name, asset, body in (
        ("png", "orthophoto", {"format": "png"}), ("jpg", "orthophoto", {"format": "jpg"}),
        ("dem", "dsm", {"format": "png", "color_map": "jet", "hillshade": 3}),
        ("thin", "georeferenced_model", {"format": "las", "resample": 10}))}
    run_jobs(api)
    png = check_picture(fetch_result(api, alice, answers["png"]["celery_task_id"])[0], "PNG", "RGBA")
    assert png.size == rasters.SIZE
    # No `rescale`: WebODM stretches every band by band 1's range (30..240 here, red 220 -> 230).
    low, high = 30, 240
    expected = tuple(int((v - low) * 255 / (high - low)) if v > low else 0 for v in rasters.QUADRANT_COLOURS[0])
    assert png.getpixel((50, 50)) == (*expected, 255)
    assert png.getpixel((5, 5))[3] == 0
    jpg = check_picture(fetch_result(api, alice, answers["jpg"]["celery_task_id"])[0], "JPEG", "RGB")
    assert min(jpg.getpixel((3, 3))) > 245  # no data is white
    dem = check_picture(fetch_result(api, alice, answers["dem"]["celery_task_id"])[0], "PNG", "RGBA")
    assert dem.getpixel((5, 5))[3] == 0 and dem.getpixel((110, 100))[3] == 255
    assert dem.getpixel((30, 30))[:3] != dem.getpixel((190, 170))[:3]  # low and high elevations differ
    thin = read_cloud(fetch_result(api, alice, answers["thin"]["celery_task_id"])[0])
    # 66 x 60 x 8 m thinned with 10 m cubes: at most 8 x 8 x 2 cubes, one point each.
    import numpy as np

    cubes = {tuple(c) for c in np.floor(np.stack([thin.x, thin.y, thin.z], axis=1) / 10).astype(int)}
    assert 40 <= len(thin.points) <= 128 and len(cubes) == len(thin.points)


def test_workers_with_unknown_ids(api, alice):
    assert api.get("/api/workers/check/bogus").json == {"ready": False}
    assert api.get("/api/workers/get/bogus").json == {"error": "Task not ready"}
    assert api.get("/api/workers/check/bogus", token=alice["token"]).json == {"ready": False}


def test_a_job_is_only_visible_to_readers_of_its_task(live, api, alice, bob, done):
    job = export(api, alice, done, "dsm", {"epsg": 4326}).json["celery_task_id"]
    run_jobs(api)
    assert api.get(f"/api/workers/check/{job}", token=alice["token"]).json == {"ready": True}
    for token in (bob["token"], None):
        assert api.get(f"/api/workers/check/{job}", token=token).json == {"ready": False}
        assert api.get(f"/api/workers/get/{job}", token=token).json == {"error": "Task not ready"}
        assert export(api, bob, done, "dsm", {"epsg": 4326}, token=token is not None).status == 404
    assert api.patch(base(done), token=alice["token"], json={"public": True}).status == 200
    assert api.get(f"/api/workers/check/{job}").json == {"ready": True}
    assert api.get(f"/api/workers/get/{job}").status == 302
    # Anyone may export a public task, as in WebODM.
    reply = export(api, bob, done, "dtm", {"epsg": 4326}, token=False)
    assert reply.status == 200 and "celery_task_id" in reply.json


def test_a_duplicated_message_makes_one_result(live, api, alice, done):
    from chalicelib import aws, queue

    job = export(api, alice, done, "orthophoto", {"format": "png"}).json["celery_task_id"]
    body = json.dumps({"kind": "export", "job": job})
    for _ in range(2):  # SQS delivers at least once: the same message twice more
        aws.client("sqs").send_message(QueueUrl=queue.queue_url(), MessageBody=body)
    run_jobs(api)
    keys = s3_keys(f"tasks/{done['id']}/exports/")
    assert keys == [f"tasks/{done['id']}/exports/{job}/test-task-orthophoto.png"]
    first = aws.s3().head_object(Bucket=_bucket(), Key=keys[0])["LastModified"]
    aws.client("sqs").send_message(QueueUrl=queue.queue_url(), MessageBody=body)
    run_jobs(api)
    assert aws.s3().head_object(Bucket=_bucket(), Key=keys[0])["LastModified"] == first
    assert api.get(f"/api/workers/check/{job}", token=alice["token"]).json == {"ready": True}
    tagging = aws.s3().get_object_tagging(Bucket=_bucket(), Key=keys[0])["TagSet"]
    assert {"Key": "aloft-export", "Value": "1"} in tagging


def _bucket() -> str:
    from chalicelib import config

    return config.settings().bucket


def test_a_failed_export_reports_its_error(live, api, alice, done):
    from chalicelib import aws

    job = export(api, alice, done, "dtm", {"epsg": 4326}).json["celery_task_id"]
    aws.s3().delete_object(Bucket=_bucket(), Key=f"tasks/{done['id']}/assets/odm_dem/dtm.tif")
    run_jobs(api)
    check = api.get(f"/api/workers/check/{job}", token=alice["token"]).json
    assert check["ready"] is True and check["error"]
    assert api.get(f"/api/workers/get/{job}", token=alice["token"]).json == \
        {"error": "Invalid task output (cannot find valid key)"}


def test_removing_the_task_removes_its_exports(live, api, alice, done):
    job = export(api, alice, done, "orthophoto", {"format": "png"}).json["celery_task_id"]
    run_jobs(api)
    assert s3_keys(f"tasks/{done['id']}/exports/")
    assert api.delete(base(done), token=alice["token"]).status == 204
    run_jobs(api)
    assert s3_keys(f"tasks/{done['id']}/") == []
    assert api.get(f"/api/workers/check/{job}", token=alice["token"]).json == {"ready": False}


def test_epsg_needs_a_georeferenced_dataset(live, api, alice, project):
    """A task with only a point cloud without a CRS has neither `epsg` nor `wkt`."""
    zip_bytes = with_point_cloud(rasters.raster_zip(orthophoto=None, dsm=None, dtm=None), laz_bytes(epsg=None))
    task = completed_task(api, alice, project, zip_bytes)
    assert task["epsg"] is None and task["wkt"] is None
    reply = export(api, alice, task, "georeferenced_model", {"format": "las", "epsg": 4326})
    assert reply.status == 400 and reply.json == ["Cannot use epsg on non-georeferenced dataset"]
    reply = export(api, alice, task, "georeferenced_model", {"format": "ply"})
    assert reply.status == 200
    run_jobs(api)
    data, _ = fetch_result(api, alice, reply.json["celery_task_id"])
    check_result("ply", data, "georeferenced_model", {})


def test_export_through_the_gateway(live, api, alice, done):
    """The web client's flow over HTTP: a form POST, polling `check`, then `get` followed."""
    auth = {"Authorization": f"JWT {alice['token']}"}
    reply = requests.post(live + base(done) + "orthophoto/export", data={"format": "gtiff-rgb", "epsg": "3857"},
                          headers=auth)
    assert reply.status_code == 200, reply.text
    job = reply.json()["celery_task_id"]
    assert requests.get(f"{live}/api/workers/check/{job}", headers=auth).json() == {"ready": False}
    run_jobs(api)
    assert requests.get(f"{live}/api/workers/check/{job}", headers=auth).json() == {"ready": True}
    fetched = requests.get(f"{live}/api/workers/get/{job}", params={"filename": "ortho.tif", "jwt": alice["token"]})
    assert fetched.status_code == 200 and fetched.history[0].status_code == 302
    assert fetched.headers["Content-Disposition"] == "attachment; filename=ortho.tif"
    check_tif(fetched.content, count=4, dtype="uint8", epsg=3857)
