"""Per-pixel features of a pair of co-registered images, for the learned change detector
(:mod:`~sitewatch.change.learned`).

Both dates' bands, their differences and log-ratios, spectral indices (NDVI, NDBI, NBR, NDWI
where the bands exist) of both dates and their change, visible brightness, anomalous change
(HACD) of band groups, and local texture of the change magnitude and of each date's
brightness.  Nothing depends on scene-wide statistics except :func:`pair_stats`, computed
once per pair and passed in, so a window with a halo of :data:`HALO` pixels scores exactly as
the whole scene would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from sitewatch.change.base import MethodError, observed_both
from sitewatch.change.normalise import pixels as _pixels
from sitewatch.change.optical import HACD, _robust_sigma
from sitewatch.imagery.bands import normalised_difference

#: Normalised-difference indices used when both of their bands are present: (plus, minus).
INDICES: dict[str, tuple[str, str]] = {
    "ndvi": ("nir", "red"),
    "ndbi": ("swir16", "nir"),
    "nbr": ("nir", "swir22"),
    "ndwi": ("green", "nir"),
}
#: Band groups whose anomalous change (HACD) is a feature, when all their bands are present;
#: "all" is every band of the model.  Groups with the same bands as an earlier one are skipped.
HACD_GROUPS: dict[str, tuple[str, ...]] = {
    "visible": ("blue", "green", "red"),
    "10m": ("blue", "green", "red", "nir"),
    "six": ("blue", "green", "red", "nir", "swir16", "swir22"),
    "all": (),
}
#: Window sizes of the texture features and of the smoothed HACD scores.
TEXTURE_SIZES = (3, 7)
HACD_SIZES = (3, 5, 9, 15)
#: Context pixels a window needs on each side for its features to equal the whole scene's.
HALO = max(*TEXTURE_SIZES, *HACD_SIZES) // 2
_VISIBLE = ("blue", "green", "red")
_FLOOR = 1e-3  # reflectance floor of the log-ratios
#: Scene statistics are gathered from at most this many pixels (evenly strided).
STATS_PIXELS = 500_000


def _local_stats(a: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean and standard deviation over size x size windows."""
    ok = np.isfinite(a)
    x = np.where(ok, a, 0.0).astype(np.float64)
    n = ndimage.uniform_filter(ok.astype(np.float64), size, mode="reflect")
    s1 = ndimage.uniform_filter(x, size, mode="reflect")
    s2 = ndimage.uniform_filter(x * x, size, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    empty = n < 1e-6
    mean[empty] = np.nan
    std[empty] = np.nan
    return mean.astype(np.float32), std.astype(np.float32)


def _log_ratio(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.maximum(a, _FLOOR) / np.maximum(b, _FLOOR))


def _brightness_bands(bands: Sequence[str]) -> list[str]:
    vis = [b for b in _VISIBLE if b in bands]
    return vis or list(bands)


def hacd_groups(bands: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The HACD band groups available with ``bands`` (see :data:`HACD_GROUPS`)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, group in HACD_GROUPS.items():
        g = group if group else tuple(bands)
        if all(b in bands for b in g) and g not in out.values():
            out[name] = g
    return out


def pair_stats(before: np.ndarray, after: np.ndarray, bands: Sequence[str]) -> dict[str, Any]:
    """Scene-wide statistics the features are relative to (from a sample of the pair):
    the robust noise of every band's difference and log-ratio and of the brightness
    difference, and the HACD fit of each band group."""
    bands = list(bands)
    before = np.asarray(before, dtype=np.float32)
    after = np.asarray(after, dtype=np.float32)
    obs = observed_both(before, after)
    if obs.sum() < 10 * (2 * len(bands) + 2):
        raise MethodError(f"too few pixels observed on both dates ({int(obs.sum())}) for the "
                          "scene statistics of the learned detector")
    b = _pixels(before, obs, STATS_PIXELS)
    a = _pixels(after, obs, STATS_PIXELS)
    vis = [bands.index(n) for n in _brightness_bands(bands)]
    stats: dict[str, Any] = {
        "diff_sigma": np.array([_robust_sigma(a[i] - b[i]) for i in range(len(bands))]),
        "ratio_sigma": np.array([_robust_sigma(_log_ratio(b[i], a[i]))
                                 for i in range(len(bands))]),
        "brightness_sigma": _robust_sigma(a[vis].mean(axis=0) - b[vis].mean(axis=0)),
        "hacd": {},
    }
    for name, group in hacd_groups(bands).items():
        ix = [bands.index(n) for n in group]
        stats["hacd"][name] = HACD.fit(b[ix], a[ix])
    return stats


def feature_names(bands: Sequence[str]) -> list[str]:
    """Names of the features :func:`features` computes for ``bands``, in order."""
    bands = list(bands)
    names = [f"{b}_diff_z" for b in bands] + [f"{b}_logratio_z" for b in bands]
    for idx, (p, m) in INDICES.items():
        if p in bands and m in bands:
            names += [f"{idx}_before", f"{idx}_after", f"{idx}_diff"]
    names += ["brightness_before", "brightness_after", "brightness_diff_z",
              "change_magnitude"]
    for s in TEXTURE_SIZES:
        names += [f"magnitude_mean{s}", f"magnitude_std{s}", f"brightness_diff_mean{s}",
                  f"brightness_before_std{s}", f"brightness_after_std{s}"]
    for g in hacd_groups(bands):
        names += [f"hacd_{g}"] + [f"hacd_{g}_mean{s}" for s in HACD_SIZES]
        names.append(f"hacd_{g}_std{HACD_SIZES[-2]}")
    return names


def features(before: np.ndarray, after: np.ndarray, bands: Sequence[str],
             stats: dict[str, Any] | None = None) -> np.ndarray:
    """Per-pixel features of a pair: (n_features, rows, cols) float32, NaN where a value
    cannot be computed (see :func:`feature_names`).

    ``stats`` are the scene statistics from :func:`pair_stats` (default: computed from
    this pair itself); passing the statistics of the whole scene makes a window's features
    (with :data:`HALO` pixels of context) equal to the whole scene's.  Pixels not observed
    on both dates get NaN; neighbourhood values average the observed neighbours only.
    """
    bands = list(bands)
    before = np.asarray(before, dtype=np.float32)
    after = np.asarray(after, dtype=np.float32)
    if before.ndim != 3 or before.shape != after.shape or before.shape[0] != len(bands):
        raise MethodError(f"features need two (bands, rows, cols) arrays of one shape with "
                          f"{len(bands)} band(s); got {before.shape} and {after.shape}")
    if stats is None:
        stats = pair_stats(before, after, bands)
    obs = observed_both(before, after)
    b = np.where(obs, before, np.nan)
    a = np.where(obs, after, np.nan)
    dz = (a - b) / stats["diff_sigma"].astype(np.float32)[:, None, None]
    lz = _log_ratio(b, a) / stats["ratio_sigma"].astype(np.float32)[:, None, None]
    out: list[np.ndarray] = [dz, lz]
    idx = {n: i for i, n in enumerate(bands)}
    for p, m in INDICES.values():
        if p in idx and m in idx:
            ib = normalised_difference(b[idx[p]], b[idx[m]])
            ia = normalised_difference(a[idx[p]], a[idx[m]])
            out.append(np.stack([ib, ia, ia - ib]))
    vis = [idx[n] for n in _brightness_bands(bands)]
    bb, ba = b[vis].mean(axis=0), a[vis].mean(axis=0)
    bz = (ba - bb) / np.float32(stats["brightness_sigma"])
    mag = np.sqrt(np.mean(dz * dz, axis=0))
    out.append(np.stack([bb, ba, bz, mag]))
    for s in TEXTURE_SIZES:
        m_mean, m_std = _local_stats(mag, s)
        d_mean, _ = _local_stats(bz, s)
        _, b_std = _local_stats(bb, s)
        _, a_std = _local_stats(ba, s)
        out.append(np.stack([m_mean, m_std, d_mean, b_std, a_std]))
    for name, group in hacd_groups(bands).items():
        ix = [idx[n] for n in group]
        h = np.full(obs.shape, np.nan, dtype=np.float32)
        h[obs] = stats["hacd"][name].anomaly(_pixels(b[ix], obs), _pixels(a[ix], obs))
        layers = [h] + [_local_stats(h, s)[0] for s in HACD_SIZES]
        layers.append(_local_stats(h, HACD_SIZES[-2])[1])
        out.append(np.stack(layers))
    f = np.concatenate(out, axis=0).astype(np.float32, copy=False)
    f[:, ~obs] = np.nan
    return f

__all__ = ["HACD_GROUPS", "HACD_SIZES", "HALO", "INDICES", "STATS_PIXELS", "TEXTURE_SIZES",
           "feature_names", "features", "hacd_groups", "pair_stats"]
