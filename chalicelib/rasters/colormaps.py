"""Colour maps: rio-tiler's registry plus WebODM's two NDVI maps
(`app/api/custom_colormaps_helper.py`), the lists the metadata route offers, and their
encoding for clients (`get_colormap_encoded_values`: one integer R·2²⁴ + G·2¹⁶ + B·2⁸ + A
per entry, in index order).

Names and lists are plain Python; rio-tiler (numpy) is imported only for the colours.
"""
from __future__ import annotations

import functools
import math

# Offered with DSM/DTM, in this order.
DEM_COLOR_MAPS = ("viridis", "jet", "terrain", "gist_earth", "pastel1")
# Offered with an orthophoto formula, in this order.
FORMULA_COLOR_MAPS = ("rdylgn", "spectral", "rdylgn_r", "spectral_r", "rplumbo", "discrete_ndvi",
                      "better_discrete_ndvi", "viridis", "plasma", "inferno", "magma", "cividis", "jet",
                      "jet_r")
LABELS = {
    "viridis": "Viridis", "jet": "Jet", "jet_r": "Jet (Reverse)", "terrain": "Terrain", "gist_earth": "Earth",
    "pastel1": "Pastel", "rdylgn": "RdYlGn", "rdylgn_r": "RdYlGn (Reverse)", "spectral": "Spectral",
    "spectral_r": "Spectral (Reverse)", "discrete_ndvi": "Contrast NDVI",
    "better_discrete_ndvi": "Custom NDVI Index", "rplumbo": "Rplumbo (Better NDVI)", "plasma": "Plasma",
    "inferno": "Inferno", "magma": "Magma", "cividis": "Cividis",
}
# WebODM's own maps: n colours spread over indices 0..254 (index i takes colour
# floor(i / 256 * n)); index 255 has no entry, so it renders transparent, as in WebODM.
CUSTOM = {
    "discrete_ndvi": ("#AD0028", "#FFAB69", "#FDFEC2", "#77CA6F", "#014729"),
    "better_discrete_ndvi": ("#AD0028", "#C5142A", "#E02D2C", "#EF4C3A", "#FE6C4A", "#FF8D5A", "#FFAB69",
                             "#FFC67D", "#FFE093", "#FFEFAB", "#FDFEC2", "#EAF7AC", "#D5EF94", "#B9E383",
                             "#9BD873", "#77CA6F", "#53BD6B", "#14AA60", "#009755", "#007E47"),
}
_CUSTOM_ENTRIES = 255


def _rgba(hex_colour: str) -> tuple[int, int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16), 255


@functools.lru_cache(maxsize=1)
def names() -> frozenset[str]:
    """Every colour map a `color_map` parameter may name."""
    from rio_tiler.colormap import cmap

    return frozenset(cmap.list()) | frozenset(CUSTOM)


def is_known(name: str) -> bool:
    return name in names()


@functools.lru_cache(maxsize=64)
def entries(name: str) -> tuple[tuple[int, int, int, int], ...]:
    """The map's RGBA entries in index order."""
    if name in CUSTOM:
        colours = [_rgba(c) for c in CUSTOM[name]]
        return tuple(colours[math.floor(i / 256 * len(colours))] for i in range(_CUSTOM_ENTRIES))
    from rio_tiler.colormap import cmap

    table = cmap.get(name)
    return tuple(tuple(int(v) for v in table[i]) for i in sorted(table))


@functools.lru_cache(maxsize=64)
def lookup_table(name: str):
    """A 256×4 uint8 table; indices the map lacks are transparent black."""
    import numpy as np

    table = np.zeros((256, 4), dtype=np.uint8)
    for index, rgba in enumerate(entries(name)):
        table[index] = rgba
    table.setflags(write=False)
    return table


def encoded(name: str) -> list[int]:
    return [(r << 24) + (g << 16) + (b << 8) + a for r, g, b, a in entries(name)]


def offered(raster_type: str, formula: str | None, bands: str | None) -> list[dict]:
    """The `color_maps` of a metadata answer: `{"key", "color_map", "label"}` entries."""
    if raster_type in ("dsm", "dtm"):
        keys = DEM_COLOR_MAPS
    elif formula and bands:
        keys = FORMULA_COLOR_MAPS
    else:
        return []
    return [{"key": key, "color_map": encoded(key), "label": LABELS[key]} for key in keys]
