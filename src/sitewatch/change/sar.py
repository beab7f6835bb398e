r"""SAR change detectors: log-ratio (mean-ratio, fusion; speckle filters), PCA-k-means and
the omnibus likelihood-ratio test.

Speckle model
-------------
Over a homogeneous area of mean backscatter :math:`\sigma`, a single-polarisation SAR
intensity :math:`I` averaged over :math:`L` independent looks is gamma distributed,

.. math::  p(I) = \frac{L^L I^{L-1}}{\sigma^L \Gamma(L)} e^{-L I/\sigma}, \qquad
           E[I] = \sigma, \quad \mathrm{Var}[I] = \sigma^2 / L .

Speckle is multiplicative: a change of backscatter is a *ratio*, and its noise grows with
the signal.  The *equivalent number of looks* :math:`\mathrm{ENL} = E[I]^2/\mathrm{Var}[I]`
is the moment-matched gamma shape of any multilooked or filtered image (Lee & Pottier 2009,
ch. 4).  :func:`enl` estimates it from the image itself: mean²/variance in non-overlapping
``window`` x ``window`` blocks, then the *mode* of the distribution of the block estimates
(a kernel density of their logarithm) and the median of the blocks under that modal peak.
Texture and edges only ever lower a block's estimate, so the homogeneous blocks form the
peak and the heterogeneous ones a tail below it; unlike keeping the lowest-CV blocks, the
mode is not biased upwards by selecting blocks whose noise happened to be small (on pure
1-look speckle with 7 x 7 blocks the lowest-CV decile gives ENL ~1.6, the mode ~1.05).  See
Anfinsen, Doulgeris & Eltoft (2009, IEEE TGRS 47(11)) on ENL estimation.

Log-ratio (mean-ratio)
----------------------
``sar-log-ratio`` scores :math:`|\ln(\mu_2/\mu_1)|` where :math:`\mu_t` is the local mean of
date :math:`t` over a ``window`` x ``window`` neighbourhood: the ratio is the natural
operator for multiplicative speckle, the local mean reduces speckle (Inglada & Mercier 2007,
IEEE TGRS 45(5): the mean-ratio detector), and the logarithm makes the change and no-change
modes of the histogram near Gaussian (Bazi, Bruzzone & Melgani 2005, IEEE TGRS 43(4);
Bovolo & Bruzzone 2005, IEEE TGRS 43(12); Moser & Serpico 2006, IEEE TIP 15(4)).  Those
papers threshold it with Kittler-Illingworth minimum-error thresholding; the default here is
Otsu (``threshold="ki"`` remains available) because on the benchmark pairs (Ottawa, San
Francisco; docs/bench_sar.md) Otsu was better on both.  KI models each side of the cut by a
Gaussian, while the no-change mode of the *absolute* log-ratio is a half-Gaussian folded at
0, and on quantised 8-bit data dark areas that are zero on both dates pile up in a spike at
exactly 0 (30 % of San Francisco) on which KI puts its cut; ``ki-robust`` and
``otsu-robust`` (:mod:`sitewatch.change.thresholds`) leave that spike out and clip the
exploding ratios of near-zero pixels.  The default window, 3, was
also chosen on those pairs (larger windows blur the edges of changed areas).

Speckle filters and difference images
-------------------------------------
``sar-log-ratio`` and ``sar-pca-kmeans`` can filter each date first (``speckle``: ``lee``
or ``refined-lee``, 7 x 7, :mod:`sitewatch.change.speckle`; the number of looks they need
is ``looks``, else estimated with :func:`enl` on each date), then take local means over
``window`` x ``window`` as before, then one of three difference images (``difference``):

* ``log-ratio``: :math:`|\ln(\mu_2/\mu_1)|` (above);
* ``mean-ratio``: :math:`1 - \min(\mu_1/\mu_2, \mu_2/\mu_1)` (Inglada & Mercier 2007),
  which equals :math:`1 - e^{-|r|}`: the same order of pixels as the log-ratio, but a
  bounded histogram (exploding ratios of near-zero pixels pile up just below 1);
* ``fusion``: :math:`w\,\mathrm{mean}_3(\mathrm{MR}) + (1-w)\,\min(\mathrm{median}_3(\mathrm{LR})
  / s, 1)`, the combined difference image of Zheng, Zhang, Hou & Liu (2014, IEEE GRSL 11(3),
  691-695: a mean-filtered operator that suppresses the background plus a median-filtered
  log-ratio that keeps the edges of changed areas), with the mean-ratio in place of their
  subtraction image (the pair of complementary operators Gong, Zhou & Ma 2012, IEEE TIP
  21(4), fuse), and the log-ratio scaled by its 99.5th percentile :math:`s` (fitted on the
  sample) so that both terms lie in [0, 1]; ``weight`` is :math:`w` (0.5).

``sar-pca-kmeans`` runs Celik's PCA-k-means (2009, IEEE GRSL 6(4); the code of the optical
``pca-kmeans``) on that difference image: PCA of its non-overlapping ``block`` x ``block``
blocks, each pixel's neighbourhood projected on the components holding ``variance`` of the
variance, k-means with k = 2, change = the cluster whose centre means more difference.
``robust=True`` clips the difference image at Tukey's far-out fence and leaves a spike of
ties at its lowest value out of the fit (as the ``*-robust`` thresholds do,
:func:`sitewatch.change.thresholds.robust`), so that a few exploding ratios do not take a
cluster of their own, nor dark water split from land instead of change from no change
(on by default: without it, a 3-look pair with a dark lake flagged 85 % of its unchanged
land).  ``sar-pca-kmeans`` at its defaults is the SAR default of ``sitewatch detect``: on
the two real pairs, scored on each without having been chosen on it, PCA-k-means had the
best worst-case kappa, and ``robust`` changes those two kappas by under 0.005 while it
lifts the synthetic pairs with dark water (docs/bench_sar.md).

Omnibus test (Conradsen et al. 2016)
------------------------------------
Conradsen, Nielsen & Skriver (2016, IEEE TGRS 54(5), 3007-3024) test whether k complex
Wishart covariance matrices :math:`X_i \sim W_C(p, n, \Sigma_i)` are equal.  For
single-polarisation intensity, p = 1 and :math:`X_i = n \bar I_i` (n looks; the factor n
cancels below).  With :math:`S_j = \sum_{i \le j} X_i`:

.. math::
    \ln Q = n\,[k \ln k + \textstyle\sum_i \ln X_i - k \ln S_k], \qquad
    f = p^2 (k-1) = k - 1,

    \rho = 1 - \frac{2p^2-1}{6(k-1)p}\Big(\frac{k}{n} - \frac{1}{nk}\Big), \qquad
    \omega_2 = \frac{p^2(p^2-1)}{24\rho^2}\Big(\frac{k}{n^2}-\frac{1}{n^2k^2}\Big)
              - \frac{p^2(k-1)}{4}\Big(1-\frac{1}{\rho}\Big)^2,

    P(-2\rho \ln Q \le z) \simeq P(\chi^2_f \le z)
        + \omega_2\,[P(\chi^2_{f+4} \le z) - P(\chi^2_f \le z)] .

Q factorises as :math:`Q = \prod_{j=2}^k R_j`, where :math:`R_j` tests
:math:`\Sigma_j = \Sigma_1 = \dots = \Sigma_{j-1}` given that the first j-1 are equal:

.. math::
    \ln R_j = n\,[j \ln j - (j-1)\ln(j-1) + (j-1)\ln S_{j-1} + \ln X_j - j \ln S_j],

    \rho_j = 1 - \frac{2p^2-1}{6pn}\Big(1 + \frac{1}{j(j-1)}\Big), \qquad
    \omega_{2j} = -\frac{p^2}{4}\Big(1-\frac{1}{\rho_j}\Big)^2 \;(p = 1), \qquad f = p^2 = 1.

:func:`omnibus_series` runs the sequential procedure on a series: where the omnibus test over
dates l..k rejects, the :math:`R_j` of that sub-series are tested in order; the first
rejection at j is a change between dates j-1 and j, and the procedure restarts at l = j
(Conradsen et al. 2016, sec. IV; Canty, Nielsen, Conradsen & Skriver 2020, Remote Sens.
12(1), 46).  The pairwise detector ``sar-omnibus`` is the k = 2 case:
:math:`-2\rho\ln Q = 4\rho n \ln\cosh(r/2)` with :math:`r = \ln(\mu_2/\mu_1)`, a monotone
function of the log-ratio; what it adds is a threshold from the null distribution
(chi-square, 1 dof, false-alarm rate ``alpha``) instead of one read off the histogram.

The test needs the ENL of the images it compares.  After averaging over a window, the
speckle of neighbouring pixels is correlated, so the ENL is not ENL x window² in general;
``sar-omnibus`` estimates it with :func:`enl` on the *filtered* images, in blocks of
2 x window + 1 pixels, multiplied by the factor that corrects the block variance for the
correlation the box filter itself introduces (correlated samples make a block's variance too
small).  That factor is exact for white speckle; speckle that was already correlated is
under-corrected.  On synthetic data the ENL comes out 5-10 % high for white and 15-30 % high
for correlated speckle, which raises the false-alarm rate a little above ``alpha`` (1.2-1.3 %
for alpha = 1 %).  Larger blocks would be less biased on pure speckle, but on real scenes
they hold texture, which then dominates the filtered variance; the estimate is therefore kept
between the unfiltered ENL and window² times it, the only values box-averaging can give in
a homogeneous area.  Several bands (e.g. VV and VH) are treated as independent diagonal
elements: the statistics add up and the degrees of freedom are ``bands x (k - 1)``.

Inputs are intensities (linear power, not dB); ``amplitude=True`` squares amplitudes first.
Values below ``floor`` (zeros of quantised data, water, radar shadow) are raised to it so
that ratios stay finite; by default (:func:`default_floor`) it is the larger of 1/1000 of the
median positive value and half the smallest positive value (half a quantisation step for
integer data).  Negative values are refused (decibels?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage, stats

from sitewatch.change.base import (
    Detector,
    Fitted,
    MethodError,
    observed_both,
    register_detector,
    with_nan,
)
from sitewatch.change.optical import PCAKMeans, local_mean
from sitewatch.change.speckle import FILTERS, filter_halo, filtered
from sitewatch.change.thresholds import SPIKE_SHARE, robust

__all__ = ["DIFFERENCES", "LogRatio", "Omnibus", "OmnibusResult", "SARPCAKMeans",
           "default_floor", "enl", "omnibus_series", "omnibus_stack"]

#: Fewest usable blocks :func:`enl` accepts.
MIN_BLOCKS = 10
#: At most this many blocks go into the density estimate of :func:`enl`.
_MAX_KDE_BLOCKS = 20_000


# --------------------------------------------------------------------------------------
# Input checks and helpers


def _plane(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as a float64 (rows, cols) array; (1, rows, cols) is accepted."""
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise MethodError(f"{what}: expected a (rows, cols) image, got shape {x.shape}")
    return x


