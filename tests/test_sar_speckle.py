"""Speckle filters (box, Lee, refined Lee) and the SAR difference images built on them."""

from __future__ import annotations

import numpy as np
import pytest

from sitewatch.change import speckle as sp
from sitewatch.change.base import MethodError, get_detector
from sitewatch.change.detect import detect_arrays


def gamma(rng: np.random.Generator, mean: np.ndarray, looks: float) -> np.ndarray:
    return rng.gamma(looks, mean / looks)


def step(seed: int, looks: float = 2, n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Speckle over a vertical step edge (100 | 800), and the true mean."""
    mean = np.full((n, n), 100.0)
    mean[:, n // 2:] = 800.0
    return gamma(np.random.default_rng(seed), mean, looks), mean


def moment_enl(x: np.ndarray) -> float:
    return float(x.mean() ** 2 / x.var())


@pytest.mark.parametrize("how", ["box", "lee", "refined-lee"])
def test_filters_raise_the_enl_of_homogeneous_areas(how):
    x, _ = step(1)
    f = sp.filtered(x, how, 7, looks=2)
    flat = np.s_[:, 5:40]  # left half, away from the edge
    assert moment_enl(x[flat]) == pytest.approx(2, rel=0.2)
    assert moment_enl(f[flat]) > 8  # 2 looks raised at least four times
    assert f[flat].mean() == pytest.approx(100, rel=0.05)  # unbiased


def test_refined_lee_keeps_edges_better_than_a_box_of_its_size():
    x, mean = step(2)
    near = np.s_[:, 44:52]  # four columns each side of the edge
    err = {how: float(np.mean(np.abs(np.log(sp.filtered(x, how, 7, 2)[near] / mean[near]))))
           for how in ("box", "lee", "refined-lee")}
    assert err["refined-lee"] < 0.6 * err["box"]
    assert err["lee"] < err["box"]


def test_filters_keep_nan_and_check_their_inputs():
    x, _ = step(3, n=40)
    x[10, 10] = np.nan
    for how in ("box", "lee", "refined-lee"):
        f = sp.filtered(x, how, 5, looks=2)
        assert np.isnan(f[10, 10]) and np.isfinite(np.delete(f.ravel(), 10 * 40 + 10)).all()
    with pytest.raises(MethodError, match="unknown speckle filter 'gauss'"):
        sp.filtered(x, "gauss", 3, 2)
    with pytest.raises(MethodError, match="needs the number of looks"):
        sp.filtered(x, "lee", 3)
    with pytest.raises(MethodError, match="odd integer"):
        sp.box(x, 4)
    with pytest.raises(MethodError, match="looks must be > 0"):
        sp.refined_lee(x, 0)


def planted(seed: int, looks: float = 3, n: int = 96, flood: bool = True):
    """A patchwork of backscatter, a dark lake (zeros once quantised), one brighter block,
    one darker block and (``flood``) a field flooded to the lake's level."""
    rng = np.random.default_rng(seed)
    base = np.kron(np.exp(rng.uniform(np.log(50), np.log(2000), (6, 6))), np.ones((16, 16)))
    base[64:, :40] = 0.01
    after = base.copy()
    truth = np.zeros((n, n), bool)
    for box, f in (((slice(10, 26), slice(10, 26)), 4.0), ((slice(40, 52), slice(60, 72)), 0.25),
                   ((slice(66, 80), slice(60, 86)), None))[: 3 if flood else 2]:
        after[box] = 0.01 if f is None else after[box] * f
        truth[box] = True
    q = lambda m: np.round(np.sqrt(gamma(rng, m, looks)) * 3).astype(np.float32)  # noqa: E731
    return q(base), q(after), truth


def kappa(changed: np.ndarray, truth: np.ndarray) -> float:
    tp, fp = np.sum(changed & truth), np.sum(changed & ~truth)
    fn, tn = np.sum(~changed & truth), np.sum(~changed & ~truth)
    n = truth.size
    po, pe = (tp + tn) / n, ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    return float((po - pe) / (1 - pe))


@pytest.mark.parametrize(("params", "rule"), [
    ({"speckle": "refined-lee"}, "ki-robust"), ({"speckle": "lee", "window": 1}, "ki-robust"),
    ({"difference": "mean-ratio"}, "otsu-robust"), ({"difference": "fusion"}, "ki-robust"),
])
def test_log_ratio_variants_find_planted_change_beside_dark_water(params, rule):
    before, after, truth = planted(4)
    cm = detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar", params=params,
                       threshold=rule)
    assert kappa(cm.changed, truth) > 0.85
    # Otsu on the raw scores splits the flooded field (ratios to zero explode) from the
    # other changes instead of change from no change.
    plain = detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar",
                          params=params, threshold="otsu")
    assert kappa(plain.changed, truth) < kappa(cm.changed, truth)
    if "speckle" in params:
        assert cm.details["looks"][0] > 1


