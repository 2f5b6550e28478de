"""Shrinking input images before processing (WebODM's `resize_to`, `resize_image`).

WebODM resizes in place; Aloft keeps the originals (`images/download` serves them) and writes
the smaller copies under `tasks/<id>/resized/`, which the relay sends instead. Each image keeps
the metadata photogrammetry needs: JPEG and PNG keep their EXIF block (GPS, focal length,
camera model), XMP and ICC profile. Rules as WebODM's: never enlarge, Lanczos, JPEG quality 100,
the aspect ratio kept (sides truncated to whole pixels).

TIFF images are sent as they are: Pillow cannot write a TIFF's GPS and EXIF directories back
(WebODM uses exiftool for that), and a resized image without its GPS would break the
reconstruction silently. The GCP file's pixel coordinates follow the resized images.
"""
from __future__ import annotations

import io
import logging

log = logging.getLogger(__name__)

RESIZABLE = (".jpg", ".jpeg", ".png")
UNTOUCHED = ("geo.txt", "image_groups.txt")
RATIO_METADATA = "resize-ratio"


def can_resize(name: str) -> bool:
    return name.lower().endswith(RESIZABLE)


def is_gcp_file(name: str) -> bool:
    """The GCP list: a .txt that is not one of the files WebODM leaves out of resizing."""
    lower = name.lower()
    return lower.endswith(".txt") and lower not in UNTOUCHED and not lower.startswith("align.")


def resize_image(name: str, data: bytes, longest_side: int) -> tuple[bytes, float] | None:
    """The resized image and its ratio, or None when it stays as it is (already small enough,
    or not an image Pillow can read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max(width, height) <= longest_side:
                return None
            ratio = longest_side / max(width, height)
            size = (max(1, int(width * ratio)), max(1, int(height * ratio)))
            info = dict(image.info)
            fmt = image.format
            resized = image.resize(size, Image.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        log.warning("Cannot resize %s: %s", name, exc)
        return None
    keep = {k: info[k] for k in ("exif", "xmp", "icc_profile", "dpi") if info.get(k)}
    out = io.BytesIO()
    if fmt == "JPEG":
        resized.save(out, "JPEG", quality=100, **keep)
    else:
        resized.save(out, fmt or "PNG", **keep)
    return out.getvalue(), ratio


def rescale_gcp(text: str, ratios: dict[str, float]) -> str:
    """The GCP file with each line's pixel coordinates (columns 4 and 5) multiplied by its
    image's ratio; image names match case-insensitively; other lines stay as they are."""
    by_name = {name.lower(): ratio for name, ratio in ratios.items()}
    lines = text.splitlines()
    out = lines[:1]  # the projection line
    for line in lines[1:]:
        parts = line.split()
        ratio = by_name.get(parts[5].lower()) if len(parts) >= 6 else None
        if ratio is None:
            out.append(line)
            continue
        try:
            x, y = float(parts[3]) * ratio, float(parts[4]) * ratio
        except ValueError:
            out.append(line)
            continue
        parts[3], parts[4] = f"{x:g}", f"{y:g}"
        out.append(" ".join(parts))
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
