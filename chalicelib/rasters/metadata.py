"""A raster's metadata as WebODM's `Metadata.get` answers it (rio-tiler 2.1.2's `Metadata`
model: its info fields and per-band statistics, then WebODM's own fields).

Without parameters the answer is the same until the task is processed again, so its
raster part is computed once, at completion, and kept in S3 beside the task's files
(`tasks/<id>/rasters/<type>.json`; a DynamoDB item could not hold histograms and colour
tables within its 400 KB). A formula, a range, boundaries or a crop compute it from the
COG (a decimated read, at most 1024 pixels a side, as rio-tiler's defaults).
"""
from __future__ import annotations

import json
import math

from .. import aws, storage
from ..config import settings
from ..errors import InvalidInput
from . import gdal
from .params import DEM_TYPES, to_meter

MAX_SIZE = 1024
PERCENTILES = (2, 98)
HISTOGRAM_BINS = 255
NO_VALID_PIXELS = "Cannot retrieve raster metadata: no valid pixel in the area"


def document_key(task_id: str, raster_type: str) -> str:
    return f"{storage.task_prefix(task_id)}rasters/{raster_type}.json"


# ------------------------------------------------------------------ statistics

def band_statistics(values, dtype: str, hrange: tuple | None) -> dict:
    """Percentiles 2/98 (in the band's type), min, max, std, a 255-bin histogram over
    `hrange` (else the data's min..max) and the valid percentage, of a masked 2-D array."""
    import numpy as np

    mask = np.ma.getmaskarray(values)
    data = np.asarray(np.ma.getdata(values), dtype=np.float64)
    valid = ~mask & np.isfinite(data)
    picked = data[valid]
    if picked.size == 0:
        raise InvalidInput(NO_VALID_PIXELS)
    low, high = np.percentile(picked, PERCENTILES)
    try:
        percentiles = np.array([low, high]).astype(dtype).tolist()
    except (TypeError, ValueError):
        percentiles = [float(low), float(high)]
    counts, edges = np.histogram(picked, bins=HISTOGRAM_BINS, range=hrange)
    return {"percentiles": percentiles, "min": float(picked.min()), "max": float(picked.max()),
            "std": float(picked.std()), "histogram": [counts.tolist(), edges.tolist()],
            "valid_percent": round(float(valid.sum()) / valid.size * 100, 2)}


def adjust(statistics: dict, hrange: tuple | None, factor: float) -> dict:
    """A given range replaces min and max and bounds the percentiles; a DEM in feet is
    reported in metres (WebODM's steps 11 and 12)."""
    for band in statistics.values():
        if hrange is not None:
            band["min"], band["max"] = hrange[0], hrange[1]
            band["percentiles"] = [max(hrange[0], band["percentiles"][0]), min(hrange[1], band["percentiles"][1])]
        if factor != 1:
            for name in ("min", "max", "std"):
                band[name] = band[name] * factor
            band["percentiles"] = [p * factor for p in band["percentiles"]]
            band["histogram"][1] = [edge * factor for edge in band["histogram"][1]]
    return statistics


# ------------------------------------------------------------------ reading

def _nodata_options(raster_type: str, colorinterp: list[str]) -> dict:
    if raster_type == "orthophoto" and "alpha" not in colorinterp:
        return {"nodata": 0}  # WebODM's orthophoto nodata workaround; with alpha, alpha masks
    return {}


