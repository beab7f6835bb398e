"""Multivariate alteration detection (MAD / IR-MAD) and relative radiometric normalisation.

MAD (Nielsen, Conradsen & Simpson 1998) finds the linear combinations ``a'X`` and ``b'Y`` of
the two dates' bands that are most correlated (canonical correlation analysis); their
differences, the MAD variates, are uncorrelated and, where nothing changed, approximately
Gaussian with variance ``2(1 - rho_i)``.  The sum of their squared standardised values is then
chi-square with ``p`` (bands) degrees of freedom, so ``1 - chi2.cdf(Z, p)`` is the probability
that a pixel did *not* change.  Iteratively reweighted MAD (IR-MAD; Nielsen 2007) repeats the
analysis with those probabilities as weights, so the canonical variates come to describe the
unchanged background alone.  MAD is invariant to any linear transform of either date: gain,
offset and band mixing do not matter.

The no-change pixels IR-MAD finds make a good training set for *relative normalisation*
(Canty & Nielsen 2008): per band, an orthogonal (total least squares) regression of the
reference date on the other date over those pixels gives a gain and offset that map the other
date onto the reference's radiometry, regardless of season-wide haze or sensor gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, special, stats

from sitewatch.errors import SitewatchError
from sitewatch.robust import mad

#: Pixels with a no-change probability above this train the normalisation.
NO_CHANGE_PROBABILITY = 0.95


class NormalisationError(SitewatchError, ValueError):
    """Too few usable pixels, or degenerate bands, for MAD or normalisation."""


@dataclass(frozen=True)
class MADFit:
    """Canonical vectors and statistics of a (weighted) MAD analysis of two dates."""

    a: np.ndarray  # (p, p) columns: canonical vectors of X, ordered lowest correlation first
    b: np.ndarray  # (p, p) same for Y
    mean_x: np.ndarray  # (p,)
    mean_y: np.ndarray  # (p,)
    rho: np.ndarray  # (p,) canonical correlations, ascending
    sigma: np.ndarray  # (p,) calibrated standard deviation of each MAD variate (scoring)
    iterations: int
    converged: bool
    sigma_w: np.ndarray | None = None  # (p,) sqrt(2(1 - rho)) of the weighted fit

    @property
    def dof(self) -> int:
        return len(self.rho)

    def variates(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """MAD variates of pixels ``x``, ``y`` given as (p, n) arrays -> (p, n)."""
        return (self.a.T @ (x - self.mean_x[:, None])
                - self.b.T @ (y - self.mean_y[:, None]))

    def chi2(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The chi-square change statistic of (p, n) pixels (large = changed) -> (n,)."""
        m = self.variates(x, y) / self.sigma[:, None]
        return np.einsum("ij,ij->j", m, m)

    def no_change_probability(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The chi-square tail probability of each pixel's (calibrated) statistic."""
        return chi2_sf(self.chi2(x, y), self.dof)

    def to_dict(self) -> dict[str, object]:
        return {"canonical_correlations": [round(float(r), 6) for r in self.rho],
                "iterations": self.iterations, "converged": self.converged}


def chi2_sf(z: np.ndarray, dof: int) -> np.ndarray:
    """The chi-square survival function ``P(X > z)``, X ~ chi2(dof), in closed form.

    ``Q(dof / 2, z / 2)`` by its finite series (a Poisson sum for even dof, erfc plus a sum
    for odd dof): equal to ``scipy.stats.chi2.sf`` to ~1e-14 and 3-20x faster, which matters
    because IR-MAD evaluates it on every pixel at every iteration.

    >>> round(float(chi2_sf(np.array([9.4877]), 4)[0]), 4)
    0.05
    """
    h = np.maximum(np.asarray(z, dtype=np.float64), 0.0) / 2
    eh = np.exp(-h)
    if dof % 2 == 0:
        term = eh.copy()
        total = term.copy()
        for k in range(1, dof // 2):
            term *= h / k
            total += term
        return total
    total = special.erfc(np.sqrt(h))
    if dof > 1:
        term = eh * np.sqrt(h) / special.gamma(1.5)
        total += term
        for k in range(2, (dof - 1) // 2 + 1):
            term *= h / (k - 0.5)
            total += term
    return total


#: Statistics are gathered from at most this many pixels (evenly strided).
MAX_FIT_PIXELS = 250_000


def pixels(arr: np.ndarray, observed: np.ndarray, limit: int | None = None) -> np.ndarray:
    """(bands, rows, cols) -> (bands, n) float64 of the observed pixels, strided down to
    about ``limit`` pixels when given.  Bands-first keeps the matrix products fast."""
    # The stride is taken over the observed pixels' flat positions, so only the pixels kept
    # are gathered (not every observed pixel of every band first, then a strided copy).
    idx = np.flatnonzero(observed)
    if limit is not None and idx.size > limit:
        idx = idx[:: int(np.ceil(idx.size / limit))]
    flat = arr.reshape(arr.shape[0], -1)
    return np.take(flat, idx, axis=1).astype(np.float64)


def fit_mad(x: np.ndarray, y: np.ndarray, *, iterate: bool = True, max_iter: int = 30,
            tol: float = 1e-4, ridge: float = 1e-6, min_pixels: int = 100) -> MADFit:
    """(IR-)MAD of pixels ``x`` (reference) and ``y`` (other date), each (p bands, n).

    ``iterate=False`` is plain MAD.  ``ridge`` regularises nearly singular covariances
    (duplicated or saturated bands) by that fraction of the mean variance.
    """
    if x.shape != y.shape or x.ndim != 2:
        raise NormalisationError(f"MAD needs two (bands, n) arrays of one shape, got "
                                 f"{x.shape} and {y.shape}")
    p, n = x.shape
    if n < max(min_pixels, 2 * p + 2):
        raise NormalisationError(f"MAD needs at least {max(min_pixels, 2 * p + 2)} pixels "
                                 f"observed on both dates, got {n}")
    w = np.ones(n)
    rho_old = np.zeros(p)
    converged = False
    fit: MADFit | None = None
    # The (p, n) work arrays are made once and reused by every iteration (the same
    # arithmetic as fresh arrays; two comparisons run IR-MAD at once in the watch).
    xc, yc, wx, m, z = (np.empty_like(x, dtype=np.float64) for _ in range(5))
    for it in range(1, (max_iter if iterate else 1) + 1):
        sw = w.sum()
        if sw < 2 * p + 2:
            raise NormalisationError("IR-MAD weights collapsed: almost every pixel looks "
                                     "changed")
        mx = x @ w / sw
        my = y @ w / sw
        np.subtract(x, mx[:, None], out=xc)
        np.subtract(y, my[:, None], out=yc)
        np.multiply(xc, w, out=wx)
        sxx = wx @ xc.T / sw
        sxy = wx @ yc.T / sw
        np.multiply(yc, w, out=z)  # z as scratch space until the variates below
        syy = z @ yc.T / sw
        reg = ridge * (np.trace(sxx) + np.trace(syy)) / (2 * p)
        sxx = sxx + reg * np.eye(p)
        syy = syy + reg * np.eye(p)
        if np.any(np.diag(sxx) <= reg) or np.any(np.diag(syy) <= reg):
            raise NormalisationError("MAD: a band is constant over the observed pixels")
        try:
            syy_inv = linalg.inv(syy)
            # Generalised symmetric eigenproblem Sxy Syy^-1 Syx a = rho^2 Sxx a.
            rho2, a = linalg.eigh(sxy @ syy_inv @ sxy.T, sxx)
        except linalg.LinAlgError as exc:
            raise NormalisationError(f"MAD: covariance is singular ({exc})") from None
        rho = np.sqrt(np.clip(rho2, 0.0, 1.0))  # ascending: largest change variance first
        b = syy_inv @ sxy.T @ a
        b /= np.sqrt(np.einsum("ij,ij->j", b, syy @ b))  # unit variance of b'Y
        # a'Sxx a = 1 comes from eigh; make each pair positively correlated.
        sign = np.sign(np.einsum("ij,ij->j", a, sxy @ b))
        sign[sign == 0] = 1
        b = b * sign
        sigma_w = np.sqrt(np.maximum(2.0 * (1.0 - rho), 1e-12))
        np.matmul(a.T, xc, out=m)
        np.matmul(b.T, yc, out=z)
        np.subtract(m, z, out=m)
        np.divide(m, sigma_w[:, None], out=z)
        zz = np.einsum("ij,ij->j", z, z)
        fit = MADFit(a, b, mx, my, rho, sigma_w, it, converged, sigma_w)
        if not iterate or (it > 1 and np.max(np.abs(rho - rho_old)) < tol):
            converged = converged or it > 1
            break
        rho_old = rho
        w = chi2_sf(zz, p)
    assert fit is not None
    # The weighted covariance describes the quietest core of the background, so 2(1 - rho)
    # understates the spread of ordinary unchanged pixels and their chi-square comes out
    # several times too large.  For scoring, each variate's spread is measured robustly
    # (median absolute deviation) over the pixels that are not clearly changed, which keeps
    # the null distribution close to chi2(p) without letting a large change inflate it.
    core = zz < stats.chi2.isf(1e-6, p)
    if core.sum() < max(50, 0.2 * n):
        core = np.ones(n, bool)
    mc = m[:, core]
    sigma = mad(mc, axis=1)
    floor = 0.0 if fit.sigma_w is None else fit.sigma_w * 1e-3
    sigma = np.maximum(sigma, floor)
    return MADFit(fit.a, fit.b, fit.mean_x, fit.mean_y, fit.rho, sigma, fit.iterations,
                  converged or not iterate, fit.sigma_w)


@dataclass(frozen=True)
class Normalisation:
    """Per-band gain and offset mapping the other date onto the reference: ``g * y + o``."""

    gain: np.ndarray
    offset: np.ndarray
    n_pixels: int
    mad: MADFit

    def apply(self, after: np.ndarray) -> np.ndarray:
        """Normalise a (bands, rows, cols) array of the other date."""
        return (after * self.gain[:, None, None].astype(np.float32)
                + self.offset[:, None, None].astype(np.float32))

    def to_dict(self) -> dict[str, object]:
        return {"gain": [round(float(g), 6) for g in self.gain],
                "offset": [round(float(o), 6) for o in self.offset],
                "no_change_pixels": self.n_pixels, "irmad": self.mad.to_dict()}


def orthogonal_regression(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Total least squares line ``x ~ g * y + o`` (errors in both variables).

    >>> y = np.arange(10.0)
    >>> orthogonal_regression(2 * y + 1, y)
    (2.0, 1.0)
    """
    mx, my = x.mean(), y.mean()
    sxx = np.mean((x - mx) ** 2)
    syy = np.mean((y - my) ** 2)
    sxy = np.mean((x - mx) * (y - my))
    if sxy == 0:
        raise NormalisationError("orthogonal regression: the dates are uncorrelated")
    g = (sxx - syy + np.sqrt((sxx - syy) ** 2 + 4 * sxy**2)) / (2 * sxy)
    return round(float(g), 12), round(float(mx - g * my), 12)


def fit_normalisation(before: np.ndarray, after: np.ndarray, *,
                      probability: float = NO_CHANGE_PROBABILITY,
                      min_pixels: int = 100) -> Normalisation:
    """Relative normalisation of ``after`` to ``before`` from IR-MAD's no-change pixels.

    Both are (bands, rows, cols) on one grid, NaN where not observed.
    """
    from sitewatch.change.base import observed_both

    obs = observed_both(before, after)
    x, y = pixels(before, obs, MAX_FIT_PIXELS), pixels(after, obs, MAX_FIT_PIXELS)
    mad = fit_mad(x, y, min_pixels=min_pixels)
    keep = mad.no_change_probability(x, y) > probability
    if keep.sum() < min_pixels:
        raise NormalisationError(
            f"only {int(keep.sum())} pixels are confidently unchanged (need {min_pixels})"
        )
    gains, offsets = [], []
    for i in range(x.shape[0]):
        g, o = orthogonal_regression(x[i, keep], y[i, keep])
        gains.append(g)
        offsets.append(o)
    return Normalisation(np.array(gains), np.array(offsets), int(keep.sum()), mad)

__all__ = ["MAX_FIT_PIXELS", "NO_CHANGE_PROBABILITY", "MADFit", "Normalisation",
           "NormalisationError", "chi2_sf", "fit_mad", "fit_normalisation", "orthogonal_regression",
           "pixels"]
