"""Downloads: 302 to presigned S3 URLs with WebODM's file names, raw assets, public access."""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from tests.helpers import complete_in_s3, new_project, new_task, s3_bytes
from tests.sample_data import build_all_zip, sample_files


@pytest.fixture
def done(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project, name="My Task")
    complete_in_s3(project["id"], task["id"], build_all_zip())
    base = f"/api/projects/{project['id']}/tasks/{task['id']}/"
    return project, task, base


def location(reply):
    """(path, query) of a redirect from the test client or from requests."""
    status = getattr(reply, "status", None) or reply.status_code
    assert status == 302
    url = urlsplit(reply.headers["Location"])
    return unquote(url.path), {k: v[0] for k, v in parse_qs(url.query).items()}


def test_named_asset_redirects_to_presigned_url(api, alice, done):
    project, task, base = done
    path, query = location(api.get(base + "download/orthophoto.tif", token=alice["token"]))
    assert path.endswith(f"tasks/{task['id']}/assets/odm_orthophoto/odm_orthophoto.tif")
    assert query["response-content-disposition"].startswith('attachment; filename="My-Task-orthophoto.tif"')
    assert query["response-content-type"] == "image/tiff"
    assert "X-Amz-Signature" in query and int(query["X-Amz-Expires"]) <= 3600
    assert s3_bytes(f"tasks/{task['id']}/assets/odm_orthophoto/odm_orthophoto.tif") == \
        sample_files()["odm_orthophoto/odm_orthophoto.tif"]
    _, inline = location(api.get(base + "download/orthophoto.tif", token=alice["token"], params={"inline": "1"}))
    assert inline["response-content-disposition"].startswith("inline;")
    _, named = location(api.get(base + "download/dsm.tif", token=alice["token"], params={"filename": "x/../y.tif"}))
    assert 'filename="y.tif"' in named["response-content-disposition"]


def test_all_zip_and_folder_zip(api, alice, done):
    project, task, base = done
    path, query = location(api.get(base + "download/all.zip", token=alice["token"]))
    assert path.endswith(f"tasks/{task['id']}/all.zip")
    assert s3_bytes(f"tasks/{task['id']}/all.zip") == build_all_zip()
    path, _ = location(api.get(base + "download/textured_model.zip", token=alice["token"]))
    assert path.endswith(f"tasks/{task['id']}/zips/textured_model.zip")


def test_available_assets_in_webodm_order(api, alice, done):
    project, task, base = done
    listed = api.get(base, token=alice["token"]).json
    assert listed["status"] == 40 and listed["available_assets"][:3] == ["all.zip", "orthophoto.tif", "orthophoto.png"]
    assert "georeferenced_model.las" not in listed["available_assets"]
    assert listed["size"] > 0


def test_unknown_or_absent_assets_are_404(api, alice, done):
    project, task, base = done
    for asset in ("nothing.tif", "georeferenced_model.las", "..%2F..%2Fetc"):
        reply = api.get(base + f"download/{asset}", token=alice["token"])
        assert reply.status == 404 and reply.json == {"detail": "Asset does not exist"}
    fresh = new_task(api, alice, project)
    reply = api.get(f"/api/projects/{project['id']}/tasks/{fresh['id']}/download/orthophoto.tif",
                    token=alice["token"])
    assert reply.status == 404 and reply.json == {"detail": "Asset does not exist"}


def test_jwt_query_and_public_access(api, alice, bob, done):
    project, task, base = done
    assert api.get(base + "download/orthophoto.tif", params={"jwt": alice["token"]}).status == 302
    assert api.get(base + "download/orthophoto.tif").status == 404
    assert api.get(base + "download/orthophoto.tif", token=bob["token"]).status == 404
    api.patch(base, token=alice["token"], json={"public": True})
    assert api.get(base + "download/orthophoto.tif").status == 302
    assert api.get(base + "download/orthophoto.tif", token=bob["token"]).status == 302


def test_raw_assets_over_the_real_gateway(live, api, alice, done):
    project, task, base = done
    auth = {"Authorization": f"JWT {alice['token']}"}
    reply = requests.get(live + base + "assets/odm_orthophoto/odm_orthophoto.tif", headers=auth,
                         allow_redirects=False)
    assert reply.status_code == 302
    path, query = location(reply)
    assert path.endswith(f"tasks/{task['id']}/assets/odm_orthophoto/odm_orthophoto.tif")
    assert query["response-content-disposition"].startswith('inline; filename="odm_orthophoto.tif"')
    deep = requests.get(live + base + "assets/orthophoto_tiles/16/100/200.png", headers=auth,
                        allow_redirects=False)
    assert deep.status_code == 302
    for bad in ("assets/../all.zip", "assets/odm_orthophoto/../../all.zip", "assets/%2e%2e/all.zip",
                "assets/odm_orthophoto/missing.tif", "assets/odm_orthophoto/", "assets/odm_orthophoto",
                "assets/%00x"):
        reply = requests.get(live + base + bad, headers=auth, allow_redirects=False)
        assert reply.status_code == 404, bad
        assert reply.json() in ({"detail": "Asset does not exist"}, {"detail": "Not found."}), bad
    anonymous = requests.get(live + base + "assets/cameras.json", allow_redirects=False)
    assert anonymous.status_code == 404
    assert requests.get(live + base + "assets/cameras.json", params={"jwt": alice["token"]},
                        allow_redirects=False).status_code == 302
