"""The map routes' query parameters, checked in WebODM's order with WebODM's messages
(`app/api/tiler.py`). Pure Python: nothing here touches a raster.

Where WebODM answers 500 (an uncaught error: `bands=auto` that cannot be resolved, a
`range` or `rescale` that is not two numbers, JSON `boundaries` that are not a polygon on
the metadata route, a colour map on a multi-band tile), these raise InvalidInput, a DRF
400 `["message"]`.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from ..errors import InvalidInput
from . import formulas

RASTER_TYPES = ("orthophoto", "dsm", "dtm")
DEM_TYPES = ("dsm", "dtm")
ZOOM_EXTRA_LEVELS = 3
TILE_SIZES = (256, 512)
FORMATS = ("png", "jpg", "webp")
# `{y}`, `{y}.ext`, `{y}@{scale}x`, `{y}@{scale}x.ext`; the dot is optional, as in WebODM's
# URL patterns (so `3png` is y=3 as PNG).
# (Longer runs of digits than any real tile has are no tile either.)
_Y_SEGMENT = re.compile(r"^(\d{1,12})(?:@(\d{1,6})x)?\.?(png|jpg|webp)?$")
_DIGITS = re.compile(r"^\d{1,12}$")
# Meters per unit of a DEM band's unit type (WebODM's get_rasterio_to_meters_factor).
_TO_METER = {"m": 1.0, "ft": 0.3048, "US survey foot": 1200 / 3937}

INVALID_BOUNDARIES_JSON = "Invalid boundaries parameter"
INVALID_BOUNDARIES = "Invalid boundaries"
INVALID_SIZE = "Invalid tile size parameter"
INVALID_RESCALE = "Invalid rescale value"
INVALID_COLOR_MAP = "Not a valid color_map value"
INVALID_HILLSHADE = "Invalid hillshade value"
INVALID_RANGE = "Invalid range value"
HILLSHADE_MULTIBAND = "Cannot compute hillshade of non-elevation raster (multiple bands found)"
COLOR_MAP_MULTIBAND = "Cannot apply a color_map to a multi-band raster (choose a formula)"


def _value(query: dict, name: str) -> str | None:
    """A parameter's value; an empty string counts as absent (WebODM's `get(...) or None`)."""
    value = query.get(name)
    return value if value not in (None, "") else None


def to_meter(units: str | None) -> float:
    return _TO_METER.get(units or "", 1.0)


@dataclass(frozen=True)
class TilePath:
    z: int
    x: int
    y: int
    scale: int
    ext: str | None


def tile_path(z: str, x: str, y_segment: str) -> TilePath | None:
    """The tile a path names; None for any other form (a 404, as WebODM's URL patterns)."""
    found = _Y_SEGMENT.match(y_segment or "")
    if not found or not _DIGITS.match(z or "") or not _DIGITS.match(x or ""):
        return None
    y, scale, ext = found.groups()
    return TilePath(int(z), int(x), int(y), int(scale) if scale else 1, ext)


def parse_boundaries(query: dict):
    """The `boundaries` JSON, not yet checked as a geometry; bad JSON is a 400."""
    raw = _value(query, "boundaries")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput(INVALID_BOUNDARIES_JSON) from None


def _position_ok(position) -> bool:
    return (isinstance(position, list) and len(position) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in position[:2]))


def _polygon_ok(rings) -> bool:
    return (isinstance(rings, list) and len(rings) > 0
            and all(isinstance(ring, list) and len(ring) >= 4 and all(_position_ok(p) for p in ring)
                    for ring in rings))


def polygon_geometry(value) -> dict | None:
    """A GeoJSON Polygon or MultiPolygon (a Feature's geometry too), else None."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict):
        return None
    kind, coordinates = value.get("type"), value.get("coordinates")
    if kind == "Polygon" and _polygon_ok(coordinates):
        return {"type": "Polygon", "coordinates": coordinates}
    if kind == "MultiPolygon" and isinstance(coordinates, list) and coordinates \
            and all(_polygon_ok(p) for p in coordinates):
        return {"type": "MultiPolygon", "coordinates": coordinates}
    return None


def geometry_bounds(geometry: dict) -> list[float]:
    """[west, south, east, north] of a polygon geometry."""
    rings = geometry["coordinates"] if geometry["type"] == "Polygon" else \
        [ring for polygon in geometry["coordinates"] for ring in polygon]
    xs = [p[0] for ring in rings for p in ring]
    ys = [p[1] for ring in rings for p in ring]
    return [min(xs), min(ys), max(xs), max(ys)]


def cutline_geometry(query: dict, boundaries, task: dict) -> dict | None:
    """The area to cut to: `boundaries` (a 400 if not a polygon), else the task's crop when
    `crop=1` and it is a polygon, else None."""
    if boundaries is not None:
        geometry = polygon_geometry(boundaries)
        if geometry is None:
            raise InvalidInput(INVALID_BOUNDARIES)
        return geometry
    if query.get("crop") == "1":
        return polygon_geometry(task.get("crop"))
    return None


def resolve_bands(query: dict, task: dict, formula: str | None) -> tuple[str | None, dict]:
    """The band order (`bands=auto` resolved from the orthophoto's band descriptions) and
    the `auto_bands` metadata field."""
    bands = _value(query, "bands")
    auto = {"filter": "", "match": None}
    if bands == "auto" and formula:
        try:
            bands, match = formulas.auto_bands(task.get("orthophoto_bands") or [], formula)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        auto = {"filter": bands, "match": match}
    return bands, auto


def lookup(formula: str | None, bands: str | None) -> tuple[str | None, tuple | None]:
    try:
        return formulas.lookup_formula(formula, bands)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def check_expression_bands(expression: str | None, count: int) -> None:
    """Every `b<k>` of an expression must be a band of the raster (a formula over a DEM's one
    band, or a band order longer than the orthophoto: a 500 in WebODM)."""
    for index in re.findall(r"\bb(\d+)\b", expression or ""):
        if not 1 <= int(index) <= count:
            raise InvalidInput(f"Cannot find band b{index}: the raster has {count} band(s). "
                               "Choose a proper band order.")


def two_floats(text: str, message: str | None) -> tuple[float, float]:
    """"lo,hi" as floats: Python's own message for a value that is no number (WebODM's
    `range`), `message` for any failure when given."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts[:2]]
    except ValueError as error:
        raise InvalidInput(message or str(error)) from None
    if len(values) != 2 or (message is not None and len(parts) != 2):
        raise InvalidInput(message or INVALID_RANGE)
    return values[0], values[1]


