"""Pictures of a task through the local gateway: the task thumbnail (read by GDAL from the
orthophoto COG in S3), input-image thumbnails and downloads (WebODM's `TaskThumbnail`,
`imageuploads.Thumbnail` and `ImageDownload`; `test_api_task.py::test_task`), with the
permission rules of task files (maps §4) and the odk2odm client's own requests."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests import rasters
from tests.helpers import complete_in_s3, new_project

TINY = "tiny_drone_image.jpg"
INVALID = ["Invalid query parameters"]


# ------------------------------------------------------------------ test data

def jpeg(width: int = 48, height: int = 36, colour=(90, 140, 200), quality: int = 90) -> bytes:
    """A real JPEG: a plain colour with a white square in the top left corner."""
    from PIL import Image

    image = Image.new("RGB", (width, height), colour)
    image.paste((255, 255, 255), (0, 0, max(1, width // 4), max(1, height // 4)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def picture(body: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def task_with_images(api, user, project, images: dict[str, bytes]) -> dict:
    """A partial task holding `images` (uploaded as WebODM's create does)."""
    files = [("images", (name, data)) for name, data in images.items()]
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=user["token"], files=files,
                     data={"partial": "true", "name": "test task"})
    assert reply.status == 201, reply.json
    return reply.json


def completed_task(api, user, project, zip_bytes: bytes | None = None, images: dict | None = None) -> dict:
    """A task with input images, completed with real rasters (tests/rasters.py) unless told."""
    task = task_with_images(api, user, project, images or {TINY: jpeg(), "second.jpg": jpeg(64, 48)})
    done = complete_in_s3(project["id"], task["id"], zip_bytes if zip_bytes is not None else rasters.raster_zip())
    assert done["status"] == 40
    return done


def task_path(live: str, task: dict, rest: str = "") -> str:
    return f"{live}/api/projects/{task.get('project_id', task.get('project'))}/tasks/{task['id']}/{rest}"


def auth(user) -> dict:
    return {"Authorization": f"JWT {user['token']}"}


@pytest.fixture
def project(api, alice):
    return new_project(api, alice)


@pytest.fixture
def done(live, api, alice, project):
    return completed_task(api, alice, project)


# ------------------------------------------------------------------ the task thumbnail

def test_thumbnail_sizes_formats_and_headers(live, alice, done):
    url = task_path(live, done, "thumbnail")
    reply = requests.get(url, params={"size": 128}, headers=auth(alice))
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.headers["Cache-Control"] == "no-store" and reply.headers["Content-Disposition"] == "inline"
    image = picture(reply.content)
    assert image.format == "PNG" and image.size == (128, 128) and image.mode == "RGBA"
    # 220 x 200 pixels scaled to 128 wide: 116 rows of raster, letterboxed above and below.
    assert image.getpixel((64, 2))[3] == 0 and image.getpixel((64, 125))[3] == 0
    # Inside the transparent border, the four coloured quadrants (tests/rasters.py).
    (tl, tr, bl, br) = (image.getpixel((35, 35)), image.getpixel((92, 35)), image.getpixel((35, 92)),
                        image.getpixel((92, 92)))
    assert [p[:3] for p in (tl, tr, bl, br)] == list(rasters.QUADRANT_COLOURS)
    assert all(p[3] == 255 for p in (tl, tr, bl, br))
    assert image.getpixel((4, 64))[3] == 0  # the raster's own transparent border

    reply = requests.get(url, params={"size": "abc"}, headers=auth(alice))
    assert picture(reply.content).size == (256, 256)
    assert picture(requests.get(url, headers=auth(alice)).content).size == (256, 256)
    assert picture(requests.get(url, params={"size": 5000}, headers=auth(alice)).content).size == (1024, 1024)
    reply = requests.get(url, params={"size": -5}, headers={**auth(alice), "Accept": "image/webp,*/*"})
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/webp"
    image = picture(reply.content)
    assert image.format == "WEBP" and image.size == (1, 1)


def test_thumbnail_of_a_large_orthophoto_reads_its_overviews(live, api, alice, project):
    """A 3000 x 2600 orthophoto (a COG with overviews after completion) still gives a correct
    small thumbnail; the quadrant colours are where they belong."""
    big = rasters.orthophoto_bytes(size=(3000, 2600))
    task = completed_task(api, alice, project, rasters.raster_zip(orthophoto=big))
    reply = requests.get(task_path(live, task, "thumbnail"), params={"size": 100}, headers=auth(alice))
    image = picture(reply.content)
    assert image.size == (100, 100)
    assert image.getpixel((25, 30))[:3] == rasters.QUADRANT_COLOURS[0]
    assert image.getpixel((75, 70))[:3] == rasters.QUADRANT_COLOURS[3]


