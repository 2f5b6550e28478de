"""chalicelib.s3stream and chalicelib.assets against moto's in-process S3."""
from __future__ import annotations

import io
import json
import math
import random
import struct
import threading
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib import assets
from chalicelib.assets import (ASSETS, InvalidZipError, asset_key, content_type_for,
                               download_filename, extract_assets, parse_statistics)
from chalicelib.s3stream import S3MultipartWriter, S3RangeReader, copy_stream_to_s3
from tests.sample_data import STATS_JSON, build_all_zip, fake_image, sample_files

BUCKET = "aloft-assets-test"
PREFIX = "tasks/0b6e1c2a-task/"
MiB = 1024 * 1024

# WebODM's Task.ASSETS_MAP order (`app/models/task.py`).
WEBODM_ORDER = [
    "all.zip", "orthophoto.tif", "orthophoto.png", "orthophoto.mbtiles", "orthophoto.kmz",
    "cutline.gpkg", "georeferenced_model.las", "georeferenced_model.laz",
    "georeferenced_model.ply", "georeferenced_model.csv", "textured_model.zip",
    "textured_model.glb", "3d_tiles_model.zip", "3d_tiles_pointcloud.zip", "dtm.tif",
    "dsm.tif", "dtm_tiles.zip", "dsm_tiles.zip", "orthophoto_tiles.zip", "cameras.json",
    "shots.geojson", "report.pdf", "ground_control_points.geojson",
]
# What the sample all.zip provides (no .las, no .csv).
SAMPLE_AVAILABLE = [a for a in WEBODM_ORDER
                    if a not in ("georeferenced_model.las", "georeferenced_model.csv")]
FOLDERS = {
    "textured_model.zip": "odm_texturing/",
    "3d_tiles_model.zip": "3d_tiles/model/",
    "3d_tiles_pointcloud.zip": "3d_tiles/pointcloud/",
    "dtm_tiles.zip": "dtm_tiles/",
    "dsm_tiles.zip": "dsm_tiles/",
    "orthophoto_tiles.zip": "orthophoto_tiles/",
}


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def get(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def keys_under(s3, prefix: str) -> set[str]:
    out = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out.update(obj["Key"] for obj in page.get("Contents", ()))
    return out


def exists(s3, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
        return True
    except ClientError:
        return False


def put_task(s3, zip_bytes: bytes, images: int = 2) -> int:
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "all.zip", Body=zip_bytes)
    total = 0
    for i in range(images):
        img = fake_image(i, 1000)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}images/img{i}.jpg", Body=img)
        total += len(img)
    return total


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def random_bytes(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


# -- S3RangeReader -------------------------------------------------------------------------

def test_range_reader_reads_and_seeks_exactly(s3):
    data = random_bytes(300_000)
    s3.put_object(Bucket=BUCKET, Key="blob", Body=data)
    reader = S3RangeReader(s3, BUCKET, "blob", block_size=64 * 1024)
    assert reader.size == len(data) and reader.seekable() and reader.readable()
    rng = random.Random(3)
    for _ in range(200):
        offset = rng.randrange(0, len(data) + 10)
        length = rng.randrange(0, 150_000)
        assert reader.seek(offset) == offset
        assert reader.read(length) == data[offset:offset + length]
        assert reader.tell() == min(offset + length, max(offset, len(data)))
    assert reader.seek(-10, io.SEEK_END) == len(data) - 10
    assert reader.read() == data[-10:]
    assert reader.read(5) == b""
    reader.seek(1000)
    assert reader.seek(500, io.SEEK_CUR) == 1500
    buf = bytearray(70_000)
    assert reader.readinto(buf) == 70_000 and bytes(buf) == data[1500:71_500]
    with pytest.raises(ValueError):
        reader.seek(-1)
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)


def test_range_reader_sequential_read_fetches_each_block_once(s3):
    block = 64 * 1024
    data = random_bytes(10 * block + 123)
    s3.put_object(Bucket=BUCKET, Key="blob", Body=data)
    reader = S3RangeReader(s3, BUCKET, "blob", block_size=block)
    out = bytearray()
    while chunk := reader.read(10_000):
        out += chunk
    assert bytes(out) == data
    assert reader.requests == math.ceil(len(data) / block)
    reader.seek(len(data) - 100)  # the last block is still cached
    assert reader.read() == data[-100:]
    assert reader.requests == math.ceil(len(data) / block)


