"""Optical change detectors: difference, ratio, CVA, MAD, IR-MAD, PCA-k-means, index change,
brightness change and hyperbolic anomalous change (HACD).

Each is a :class:`~sitewatch.change.base.Detector`; see :mod:`sitewatch.change.base` for the
two-step (fit on a sample, score any window) contract.  Scores grow with change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from sitewatch.change.base import (
    Detector,
    Fitted,
    MethodError,
    observed_both,
    register_detector,
    with_nan,
)
from sitewatch.change.normalise import MAX_FIT_PIXELS, fit_mad, pixels
from sitewatch.imagery.bands import canonical, normalised_difference
from sitewatch.robust import mad


def _robust_sigma(values: np.ndarray, limit: int | None = None) -> float:
    """The normal-scaled MAD of the finite ``values`` (their spread when that is 0; 1 when
    there are none), from about ``limit`` of them evenly strided when given."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 1.0
    if limit is not None and v.size > limit:
        v = np.ascontiguousarray(v[:: int(np.ceil(v.size / limit))])
    s = float(mad(v, overwrite=True))  # v is this function's own copy (now reordered)
    if s > 0:
        return s
    v = values[np.isfinite(values)]
    if limit is not None and v.size > limit:
        v = v[:: int(np.ceil(v.size / limit))]
    return float(np.std(v)) or 1.0


def _neighbour_min_abs(a: np.ndarray, b: np.ndarray, r: int) -> np.ndarray:
    """min over |dy|,|dx| <= r of |a(y, x) - b(y + dy, x + dx)| for (bands, rows, cols)."""
    if r <= 0:
        return np.abs(a - b)
    best = np.full(a.shape, np.inf, dtype=np.float32)
    pad = np.pad(b, ((0, 0), (r, r), (r, r)), mode="edge")
    h, w = a.shape[1:]
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            np.fmin(best, np.abs(a - pad[:, r + dy:r + dy + h, r + dx:r + dx + w]), out=best)
    return best


def _tolerant_abs_difference(x: np.ndarray, y: np.ndarray, r: int) -> np.ndarray:
    """|y - x| that a shift of up to ``r`` pixels cannot explain, from both sides."""
    if r <= 0:
        return np.abs(y - x)
    return np.fmax(_neighbour_min_abs(y, x, r), _neighbour_min_abs(x, y, r))


@register_detector
class Difference(Detector):
    name = "difference"
    sensor = "optical"
    summary = ("Per-band difference scaled by its robust noise, tolerant of a residual "
               "shift of `tolerance` pixels; score = RMS over bands.")
    reference = "Singh 1989 (image differencing); robust scaling by the MAD"
    default_threshold = "4"

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"tolerance": 1}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return int(self.options["tolerance"])

    def fit(self, before, after, bands) -> Fitted:
        return {"sigma": [_robust_sigma(after[i] - before[i]) for i in range(len(bands))]}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        obs = observed_both(before, after)
        d = _tolerant_abs_difference(before, after, int(self.options["tolerance"]))
        z = d / np.asarray(fitted["sigma"], dtype=np.float32)[:, None, None]
        return with_nan(np.sqrt(np.mean(z**2, axis=0)), obs)


@register_detector
class Ratio(Detector):
    name = "ratio"
    sensor = "optical"
    summary = ("Per-band log ratio scaled by its robust noise; score = RMS over bands. "
               "Insensitive to multiplicative illumination change.")
    reference = "Singh 1989 (image ratioing)"
    default_threshold = "4"

    # Band by band: one band's temporaries at a time (a quarter of the memory for 4
    # bands).  Each band's noise is the MAD of at most MAX_FIT_PIXELS log ratios, evenly
    # strided, the sample IR-MAD's statistics use: its two medians over every pixel of a
    # 2000 x 2000 px grid were a fifth of a comparison's time, and a sample of 250,000
    # estimates the spread to about 0.2 %.

    def fit(self, before, after, bands) -> Fitted:
        return {"sigma": [_robust_sigma(_log_ratio(before[i], after[i]), MAX_FIT_PIXELS)
                          for i in range(len(bands))]}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        obs = observed_both(before, after)
        sigma = np.asarray(fitted["sigma"], np.float32)
        total = np.zeros(before.shape[1:], np.float32)
        for i in range(len(bands)):
            z = _log_ratio(before[i], after[i])
            z /= sigma[i]
            np.square(z, out=z)
            total += z  # the sum np.mean(..., axis=0) takes, in band order
        total /= np.float32(len(bands))
        return with_nan(np.sqrt(total, out=total), obs)


