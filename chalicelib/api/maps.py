"""Map routes of a task's orthophoto, DSM and DTM: `tiles.json`, `bounds`, `metadata` and the
tiles themselves (WebODM's `app/api/tiler.py`: TileJson, Bounds, Metadata, Tiles).

Thin: who may read the task (access.py: a project viewer, or anyone for a public task or
project, `?jwt=` included), then chalicelib/rasters does the work. tiles.json and bounds
cost one task read; metadata without parameters one more S3 read of the document kept at
completion; tiles read the COG in S3 with range requests. Raster modules are imported
inside the views (cold start).
"""
from __future__ import annotations

from chalice import Blueprint, Response

from .. import access
from ..apidoc import STR, TILE, Param, doc
from ..errors import not_found
from .common import BODY_CONTENT_TYPES, optional_user, query_params, respond

bp = Blueprint(__name__)
ONE = "/api/projects/{project_id}/tasks/{task_id}"
RASTER_TYPES = ("orthophoto", "dsm", "dtm")
OUTSIDE_OF_BOUNDS = "Outside of bounds"
# Tiles do not change until the task is processed again; `private`: they may be a logged-in
# user's (a shared cache must not hand them to others), and an hour bounds how long a
# browser shows tiles of an older processing. The automatic format depends on Accept.
TILE_CACHE_CONTROL = "private, max-age=3600"
MAX_TILE_PIXELS = 1024  # scale × size; larger tiles would not fit Lambda's 6 MB answer

_RENDER_PARAMS = (Param("formula", STR, "An algorithm id (see metadata's `algorithms`)"),
                  Param("bands", STR, "Band order such as `RGN`, or `auto`"),
                  Param("rescale", STR, "`min,max` (DSM/DTM in metres)"),
                  Param("color_map", STR), Param("hillshade", STR, "Vertical exaggeration; `0`: none"))
_AREA_PARAMS = (Param("crop", STR, "`1`: cut to the task's crop polygon"),
                Param("boundaries", STR, "GeoJSON Polygon or MultiPolygon (EPSG:4326)"))


def _task(project_id: str, task_id: str) -> dict:
    return access.readable_task(optional_user(bp.current_request), project_id, task_id)


def _raster(task: dict, raster_type: str) -> dict:
    raster = (task.get("rasters") or {}).get(raster_type)
    if not raster or not raster.get("bounds"):
        raise not_found()
    return raster


def _zooms(raster: dict) -> tuple[int, int]:
    from ..rasters.params import ZOOM_EXTRA_LEVELS

    low = int(raster["minzoom"])
    high = max(int(raster["maxzoom"]), low)
    return low - ZOOM_EXTRA_LEVELS, high + ZOOM_EXTRA_LEVELS


def tile_json(project_id: str, task_id: str, raster_type: str) -> Response:
    from ..rasters.params import tile_url

    task = _task(project_id, task_id)
    raster = _raster(task, raster_type)
    minzoom, maxzoom = _zooms(raster)
    return respond({"tilejson": "2.1.0", "name": task.get("name"), "version": "1.0.0", "scheme": "xyz",
                    "tiles": [tile_url(task, raster_type, query_params(bp.current_request))],
                    "minzoom": minzoom, "maxzoom": maxzoom, "bounds": list(raster["bounds"])})


def bounds(project_id: str, task_id: str, raster_type: str) -> Response:
    from ..rasters.params import tile_url

    task = _task(project_id, task_id)
    raster = _raster(task, raster_type)
    return respond({"url": tile_url(task, raster_type, query_params(bp.current_request)),
                    "bounds": list(raster["bounds"])})


def metadata(project_id: str, task_id: str, raster_type: str) -> Response:
    from ..rasters import colormaps, formulas
    from ..rasters import metadata as raster_metadata
    from ..rasters import params

    query = query_params(bp.current_request)
    task = _task(project_id, task_id)
    asked = params.metadata_params(query, task)
    raster = _raster(task, raster_type)
    params.check_expression_bands(asked.expression, int(raster["count"]))
    value = list(raster["bounds"])
    if params.wants_computation(query, asked, task):
        cutline = params.cutline_geometry(query, asked.boundaries, task)
        if cutline is not None:
            value = params.geometry_bounds(cutline)
        document = raster_metadata.compute(raster, raster_type, expression=asked.expression, hrange=asked.hrange,
                                           cutline=cutline)
    else:
        document = raster_metadata.default_document(task["id"], raster_type, raster)
    minzoom, maxzoom = _zooms(raster)
    west, south, east, north = raster["bounds"]
    is_dem = raster_type in params.DEM_TYPES
    with_formula = not is_dem and bool(asked.formula and asked.bands)
    band_count = int(raster["count"]) - (1 if "alpha" in (raster.get("colorinterp") or []) else 0)
    crs = f"EPSG:{task['epsg']}" if task.get("epsg") else task.get("wkt")
    body = {
        "bounds": {"value": value, "crs": crs},
        "center": [(west + east) / 2, (south + north) / 2, int(raster["minzoom"])],
        "minzoom": minzoom, "maxzoom": maxzoom,
        **document,
        "name": task.get("name"), "scheme": "xyz",
        "tiles": [params.tile_url(task, raster_type, query)],
        "color_maps": colormaps.offered(raster_type, asked.formula, asked.bands),
        "algorithms": formulas.algorithm_list(band_count) if with_formula else [],
        "auto_bands": asked.auto_bands if not is_dem else {"filter": "", "match": None},
    }
    return respond(body)


