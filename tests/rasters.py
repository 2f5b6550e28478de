"""Small real rasters for the map tests: an orthophoto, a DSM and a DTM as ODM writes them.

Made with rasterio in the test run (nothing binary is committed). They sit in UTM zone 15N
(EPSG:32615) near WebODM's own test dataset (lon -91.99, lat 46.84), small enough that
every zoom is 18 (WebODM's test orthophoto has minzoom = maxzoom = 18):
- orthophoto: RGBA uint8, four coloured quadrants (red, green, blue, yellow) inside a
  transparent border (alpha 0), plain striped GeoTIFF (not a COG, so completion converts it);
- DSM/DTM: float32 elevations from 156.91 to 164.94 m, nodata -9999 in a border.
"""
from __future__ import annotations

import io
import os
import tempfile
import zipfile

from tests.sample_data import sample_files

EPSG = 32615
LON, LAT = -91.9945, 46.8425
PIXEL = 0.3          # metres: about 0.44 m in web mercator at this latitude -> zoom 18
SIZE = (220, 200)    # width, height in pixels: below 256, so no overview and minzoom = maxzoom
BORDER = 20          # pixels of transparent/nodata border on every side
DEM_MIN, DEM_MAX = 156.91, 164.94
QUADRANT_COLOURS = ((220, 30, 30), (30, 200, 40), (30, 60, 220), (240, 220, 20))
# US survey feet Transverse Mercator, as in WebODM's `test_task_wkt` dataset.
US_FEET_WKT = ('PROJCS["custom tmerc",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
               'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
               'PARAMETER["latitude_of_origin",46.8],PARAMETER["central_meridian",-92],'
               'PARAMETER["scale_factor",1],PARAMETER["false_easting",0],PARAMETER["false_northing",0],'
               'UNIT["US survey foot",0.304800609601219]]')


def _origin(crs) -> tuple[float, float]:
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(LON, LAT)


def orthophoto_bytes(crs=f"EPSG:{EPSG}", bands: int = 4, descriptions: tuple | None = None,
                     size: tuple[int, int] = SIZE) -> bytes:
    """RGBA (or `bands` bands + alpha when bands > 4) uint8 GeoTIFF, striped (not a COG once
    larger than 512 pixels)."""
    import numpy as np
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.transform import from_origin

    width, height = size
    data = np.zeros((bands, height, width), dtype="uint8")
    inner = (slice(BORDER, height - BORDER), slice(BORDER, width - BORDER))
    mid_y, mid_x = height // 2, width // 2
    quadrants = ((slice(0, mid_y), slice(0, mid_x)), (slice(0, mid_y), slice(mid_x, width)),
                 (slice(mid_y, height), slice(0, mid_x)), (slice(mid_y, height), slice(mid_x, width)))
    for (ys, xs), colour in zip(quadrants, QUADRANT_COLOURS):
        for band in range(min(3, bands - 1)):
            data[band, ys, xs] = colour[band]
    for band in range(3, bands - 1):  # extra (e.g. NIR) bands: a ramp
        data[band] = np.linspace(10, 250, width, dtype="uint8")[None, :]
    alpha = np.zeros((height, width), dtype="uint8")
    alpha[inner] = 255
    data[bands - 1] = alpha
    for band in range(bands - 1):
        data[band][alpha == 0] = 0
    x, y = _origin(crs)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": "uint8",
               "crs": crs, "transform": from_origin(x, y, PIXEL, PIXEL), "compress": "deflate"}
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + [ColorInterp.undefined] * (bands - 4)
    return _write(profile, data, interp[:bands - 1] + [ColorInterp.alpha], descriptions)


def dem_bytes(crs=f"EPSG:{EPSG}", unit: str | None = None) -> bytes:
    """float32 elevations with a nodata border (-9999)."""
    import numpy as np
    from rasterio.transform import from_origin

    width, height = SIZE
    ramp = np.linspace(DEM_MIN, DEM_MAX, width * height, dtype="float64").reshape(height, width)
    data = np.full((1, height, width), -9999.0, dtype="float32")
    data[0, BORDER:height - BORDER, BORDER:width - BORDER] = ramp[BORDER:height - BORDER, BORDER:width - BORDER]
    data[0, BORDER, BORDER] = DEM_MIN
    data[0, height - BORDER - 1, width - BORDER - 1] = DEM_MAX
    x, y = _origin(crs)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "float32",
               "crs": crs, "transform": from_origin(x, y, PIXEL, PIXEL), "nodata": -9999.0}
    return _write(profile, data, None, None, unit)


def _write(profile: dict, data, interp, descriptions, unit: str | None = None) -> bytes:
    import rasterio

    fd, path = tempfile.mkstemp(suffix=".tif")
    os.close(fd)
    try:
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if interp:
                dst.colorinterp = interp
            for index, text in enumerate(descriptions or (), start=1):
                dst.set_band_description(index, text)
            if unit:
                dst.units = (unit,)
        with open(path, "rb") as handle:
            return handle.read()
    finally:
        os.unlink(path)


def raster_zip(orthophoto: bytes | None = b"", dsm: bytes | None = b"", dtm: bytes | None = b"") -> bytes:
    """An all.zip like the sample one, with real rasters. b"" = the default raster, None = leave
    the file out, other bytes = those bytes (e.g. garbage GDAL cannot read)."""
    files = sample_files(scale=0.2)
    members = {"odm_orthophoto/odm_orthophoto.tif": (orthophoto, orthophoto_bytes),
               "odm_dem/dsm.tif": (dsm, dem_bytes), "odm_dem/dtm.tif": (dtm, dem_bytes)}
    for name, (given, make) in members.items():
        if given is None:
            files.pop(name, None)
        else:
            files[name] = given if given else make()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, content in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), content)
    return buf.getvalue()
