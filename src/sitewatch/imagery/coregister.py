"""Co-registration: how far one image's content sits from a reference's, and its undoing.

One convention everywhere: :class:`Shift` ``(dy, dx)`` is the displacement of the *moving*
image's content relative to the reference, in grid pixels, ``+dy`` = down (south),
``+dx`` = right (east).  scikit-image's ``phase_cross_correlation`` returns the opposite
(the shift that registers the moving image); :func:`estimate_shift` hides that.

A shift is applied by :func:`sitewatch.imagery.grid.load_scene` as a change of the destination
transform while warping, so a scene is resampled once, never twice.

This is the first global, sub-pixel version; local checks on a grid of windows, rejection of
bad matches and catalogue records of every shift come with the change engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sitewatch.errors import GridError


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


@dataclass(frozen=True)
class LocalShift:
    """The shift measured in one window of a registration check (window centre in pixels)."""

    row: float
    col: float
    shift: Shift | None  # None where the window had too little observed or textured data

    @property
    def reliability(self) -> float:
        return _reliability(self.shift)


@dataclass(frozen=True)
class Registration:
    """A scene's co-registration to its reference, with how far to trust it.

    ``status`` is ``ok``, ``flagged`` (usable, but the local windows disagree more than they
    should: rotation, warp or changed ground) or ``rejected`` (do not compare this scene
    without a closer look: the windows disagree badly, or the match is unreliable and too
    few windows match confidently to confirm it).
    """

    shift: Shift
    reliability: float  # 1 - scikit-image's normalised RMS error of the global match, 0..1
    residual_px: float  # RMS of (local - global) over usable windows; NaN if fewer than 3
    local: tuple[LocalShift, ...]
    status: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "dy": self.shift.dy, "dx": self.shift.dx, "reliability": self.reliability,
            "residual_px": None if np.isnan(self.residual_px) else self.residual_px,
            "status": self.status, "reason": self.reason,
            "local": [{"row": w.row, "col": w.col,
                       "dy": w.shift.dy if w.shift else None,
                       "dx": w.shift.dx if w.shift else None} for w in self.local],
        }


def _reliability(shift: Shift | None) -> float:
    if shift is None or np.isnan(shift.error):
        return 0.0
    return float(np.clip(1.0 - shift.error, 0.0, 1.0))


def register(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    windows: int = 3,
    min_reliability: float = 0.3,
    flag_residual_px: float = 0.5,
    reject_residual_px: float = 1.5,
    upsample: int = 20,
) -> Registration:
    """Co-register ``moving`` to ``reference`` and check the result locally.

    The global shift comes from :func:`estimate_shift` over the whole image; the same
    estimate on a ``windows`` x ``windows`` grid of tiles shows whether one translation
    explains the whole scene.  A rotation or warp makes the local shifts drift across the
    image; a bad match makes them scatter.  Raises :class:`GridError` when the images share
    too few observed pixels for any estimate.
    """
    glob = estimate_shift(reference, moving, upsample=upsample)
    rel = _reliability(glob)
    h, w = reference.shape
    local: list[LocalShift] = []
    if windows > 1 and min(h, w) // windows >= 24:
        ys = np.linspace(0, h, windows + 1).astype(int)
        xs = np.linspace(0, w, windows + 1).astype(int)
        for i in range(windows):
            for j in range(windows):
                r = reference[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
                m = moving[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
                try:
                    s = estimate_shift(r, m, upsample=upsample, min_valid=0.5)
                except GridError:
                    s = None
                if s is not None and _reliability(s) < min_reliability:
                    s = None  # flat or changed ground: no evidence either way
                local.append(LocalShift((ys[i] + ys[i + 1]) / 2, (xs[j] + xs[j + 1]) / 2, s))
    usable = [lw.shift for lw in local if lw.shift is not None]
    residual = (float(np.sqrt(np.mean([(s - glob).magnitude ** 2 for s in usable])))
                if len(usable) >= 3 else float("nan"))
    if rel < min_reliability and np.isnan(residual):
        # A low global score alone also comes from real change between dates (OSCD's urban
        # pairs score 0.07-0.3 yet their windows agree to 0.1-0.2 px); it rejects only
        # when too few windows match confidently to confirm the shift.
        status, reason = "rejected", (f"unreliable match (reliability {rel:.2f}) that the "
                                      "local windows cannot confirm")
    elif not np.isnan(residual) and residual > reject_residual_px:
        status, reason = "rejected", (f"local shifts disagree by {residual:.2f} px RMS "
                                      "(rotation, warp or a wrong match)")
    elif not np.isnan(residual) and residual > flag_residual_px:
        status, reason = "flagged", f"local shifts disagree by {residual:.2f} px RMS"
    else:
        status = "ok"
        reason = ("global and local shifts agree" if not np.isnan(residual)
                  else "global shift only (too few textured windows to check locally)")
    return Registration(glob, rel, residual, tuple(local), status, reason)

__all__ = ["ZERO", "LocalShift", "Registration", "Shift", "estimate_shift", "register"]