def histogram_range(text: str) -> tuple[float, float]:
    """`range`: two finite numbers, the first below the second (else numpy's histogram
    fails: a 500 in WebODM)."""
    low, high = two_floats(text, None)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidInput(INVALID_RANGE)
    return low, high


def tile_url(task: dict, raster_type: str, query: dict) -> str:
    """The `{z}/{x}/{y}` template of the type's tiles with the request's rendering
    parameters (WebODM's get_tile_url: the task's own project id, no extension)."""
    url = f"/api/projects/{task['project_id']}/tasks/{task['id']}/{raster_type}/tiles/{{z}}/{{x}}/{{y}}"
    kept = [(name, query[name]) for name in ("formula", "bands", "rescale", "color_map", "hillshade")
            if _value(query, name) is not None]
    return url + ("?" + urlencode(kept) if kept else "")


@dataclass
class MetadataParams:
    formula: str | None
    bands: str | None
    expression: str | None
    hrange: tuple[float, float] | None
    auto_bands: dict
    boundaries: object


def metadata_params(query: dict, task: dict) -> MetadataParams:
    """Steps 2-4 of WebODM's Metadata.get: boundaries JSON, `bands=auto`, the formula, `range`."""
    boundaries = parse_boundaries(query)
    formula = _value(query, "formula")
    bands, auto = resolve_bands(query, task, formula)
    expression, hrange = lookup(formula, bands)
    raw_range = _value(query, "range")
    if raw_range is not None:
        given = histogram_range(raw_range)
        if hrange is None or not (given[0] < hrange[0] or given[1] > hrange[1]):
            hrange = given
    return MetadataParams(formula, bands, expression, hrange, auto, boundaries)


def wants_computation(query: dict, params: MetadataParams, task: dict) -> bool:
    """Whether the answer differs from the precomputed one (a formula, a range, an area)."""
    return bool(params.expression or params.hrange is not None or params.boundaries is not None
                or (query.get("crop") == "1" and polygon_geometry(task.get("crop")) is not None))


@dataclass
class TileParams:
    size: int
    formula: str | None
    bands: str | None
    expression: str | None
    boundaries: object
    rescale: str
    color_map: str | None
    hillshade: str | None


def tile_params(query: dict, task: dict, raster_type: str) -> TileParams:
    """Steps 2-6 of WebODM's Tiles.get: boundaries JSON, `bands=auto`, `size`, the formula,
    then the defaults (in WebODM's order: an orthophoto formula without `rescale` is
    stretched over 0..255, as WebODM does)."""
    boundaries = parse_boundaries(query)
    formula = _value(query, "formula")
    bands, _ = resolve_bands(query, task, formula)
    raw_size = _value(query, "size")
    try:
        size = int(raw_size) if raw_size is not None else 256
    except ValueError:
        raise InvalidInput(INVALID_SIZE) from None
    if size not in TILE_SIZES:
        raise InvalidInput(INVALID_SIZE)
    expression, _ = lookup(formula, bands)
    rescale = _value(query, "rescale")
    color_map = _value(query, "color_map")
    if rescale is None:
        rescale = "0,1000" if raster_type in DEM_TYPES else "0,255"
    if raster_type in DEM_TYPES and color_map is None:
        color_map = "gray"
    if raster_type == "orthophoto" and formula and color_map is None:
        color_map = "gray"
    return TileParams(size, formula, bands, expression, boundaries, rescale, color_map,
                      _value(query, "hillshade"))


def rescale_range(text: str, raster_type: str, units: str | None) -> tuple[float, float]:
    """`rescale` as (min, max); for a DEM given in metres, in the band's own unit."""
    low, high = two_floats(text, INVALID_RESCALE)
    if raster_type in DEM_TYPES:
        factor = to_meter(units)
        low, high = low / factor, high / factor
    return low, high


def hillshade_exaggeration(text: str | None) -> float | None:
    """None: no hillshade (absent, empty or exactly `0`); any other value ≤ 0 is 1.0."""
    if text is None or text == "0":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(INVALID_HILLSHADE) from None
    return value if value > 0 else 1.0
