"""Point-cloud exports (WebODM's `export_pointcloud`, a `pdal translate`) with laspy and lazrs.

PDAL has no maintained wheel for Lambda; laspy (pure Python) with lazrs (LASzip in Rust,
manylinux2014 wheels) reads and writes LAS and LAZ, and the rest is a few lines of numpy:

- `resample` (PDAL's `filters.sample`, Poisson sampling at a radius) is a grid thinning here:
  the first point of each cube of side `resample` is kept. Kept points are at least `resample`
  apart along some axis within a cube, but two neighbouring cubes may keep points closer than
  that; the density it leaves is about PDAL's.
- `epsg`/`proj` reproject X, Y and Z with pyproj (PDAL's `filters.reprojection`); the header's
  scale becomes 1e-7 for degrees and 0.001 otherwise, and its CRS the new one.
- the task's crop keeps the points inside the polygon (PDAL's `filters.crop`).
- PLY: binary little endian with `x y z` (double) and `red green blue` (ushort), as WebODM's
  `--writers.ply.dims X,Y,Z,Red,Green,Blue --writers.ply.sized_types false`.
- CSV: PDAL's text writer layout: a quoted header of every dimension (PDAL's names: X, Y, Z,
  Intensity, ReturnNumber, ...), comma-separated; coordinates with 3 decimals (9 for degrees),
  other dimensions as they are.

The source is read in chunks of CHUNK_POINTS, so memory does not grow with the cloud (the
thinning grid excepted: one 24-byte key per kept point).
"""
from __future__ import annotations

import os
import shutil

from .exports import ExportError

CHUNK_POINTS = 1_000_000
_SPECIAL_NAMES = {"x": "X", "y": "Y", "z": "Z", "X": "X", "Y": "Y", "Z": "Z", "gps_time": "GpsTime"}


def pdal_name(dimension: str) -> str:
    """laspy's dimension name as PDAL spells it (`return_number` -> `ReturnNumber`)."""
    if dimension in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[dimension]
    return "".join(part[:1].upper() + part[1:] for part in dimension.split("_"))


# ------------------------------------------------------------------ filters

class Thinning:
    """Keep the first point of each grid cube of side `cell` (across chunks)."""

    def __init__(self, cell: float):
        import numpy as np

        self.cell = cell
        self.seen = np.empty(0, dtype="V24")

    def keep(self, x, y, z):
        import numpy as np

        cells = np.floor(np.stack([x, y, z], axis=1) / self.cell).astype("int64")
        keys = np.ascontiguousarray(cells).view("V24").ravel()
        unique, first = np.unique(keys, return_index=True)
        new = ~np.isin(unique, self.seen, assume_unique=True)
        self.seen = np.union1d(self.seen, unique[new])
        mask = np.zeros(len(x), dtype=bool)
        mask[first[new]] = True
        return mask


def _inside(polygons: list, x, y):
    """Points inside any polygon (even-odd rule over all rings: holes excluded)."""
    import numpy as np

    result = np.zeros(len(x), dtype=bool)
    for rings in polygons:
        xs = [p[0] for ring in rings for p in ring]
        ys = [p[1] for ring in rings for p in ring]
        candidate = (x >= min(xs)) & (x <= max(xs)) & (y >= min(ys)) & (y <= max(ys))
        px, py = x[candidate], y[candidate]
        inside = np.zeros(len(px), dtype=bool)
        for ring in rings:
            for (x1, y1), (x2, y2) in zip([p[:2] for p in ring], [p[:2] for p in ring[1:] + ring[:1]]):
                if y1 == y2:
                    continue
                crosses = ((y1 > py) != (y2 > py)) & (px < (x2 - x1) * (py - y1) / (y2 - y1) + x1)
                inside ^= crosses
        hits = np.flatnonzero(candidate)[inside]
        result[hits] = True
    return result


def _crop_polygons(crop: dict, crs) -> list:
    """The crop's polygons in the cloud's CRS."""
    from pyproj import Transformer

    to_cloud = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    polygons = [crop["coordinates"]] if crop["type"] == "Polygon" else crop["coordinates"]
    out = []
    for rings in polygons:
        out.append([[list(to_cloud.transform(p[0], p[1])) for p in ring] for ring in rings])
    return out


# ------------------------------------------------------------------ writers

class _LasOut:
    def __init__(self, path: str, header, compress: bool):
        import laspy

        self.writer = laspy.open(path, mode="w", header=header, do_compress=compress)

    def write(self, points) -> None:
        self.writer.write_points(points)

    def close(self) -> None:
        self.writer.close()


class _PlyOut:
    """Binary little-endian PLY; the body is written first, the header (with the count) last."""

    def __init__(self, path: str):
        self.path = path
        self.body_path = path + ".body"
        self.body = open(self.body_path, "wb")
        self.count = 0

    def write(self, points) -> None:
        import numpy as np

        layout = np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("red", "<u2"), ("green", "<u2"),
                           ("blue", "<u2")])
        names = set(points.point_format.dimension_names)
        out = np.zeros(len(points), dtype=layout)
        out["x"], out["y"], out["z"] = points.x, points.y, points.z
        for colour in ("red", "green", "blue"):
            if colour in names:
                out[colour] = points[colour]
        self.body.write(out.tobytes())
        self.count += len(points)

    def close(self) -> None:
        self.body.close()
        header = ("ply\nformat binary_little_endian 1.0\ncomment Generated by Aloft\n"
                  f"element vertex {self.count}\n"
                  "property double x\nproperty double y\nproperty double z\n"
                  "property ushort red\nproperty ushort green\nproperty ushort blue\nend_header\n")
        with open(self.path, "wb") as out, open(self.body_path, "rb") as body:
            out.write(header.encode("ascii"))
            shutil.copyfileobj(body, out, 8 * 1024 * 1024)
        os.unlink(self.body_path)


