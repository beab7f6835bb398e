"""True-colour arrays of grid images for the brief's figures: band choice and a common
stretch (so that before and after are comparable), and which pixels were not observed."""

from __future__ import annotations

import numpy as np

from sitewatch.imagery.grid import GridImage
from sitewatch.imagery.sensors import rgb_bands

#: What an unobserved pixel (NaN) becomes in a stretched image: a light grey, never black
#: (black reads as a dark surface); the figures hatch these pixels on top
#: (:func:`unobserved`).
NODATA_GREY = 217


def unobserved(rgb: np.ndarray) -> np.ndarray:
    """(rows, cols) True where a pixel of ``rgb`` (bands, rows, cols) was not observed:
    :func:`~sitewatch.imagery.grid.load_scene` leaves cloud, shadow and no data as NaN in
    any band."""
    return ~np.isfinite(rgb).all(axis=0)


def limits(*rgbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2-98 % limits per band over the observed pixels of all of ``rgbs`` together
    (each (bands, rows, cols)): one stretch for a before/after pair, so that a brighter
    after means a brighter ground, not a different stretch.  Bands with no observed pixel
    get (0, 1)."""
    bands = rgbs[0].shape[0]
    lo, hi = np.zeros(bands), np.ones(bands)
    clear = [r[:, ~unobserved(r)] for r in rgbs]
    for b in range(bands):
        v = np.concatenate([c[b] for c in clear])
        if v.size:
            lo[b], hi[b] = np.percentile(v, 2), np.percentile(v, 98)
    return lo, hi


def stretch(rgb: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear stretch per band to uint8 between ``lo`` and ``hi`` (by default the 2-98 %
    limits of this image's observed pixels, :func:`limits`); unobserved pixels become
    :data:`NODATA_GREY` in every band.  Returns (image, lo, hi)."""
    if lo is None or hi is None:
        lo, hi = limits(rgb)
    span = np.where(hi > lo, hi - lo, 1.0)
    x = np.clip((rgb - lo[:, None, None]) / span[:, None, None], 0, 1)
    out = (np.nan_to_num(x, nan=0.0) * 255).round().astype(np.uint8)
    out[:, unobserved(rgb)] = NODATA_GREY
    return out, lo, hi


def true_colour(img: GridImage) -> np.ndarray:
    """(3, rows, cols) red, green, blue (:func:`~sitewatch.imagery.sensors.rgb_bands`: else
    the first three bands; with fewer, the first band three times)."""
    names = rgb_bands(img.bands)
    if len(names) < 3:
        names = names[:1] * 3
    return np.stack([img.band(n) for n in names])


def credit(sensor: str, year: int | str) -> str:
    """The imagery credit line a published figure of ``sensor`` carries (the data
    providers' licences ask for it)."""
    s = sensor.lower()
    if s.startswith("sim"):
        return "SIMULATED imagery (sitewatch demo)"
    if "sentinel" in s or s.startswith(("s1", "s2")):
        return f"Contains modified Copernicus Sentinel data {year}"
    if "landsat" in s:
        return "Landsat imagery courtesy of the U.S. Geological Survey"
    return f"Imagery: {sensor} ({year})"


__all__ = ["NODATA_GREY", "credit", "limits", "stretch", "true_colour", "unobserved"]
