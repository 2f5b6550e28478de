"""Vegetation and thermal indices over an orthophoto's bands (WebODM's `app/api/formulas.py`).

A formula is written in band letters: R, G, B, N (near infrared), Re (red edge), P
(panchromatic), L (long-wave infrared); a letter is one capital and any lowercase letters
after it. A band order (`bands`, e.g. `RGN` for a modified camera whose third band is NIR)
says which band of the file each letter is, and turns the formula into a rio-tiler
expression over `b1`, `b2`... Pure Python: no raster library is loaded here.
"""
from __future__ import annotations

import re

_LETTER = re.compile(r"[A-Z][a-z]*")

# id -> (expression in band letters, help text, value range or None). The order is the
# order clients list them in. Ids starting with `_` exist for tests only and are never
# listed.
ALGORITHMS: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "NDVI": ("(N - R) / (N + R)",
             "Normalized Difference Vegetation Index: how green and dense plants are.", (-1, 1)),
    "NDYI": ("(G - B) / (G + B)",
             "Normalized Difference Yellowness Index: how many yellow flowers there are.", (-1, 1)),
    "NDRE": ("(N - Re) / (N + Re)",
             "Normalized Difference Red Edge Index: chlorophyll in plants past their early stages.", (-1, 1)),
    "NDWI": ("(G - N) / (G + N)",
             "Normalized Difference Water Index: open water and the water content of plants.", (-1, 1)),
    "NDVI (Blue)": ("(N - B) / (N + B)",
                    "NDVI with the blue band, for cameras whose red channel records near infrared.", (-1, 1)),
    "ENDVI": ("((N + G) - (2 * B)) / ((N + G) + (2 * B))",
              "Enhanced NDVI: plant health with the green band's reflectance as well.", None),
    "vNDVI": ("0.5268 * ((R ** -0.1294) * (G ** 0.3389) * (B ** -0.3118))",
              "Visible NDVI: an estimate of NDVI from an ordinary RGB camera.", None),
    "VARI": ("(G - R) / (G + R - B)",
             "Visible Atmospherically Resistant Index: vegetation from RGB, less sensitive to the atmosphere.",
             (-1, 1)),
    "MPRI": ("(G - R) / (G + R)",
             "Modified Photochemical Reflectance Index: plant stress from the visible bands.", (-1, 1)),
    "EXG": ("(2 * G) - (R + B)",
            "Excess Green Index: tells green plants from soil and residue.", None),
    "BAI": ("1.0 / (((0.1 - R) ** 2) + ((0.06 - N) ** 2))",
            "Burn Area Index: areas affected by fire.", None),
    "GLI": ("((2 * G) - R - B) / ((2 * G) + R + B)",
            "Green Leaf Index: green leaves and stems from RGB.", (-1, 1)),
    "GNDVI": ("(N - G) / (N + G)",
              "Green NDVI: chlorophyll content, with green in place of red.", (-1, 1)),
    "GRVI": ("N / G",
             "Green Ratio Vegetation Index: photosynthetic activity and leaf area.", None),
    "SAVI": ("(1.5 * (N - R)) / (N + R + 0.5)",
             "Soil Adjusted Vegetation Index: NDVI corrected for bright soil under sparse plants.", None),
    "MNLI": ("(1.5 * ((N ** 2) - R)) / ((N ** 2) + R + 0.5)",
             "Modified Non-Linear Index: vegetation over bright soil, corrected for the soil.", None),
    "MSR": ("((N / R) - 1) / (sqrt(N / R) + 1)",
            "Modified Simple Ratio: biophysical parameters of dense vegetation.", None),
    "RDVI": ("(N - R) / sqrt(N + R)",
             "Renormalized Difference Vegetation Index: healthy plants, insensitive to soil and view.", None),
    "TDVI": ("1.5 * ((N - R) / sqrt((N ** 2) + R + 0.5))",
             "Transformed Difference Vegetation Index: vegetation cover in urban areas.", None),
    "OSAVI": ("(N - R) / (N + R + 0.16)",
              "Optimized Soil Adjusted Vegetation Index: SAVI with a fixed soil adjustment.", None),
    "LAI": ("3.618 * (2.5 * (N - R) / (N + (6 * R) - (7.5 * B) + 1)) - 0.118",
            "Leaf Area Index: leaf area per unit of ground, estimated from EVI.", (-1, 1)),
    "EVI": ("2.5 * (N - R) / (N + (6 * R) - (7.5 * B) + 1)",
            "Enhanced Vegetation Index: dense vegetation, corrected for the atmosphere and the canopy.", (-1, 1)),
    "ARVI": ("(N - (2 * R) + B) / (N + (2 * R) + B)",
             "Atmospherically Resistant Vegetation Index: NDVI corrected for the atmosphere with blue.",
             (-1, 1)),
    "Celsius": ("L",
                "Temperature in degrees Celsius from a radiometric thermal band.", None),
    "Kelvin": ("L * 100 + 27315",
               "Temperature in centikelvin from a radiometric thermal band.", None),
    "_TESTRB": ("R + B", "For tests only.", (0, 1)),
    "_TESTFUNC": ("R + (sqrt(B) )", "For tests only.", None),
}