def _log_ratio(before: np.ndarray, after: np.ndarray, floor: float = 0.02) -> np.ndarray:
    # The floor keeps dark surfaces (water at 0.01-0.05 reflectance, where sensor noise is
    # 10-40 % of the signal) from dominating: with 1e-3 every water pixel scored > 4 sigma.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.maximum(after, floor) / np.maximum(before, floor))


@register_detector
class CVA(Detector):
    name = "cva"
    sensor = "optical"
    summary = "Change vector analysis: the length of the vector of band differences."
    reference = "Malila 1980; Johnson & Kasischke 1998"
    default_threshold = "otsu"

    def fit(self, before, after, bands) -> Fitted:
        return {}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        obs = observed_both(before, after)
        return with_nan(np.sqrt(np.sum((after - before) ** 2, axis=0)), obs)


@register_detector
class MAD(Detector):
    name = "mad"
    sensor = "optical"
    summary = ("Multivariate alteration detection: canonical-correlation differences; score "
               "= chi-square statistic (p bands degrees of freedom).")
    reference = "Nielsen, Conradsen & Simpson 1998"
    default_threshold = "significance"
    normalise = False  # invariant to linear transforms of either date
    iterate = False

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"max_iter": 30}

    def dof(self, n_bands: int) -> int | None:
        return n_bands

    def fit(self, before, after, bands) -> Fitted:
        obs = observed_both(before, after)
        f = fit_mad(pixels(before, obs, MAX_FIT_PIXELS), pixels(after, obs, MAX_FIT_PIXELS),
                    iterate=self.iterate,
                    max_iter=int(self.options["max_iter"]))
        return {"mad": f, **f.to_dict()}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        # float32 over the whole window (NaN propagates to the unobserved pixels): no
        # gathering of the observed pixels into float64 copies, ~4x faster per window.
        f = fitted["mad"]
        p = before.shape[0]
        a = (f.a / f.sigma).T.astype(np.float32)
        b = (f.b / f.sigma).T.astype(np.float32)
        m = a @ (before.reshape(p, -1) - f.mean_x.astype(np.float32)[:, None])
        m -= b @ (after.reshape(p, -1) - f.mean_y.astype(np.float32)[:, None])
        z = np.einsum("ij,ij->j", m, m).reshape(before.shape[1:])
        return with_nan(z, observed_both(before, after))


@register_detector
class IRMAD(MAD):
    name = "irmad"
    summary = ("Iteratively reweighted MAD: MAD refitted on the pixels it finds unchanged; "
               "score = chi-square statistic.")
    reference = "Nielsen 2007, IEEE TIP 16(2)"
    iterate = True