def test_pca_kmeans_on_the_log_ratio():
    before, after, truth = planted(5, flood=False)
    cm = detect_arrays(before, after, ["vv"], "sar-pca-kmeans", sensor="sar",
                       params={"window": 3})
    assert kappa(cm.changed, truth) > 0.85
    assert cm.threshold == 0.0 and cm.details["components"] >= 1
    # A flooded field: its exploding ratios take a cluster of their own unless clipped.
    before, after, truth = planted(5)
    plain = detect_arrays(before, after, ["vv"], "sar-pca-kmeans", sensor="sar",
                          params={"window": 3, "robust": False})
    clipped = detect_arrays(before, after, ["vv"], "sar-pca-kmeans", sensor="sar",
                            params={"window": 3})  # robust by default
    assert kappa(plain.changed, truth) < 0.7 < 0.85 < kappa(clipped.changed, truth)
    assert clipped.details["clip"] > 0


def test_pca_kmeans_robust_leaves_dark_water_out_of_the_fit():
    # 3 looks, pixels' log-ratio: k-means splits the lake (ties at 0) from the land, and the
    # whole land is called change; without the lake in the fit most of it is not.
    before, after, truth = planted(5, flood=False)
    plain = detect_arrays(before, after, ["vv"], "sar-pca-kmeans", sensor="sar",
                          params={"robust": False})
    rob = detect_arrays(before, after, ["vv"], "sar-pca-kmeans", sensor="sar")  # the default
    assert plain.changed[~truth].mean() > 0.5
    assert rob.changed[~truth].mean() < 0.25 and rob.changed[truth].mean() > 0.95
    det = get_detector("sar-pca-kmeans", block=7, window=3, speckle="refined-lee")
    assert det.halo == 3 + 1 + 3


@pytest.mark.parametrize(("method", "params"), [
    ("sar-log-ratio", {"speckle": "refined-lee", "difference": "fusion", "window": 3}),
    ("sar-log-ratio", {"speckle": "lee", "window": 5}),
    ("sar-pca-kmeans", {"speckle": "lee", "block": 5}),
])
def test_a_window_with_its_halo_scores_as_the_whole_image(method, params):
    # sitewatch detect scores a scene window by window with the detector's halo around
    # each: the filters, the fusion's median and PCA-k-means' blocks must all fit in it.
    before, after, _ = planted(6)
    b, a = before[None].astype(np.float64), after[None].astype(np.float64)
    det = get_detector(method, **params)
    fitted = det.fit(b, a, ("vv",))
    full = det.score(b, a, ("vv",), fitted)
    h = det.halo
    r0, r1, c0, c1 = 30, 60, 20, 70
    part = det.score(b[:, r0 - h:r1 + h, c0 - h:c1 + h], a[:, r0 - h:r1 + h, c0 - h:c1 + h],
                     ("vv",), fitted)
    np.testing.assert_allclose(part[h:-h, h:-h], full[r0:r1, c0:c1], rtol=1e-5, atol=1e-6)


def test_difference_options_are_checked():
    before, after, _ = planted(7, n=96)
    with pytest.raises(MethodError, match="speckle must be one of"):
        detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar",
                      params={"speckle": "frost"})
    with pytest.raises(MethodError, match="difference must be one of"):
        detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar",
                      params={"difference": "ratio"})
    with pytest.raises(MethodError, match="weight must be in"):
        detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar",
                      params={"difference": "fusion", "weight": 2})
    with pytest.raises(MethodError, match="looks must be > 0"):
        detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar",
                      params={"speckle": "lee", "looks": 0})
    with pytest.raises(MethodError, match="cannot estimate the number of looks.*looks param"):
        detect_arrays(before[:12, :12], after[:12, :12], ["vv"], "sar-log-ratio",
                      sensor="sar", params={"speckle": "lee"})