def test_thumbnail_with_a_crop_shows_the_crop_box(live, api, alice, done):
    """WebODM's crop thumbnail: the crop polygon's box scaled into the square, nothing outside
    the polygon."""
    west, south, east, north = done["extent"]
    mid_lon, mid_lat = (west + east) / 2, (south + north) / 2
    # A triangle over the top-left quadrant.
    crop = {"type": "Polygon", "coordinates": [[[west, north], [mid_lon, north], [west, mid_lat], [west, north]]]}
    reply = requests.patch(task_path(live, done), json={"crop": crop}, headers=auth(alice))
    assert reply.status_code == 200, reply.text
    reply = requests.get(task_path(live, done, "thumbnail"), params={"size": 64}, headers=auth(alice))
    assert reply.status_code == 200
    image = picture(reply.content)
    assert image.size == (64, 64)
    inside = image.getpixel((20, 20))
    assert inside[3] == 255 and inside[:3] == rasters.QUADRANT_COLOURS[0]
    assert image.getpixel((60, 60))[3] == 0  # outside the triangle


def test_thumbnail_404s(live, api, alice, project):
    unprocessed = task_with_images(api, alice, project, {TINY: jpeg(), "b.jpg": jpeg()})
    assert requests.get(task_path(live, unprocessed, "thumbnail"), headers=auth(alice)).json() == \
        {"detail": "Not found."}
    no_ortho = completed_task(api, alice, project, rasters.raster_zip(orthophoto=None))
    reply = requests.get(task_path(live, no_ortho, "thumbnail"), headers=auth(alice))
    assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}
    thermal = completed_task(api, alice, project, rasters.raster_zip(orthophoto=rasters.orthophoto_bytes(bands=2)))
    reply = requests.get(task_path(live, thermal, "thumbnail"), headers=auth(alice))
    assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}


# ------------------------------------------------------------------ input images

def test_image_thumbnail_sizes_and_options(live, alice, done):
    url = task_path(live, done, f"images/thumbnail/{TINY}")
    reply = requests.get(url, params={"size": 4}, headers=auth(alice))
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/jpeg"
    assert reply.headers["Content-Disposition"] == "inline"
    image = picture(reply.content)
    assert image.format == "JPEG" and image.size == (4, 3)
    assert image.info.get("progressive") or image.info.get("progression")
    assert picture(requests.get(url, params={"size": 9999999}, headers=auth(alice)).content).size == (48, 36)
    assert picture(requests.get(url, headers=auth(alice)).content).size == (48, 36)  # default 512, never enlarged
    query = "size=9999999&center_x=0.3&center_y=0.2&draw_point=0.4,0.4&point_color=ff0000&point_radius=3&zoom=2"
    reply = requests.get(f"{url}?{query}", headers=auth(alice))
    assert reply.status_code == 200 and picture(reply.content).size == (48, 36)
    # An invalid colour is white, as in WebODM.
    reply = requests.get(f"{url}?draw_point=0.5,0.5&point_color=nothex", headers=auth(alice))
    assert reply.status_code == 200


def test_image_thumbnail_draws_points_and_zooms(live, api, alice, project):
    task = task_with_images(api, alice, project, {"grey.jpg": jpeg(400, 300, colour=(128, 128, 128)),
                                                  "b.jpg": jpeg()})
    url = task_path(live, task, "images/thumbnail/grey.jpg")
    # A red circle of radius 10 % of 400 px around the centre: red on its outline, grey inside.
    reply = requests.get(url, params={"draw_point": "0.5,0.5", "point_color": "#ff0000", "point_radius": "10",
                                      "quality": "100"}, headers=auth(alice))
    image = picture(reply.content)
    assert image.size == (400, 300)
    red, centre = image.getpixel((233, 150)), image.getpixel((200, 150))  # the 13 px outline: 27..40 px out
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert all(abs(c - 128) < 12 for c in centre)
    # zoom=2 doubles the centre: the white corner square (100 x 75 px) leaves the view.
    plain = picture(requests.get(url, params={"quality": 100}, headers=auth(alice)).content)
    zoomed = picture(requests.get(url, params={"zoom": 2, "quality": 100}, headers=auth(alice)).content)
    assert min(plain.getpixel((10, 10))) > 240 and max(abs(c - 128) for c in zoomed.getpixel((10, 10))) < 12
    # center_x=0 moves the left edge to the middle: black (outside the image) on the left.
    moved = picture(requests.get(url, params={"center_x": 0, "quality": 100}, headers=auth(alice)).content)
    assert max(moved.getpixel((20, 150))) < 15 and min(moved.getpixel((210, 30))) > 240