def _check_values(x: np.ndarray, what: str) -> None:
    """Refuse images with nothing finite, or with negative values."""
    finite = np.isfinite(x)
    if not finite.any():
        raise MethodError(f"{what}: the image has no finite value (all NaN / not observed)")
    lo = float(np.min(x[finite]))
    if lo < 0:
        raise MethodError(
            f"{what}: the image holds negative values (min {lo:g}); SAR intensity and "
            "amplitude are >= 0 — if these are decibels, convert them with 10**(dB/10)"
        )


def _blocks(x: np.ndarray, window: int) -> np.ndarray:
    """Non-overlapping window x window blocks of ``x`` as (n_blocks, window²)."""
    r, c = (x.shape[0] // window) * window, (x.shape[1] // window) * window
    b = x[:r, :c].reshape(r // window, window, c // window, window).swapaxes(1, 2)
    return b.reshape(-1, window * window)


def _modal_median(values: np.ndarray) -> float:
    """The median of the values under the main peak of the density of their logarithm."""
    lv = np.log(values)
    if float(np.ptp(lv)) == 0.0:
        return float(values[0])
    sample = lv[:: int(np.ceil(lv.size / _MAX_KDE_BLOCKS))]
    grid = np.linspace(float(lv.min()), float(lv.max()), 512)
    try:
        dens = stats.gaussian_kde(sample)(grid)
    except np.linalg.LinAlgError:  # (nearly) all sampled values equal
        return float(np.median(values))
    top = int(np.argmax(dens))
    half = dens >= 0.5 * dens[top]
    lo = top
    while lo > 0 and half[lo - 1]:
        lo -= 1
    hi = top
    while hi < grid.size - 1 and half[hi + 1]:
        hi += 1
    keep = (lv >= grid[lo]) & (lv <= grid[hi])
    return float(np.median(values[keep])) if keep.any() else float(np.exp(grid[top]))


def enl(intensity: np.ndarray, window: int = 7) -> float:
    """Equivalent number of looks of an intensity image, estimated from the image.

    mean²/variance (unbiased variance) in non-overlapping ``window`` x ``window`` blocks;
    blocks with a non-finite pixel, or zero mean or variance, are skipped.  The estimate is
    the median of the blocks under the modal peak of the density of log(block ENL): the
    homogeneous blocks (see the module docstring for why the mode and not the lowest-CV
    blocks).  Raises :class:`MethodError` when fewer than 10 blocks are usable.

    >>> rng = np.random.default_rng(0)
    >>> round(enl(rng.gamma(4.0, 25.0, size=(140, 140))), 0)
    4.0
    """
    x = _plane(intensity, "enl")
    if isinstance(window, bool) or int(window) != window or window < 2:
        raise MethodError(f"enl: window must be an integer >= 2, got {window!r}")
    window = int(window)
    _check_values(x, "enl")
    b = _blocks(x, window)
    b = b[np.isfinite(b).all(axis=1)]
    m = b.mean(axis=1) if len(b) else np.empty(0)
    v = b.var(axis=1, ddof=1) if len(b) else np.empty(0)
    good = (m > 0) & (v > 0)
    if int(good.sum()) < MIN_BLOCKS:
        raise MethodError(
            f"enl: too few pixels to estimate the number of looks: {int(good.sum())} usable "
            f"{window} x {window} block(s) (fully observed, not constant) in a "
            f"{x.shape[0]} x {x.shape[1]} image, need {MIN_BLOCKS}"
        )
    return _modal_median(m[good] ** 2 / v[good])


def _box_variance_factor(block: int, size: int) -> float:
    """E[sample variance] / variance of white noise box-filtered over ``size`` x ``size``,
    within a ``block`` x ``block`` block (the ENL estimated on such blocks is too high by
    1 / this factor)."""
    if size <= 1:
        return 1.0
    d = np.arange(-(block - 1), block)
    r = np.clip(size - np.abs(d), 0, None) / size  # correlation at lag d, 1-D
    s1 = float(np.sum((block - np.abs(d)) * r))  # sum of correlations over pairs, 1-D
    n = block * block
    return (n - s1 * s1 / n) / (n - 1)


def _filtered_enl(filtered: np.ndarray, window: int, raw: float) -> float:
    """ENL of an image box-filtered over ``window`` x ``window`` whose unfiltered ENL is
    ``raw`` (see the module docstring)."""
    if window <= 1:
        return raw
    block = 2 * window + 1
    while True:
        try:
            est = enl(filtered, block) * _box_variance_factor(block, window)
            break
        except MethodError:
            if block <= 7:
                raise
            block = max(7, block // 2)
    # Averaging never lowers the ENL of a homogeneous area, nor raises it beyond the
    # number of pixels averaged: outside these bounds texture dominated the blocks.
    return float(min(max(est, raw), raw * window * window))


def default_floor(values: np.ndarray, amplitude: bool = False) -> float:
    """The intensity below which SAR data are raised before taking ratios or logarithms.

    The larger of 1/1000 of the median positive intensity (it clips about 0.1 % of 1-look
    speckle, far below anything the tests or thresholds look at) and half the smallest
    positive value (half a quantisation step for integer data, whose zeros mean "below one
    step" rather than "no backscatter"), squared for ``amplitude`` data.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        raise MethodError("no positive value in the images; nothing to compare")
    step = 0.5 * float(v.min())
    if amplitude:
        return max(1e-3 * float(np.median(v)) ** 2, step * step)
    return max(1e-3 * float(np.median(v)), step)


# --------------------------------------------------------------------------------------
# Detectors


class _SARDetector(Detector):
    """Common parameters and preparation of the SAR detectors."""

    sensor = "sar"
    normalise = False

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"window": 3, "amplitude": False, "floor": None}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return int(self.options["window"]) // 2

    def _window(self) -> int:
        w = self.options["window"]
        if isinstance(w, bool) or int(w) != w or w < 1 or int(w) % 2 == 0:
            raise MethodError(f"{self.name}: window must be an odd integer >= 1, got {w!r}")
        return int(w)

    def _intensity(self, a: np.ndarray) -> np.ndarray:
        x = np.asarray(a, dtype=np.float64)
        return x * x if self.options["amplitude"] else x

    def _check(self, before: np.ndarray, after: np.ndarray) -> None:
        for label, a in (("before", before), ("after", after)):
            _check_values(np.asarray(a), f"{self.name} ({label} image)")

    def _floor(self, before: np.ndarray, after: np.ndarray) -> float:
        """The intensity floor: the ``floor`` option (in the units of the input), or
        :func:`default_floor`."""
        f = self.options["floor"]
        amplitude = bool(self.options["amplitude"])
        if f is None:
            try:
                return default_floor(np.concatenate([np.ravel(before), np.ravel(after)]),
                                     amplitude)
            except MethodError as exc:
                raise MethodError(f"{self.name}: {exc}") from None
        if not float(f) > 0:
            raise MethodError(f"{self.name}: floor must be > 0, got {f!r}")
        return float(f) ** 2 if amplitude else float(f)

    def _means(self, a: np.ndarray, floor: float, intensity: bool = False) -> np.ndarray:
        """Local means (bands, rows, cols), raised to ``floor``; NaN stays NaN.  ``a`` is
        squared first for amplitude input unless ``intensity`` says it already is one."""
        w = self._window()
        x = np.asarray(a, dtype=np.float64) if intensity else self._intensity(a)
        out = np.stack([local_mean(b, w) if w > 1 else b for b in x]).astype(np.float64)
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(out), np.nan, np.maximum(out, floor))

    def _log_ratio(self, before, after, fitted) -> tuple[np.ndarray, np.ndarray]:
        obs = observed_both(before, after)
        f = float(fitted["floor"])
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.log(self._means(after, f)) - np.log(self._means(before, f))
        return r, obs


#: Difference operators of ``sar-log-ratio`` and ``sar-pca-kmeans``.
DIFFERENCES: tuple[str, ...] = ("log-ratio", "mean-ratio", "fusion")


class _DifferenceDetector(_SARDetector):
    """A speckle filter, local means, then a difference operator (see the module
    docstring, "Difference images")."""

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {**super().params(), "speckle": "none", "looks": None,
                "difference": "log-ratio", "weight": 0.5}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return self._difference_halo()

    def _difference_halo(self) -> int:
        """Context pixels the difference image reads: the speckle filter, the local means
        and the fusion's 3 x 3 filters."""
        extra = 1 if self.options["difference"] == "fusion" else 0
        return (filter_halo(str(self.options["speckle"]), 7) + int(self.options["window"]) // 2
                + extra)

    def _check_options(self) -> None:
        self._window()
        if self.options["speckle"] not in FILTERS:
            raise MethodError(f"{self.name}: speckle must be one of {', '.join(FILTERS)}, got "
                              f"{self.options['speckle']!r}")
        if self.options["difference"] not in DIFFERENCES:
            raise MethodError(f"{self.name}: difference must be one of "
                              f"{', '.join(DIFFERENCES)}, got {self.options['difference']!r}")
        if not 0.0 <= float(self.options["weight"]) <= 1.0:
            raise MethodError(f"{self.name}: weight must be in [0, 1], got "
                              f"{self.options['weight']!r}")

    def _looks(self, before, after, floor: float) -> list[float] | None:
        """The number of looks per band the Lee filters need (None: no Lee filter)."""
        if self.options["speckle"] not in ("lee", "refined-lee"):
            return None
        given = self.options["looks"]
        if given is not None:
            if not float(given) > 0:
                raise MethodError(f"{self.name}: looks must be > 0, got {given!r}")
            return [float(given)] * before.shape[0]
        out = []
        for i in range(before.shape[0]):
            try:
                out.append(float(np.mean([enl(np.maximum(self._intensity(a[i]), floor))
                                          for a in (before, after)])))
            except MethodError as exc:
                raise MethodError(f"{self.name}: cannot estimate the number of looks for the "
                                  f"speckle filter ({exc}); give it as the looks parameter"
                                  ) from None
        return out

    def _filtered_means(self, a: np.ndarray, floor: float, looks: list[float] | None
                        ) -> np.ndarray:
        """Speckle-filtered local means (bands, rows, cols), raised to ``floor``."""
        how = str(self.options["speckle"])
        if how == "none":
            return self._means(a, floor)
        x = self._intensity(a)
        f = np.stack([filtered(np.where(np.isnan(b), np.nan, np.maximum(b, floor)), how, 7,
                               None if looks is None else looks[i])
                      for i, b in enumerate(x)])
        return self._means(f, floor, intensity=True)

    def _operator(self, before, after, fitted) -> tuple[np.ndarray, np.ndarray]:
        """The difference image per band (bands, rows, cols) before any fusion scaling,
        and where both dates are observed."""
        obs = observed_both(before, after)
        f = float(fitted["floor"])
        looks = fitted.get("looks")
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(np.log(self._filtered_means(after, f, looks))
                       - np.log(self._filtered_means(before, f, looks)))
        return r, obs

    def _difference(self, before, after, fitted) -> tuple[np.ndarray, np.ndarray]:
        """The difference image (rows, cols; RMS over bands) and the observed mask."""
        r, obs = self._operator(before, after, fitted)
        how = self.options["difference"]
        if how == "log-ratio":
            d = r
        elif how == "mean-ratio":
            d = -np.expm1(-r)  # 1 - min(m1/m2, m2/m1)
        else:
            d = self._fuse(r, float(fitted["scale"]))
        return np.sqrt(np.mean(d * d, axis=0)), obs

    def _fuse(self, r: np.ndarray, scale: float) -> np.ndarray:
        w = float(self.options["weight"])
        mr = np.stack([_nan_filter(-np.expm1(-b), "mean") for b in r])
        lr = np.stack([_nan_filter(b, "median") for b in r]) / scale
        return w * mr + (1.0 - w) * np.minimum(lr, 1.0)

    def _prepare(self, before, after) -> Fitted:
        self._check_options()
        self._check(before, after)
        floor = self._floor(before, after)
        fitted: Fitted = {"floor": floor, "window": self._window(),
                          "speckle": self.options["speckle"],
                          "difference": self.options["difference"]}
        looks = self._looks(before, after, floor)
        if looks is not None:
            fitted["looks"] = looks
        if self.options["difference"] == "fusion":
            r, obs = self._operator(before, after, fitted)
            lr = np.stack([_nan_filter(b, "median") for b in r])
            v = lr[:, obs]
            v = v[np.isfinite(v)]
            q = float(np.quantile(v, FUSION_QUANTILE)) if v.size else 0.0
            fitted["scale"] = q if q > 0 else 1.0
        return fitted


#: The fusion scales the median-filtered log-ratio by this quantile of its values (a
#: robust maximum), so that both terms lie in [0, 1].
FUSION_QUANTILE = 0.995


def _nan_filter(x: np.ndarray, how: str) -> np.ndarray:
    """3 x 3 mean or median of ``x``, NaN kept (and ignored by the neighbours as 0)."""
    bad = ~np.isfinite(x)
    y = np.where(bad, 0.0, x)
    out = (ndimage.uniform_filter(y, 3, mode="reflect") if how == "mean"
           else ndimage.median_filter(y, 3, mode="reflect"))
    out[bad] = np.nan
    return out


@register_detector
class LogRatio(_DifferenceDetector):
    name = "sar-log-ratio"
    summary = ("Difference of local means over window x window, optionally speckle-filtered "
               "first: |ln(mean_after / mean_before)| (log-ratio), the mean-ratio, or their "
               "fusion; RMS over bands.")
    reference = ("Bazi, Bruzzone & Melgani 2005, IEEE TGRS 43(4); Inglada & Mercier 2007, "
                 "IEEE TGRS 45(5); Zheng et al. 2014, IEEE GRSL 11(3)")
    # Otsu, not Kittler-Illingworth: see the module docstring and docs/benchmarks.md.
    default_threshold = "otsu"

    def fit(self, before, after, bands) -> Fitted:
        return self._prepare(before, after)

    def score(self, before, after, bands, fitted) -> np.ndarray:
        d, obs = self._difference(before, after, fitted)
        return with_nan(d, obs)


@register_detector
class SARPCAKMeans(_DifferenceDetector, PCAKMeans):
    """Celik's PCA-k-means (:class:`sitewatch.change.optical.PCAKMeans`, whose code it runs)
    on the SAR difference image instead of the optical difference of bands."""

    name = "sar-pca-kmeans"
    sensor = "sar"
    normalise = False
    summary = ("PCA-k-means (h x h blocks, PCA, k-means k=2) on the SAR difference image "
               "(log-ratio by default); score = distance to the no-change centre minus "
               "distance to the change centre.")
    reference = "Celik 2009, IEEE GRSL 6(4)"
    default_threshold = "0"

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {**_DifferenceDetector.params(), "window": 1, "block": 5, "variance": 0.9,
                "seed": 0, "robust": True}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return self._difference_halo() + int(self.options["block"]) // 2

    # PCAKMeans.fit / .score call self._difference(before, after): the prepared SAR
    # statistics reach it through _sar, set from the fitted values before each call.
    _sar: Fitted

    def _difference(self, before, after, fitted=None):
        prep = self._sar if fitted is None else fitted
        d, obs = _DifferenceDetector._difference(self, before, after, prep)
        d = np.where(obs, d, 0.0)
        if prep.get("clip") is not None:
            d = np.minimum(d, float(prep["clip"]))
        return d.astype(np.float32) if fitted is None else (d, obs)

    def fit(self, before, after, bands) -> Fitted:
        self._sar = self._prepare(before, after)
        if self.options["robust"]:
            before, after = self._robust(before, after)
        return {**PCAKMeans.fit(self, before, after, bands), **self._sar}

    def _robust(self, before, after) -> tuple[np.ndarray, np.ndarray]:
        """``robust=True``, as the ``*-robust`` thresholds (:func:`robust`): clip the
        difference image at Tukey's far-out fence (a few exploding ratios, land flooded to
        zeros, would otherwise take a k-means cluster of their own and leave every other
        change with the no-change one), and leave a spike of ties at its lowest value (dark
        water on both dates, at least 1 % of the pixels) out of the fit (else k-means may
        split water from land instead of change from no change).  The spike is left out by
        marking it unobserved for the fit only; with ``window`` > 1 the local means next to
        it then differ a little between fit and score."""
        d, obs = _DifferenceDetector._difference(self, before, after, self._sar)
        vals = d[obs]
        try:
            self._sar["clip"] = float(robust(vals).max())
        except ValueError:
            self._sar["clip"] = None
            return before, after
        tie = obs & (d == vals.min())
        if tie.sum() >= SPIKE_SHARE * obs.sum():
            before = np.where(tie, np.nan, before)
            after = np.where(tie, np.nan, after)
        return before, after

    def score(self, before, after, bands, fitted) -> np.ndarray:
        self._sar = {k: fitted[k] for k in ("floor", "looks", "scale", "clip") if k in fitted}
        return PCAKMeans.score(self, before, after, bands, fitted)


def _log_cosh(x: np.ndarray) -> np.ndarray:
    """ln cosh(x) without overflow."""
    a = np.abs(x)
    return a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)


@register_detector
class Omnibus(_SARDetector):
    name = "sar-omnibus"
    summary = ("Likelihood-ratio test of equal backscatter (omnibus test, p = 1, k = 2) on "
               "local means; score = -2 rho ln Q, chi-square with 1 dof per band.")
    reference = "Conradsen, Nielsen & Skriver 2016, IEEE TGRS 54(5)"
    default_threshold = "significance"

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {**super().params(), "enl": None}

    def dof(self, n_bands: int) -> int | None:
        return n_bands

    def fit(self, before, after, bands) -> Fitted:
        w = self._window()
        self._check(before, after)
        floor = self._floor(before, after)
        given = self.options["enl"]
        if given is not None:
            n = float(given)
            if not n > 0:
                raise MethodError(f"{self.name}: enl must be > 0, got {given!r}")
            looks = [n] * before.shape[0]
        else:
            looks = []
            for i in range(before.shape[0]):
                est = []
                for a in (before, after):
                    x = np.maximum(self._intensity(a[i]), floor)
                    try:
                        est.append(_filtered_enl(self._means(a[i:i + 1], floor)[0], w,
                                                 enl(x)))
                    except MethodError as exc:
                        raise MethodError(f"{self.name}: cannot estimate the number of "
                                          f"looks ({exc}); give it as the enl parameter"
                                          ) from None
                looks.append(float(np.mean(est)))
        return {"floor": floor, "window": w, "enl": looks}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        r, obs = self._log_ratio(before, after, fitted)
        n = np.asarray(fitted["enl"], dtype=np.float64)[:, None, None]
        rho = 1.0 - 1.0 / (4.0 * n)
        stat = 4.0 * rho * n * _log_cosh(0.5 * r)
        return with_nan(np.sum(stat, axis=0), obs)


# --------------------------------------------------------------------------------------
# Series


@dataclass(frozen=True)
class OmnibusResult:
    """The sequential omnibus test on a series of k images (rows, cols).

    ``p_value``: of the omnibus test that all k dates are equal; ``p_intervals``
    (k-1, rows, cols): of :math:`R_j`, date j equal to dates 1..j-1 (the factorisation of
    the overall test, from the first date); ``changes`` (k-1, rows, cols): where the
    sequential procedure finds a change between dates j-1 and j; ``first_change``: index of
    the first such interval (0 = between dates 0 and 1; -1 none); ``n_changes``: how many;
    ``observed``: finite on every date (elsewhere p-values are NaN and nothing changes).
    """

    p_value: np.ndarray
    p_intervals: np.ndarray
    changes: np.ndarray
    first_change: np.ndarray
    n_changes: np.ndarray
    observed: np.ndarray
    enl: float
    alpha: float


def _chi2_p(stat: np.ndarray, f: int, omega2: float) -> np.ndarray:
    """P(-2 rho ln Q > stat) with the omega2 correction, clipped to [0, 1]."""
    p = stats.chi2.sf(stat, f) + omega2 * (stats.chi2.sf(stat, f + 4) - stats.chi2.sf(stat, f))
    return np.clip(p, 0.0, 1.0)


def _omnibus_p(logs: np.ndarray, n: float) -> np.ndarray:
    """p-value of equality of all dates in ``logs`` (k, rows, cols): ln of the intensities."""
    k = logs.shape[0]
    ln_sum = np.logaddexp.reduce(logs, axis=0)
    ln_q = n * (k * np.log(k) + logs.sum(axis=0) - k * ln_sum)
    rho = 1.0 - (k / n - 1.0 / (n * k)) / (6.0 * (k - 1))
    omega2 = -(k - 1) / 4.0 * (1.0 - 1.0 / rho) ** 2
    return _chi2_p(np.maximum(-2.0 * rho * ln_q, 0.0), k - 1, omega2)


def _r_p(ln_prev_sum: np.ndarray, ln_x: np.ndarray, j: int, n: float) -> np.ndarray:
    """p-value of R_j (1-based j >= 2): date j equals the j-1 dates whose sum is given."""
    ln_s = np.logaddexp(ln_prev_sum, ln_x)
    ln_r = n * (j * np.log(j) - (j - 1) * np.log(j - 1) + (j - 1) * ln_prev_sum + ln_x
                - j * ln_s)
    rho = 1.0 - (1.0 + 1.0 / (j * (j - 1))) / (6.0 * n)
    omega2 = -0.25 * (1.0 - 1.0 / rho) ** 2
    return _chi2_p(np.maximum(-2.0 * rho * ln_r, 0.0), 1, omega2)


def omnibus_series(images: Sequence[np.ndarray], enl: float, alpha: float = 0.01
                   ) -> OmnibusResult:
    """Sequential omnibus change detection on k >= 2 co-registered intensity images.

    ``enl`` is the equivalent number of looks of the images as given (look-average them
    first, e.g. with :func:`sitewatch.change.optical.local_mean`, and estimate it with
    :func:`enl` on a homogeneous part).  Values are raised to :func:`default_floor` so that
    logarithms stay finite.  See :class:`OmnibusResult`.
    """
    if len(images) < 2:
        raise MethodError(f"omnibus_series: need at least 2 images, got {len(images)}")
    planes = [_plane(a, f"omnibus_series (image {i})") for i, a in enumerate(images)]
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise MethodError(f"omnibus_series: the images differ in shape: {sorted(shapes)}")
    for i, p in enumerate(planes):
        _check_values(p, f"omnibus_series (image {i})")
    n = float(enl)
    if not n > 0:
        raise MethodError(f"omnibus_series: enl must be > 0, got {enl!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise MethodError(f"omnibus_series: alpha must be in (0, 1), got {alpha!r}")
    x = np.stack(planes)
    k = x.shape[0]
    observed = np.isfinite(x).all(axis=0)
    try:
        floor = default_floor(x)
    except MethodError as exc:
        raise MethodError(f"omnibus_series: {exc}") from None
    with np.errstate(invalid="ignore"):
        logs = np.log(np.where(observed, np.maximum(x, floor), 1.0))

    p_value = _omnibus_p(logs, n)
    p_intervals = np.empty((k - 1, *x.shape[1:]))
    ln_sum = logs[0]
    for j in range(1, k):
        p_intervals[j - 1] = _r_p(ln_sum, logs[j], j + 1, n)
        ln_sum = np.logaddexp(ln_sum, logs[j])

    # Sequential procedure with restarts: per pixel, ``start`` is the first date of the
    # sub-series under test and ``ln_acc`` the log of the sum of its dates so far.
    changes = np.zeros((k - 1, *x.shape[1:]), dtype=bool)
    start = np.zeros(x.shape[1:], dtype=np.int64)
    ln_acc = logs[0].copy()
    alive = observed.copy()
    q_ok = {0: p_value < alpha}
    for j in range(1, k):
        for s in range(j):
            sel = alive & (start == s)
            if not sel.any():
                continue
            if s not in q_ok:
                q_ok[s] = _omnibus_p(logs[s:], n) < alpha
            alive &= ~(sel & ~q_ok[s])  # the dates s..k-1 are all equal: no more change
            sel &= q_ok[s]
            hit = sel & (_r_p(ln_acc, logs[j], j - s + 1, n) < alpha)
            changes[j - 1] |= hit
            start[hit] = j
        restart = start == j
        ln_acc = np.where(restart, logs[j], np.logaddexp(ln_acc, logs[j]))
    n_changes = changes.sum(axis=0).astype(np.int32)
    first = np.where(changes.any(axis=0), np.argmax(changes, axis=0), -1).astype(np.int32)
    nan = ~observed
    p_value[nan] = np.nan
    p_intervals[:, nan] = np.nan
    return OmnibusResult(p_value.astype(np.float32), p_intervals.astype(np.float32), changes,
                         first, n_changes, observed, n, float(alpha))


def omnibus_stack(images: Sequence[np.ndarray], *, window: int = 3, alpha: float = 0.01
                  ) -> OmnibusResult:
    """The sequential omnibus test on k >= 2 co-registered images of one or more bands
    ((bands, rows, cols) each, linear intensity, NaN = not observed), as the watch runs it
    over a part's recent series of one orbit.

    Each band is look-averaged over ``window`` x ``window`` (kept NaN where the band is not
    observed) and its ENL estimated from the images themselves (:func:`enl` on each date,
    the median, then corrected for the averaging as ``sar-omnibus`` does); each band is
    tested at ``alpha / bands`` (Bonferroni) and a change in any band is a change, so the
    false-alarm rate stays at most ``alpha`` without assuming the polarisations
    independent.  p-values are the smallest band's times the number of bands (at most 1);
    ``enl`` is the bands' mean.  Raises :class:`MethodError` when the number of looks cannot
    be estimated (too few observed pixels).
    """
    stack = [np.asarray(a, dtype=np.float64) for a in images]
    stack = [a[None] if a.ndim == 2 else a for a in stack]
    if len(stack) < 2:
        raise MethodError(f"omnibus_stack: need at least 2 images, got {len(stack)}")
    if len({a.shape for a in stack}) != 1:
        raise MethodError("omnibus_stack: the images differ in shape: "
                          f"{sorted({a.shape for a in stack})}")
    if isinstance(window, bool) or int(window) != window or window < 1 or window % 2 == 0:
        raise MethodError(f"omnibus_stack: window must be an odd integer >= 1, got {window!r}")
    nb = stack[0].shape[0]
    results: list[OmnibusResult] = []
    for b in range(nb):
        raw = [a[b] for a in stack]
        for i, r in enumerate(raw):
            _check_values(r, f"omnibus_stack (image {i}, band {b + 1})")
        try:
            floor = default_floor(np.concatenate([r.ravel() for r in raw]))
        except MethodError as exc:
            raise MethodError(f"omnibus_stack: {exc}") from None
        looks = []
        for r in raw:
            try:
                looks.append(enl(np.where(np.isfinite(r), np.maximum(r, floor), np.nan)))
            except MethodError:
                continue
        if not looks:
            raise MethodError("omnibus_stack: cannot estimate the number of looks (too few "
                              "observed pixels on every date)")
        raw_enl = float(np.median(looks))
        filt = [np.where(np.isfinite(r), local_mean(np.maximum(r, floor), window), np.nan)
                for r in raw]
        try:
            n = _filtered_enl(filt[0], window, raw_enl) if window > 1 else raw_enl
        except MethodError:
            n = raw_enl
        results.append(omnibus_series(filt, n, alpha / nb))
    if nb == 1:
        return replace(results[0], alpha=float(alpha))
    changes = np.logical_or.reduce([r.changes for r in results])
    observed = np.logical_and.reduce([r.observed for r in results])
    changes &= observed
    first = np.where(changes.any(axis=0), np.argmax(changes, axis=0), -1).astype(np.int32)
    with np.errstate(invalid="ignore"):
        p_value = np.minimum(nb * np.fmin.reduce([r.p_value for r in results]), 1.0)
        p_int = np.minimum(nb * np.fmin.reduce([r.p_intervals for r in results]), 1.0)
    p_value[~observed] = np.nan
    p_int[:, ~observed] = np.nan
    return OmnibusResult(p_value.astype(np.float32), p_int.astype(np.float32), changes, first,
                         changes.sum(axis=0).astype(np.int32), observed,
                         float(np.mean([r.enl for r in results])), float(alpha))
