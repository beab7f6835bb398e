"""True-colour arrays of grid images for the brief's figures: band choice and a common
stretch (so that before and after are comparable)."""

from __future__ import annotations

import numpy as np

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

__all__ = ["stretch", "true_colour"]
