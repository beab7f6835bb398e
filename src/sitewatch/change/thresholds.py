"""Pick a threshold on a 1-D array of change scores (higher score = more change).

Every function ignores non-finite values (NaN marks unobserved pixels) and raises
:class:`ThresholdError` (a :class:`ValueError`) when fewer than two finite values remain or
when all of them are equal.  A pixel is *changed* when ``score > threshold``.

Which one to use:

* :func:`otsu` — maximises the between-class variance of the histogram.  Good when the
  histogram is bimodal and the two classes are of comparable size; with very few changed
  pixels it drifts into the large "no change" mode.
* :func:`kittler_illingworth` — minimum-error thresholding: fits one Gaussian on each side
  of every candidate and keeps the candidate with the smallest classification error.  Copes
  with strongly unbalanced classes (a few per cent changed); the classic choice on SAR
  log-ratio images.
* :func:`significance` — a quantile of a known null distribution rather than anything read
  off the data: for statistics that are chi-square distributed under "no change" (e.g. the
  sum of squared standardised MAD variates, with ``dof`` = number of bands), the threshold
  for a false-alarm rate ``alpha``.
* :func:`quantile` — flags a fixed share of the pixels (``1 - q``); a blunt fallback.
* :func:`kmeans` — two-class k-means (Lloyd) on the values: the cut is midway between the
  two centres (the isodata threshold of Ridler & Calvard 1978).  It minimises the same
  within-class variance as Otsu, on the values rather than a histogram, and on the SAR
  benchmark it lands within a bin of Otsu's cut (docs/bench_sar.md).
* ``otsu-robust``, ``ki-robust``, ``kmeans-robust`` — the same on :func:`robust` values:
  a spike of ties at the lowest value (dark water or no-data zeros on both dates of a SAR
  pair, whose ratio is exactly 1; about 30 % of the San Francisco pair) is left out, and the
  values are clipped at Tukey's far-out fence, Q3 + 3 IQR (ratios of near-zero pixels
  explode: a field flooded to 8-bit zeros scores ten times a real x 4 change, and Otsu then
  splits the changes from each other instead of from the rest).  A spike is not a
  Gaussian mode: Kittler-Illingworth fits one to it and puts its cut there.

:func:`pick` dispatches by name, and also takes a fixed number written as a string.

>>> round(significance(0.05, 4), 4)
9.4877
>>> pick([0.1, 0.2, 0.9], "0.35")
0.35
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from skimage.filters import threshold_otsu

from sitewatch.errors import SitewatchError

__all__ = [
    "THRESHOLD_METHODS",
    "ThresholdError",
    "kittler_illingworth",
    "kmeans",
    "otsu",
    "pick",
    "quantile",
    "robust",
    "significance",
]

#: Names accepted by :func:`pick` (``"ki"`` is an alias of ``"kittler-illingworth"``; a
#: number written as a string, such as ``"0.35"``, is a fixed threshold).
THRESHOLD_METHODS: tuple[str, ...] = ("otsu", "kittler-illingworth", "significance", "quantile",
                                      "kmeans", "otsu-robust", "ki-robust", "kmeans-robust")

_ALIASES = {"ki": "kittler-illingworth", "kittler-illingworth-robust": "ki-robust"}

#: Above this many finite values, :func:`otsu` works on a strided subsample.
_OTSU_MAX_VALUES = 2_000_000


class ThresholdError(SitewatchError, ValueError):
    """Scores from which no threshold can be picked, or an invalid threshold request."""


def _finite(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """The finite values as a flat float64 array; raise if < 2 or all equal."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        raise ThresholdError(
            f"need at least 2 finite scores to pick a threshold, got {x.size}"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        raise ThresholdError(f"all {x.size} finite scores equal {lo}; no threshold separates them")
    return x


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or int(bins) != bins or bins < 2:
        raise ThresholdError(f"bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def _plateau_middle(counts: np.ndarray, edges: np.ndarray, k: int) -> float:
    """Threshold for a cut after bin ``k``: the middle of the run of empty bins that follows.

    Every cut inside that run splits the scores the same way; its middle is the natural
    choice (and never lies inside a non-empty bin, so ``score > t`` matches the split).
    """
    end = k
    while end + 2 < counts.size and counts[end + 1] == 0:
        end += 1
    return float(0.5 * (edges[k + 1] + edges[end + 1]))


def otsu(values: np.ndarray | Sequence[float], bins: int = 256) -> float:
    """Otsu's threshold (:func:`skimage.filters.threshold_otsu`) on a ``bins``-bin histogram.

    skimage returns the centre of the last "low" bin; this returns the upper edge of that
    bin (the middle of the empty bins after it, if any) so that ``score > t`` flags exactly
    the bins Otsu put in the "high" class.  Above 2,000,000 finite values the histogram is
    taken on a deterministic strided subsample (every k-th value, k = ceil(n / 2e6)), which
    changes it only at the level of sampling noise and bounds time and memory.

    >>> otsu([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])
    2.6
    """
    bins = _check_bins(bins)
    x = _finite(values)
    if x.size > _OTSU_MAX_VALUES:
        x = x[:: math.ceil(x.size / _OTSU_MAX_VALUES)]
        if x.min() == x.max():
            raise ThresholdError("the subsample of the scores is constant; no threshold")
    counts, edges = np.histogram(x, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    t = threshold_otsu(hist=(counts, centres))
    k = int(np.argmin(np.abs(centres - t)))
    return _plateau_middle(counts, edges, min(k, bins - 2))


def kittler_illingworth(values: np.ndarray | Sequence[float], bins: int = 256) -> float:
    """Minimum-error threshold (Kittler & Illingworth 1986) on a ``bins``-bin histogram.

    For each cut between two bins, the bins below and above are each modelled by a Gaussian
    (prior P, standard deviation s, from bin centres and counts) and the criterion
    ``J = 1 + 2 (P1 ln s1 + P2 ln s2) - 2 (P1 ln P1 + P2 ln P2)`` is minimised.  Cuts where a
    class has fewer than two non-empty bins or zero variance are skipped.  The threshold is
    the upper edge of the last "low" bin, or the middle of the empty bins that follow it
    (all cuts there tie).  Raises :class:`ThresholdError` when no cut is valid.
    """
    bins = _check_bins(bins)
    x = _finite(values)
    counts, edges = np.histogram(x, bins=bins)
    h = counts.astype(np.float64)
    c = 0.5 * (edges[:-1] + edges[1:])
    n = h.sum()

    # Class 1 = bins [0, k], class 2 = bins [k + 1, bins - 1], for cuts k = 0 .. bins - 2.
    w1 = np.cumsum(h)[:-1]
    s1 = np.cumsum(h * c)[:-1]
    q1 = np.cumsum(h * c * c)[:-1]
    nz1 = np.cumsum(h > 0)[:-1]
    w2 = n - w1
    s2 = (h * c).sum() - s1
    q2 = (h * c * c).sum() - q1
    nz2 = np.count_nonzero(h) - nz1

    with np.errstate(divide="ignore", invalid="ignore"):
        m1, m2 = s1 / w1, s2 / w2
        v1 = q1 / w1 - m1 * m1
        v2 = q2 / w2 - m2 * m2
        p1, p2 = w1 / n, w2 / n
        # Variances from sums of squares can dip just below 0 by rounding: a real zero.
        tiny = 1e-12 * (edges[-1] - edges[0]) ** 2
        valid = (nz1 >= 2) & (nz2 >= 2) & (v1 > tiny) & (v2 > tiny)
        j = (
            1.0
            + (p1 * np.log(v1) + p2 * np.log(v2))  # 2 P ln s = P ln s^2
            - 2.0 * (p1 * np.log(p1) + p2 * np.log(p2))
        )
    if not valid.any():
        raise ThresholdError(
            f"no valid Kittler-Illingworth cut among {bins} bins "
            f"(each class needs >= 2 non-empty bins and a non-zero variance)"
        )
    j = np.where(valid, j, np.inf)
    # Cuts separated only by empty bins give the same classes (same J): take the middle.
    return _plateau_middle(counts, edges, int(np.argmin(j)))


#: A run of ties at the lowest value holding at least this share of the values is a spike
#: that :func:`robust` leaves out.
SPIKE_SHARE = 0.01
#: :func:`robust` clips the values at Q3 + FENCE x IQR (Tukey's "far out" fence).
FENCE = 3.0


def robust(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """The finite values without a spike of ties at their minimum (at least 1 % of them)
    and clipped at Q3 + 3 IQR of what remains (see the module docstring).

    >>> robust([0.0] * 50 + [1.0, 2.0, 3.0]).tolist()
    [1.0, 2.0, 3.0]
    """
    x = _finite(values)
    lo = float(x.min())
    ties = x == lo
    if ties.mean() >= SPIKE_SHARE:
        x = x[~ties]
    if x.size < 2:
        raise ThresholdError("all but one of the values tie at the lowest one; no threshold")
    q1, q3 = (float(v) for v in np.quantile(x, [0.25, 0.75]))
    fence = q3 + FENCE * (q3 - q1)
    if fence <= float(x.min()):  # a constant bulk: nothing to clip against
        return x
    return np.minimum(x, fence)


def kmeans(values: np.ndarray | Sequence[float], iterations: int = 100) -> float:
    """The midpoint of the two centres of a two-class k-means of the values (Lloyd's
    algorithm from the 5th and 95th percentiles; a deterministic, Otsu-like split that
    weights every value equally rather than by histogram bin).

    >>> kmeans([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])
    2.6
    """
    x = _finite(values)
    if x.size > _OTSU_MAX_VALUES:
        x = x[:: math.ceil(x.size / _OTSU_MAX_VALUES)]
    lo, hi = (float(v) for v in np.quantile(x, [0.05, 0.95]))
    if lo == hi:
        lo, hi = float(x.min()), float(x.max())
    t = 0.5 * (lo + hi)
    for _ in range(iterations):
        low = x <= t
        if low.all() or not low.any():
            break
        new = 0.5 * (float(x[low].mean()) + float(x[~low].mean()))
        if new == t:
            break
        t = new
    return t


def significance(alpha: float, dof: int) -> float:
    """The chi-square threshold with false-alarm rate ``alpha``: ``chi2.isf(alpha, dof)``.

    >>> round(significance(0.01, 1), 3)
    6.635
    """
    if isinstance(alpha, bool) or not (0.0 < float(alpha) < 1.0):
        raise ThresholdError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    if isinstance(dof, bool) or int(dof) != dof or dof < 1:
        raise ThresholdError(f"dof must be an integer >= 1, got {dof!r}")
    return float(stats.chi2.isf(float(alpha), int(dof)))


def quantile(values: np.ndarray | Sequence[float], q: float) -> float:
    """The ``q``-quantile of the finite values (flags about ``1 - q`` of them)."""
    if isinstance(q, bool) or not (0.0 < float(q) < 1.0):
        raise ThresholdError(f"q must be strictly between 0 and 1, got {q!r}")
    return float(np.quantile(_finite(values), float(q)))


def _fixed(how: str) -> float | None:
    try:
        t = float(how)
    except ValueError:
        return None
    if not math.isfinite(t):
        raise ThresholdError(f"a fixed threshold must be a finite number, got {how!r}")
    return t


def _scores(values: np.ndarray | Sequence[float] | None, name: str
            ) -> np.ndarray | Sequence[float]:
    if values is None:
        raise ThresholdError(f"the {name!r} threshold needs the scores to pick from")
    return values


def pick(
    values: np.ndarray | Sequence[float] | None,
    how: str,
    *,
    alpha: float = 0.01,
    dof: int | None = None,
    q: float = 0.99,
) -> float:
    """Threshold ``values`` by method name (see :data:`THRESHOLD_METHODS`).

    ``how`` may also be a number, as a string (``"0.35"``) or not: a fixed threshold, returned
    as is (``values`` is then not looked at, nor for ``"significance"``, which needs ``dof``).

    >>> pick([0.0, 0.1, 0.2, 5.0, 5.1, 5.2], "ki") > 0.2
    True
    """
    if isinstance(how, int | float) and not isinstance(how, bool):
        how = str(how)
    if not isinstance(how, str):
        raise ThresholdError(f"threshold method must be a name or a number, got {how!r}")
    name = how.strip().lower()
    name = _ALIASES.get(name, name)
    if name == "otsu":
        return otsu(_scores(values, name))
    if name == "kittler-illingworth":
        return kittler_illingworth(_scores(values, name))
    if name == "significance":
        if dof is None:
            raise ThresholdError("the 'significance' threshold needs dof (degrees of freedom)")
        return significance(alpha, dof)
    if name == "quantile":
        return quantile(_scores(values, name), q)
    if name == "kmeans":
        return kmeans(_scores(values, name))
    if name.endswith("-robust"):
        base = _ALIASES.get(name[: -len("-robust")], name[: -len("-robust")])
        rule = {"otsu": otsu, "kittler-illingworth": kittler_illingworth, "kmeans": kmeans}
        if base in rule:
            return rule[base](robust(_scores(values, name)))
    fixed = _fixed(name)
    if fixed is not None:
        return fixed
    valid = ", ".join(repr(m) for m in (*THRESHOLD_METHODS, *_ALIASES))
    raise ThresholdError(
        f"unknown threshold method {how!r}; use one of {valid} or a number such as '0.35'"
    )
