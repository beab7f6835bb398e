r"""Speckle filters for SAR intensity images: multi-look (box), Lee, refined Lee.

All three estimate the backscatter :math:`\sigma` under the multiplicative model
:math:`y = \sigma v`, :math:`E[v] = 1`, :math:`\mathrm{Var}[v] = 1/L` (L looks; for
intensity, :mod:`sitewatch.change.sar` explains the gamma model).

* :func:`box` — the multi-look (boxcar) average over ``size`` x ``size``: the ENL of a
  homogeneous area rises up to ``size``² times, edges and points are smeared over the window.
* :func:`lee` — Lee's local linear minimum-mean-square-error filter (Lee 1980, IEEE PAMI
  2(2); Lee 1981, CGIP 17): with the local mean :math:`\bar y` and variance
  :math:`V_y` over the window,
  :math:`\mathrm{Var}[x] = (V_y - \bar y^2/L)/(1 + 1/L)`,
  :math:`b = \mathrm{clip}(\mathrm{Var}[x]/V_y, 0, 1)` and
  :math:`\hat\sigma = \bar y + b\,(y - \bar y)`: homogeneous areas (b ~ 0) are averaged,
  heterogeneous ones (edges, points; b ~ 1) kept.
* :func:`refined_lee` — the refined Lee filter (Lee 1981, CGIP 17, "edge-aligned windows";
  Lee, Grunes & de Grandi 1999, IEEE TGRS 37(5), sec. III): in a 7 x 7 window, the means of
  nine 3 x 3 sub-windows (centres 2 pixels apart) give the gradient in four directions
  (0, 45, 90, 135 degrees); the strongest one says which way an edge runs, and of the two
  halves of the window on either side of it (a half-square or a triangle, the centre line
  included) the one whose sub-window mean is closer to the centre's is used for the local
  statistics of the Lee weight.  Averaging therefore stops at the edge instead of mixing
  the two sides.

Everything is vectorised with :mod:`scipy.ndimage` (one correlation per window shape).  NaN
(not observed) pixels are filled with the mean of their finite neighbours for the
computation and are NaN again in the output.  :func:`filtered` dispatches by name
(:data:`FILTERS`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sitewatch.change.base import MethodError

__all__ = ["FILTERS", "box", "filter_halo", "filtered", "lee", "refined_lee"]

#: Filter names :func:`filtered` accepts.
FILTERS: tuple[str, ...] = ("none", "box", "lee", "refined-lee")

#: The refined Lee filter's window (7 x 7, as Lee et al. 1999).
REFINED_SIZE = 7


def _filled(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (float64) with NaN replaced by the mean of finite neighbours (else the mean of
    the image), and the mask of the NaN."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, bad
    ok = ~bad
    s = ndimage.uniform_filter(np.where(ok, x, 0.0), 7, mode="reflect")
    n = ndimage.uniform_filter(ok.astype(np.float64), 7, mode="reflect")
    fill = float(np.mean(x[ok])) if ok.any() else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        near = np.where(n > 1e-9, s / np.maximum(n, 1e-12), fill)
    return np.where(bad, near, x), bad


def _check_size(size: int, what: str) -> int:
    if isinstance(size, bool) or int(size) != size or size < 1 or int(size) % 2 == 0:
        raise MethodError(f"{what}: window must be an odd integer >= 1, got {size!r}")
    return int(size)


def _check_looks(looks: float, what: str) -> float:
    if not float(looks) > 0:
        raise MethodError(f"{what}: the number of looks must be > 0, got {looks!r}")
    return float(looks)


def box(x: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` moving average (multi-look); NaN stays NaN."""
    size = _check_size(size, "box filter")
    y, bad = _filled(x)
    out = ndimage.uniform_filter(y, size, mode="reflect") if size > 1 else y.copy()
    out[bad] = np.nan
    return out


def _lee_weight(y: np.ndarray, mean: np.ndarray, var: np.ndarray, looks: float) -> np.ndarray:
    cu2 = 1.0 / looks  # squared coefficient of variation of the speckle
    var_x = (var - mean * mean * cu2) / (1.0 + cu2)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(var > 0, var_x / np.where(var > 0, var, 1.0), 0.0)
    b = np.clip(b, 0.0, 1.0)
    return mean + b * (y - mean)


