"""What a completed task's rasters tell about it, computed once at completion.

WebODM derives these in `Task.extract_assets_and_complete`: the per-raster extents
(`get_raster_bounds_wkt`), `epsg`/`wkt` (`update_georef_fields`), `orthophoto_bands`
(`update_orthophoto_bands_field`), and on every serialization `srs`. Aloft stores them all,
plus what tiles.json, bounds and the tile routes need (bounds, zooms, bands), so those
routes cost one task read and no raster I/O.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

RASTER_TYPES = ("orthophoto", "dsm", "dtm")
NO_SRS = {"name": "", "units": "m"}
_KEPT_UNITS = ("m", "ft", "US survey foot")


def describe(path: str) -> dict | None:
    """The stored summary of one raster file, or None when it has no CRS (WebODM then leaves
    the extent unset and logs a warning)."""
    import rasterio
    from rasterio.warp import transform_bounds
    from rio_tiler.io import Reader

    with rasterio.open(path) as src:
        if src.crs is None:
            log.warning("Raster %s has no CRS: no extent", path)
            return None
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        epsg = src.crs.to_epsg()
        info = {
            "bounds": [west, south, east, north],
            "count": src.count, "dtype": src.dtypes[0], "nodata": src.nodata,
            "colorinterp": [c.name for c in src.colorinterp],
            "descriptions": [d or None for d in src.descriptions],
            "width": src.width, "height": src.height,
            "res": [abs(src.res[0]), abs(src.res[1])],
            "units": (src.units[0] or "") if src.units else "",
            "crs": f"EPSG:{epsg}" if epsg else src.crs.to_wkt(),
        }
    with Reader(path) as reader:
        minzoom, maxzoom = int(reader.minzoom), int(reader.maxzoom)
    info.update(minzoom=minzoom, maxzoom=max(minzoom, maxzoom))
    return info


def crs_codes(path: str) -> tuple[int | None, str | None]:
    """(EPSG code, WKT) of one raster, WebODM's `update_georef_fields` step for one file."""
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None:
            return None, None
        code = src.crs.to_epsg()
        if code:
            return code, None
        wkt = src.crs.to_wkt()
    return epsg_from_wkt(wkt), wkt


def epsg_from_wkt(wkt: str) -> int | None:
    """WebODM's `epsg_from_wkt`: a compound CRS without a root authority gives its 2D part's
    code; anything else gives None."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_wkt(wkt)
    except CRSError:
        return None
    if crs.list_authority() or not crs.is_compound:
        return None
    return crs.sub_crs_list[0].to_epsg()


def georef_fields(codes: list[tuple[int | None, str | None]]) -> dict:
    """`epsg` and `wkt` from the rasters' codes in WebODM's order (orthophoto, DSM, DTM): the
    first EPSG code wins; without one, the last WKT; the two are never both set."""
    epsg = wkt = None
    for code, text in codes:
        if text:
            wkt = text
        if code:
            epsg = code
            break
    return {"epsg": epsg, "wkt": None if epsg else wkt}


def srs_of(epsg: int | None, wkt: str | None) -> dict:
    """WebODM's `get_srs_name_units_from_epsg_or_wkt`: the projected (else geographic) name and
    the linear unit, kept only when it is m, ft or US survey foot."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if epsg is None and not wkt:
        return dict(NO_SRS)
    try:
        crs = CRS.from_epsg(epsg) if epsg is not None else CRS.from_wkt(wkt)
    except CRSError:
        return dict(NO_SRS)
    base = crs.sub_crs_list[0] if crs.is_compound else crs
    name = base.name or ""
    if name == "unknown" and epsg is None:
        name = crs.to_proj4() or name
    unit = base.axis_info[0].unit_name if base.axis_info else ""
    return {"name": name, "units": unit if unit in _KEPT_UNITS else "m"}


def orthophoto_bands(path: str) -> list[dict]:
    """One {"name", "description"} per band: colour interpretation and GDAL description."""
    import rasterio

    with rasterio.open(path) as src:
        return [{"name": c.name, "description": d or None} for c, d in zip(src.colorinterp, src.descriptions)]
