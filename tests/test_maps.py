"""The map routes through the real gateway: tiles.json, bounds, metadata and tiles of a
completed task's orthophoto, DSM and DTM (WebODM's `test_api_task.py::test_task` rows of
the map routes), the tiles decoded with Pillow.

One stack for the module: its own moto server (other modules reset the shared one), one
gateway, a task completed through the public flow with tests/rasters.py's small UTM rasters.
Every request goes over HTTP, through API Gateway's binary rule.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
import time
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import requests

from tests import rasters
from tests.conftest import ROOT, free_port, make_user, moto_server_environment, running_gateway, token_for
from tests.helpers import complete_in_s3, image_files

TYPES = ("orthophoto", "dsm", "dtm")
BROWSER_ACCEPT = "image/avif,image/webp,*/*"
RED = rasters.QUADRANT_COLOURS[0]


# ------------------------------------------------------------------ the stack

@pytest.fixture(scope="module")
def moto_url():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "aloft_local.motoserver", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _completed_task(url: str, user: dict, project: dict, zip_bytes: bytes, **fields) -> dict:
    reply = requests.post(f"{url}/api/projects/{project['id']}/tasks/", headers=user["auth"],
                          files=image_files(2), data=fields)
    assert reply.status_code == 201, reply.text
    task = reply.json()
    complete_in_s3(project["id"], task["id"], zip_bytes)
    return requests.get(f"{url}/api/projects/{project['id']}/tasks/{task['id']}/", headers=user["auth"]).json()


@pytest.fixture(scope="module")
def stack(moto_url):
    import os

    from chalicelib import aws, config
    from chalicelib.store import tasks as task_store

    with moto_server_environment(moto_url):
        users = {}
        for name in ("alice", "bob"):
            made = make_user(name)
            token = token_for(made)
            users[name] = {**made, "token": token, "auth": {"Authorization": f"JWT {token}"}}
        with running_gateway(env=dict(os.environ)) as url:
            alice = users["alice"]
            project = requests.post(f"{url}/api/projects/", headers=alice["auth"], json={"name": "maps"}).json()
            task = _completed_task(url, alice, project, rasters.raster_zip(), name="map task")
            feet = _completed_task(url, alice, project, rasters.raster_zip(
                dsm=rasters.dem_bytes(unit="ft"), dtm=rasters.dem_bytes(unit="US survey foot")))
            gone = _completed_task(url, alice, project, rasters.raster_zip())
            unprocessed = requests.post(f"{url}/api/projects/{project['id']}/tasks/", headers=alice["auth"],
                                        files=image_files(2)).json()
            crop = requests.patch(f"{url}/api/projects/{project['id']}/tasks/{task['id']}/",
                                  headers=alice["auth"], json={"crop": _crop(stored_bounds(project, task))})
            assert crop.status_code == 200, crop.text  # used by `crop=1` only
            stored = task_store.get(project["id"], task["id"])
            kept = sorted(o["Key"] for o in aws.s3().list_objects_v2(
                Bucket=config.settings().bucket, Prefix=f"tasks/{task['id']}/rasters/").get("Contents", []))
            for kind in TYPES:  # the COGs of `gone` vanish: what still answers reads no raster
                aws.s3().delete_object(Bucket=config.settings().bucket,
                                       Key=task_store.get(project["id"], gone["id"])["rasters"][kind]["key"])
            yield SimpleNamespace(url=url, moto=moto_url, alice=alice, bob=users["bob"], project=project, task=task,
                                  feet=feet, gone=gone, unprocessed=unprocessed, rasters=stored["rasters"],
                                  kept=kept)


def stored_bounds(project: dict, task: dict) -> list[float]:
    from chalicelib.store import tasks as task_store

    return task_store.get(project["id"], task["id"])["rasters"]["orthophoto"]["bounds"]


def _crop(bounds: list[float]) -> dict:
    """The southern half of the orthophoto."""
    west, south, east, north = bounds
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, (south + north) / 2],
                                                [west, (south + north) / 2], [west, south]]]}


def base(stack, task=None) -> str:
    task = task or stack.task
    return f"{stack.url}/api/projects/{stack.project['id']}/tasks/{task['id']}"


def get(stack, path: str, task=None, user="alice", **kwargs) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if user:
        headers.update(getattr(stack, user)["auth"])
    return requests.get(base(stack, task) + path, headers=headers, **kwargs)


def image(reply: requests.Response):
    from PIL import Image

    picture = Image.open(io.BytesIO(reply.content))
    picture.load()
    return picture


# ------------------------------------------------------------------ tile geometry

def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Fractional WebMercatorQuad tile coordinates of a point."""
    n = 2 ** z
    x = (lon + 180.0) / 360.0 * n
    y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return x, y


