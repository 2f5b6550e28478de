"""Hillshading of elevation tiles, and its blend into a coloured tile (the shading WebODM's
map and exports use: a light from azimuth 315°, altitude 45°, then an HSV blend).

The maths, numpy only:
- the light's direction: azimuth a measured clockwise from north, altitude h above the
  horizon: (sin a · cos h, cos a · cos h, sin h) in (east, north, up);
- the surface normal of z = exaggeration · elevation, with the gradient taken over the
  pixel spacing (dx east per column, dy per row: negative for a north-up grid, so the
  row derivative is a derivative toward north): (−∂z/∂x, −∂z/∂y, 1), normalised;
- the intensity is their dot product, clipped to 0..1;
- the blend keeps each pixel's hue and saturation and puts the intensity in place of its
  value (HSV): for a colour whose value (its largest channel) is V, that is the colour
  scaled by intensity / V, and a grey of the intensity where V is 0.
"""
from __future__ import annotations

import math

AZIMUTH_DEGREES = 315.0
ALTITUDE_DEGREES = 45.0


def light_direction(azimuth: float = AZIMUTH_DEGREES, altitude: float = ALTITUDE_DEGREES) -> tuple:
    a, h = math.radians(azimuth), math.radians(altitude)
    return math.sin(a) * math.cos(h), math.cos(a) * math.cos(h), math.sin(h)


def intensity(elevation, dx: float, dy: float, exaggeration: float = 1.0,
              azimuth: float = AZIMUTH_DEGREES, altitude: float = ALTITUDE_DEGREES):
    """Illumination (0..1, float32) of a 2-D elevation array; NaN where the gradient is."""
    import numpy as np

    z = np.asarray(elevation, dtype=np.float64) * exaggeration
    d_row, d_col = np.gradient(z, dy, dx)
    east, north, up = light_direction(azimuth, altitude)
    with np.errstate(invalid="ignore", over="ignore"):
        length = np.sqrt(d_col * d_col + d_row * d_row + 1.0)
        lit = (-d_col * east - d_row * north + up) / length
        return np.clip(lit, 0.0, 1.0).astype(np.float32)


def blend(rgb, light):
    """uint8 RGB (3, h, w) shaded by `light` (h, w, 0..1): hue and saturation kept, value
    replaced. NaN light gives black."""
    import numpy as np

    colour = rgb.astype(np.float32) / 255.0
    value = colour.max(axis=0)
    light = np.nan_to_num(light, nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(value > 0, light / np.where(value > 0, value, 1.0), 0.0)
    shaded = colour * scale
    shaded = np.where(value > 0, shaded, light)  # black has no hue: a grey of the light
    return np.clip(shaded * 255.0, 0, 255).astype(np.uint8)
