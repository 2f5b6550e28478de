"""Input-image thumbnails (WebODM's `imageuploads.Thumbnail.get`), with Pillow only.

Parameters, their defaults and ranges are WebODM's; any invalid one is the same 400. The
picture is made as WebODM makes it: non-RGB single-band images are stretched to 0..255, the
centre may move and the view may zoom (nearest-neighbour), points are drawn as circles,
then it is fitted into `size` x `size` (never enlarged) and saved as a progressive JPEG.

Two differences, both about Lambda:
- A JPEG is decoded at a reduced scale (Pillow's `draft`: 1/2, 1/4 or 1/8, never below what
  the answer needs), so a small thumbnail of a 25 MB photo decodes a small picture.
- An answer travels base64-encoded in Lambda's 6 MB response: the JPEG may take at most
  MAX_JPEG_BYTES. A larger one (a 25 MB photo asked at full size and quality 100 is about
  that size again) is scaled down until it fits, keeping the quality asked for.
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field

from .errors import InvalidInput

INVALID = "Invalid query parameters"
# Base64 makes 4/3 of this; with headers the proxy answer stays under 6,291,456 bytes.
MAX_JPEG_BYTES = 4_500_000
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass
class Point:
    x: float
    y: float
    color: str = "#ffffff"
    radius: float = 1.0


@dataclass
class Options:
    size: int = 512
    quality: int = 75
    center_x: float = 0.5
    center_y: float = 0.5
    zoom: float = 1.0
    points: list[Point] = field(default_factory=list)


def _number(text: str, kind):
    value = kind(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(text)
    return value


def parse_options(single: dict[str, str], lists: dict[str, list[str]]) -> Options:
    """WebODM's parameter checks; InvalidInput("Invalid query parameters") on any failure."""
    try:
        options = Options()
        if "size" in single:
            options.size = _number(single["size"], int)
            if options.size < 1:
                raise ValueError("size")
        if "quality" in single:
            options.quality = _number(single["quality"], int)
            if not 0 <= options.quality <= 100:
                raise ValueError("quality")
        for name in ("center_x", "center_y"):
            if name in single:
                value = _number(single[name], float)
                if not -0.5 <= value <= 1.5:
                    raise ValueError(name)
                setattr(options, name, value)
        if "zoom" in single:
            options.zoom = _number(single["zoom"], float)
            if not 0.1 <= options.zoom <= 10:
                raise ValueError("zoom")
        colors = lists.get("point_color", [])
        radii = lists.get("point_radius", [])
        for index, text in enumerate(lists.get("draw_point", [])):
            parts = text.split(",")
            if len(parts) != 2:
                raise ValueError("draw_point")
            point = Point(_number(parts[0], float), _number(parts[1], float))
            if index < len(colors):
                match = _HEX.match(colors[index])
                point.color = "#" + match.group(1) if match else "#ffffff"
            if index < len(radii):
                point.radius = _number(radii[index], float)
            options.points.append(point)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(INVALID) from None
    return options


def _open(data: bytes):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.size  # noqa: B018 - the header parsed
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("Cannot read this file as an image") from None
    return image


def _as_rgb(image):
    """RGB as it is; a single-band image min/max-stretched to 0..255 as one band (WebODM).
    Multi-band non-RGB images (RGBA, CMYK...) make WebODM fail (a 500): a 400 here."""
    import numpy as np
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F"):
        raise InvalidInput(f"Cannot make a thumbnail of a {image.mode} image")
    data = np.asarray(image, dtype="float64")
    low, high = float(data.min()), float(data.max())
    scaled = (data - low) * (255.0 / (high - low)) if high > low else np.zeros_like(data)
    return Image.fromarray(scaled.clip(0, 255).astype("uint8"), "L").convert("RGB")


def render(data: bytes, options: Options) -> bytes:
    """The thumbnail of the image `data` as a progressive JPEG."""
    from PIL import Image, ImageDraw

    image = _open(data)
    full_w, full_h = image.size
    size = min(options.size, max(full_w, full_h))  # never enlarged
    factor = 2 ** (options.zoom - 1)
    if image.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 when the answer needs no more (zoomed views need more).
        wanted = min(max(full_w, full_h), math.ceil(size * max(1.0, factor)))
        image.draft("RGB" if image.mode == "RGB" else image.mode, (wanted, wanted))
    try:
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("Cannot read this file as an image") from None
    image = _as_rgb(image)
    w, h = image.size
    cx, cy = options.center_x, options.center_y
    if cx != 0.5 or cy != 0.5:
        image = image.crop((round(w * (cx - 0.5)), round(h * (cy - 0.5)),
                            round(w * (cx + 0.5)), round(h * (cy + 0.5))))
    off_x = off_y = 0.0
    if options.zoom != 1:
        off_x, off_y = w / 2 - w / (2 * factor), h / 2 - h / (2 * factor)
        box = (round(off_x), round(off_y), round(off_x + w / factor), round(off_y + h / factor))
        image = image.crop(box)
        image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                             Image.Resampling.NEAREST)
    if options.points:
        draw = ImageDraw.Draw(image)
        for point in options.points:
            r = point.radius * max(w, h) / 100
            x = (point.x + 0.5 - cx) * w * factor - off_x * factor
            y = (point.y + 0.5 - cy) * h * factor - off_y * factor
            draw.ellipse((x - r, y - r, x + r, y + r), outline=point.color, width=max(1, math.floor(r / 3)))
    image.thumbnail((size, size))
    return _encode(image, options.quality)


def _encode(image, quality: int) -> bytes:
    """Progressive JPEG; scaled down until it fits MAX_JPEG_BYTES (Lambda's answer)."""
    from PIL import Image

    while True:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, progressive=True)
        if out.tell() <= MAX_JPEG_BYTES or max(image.size) <= 16:
            return out.getvalue()
        shrink = math.sqrt(MAX_JPEG_BYTES / out.tell()) * 0.9
        image = image.resize((max(1, int(image.width * shrink)), max(1, int(image.height * shrink))),
                             Image.Resampling.LANCZOS)