@pytest.mark.parametrize("query", [
    "size=0", "size=abc", "size=1.5", "quality=101", "quality=-1", "quality=x", "center_x=1.6",
    "center_y=-0.6", "center_x=nan", "zoom=0.05", "zoom=11", "zoom=x", "draw_point=1", "draw_point=a,b",
    "draw_point=1,2,3", "draw_point=0.5,0.5&point_radius=big",
])
def test_image_thumbnail_invalid_parameters(api, alice, project, query):
    task = task_with_images(api, alice, project, {TINY: jpeg(), "b.jpg": jpeg()})
    reply = api.get(f"/api/projects/{project['id']}/tasks/{task['id']}/images/thumbnail/{TINY}?{query}",
                    token=alice["token"], headers={"Accept": "image/jpeg"})
    assert reply.status == 400 and reply.json == INVALID


def test_image_thumbnail_of_other_modes(api, alice, project):
    """A 16-bit single-band image is stretched to 0..255 (WebODM); an RGBA one, which WebODM
    fails on, is a 400; a file that is no image is a 400."""
    import numpy as np
    from PIL import Image

    ramp = Image.fromarray(np.linspace(1000, 3000, 60 * 40).reshape(40, 60).astype("uint16"), "I;16")
    rgba = Image.new("RGBA", (30, 20), (1, 2, 3, 4))
    files = {}
    for name, image, fmt in (("thermal.tif", ramp, "TIFF"), ("alpha.png", rgba, "PNG")):
        out = io.BytesIO()
        image.save(out, fmt)
        files[name] = out.getvalue()
    files["notes.txt.jpg"] = b"not an image at all"
    task = task_with_images(api, alice, project, files)
    base = f"/api/projects/{project['id']}/tasks/{task['id']}/images/thumbnail/"
    reply = api.get(base + "thermal.tif", token=alice["token"], headers={"Accept": "image/jpeg"})
    assert reply.status == 200
    image = picture(reply.body)
    assert image.size == (60, 40) and image.mode == "RGB"
    assert image.getpixel((0, 0))[0] < 10 and image.getpixel((59, 39))[0] > 245
    reply = api.get(base + "alpha.png", token=alice["token"], headers={"Accept": "image/jpeg"})
    assert reply.status == 400 and isinstance(reply.json, list)
    reply = api.get(base + "notes.txt.jpg", token=alice["token"], headers={"Accept": "image/jpeg"})
    assert reply.status == 400 and reply.json == ["Cannot read this file as an image"]


def test_image_thumbnail_of_a_huge_photo_fits_lambdas_answer(live, api, alice, project):
    """A 6000 x 4000 noisy photo at full size and quality 100 would be a JPEG of about its own
    size again (over Lambda's 6 MB answer): it is scaled down until it fits, and arrives."""
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(7).integers(0, 256, (4000, 6000, 3), dtype="uint8")
    out = io.BytesIO()
    Image.fromarray(noise, "RGB").save(out, "JPEG", quality=95)
    original = out.getvalue()
    assert len(original) > 20_000_000
    task = task_with_images(api, alice, project, {"a.jpg": jpeg(), "b.jpg": jpeg()})
    from chalicelib import aws, config

    aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task['id']}/images/huge.jpg", Body=original)
    reply = requests.get(task_path(live, task, "images/thumbnail/huge.jpg"),
                         params={"size": 99999, "quality": 100}, headers=auth(alice))
    assert reply.status_code == 200, reply.text[:200]
    from chalicelib.images import MAX_JPEG_BYTES

    assert len(reply.content) <= MAX_JPEG_BYTES
    image = picture(reply.content)
    assert image.width < 6000 and abs(image.width / image.height - 1.5) < 0.01
    reply = requests.get(task_path(live, task, "images/thumbnail/huge.jpg"), params={"size": 300},
                         headers=auth(alice))
    assert picture(reply.content).size == (300, 200)


