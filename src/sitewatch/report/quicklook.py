"""Small PNG quicklooks of grid images (true colour, change overlays) for pages and briefs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from sitewatch.imagery.grid import GridImage
from sitewatch.imagery.sensors import rgb_bands


def stretch(rgb: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-98 % linear stretch per band to uint8; NaN -> 0.  Returns (image, lo, hi)."""
    if lo is None or hi is None:
        lo = np.array([np.nanpercentile(b, 2) if np.isfinite(b).any() else 0 for b in rgb])
        hi = np.array([np.nanpercentile(b, 98) if np.isfinite(b).any() else 1 for b in rgb])
    span = np.where(hi > lo, hi - lo, 1.0)
    x = (rgb - lo[:, None, None]) / span[:, None, None]
    x = np.nan_to_num(np.clip(x, 0, 1), nan=0.0)
    return (x * 255).round().astype(np.uint8), lo, hi


def true_colour(img: GridImage) -> np.ndarray:
    """(3, rows, cols) red, green, blue (:func:`~sitewatch.imagery.sensors.rgb_bands`: else
    the first three bands; with fewer, the first band three times)."""
    names = rgb_bands(img.bands)
    if len(names) < 3:
        names = names[:1] * 3
    return np.stack([img.band(n) for n in names])


def write_png(path: Path, rgb: np.ndarray, scale: int = 1) -> Path:
    """Write a (3, rows, cols) uint8 array as PNG, enlarged ``scale`` times (nearest)."""
    if scale > 1:
        rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture, not a map
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
            path, "w", driver="PNG", width=rgb.shape[2], height=rgb.shape[1], count=3,
            dtype="uint8",
        ) as ds:
            ds.write(rgb)
    return path


def overlay(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 0, 255),
            ) -> np.ndarray:
    """Paint ``mask`` pixels of a uint8 RGB image in ``colour`` (default magenta)."""
    outp = rgb.copy()
    for i, c in enumerate(colour):
        outp[i][mask] = c
    return outp
