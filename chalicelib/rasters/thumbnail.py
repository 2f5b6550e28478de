"""The task thumbnail: a small square picture of the orthophoto (WebODM's `TaskThumbnail.get`).

The COG is read from S3 at the thumbnail's own resolution: asking GDAL for a small output
shape makes it read the nearest overview (a COG has them down to under 256 px), so a
thumbnail costs the header and a few small tiles, never the whole file.

WebODM reads a square window of side max(width, height), centred on the raster and filled
with 0 outside it, straight into `size` x `size`. Reading only the raster's own extent at the
same scale and pasting it in the middle of a zero canvas gives the same picture without a
boundless (warped) read.
"""
from __future__ import annotations

import io

from . import gdal


def _bands(src) -> tuple[list[int], int | None]:
    """(colour band indexes, alpha band index or None), WebODM's choice: bands 1, 2, 3, or the
    red, green and blue bands by colour interpretation when there are more than 4 bands."""
    from rasterio.enums import ColorInterp

    interp = list(src.colorinterp)
    colours = [1, 2, 3]
    if src.count > 4 and all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        colours = [interp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)]
    alpha = interp.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in interp else None
    return colours, alpha


def _read_whole(src, indexes: list[int], size: int):
    """The raster scaled so its long side is `size`, centred on a size x size zero canvas."""
    import numpy as np
    from rasterio.enums import Resampling

    scale = size / max(src.width, src.height)
    out_w, out_h = max(1, round(src.width * scale)), max(1, round(src.height * scale))
    data = src.read(indexes, out_shape=(len(indexes), out_h, out_w), resampling=Resampling.nearest)
    canvas = np.zeros((len(indexes), size, size), dtype=data.dtype)
    top, left = (size - out_h) // 2, (size - out_w) // 2
    canvas[:, top:top + out_h, left:left + out_w] = data
    return canvas


def _read_crop(src, indexes: list[int], size: int, crop: dict):
    """The crop's bounding box scaled so its long side is `size`, zero outside the crop polygon,
    centred on a size x size zero canvas (WebODM: a cutline WarpedVRT, nodata 0). None when the
    crop does not touch the raster."""
    import numpy as np
    from affine import Affine
    from rasterio import windows
    from rasterio.enums import Resampling
    from rasterio.features import geometry_mask
    from rasterio.warp import transform_geom

    geometry = transform_geom("EPSG:4326", src.crs, crop)
    xs, ys = _coordinates(geometry)
    window = windows.from_bounds(min(xs), min(ys), max(xs), max(ys), transform=src.transform)
    try:
        window = window.intersection(windows.Window(0, 0, src.width, src.height))
    except Exception:  # noqa: BLE001 - rasterio's WindowError: no overlap
        return None
    window = window.round_offsets().round_lengths()
    if window.width < 1 or window.height < 1:
        return None
    scale = size / max(window.width, window.height)
    out_w, out_h = max(1, round(window.width * scale)), max(1, round(window.height * scale))
    data = src.read(indexes, window=window, out_shape=(len(indexes), out_h, out_w),
                    resampling=Resampling.nearest)
    transform = src.window_transform(window) @ Affine.scale(window.width / out_w, window.height / out_h)
    outside = geometry_mask([geometry], out_shape=(out_h, out_w), transform=transform)
    data[:, outside] = 0
    canvas = np.zeros((len(indexes), size, size), dtype=data.dtype)
    top, left = (size - out_h) // 2, (size - out_w) // 2
    canvas[:, top:top + out_h, left:left + out_w] = data
    return canvas


def _coordinates(geometry: dict) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    stack = [geometry["coordinates"]]
    while stack:
        item = stack.pop()
        if item and isinstance(item[0], (int, float)):
            xs.append(float(item[0]))
            ys.append(float(item[1]))
        else:
            stack.extend(item)
    return xs, ys


def _to_uint8(canvas, colour_count: int, has_alpha: bool):
    """WebODM's stretch for non-uint8 data: one min/max over the colour channels to 0..255,
    alpha to 0 or 255."""
    import numpy as np

    if canvas.dtype == np.uint8:
        return canvas
    data = canvas.astype("float64")
    colours = data[:colour_count]
    low, high = float(np.nanmin(colours)), float(np.nanmax(colours))
    span = high - low
    colours = (colours - low) * (255.0 / span) if span > 0 else np.zeros_like(colours)
    out = np.nan_to_num(colours, nan=0.0).clip(0, 255).astype("uint8")
    if has_alpha:
        alpha = np.where(data[colour_count] > 0, 255, 0).astype("uint8")[None]
        out = np.concatenate([out, alpha])
    return out


def render(key: str, size: int, webp: bool, crop: dict | None = None) -> bytes | None:
    """The thumbnail's bytes (WEBP or PNG), or None when the raster has fewer than 3 bands (or
    the crop misses it)."""
    import rasterio
    from PIL import Image

    with gdal.s3_env(), rasterio.open(gdal.vsis3_path(key)) as src:
        if src.count < 3:
            return None
        colours, alpha = _bands(src)
        indexes = colours + ([alpha] if alpha else [])
        canvas = _read_crop(src, indexes, size, crop) if crop else _read_whole(src, indexes, size)
    if canvas is None:
        return None
    canvas = _to_uint8(canvas, len(colours), alpha is not None)
    image = Image.fromarray(canvas.transpose(1, 2, 0), "RGBA" if alpha else "RGB")
    out = io.BytesIO()
    image.save(out, "WEBP" if webp else "PNG")
    return out.getvalue()
