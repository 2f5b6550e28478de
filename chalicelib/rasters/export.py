"""Raster exports (WebODM's `export_raster`): GeoTIFF, GeoTIFF RGB, JPEG, PNG and KMZ of the
orthophoto, DSM or DTM, with band math, colour maps, hillshading, rescaling, a crop and a
reprojection, made by the worker in its scratch space.

The source COG is read from S3 in 512 x 512 windows (HTTP range requests), each processed and
written before the next is read, so memory stays a few MB whatever the raster's size; only
the output (and, when reprojecting or packaging, one intermediate GeoTIFF) goes to the
worker's ephemeral storage. The steps:

1. the area: the whole raster, or the bounding box of the task's crop (pixels outside the
   crop polygon count as no data);
2. the picture in the source CRS (`<base>.tif`, tiled, compressed), window by window;
3. when `epsg`/`proj` names another CRS: warped window by window into the final GeoTIFF
   (nearest neighbour, bilinear for elevation), as WebODM's `gdalwarp`;
4. JPEG and PNG are GDAL copies of that GeoTIFF; KMZ is GDAL's KMLSUPEROVERLAY driver on the
   RGBA GeoTIFF (a tiled super-overlay, JPEG or PNG tiles, reprojected to EPSG:4326 by GDAL).
"""
from __future__ import annotations

import os
import re
import zipfile
from xml.sax.saxutils import escape

from ..exports import ExportError as ExportFailed
from . import gdal

WINDOW = 512
DEM_PAD = 16
DEM_DEFAULT_NODATA = -9999.0
FORMULA_NODATA = -9999.0
JPEG_MAX_PIXELS = 65000
JPEG_TOO_LARGE = "Image is too large (> 65000px) for JPEG. Use TIFF (RGB) instead."
HILLSHADE_DELTA = 3 ** 2        # WebODM's ZOOM_EXTRA_LEVELS squared
STATS_MAX_SIZE = 1024           # rio-tiler's metadata read: longest side at most 1024 px
_KMZ_NAME = "ALOFTKMZNAME"



# ------------------------------------------------------------------ pixel helpers

def _rescale(values, low: float, high: float):
    """Linear to 0..255 (clipped); an empty range gives 0. float64 in, float64 out."""
    import numpy as np

    span = high - low
    if span == 0:
        return np.zeros_like(values, dtype="float64")
    return ((values.astype("float64") - low) * (255.0 / span)).clip(0, 255)


def _colormap_rgb(index, name: str | None):
    """uint8 indexes through a 256-entry colour map -> (3, h, w) uint8 (gray without one)."""
    import numpy as np

    if not name:
        return np.stack([index] * 3)
    from . import colormaps

    table = colormaps.lookup_table(name)  # (256, 4) uint8
    return table[index][..., :3].transpose(2, 0, 1).copy()


def _shade(rgb, elevation, valid, dx: float, dy: float, exaggeration: float):
    """WebODM's DEM export hillshade: matplotlib's LightSource (315 deg, 45 deg) intensity,
    HSV-blended into the colours. `elevation` carries the padding; the result does not."""
    import numpy as np

    from . import hillshade

    filled = elevation.astype("float64")
    if not valid.all():
        filled = np.where(valid, filled, filled[valid].mean() if valid.any() else 0.0)
    light = hillshade.intensity(filled, dx=dx, dy=dy, exaggeration=exaggeration)
    pad_y = (elevation.shape[0] - rgb.shape[1]) // 2
    pad_x = (elevation.shape[1] - rgb.shape[2]) // 2
    return hillshade.blend(rgb, light[pad_y:pad_y + rgb.shape[1], pad_x:pad_x + rgb.shape[2]])


# ------------------------------------------------------------------ the plan

