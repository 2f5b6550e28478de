"""Map tiles of a task's COG, read from S3 with HTTP range requests (GDAL's /vsis3/, never a
whole download) and rendered as WebODM's `Tiles.get` renders them (rio-tiler 2.1.2's
post-processing: rescale to 0..255, colour map, hillshade, PNG/JPEG/WEBP).

`raster` is a completed task's `rasters[<type>]` document (chalicelib/steps: bounds, zooms,
bands, resolution, units), so every check before the read costs no raster I/O.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging

from . import colormaps, gdal, hillshade
from .params import DEM_TYPES, ZOOM_EXTRA_LEVELS

log = logging.getLogger("aloft.tiler")

HILLSHADE_BUFFER = 16          # pixels read around a hillshaded tile (its gradient needs them)
DEM_PADDING = 16               # rio-tiler padding of unaligned DEM reads (bilinear edges)
JPEG_QUALITY = 85
PNG_COMPRESS_LEVEL = 6
WEBP_QUALITY = 75
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpg", "webp": "image/webp"}  # WebODM's `image/jpg`

MAX_ZOOM = 30                  # WebMercatorQuad's deepest level
_stamps: dict[str, str] = {}    # S3 key -> the version of it this container has read


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """A WebMercatorQuad tile's (west, south, east, north) in degrees."""
    import morecantile

    bounds = morecantile.tms.get("WebMercatorQuad").bounds(morecantile.Tile(x, y, z))
    return bounds.left, bounds.bottom, bounds.right, bounds.top


def tile_exists(raster: dict, z: int, x: int, y: int) -> bool:
    """The tile overlaps the raster's lon/lat bounds (a strict test, as rio-tiler's)."""
    if not 0 <= z <= MAX_ZOOM or x < 0 or y < 0 or x >= 2 ** z or y >= 2 ** z:
        return False
    west, south, east, north = raster["bounds"]
    left, bottom, right, top = tile_bounds(z, x, y)
    return left < east and right > west and top > south and bottom < north


def zoom_allowed(raster: dict, z: int) -> bool:
    return raster["minzoom"] - ZOOM_EXTRA_LEVELS <= z <= raster["maxzoom"] + ZOOM_EXTRA_LEVELS


def band_indexes(raster: dict) -> tuple[int, ...] | None:
    """Bands of an orthophoto tile without a formula (WebODM's choice); None: every
    non-alpha band (rio-tiler's default)."""
    colorinterp = list(raster.get("colorinterp") or [])
    count = int(raster["count"])
    if count > 4:
        if all(c in colorinterp for c in ("red", "green", "blue")):
            return tuple(colorinterp.index(c) + 1 for c in ("red", "green", "blue"))
        return 1, 2, 3
    if "alpha" in colorinterp:
        return tuple(i + 1 for i, c in enumerate(colorinterp) if c != "alpha")
    return None


def output_bands(raster: dict, raster_type: str, expression: str | None) -> int:
    """How many bands a tile has before rendering (a formula or a DEM: one)."""
    if expression:
        return len([block for block in expression.split(";") if block.strip()])
    if raster_type in DEM_TYPES:
        return 1
    chosen = band_indexes(raster)
    if chosen is not None:
        return len(chosen)
    return len([c for c in raster.get("colorinterp") or [] if c != "alpha"]) or int(raster["count"])


def _stamp(raster: dict) -> str:
    return str(raster.get("version") or json.dumps(raster, sort_keys=True, default=str))


def forget_stale(raster: dict) -> None:
    """GDAL keeps what it read of an S3 object for the life of the process; a task processed
    again replaces its COGs at the same keys, so drop what was read of an older version."""
    key = raster["key"]
    stamp = _stamp(raster)
    seen = _stamps.get(key)
    if seen is not None and seen != stamp:
        with gdal.s3_env():  # GDAL finds the cached entries by URL, made from these options
            _clear_gdal_cache(gdal.vsis3_path(key))
    _stamps[key] = stamp


def _clear_gdal_cache(path: str) -> None:
    """GDAL's VSICurlPartialClearCache (rasterio does not expose it): the libgdal rasterio's
    wheel bundles is already loaded, so ctypes gets the same library."""
    import ctypes
    import glob
    import os

    import rasterio

    libs = os.path.join(os.path.dirname(os.path.dirname(rasterio.__file__)), "rasterio.libs")
    found = sorted(glob.glob(os.path.join(libs, "libgdal*.so*")))
    try:
        ctypes.CDLL(found[0] if found else "libgdal.so").VSICurlPartialClearCache(path.encode())
    except (OSError, AttributeError):
        log.warning("could not clear GDAL's cache of %s", path)


def read_options(raster: dict, raster_type: str) -> dict:
    """rio-tiler read options: an orthophoto nearest-neighbour, masked by its alpha band (or
    by 0 without one: WebODM's nodata workaround); a DEM bilinear with padding, masked by
    its own nodata."""
    if raster_type in DEM_TYPES:
        return {"resampling_method": "bilinear", "reproject_method": "bilinear", "padding": DEM_PADDING}
    options = {"resampling_method": "nearest", "reproject_method": "nearest"}
    if "alpha" not in (raster.get("colorinterp") or []):
        options["nodata"] = 0
    return options