def pixel_lonlat(stack, kind: str, col: float, row: float) -> tuple[float, float]:
    """Lon/lat of a pixel position of the test rasters (tests/rasters.py's grid)."""
    from pyproj import Transformer

    x0, y0 = rasters._origin(f"EPSG:{rasters.EPSG}")
    x, y = x0 + col * rasters.PIXEL, y0 - row * rasters.PIXEL
    return Transformer.from_crs(f"EPSG:{rasters.EPSG}", "EPSG:4326", always_xy=True).transform(x, y)


def centre_tile(stack, kind: str, z: int) -> tuple[int, int]:
    west, south, east, north = stack.rasters[kind]["bounds"]
    x, y = lonlat_to_tile((west + east) / 2, (south + north) / 2, z)
    return int(x), int(y)


def tile_path(stack, kind: str, z: int, suffix: str = ".png") -> str:
    x, y = centre_tile(stack, kind, z)
    return f"/{kind}/tiles/{z}/{x}/{y}{suffix}"


def tile_pixel_lonlat(z: int, x: int, y: int, px: int, py: int, size: int = 256) -> tuple[float, float]:
    """Lon/lat of a tile pixel's centre."""
    n = 2 ** z
    fx, fy = x + (px + 0.5) / size, y + (py + 0.5) / size
    return fx / n * 360.0 - 180.0, math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * fy / n))))


def pixel_in_tile(lon: float, lat: float, z: int, x: int, y: int, size: int = 256) -> tuple[int, int]:
    fx, fy = lonlat_to_tile(lon, lat, z)
    return int((fx - x) * size), int((fy - y) * size)


# ------------------------------------------------------------------ before and around processing

@pytest.mark.parametrize("kind", TYPES)
def test_before_processing_every_map_route_is_404(stack, kind):
    for path in (f"/{kind}/tiles.json", f"/{kind}/bounds", f"/{kind}/metadata"):
        reply = get(stack, path, task=stack.unprocessed)
        assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}, path
    reply = get(stack, "/orthophoto/tiles/16/16020/42443.png", task=stack.unprocessed)
    assert reply.status_code == 404


def test_before_processing_bad_parameters_are_still_400(stack):
    """Size, formula and bands are checked before the file is (WebODM's order)."""
    assert get(stack, "/orthophoto/tiles/16/16020/42443.png", task=stack.unprocessed,
               params={"size": "abc"}).json() == ["Invalid tile size parameter"]
    assert get(stack, "/orthophoto/metadata", task=stack.unprocessed,
               params={"formula": "INVALID"}).status_code == 400


@pytest.mark.parametrize("kind", TYPES)
def test_another_users_task_is_404_on_every_route(stack, kind):
    paths = [f"/{kind}/tiles.json", f"/{kind}/bounds", f"/{kind}/metadata", tile_path(stack, kind, 18)]
    for path in paths:
        reply = get(stack, path, user="bob")
        assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}, path
        assert get(stack, path, user=None).status_code == 404, path  # anonymous too
    wrong_project = requests.get(f"{stack.url}/api/projects/999/tasks/{stack.task['id']}/{kind}/tiles.json",
                                 headers=stack.alice["auth"])
    assert wrong_project.status_code == 404


# ------------------------------------------------------------------ tiles.json and bounds

@pytest.mark.parametrize("kind", TYPES)
def test_tiles_json_and_bounds(stack, kind):
    raster = stack.rasters[kind]
    reply = get(stack, f"/{kind}/tiles.json")
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    tilejson = reply.json()
    template = f"/api/projects/{stack.project['id']}/tasks/{stack.task['id']}/{kind}/tiles/{{z}}/{{x}}/{{y}}"
    assert tilejson == {"tilejson": "2.1.0", "name": "map task", "version": "1.0.0",
                        "scheme": "xyz", "tiles": [template], "minzoom": 15, "maxzoom": 21,
                        "bounds": raster["bounds"]}
    assert raster["minzoom"] == raster["maxzoom"] == 18  # WebODM's test orthophoto's zooms
    assert len(tilejson["bounds"]) == 4 and round(tilejson["bounds"][0], 4) == -91.9945
    bounds = get(stack, f"/{kind}/bounds").json()
    assert bounds == {"url": template, "bounds": tilejson["bounds"]}