class RecordingClient:
    """Delegates to a boto3 client, recording which thread made each GetObject."""

    def __init__(self, client):
        self._client = client
        self.get_threads: list[str] = []

    def get_object(self, **kwargs):
        self.get_threads.append(threading.current_thread().name)
        return self._client.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_range_reader_reads_ahead_when_sequential(s3):
    block = 64 * 1024
    data = random_bytes(6 * block)
    s3.put_object(Bucket=BUCKET, Key="blob", Body=data)
    client = RecordingClient(s3)
    reader = S3RangeReader(client, BUCKET, "blob", block_size=block)
    assert reader.read() == data
    assert len(client.get_threads) == 6
    # Blocks 0 and 1 on demand; once the pattern is sequential the next ones are prefetched.
    assert client.get_threads[:2] == [threading.current_thread().name] * 2
    assert all(name.startswith("s3-readahead") for name in client.get_threads[2:])
    random_access = S3RangeReader(RecordingClient(s3), BUCKET, "blob", block_size=block)
    for offset in (4 * block, 0, 2 * block):
        random_access.seek(offset)
        assert random_access.read(10) == data[offset:offset + 10]
    assert random_access.requests == 3  # no read-ahead for random access


def test_range_reader_reads_zip_directory_with_one_get(s3):
    payload = build_all_zip(scale=5)
    s3.put_object(Bucket=BUCKET, Key="all.zip", Body=payload)
    reader = S3RangeReader(s3, BUCKET, "all.zip", block_size=1 * MiB)
    with zipfile.ZipFile(reader) as zf:
        infos = zf.infolist()
        assert reader.requests == 1
        expected = sample_files(scale=5)
        assert {i.filename for i in infos} == set(expected)
        for info in sorted(infos, key=lambda i: i.header_offset):
            assert zf.read(info) == expected[info.filename]
    # Streaming every member costs about one GET per block, never a re-fetch per member.
    assert reader.requests <= math.ceil(len(payload) / MiB) + 1


def test_range_reader_fails_if_object_changes_underneath(s3):
    s3.put_object(Bucket=BUCKET, Key="blob", Body=random_bytes(200_000))
    reader = S3RangeReader(s3, BUCKET, "blob", block_size=64 * 1024, readahead=False)
    reader.read(10)
    s3.put_object(Bucket=BUCKET, Key="blob", Body=random_bytes(200_000, seed=99))
    reader.seek(150_000)
    with pytest.raises(ClientError) as err:
        reader.read(10)
    assert err.value.response["Error"]["Code"] in ("PreconditionFailed", "412")


# -- S3MultipartWriter / copy_stream_to_s3 -------------------------------------------------------