class _CsvOut:
    def __init__(self, path: str, geographic: bool):
        self.out = open(path, "w", encoding="ascii", newline="")
        self.decimals = 9 if geographic else 3
        self.dimensions: list[str] | None = None

    def write(self, points) -> None:
        import numpy as np

        if self.dimensions is None:
            self.dimensions = list(points.point_format.dimension_names)
            self.out.write(",".join(f'"{pdal_name(d)}"' for d in self.dimensions) + "\n")
        if not len(points):
            return
        columns, formats = [], []
        for name in self.dimensions:
            if name in ("X", "Y", "Z"):
                columns.append(np.asarray(getattr(points, name.lower()), dtype="float64"))
                formats.append(f"%.{self.decimals}f")
            else:
                values = np.asarray(points[name])
                columns.append(values.astype("float64"))
                formats.append("%.6f" if values.dtype.kind == "f" else "%d")
        np.savetxt(self.out, np.column_stack(columns), fmt=formats, delimiter=",")

    def close(self) -> None:
        if self.dimensions is None:
            self.out.write('"X","Y","Z"\n')
        self.out.close()


# ------------------------------------------------------------------ the export

def _source_crs(header, task: dict):
    from pyproj import CRS

    try:
        crs = header.parse_crs()
    except Exception:  # noqa: BLE001 - a broken CRS record counts as none
        crs = None
    if crs is not None:
        return crs
    if task.get("epsg"):
        return CRS.from_epsg(int(task["epsg"]))
    if task.get("wkt"):
        return CRS.from_wkt(task["wkt"])
    return None


def _target_crs(params: dict):
    from pyproj import CRS

    if params.get("epsg") is not None:
        return CRS.from_epsg(int(params["epsg"]))
    if params.get("proj"):
        return CRS.from_proj4(params["proj"])
    return None


def _reprojected_header(header, source_crs, target_crs):
    """A header for the reprojected cloud: the new CRS, scales and offsets for its units."""
    import laspy
    from pyproj import Transformer

    new = laspy.LasHeader(point_format=header.point_format, version=header.version)
    transform = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    x0, y0, z0 = transform.transform(header.mins[0], header.mins[1], header.mins[2])
    scale = 1e-7 if target_crs.is_geographic else 0.001
    new.scales = [scale, scale, 0.001]
    new.offsets = [round(x0, 0 if scale >= 0.001 else 2), round(y0, 0 if scale >= 0.001 else 2), round(z0)]
    if target_crs.to_epsg() is not None:
        new.add_crs(target_crs)
    else:
        # GeoTIFF keys of LAS < 1.4 hold EPSG codes only: a custom CRS (a PROJ string) goes in
        # a WKT record, which PDAL and laspy read whatever the version.
        from laspy.vlrs.known import WktCoordinateSystemVlr

        new.vlrs.append(WktCoordinateSystemVlr(target_crs.to_wkt()))
        if new.version.minor >= 4:
            new.global_encoding.wkt = True
    return new, transform


def export(source_key: str, task: dict, params: dict, scratch: str, report) -> str:
    """Make the point-cloud export in `scratch`; its path."""
    import laspy
    import numpy as np

    from . import aws
    from .config import settings

    fmt = params["format"]
    local = os.path.join(scratch, "source.laz")
    aws.s3().download_file(settings().bucket, source_key, local)
    path = os.path.join(scratch, f"export.{fmt}")
    target = _target_crs(params)
    resample = float(params.get("resample") or 0)
    crop = params.get("crop")
    try:
        reader = laspy.open(local)
    except Exception as exc:  # noqa: BLE001 - laspy's errors are many
        raise ExportError(f"Cannot read the point cloud: {exc}") from None
    with reader:
        header = reader.header
        source_crs = _source_crs(header, task)
        if (target is not None or crop is not None) and source_crs is None:
            raise ExportError("The point cloud is not georeferenced")
        transform = None
        out_header = header
        if target is not None and not target.equals(source_crs):
            out_header, transform = _reprojected_header(header, source_crs, target)
        polygons = _crop_polygons(crop, source_crs) if crop is not None else None
        thinning = Thinning(resample) if resample > 0 else None
        if fmt in ("las", "laz"):
            writer = _LasOut(path, out_header, compress=fmt == "laz")
        elif fmt == "ply":
            writer = _PlyOut(path)
        else:
            writer = _CsvOut(path, geographic=bool(target is not None and target.is_geographic
                                                   or (target is None and source_crs is not None
                                                       and source_crs.is_geographic)))
        total = max(1, header.point_count)
        done = 0
        try:
            for chunk in reader.chunk_iterator(CHUNK_POINTS):
                done += len(chunk)
                keep = np.ones(len(chunk), dtype=bool)
                if thinning is not None:
                    keep &= thinning.keep(np.asarray(chunk.x), np.asarray(chunk.y), np.asarray(chunk.z))
                if polygons is not None:
                    keep &= _inside(polygons, np.asarray(chunk.x), np.asarray(chunk.y))
                points = chunk[keep] if not keep.all() else chunk
                if transform is not None:
                    x, y, z = transform.transform(np.asarray(points.x), np.asarray(points.y), np.asarray(points.z))
                    moved = laspy.ScaleAwarePointRecord.zeros(len(points), header=out_header)
                    for name in points.point_format.dimension_names:
                        if name not in ("X", "Y", "Z"):
                            moved[name] = points[name]
                    moved.x, moved.y, moved.z = x, y, z
                    points = moved
                writer.write(points)
                report(f"Processing points {done}/{header.point_count}", 95.0 * done / total)
        finally:
            writer.close()
    os.unlink(local)
    return path
