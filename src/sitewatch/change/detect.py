"""Run a detector on a pair of arrays: normalise, fit, score, threshold, clean.

:func:`detect_arrays` is the in-memory path (a site's grid, a test, a benchmark tile).  The
windowed path for whole scenes, which gathers the same global statistics from a sample
first, is :mod:`sitewatch.change.tiled`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sitewatch.change import post, thresholds
from sitewatch.change.base import (
    ChangeMap,
    Detector,
    MethodError,
    finite_sample,
    get_detector,
    observed_both,
)
from sitewatch.change.normalise import Normalisation, NormalisationError, fit_normalisation
from sitewatch.imagery.sensors import PAIR_METHOD

#: Default detector per sensor kind for a pair (the rule lives in :mod:`sitewatch.imagery.sensors`).
DEFAULT_METHOD = PAIR_METHOD


def resolve(method: str | Detector | None, sensor: str = "optical",
            params: dict[str, Any] | None = None) -> Detector:
    """A detector from a name (None = the sensor's default) or an instance."""
    if isinstance(method, Detector):
        return method
    if sensor not in DEFAULT_METHOD:
        raise MethodError(f"unknown sensor {sensor!r}; use optical or sar")
    det = get_detector(method or DEFAULT_METHOD[sensor], **(params or {}))
    if det.sensor != sensor:
        raise MethodError(f"method {det.name!r} is for {det.sensor} images, not {sensor}")
    return det


def check_pair(before: np.ndarray, after: np.ndarray, bands: Sequence[str]) -> tuple[str, ...]:
    """Validate two (bands, rows, cols) arrays of one pair; returns the band names."""
    if before.ndim == 2:
        before, after = before[None], after[None]
    if before.ndim != 3 or before.shape != after.shape:
        raise MethodError(f"the two dates must be (bands, rows, cols) arrays of one shape; got "
                          f"{before.shape} and {after.shape}")
    if len(bands) != before.shape[0]:
        raise MethodError(f"{before.shape[0]} band(s) but {len(bands)} name(s): "
                          f"{', '.join(bands)}")
    return tuple(bands)


def normalise_pair(before: np.ndarray, after: np.ndarray
                   ) -> tuple[np.ndarray, Normalisation | None, str | None]:
    """``after`` normalised to ``before`` (IR-MAD no-change pixels + orthogonal regression),
    or unchanged with the reason when too few pixels allow it."""
    try:
        norm = fit_normalisation(before, after)
    except NormalisationError as exc:
        return after, None, str(exc)
    return norm.apply(after), norm, None


def threshold_for(det: Detector, sample_scores: np.ndarray, rule: str | float | None,
                  n_bands: int, alpha: float = 0.01) -> tuple[float, str]:
    """The threshold and a description of the rule that gave it."""
    how = det.default_threshold if rule is None else str(rule)
    values = finite_sample(sample_scores)
    if values.size and np.ptp(values) == 0 and thresholds._fixed(how) is None:
        # Identical dates (or a constant score): nothing changed; nothing exceeds this.
        return float(values[0]), f"{how} (all scores equal: no change)"
    try:
        t = thresholds.pick(values, how, alpha=alpha, dof=det.dof(n_bands))
    except ValueError as exc:
        raise MethodError(f"{det.name}: cannot pick a threshold by {how!r}: {exc}") from None
    if how == "significance":
        how = f"significance alpha={alpha:g} (chi-square, {det.dof(n_bands)} dof)"
    return float(t), how


def detect_arrays(
    before: np.ndarray,
    after: np.ndarray,
    bands: Sequence[str],
    method: str | Detector | None = None,
    *,
    sensor: str = "optical",
    params: dict[str, Any] | None = None,
    threshold: str | float | None = None,
    alpha: float = 0.01,
    normalise: bool | None = None,
    min_pixels: int = 4,
    max_hole_pixels: int = 4,
) -> ChangeMap:
    """Detect change from ``before`` to ``after``, (bands, rows, cols) arrays on one grid.

    ``method`` is a detector name (``sitewatch methods``) or instance; ``threshold`` a rule
    (``otsu``, ``ki``, ``significance``, ``quantile``) or a number; ``normalise`` (default:
    the detector's preference) maps ``after`` onto ``before``'s radiometry first.  Changed
    objects smaller than ``min_pixels`` are dropped and holes up to ``max_hole_pixels``
    filled.
    """
    before = np.asarray(before, dtype=np.float32)
    after = np.asarray(after, dtype=np.float32)
    if before.ndim == 2:
        before, after = before[None], after[None]
    names = check_pair(before, after, bands)
    det = resolve(method, sensor, params)
    det.check_bands(names)
    observed = observed_both(before, after)
    if not observed.any():
        raise MethodError("no pixel is observed on both dates")
    details: dict[str, Any] = {}
    do_norm = det.normalise if normalise is None else normalise
    if do_norm and sensor == "optical":
        after, norm, why = normalise_pair(before, after)
        details["normalisation"] = norm.to_dict() if norm else {"skipped": why}
    fitted = det.fit(before, after, names)
    details.update({k: v for k, v in fitted.items() if _plain(v)})
    score = det.score(before, after, names, fitted)
    t, rule = threshold_for(det, score, threshold, len(names), alpha)
    changed = np.zeros(score.shape, bool)
    changed[observed] = score[observed] > t
    changed = post.clean(changed, observed, min_pixels=min_pixels,
                         max_hole_pixels=max_hole_pixels)
    return ChangeMap(score, changed, observed, t, rule, det.name, details)


def _plain(v: Any) -> bool:
    """Whether a fitted value is small and JSON-friendly enough for a summary."""
    if isinstance(v, (int, float, str, bool)):
        return True
    if isinstance(v, (list, tuple)):
        return len(v) <= 32 and all(isinstance(x, (int, float, str)) for x in v)
    return False

__all__ = ["DEFAULT_METHOD", "check_pair", "detect_arrays", "normalise_pair", "resolve",
           "threshold_for"]