def tile(project_id: str, task_id: str, raster_type: str, z: str, x: str, y: str) -> Response:
    from ..errors import InvalidInput
    from ..rasters import colormaps, params, tiler

    path = params.tile_path(z, x, y)
    if path is None:
        raise not_found()
    query = query_params(bp.current_request)
    task = _task(project_id, task_id)
    asked = params.tile_params(query, task, raster_type)
    if path.scale < 1 or path.scale * asked.size > MAX_TILE_PIXELS:
        raise InvalidInput("Invalid tile scale")
    zoom = path.z - 1 if asked.size == 512 else path.z
    tilesize = path.scale * asked.size
    raster = _raster(task, raster_type)
    if not tiler.tile_exists(raster, zoom, path.x, path.y):
        raise not_found(OUTSIDE_OF_BOUNDS)
    if not tiler.zoom_allowed(raster, zoom):
        raise not_found()
    cutline = params.cutline_geometry(query, asked.boundaries, task)
    params.check_expression_bands(asked.expression, int(raster["count"]))
    bands = tiler.output_bands(raster, raster_type, asked.expression)
    if asked.color_map is not None:
        if not colormaps.is_known(asked.color_map):
            raise InvalidInput(params.INVALID_COLOR_MAP)
        if bands != 1:
            raise InvalidInput(params.COLOR_MAP_MULTIBAND)
    low, high = params.rescale_range(asked.rescale, raster_type, raster.get("units"))
    exaggeration = params.hillshade_exaggeration(asked.hillshade)
    if exaggeration is not None and bands != 1:
        raise InvalidInput(params.HILLSHADE_MULTIBAND)
    buffer = tiler.HILLSHADE_BUFFER if exaggeration is not None else 0
    from rio_tiler.errors import TileOutsideBounds

    try:
        image = tiler.read_tile(raster, raster_type, zoom, path.x, path.y, tilesize,
                                expression=asked.expression, cutline=cutline, buffer=buffer)
    except TileOutsideBounds:
        raise not_found(OUTSIDE_OF_BOUNDS) from None
    fmt = tiler.choose_format(path.ext, tiler.valid_mask(image), bp.current_request.headers.get("accept", ""))
    body = tiler.render(image, raster=raster, raster_type=raster_type, z=zoom, low=low, high=high,
                        color_map=asked.color_map, exaggeration=exaggeration, buffer=buffer, fmt=fmt)
    headers = {"Content-Type": tiler.CONTENT_TYPES[fmt], "Cache-Control": TILE_CACHE_CONTROL}
    if path.ext is None:
        headers["Vary"] = "Accept"
    return Response(body=body, status_code=200, headers=headers)


# ------------------------------------------------------------------ routes, one set per type

def _register(raster_type: str) -> None:
    base = f"{ONE}/{raster_type}"

    def route(suffix: str, name: str, view, summary: str, responses: dict, query=()) -> None:
        view.__name__ = f"{raster_type}_{name}"
        view.__doc__ = summary
        bp.route(base + suffix, methods=["GET"], content_types=BODY_CONTENT_TYPES)(
            doc(summary, responses, auth="optional", tags=("maps",), query=query)(view))

    route("/tiles.json", "tiles_json", lambda project_id, task_id: tile_json(project_id, task_id, raster_type),
          f"TileJSON 2.1.0 of the {raster_type}", {200: dict}, _RENDER_PARAMS)
    route("/bounds", "bounds", lambda project_id, task_id: bounds(project_id, task_id, raster_type),
          f"Bounds and tile URL of the {raster_type}", {200: dict}, _RENDER_PARAMS)
    route("/metadata", "metadata", lambda project_id, task_id: metadata(project_id, task_id, raster_type),
          f"Metadata and statistics of the {raster_type}", {200: dict},
          _RENDER_PARAMS + (Param("range", STR, "`min,max` of the histogram"),) + _AREA_PARAMS)
    route("/tiles/{z}/{x}/{y}", "tile",
          lambda project_id, task_id, z, x, y: tile(project_id, task_id, raster_type, z, x, y),
          f"A map tile of the {raster_type}: `{{y}}`, `{{y}}.png|jpg|webp`, `{{y}}@{{scale}}x[.ext]`",
          {200: TILE}, _RENDER_PARAMS + (Param("size", {"enum": ["256", "512"]}),) + _AREA_PARAMS)


for _type in RASTER_TYPES:
    _register(_type)