def test_tile_url_keeps_the_rendering_parameters_in_webodms_order(stack):
    query = {"hillshade": "3", "size": "512", "color_map": "jet", "rescale": "150,170", "jwt": "x" * 3,
             "formula": "", "crop": "1"}
    reply = get(stack, "/dsm/tiles.json", params=query)
    assert reply.json()["tiles"][0].endswith("/dsm/tiles/{z}/{x}/{y}?rescale=150%2C170&color_map=jet&hillshade=3")


def test_tiles_json_costs_no_raster_read(stack):
    """The COGs of this task were deleted after completion: tiles.json, bounds and metadata
    without parameters still answer (the task's summary and the kept document); a tile 404s."""
    for kind in TYPES:
        assert get(stack, f"/{kind}/tiles.json", task=stack.gone).status_code == 200
        assert get(stack, f"/{kind}/bounds", task=stack.gone).status_code == 200
        assert get(stack, f"/{kind}/metadata", task=stack.gone).status_code == 200
        assert get(stack, tile_path(stack, kind, 18), task=stack.gone).status_code == 404
    assert stack.kept == [f"tasks/{stack.task['id']}/rasters/{kind}.json" for kind in ("dsm", "dtm", "orthophoto")]


# ------------------------------------------------------------------ metadata

def test_orthophoto_metadata_without_parameters(stack):
    reply = get(stack, "/orthophoto/metadata")
    assert reply.status_code == 200
    meta = reply.json()
    for key in ("bounds", "minzoom", "maxzoom", "statistics", "algorithms", "color_maps", "tiles", "scheme", "name"):
        assert key in meta
    assert "address" not in meta
    assert (meta["minzoom"], meta["maxzoom"]) == (15, 21)
    assert meta["algorithms"] == [] and meta["color_maps"] == []
    assert meta["auto_bands"] == {"filter": "", "match": None}
    assert meta["scheme"] == "xyz" and meta["name"] == "map task"
    assert meta["tiles"][0].endswith("{z}/{x}/{y}")
    assert meta["bounds"] == {"value": stack.rasters["orthophoto"]["bounds"], "crs": "EPSG:32615"}
    assert meta["center"][2] == 18
    assert meta["colorinterp"] == ["red", "green", "blue", "alpha"] and meta["nodata_type"] == "Alpha"
    assert meta["dtype"] == "uint8" and meta["count"] == 4 and meta["driver"] == "GTiff"
    assert len(meta["band_metadata"]) == 4 and len(meta["band_descriptions"]) == 4
    assert sorted(meta["statistics"]) == ["1", "2", "3"]
    for band in meta["statistics"].values():
        assert len(band["histogram"]) == 2 and len(band["histogram"][0]) == 255
        assert len(band["histogram"][1]) == 256
        assert "min" in band and "max" in band and all(isinstance(p, int) for p in band["percentiles"])
        assert 0 < band["valid_percent"] < 100  # the transparent border is left out
    red = meta["statistics"]["1"]
    assert (red["min"], red["max"]) == (30, 240)  # the quadrants' red values, alpha 0 excluded


