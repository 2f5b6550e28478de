"""Shrinking input images before processing (WebODM's `resize_to`, `resize_image`).

WebODM resizes in place; Aloft keeps the originals (`images/download` serves them) and writes
the smaller copies under `tasks/<id>/resized/`, which the relay sends instead. Each image keeps
the metadata photogrammetry needs: JPEG and PNG keep their EXIF block (GPS, focal length,
camera model), XMP and ICC profile. Rules as WebODM's: never enlarge, Lanczos, JPEG quality 100,
the aspect ratio kept (sides truncated to whole pixels).

TIFF images (multispectral and thermal cameras) follow WebODM's rule: resized unless their
samples are wider than 8 bits in several bands (16-bit multispectral stays as it is). Where
WebODM's resized TIFF loses its EXIF (Pillow offers none for a TIFF), Aloft copies the tags
across itself: the first directory's descriptive tags, XMP, and the EXIF and GPS
sub-directories. The copy is uncompressed because only Pillow's own TIFF writer can write
sub-directories; libtiff, which it uses for compressed TIFFs, refuses them. The GCP file's
pixel coordinates follow the resized images.
"""
from __future__ import annotations

import io
import logging

log = logging.getLogger(__name__)

RESIZABLE = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
UNTOUCHED = ("geo.txt", "image_groups.txt")
RATIO_METADATA = "resize-ratio"
TIFF_BITS_PER_SAMPLE = 258
TIFF_EXIF_IFD, TIFF_GPS_IFD, EXIF_INTEROP_IFD = 0x8769, 0x8825, 0xA005
# Tags that describe the stored pixels (size, layout, compression, strips, tiles, palette) or
# point at sub-directories: the writer sets its own; a copied one would describe the original.
TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, TIFF_BITS_PER_SAMPLE, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320,
    322, 323, 324, 325, 330, 338, 339, 347, 529, 530, 531, 532,  # 529-532: YCbCr (JPEG-in-TIFF)
    TIFF_EXIF_IFD, TIFF_GPS_IFD, EXIF_INTEROP_IFD,
})


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
            if max(width, height) <= longest_side or not _samples_resizable(image):
                return None
            ratio = longest_side / max(width, height)
            size = (max(1, int(width * ratio)), max(1, int(height * ratio)))
            info = dict(image.info)
            fmt = image.format
            tiff_tags = _tiff_tags(image) if fmt == "TIFF" else None
            resized = image.resize(size, Image.LANCZOS)
        out = io.BytesIO()
        if tiff_tags is not None:
            resized.save(out, "TIFF", compression="raw", tiffinfo=tiff_tags)
        else:
            keep = {k: info[k] for k in ("exif", "xmp", "icc_profile", "dpi") if info.get(k)}
            if fmt == "JPEG":
                resized.save(out, "JPEG", quality=100, **keep)
            else:
                resized.save(out, fmt or "PNG", **keep)
    except (UnidentifiedImageError, OSError, ValueError, RuntimeError) as exc:
        log.warning("Cannot resize %s: %s", name, exc)
        return None
    return out.getvalue(), ratio


def _samples_resizable(image) -> bool:
    """WebODM's rule: 8-bit (or single-band) samples only; Pillow cannot resample 16-bit
    multi-band images."""
    if image.format != "TIFF":
        return True
    bits = image.tag_v2.get(TIFF_BITS_PER_SAMPLE)
    if isinstance(bits, tuple) and len(bits) > 1:
        return bits[0] <= 8
    return True


def _tiff_tags(image):
    """The TIFF tags a resized copy keeps: descriptive tags of the first directory with their
    types, and the EXIF and GPS directories (focal length, GPS position) as sub-directories."""
    from PIL import TiffImagePlugin, TiffTags

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    source = image.tag_v2
    for tag, value in source.items():
        if tag in TIFF_LAYOUT_TAGS:
            continue
        tags[tag] = value
        if tag in source.tagtype:
            tags.tagtype[tag] = source.tagtype[tag]
    exif = image.getexif()
    for pointer in (TIFF_EXIF_IFD, TIFF_GPS_IFD):
        directory = {k: v for k, v in exif.get_ifd(pointer).items() if k != EXIF_INTEROP_IFD}
        if directory:
            tags.tagtype[pointer] = TiffTags.LONG
            tags[pointer] = directory
    return tags


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