def lee(x: np.ndarray, size: int, looks: float) -> np.ndarray:
    """Lee's MMSE filter over a ``size`` x ``size`` window for ``looks``-look intensity."""
    size = _check_size(size, "lee filter")
    looks = _check_looks(looks, "lee filter")
    y, bad = _filled(x)
    if size == 1:
        out = y.copy()
    else:
        m = ndimage.uniform_filter(y, size, mode="reflect")
        m2 = ndimage.uniform_filter(y * y, size, mode="reflect")
        out = _lee_weight(y, m, np.maximum(m2 - m * m, 0.0), looks)
    out[bad] = np.nan
    return out


def _half_masks() -> list[np.ndarray]:
    """The eight edge-aligned 7 x 7 windows, in the order of :func:`refined_lee`'s choice:
    (left, right), (up, down), (upper-right, lower-left), (upper-left, lower-right)."""
    r, c = np.mgrid[-3:4, -3:4]
    return [c <= 0, c >= 0, r <= 0, r >= 0, c >= r, c <= r, r + c <= 0, r + c >= 0]


def refined_lee(x: np.ndarray, looks: float) -> np.ndarray:
    """The refined Lee filter (7 x 7 edge-aligned windows; see the module docstring) for
    ``looks``-look intensity."""
    looks = _check_looks(looks, "refined lee filter")
    y, bad = _filled(x)
    # Sums of the nine 3 x 3 sub-windows, centres at offsets -2, 0, 2 (s[i][j]: row i).
    # A direct correlation adds every neighbourhood in the same order wherever it lies (a
    # running mean does not), so ties between directions, frequent on quantised data,
    # are broken the same way in a window of a scene as in the whole scene.
    m3 = ndimage.correlate(y, np.ones((3, 3)), mode="reflect")
    p = np.pad(m3, 2, mode="reflect")
    rows, cols = y.shape
    s = [[p[2 + dr: 2 + dr + rows, 2 + dc: 2 + dc + cols] for dc in (-2, 0, 2)]
         for dr in (-2, 0, 2)]
    centre = s[1][1]
    # Opposite sub-windows per direction: the gradient across it and the two sides.
    pairs = [(s[1][0], s[1][2]),  # left / right: a vertical edge
             (s[0][1], s[2][1]),  # up / down: a horizontal edge
             (s[0][2], s[2][0]),  # upper-right / lower-left: an edge along the diagonal
             (s[0][0], s[2][2])]  # upper-left / lower-right: along the anti-diagonal
    grad = np.stack([np.abs(a - b) for a, b in pairs])
    direction = np.argmax(grad, axis=0)
    side = np.stack([np.abs(b - centre) < np.abs(a - centre) for a, b in pairs])
    choice = 2 * direction + np.take_along_axis(side, direction[None], 0)[0].astype(np.int64)
    mean = np.empty_like(y)
    var = np.empty_like(y)
    for k, mask in enumerate(_half_masks()):
        sel = choice == k
        if not sel.any():
            continue
        w = mask / mask.sum()
        m = ndimage.correlate(y, w, mode="reflect")
        m2 = ndimage.correlate(y * y, w, mode="reflect")
        mean[sel] = m[sel]
        var[sel] = np.maximum(m2[sel] - m[sel] ** 2, 0.0)
    out = _lee_weight(y, mean, var, looks)
    out[bad] = np.nan
    return out


def filtered(x: np.ndarray, how: str, size: int, looks: float | None = None) -> np.ndarray:
    """``x`` filtered by name (:data:`FILTERS`): ``none``, ``box`` (over ``size``), ``lee``
    (over ``size``, needs ``looks``), ``refined-lee`` (7 x 7, needs ``looks``)."""
    if how == "none":
        return np.asarray(x, dtype=np.float64)
    if how == "box":
        return box(x, size)
    if how in ("lee", "refined-lee"):
        if looks is None:
            raise MethodError(f"the {how} filter needs the number of looks")
        return lee(x, size, looks) if how == "lee" else refined_lee(x, looks)
    raise MethodError(f"unknown speckle filter {how!r}; use one of {', '.join(FILTERS)}")


def filter_halo(how: str, size: int) -> int:
    """Context pixels each side that :func:`filtered` reads."""
    if how == "refined-lee":
        return REFINED_SIZE // 2  # sub-windows and edge-aligned windows lie in the 7 x 7
    if how == "none":
        return 0
    return int(size) // 2
