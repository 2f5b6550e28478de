"""`resize_to`: the images reach the node smaller, with the GPS EXIF and XMP photogrammetry
needs, the GCP file rescaled, and the originals kept (WebODM's RESIZE pending action)."""
from __future__ import annotations

import io

import pytest

from tests.conftest import register_node
from tests.helpers import new_project, s3_bytes
from tests.test_poller import finished, poll_until

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
       b'drone-dji:GimbalPitchDegree="-90.0"/></rdf:RDF></x:xmpmeta>')
GPS = {1: "N", 2: (46.0, 50.0, 33.0), 3: "W", 4: (91.0, 59.0, 40.25), 5: 0, 6: 160.5}
GCP = ("EPSG:32615\n"
       "576700.1 5188100.2 160.1 1200 800 DJI_0001.JPG gcp1\n"
       "576710.1 5188110.2 160.3 400 300 dji_0002.jpg gcp2\n"
       "576720.1 5188120.2 160.5 10 20 missing.jpg gcp3\n")


def drone_jpeg(width: int = 1600, height: int = 1200, colour=(40, 160, 90)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), colour)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "DJI", "FC6310"  # make, model
    exif.get_ifd(0x8769)[0x920A] = 8.8  # focal length
    gps = exif.get_ifd(0x8825)
    gps.update(GPS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif, xmp=XMP)
    return out.getvalue()


@pytest.fixture
def project(api, admin, alice, fake_node):
    register_node(api, admin, fake_node)
    return new_project(api, alice)


def create(api, alice, project, files, **data):
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], files=files, data=data)
    assert reply.status == 201, reply.json
    return reply.json


def test_images_reach_the_node_resized_with_their_metadata(api, alice, project, fake_node):
    from PIL import Image

    originals = {"DJI_0001.JPG": drone_jpeg(), "DJI_0002.JPG": drone_jpeg(colour=(200, 30, 30)),
                 "small.jpg": drone_jpeg(300, 200)}
    files = [("images", (name, data)) for name, data in originals.items()]
    files += [("images", ("gcp_list.txt", GCP.encode())), ("images", ("geo.txt", b"EPSG:4326\nDJI_0001.JPG 1 2 3\n"))]
    task = create(api, alice, project, files, resize_to="800")
    assert task["pending_action"] == 4 and task["resize_to"] == 800 and task["resize_progress"] == 0.0

    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and done["pending_action"] is None
    assert done["resize_progress"] == 1.0 and done["upload_progress"] == 1.0 and done["images_count"] == 5
    on_node = fake_node.tasks[done["uuid"]].images
    assert sorted(on_node) == sorted([*originals, "gcp_list.txt", "geo.txt"])
    sent_gps = dict(Image.open(io.BytesIO(originals["DJI_0001.JPG"])).getexif().get_ifd(0x8825))
    assert sent_gps[2] == GPS[2] and sent_gps[4] == GPS[4] and sent_gps[6] == GPS[6]
    for name in ("DJI_0001.JPG", "DJI_0002.JPG"):
        image = Image.open(io.BytesIO(on_node[name]))
        assert image.size == (800, 600)
        exif = image.getexif()
        assert (exif.get(0x010F), exif.get(0x0110)) == ("DJI", "FC6310")
        assert dict(exif.get_ifd(0x8825)) == sent_gps
        assert exif.get_ifd(0x8769).get(0x920A) == 8.8
        assert image.info.get("xmp") and b"GimbalPitchDegree" in image.info["xmp"]
    assert on_node["small.jpg"] == originals["small.jpg"]  # never enlarged, never re-encoded
    assert on_node["geo.txt"] == b"EPSG:4326\nDJI_0001.JPG 1 2 3\n"
    assert on_node["gcp_list.txt"].decode().splitlines() == [
        "EPSG:32615",
        "576700.1 5188100.2 160.1 600 400 DJI_0001.JPG gcp1",
        "576710.1 5188110.2 160.3 200 150 dji_0002.jpg gcp2",
        "576720.1 5188120.2 160.5 10 20 missing.jpg gcp3"]
    # The originals stay in S3, byte for byte (images/download serves them).
    for name, data in originals.items():
        assert s3_bytes(f"tasks/{done['id']}/images/{name}") == data


def test_without_resize_to_nothing_is_pending_and_images_go_as_sent(api, alice, project, fake_node):
    originals = {"a.jpg": drone_jpeg(), "b.jpg": drone_jpeg()}
    task = create(api, alice, project, [("images", (n, d)) for n, d in originals.items()])
    assert task["pending_action"] is None and task["resize_to"] == -1
    done = poll_until(api, alice, project, task, finished)
    assert fake_node.tasks[done["uuid"]].images == originals and done["resize_progress"] == 0.0


def test_resize_in_a_partial_upload_waits_for_commit(api, alice, project, fake_node):
    task = create(api, alice, project, [("images", ("a.jpg", drone_jpeg())), ("images", ("b.jpg", drone_jpeg()))],
                  partial="true", resize_to="400")
    assert task["pending_action"] == 4 and task["partial"] is True
    api.poll()
    assert api.get(f"/api/projects/{project['id']}/tasks/{task['id']}/", token=alice["token"]).json["resize_progress"] == 0.0
    api.post(f"/api/projects/{project['id']}/tasks/{task['id']}/commit/", token=alice["token"])
    done = poll_until(api, alice, project, task, finished)
    from PIL import Image

    assert Image.open(io.BytesIO(fake_node.tasks[done["uuid"]].images["a.jpg"])).size == (400, 300)
