"""Cloud-Optimized GeoTIFFs, as WebODM's `app/cogeo.py` makes them at completion.

A raster counts as a COG only when rio-cogeo's strict validation reports no error and no
warning (WebODM's rule). Otherwise it is rewritten with rio-cogeo: 256 × 256 tiles, the source's
compression (DEFLATE by default), pixel interleave, internal masks, 128-pixel overview blocks,
projection and resolution kept (not web-optimized), and nodata 0 for an alpha-banded uint16
raster. The tiles, thumbnail and export routes then read it by HTTP ranges from S3.
"""
from __future__ import annotations

import logging
import os
import tempfile

log = logging.getLogger(__name__)

_CONFIG = {"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_TIFF_INTERNAL_MASK": True, "GDAL_TIFF_OVR_BLOCKSIZE": "128"}


def is_cog(path: str) -> bool:
    from rio_cogeo.cogeo import cog_validate

    valid, errors, warnings = cog_validate(path, strict=True, quiet=True)
    return bool(valid and not errors and not warnings)


def ensure_cog(path: str) -> bool:
    """Rewrite `path` in place as a COG unless it already is one. True when it was rewritten.

    The new file is written beside the old one and swapped in only once complete, so a crash
    leaves the original untouched."""
    import rasterio
    from rasterio.enums import ColorInterp
    from rio_cogeo.cogeo import cog_translate

    if is_cog(path):
        return False
    with rasterio.open(path) as src:
        profile = {"driver": "GTiff", "interleave": "pixel", "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "compress": (src.compression.value if src.compression else "DEFLATE"), "BIGTIFF": "IF_SAFER"}
        has_alpha = ColorInterp.alpha in src.colorinterp
        nodata = 0 if has_alpha and src.dtypes[0] == "uint16" else None
        units = tuple(src.units or ())
    fd, tmp = tempfile.mkstemp(suffix="_cogeo.tif", dir=os.path.dirname(path) or None)
    os.close(fd)
    try:
        cog_translate(path, tmp, profile, nodata=nodata, web_optimized=False, config=_CONFIG, quiet=True,
                      in_memory=False)
        if any(units):
            _keep_units(tmp, units, profile["compress"])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _keep_units(path: str, units: tuple, compress: str) -> None:
    """rio-cogeo leaves out the bands' unit types (a DEM in feet: its metadata would be read
    as metres). Set them, then lay the file out as a COG again with GDAL's COG driver, as
    WebODM's `gdal_translate -of COG` would have kept them, reusing the overviews."""
    import rasterio
    import rasterio.shutil

    with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.units = units
    fd, laid_out = tempfile.mkstemp(suffix="_units.tif", dir=os.path.dirname(path) or None)
    os.close(fd)
    try:
        rasterio.shutil.copy(path, laid_out, driver="COG", blocksize=256, compress=compress,
                             overviews="FORCE_USE_EXISTING", bigtiff="IF_SAFER")
        os.replace(laid_out, path)
    finally:
        if os.path.exists(laid_out):
            os.unlink(laid_out)
