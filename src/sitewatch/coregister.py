"""Co-registration: how far one image's content sits from a reference's, and its undoing.

One convention everywhere: :class:`Shift` ``(dy, dx)`` is the displacement of the *moving*
image's content relative to the reference, in grid pixels, ``+dy`` = down (south),
``+dx`` = right (east).  scikit-image's ``phase_cross_correlation`` returns the opposite
(the shift that registers the moving image); :func:`estimate_shift` hides that.

A shift is applied by :func:`sitewatch.grid.load_scene` as a change of the destination
transform while warping, so a scene is resampled once, never twice.

This is the first global, sub-pixel version; local checks on a grid of windows, rejection of
bad matches and catalogue records of every shift come with the change engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GridError


@dataclass(frozen=True)
class Shift:
    """Content displacement of a moving image relative to its reference, in grid pixels."""

    dy: float
    dx: float
    error: float = float("nan")  # scikit-image's normalised RMS error of the match (0 = perfect)

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dy, self.dx))

    def __neg__(self) -> Shift:
        return Shift(-self.dy, -self.dx, self.error)

    def __sub__(self, other: Shift) -> Shift:
        return Shift(self.dy - other.dy, self.dx - other.dx, self.error)


ZERO = Shift(0.0, 0.0, 0.0)


def _prepare(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill unobserved pixels with the median and taper the edges (Hann) against wrap-around."""
    x = np.where(valid, a, np.nanmedian(a[valid]))
    x = x - x.mean()
    wy = np.hanning(x.shape[0])[:, None]
    wx = np.hanning(x.shape[1])[None, :]
    return x * wy * wx


def estimate_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    upsample: int = 20,
    min_valid: float = 0.3,
) -> Shift:
    """Sub-pixel content shift of ``moving`` relative to ``reference`` (2-D, NaN = unobserved).

    Phase correlation (scikit-image), upsampled ``upsample`` times for sub-pixel precision.
    Raises :class:`GridError` when either image is less than ``min_valid`` observed.
    """
    if reference.shape != moving.shape or reference.ndim != 2:
        raise GridError(f"cannot co-register images of shapes {reference.shape}, {moving.shape}")
    vr, vm = np.isfinite(reference), np.isfinite(moving)
    both = vr & vm
    if both.mean() < min_valid:
        raise GridError(f"only {both.mean():.0%} of the pixels observed on both images; "
                        f"co-registration needs {min_valid:.0%}")
    from skimage.registration import phase_cross_correlation  # heavy: load when used

    shift, error, _ = phase_cross_correlation(
        _prepare(reference, both), _prepare(moving, both), upsample_factor=upsample,
        normalization=None,
    )
    # scikit-image gives the shift that registers `moving` onto `reference`: the opposite.
    return Shift(-float(shift[0]), -float(shift[1]), float(error))