def test_image_download_redirects_to_the_original(live, alice, done):
    reply = requests.get(task_path(live, done, f"images/download/{TINY}"), headers=auth(alice),
                         allow_redirects=False)
    assert reply.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["Location"]).query).items()}
    assert query["response-content-disposition"] == f"attachment; filename={TINY}"
    assert query["response-content-type"] == "image/jpeg"
    fetched = requests.get(reply.headers["Location"])
    assert fetched.status_code == 200 and fetched.content == jpeg()
    assert fetched.headers["Content-Disposition"] == f"attachment; filename={TINY}"
    assert picture(fetched.content).size == (48, 36)


def test_missing_images_and_paths_that_leave_the_folder(live, api, alice, project):
    task = task_with_images(api, alice, project, {TINY: jpeg(), "b.jpg": jpeg()})
    for route in ("thumbnail", "download"):
        reply = requests.get(task_path(live, task, f"images/{route}/nonexistant.jpg"), headers=auth(alice))
        assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}
        for path in ("a/%2E%2E/%2E%2E/all.zip", "%2E%2E/assets/odm_orthophoto/odm_orthophoto.tif", "%2E/b.jpg",
                     "x//y.jpg", "a%5Cb.jpg"):
            reply = requests.get(task_path(live, task, f"images/{route}/{path}"), headers=auth(alice),
                                 allow_redirects=False)
            assert reply.status_code == 400 and reply.json() == {"detail": "Invalid file path"}, (route, path)
    # Names with spaces and unicode reach their image.
    named = task_with_images(api, alice, project, {"my photo é.jpg": jpeg(), "b.jpg": jpeg()})
    reply = requests.get(task_path(live, named, "images/download/my%20photo%20%C3%A9.jpg"), headers=auth(alice),
                         allow_redirects=False)
    assert reply.status_code == 302
    disposition = parse_qs(urlsplit(reply.headers["Location"]).query)["response-content-disposition"][0]
    assert disposition == "attachment; filename=\"my photo e.jpg\"; filename*=UTF-8''my%20photo%20%C3%A9.jpg"


# ------------------------------------------------------------------ who may see them

def test_another_users_task_is_404_and_public_tasks_are_open(live, api, alice, bob, done):
    routes = ("thumbnail", f"images/thumbnail/{TINY}", f"images/download/{TINY}")
    for route in routes:
        for headers in (auth(bob), {}):
            reply = requests.get(task_path(live, done, route), headers=headers, allow_redirects=False)
            assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}, route
        reply = requests.get(task_path(live, done, route), params={"jwt": alice["token"]}, allow_redirects=False)
        assert reply.status_code in (200, 302), route
    assert requests.patch(task_path(live, done), json={"public": True}, headers=auth(alice)).status_code == 200
    for route in routes:
        reply = requests.get(task_path(live, done, route), allow_redirects=False)
        assert reply.status_code in (200, 302), route
        assert requests.get(task_path(live, done, route), headers=auth(bob),
                            allow_redirects=False).status_code in (200, 302)
    # A task of a public project, anonymously.
    other = completed_task(api, alice, new_project(api, alice, "Q"))
    assert requests.get(task_path(live, other, "thumbnail")).status_code == 404
    requests.patch(f"{live}/api/projects/{other['project_id']}/", json={"public": True}, headers=auth(alice))
    for route in routes:
        assert requests.get(task_path(live, other, route), allow_redirects=False).status_code in (200, 302), route


# ------------------------------------------------------------------ odk2odm

def test_odk2odm_get_thumbnail_and_get_image(live, alice, done):
    """localdevices/odk2odm `odm_requests.get_thumbnail` / `get_image`: a plain `requests.get`
    with `Authorization: JWT <token>` (requests' own `Accept: */*`), redirects followed."""
    base_url, token, project_id, task_id = live, alice["token"], done["project_id"], done["id"]
    url = f"{base_url}/api/projects/{project_id}/tasks/{task_id}/images/thumbnail/{TINY}"
    res = requests.get(url, headers={"Authorization": "JWT {}".format(token)})
    assert res.status_code == 200 and res.headers["Content-Type"] == "image/jpeg"
    assert picture(res.content).size == (48, 36)
    url = f"{base_url}/api/projects/{project_id}/tasks/{task_id}/images/download/{TINY}"
    res = requests.get(url, headers={"Authorization": "JWT {}".format(token)})
    assert res.status_code == 200 and res.content == jpeg()
    assert res.history and res.history[0].status_code == 302
