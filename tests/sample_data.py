"""Realistic test data: a NodeODM-style all.zip and small fake images.

The all.zip mirrors what NodeODM 2.x packs (NodeODM's `libs/Task.js` zips the output folder): the
odm_* folders, tile pyramids, 3D tiles, report and top-level JSON files. File
contents are deterministic pseudo-random bytes so tests can compare byte for byte.
"""
from __future__ import annotations

import hashlib
import io
import zipfile

# Relative paths inside all.zip -> size in bytes (before scaling).
ALL_ZIP_LAYOUT: dict[str, int] = {
    "odm_orthophoto/odm_orthophoto.tif": 180_000,
    "odm_orthophoto/odm_orthophoto.tfw": 120,
    "odm_orthophoto/odm_orthophoto.png": 40_000,
    "odm_orthophoto/odm_orthophoto.kmz": 20_000,
    "odm_orthophoto/odm_orthophoto.mbtiles": 30_000,
    "odm_orthophoto/cutline.gpkg": 8_000,
    "odm_dem/dsm.tif": 90_000,
    "odm_dem/dtm.tif": 90_000,
    "odm_georeferencing/odm_georeferenced_model.laz": 60_000,
    "odm_georeferencing/odm_georeferenced_model.ply": 0,
    "odm_georeferencing/ground_control_points.geojson": 400,
    "odm_texturing/odm_textured_model_geo.obj": 50_000,
    "odm_texturing/odm_textured_model_geo.mtl": 300,
    "odm_texturing/odm_textured_model_geo_material0000_map_Kd.png": 70_000,
    "odm_texturing/odm_textured_model_geo.glb": 45_000,
    "odm_report/report.pdf": 25_000,
    "odm_report/shots.geojson": 3_000,
    "odm_report/stats.json": 0,  # filled with real JSON below
    "orthophoto_tiles/16/100/200.png": 2_000,
    "orthophoto_tiles/16/100/201.png": 2_000,
    "orthophoto_tiles/17/200/400.png": 2_000,
    "dsm_tiles/16/100/200.png": 1_500,
    "dtm_tiles/16/100/200.png": 1_500,
    "3d_tiles/model/tileset.json": 900,
    "3d_tiles/model/0/0.glb": 5_000,
    "3d_tiles/pointcloud/tileset.json": 900,
    "3d_tiles/pointcloud/0/0.pnts": 5_000,
    "entwine_pointcloud/ept.json": 700,
    "images.json": 1_200,
    "cameras.json": 600,
    "task_output.txt": 500,
}

STATS_JSON = (
    b'{"point_cloud_statistics": {"stats": {"statistic": [{"count": 123456}]}},'
    b' "odm_processing_statistics": {"average_gsd": 1.7},'
    b' "reconstruction_statistics": {"has_gps": true, "has_gcp": false}}'
)


def pseudo_random_bytes(seed: str, size: int) -> bytes:
    """Deterministic, incompressible-ish bytes for content checks."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sample_files(scale: float = 1.0, top_folder: str = "",
                 omit_prefixes: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The member name -> content map of a sample all.zip."""
    files: dict[str, bytes] = {}
    for path, size in ALL_ZIP_LAYOUT.items():
        if any(path.startswith(p) for p in omit_prefixes):
            continue
        content = STATS_JSON if path.endswith("stats.json") else pseudo_random_bytes(path, int(size * scale))
        files[top_folder + path] = content
    return files


def build_all_zip(scale: float = 1.0, top_folder: str = "",
                  omit_prefixes: tuple[str, ...] = (),
                  compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An all.zip as NodeODM serves it (optionally wrapped in one top folder)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression, compresslevel=1
                         if compression == zipfile.ZIP_DEFLATED else None) as zf:
        for name, content in sample_files(scale, top_folder, omit_prefixes).items():
            # A fixed timestamp: two builds of the same zip are byte-identical.
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), content,
                        compress_type=compression)
    return buf.getvalue()


def fake_image(index: int, size: int = 50_000) -> bytes:
    """A small JPEG-looking blob (SOI marker + random payload + EOI)."""
    return b"\xff\xd8\xff\xe0" + pseudo_random_bytes(f"img{index}", size) + b"\xff\xd9"