def test_metadata_with_a_formula(stack):
    assert get(stack, "/orthophoto/metadata", params={"formula": "INVALID"}).json() == \
        ["Cannot find algorithm INVALID"]
    assert get(stack, "/orthophoto/metadata", params={"formula": "NDVI", "bands": "ABC"}).status_code == 400
    reply = get(stack, "/orthophoto/metadata", params={"formula": "NDVI", "bands": "RGN"})
    assert reply.status_code == 200
    meta = reply.json()
    assert meta["algorithms"] and meta["color_maps"]
    assert meta["auto_bands"] == {"filter": "", "match": None}
    for algorithm in meta["algorithms"]:
        assert {"id", "filters", "expr", "help"} <= set(algorithm) and algorithm["filters"]
        assert not algorithm["id"].startswith("_")
        assert all(len(f.replace("e", "")) <= 3 for f in algorithm["filters"])
    keys = [c["key"] for c in meta["color_maps"]]
    assert keys.count("rdylgn") == 1 and "pastel1" not in keys
    assert meta["tiles"][0].endswith("?formula=NDVI&bands=RGN")
    assert list(meta["statistics"]) == ["1"]
    vari = {a["id"]: a for a in meta["algorithms"]}["VARI"]
    assert vari["filters"] == ["RGB"] and vari["range"] == [-1, 1]
    discrete = {c["key"]: c for c in meta["color_maps"]}["discrete_ndvi"]
    assert len(discrete["color_map"]) == 255 and discrete["color_map"][0] == 0xAD0028FF


def test_metadata_of_vari_is_within_its_range(stack):
    meta = get(stack, "/orthophoto/metadata", params={"formula": "VARI"}).json()
    assert list(meta["statistics"]) == ["1"]
    assert meta["statistics"]["1"]["min"] == -1 and meta["statistics"]["1"]["max"] == 1
    auto = get(stack, "/orthophoto/metadata", params={"formula": "VARI", "bands": "auto"})
    assert auto.status_code == 200
    assert auto.json()["auto_bands"] == {"filter": "RGB", "match": False}  # no band descriptions


@pytest.mark.parametrize("query, message", [
    ({"range": "x,1"}, "could not convert string to float: 'x'"),
    ({"range": "1"}, "Invalid range value"),                # WebODM: a 500
    ({"boundaries": "{oops"}, "Invalid boundaries parameter"),  # WebODM: a 500
    ({"boundaries": '{"a": true}'}, "Invalid boundaries"),
    ({"range": "5,1"}, "Invalid range value"),               # WebODM: a 500 (numpy's histogram)
    ({"formula": "NOPE", "bands": "auto"}, "Cannot find formula: NOPE"),  # WebODM: a 500
])
def test_metadata_refusals_are_drf_400s(stack, query, message):
    reply = get(stack, "/orthophoto/metadata", params=query)
    assert reply.status_code == 400 and reply.json() == [message]


def test_metadata_with_automatic_bands(stack):
    """The test orthophoto's bands carry no descriptions: the first fitting order, unmatched."""
    meta = get(stack, "/orthophoto/metadata", params={"formula": "NDVI", "bands": "auto"}).json()
    assert meta["auto_bands"] == {"filter": "RGN", "match": False}
    assert meta["tiles"][0].endswith("?formula=NDVI&bands=auto")


def test_metadata_range_replaces_min_and_max(stack):
    meta = get(stack, "/orthophoto/metadata", params={"range": "50,200"}).json()
    band = meta["statistics"]["1"]
    assert (band["min"], band["max"]) == (50, 200)
    assert band["histogram"][1][0] == 50 and band["histogram"][1][-1] == 200


@pytest.mark.parametrize("kind", ["dsm", "dtm"])
def test_dem_metadata(stack, kind):
    meta = get(stack, f"/{kind}/metadata").json()
    keys = [c["key"] for c in meta["color_maps"]]
    assert keys == ["viridis", "jet", "terrain", "gist_earth", "pastel1"] and "rdylgn" not in keys
    assert meta["algorithms"] == [] and list(meta["statistics"]) == ["1"]
    band = meta["statistics"]["1"]
    assert (round(band["min"], 2), round(band["max"], 2)) == (rasters.DEM_MIN, rasters.DEM_MAX)
    assert meta["nodata_type"] == "Nodata" and meta["nodata_value"] == -9999.0


@pytest.mark.parametrize("kind, factor", [("dsm", 0.3048), ("dtm", 1200 / 3937)])
def test_dem_metadata_in_feet_is_reported_in_metres(stack, kind, factor):
    band = get(stack, f"/{kind}/metadata", task=stack.feet).json()["statistics"]["1"]
    assert (round(band["min"] / factor, 2), round(band["max"] / factor, 2)) == (rasters.DEM_MIN, rasters.DEM_MAX)


