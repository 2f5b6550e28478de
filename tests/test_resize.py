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


def drone_tiff(mode: str = "RGB", width: int = 800, height: int = 600) -> bytes:
    """A camera TIFF as multispectral and thermal drones write them: uncompressed, with the
    EXIF and GPS directories and XMP in the first directory."""
    from PIL import Image, TiffImagePlugin, TiffTags

    image = Image.new(mode, (width, height), (40, 160, 90) if mode == "RGB" else 1000)
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x010F], tags[0x0110] = "MicaSense", "RedEdge-M"
    tags.tagtype[0x8769], tags[0x8769] = TiffTags.LONG, {0x920A: 5.5}
    tags.tagtype[0x8825], tags[0x8825] = TiffTags.LONG, dict(GPS)
    tags[700] = XMP
    out = io.BytesIO()
    image.save(out, "TIFF", tiffinfo=tags)
    return out.getvalue()


def sixteen_bit_multiband_tiff() -> bytes:
    """Three 16-bit bands: WebODM leaves these as they are (Pillow cannot resample them)."""
    import numpy
    from rasterio.io import MemoryFile

    with MemoryFile() as memory:
        with memory.open(driver="GTiff", width=500, height=400, count=3, dtype="uint16") as data:
            data.write(numpy.full((3, 400, 500), 1000, dtype="uint16"))
        return memory.read()


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


def test_tiff_images_reach_the_node_resized_with_gps_exif_and_xmp(api, alice, project, fake_node):
    from PIL import Image

    originals = {"IMG_0001_1.tif": drone_tiff(), "IMG_0001_2.TIFF": drone_tiff("I;16"),
                 "IMG_0001_3.tif": sixteen_bit_multiband_tiff()}
    task = create(api, alice, project, [("images", (n, d)) for n, d in originals.items()], resize_to="256")
    done = poll_until(api, alice, project, task, finished)
    assert done["status"] == 40 and done["resize_progress"] == 1.0, done
    on_node = fake_node.tasks[done["uuid"]].images
    for name, mode in (("IMG_0001_1.tif", "RGB"), ("IMG_0001_2.TIFF", "I;16")):
        image = Image.open(io.BytesIO(on_node[name]))
        assert (image.format, image.size, image.mode) == ("TIFF", (256, 192), mode)
        exif = image.getexif()
        assert (exif.get(0x010F), exif.get(0x0110)) == ("MicaSense", "RedEdge-M")
        gps = exif.get_ifd(0x8825)
        assert (gps[1], gps[2], gps[3], gps[4], gps[6]) == ("N", GPS[2], "W", GPS[4], GPS[6])
        assert exif.get_ifd(0x8769).get(0x920A) == 5.5
        assert image.tag_v2.get(700) == XMP
    assert on_node["IMG_0001_3.tif"] == originals["IMG_0001_3.tif"]
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