def test_multipart_writer_round_trip_over_part_size(s3):
    data = random_bytes(12 * MiB + 4321)
    rng = random.Random(5)
    with S3MultipartWriter(s3, BUCKET, "out.bin", "image/tiff", part_size=5 * MiB) as w:
        assert not w.seekable() and w.writable()
        pos = 0
        while pos < len(data):
            n = rng.randrange(1, 3 * MiB)
            assert w.write(data[pos:pos + n]) == len(data[pos:pos + n])
            pos += n
        assert w.tell() == len(data)
    assert w.parts_uploaded == 3  # 5 + 5 + 2 MiB
    obj = s3.get_object(Bucket=BUCKET, Key="out.bin")
    assert obj["ContentType"] == "image/tiff"
    assert obj["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_multipart_writer_small_object_is_one_put(s3):
    with S3MultipartWriter(s3, BUCKET, "small.txt", "text/plain", part_size=5 * MiB) as w:
        w.write(b"hello ")
        w.write(memoryview(b"world"))
    assert w.requests == 1 and w.parts_uploaded == 0
    assert get(s3, "small.txt") == b"hello world"
    with S3MultipartWriter(s3, BUCKET, "empty.txt", part_size=5 * MiB):
        pass
    assert get(s3, "empty.txt") == b""


def test_multipart_writer_aborts_on_error(s3):
    with pytest.raises(RuntimeError, match="boom"):
        with S3MultipartWriter(s3, BUCKET, "broken.bin", part_size=5 * MiB) as w:
            w.write(random_bytes(11 * MiB))
            raise RuntimeError("boom")
    assert w.requests >= 2  # the multipart upload was created, then aborted
    assert not exists(s3, "broken.bin")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    # A small object that errors is never written either.
    with pytest.raises(RuntimeError):
        with S3MultipartWriter(s3, BUCKET, "tiny.bin", part_size=5 * MiB) as w:
            w.write(b"x")
            raise RuntimeError("boom")
    assert not exists(s3, "tiny.bin")
    with pytest.raises(ValueError):
        w.write(b"late")


def test_multipart_writer_explicit_abort(s3):
    w = S3MultipartWriter(s3, BUCKET, "aborted.bin", part_size=5 * MiB)
    w.write(random_bytes(6 * MiB))
    w.abort()
    w.close()
    assert not exists(s3, "aborted.bin")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_multipart_writer_is_a_zipfile_target(s3):
    big = random_bytes(6 * MiB)
    members = {"a.txt": b"alpha" * 1000, "dir/big.bin": big, "dir/c.json": b"{}"}
    with S3MultipartWriter(s3, BUCKET, "built.zip", "application/zip", part_size=5 * MiB) as w:
        with zipfile.ZipFile(w, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, content in members.items():
                with zf.open(name, "w") as dst:
                    for i in range(0, len(content), MiB):
                        dst.write(content[i:i + MiB])
    assert w.parts_uploaded >= 2
    with zipfile.ZipFile(io.BytesIO(get(s3, "built.zip"))) as zf:
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in zf.namelist()} == members


class TrickleStream:
    """An HTTP-response-like stream that returns short reads."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        n = min(n, 700_001)
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


def test_copy_stream_to_s3(s3):
    data = random_bytes(11 * MiB + 17)
    written = copy_stream_to_s3(s3, TrickleStream(data), BUCKET, "copied.zip",
                                "application/zip", part_size=5 * MiB)
    assert written == len(data)
    obj = s3.get_object(Bucket=BUCKET, Key="copied.zip")
    assert obj["ContentType"] == "application/zip"
    assert obj["Body"].read() == data


def test_copy_stream_to_s3_aborts_when_the_source_fails(s3):
    class Failing(TrickleStream):
        def read(self, n=-1):
            if self._pos > 6 * MiB:
                raise ConnectionError("node went away")
            return super().read(n)

    with pytest.raises(ConnectionError):
        copy_stream_to_s3(s3, Failing(random_bytes(8 * MiB)), BUCKET, "half.zip",
                          part_size=5 * MiB)
    assert not exists(s3, "half.zip")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


# -- asset map helpers --------------------------------------------------------------------------

def test_asset_map_order_and_keys():
    assert [spec.name for spec in ASSETS] == WEBODM_ORDER
    assert asset_key(PREFIX, "all.zip") == PREFIX + "all.zip"
    assert asset_key(PREFIX, "orthophoto.tif") == PREFIX + "assets/odm_orthophoto/odm_orthophoto.tif"
    assert asset_key(PREFIX, "shots.geojson") == PREFIX + "assets/odm_report/shots.geojson"
    assert asset_key(PREFIX, "cameras.json") == PREFIX + "assets/cameras.json"
    assert asset_key(PREFIX, "textured_model.zip") == PREFIX + "zips/textured_model.zip"
    assert asset_key(PREFIX.rstrip("/"), "dsm_tiles.zip") == PREFIX + "zips/dsm_tiles.zip"
    assert asset_key(PREFIX, "nope.tif") is None
    assert asset_key(PREFIX, "../all.zip") is None


@pytest.mark.parametrize("name, asset, expected", [
    ("My Task", "orthophoto.tif", "My-Task-orthophoto.tif"),
    (None, "orthophoto.tif", "orthophoto.tif"),
    ("", "all.zip", "all.zip"),
    ("a/b  c!", "dsm.tif", "a-b-c-dsm.tif"),
    ("Ünïcode & co.", "report.pdf", "ncode-co-report.pdf"),
    ("under_score-dash", "cameras.json", "under_score-dash-cameras.json"),
    ("???", "report.pdf", "-report.pdf"),  # WebODM keeps the separator
])
def test_download_filename(name, asset, expected):
    assert download_filename(name, asset) == expected


def test_content_type_for():
    assert content_type_for("orthophoto.tif") == "image/tiff"
    assert content_type_for("report.pdf") == "application/pdf"
    assert content_type_for("cameras.json") == "application/json"
    assert content_type_for("textured_model.zip") == "application/zip"
    assert content_type_for("textured_model.glb") == "model/gltf-binary"
    assert content_type_for("georeferenced_model.laz") == "application/vnd.laszip"
    assert content_type_for("no-extension") == "application/zip"


# -- extract_assets ------------------------------------------------------------------------------

def assert_folder_zips(s3, files: dict[str, bytes], expected_assets: list[str]):
    for asset, folder in FOLDERS.items():
        key = PREFIX + "zips/" + asset
        want = {path[len(folder):]: data for path, data in files.items()
                if path.startswith(folder) and not path.endswith("odm_textured_model_geo.glb")}
        if asset not in expected_assets:
            assert not want and not exists(s3, key)
            continue
        obj = s3.get_object(Bucket=BUCKET, Key=key)
        assert obj["ContentType"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(obj["Body"].read())) as zf:
            assert zf.testzip() is None
            assert sorted(zf.namelist()) == sorted(want), asset
            for name, data in want.items():
                assert zf.read(name) == data, (asset, name)


def test_extract_assets_full_sample(s3):
    payload = build_all_zip()
    images_size = put_task(s3, payload)
    result = extract_assets(s3, BUCKET, PREFIX, max_workers=4)
    files = sample_files()

    assert result.available_assets == SAMPLE_AVAILABLE
    assert keys_under(s3, PREFIX + "assets/") == {PREFIX + "assets/" + p for p in files}
    for path, data in files.items():
        assert get(s3, PREFIX + "assets/" + path) == data, path
    assert keys_under(s3, PREFIX + "zips/") == {PREFIX + "zips/" + a for a in FOLDERS}
    assert_folder_zips(s3, files, result.available_assets)
    with zipfile.ZipFile(io.BytesIO(get(s3, PREFIX + "zips/textured_model.zip"))) as zf:
        assert "odm_textured_model_geo.glb" not in zf.namelist()
        assert "odm_textured_model_geo.obj" in zf.namelist()

    assert result.size_bytes == images_size + sum(len(d) for d in files.values())
    assert result.files == len(files) and result.skipped == []
    assert result.statistics == {"pointcloud": {"points": 123456}, "gsd": 1.7, "area": None,
                                 "start_date": None, "end_date": None, "spatial_refs": ["gps"]}
    head = s3.head_object(Bucket=BUCKET, Key=PREFIX + "assets/odm_orthophoto/odm_orthophoto.tif")
    assert head["ContentType"] == "image/tiff"
    # Inputs are left alone.
    assert get(s3, PREFIX + "all.zip") == payload
    assert len(keys_under(s3, PREFIX + "images/")) == 2


def test_extract_assets_lifts_single_top_folder(s3):
    put_task(s3, build_all_zip(top_folder="results/"), images=0)
    result = extract_assets(s3, BUCKET, PREFIX)
    files = sample_files()
    assert result.available_assets == SAMPLE_AVAILABLE
    assert keys_under(s3, PREFIX + "assets/") == {PREFIX + "assets/" + p for p in files}
    assert get(s3, PREFIX + "assets/odm_dem/dsm.tif") == files["odm_dem/dsm.tif"]
    assert_folder_zips(s3, files, result.available_assets)
    assert result.statistics["gsd"] == 1.7


def test_extract_assets_does_not_lift_odm_orthophoto(s3):
    tif = random_bytes(5000)
    put_task(s3, make_zip({"odm_orthophoto/odm_orthophoto.tif": tif}), images=0)
    result = extract_assets(s3, BUCKET, PREFIX)
    assert result.available_assets == ["all.zip", "orthophoto.tif"]
    assert get(s3, PREFIX + "assets/odm_orthophoto/odm_orthophoto.tif") == tif
    assert result.statistics == {}


def test_extract_assets_without_orthophoto(s3):
    omit = ("odm_orthophoto/", "orthophoto_tiles/")
    put_task(s3, build_all_zip(omit_prefixes=omit))
    result = extract_assets(s3, BUCKET, PREFIX)
    expected = [a for a in SAMPLE_AVAILABLE if not a.startswith("orthophoto")
                and a != "cutline.gpkg"]
    assert result.available_assets == expected
    assert "textured_model.zip" in result.available_assets
    assert not keys_under(s3, PREFIX + "assets/odm_orthophoto/")
    assert not exists(s3, PREFIX + "zips/orthophoto_tiles.zip")
    assert_folder_zips(s3, sample_files(omit_prefixes=omit), result.available_assets)


def test_extract_assets_rerun_removes_stale_objects(s3):
    put_task(s3, build_all_zip())
    extract_assets(s3, BUCKET, PREFIX)
    assert exists(s3, PREFIX + "zips/orthophoto_tiles.zip")
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "assets/leftover/old.txt", Body=b"old")

    omit = ("odm_orthophoto/", "orthophoto_tiles/", "odm_report/")
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "all.zip", Body=build_all_zip(omit_prefixes=omit))
    result = extract_assets(s3, BUCKET, PREFIX)
    files = sample_files(omit_prefixes=omit)
    assert keys_under(s3, PREFIX + "assets/") == {PREFIX + "assets/" + p for p in files}
    assert keys_under(s3, PREFIX + "zips/") == {
        PREFIX + "zips/" + a for a in FOLDERS if a != "orthophoto_tiles.zip"}
    assert "report.pdf" not in result.available_assets
    assert result.statistics == {}  # no stats.json any more
    assert len(keys_under(s3, PREFIX + "images/")) == 2  # images untouched


def test_extract_assets_streams_large_members_through_multipart(s3, monkeypatch):
    # Members above the small-member limit take the streaming path (multipart once above
    # a part); 5 MiB parts (S3's minimum) keep the test quick.
    monkeypatch.setattr(assets, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(assets, "SMALL_MEMBER", 64 * 1024)
    big = random_bytes(11 * MiB)
    members = {
        "odm_orthophoto/odm_orthophoto.tif": big,
        "orthophoto_tiles/20/1/1.png": big[:200_000],
        "orthophoto_tiles/20/1/2.png": b"tile",
        "orthophoto_tiles/21/big.png": big[::-1],
        "cameras.json": b'{"cam": 1}',
    }
    put_task(s3, make_zip(members, zipfile.ZIP_STORED), images=0)
    result = extract_assets(s3, BUCKET, PREFIX)
    for path, data in members.items():
        assert get(s3, PREFIX + "assets/" + path) == data, path
    assert result.available_assets == ["all.zip", "orthophoto.tif", "orthophoto_tiles.zip",
                                       "cameras.json"]
    with zipfile.ZipFile(io.BytesIO(get(s3, PREFIX + "zips/orthophoto_tiles.zip"))) as zf:
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in zf.namelist()} == {
            "20/1/1.png": big[:200_000], "20/1/2.png": b"tile", "21/big.png": big[::-1]}


class NonSeekableSink(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors (as NodeODM's archiver)."""

    def __init__(self):
        super().__init__()
        self.buffer = io.BytesIO()

    def writable(self):
        return True

    def write(self, data):
        return self.buffer.write(data)


def walk_local_headers(payload: bytes) -> list[tuple[str, int, int, int, int]]:
    """Read a zip front to back from its local headers only, as a streaming unzip does."""
    out, pos = [], 0
    while payload[pos:pos + 4] == b"PK\x03\x04":
        (_sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen,
         xlen) = struct.unpack("<IHHHHHIIIHH", payload[pos:pos + 30])
        name = payload[pos + 30:pos + 30 + nlen].decode()
        out.append((name, flags, crc, csize, usize))
        pos += 30 + nlen + xlen + csize
    assert payload[pos:pos + 4] == b"PK\x01\x02"  # straight into the central directory
    return out


def test_folder_zips_from_data_descriptor_source_are_stream_readable(s3):
    sink = NonSeekableSink()
    members = {"dsm_tiles/1/1/1.png": random_bytes(30_000), "dsm_tiles/1/1/2.png": b"p" * 5000,
               "dsm_tiles/ünï.json": b'{"a": 1}', "odm_dem/dsm.tif": b"tif"}
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    source = sink.buffer.getvalue()
    with zipfile.ZipFile(io.BytesIO(source)) as zf:
        assert all(i.flag_bits & 0x08 for i in zf.infolist())  # really data descriptors
    put_task(s3, source, images=0)
    result = extract_assets(s3, BUCKET, PREFIX)
    assert result.available_assets == ["all.zip", "dsm.tif", "dsm_tiles.zip"]
    payload = get(s3, PREFIX + "zips/dsm_tiles.zip")
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        assert zf.testzip() is None
        central = {i.filename: i for i in zf.infolist()}
        assert {n: zf.read(n) for n in central} == {
            "1/1/1.png": members["dsm_tiles/1/1/1.png"],
            "1/1/2.png": members["dsm_tiles/1/1/2.png"], "ünï.json": b'{"a": 1}'}
    for name, flags, crc, csize, usize in walk_local_headers(payload):
        info = central[name]
        assert flags & 0x08 == 0
        assert (crc, csize, usize) == (info.CRC, info.compress_size, info.file_size)
        assert info.compress_type == zipfile.ZIP_DEFLATED


def test_folder_zips_use_zip64_records_past_the_limits(s3, monkeypatch):
    # The ZIP64 paths normally need > 4 GiB or > 65,535 entries; lower the limits instead.
    monkeypatch.setattr(assets, "_ZIP64_LIMIT", 1000)
    monkeypatch.setattr(assets, "_ZIP64_COUNT_LIMIT", 2)
    put_task(s3, build_all_zip(), images=0)
    result = extract_assets(s3, BUCKET, PREFIX)
    assert result.available_assets == SAMPLE_AVAILABLE
    payload = get(s3, PREFIX + "zips/orthophoto_tiles.zip")
    assert b"PK\x06\x06" in payload and b"PK\x06\x07" in payload  # ZIP64 end + locator
    assert payload[-22 + 8:-22 + 10] == b"\xff\xff"  # entry count deferred to ZIP64
    eocd64 = payload.rfind(b"PK\x06\x06")
    pos = struct.unpack("<Q", payload[eocd64 + 48:eocd64 + 56])[0]  # central directory
    offsets = []
    while payload[pos:pos + 4] == b"PK\x01\x02":
        fields = struct.unpack("<IHHHHHHIIIHHHHHII", payload[pos:pos + 46])
        offsets.append(fields[16])
        pos += 46 + sum(fields[10:13])
    assert offsets[0] == 0 and offsets[1:] == [0xFFFFFFFF] * (len(offsets) - 1) != []
    assert_folder_zips(s3, sample_files(), result.available_assets)


def test_extract_assets_skips_unsafe_names(s3):
    members = {
        "../evil.txt": b"x", "/abs.txt": b"x", "odm_report\\win.txt": b"x",
        "odm_report/ctl\x01.txt": b"x", "odm_report/../../up.txt": b"x",
        "cameras.json": b"{}", "odm_report/shots.geojson": b'{"type": "FeatureCollection"}',
    }
    put_task(s3, make_zip(members), images=0)
    result = extract_assets(s3, BUCKET, PREFIX)
    assert keys_under(s3, PREFIX + "assets/") == {
        PREFIX + "assets/cameras.json", PREFIX + "assets/odm_report/shots.geojson"}
    assert sorted(result.skipped) == sorted(n for n in members if n not in (
        "cameras.json", "odm_report/shots.geojson"))
    assert result.available_assets == ["all.zip", "cameras.json", "shots.geojson"]
    assert keys_under(s3, "") - keys_under(s3, PREFIX) == set()  # nothing escaped the prefix


def test_extract_assets_corrupt_zip(s3):
    put_task(s3, b"this is not a zip file" * 100, images=0)
    with pytest.raises(InvalidZipError) as err:
        extract_assets(s3, BUCKET, PREFIX)
    assert str(err.value) == "Invalid zip file"

    # Cut short, as an interrupted download would leave it.
    whole = build_all_zip()
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "all.zip", Body=whole[:len(whole) // 2])
    with pytest.raises(InvalidZipError):
        extract_assets(s3, BUCKET, PREFIX)

    # A valid directory but damaged member data (bad CRC / deflate stream).
    payload = bytearray(make_zip({"cameras.json": random_bytes(50_000)}))
    payload[len(payload) // 3] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "all.zip", Body=bytes(payload))
    with pytest.raises(InvalidZipError):
        extract_assets(s3, BUCKET, PREFIX)


def test_extract_assets_missing_zip(s3):
    with pytest.raises(InvalidZipError):
        extract_assets(s3, BUCKET, PREFIX)


def test_extract_assets_s3_failures_are_not_zip_errors(s3):
    """An S3 error must surface as itself (the poller retries), never as "Invalid zip"."""

    class FailingPuts:
        def __init__(self, client):
            self._client = client

        def put_object(self, **kwargs):
            if kwargs["Key"].endswith("shots.geojson"):
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "PutObject")
            return self._client.put_object(**kwargs)

        def __getattr__(self, name):
            return getattr(self._client, name)

    put_task(s3, build_all_zip(), images=0)
    with pytest.raises(ClientError) as err:
        extract_assets(FailingPuts(s3), BUCKET, PREFIX)
    assert not isinstance(err.value, InvalidZipError)
    assert err.value.response["Error"]["Code"] == "SlowDown"


# -- statistics ------------------------------------------------------------------------------

def test_parse_statistics_variants():
    full = {
        "point_cloud_statistics": {"dense": True, "stats": {"statistic": [{"count": 987}]}},
        "reconstruction_statistics": {"has_gps": True, "has_gcp": True,
                                      "reconstructed_points_count": 55},
        "gcp_errors": {"average_error": 0.1},
        "odm_processing_statistics": {"average_gsd": 2.5},
        "processing_statistics": {"area": 1234.5, "start_date": "01/02/2024 10:00:00",
                                  "end_date": "01/02/2024 11:00:00"},
        "align": {"method": "icp"},
    }
    assert parse_statistics(json.dumps(full).encode()) == {
        "pointcloud": {"points": 987}, "gsd": 2.5, "area": 1234.5,
        "start_date": "01/02/2024 10:00:00", "end_date": "01/02/2024 11:00:00",
        "spatial_refs": ["gps", "gcp", "alignment"]}

    sparse = dict(full, point_cloud_statistics={"dense": False,
                                                "stats": {"statistic": [{"count": 987}]}})
    sparse["gcp_errors"] = {}  # has_gcp without errors is not a GCP reference
    del sparse["align"]
    stats = parse_statistics(json.dumps(sparse).encode())
    assert stats["pointcloud"] == {"points": 55}
    assert stats["spatial_refs"] == ["gps"]

    weird = {"point_cloud_statistics": {"stats": {"statistic": []}},
             "odm_processing_statistics": {"average_gsd": "n/a"},
             "processing_statistics": []}
    assert parse_statistics(json.dumps(weird).encode()) == {
        "pointcloud": {"points": None}, "gsd": None, "area": None, "start_date": None,
        "end_date": None, "spatial_refs": []}
    assert parse_statistics(STATS_JSON)["pointcloud"] == {"points": 123456}
    assert parse_statistics(b"{not json") == {}
    assert parse_statistics(b"[1, 2]") == {}
    assert parse_statistics(None) == {}