def test_metadata_within_boundaries(stack):
    west, south, east, north = stack.rasters["orthophoto"]["bounds"]
    mid_x, mid_y = (west + east) / 2, (south + north) / 2
    box = [[west, mid_y], [mid_x, mid_y], [mid_x, north], [west, north], [west, mid_y]]  # the red quadrant
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [box]}}
    meta = get(stack, "/orthophoto/metadata", params={"boundaries": json.dumps(feature)}).json()
    assert meta["bounds"]["value"] == [west, mid_y, mid_x, north]
    red, green = meta["statistics"]["1"], meta["statistics"]["2"]
    assert red["percentiles"] == [RED[0], RED[0]] and green["percentiles"] == [RED[1], RED[1]]


# ------------------------------------------------------------------ tiles

@pytest.mark.parametrize("kind", TYPES)
def test_tiles_are_256_and_512_at_2x(stack, kind):
    one = get(stack, tile_path(stack, kind, 18))
    assert one.status_code == 200 and one.headers["Content-Type"] == "image/png"
    assert image(one).size == (256, 256)
    two = get(stack, tile_path(stack, kind, 18, "@2x.png"))
    assert two.status_code == 200 and image(two).size == (512, 512)
    assert "private" in one.headers["Cache-Control"] and "max-age=" in one.headers["Cache-Control"]


def test_orthophoto_tile_pixels_are_the_rasters(stack):
    """Transparent outside the data, opaque inside, the red quadrant red."""
    z = 20
    col, row = rasters.BORDER + 20, rasters.BORDER + 20  # inside the red quadrant
    lon, lat = pixel_lonlat(stack, "orthophoto", col, row)
    fx, fy = lonlat_to_tile(lon, lat, z)
    x, y = int(fx), int(fy)
    picture = image(get(stack, f"/orthophoto/tiles/{z}/{x}/{y}.png"))
    assert picture.mode == "RGBA" and picture.size == (256, 256)
    px, py = pixel_in_tile(lon, lat, z, x, y)
    r, g, b, a = picture.getpixel((px, py))
    assert a == 255 and (r, g, b) == RED
    west, south, east, north = stack.rasters["orthophoto"]["bounds"]
    edge = image(get(stack, tile_path(stack, "orthophoto", 18)))
    assert edge.getchannel("A").getextrema() == (0, 255)  # the raster is smaller than this tile
    cx, cy = centre_tile(stack, "orthophoto", 18)
    corners = [(0, 0), (255, 0), (0, 255), (255, 255)]
    outside = [c for c in corners if not (west < tile_pixel_lonlat(18, cx, cy, *c)[0] < east
                                          and south < tile_pixel_lonlat(18, cx, cy, *c)[1] < north)]
    assert outside and all(edge.getpixel(c)[3] == 0 for c in outside)


def test_dem_tiles_are_grey_by_default_and_coloured_with_a_map(stack):
    grey = image(get(stack, tile_path(stack, "dsm", 20), params={"rescale": "150,170"}))
    pixels = [p for p in grey.getdata() if p[3] == 255]
    assert pixels and all(p[0] == p[1] == p[2] for p in pixels)
    jet = image(get(stack, tile_path(stack, "dsm", 20), params={"rescale": "150,170", "color_map": "jet"}))
    assert any(p[0] != p[2] for p in jet.getdata() if p[3] == 255)
    shaded = image(get(stack, tile_path(stack, "dsm", 20), params={"rescale": "150,170", "hillshade": "3"}))
    assert list(shaded.getdata()) != list(grey.getdata())


@pytest.mark.parametrize("kind", TYPES)
def test_tile_zooms_and_bounds(stack, kind):
    assert get(stack, f"/{kind}/tiles/0/0/0.png").status_code == 404
    too_far_out = get(stack, tile_path(stack, kind, 14))
    assert too_far_out.status_code == 404 and too_far_out.json() == {"detail": "Not found."}
    too_deep = get(stack, tile_path(stack, kind, 22))
    assert too_deep.status_code == 404 and too_deep.json() == {"detail": "Not found."}
    x, y = centre_tile(stack, kind, 18)
    outside = get(stack, f"/{kind}/tiles/18/{x + 5}/{y}.png")
    assert outside.status_code == 404 and outside.json() == {"detail": "Outside of bounds"}