@register_detector
class PCAKMeans(Detector):
    name = "pca-kmeans"
    sensor = "optical"
    summary = ("PCA of h x h blocks of the difference image, then k-means (k=2); score = "
               "distance to the no-change centre minus distance to the change centre.")
    reference = "Celik 2009, IEEE GRSL 6(4)"
    default_threshold = "0"

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"block": 5, "variance": 0.9, "seed": 0}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return int(self.options["block"]) // 2

    def _difference(self, before, after) -> np.ndarray:
        obs = observed_both(before, after)
        d = np.sqrt(np.sum((after - before) ** 2, axis=0))
        d[~obs] = 0.0
        return d.astype(np.float32)

    def _vectors(self, d: np.ndarray) -> np.ndarray:
        h = int(self.options["block"])
        r = h // 2
        pad = np.pad(d, r, mode="reflect")
        return sliding_window_view(pad, (h, h)).reshape(d.shape[0] * d.shape[1], h * h)

    def fit(self, before, after, bands) -> Fitted:
        from scipy.cluster.vq import kmeans2

        h = int(self.options["block"])
        if h < 1 or h % 2 == 0:
            raise MethodError(f"pca-kmeans: block must be an odd size >= 1, got {h}")
        obs = observed_both(before, after)
        d = self._difference(before, after)
        rows, cols = (d.shape[0] // h) * h, (d.shape[1] // h) * h
        if rows == 0 or cols == 0:
            raise MethodError(f"pca-kmeans: the image is smaller than one {h} x {h} block")
        # Non-overlapping blocks (Celik's training set), observed blocks only.
        blocks = d[:rows, :cols].reshape(rows // h, h, cols // h, h).swapaxes(1, 2)
        okb = obs[:rows, :cols].reshape(rows // h, h, cols // h, h).swapaxes(1, 2)
        blocks = blocks.reshape(-1, h * h)[okb.reshape(-1, h * h).all(axis=1)]
        if len(blocks) < 2 * h * h:
            raise MethodError("pca-kmeans: too few fully observed blocks to fit")
        mean = blocks.mean(axis=0)
        evals, evecs = np.linalg.eigh(np.cov((blocks - mean).T))
        order = np.argsort(evals)[::-1]
        evals, evecs = evals[order], evecs[:, order]
        frac = np.cumsum(evals) / max(evals.sum(), 1e-20)
        s = int(np.searchsorted(frac, float(self.options["variance"])) + 1)
        proj = evecs[:, :s]
        v = (self._vectors(d) - mean) @ proj
        v = v[obs.ravel()]
        if len(v) > 200_000:
            v = v[:: len(v) // 200_000]
        rng = np.random.default_rng(int(self.options["seed"]))
        centres, _ = kmeans2(v.astype(np.float64), 2, minit="++", seed=rng)
        # The change cluster is the one whose centre means more difference.
        back = centres @ proj.T + mean
        change = int(np.argmax(back.mean(axis=1)))
        return {"mean": mean, "projection": proj, "components": s,
                "change_centre": centres[change], "nochange_centre": centres[1 - change]}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        obs = observed_both(before, after)
        d = self._difference(before, after)
        v = (self._vectors(d) - fitted["mean"]) @ fitted["projection"]
        s = (np.linalg.norm(v - fitted["nochange_centre"], axis=1)
             - np.linalg.norm(v - fitted["change_centre"], axis=1))
        return with_nan(s.reshape(d.shape), obs)


class _IndexChange(Detector):
    """Change of a normalised-difference index, signed so that the change of interest is
    positive: ``sign * (index_after - index_before)``."""

    sensor = "optical"
    plus: str
    minus: str
    sign: float

    def fit(self, before, after, bands) -> Fitted:
        self.check_bands(bands)
        return {}

    #: Below this sum of the two bands on both dates the index is noise (water, shadow):
    #: its change there is taken as 0.
    dark: ClassVar[float] = 0.1

    def score(self, before, after, bands, fitted) -> np.ndarray:
        self.check_bands(bands)
        i, j = bands.index(self.plus), bands.index(self.minus)
        delta = (normalised_difference(after[i], after[j])
                 - normalised_difference(before[i], before[j]))
        with np.errstate(invalid="ignore"):
            dark = ((before[i] + before[j] < self.dark) & (after[i] + after[j] < self.dark))
        delta[dark] = 0.0
        return with_nan(self.sign * delta, observed_both(before, after))


@register_detector
class NDVILoss(_IndexChange):
    name = "ndvi-loss"
    summary = "Vegetation loss: NDVI(before) - NDVI(after)."
    reference = "Tucker 1979 (NDVI); Lyon et al. 1998 (NDVI differencing)"
    default_threshold = "0.2"
    needs = ("nir", "red")
    plus, minus, sign = "nir", "red", -1.0


@register_detector
class BurnScar(_IndexChange):
    name = "dnbr"
    summary = ("Burn scars: differenced normalised burn ratio NBR(before) - NBR(after); "
               "0.1 is the USGS lower bound of low severity.")
    reference = "Key & Benson 2006 (FIREMON dNBR)"
    default_threshold = "0.1"
    needs = ("nir", "swir22")
    plus, minus, sign = "nir", "swir22", -1.0


@register_detector
class BuiltUpGain(_IndexChange):
    name = "ndbi-gain"
    summary = ("Construction, cleared or paved ground: NDBI(after) - NDBI(before), "
               "NDBI = (swir16 - nir) / (swir16 + nir).")
    reference = "Zha, Gao & Ni 2003 (NDBI)"
    default_threshold = "0.1"
    needs = ("swir16", "nir")
    plus, minus, sign = "swir16", "nir", 1.0


@register_detector
class BrightnessChange(Detector):
    name = "brightness"
    sensor = "optical"
    summary = ("Absolute change of mean visible brightness (new concrete, vehicles, "
               "demolition), scaled by its robust noise.")
    reference = "image differencing of a brightness band"
    default_threshold = "4"
    needs: ClassVar[tuple[str, ...]] = ("blue", "green", "red")

    def _brightness(self, arr, bands) -> np.ndarray:
        return np.mean([arr[bands.index(b)] for b in self.needs], axis=0)

    def fit(self, before, after, bands) -> Fitted:
        self.check_bands(bands)
        d = self._brightness(after, bands) - self._brightness(before, bands)
        return {"sigma": _robust_sigma(d)}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        d = self._brightness(after, bands) - self._brightness(before, bands)
        return with_nan(np.abs(d) / fitted["sigma"], observed_both(before, after))


def local_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size x size window (NaN-aware: the mean of the finite neighbours)."""
    ok = np.isfinite(a)
    s = ndimage.uniform_filter(np.where(ok, a, 0.0).astype(np.float64), size, mode="reflect")
    n = ndimage.uniform_filter(ok.astype(np.float64), size, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / n
    out[n < 1e-9] = np.nan
    return out.astype(np.float32)


@dataclass(frozen=True)
class HACD:
    """Hyperbolic anomalous change detection (Theiler & Perkins 2006) fitted on a pair.

    With x, y a pixel's bands on the two dates and z = (x, y), the anomaly is
    ``A = z' Cz^-1 z - x' Cx^-1 x - y' Cy^-1 y`` (centred values, scene covariances): large
    where the pixel's change is unusual *given* the change the whole scene underwent
    (seasons, haze, gain), small for pixels that are merely rare on either date.  It is
    invariant to any affine transform of either date.
    """

    mean_x: np.ndarray
    mean_y: np.ndarray
    #: The quadratic form of the anomaly: inv(Cz) - blockdiag(inv(Cx), inv(Cy)).
    q: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float = 1e-6) -> HACD:
        """From (p, n) pixel arrays of the two dates."""
        p = x.shape[0]
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        mx, my = x.mean(axis=1), y.mean(axis=1)
        z = np.vstack([x - mx[:, None], y - my[:, None]])
        c = z @ z.T / max(z.shape[1] - 1, 1)
        c = c + ridge * np.trace(c) / (2 * p) * np.eye(2 * p)
        try:
            q = np.linalg.inv(c)
            q[:p, :p] -= np.linalg.inv(c[:p, :p])
            q[p:, p:] -= np.linalg.inv(c[p:, p:])
        except np.linalg.LinAlgError as exc:
            raise MethodError(f"HACD: singular band covariance ({exc})") from None
        return cls(mx, my, q)

    def anomaly(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """sqrt(max(A, 0)) of (p, n) pixel arrays -> (n,), float32 for float32 input
        (A is a few units where it matters; float32 keeps six digits of it)."""
        dt = np.float32 if x.dtype == np.float32 and y.dtype == np.float32 else np.float64
        p = self.mean_x.shape[0]
        z = np.empty((2 * p, x.shape[1]), dtype=dt)
        np.subtract(x, self.mean_x.astype(dt)[:, None], out=z[:p])
        np.subtract(y, self.mean_y.astype(dt)[:, None], out=z[p:])
        a: np.ndarray = np.einsum("in,in->n", z, np.asarray(self.q.astype(dt) @ z))
        return np.sqrt(np.maximum(a, 0.0, out=a), out=a)


@register_detector
class HACDChange(Detector):
    """Hyperbolic anomalous change, averaged over a small neighbourhood.

    The scene-wide joint statistics of the two dates explain whatever happened everywhere
    (season, haze, sensor gain, a different sun), so only change that is unusual for this
    pair scores high; the window average turns speckled pixel anomalies into objects.  No
    normalisation is needed (the statistic is invariant to an affine transform of either
    date).  The default threshold 2 (on sqrt of the anomaly, 5 x 5 mean, visible bands) was
    chosen on OSCD and holds leave-one-city-out (each city's own best lies in 1.7-2.0).
    """

    name = "hacd"
    sensor = "optical"
    summary = ("Hyperbolic anomalous change: change the scene-wide joint statistics of the two "
               "dates do not explain (seasons, haze and gain are pervasive, hence explained), "
               "averaged over a `window` x `window` neighbourhood.")
    reference = "Theiler & Perkins 2006, IEEE TGRS 44(11); Theiler 2008 (hyperbolic ACD)"
    default_threshold = "2"
    needs: ClassVar[tuple[str, ...]] = ("blue", "green", "red")
    normalise = False

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"bands": "blue,green,red", "window": 5}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        spec = self.options["bands"]
        if isinstance(spec, (list, tuple)):
            spec = ",".join(map(str, spec))
        spec = str(spec or "").strip()
        self.use = (() if spec in ("", "all")
                    else tuple(canonical(b) for b in spec.split(",") if b.strip()))
        self.needs = self.use  # type: ignore[misc]
        w = self.options["window"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or int(w) != w or w < 1 \
                or int(w) % 2 == 0:
            raise MethodError(f"hacd: window must be an odd whole number >= 1, got {w!r}")
        self.options["window"] = int(w)
        self.halo = int(w) // 2  # type: ignore[misc]

    def _index(self, bands) -> list[int]:
        self.check_bands(tuple(bands))
        return [bands.index(b) for b in self.use] if self.use else list(range(len(bands)))

    def fit(self, before, after, bands) -> Fitted:
        ix = self._index(bands)
        obs = observed_both(before[ix], after[ix])
        if obs.sum() < 10 * 2 * len(ix):
            raise MethodError(f"hacd: too few pixels observed on both dates ({int(obs.sum())}) "
                              "to estimate the band covariances")
        h = HACD.fit(pixels(before[ix], obs, MAX_FIT_PIXELS),
                     pixels(after[ix], obs, MAX_FIT_PIXELS))
        return {"hacd": h}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        ix = self._index(bands)
        obs = observed_both(before[ix], after[ix])
        out = np.full(obs.shape, np.nan, dtype=np.float32)
        # The observed pixels in row-major order, as ``x[:, obs]`` gathers them, but ~10x
        # faster (the 2-D mask under a leading slice was 60 % of a whole tile's scoring).
        flat = obs.ravel()
        b = np.compress(flat, np.asarray(before[ix], dtype=np.float32).reshape(len(ix), -1),
                        axis=1)
        a = np.compress(flat, np.asarray(after[ix], dtype=np.float32).reshape(len(ix), -1),
                        axis=1)
        out[obs] = fitted["hacd"].anomaly(b, a)
        w = int(self.options["window"])
        if w > 1:
            out = local_mean(out, w)
        return with_nan(out, obs)

__all__ = ["CVA", "HACD", "IRMAD", "MAD", "BrightnessChange", "BuiltUpGain", "BurnScar",
           "Difference", "HACDChange", "NDVILoss", "PCAKMeans", "Ratio", "local_mean"]
