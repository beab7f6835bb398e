"""A first, simple change measure: robustly normalised, misregistration-tolerant difference.

For each band the *after* image is matched to the *before* image by median and MAD over the
pixels both observe (a crude relative normalisation that absorbs gain and offset).  Each
band's noise scale is the robust spread (MAD) of the plain difference over the scene.  The
difference of each pixel is then taken against the closest value in a small neighbourhood of
the other date (``tolerance_px``), in both directions, which keeps residual sub-pixel
misregistration from lighting up every edge; co-register first (:mod:`sitewatch.coregister`).
The score is the root-mean-square over bands of difference / spread: small for ordinary
pixels, large where something changed.  ``changed = score > threshold``; isolated single
pixels are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import GridError
from ..grid import GridImage

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class ChangeResult:
    """A change map on a grid: ``score`` (NaN where not observed on both dates)."""

    score: np.ndarray
    changed: np.ndarray
    observed: np.ndarray
    threshold: float
    method: str
    before: str
    after: str


def _mad(x: np.ndarray) -> float:
    med = np.median(x)
    return float(np.median(np.abs(x - med))) * _MAD_TO_SIGMA


def _neighbour_min_abs(a: np.ndarray, b: np.ndarray, r: int) -> np.ndarray:
    """min over |dy|,|dx| <= r of |a(y, x) - b(y + dy, x + dx)| (NaN-aware)."""
    if r <= 0:
        return np.abs(a - b)
    best = np.full(a.shape, np.inf, dtype=np.float32)
    pad = np.pad(b, r, mode="constant", constant_values=np.nan)
    h, w = a.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = pad[r + dy : r + dy + h, r + dx : r + dx + w]
            d = np.abs(a - shifted)
            np.fmin(best, d, out=best)
    best[~np.isfinite(best)] = np.nan
    return best


def robust_difference(
    before: GridImage,
    after: GridImage,
    *,
    threshold: float = 4.0,
    tolerance_px: int = 1,
    min_observed: int = 50,
) -> ChangeResult:
    """Score change from ``before`` to ``after`` (see the module docstring).

    Raises :class:`~sitewatch.errors.GridError` when the images are on different grids or
    share no band, and when fewer than ``min_observed`` pixels are observed on both dates.
    """
    if before.grid != after.grid:
        raise GridError(f"{before.scene_id} and {after.scene_id} are on different grids")
    bands = [b for b in before.bands if b in after.bands]
    if not bands:
        raise GridError(f"{before.scene_id} and {after.scene_id} share no band")
    observed = before.valid & after.valid
    n = int(observed.sum())
    if n < min_observed:
        raise GridError(
            f"{before.scene_id} -> {after.scene_id}: only {n} pixel(s) observed on both dates"
        )
    z2 = np.zeros(before.grid.shape, dtype=np.float32)
    for name in bands:
        x = before.band(name)
        y = after.band(name)
        xv, yv = x[observed], y[observed]
        sx, sy = _mad(xv), _mad(yv)
        gain = sx / sy if sy > 0 else 1.0
        y_n = (y - np.median(yv)) * gain + np.median(xv)
        # The noise scale is that of the plain difference over the scene...
        plain = (y_n - x)[observed]
        spread = _mad(plain) or float(np.std(plain)) or 1.0
        # ...and the magnitude is symmetric and neighbourhood-tolerant: a change must be
        # unexplained from both sides within tolerance_px.
        d = np.fmax(_neighbour_min_abs(y_n, x, tolerance_px),
                    _neighbour_min_abs(x, y_n, tolerance_px))
        z2 += (d / spread) ** 2
    score = np.sqrt(z2 / len(bands)).astype(np.float32)
    score[~observed] = np.nan
    changed = np.zeros(score.shape, dtype=bool)
    changed[observed] = score[observed] > threshold
    # Single pixels are noise at this stage; keep objects of 2 or more pixels.
    labels, _ = ndimage.label(changed)
    sizes = np.bincount(labels.ravel())
    small = sizes < 2
    small[0] = False
    changed[small[labels]] = False
    return ChangeResult(score, changed, observed, threshold, "robust-difference",
                        before.scene_id, after.scene_id)