@pytest.mark.parametrize("suffix", [".jpeg", ".gif", "@2x.tif", "@x.png", "abc"])
def test_other_tile_forms_are_404(stack, suffix):
    x, y = centre_tile(stack, "orthophoto", 18)
    assert get(stack, f"/orthophoto/tiles/18/{x}/{y}{suffix}").status_code == 404
    assert get(stack, f"/orthophoto/tiles/18/{x}/{y}.png").status_code == 200
    assert get(stack, f"/elevation/tiles/18/{x}/{y}.png").status_code == 404


@pytest.mark.parametrize("ext, content_type, fmt", [
    (".png", "image/png", "PNG"), (".jpg", "image/jpg", "JPEG"), (".webp", "image/webp", "WEBP"),
    ("png", "image/png", "PNG")])  # WebODM's pattern: the dot is optional
def test_explicit_formats(stack, ext, content_type, fmt):
    reply = get(stack, tile_path(stack, "orthophoto", 18, ext))
    assert reply.status_code == 200 and reply.headers["Content-Type"] == content_type
    assert image(reply).format == fmt and image(reply).size == (256, 256)


def test_automatic_format_and_a_browsers_accept(stack):
    """No extension: JPEG when every pixel has data, else WEBP for a client that takes it,
    else PNG; a browser's Accept still gets real image bytes through API Gateway's rule."""
    edge = tile_path(stack, "orthophoto", 18, "")
    browser = get(stack, edge, headers={"Accept": BROWSER_ACCEPT})
    assert browser.status_code == 200 and browser.headers["Content-Type"] == "image/webp"
    assert image(browser).format == "WEBP" and image(browser).size == (256, 256)
    assert browser.headers["Vary"] == "Accept"
    plain = get(stack, edge, headers={"Accept": "*/*"})
    assert plain.headers["Content-Type"] == "image/png" and image(plain).format == "PNG"
    qgis = get(stack, edge, headers={"Accept": "image/png, image/jpeg, */*;q=0.5"})
    assert image(qgis).format == "PNG"
    lon, lat = pixel_lonlat(stack, "orthophoto", rasters.SIZE[0] / 2, rasters.SIZE[1] / 2)
    fx, fy = lonlat_to_tile(lon, lat, 21)
    inside = get(stack, f"/orthophoto/tiles/21/{int(fx)}/{int(fy)}", headers={"Accept": BROWSER_ACCEPT})
    assert inside.headers["Content-Type"] == "image/jpg" and image(inside).format == "JPEG"


def test_tile_sizes(stack):
    x, y = centre_tile(stack, "orthophoto", 17)
    # size=512 reads zoom z-1 at the same x and y (WebODM's rule for 512-pixel tile layers)
    reply = get(stack, f"/orthophoto/tiles/18/{x}/{y}.png", params={"size": "512"})
    assert reply.status_code == 200 and image(reply).size == (512, 512)
    for size in ("1024", "abc", "-1"):
        bad = get(stack, f"/orthophoto/tiles/18/{x}/{y}.png", params={"size": size})
        assert bad.status_code == 400 and bad.json() == ["Invalid tile size parameter"]
    big = get(stack, tile_path(stack, "orthophoto", 18, "@4x.png"), params={"size": "512"})
    assert big.status_code == 400 and big.json() == ["Invalid tile scale"]


