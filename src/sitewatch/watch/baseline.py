"""A part's normal level from its own history, and departures from it.

The history of one measure at one part (changed fraction, mean change score, an index...) is
a series of ``(time, value)`` with irregular sampling and gaps; ``NaN`` marks a date the part
was not observed, which is skipped, never read as zero.  :func:`fit_baseline` learns a robust
level and spread (median and scaled MAD; with a year or more of data, an annual cycle fitted
by iteratively reweighted least squares with Huber weights, kept only when it explains a
real share of the spread).  :meth:`Baseline.departure` says how far a new value lies from
normal as an equivalent normal z: with few dates the predictive distribution is Student's t
with n - 1 degrees of freedom, so the same raw departure counts for less (unless the
spread is the measure's known noise floor, which is not estimated from the history).

>>> import numpy as np
>>> t = np.arange("2024-01-01", "2024-03-01", 5, dtype="datetime64[D]")
>>> v = np.r_[0.01, 0.012, 0.009, 0.011, 0.010, 0.013, 0.008, 0.010, 0.011, 0.009, 0.012, 0.010]
>>> b = fit_baseline(t, v, floor=0.002)
>>> b.confidence, round(b.level, 4)
('high', 0.01)
>>> d = b.departure(np.datetime64("2024-03-05"), 0.05)
>>> d.z > 5, d.unusual
(True, True)
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import special

from sitewatch.errors import SitewatchError
from sitewatch.robust import mad

#: Length of the annual cycle in days.
YEAR_DAYS = 365.25
#: An annual cycle is fitted only with at least this span of observations (days) ...
MIN_SEASONAL_SPAN = 365.0
#: ... and this many observed dates.
MIN_SEASONAL_POINTS = 12
#: The cycle is kept when it lowers the robust spread of the residuals by this share.
SEASONAL_GAIN = 0.15
#: Confidence of a baseline by the number of dates it was learned from.
CONFIDENCE = ((12, "high"), (5, "medium"), (1, "low"))
#: |z| at or above which a departure is unusual (two-sided p about 0.0027).
UNUSUAL_Z = 3.0
_HUBER_C = 1.345


class BaselineError(SitewatchError, ValueError):
    """A series that cannot be used (bad times, mismatched lengths)."""


def days(times: Any) -> np.ndarray:
    """Times (datetimes, dates, ISO strings or numpy datetime64) -> float days since
    1970-01-01 UTC.  Time-zone aware datetimes are converted to UTC first; plain numbers are
    taken to be such days already.

    >>> days(["1970-01-02", "1970-01-03T12:00"]).tolist()
    [1.0, 2.5]
    """
    a = np.asarray(times)
    if a.dtype.kind in "fiu":
        return np.atleast_1d(a.astype(np.float64))
    if a.dtype.kind == "M":
        if np.isnat(a).any():
            raise BaselineError("not a time: NaT")
        return np.atleast_1d(a.astype("datetime64[s]").astype(np.int64) / 86400.0)
    arr = np.atleast_1d(np.asarray(times, dtype=object))
    out = np.empty(arr.shape, dtype=np.float64)
    for i, t in enumerate(arr.ravel()):
        if isinstance(t, str) and (t.endswith("Z") or "+" in t[10:] or t[19:].count("-")):
            with contextlib.suppress(ValueError):  # an ISO string with an offset: to UTC
                t = datetime.fromisoformat(t.replace("Z", "+00:00"))
        if getattr(t, "tzinfo", None) is not None:
            t = t.astimezone(UTC).replace(tzinfo=None)
        try:
            v = np.datetime64(t, "s")
        except (ValueError, TypeError) as exc:
            raise BaselineError(f"not a time: {t!r} ({exc})") from None
        if np.isnat(v):
            raise BaselineError(f"not a time: {t!r}")
        out.flat[i] = v.astype(np.int64) / 86400.0
    return out


def series_arrays(times: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """A series as float days (:func:`days`) and float64 values, of equal length."""
    t = days(times)
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise BaselineError(f"{t.size} times but {v.size} values")
    return t, v


def _mad(r: np.ndarray) -> float:
    """The normal-scaled MAD of finite ``r`` (:func:`sitewatch.robust.mad`)."""
    return float(mad(r))


def _robust_scale(r: np.ndarray) -> float:
    if r.size == 0:
        return 0.0
    s = _mad(r)
    if s == 0.0 and r.size > 1:  # more than half the values identical (e.g. zeros)
        s = math.sqrt(math.pi / 2) * float(np.mean(np.abs(r - np.median(r))))
    return s


def _design(t: np.ndarray) -> np.ndarray:
    w = 2 * np.pi * t / YEAR_DAYS
    return np.column_stack([np.ones_like(t), np.cos(w), np.sin(w)])


def _huber_fit(x: np.ndarray, y: np.ndarray, iters: int = 30) -> np.ndarray:
    """Robust linear fit (IRLS with Huber weights on MAD-scaled residuals)."""
    w = np.ones_like(y)
    beta = np.zeros(x.shape[1])
    for _ in range(iters):
        sw = np.sqrt(w)
        new, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
        r = y - x @ new
        s = _robust_scale(r) or 1e-12
        u = np.abs(r) / (_HUBER_C * s)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
        if np.allclose(new, beta, rtol=1e-8, atol=1e-12):
            beta = new
            break
        beta = new
    return beta


@dataclass(frozen=True)
class Departure:
    """How far one value lies from a baseline.

    ``expected``: the normal value at that time; ``raw_z``: (value - expected) / scale;
    ``z``: the same as an equivalent standard-normal deviate after allowing for the
    baseline's own uncertainty (smaller than ``raw_z`` with a short history); ``p``: the
    one-sided probability of a departure at least this large in that direction.
    """

    value: float
    expected: float
    raw_z: float
    z: float
    p: float

    @property
    def unusual(self) -> bool:
        return abs(self.z) >= UNUSUAL_Z

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unusual": self.unusual}


@dataclass(frozen=True)
class Baseline:
    """The normal level of one measure at one part (see :func:`fit_baseline`).

    ``level`` is the typical value (the cycle's mean with a seasonal fit), ``scale`` the
    robust spread of values about normal (never below ``floor``), ``cos``/``sin`` the annual
    cycle's coefficients (0 when none was fitted), ``n`` the observed dates it was learned
    from, ``span_days`` their span, ``confidence`` none/low/medium/high by ``n``.
    """

    level: float
    scale: float
    floor: float
    n: int
    span_days: float
    seasonal: bool = False
    cos: float = 0.0
    sin: float = 0.0

    @property
    def confidence(self) -> str:
        for n, name in CONFIDENCE:
            if self.n >= n:
                return name
        return "none"

    def expected(self, times: Any) -> np.ndarray:
        """The normal value at ``times`` (a scalar input gives a 0-d array)."""
        t = days(times)
        w = 2 * np.pi * t / YEAR_DAYS
        out = self.level + self.cos * np.cos(w) + self.sin * np.sin(w)
        return out.reshape(np.shape(times)) if np.ndim(times) else out.reshape(())

    def departure(self, time: Any, value: float) -> Departure:
        """How unusual ``value`` at ``time`` is.  Without history (``n`` = 0) or for a
        non-finite value the z is NaN."""
        value = float(value)
        exp = float(self.expected(time))
        if self.n == 0 or not math.isfinite(value):
            return Departure(value, exp, math.nan, math.nan, math.nan)
        raw = (value - exp) / self.scale
        # Predictive distribution of a new value with location and scale estimated from n
        # values: Student's t, n - 1 degrees of freedom, scale * sqrt(1 + 1/n).  When the
        # spread is the floor (the history is quieter than the measure's known noise), the
        # scale is not estimated from the sample: only the level's uncertainty remains.
        t = raw / math.sqrt(1.0 + 1.0 / self.n)
        # scipy.special's functions behind stats.norm.sf / stats.t.sf / stats.norm.isf (the
        # same values), without the distributions' per-call argument checks.
        if self.floor > 0 and self.scale <= self.floor:
            p = float(special.ndtr(-abs(t)))
        else:
            p = float(special.stdtr(float(max(self.n - 1, 1)), -abs(t)))
        z = math.copysign(float(-special.ndtri(p)), raw) if p > 0 else math.copysign(40.0, raw)
        return Departure(value, exp, raw, z, p)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": self.confidence}


def fit_baseline(times: Any, values: Any, *, floor: float = 0.0, seasonal: bool | None = None,
                 normal: Any = None) -> Baseline:
    """Learn the normal level of a series.

    ``times``/``values``: equal-length sequences; ``NaN`` values are unobserved dates and are
    skipped.  ``floor``: the smallest spread to assume (the measure's own noise: e.g. 0.002
    for a changed fraction), so a perfectly quiet history does not make every later
    flicker "infinitely" unusual.  ``seasonal``: fit an annual cycle (None = when at least
    :data:`MIN_SEASONAL_POINTS` dates span :data:`MIN_SEASONAL_SPAN` days and the cycle
    lowers the spread by :data:`SEASONAL_GAIN`).  ``normal``: optional booleans, one per
    value: False drops a value from the history (a confirmed event is not normal); True
    keeps it (the default).
    """
    t, v = series_arrays(times, values)
    if not (floor >= 0 and math.isfinite(floor)):
        raise BaselineError(f"floor must be a finite number >= 0, got {floor!r}")
    keep = np.isfinite(v)
    if normal is not None:
        nm = np.asarray(normal, dtype=bool).ravel()
        if nm.shape != v.shape:
            raise BaselineError(f"{nm.size} 'normal' flags but {v.size} values")
        keep &= nm
    t, v = t[keep], v[keep]
    n = int(v.size)
    if n == 0:
        return Baseline(math.nan, max(floor, 0.0), floor, 0, 0.0)
    span = float(t.max() - t.min())
    level = float(np.median(v))
    scale = _robust_scale(v - level)
    fit = Baseline(level, max(scale, floor), floor, n, span)
    can = n >= MIN_SEASONAL_POINTS and span >= MIN_SEASONAL_SPAN
    if seasonal is False or (seasonal is None and not can) or n < 4:
        return fit
    beta = _huber_fit(_design(t), v)
    s_scale = _robust_scale(v - _design(t) @ beta)
    if seasonal is None and not s_scale <= (1 - SEASONAL_GAIN) * scale:
        return fit
    return Baseline(float(beta[0]), max(s_scale, floor), floor, n, span, True,
                    float(beta[1]), float(beta[2]))

__all__ = ["CONFIDENCE", "MIN_SEASONAL_POINTS", "MIN_SEASONAL_SPAN", "SEASONAL_GAIN", "UNUSUAL_Z",
           "YEAR_DAYS", "Baseline", "BaselineError", "Departure", "days", "fit_baseline",
           "series_arrays"]