def read_tile(raster: dict, raster_type: str, z: int, x: int, y: int, tilesize: int, *,
              expression: str | None, cutline: dict | None, buffer: int = 0):
    """The tile as a rio-tiler ImageData (masked array, `buffer` extra pixels each side)."""
    from rio_tiler.io import Reader
    from rio_tiler.utils import create_cutline

    forget_stale(raster)
    options = read_options(raster, raster_type)
    if buffer:
        options["buffer"] = buffer
    indexes = None if expression or raster_type in DEM_TYPES else band_indexes(raster)
    with gdal.s3_env(), missing_is_not_found(), Reader(gdal.vsis3_path(raster["key"])) as src, \
            cutline_errors(cutline):
        if cutline is not None:
            options["vrt_options"] = {"cutline": create_cutline(src.dataset, cutline, geometry_crs="epsg:4326")}
        return src.tile(x, y, z, tilesize=tilesize, indexes=indexes, expression=expression, **options)


@contextlib.contextmanager
def missing_is_not_found():
    """A COG that is gone from S3 (its task being removed) is a 404, as a missing file in WebODM."""
    from rasterio.errors import RasterioIOError

    from ..errors import NotFound

    try:
        yield
    except RasterioIOError as error:
        if "No such file" in str(error) or "does not exist" in str(error) or "HTTP response code: 404" in str(error):
            raise NotFound() from None
        raise


@contextlib.contextmanager
def cutline_errors(cutline: dict | None):
    """A polygon GDAL cannot cut with (coordinates out of this world) is the caller's error,
    a 400 "Invalid boundaries", as a shape that is not a polygon at all."""
    if cutline is None:
        yield
        return
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError
    from rio_tiler.errors import RioTilerError, TileOutsideBounds

    from ..errors import DomainError, InvalidInput
    from .params import INVALID_BOUNDARIES

    try:
        yield
    except (TileOutsideBounds, DomainError):
        raise
    except (CPLE_BaseError, RasterioError, RioTilerError, ValueError, OverflowError) as error:
        log.info("cutline refused: %s", error)
        raise InvalidInput(INVALID_BOUNDARIES) from None


# ------------------------------------------------------------------ rendering

def valid_mask(image):
    """True where a pixel has data in any band (rasterio's dataset mask)."""
    import numpy as np

    return np.any(~np.ma.getmaskarray(image.array), axis=0)


def rescale(values, low: float, high: float):
    """Clip to [low, high] then stretch to 0..255 uint8, as rio-tiler 2's linear_rescale and
    its uint8 cast (`low > high` inverts; a clip with low above high gives high)."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    clipped = np.minimum(np.maximum(data, low), high)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (clipped - low) / (high - low) * 255.0 if high != low else np.zeros_like(clipped)
    return np.clip(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)


def choose_format(explicit: str | None, valid, accept: str) -> str:
    """The explicit extension; else JPEG when every pixel read has data, WEBP when the client
    accepts it, PNG otherwise."""
    if explicit:
        return explicit
    if bool(valid.all()):
        return "jpg"
    if "image/webp" in (accept or ""):
        return "webp"
    return "png"


def render(image, *, raster: dict, raster_type: str, z: int, low: float, high: float,
           color_map: str | None, exaggeration: float | None, buffer: int, fmt: str) -> bytes:
    """The encoded tile: rescaled, colour-mapped, hillshaded as asked."""
    import numpy as np

    data = image.array
    valid = valid_mask(image)
    if buffer:
        inner = (slice(buffer, -buffer), slice(buffer, -buffer))
        elevation = np.asarray(data.data[0], dtype=np.float64)
        blank = np.nan if raster_type in DEM_TYPES else 0.0
        for rows in (slice(0, buffer), slice(-buffer, None)):
            for cols in (slice(0, buffer), slice(-buffer, None)):
                elevation[rows, cols] = blank
        xres, yres = raster["res"]
        spacing = (raster["maxzoom"] + ZOOM_EXTRA_LEVELS + 1 - z) ** 2
        light = hillshade.intensity(elevation, xres * spacing, -yres * spacing, exaggeration)[inner]
        data = data[(slice(None),) + inner]
        valid = valid[inner]
    bands = rescale(np.ma.filled(data.astype(np.float64), 0.0), low, high)
    bands[:, ~valid] = 0
    alpha = np.where(valid, 255, 0).astype(np.uint8)
    if color_map is not None:
        table = colormaps.lookup_table(color_map)[bands[0]]     # (h, w, 4)
        bands = np.moveaxis(table[..., :3], -1, 0)
        if exaggeration is None:
            alpha = np.minimum(alpha, table[..., 3])
    if exaggeration is not None:
        if bands.shape[0] == 1:
            bands = np.repeat(bands, 3, axis=0)
        bands = hillshade.blend(bands, light)
    return encode(bands, alpha, fmt)


def encode(bands, alpha, fmt: str) -> bytes:
    """PNG (alpha from the mask, zlevel 6), JPEG (no alpha, quality 85) or WEBP (lossy,
    quality 75, alpha); one band stays grey, except in WEBP."""
    import numpy as np
    from PIL import Image

    pixels = np.moveaxis(bands[:3], 0, -1) if bands.shape[0] >= 3 else bands[0]
    if fmt == "webp" and pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    out = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(np.ascontiguousarray(pixels)).save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()
    with_alpha = np.concatenate([pixels.reshape(pixels.shape[0], pixels.shape[1], -1), alpha[..., None]], axis=-1)
    picture = Image.fromarray(np.ascontiguousarray(with_alpha))  # LA or RGBA
    if fmt == "webp":
        picture.save(out, "WEBP", quality=WEBP_QUALITY, lossless=False)
    else:
        picture.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()