CAMERA_FILTERS = ("RGB", "RGN", "NGB", "NRG", "NRB", "RGBN", "RGNRe", "GRReN", "RGBNRe", "BGRNRe",
                  "BGRReN", "RGBReN", "RGBNReL", "BGRNReL", "BGRReNL", "BGRNReP", "RGBNReP", "RGBNRePL", "L")

# An orthophoto band's description -> its letter (`bands=auto`).
_DESCRIPTION_LETTERS = {"red": "R", "r": "R", "green": "G", "g": "G", "blue": "B", "b": "B",
                        "nir": "N", "n": "N", "rededge": "Re", "re": "Re", "panchro": "P", "p": "P",
                        "lwir": "L", "l": "L"}


def letters(text: str) -> list[str]:
    """The band letters of a formula or of a band order, in order."""
    return _LETTER.findall(text or "")


def camera_filters_for(expression: str, max_bands: int = 3) -> list[str]:
    """The band orders that hold every letter of `expression`, with at most `max_bands` bands."""
    needed = set(letters(expression))
    found = []
    for band_order in CAMERA_FILTERS:
        available = set(letters(band_order))
        if len(available) <= max_bands and needed <= available:
            found.append(band_order)
    return found


def algorithm_list(max_bands: int = 3) -> list[dict]:
    """Every listed algorithm with at least one usable band order:
    `{"id", "filters", "expr", "help", "range"?}`."""
    listed = []
    for algorithm_id, (expression, help_text, value_range) in ALGORITHMS.items():
        if algorithm_id.startswith("_"):
            continue
        filters = camera_filters_for(expression, max_bands)
        if not filters:
            continue
        entry = {"id": algorithm_id, "filters": filters, "expr": expression, "help": help_text}
        if value_range is not None:
            entry["range"] = list(value_range)
        listed.append(entry)
    return listed


def lookup_formula(formula: str | None, bands: str | None = "RGB") -> tuple[str | None, tuple | None]:
    """(rio-tiler expression, value range or None) of a formula over a band order.

    No formula: (None, None). ValueError (its text is the 400's message) for an unknown
    formula or a letter the band order lacks."""
    if not formula:
        return None, None
    bands = bands or "RGB"
    if formula not in ALGORITHMS:
        raise ValueError(f"Cannot find algorithm {formula}")
    expression, _, value_range = ALGORITHMS[formula]
    order = letters(bands)
    compact = re.sub(r"\s+", "", expression)

    def band_of(match: re.Match) -> str:
        letter = match.group(0)
        if letter not in order:
            raise ValueError(f'Cannot find band "{letter}" from "{bands}". Choose a proper band order.')
        return f"b{order.index(letter) + 1}"

    return _LETTER.sub(band_of, compact), (tuple(value_range) if value_range is not None else None)


def auto_bands(orthophoto_bands: list[dict], formula: str) -> tuple[str, bool]:
    """(band order, whether the file's band descriptions gave it) for `bands=auto`.

    The orthophoto's last band is taken as alpha. ValueError when the formula is unknown
    or no band order of that many bands fits it."""
    if formula not in ALGORITHMS:
        raise ValueError(f"Cannot find formula: {formula}")
    filters = camera_filters_for(ALGORITHMS[formula][0], len(orthophoto_bands) - 1)
    if not filters:
        raise ValueError(f"Cannot find filters for formula: {formula}")
    order = ""
    for band in orthophoto_bands:
        description = (band.get("description") or "").strip().lower()
        if band.get("name") == "alpha" or not description:
            continue
        order += _DESCRIPTION_LETTERS.get(description, "")
    if order in filters:
        return order, True
    return filters[0], False