TILE_CASES = [
    ("dsm", {"color_map": "jet", "hillshade": "3", "rescale": "150,170"}, 200),
    ("dsm", {"color_map": "jet", "hillshade": "0", "rescale": "150,170"}, 200),
    ("dsm", {"color_map": "invalid"}, ["Not a valid color_map value"]),
    ("dsm", {"rescale": "invalid"}, ["Invalid rescale value"]),
    ("dsm", {"rescale": "1"}, ["Invalid rescale value"]),      # WebODM: a 500
    ("dsm", {"hillshade": "invalid"}, ["Invalid hillshade value"]),
    ("dtm", {"hillshade": "3"}, 200),
    ("dtm", {"hillshade": "1" * 35}, 200),
    ("dtm", {"hillshade": "-" + "1" * 34}, 200),
    ("dtm", {"hillshade": "0"}, 200),
    ("orthophoto", {"hillshade": "3"}, ["Cannot compute hillshade of non-elevation raster (multiple bands found)"]),
    ("orthophoto", {}, 200),
    ("orthophoto", {"formula": "NDVI", "bands": "RGN"}, 200),
    ("orthophoto", {"formula": "VARI", "bands": "RGN"}, ['Cannot find band "B" from "RGN". Choose a proper band order.']),
    ("orthophoto", {"formula": "VARI", "bands": "RGB"}, 200),
    ("orthophoto", {"formula": "VARI", "bands": "invalid"}, 400),
    ("orthophoto", {"formula": "invalid", "bands": "RGB"}, ["Cannot find algorithm invalid"]),
    ("orthophoto", {"formula": "NDVI", "bands": "auto"}, 200),
    ("orthophoto", {"formula": "NDVI", "bands": "RGN", "color_map": "rdylgn", "rescale": "-1,1"}, 200),
    ("orthophoto", {"formula": "NDVI", "bands": "RGN", "color_map": "rdylgn", "rescale": "1,-1"}, 200),
    ("orthophoto", {"formula": "NDVI", "bands": "RGN", "color_map": "invalid"}, ["Not a valid color_map value"]),
    ("orthophoto", {"color_map": "jet"}, 400),                 # WebODM: a 500
    ("orthophoto", {"boundaries": "invalid"}, ["Invalid boundaries parameter"]),
    ("orthophoto", {"boundaries": '{"a": true}'}, ["Invalid boundaries"]),
    ("orthophoto", {"formula": "NDVI", "bands": "RGN", "hillshade": "2", "color_map": "discrete_ndvi"}, 200),
    ("orthophoto", {"boundaries": json.dumps({"type": "Polygon", "coordinates": [[[1000, 1000], [2000, 1000],
                                                                                   [2000, 2000], [1000, 1000]]]})},
     ["Invalid boundaries"]),                                  # off the planet: WebODM a 500
    ("dsm", {"formula": "NDVI", "bands": "RGN"},               # a DEM has one band: WebODM a 500
     ["Cannot find band b3: the raster has 1 band(s). Choose a proper band order."]),
    ("dtm", {"formula": "Celsius", "bands": "L", "hillshade": "1"}, 200),
]


@pytest.mark.parametrize("crop", [False, True])
@pytest.mark.parametrize("kind, query, expected", TILE_CASES)
def test_tile_parameters(stack, kind, query, expected, crop):
    if crop:
        query = {**query, "crop": "1"}
    reply = get(stack, tile_path(stack, kind, 18), params=query)
    if isinstance(expected, list):
        assert reply.status_code == 400 and reply.json() == expected
    elif expected == 400:
        assert reply.status_code == 400 and isinstance(reply.json(), list) and reply.json()[0]
    else:
        assert reply.status_code == expected, reply.text
        assert image(reply).size == (256, 256)


def test_a_polygon_feature_as_boundaries_cuts_the_tile(stack):
    west, south, east, north = stack.rasters["orthophoto"]["bounds"]
    mid_y = (south + north) / 2
    half = {"type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [[[west, mid_y], [east, mid_y], [east, north],
                                                             [west, north], [west, mid_y]]]}}
    path = tile_path(stack, "orthophoto", 18)
    whole = image(get(stack, path))
    cut = image(get(stack, path, params={"boundaries": json.dumps(half)}))
    opaque = lambda picture: sum(1 for p in picture.getdata() if p[3] == 255)  # noqa: E731
    assert 0 < opaque(cut) < opaque(whole) * 0.7


def test_crop_applies_the_tasks_crop(stack):
    """`crop=1` cuts to the task's crop polygon (set with a PATCH, as WebODM's web client does:
    the southern half); without `crop=1` the crop plays no part."""
    path = tile_path(stack, "orthophoto", 18)
    whole = image(get(stack, path))
    cropped = image(get(stack, path, params={"crop": "1"}))
    opaque = lambda picture: sum(1 for p in picture.getdata() if p[3] == 255)  # noqa: E731
    assert 0 < opaque(cropped) < opaque(whole) * 0.7
    meta = get(stack, "/orthophoto/metadata", params={"crop": "1"}).json()
    west, south, east, north = stack.rasters["orthophoto"]["bounds"]
    assert meta["bounds"]["value"] == [west, south, east, (south + north) / 2]
    # green of the southern half (blue and yellow quadrants): 60 and 220; of the whole also 30 and 200
    assert meta["statistics"]["2"]["percentiles"] == [rasters.QUADRANT_COLOURS[2][1], rasters.QUADRANT_COLOURS[3][1]]
    assert get(stack, "/orthophoto/metadata").json()["bounds"]["value"] == [west, south, east, north]


