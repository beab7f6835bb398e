"""Band knowledge: sensors' bands, their common names, centre wavelengths and resolutions.

Common names follow the STAC ``eo`` extension (``coastal, blue, green, red, rededge,
nir, nir08, nir09, cirrus, swir16, swir22``, ...) with sitewatch's short aliases
``swir1`` (= swir16) and ``swir2`` (= swir22) accepted everywhere a name is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BandSpec:
    """What a sensor's band is: its id in file names, common name, wavelength (um), GSD (m)."""

    id: str
    common_name: str | None
    wavelength: float | None
    resolution: float | None


def _specs(rows: list[tuple[str, str | None, float | None, float | None]]) -> dict[str, BandSpec]:
    return {r[0]: BandSpec(*r) for r in rows}


SENTINEL2 = _specs(
    [
        ("B01", "coastal", 0.443, 60.0),
        ("B02", "blue", 0.490, 10.0),
        ("B03", "green", 0.560, 10.0),
        ("B04", "red", 0.665, 10.0),
        ("B05", "rededge1", 0.705, 20.0),
        ("B06", "rededge2", 0.740, 20.0),
        ("B07", "rededge3", 0.783, 20.0),
        ("B08", "nir", 0.842, 10.0),
        ("B8A", "nir08", 0.865, 20.0),
        ("B09", "nir09", 0.945, 60.0),
        ("B10", "cirrus", 1.375, 60.0),
        ("B11", "swir16", 1.610, 20.0),
        ("B12", "swir22", 2.190, 20.0),
    ]
)

# Landsat 4/5 TM and 7 ETM+ (surface reflectance products use the same band numbers).
LANDSAT_TM = _specs(
    [
        ("1", "blue", 0.485, 30.0),
        ("2", "green", 0.560, 30.0),
        ("3", "red", 0.660, 30.0),
        ("4", "nir", 0.830, 30.0),
        ("5", "swir16", 1.650, 30.0),
        ("6", "lwir", 11.45, 120.0),
        ("7", "swir22", 2.215, 30.0),
        ("8", "pan", 0.710, 15.0),
    ]
)

LANDSAT_OLI = _specs(
    [
        ("1", "coastal", 0.443, 30.0),
        ("2", "blue", 0.482, 30.0),
        ("3", "green", 0.561, 30.0),
        ("4", "red", 0.655, 30.0),
        ("5", "nir", 0.865, 30.0),
        ("6", "swir16", 1.609, 30.0),
        ("7", "swir22", 2.201, 30.0),
        ("8", "pan", 0.590, 15.0),
        ("9", "cirrus", 1.373, 30.0),
        ("10", "lwir11", 10.895, 100.0),
        ("11", "lwir12", 12.005, 100.0),
    ]
)

ALIASES = {"swir1": "swir16", "swir2": "swir22", "rededge": "rededge1"}

#: Wavelength windows (um) used to name bands that carry only a wavelength (ENVI headers).
_WINDOWS = [
    ("coastal", 0.40, 0.46),
    ("blue", 0.45, 0.52),
    ("green", 0.52, 0.60),
    ("red", 0.62, 0.69),
    ("rededge1", 0.69, 0.72),
    ("rededge2", 0.72, 0.76),
    ("rededge3", 0.76, 0.80),
    ("nir", 0.76, 0.90),
    ("nir09", 0.93, 0.96),
    ("cirrus", 1.36, 1.39),
    ("swir16", 1.55, 1.75),
    ("swir22", 2.05, 2.35),
    ("lwir", 10.0, 12.6),
]


def canonical(name: str) -> str:
    """A common band name in canonical form (``swir1`` -> ``swir16``; case-insensitive)."""
    n = name.strip().lower()
    return ALIASES.get(n, n)


def common_name_for_wavelength(wl_um: float) -> str | None:
    """The common name of a band centred at ``wl_um`` micrometres, or None.

    >>> common_name_for_wavelength(0.660), common_name_for_wavelength(0.825)
    ('red', 'nir')
    """
    for name, lo, hi in _WINDOWS:
        if lo <= wl_um <= hi and name != "nir":
            return name
    return "nir" if 0.76 <= wl_um <= 0.90 else None


def landsat_table(mission: int) -> dict[str, BandSpec]:
    """The band table of Landsat ``mission`` (4, 5, 7, 8, 9)."""
    return LANDSAT_OLI if mission >= 8 else LANDSAT_TM


#: Default grid resolution (m) per sensor family, used when a site grid is made for it.
DEFAULT_RESOLUTION = {"sentinel-2": 10.0, "landsat": 30.0, "sim-10m": 10.0, "sim-3m": 3.0}


def known_common_names() -> set[str]:
    """Every common band name sitewatch knows."""
    names = {n for n, _, _ in _WINDOWS} | {"pan", "lwir11", "lwir12", "nir08"}
    return names | set(SAR_POLARISATIONS)


#: SAR polarisations as band names (transmit, receive): Sentinel-1 has VV+VH or HH+HV.
SAR_POLARISATIONS = ("vv", "vh", "hh", "hv")


#: From processing baseline 04.00 (products sensed from 2022-01-25 on, and all reprocessed
#: ones) Sentinel-2 digital numbers carry an offset: reflectance = (DN - 1000) / 10000.
S2_BASELINE_04_START = "2022-01-25"


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` (NDVI, NDBI, NBR...), NaN where it is not finite.

    >>> normalised_difference(np.array([0.5, 0.0]), np.array([0.1, 0.0])).round(3).tolist()
    [0.667, nan]
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a - b) / (a + b)
    out[~np.isfinite(out)] = np.nan
    return out

__all__ = ["ALIASES", "DEFAULT_RESOLUTION", "LANDSAT_OLI", "LANDSAT_TM", "S2_BASELINE_04_START",
           "SAR_POLARISATIONS", "SENTINEL2", "BandSpec", "canonical", "common_name_for_wavelength",
           "known_common_names", "landsat_table", "normalised_difference"]
