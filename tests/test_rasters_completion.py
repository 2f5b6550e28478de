"""Completion derives WebODM's map fields from the rasters and leaves COGs in S3
(WebODM's `Task.extract_assets_and_complete`, `test_api_task.py::test_task`)."""
from __future__ import annotations

import os
import tempfile

import pytest

from tests import rasters
from tests.conftest import register_node
from tests.helpers import image_files, new_project, s3_bytes
from tests.test_poller import finished, poll_until, task_url

RASTER_KEYS = ("odm_orthophoto/odm_orthophoto.tif", "odm_dem/dsm.tif", "odm_dem/dtm.tif")


@pytest.fixture
def project(api, admin, alice, fake_node):
    register_node(api, admin, fake_node)
    return new_project(api, alice)


def process(api, alice, project, fake_node, zip_bytes: bytes) -> dict:
    fake_node.all_zip = zip_bytes
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json
    return poll_until(api, alice, project, task, finished)


def is_cog_in_s3(task_id: str, member: str) -> bool:
    from chalicelib.rasters.cog import is_cog

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "r.tif")
        with open(path, "wb") as handle:
            handle.write(s3_bytes(f"tasks/{task_id}/assets/{member}"))
        return is_cog(path)


def test_before_processing_the_map_fields_are_empty(api, alice, project):
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2),
                    data={"partial": "true"}).json
    assert task["extent"] is None and task["epsg"] is None and task["wkt"] is None
    assert task["srs"] == {"name": "", "units": "m"} and task["orthophoto_bands"] == []
    assert task["crop"] is None


def test_completed_task_has_extent_epsg_srs_and_bands(api, alice, project, fake_node):
    done = process(api, alice, project, fake_node, rasters.raster_zip(orthophoto=rasters.orthophoto_bytes(size=(1500, 1200))))
    assert done["status"] == 40
    assert len(done["extent"]) == 4 and isinstance(done["extent"][0], float)
    west, south, east, north = done["extent"]
    assert round(west, 3) == round(rasters.LON, 3) and round(north, 4) == round(rasters.LAT, 4)
    assert west < east and south < north
    assert done["epsg"] == 32615 and done["wkt"] is None
    assert done["srs"] == {"name": "WGS 84 / UTM zone 15N", "units": "m"}
    assert [b["name"] for b in done["orthophoto_bands"]] == ["red", "green", "blue", "alpha"]
    assert all(b["description"] is None for b in done["orthophoto_bands"])
    assert "rasters" not in done  # internal: what the map routes read, not part of WebODM's task
    # The striped 1500 x 1200 orthophoto was rewritten as a COG; all three pass strict validation.
    for member in RASTER_KEYS:
        assert is_cog_in_s3(done["id"], member), member
    listed = api.get(f"/api/projects/{project['id']}/tasks/", token=alice["token"]).json
    assert listed[0]["epsg"] == 32615 and listed[0]["extent"] == done["extent"]


def test_the_orthophoto_download_is_the_cog(api, alice, project, fake_node):
    big = rasters.orthophoto_bytes(size=(1500, 1200))
    done = process(api, alice, project, fake_node, rasters.raster_zip(orthophoto=big))
    reply = api.get(task_url(project, done, "download/orthophoto.tif"), token=alice["token"])
    assert reply.status == 302
    stored = s3_bytes(f"tasks/{done['id']}/assets/odm_orthophoto/odm_orthophoto.tif")
    assert stored != big and stored[:4] in (b"II*\x00", b"II+\x00")


def test_task_without_orthophoto(api, alice, project, fake_node):
    done = process(api, alice, project, fake_node, rasters.raster_zip(orthophoto=None))
    assert done["status"] == 40 and done["orthophoto_bands"] == []
    assert done["extent"] is not None and done["epsg"] == 32615 and done["wkt"] is None
    assert done["srs"] == {"name": "WGS 84 / UTM zone 15N", "units": "m"}


def test_a_raster_gdal_cannot_read_never_fails_the_task(api, alice, project, fake_node):
    done = process(api, alice, project, fake_node, rasters.raster_zip(orthophoto=b"not a tiff at all"))
    assert done["status"] == 40 and done["last_error"] is None
    assert done["orthophoto_bands"] == [] and done["epsg"] == 32615  # from the DSM
    assert "orthophoto.tif" in done["available_assets"]

    nothing = process(api, alice, project, fake_node, rasters.raster_zip(b"junk", b"junk", b"junk"))
    assert nothing["status"] == 40 and nothing["extent"] is None and nothing["epsg"] is None
    assert nothing["srs"] == {"name": "", "units": "m"} and nothing["orthophoto_bands"] == []


def test_custom_crs_keeps_its_wkt(api, alice, project, fake_node):
    wkt = rasters.US_FEET_WKT
    zip_bytes = rasters.raster_zip(rasters.orthophoto_bytes(crs=wkt), rasters.dem_bytes(crs=wkt),
                                   rasters.dem_bytes(crs=wkt))
    done = process(api, alice, project, fake_node, zip_bytes)
    assert done["status"] == 40 and done["epsg"] is None
    assert done["wkt"].startswith('PROJCS["custom tmerc"') and "US survey foot" in done["wkt"]
    assert done["srs"] == {"name": "custom tmerc", "units": "US survey foot"}
    assert done["extent"] is not None


def test_band_descriptions_are_kept(api, alice, project, fake_node):
    ortho = rasters.orthophoto_bytes(bands=5, descriptions=("red", "green", "blue", "nir", None))
    done = process(api, alice, project, fake_node, rasters.raster_zip(orthophoto=ortho))
    assert [(b["name"], b["description"]) for b in done["orthophoto_bands"]] == [
        ("red", "red"), ("green", "green"), ("blue", "blue"), ("undefined", "nir"), ("alpha", None)]


def test_task_list_bbox_filter(api, alice, project, fake_node):
    done = process(api, alice, project, fake_node, rasters.raster_zip())
    api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(1),
             data={"partial": "true"})
    url = f"/api/projects/{project['id']}/tasks/"
    west, south, east, north = done["extent"]
    assert len(api.get(url, token=alice["token"]).json) == 2
    around = f"{west - 0.01},{south - 0.01},{west + 0.0001},{south + 0.0001}"
    assert [t["id"] for t in api.get(url + "?bbox=" + around, token=alice["token"]).json] == [done["id"]]
    assert api.get(url + "?bbox=10,10,11,11", token=alice["token"]).json == []
    assert api.get(url + f"?bbox={east},{north},{east + 1},{north + 1}", token=alice["token"]).json[0]["id"] == done["id"]
    for bad in ("bad", "1,2,3", "1,2,3,x", "3,0,1,1", "nan,0,1,1"):
        reply = api.get(url + "?bbox=" + bad, token=alice["token"])
        assert reply.status == 400 and reply.json == ["Invalid bbox parameter"], bad


def test_completion_clears_crop(api, alice, project, fake_node):
    fake_node.all_zip = rasters.raster_zip()
    fake_node.processing_seconds = 1.0
    crop = {"type": "Polygon", "coordinates": [[[-91.9945, 46.842], [-91.994, 46.842], [-91.994, 46.8423],
                                                [-91.9945, 46.842]]]}
    task = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=image_files(2)).json
    task = api.patch(task_url(project, task), token=alice["token"], json={"crop": crop}).json
    assert task["crop"] is not None
    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and done["crop"] is None