def info(dataset) -> dict:
    """rio-tiler 2.1.2's info fields of an open rasterio dataset (bounds, center and zooms
    come from the task's raster document)."""
    colorinterp = [c.name for c in dataset.colorinterp]
    if dataset.nodata is not None:
        nodata_type = "Nodata"
    elif "alpha" in colorinterp:
        nodata_type = "Alpha"
    elif any(flag.name == "per_dataset" for flag in dataset.mask_flag_enums[0]):
        nodata_type = "Mask"
    else:
        nodata_type = "None"
    try:
        colormap = {str(k): list(v) for k, v in dataset.colormap(1).items()}
    except ValueError:
        colormap = None
    scale, offset = dataset.scales[0], dataset.offsets[0]
    document = {
        "band_metadata": [[str(i), dataset.tags(i)] for i in dataset.indexes],
        "band_descriptions": [[str(i), dataset.descriptions[i - 1] or ""] for i in dataset.indexes],
        "dtype": dataset.dtypes[0],
        "nodata_type": nodata_type,
        "colorinterp": colorinterp,
        "scale": scale if scale and offset else None,
        "offset": offset if scale and offset else None,
        "colormap": colormap,
        "driver": dataset.driver,
        "count": dataset.count,
        "width": dataset.width,
        "height": dataset.height,
        "overviews": dataset.overviews(1),
    }
    if nodata_type == "Nodata":
        document["nodata_value"] = _finite(dataset.nodata)
    return document


def _finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def compute(raster: dict, raster_type: str, *, expression: str | None = None, hrange: tuple | None = None,
            cutline: dict | None = None, path: str | None = None) -> dict:
    """Info fields and `statistics`, read from the COG in S3 (or from `path`, a local copy)."""
    from rio_tiler.io import Reader
    from rio_tiler.utils import create_cutline

    from .params import geometry_bounds
    from .tiler import cutline_errors, forget_stale, missing_is_not_found

    if path is None:
        forget_stale(raster)
    with gdal.s3_env(), missing_is_not_found(), Reader(path or gdal.vsis3_path(raster["key"])) as src, \
            cutline_errors(cutline):
        dataset = src.dataset
        document = info(dataset)
        colorinterp = document["colorinterp"]
        options = _nodata_options(raster_type, colorinterp)
        if cutline is not None:
            options["vrt_options"] = {"cutline": create_cutline(dataset, cutline, geometry_crs="epsg:4326")}
        if expression:
            image = src.preview(expression=expression, max_size=MAX_SIZE, **options)
            keys = [str(i + 1) for i in range(image.count)]
            dtypes = [str(image.array.dtype)] * image.count
        else:
            indexes = [i for i in dataset.indexes if colorinterp[i - 1] != "alpha"] or list(dataset.indexes)
            if cutline is not None:
                image = src.part(geometry_bounds(cutline), dst_crs=dataset.crs, bounds_crs="epsg:4326",
                                 max_size=MAX_SIZE, indexes=indexes, **options)
            else:
                image = src.preview(max_size=MAX_SIZE, indexes=indexes, **options)
            keys = [str(i) for i in indexes]
            dtypes = [dataset.dtypes[i - 1] for i in indexes]
    statistics = {key: band_statistics(image.array[n], dtypes[n], hrange) for n, key in enumerate(keys)}
    factor = to_meter(raster.get("units")) if raster_type in DEM_TYPES else 1.0
    document["statistics"] = adjust(statistics, hrange, factor)
    return document


def store(task_id: str, raster_type: str, document: dict, version: str | None = None) -> None:
    """Keep the parameterless document of the raster `version` (the task's `rasters` entry)."""
    aws.s3().put_object(Bucket=settings().bucket, Key=document_key(task_id, raster_type),
                        Body=json.dumps({**document, "version": version}, separators=(",", ":")).encode(),
                        ContentType="application/json")


# ------------------------------------------------------------------ the kept document

def load(task_id: str, raster_type: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        body = aws.s3().get_object(Bucket=settings().bucket, Key=document_key(task_id, raster_type))["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return json.loads(body)


def default_document(task_id: str, raster_type: str, raster: dict) -> dict:
    """The document kept at completion (chalicelib/rasters/completion.py); one missing, or
    kept for another processing of the task, is computed now and kept."""
    document = load(task_id, raster_type)
    if document is None or document.pop("version", None) != raster.get("version"):
        document = compute(raster, raster_type)
        store(task_id, raster_type, document, raster.get("version"))
    return document