def test_every_algorithm_and_filter_renders(stack):
    from chalicelib.rasters.formulas import algorithm_list

    path = tile_path(stack, "orthophoto", 18)
    for algorithm in algorithm_list(3):
        for band_order in algorithm["filters"]:
            reply = get(stack, path, params={"formula": algorithm["id"], "bands": band_order,
                                             "color_map": "rdylgn"})
            assert reply.status_code == 200, (algorithm["id"], band_order, reply.text)


def test_jwt_in_the_query_and_public_tasks(stack):
    path = tile_path(stack, "orthophoto", 18)
    with_query = requests.get(base(stack) + path + "?jwt=" + quote(stack.alice["token"]))
    assert with_query.status_code == 200 and image(with_query).size == (256, 256)
    task_url = base(stack) + "/"
    project_url = f"{stack.url}/api/projects/{stack.project['id']}/"
    try:
        assert requests.patch(task_url, headers=stack.alice["auth"], json={"public": True}).status_code == 200
        for route in ("/orthophoto/tiles.json", "/dsm/bounds", "/dtm/metadata", path):
            assert get(stack, route, user=None).status_code == 200, route
            assert get(stack, route, user="bob").status_code == 200, route
        assert requests.patch(task_url, headers=stack.bob["auth"], json={"name": "x"}).status_code == 404
        requests.patch(task_url, headers=stack.alice["auth"], json={"public": False})
        assert get(stack, path, user=None).status_code == 404
        assert requests.patch(project_url, headers=stack.alice["auth"], json={"public": True}).status_code == 200
        assert get(stack, "/orthophoto/tiles.json", user=None).status_code == 200
        assert get(stack, path, user=None).status_code == 200
    finally:
        requests.patch(task_url, headers=stack.alice["auth"], json={"public": False})
        requests.patch(project_url, headers=stack.alice["auth"], json={"public": False})


def test_tiles_cross_origin(stack):
    origin = "http://map.example.com"
    reply = get(stack, tile_path(stack, "orthophoto", 18), headers={"Origin": origin})
    assert reply.headers["Access-Control-Allow-Origin"] == origin
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    preflight = requests.options(base(stack) + "/orthophoto/tiles.json", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == origin


@contextlib.contextmanager
def this_modules_aws(stack):
    """This process's clients on the module's moto server, for a test that changes stored data
    (other modules' tests on this worker point them elsewhere)."""
    import os

    from chalicelib import aws, config

    before = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = stack.moto
    aws.reset()
    config.reset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = before
        aws.reset()
        config.reset()


def _inverted_orthophoto() -> bytes:
    """The test orthophoto with every colour inverted (alpha kept)."""
    from rasterio.io import MemoryFile

    with MemoryFile(rasters.orthophoto_bytes()) as source, source.open() as src:
        data, profile, interp = src.read(), src.profile, src.colorinterp
    data[:3] = 255 - data[:3]
    with MemoryFile() as target:
        with target.open(**profile) as dst:
            dst.write(data)
            dst.colorinterp = interp
        return target.read()


def test_a_task_processed_again_shows_its_new_tiles(stack):
    """Completion rewrites the COGs under the same keys; a warm container must not show what it
    read of the old ones (GDAL keeps the bytes it read per path)."""
    project = stack.project
    with this_modules_aws(stack):
        task = _completed_task(stack.url, stack.alice, project, rasters.raster_zip())
    col, row = rasters.BORDER + 20, rasters.BORDER + 20
    lon, lat = pixel_lonlat(stack, "orthophoto", col, row)
    fx, fy = lonlat_to_tile(lon, lat, 20)
    path = f"/orthophoto/tiles/20/{int(fx)}/{int(fy)}.png"
    px = pixel_in_tile(lon, lat, 20, int(fx), int(fy))
    assert image(get(stack, path, task=task)).getpixel(px) == (*RED, 255)
    with this_modules_aws(stack):
        complete_in_s3(project["id"], task["id"], rasters.raster_zip(orthophoto=_inverted_orthophoto()))
    assert image(get(stack, path, task=task)).getpixel(px) == (*(255 - c for c in RED), 255)