class Plan:
    """What one export makes, decided once from the source and the parameters."""

    def __init__(self, src, kind: str, params: dict, crop: dict | None):
        from rasterio.enums import ColorInterp
        from rasterio.windows import Window

        self.src = src
        self.kind = kind
        self.fmt = "gtiff-rgb" if params["format"] == "kmz" else params["format"]
        self.kmz = params["format"] == "kmz"
        self.dem = kind in ("dsm", "dtm")
        self.rgb = self.fmt in ("gtiff-rgb", "jpg", "png")
        self.alpha_out = self.fmt != "jpg"
        self.expr = params.get("expr")
        self.color_map = params.get("color_map")
        self.hillshade = params.get("hillshade")
        self.rescale = params.get("rescale")
        interp = list(src.colorinterp)
        self.alpha_index = interp.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in interp else None
        self.colour_indexes = self._colour_indexes(interp)
        self.area = Window(0, 0, src.width, src.height)
        self.crop = None
        if crop is not None:
            self._set_crop(crop)
        self.nodata = src.nodata if src.nodata is not None else (DEM_DEFAULT_NODATA if self.dem else None)
        if self.rgb and self.rescale is None:
            self.rescale = self._band1_range()

    def _colour_indexes(self, interp) -> list[int]:
        from rasterio.enums import ColorInterp

        non_alpha = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
        if not self.rgb:
            return non_alpha
        if len(interp) > 4 and all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
            return [interp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)]
        if len(non_alpha) < 3:
            return [non_alpha[0]] * 3  # gray (thermal): three times
        return non_alpha[:3]

    def _set_crop(self, crop: dict) -> None:
        from rasterio import windows
        from rasterio.errors import WindowError
        from rasterio.warp import transform_geom

        from .thumbnail import _coordinates

        geometry = transform_geom("EPSG:4326", self.src.crs, crop)
        xs, ys = _coordinates(geometry)
        area = windows.from_bounds(min(xs), min(ys), max(xs), max(ys), transform=self.src.transform)
        try:
            area = area.round_offsets(op="floor").round_lengths(op="ceil").intersection(self.area)
        except WindowError:
            raise ExportFailed("The crop area does not overlap the raster") from None
        if area.width < 1 or area.height < 1:
            raise ExportFailed("The crop area does not overlap the raster")
        self.area, self.crop = area, geometry

    # -- reading ---------------------------------------------------------------------------
    def windows(self):
        """Windows of the area, row by row, in area pixel coordinates and source ones."""
        from rasterio.windows import Window

        for row in range(0, int(self.area.height), WINDOW):
            for col in range(0, int(self.area.width), WINDOW):
                width = min(WINDOW, int(self.area.width) - col)
                height = min(WINDOW, int(self.area.height) - row)
                yield (Window(col, row, width, height),
                       Window(int(self.area.col_off) + col, int(self.area.row_off) + row, width, height))

    def valid(self, window):
        """Pixels with data: GDAL's dataset mask (alpha band or nodata) and inside the crop."""
        import numpy as np

        valid = self.src.dataset_mask(window=window) > 0
        if self.kind == "orthophoto" and self.alpha_index is None:
            valid &= np.any(self.src.read(self.colour_indexes, window=window) != 0, axis=0)  # WebODM: nodata 0
        if self.crop is not None:
            from rasterio.features import geometry_mask

            valid &= ~geometry_mask([self.crop], out_shape=valid.shape,
                                    transform=self.src.window_transform(window))
        return valid

    def _band1_range(self) -> list[float]:
        """WebODM's automatic rescale of picture formats: min and max of band 1 (the orthophoto
        read with nodata 0), from a decimated read of the area as rio-tiler's metadata does."""
        import numpy as np
        from rasterio.enums import Resampling

        scale = min(1.0, STATS_MAX_SIZE / max(self.area.width, self.area.height))
        shape = (max(1, round(self.area.height * scale)), max(1, round(self.area.width * scale)))
        band = self.src.read(1, window=self.area, out_shape=shape, resampling=Resampling.nearest, masked=True)
        values = band.compressed()
        if self.kind == "orthophoto":
            values = values[values != 0]
        values = values[np.isfinite(values)]
        if values.size == 0:
            return [0.0, 255.0]
        return [float(values.min()), float(values.max())]

    # -- output ----------------------------------------------------------------------------
    def profile(self) -> dict:
        """The source-CRS GeoTIFF profile of step 2."""
        from rasterio.windows import transform as window_transform

        profile = {"driver": "GTiff", "width": int(self.area.width), "height": int(self.area.height),
                   "crs": self.src.crs, "transform": window_transform(self.area, self.src.transform),
                   "tiled": True, "blockxsize": WINDOW, "blockysize": WINDOW, "BIGTIFF": "IF_SAFER"}
        if self.rgb:
            profile.update(count=4 if self.alpha_out else 3, dtype="uint8")
            if self.fmt == "gtiff-rgb":
                profile.update(compress="JPEG", jpeg_quality=90, photometric="RGB")
            else:
                profile.update(compress="DEFLATE", predictor=2)
        elif self.expr:
            profile.update(count=1, dtype="float32", nodata=FORMULA_NODATA, compress="DEFLATE", predictor=2)
        elif self.dem:
            profile.update(count=1, dtype=self.src.dtypes[0], nodata=self.nodata, compress="DEFLATE", predictor=2)
        else:
            indexes = self.raw_indexes()
            profile.update(count=len(indexes), dtype=self.src.dtypes[0], nodata=self.src.nodata,
                           compress="DEFLATE", predictor=2)
        return profile

    def raw_indexes(self) -> list[int]:
        return self.colour_indexes + ([self.alpha_index] if self.alpha_index else [])

    def colorinterp(self):
        from rasterio.enums import ColorInterp

        if self.rgb:
            return [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + (
                [ColorInterp.alpha] if self.alpha_out else [])
        if self.expr or self.dem:
            return [ColorInterp.gray]
        return [self.src.colorinterp[i - 1] for i in self.raw_indexes()]

    # -- one window ------------------------------------------------------------------------
    def render(self, window):
        """The output bands of one source window."""
        if self.expr:
            return self._formula(window)
        if self.dem:
            return self._dem(window)
        return self._bands(window)

    def _finish_rgb(self, rgb, valid):
        """White where there is no data, alpha from the validity (none for JPEG)."""
        import numpy as np

        rgb = rgb.astype("uint8")
        rgb[:, ~valid] = 255
        if self.alpha_out:
            return np.concatenate([rgb, (valid * 255).astype("uint8")[None]])
        return rgb

    def _formula(self, window):
        import numexpr
        import numpy as np

        names = sorted(set(re.findall(r"b(\d{1,2})", self.expr)), key=int)
        data = self.src.read([int(n) for n in names], window=window, out_dtype="float32")
        local = {f"b{n}": data[i] for i, n in enumerate(names)}
        value = np.nan_to_num(numexpr.evaluate(self.expr.split(",")[0].strip(), local_dict=local)).astype("float32")
        valid = self.valid(window) & (np.abs(value) <= 1e30)
        if not self.rgb:
            value[~valid] = FORMULA_NODATA
            return value[None]
        low, high = self.rescale
        index = _rescale(value, low, high).astype("uint8")
        return self._finish_rgb(_colormap_rgb(index, self.color_map), valid)

    def _dem(self, window):
        import numpy as np

        if not self.rgb:
            elevation = self.src.read(1, window=window)
            if self.crop is not None and self.nodata is not None:
                elevation[~self.valid(window)] = self.nodata
            return elevation[None]
        pad = DEM_PAD if self.hillshade else 0
        elevation, valid = self._padded(window, pad)
        core = (slice(pad, pad + int(window.height)), slice(pad, pad + int(window.width)))
        low, high = self.rescale
        index = _rescale(elevation[core], low, high).astype("uint8")
        rgb = _colormap_rgb(index, self.color_map)
        if self.hillshade:
            xres, yres = self.src.transform.a, self.src.transform.e
            rgb = _shade(rgb, elevation, valid, xres * HILLSHADE_DELTA, yres * HILLSHADE_DELTA, self.hillshade)
        return self._finish_rgb(rgb, valid[core])

    def _padded(self, window, pad: int):
        """Band 1 of `window` grown by `pad` pixels on every side (nodata beyond the raster),
        and its validity."""
        import numpy as np
        from rasterio.windows import Window

        col0, row0 = int(window.col_off) - pad, int(window.row_off) - pad
        width, height = int(window.width) + 2 * pad, int(window.height) + 2 * pad
        left, top = max(0, col0), max(0, row0)
        right, bottom = min(self.src.width, col0 + width), min(self.src.height, row0 + height)
        inner = Window(left, top, right - left, bottom - top)
        fill = self.nodata if self.nodata is not None else np.nan
        elevation = np.full((height, width), fill, dtype="float64")
        valid = np.zeros((height, width), dtype=bool)
        ys, xs = slice(top - row0, bottom - row0), slice(left - col0, right - col0)
        elevation[ys, xs] = self.src.read(1, window=inner)
        valid[ys, xs] = self.valid(inner)
        valid &= np.isfinite(elevation)
        return elevation, valid

    def _bands(self, window):
        import numpy as np

        valid = self.valid(window)
        if not self.rgb:
            data = self.src.read(self.raw_indexes(), window=window)
            if self.alpha_index is not None:
                data[-1][~valid] = 0
                data[:-1, data[-1] == 0] = 255  # WebODM: colour under alpha 0 is white
            elif self.crop is not None:
                data[:, ~valid] = 0
            return data
        data = self.src.read(self.colour_indexes, window=window)
        low, high = self.rescale
        return self._finish_rgb(_rescale(data, low, high), valid)


# ------------------------------------------------------------------ the export

def _target_crs(params: dict, src_crs):
    """The CRS to reproject to, or None when the output stays in the source's."""
    from rasterio.crs import CRS

    if params["format"] == "kmz" or src_crs is None:
        return None  # KMZ: GDAL's driver makes it EPSG:4326 itself
    if params.get("epsg") is not None:
        target = CRS.from_epsg(int(params["epsg"]))
    elif params.get("proj"):
        target = CRS.from_string(params["proj"])
    else:
        return None
    return None if target == src_crs else target


def _write(plan: Plan, path: str, report, share: float) -> None:
    from rasterio import open as open_raster

    windows = list(plan.windows())
    with open_raster(path, "w", **plan.profile()) as dst:
        for number, (out_window, src_window) in enumerate(windows, start=1):
            dst.write(plan.render(src_window), window=out_window)
            report(f"Processing tile {number}/{len(windows)}", share * number / len(windows))
        dst.colorinterp = plan.colorinterp()
        if plan.dem and not plan.rgb and not plan.expr and plan.src.units and plan.src.units[0]:
            dst.units = (plan.src.units[0],)


def _reproject(source: str, path: str, crs, dem: bool, report) -> None:
    """WebODM's `gdalwarp -t_srs ... -of VRT` then `gdal_translate`: a warped view of the
    source-CRS GeoTIFF copied window by window."""
    from rasterio import open as open_raster
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    resampling = Resampling.bilinear if dem else Resampling.nearest
    with open_raster(source) as src, WarpedVRT(src, crs=crs, resampling=resampling) as vrt:
        profile = src.profile.copy()
        profile.update(width=vrt.width, height=vrt.height, crs=vrt.crs, transform=vrt.transform)
        windows = [Window(c, r, min(WINDOW, vrt.width - c), min(WINDOW, vrt.height - r))
                   for r in range(0, vrt.height, WINDOW) for c in range(0, vrt.width, WINDOW)]
        with open_raster(path, "w", **profile) as dst:
            for number, window in enumerate(windows, start=1):
                dst.write(vrt.read(window=window), window=window)
                report(f"Processing tile {number}/{len(windows)}", 80.0 + 20.0 * number / len(windows))
            dst.colorinterp = src.colorinterp
            if src.units and src.units[0]:
                dst.units = src.units


def _kmz(source: str, path: str, name: str) -> None:
    """GDAL's KMLSUPEROVERLAY of the RGBA GeoTIFF; the document named after the task (rasterio
    upper-cases creation option values, so the name is put in afterwards)."""
    import rasterio.shutil

    staged = os.path.join(os.path.dirname(path), "superoverlay.kmz")  # one ".kmz" in the path (/vsizip/)
    rasterio.shutil.copy(source, staged, driver="KMLSUPEROVERLAY", NAME=_KMZ_NAME, FORMAT="AUTO")
    with zipfile.ZipFile(staged) as original, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in original.infolist():
            data = original.read(info)
            if info.filename == "doc.kml":
                data = data.replace(f"<name>{_KMZ_NAME}</name>".encode(),
                                    f"<name>{escape(name)}</name>".encode("utf-8"))
            out.writestr(info, data)
    os.unlink(staged)


def export(source_key: str, task: dict, kind: str, params: dict, scratch: str, report) -> str:
    """Make the export in `scratch`; its path. `report(status, percent)` is WebODM's progress."""
    import rasterio
    import rasterio.shutil

    fmt = params["format"]
    base = os.path.join(scratch, "base.tif")
    with gdal.s3_env(), rasterio.open(gdal.vsis3_path(source_key)) as src:
        plan = Plan(src, kind, params, params.get("crop"))
        target = _target_crs(params, src.crs)
        if fmt == "jpg" and max(plan.area.width, plan.area.height) > JPEG_MAX_PIXELS and target is None:
            raise ExportFailed(JPEG_TOO_LARGE)
        _write(plan, base, report, 80.0 if (target is not None or fmt == "kmz") else 100.0)
    picture = base
    if target is not None:
        picture = os.path.join(scratch, "warped.tif")
        _reproject(base, picture, target, plan.dem, report)
        os.unlink(base)
    extension = "tif" if fmt in ("gtiff", "gtiff-rgb") else fmt
    path = os.path.join(scratch, f"export.{extension}")
    if fmt in ("gtiff", "gtiff-rgb"):
        os.replace(picture, path)
    elif fmt == "kmz":
        _kmz(picture, path, task.get("name") or "raster")
    else:
        with rasterio.open(picture) as check:
            if fmt == "jpg" and max(check.width, check.height) > JPEG_MAX_PIXELS:
                raise ExportFailed(JPEG_TOO_LARGE)
        options = {"QUALITY": "90"} if fmt == "jpg" else {}
        rasterio.shutil.copy(picture, path, driver="JPEG" if fmt == "jpg" else "PNG", **options)
    for leftover in (base, os.path.join(scratch, "warped.tif")):
        if os.path.exists(leftover) and leftover != path:
            os.unlink(leftover)
    return path
