"""SAR change detectors: ENL estimation, log-ratio, omnibus test (pair and series)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import need_shared
from sitewatch.change.base import MethodError, get_detector, methods
from sitewatch.change.detect import detect_arrays
from sitewatch.change.sar import default_floor, enl, omnibus_series


def speckle(rng: np.random.Generator, mean: np.ndarray | float, looks: float,
            shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    """L-look gamma speckle (intensity) around ``mean``."""
    m = np.broadcast_to(np.asarray(mean, dtype=np.float64), shape)
    return rng.gamma(looks, m / looks).astype(np.float32)


def planted_pair(seed: int, looks: float = 4, factor: float = 3.0, size: int = 128):
    """A pair with a textured background (blocks of different means) and one block whose
    backscatter is multiplied by ``factor`` on the second date."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.uniform(50, 400, size=(size // 16, size // 16)), np.ones((16, 16)))
    truth = np.zeros((size, size), bool)
    truth[40:80, 60:100] = True
    before = speckle(rng, base, looks, (size, size))
    after = speckle(rng, np.where(truth, base * factor, base), looks, (size, size))
    return before, after, truth


def recall_and_false_alarms(changed: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return float(changed[truth].mean()), float(changed[~truth].mean())


# ---------------------------------------------------------------------------------- enl


@pytest.mark.parametrize("looks", [1, 4])
def test_enl_recovers_the_number_of_looks(looks):
    rng = np.random.default_rng(looks)
    x = speckle(rng, 100.0, looks, (210, 210))
    assert enl(x) == pytest.approx(looks, rel=0.15)


def test_enl_ignores_edges_and_texture():
    # Patches of very different means: blocks across an edge have a low ENL, the mode
    # of the block estimates stays on the homogeneous ones.
    rng = np.random.default_rng(3)
    base = np.kron(rng.uniform(10, 1000, size=(15, 15)), np.ones((14, 14)))
    x = speckle(rng, base, 4, base.shape)
    x[:, :70] *= rng.gamma(2.0, 0.5, size=(base.shape[0], 70))  # K-like texture on a third
    assert enl(x) == pytest.approx(4, rel=0.15)


def test_enl_skips_unobserved_pixels():
    rng = np.random.default_rng(5)
    x = speckle(rng, 100.0, 4, (140, 140))
    x[:, :50] = np.nan
    x[60, 60] = np.nan
    assert enl(x) == pytest.approx(4, rel=0.15)
    assert enl(x[None]) == enl(x)  # (1, rows, cols) is accepted


def test_enl_errors_are_clear():
    with pytest.raises(MethodError, match="too few pixels"):
        enl(np.ones((20, 20)) + np.random.default_rng(0).random((20, 20)))
    with pytest.raises(MethodError, match="no finite value"):
        enl(np.full((50, 50), np.nan))
    with pytest.raises(MethodError, match="negative values .*10\\*\\*\\(dB/10\\)"):
        enl(np.full((50, 50), -12.0))
    with pytest.raises(MethodError, match="window must be an integer >= 2"):
        enl(np.ones((50, 50)), window=1)
    with pytest.raises(MethodError, match="rows, cols"):
        enl(np.ones((2, 50, 50)))


def test_default_floor():
    assert default_floor(np.array([0, 0, 1, 2, 3, 200], np.uint8)) == 0.5  # half a step
    x = np.random.default_rng(0).exponential(10.0, 10_000)
    assert default_floor(x) == pytest.approx(1e-3 * np.median(x))
    assert default_floor(x, amplitude=True) == pytest.approx(1e-3 * np.median(x) ** 2)
    assert default_floor(np.array([0.0, 2.0, 3.0]), amplitude=True) == 1.0
    with pytest.raises(MethodError, match="no positive value"):
        default_floor(np.zeros(10))


# ---------------------------------------------------------------------------- detectors


def test_registered_for_sar():
    names = [c.name for c in methods("sar")]
    assert names == ["sar-log-ratio", "sar-pca-kmeans", "sar-omnibus"]
    for name in ("sar-log-ratio", "sar-omnibus"):
        d = get_detector(name)
        assert d.sensor == "sar" and d.normalise is False
        assert d.halo == 1  # window 3
        assert get_detector(name, window=7).halo == 3
    assert get_detector("sar-log-ratio").default_threshold == "otsu"
    assert get_detector("sar-omnibus").default_threshold == "significance"
    assert get_detector("sar-omnibus").dof(1) == 1
    assert get_detector("sar-omnibus").dof(2) == 2


@pytest.mark.parametrize("method", ["sar-log-ratio", "sar-omnibus"])
def test_planted_change_is_found(method):
    before, after, truth = planted_pair(1)
    cm = detect_arrays(before, after, ["vv"], method, sensor="sar")
    recall, false_alarms = recall_and_false_alarms(cm.changed, truth)
    assert recall > 0.8
    assert false_alarms < 0.02
    assert cm.score.dtype == np.float32 and cm.score.shape == truth.shape


@pytest.mark.parametrize("method", ["sar-log-ratio", "sar-omnibus"])
def test_a_decrease_is_change_too(method):
    before, after, truth = planted_pair(2, factor=1 / 3)
    cm = detect_arrays(before, after, ["vv"], method, sensor="sar")
    recall, false_alarms = recall_and_false_alarms(cm.changed, truth)
    assert recall > 0.8 and false_alarms < 0.02


@pytest.mark.parametrize("looks", [1, 4])
def test_omnibus_false_alarm_rate_matches_alpha(looks):
    # Unfiltered L-look data with the true ENL: the false-alarm rate is about alpha.
    rng = np.random.default_rng(10 + looks)
    base = np.kron(rng.uniform(50, 400, size=(16, 16)), np.ones((16, 16)))
    a, b = speckle(rng, base, looks, base.shape), speckle(rng, base, looks, base.shape)
    cm = detect_arrays(a, b, ["vv"], "sar-omnibus", sensor="sar",
                       params={"window": 1, "enl": looks}, alpha=0.01,
                       min_pixels=1, max_hole_pixels=0)
    assert 0.003 < cm.changed.mean() < 0.03
    assert cm.threshold == pytest.approx(6.635, abs=1e-3)


@pytest.mark.parametrize("window", [3, 5])
def test_omnibus_estimated_enl_of_filtered_images(window):
    # With the ENL estimated on the look-averaged images the rate stays near alpha too.
    rng = np.random.default_rng(window)
    a, b = speckle(rng, 100.0, 2, (256, 256)), speckle(rng, 100.0, 2, (256, 256))
    cm = detect_arrays(a, b, ["vv"], "sar-omnibus", sensor="sar", params={"window": window},
                       alpha=0.01, min_pixels=1, max_hole_pixels=0)
    assert cm.details["enl"][0] == pytest.approx(2 * window**2, rel=0.2)
    assert 0.003 < cm.changed.mean() < 0.03


def test_amplitude_input_is_squared():
    before, after, _ = planted_pair(4)
    i = detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar")
    a = detect_arrays(np.sqrt(before), np.sqrt(after), ["vv"], "sar-log-ratio", sensor="sar",
                      params={"amplitude": True})
    np.testing.assert_allclose(a.score, i.score, rtol=1e-4, atol=1e-5)


def test_zeros_are_floored_and_nan_is_not_observed():
    before, after, _ = planted_pair(5)
    before[:10] = 0.0          # e.g. quantised water: zero on one date only
    after[:10, :30] = 0.0      # and on both
    before[100:110, 5:15] = np.nan
    cm = detect_arrays(before, after, ["vv"], "sar-log-ratio", sensor="sar")
    assert np.isfinite(cm.score[:10]).all()
    assert np.isnan(cm.score[100:110, 5:15]).all()
    assert not cm.changed[100:110, 5:15].any()
    assert not cm.observed[100:110, 5:15].any()
    assert np.isfinite(cm.score[~np.isnan(before)]).all()


def test_two_polarisations_add_up():
    b1, a1, truth = planted_pair(6)
    b2, a2, _ = planted_pair(7)
    before, after = np.stack([b1, b2]), np.stack([a1, a2])
    cm = detect_arrays(before, after, ["vv", "vh"], "sar-omnibus", sensor="sar")
    assert len(cm.details["enl"]) == 2
    assert "2 dof" in cm.threshold_rule
    recall, false_alarms = recall_and_false_alarms(cm.changed, truth)
    assert recall > 0.8 and false_alarms < 0.02


@pytest.mark.parametrize("method", ["sar-log-ratio", "sar-omnibus"])
def test_bad_inputs_are_refused_clearly(method):
    before, after, _ = planted_pair(8)
    neg = before.copy()
    neg[5, 5] = -1.0
    with pytest.raises(MethodError, match="negative values"):
        detect_arrays(neg, after, ["vv"], method, sensor="sar")
    with pytest.raises(MethodError, match="no pixel is observed"):
        detect_arrays(np.full_like(before, np.nan), after, ["vv"], method, sensor="sar")
    with pytest.raises(MethodError, match="no positive value"):
        detect_arrays(np.zeros_like(before), np.zeros_like(after), ["vv"], method,
                      sensor="sar")
    with pytest.raises(MethodError, match="window must be an odd integer"):
        detect_arrays(before, after, ["vv"], method, sensor="sar", params={"window": 4})
    with pytest.raises(MethodError, match="no parameter"):
        detect_arrays(before, after, ["vv"], method, sensor="sar", params={"bogus": 3})
    with pytest.raises(MethodError, match="is for sar images"):
        detect_arrays(before, after, ["vv"], method, sensor="optical")
    with pytest.raises(MethodError, match="floor must be > 0"):
        detect_arrays(before, after, ["vv"], method, sensor="sar", params={"floor": 0})


def test_omnibus_bad_or_unknowable_enl():
    before, after, _ = planted_pair(9)
    with pytest.raises(MethodError, match="enl must be > 0"):
        detect_arrays(before, after, ["vv"], "sar-omnibus", sensor="sar",
                      params={"enl": -2})
    small_b, small_a = before[:20, :20], after[:20, :20]
    with pytest.raises(MethodError, match="cannot estimate the number of looks.*enl param"):
        detect_arrays(small_b, small_a, ["vv"], "sar-omnibus", sensor="sar")
    cm = detect_arrays(small_b, small_a, ["vv"], "sar-omnibus", sensor="sar",
                       params={"enl": 36})
    assert cm.details["enl"] == [36.0]


# ------------------------------------------------------------------------------ series


def series(seed: int, means: list[float], looks: float = 16, size: int = 96,
           block: slice = slice(30, 60)):
    """Five dates of speckle on a constant 100 background; inside a square block the mean
    follows ``means``."""
    rng = np.random.default_rng(seed)
    images = []
    for m in means:
        mean = np.full((size, size), 100.0)
        mean[block, block] = m
        images.append(speckle(rng, mean, looks, (size, size)))
    truth = np.zeros((size, size), bool)
    truth[block, block] = True
    return images, truth


def test_omnibus_series_locates_the_change_date():
    images, truth = series(1, [100, 100, 100, 400, 400])
    res = omnibus_series(images, enl=16, alpha=0.01)
    assert res.p_intervals.shape == (4, 96, 96)
    assert res.changes.shape == (4, 96, 96)
    assert np.mean(res.first_change[truth] == 2) > 0.9  # between dates 2 and 3
    assert np.mean(res.n_changes[truth] == 1) > 0.9
    assert np.mean(res.first_change[~truth] == -1) > 0.97
    assert np.mean(res.p_value[truth] < 0.01) > 0.95
    assert np.median(res.p_intervals[2][truth]) < 1e-6
    assert np.median(res.p_intervals[0][truth]) > 0.1


def test_omnibus_series_finds_change_and_return():
    images, truth = series(2, [100, 400, 400, 100, 100])
    res = omnibus_series(images, enl=16, alpha=0.01)
    assert np.mean(res.first_change[truth] == 0) > 0.9
    assert np.mean(res.n_changes[truth] == 2) > 0.85
    assert np.mean(res.changes[2][truth]) > 0.85  # back between dates 2 and 3
    assert np.mean(res.changes[1][truth]) < 0.05


def test_omnibus_series_under_no_change():
    images, _ = series(3, [100] * 5, looks=4, size=160)
    res = omnibus_series(images, enl=4, alpha=0.01)
    assert 0.003 < np.mean(res.p_value < 0.01) < 0.03
    for j in range(4):
        assert 0.003 < np.mean(res.p_intervals[j] < 0.01) < 0.03
    assert np.mean(res.n_changes > 0) < 0.03


def test_omnibus_series_nan_and_errors():
    images, _ = series(4, [100, 100, 300, 300, 300])
    images[1][:5, :5] = np.nan
    res = omnibus_series(images, enl=16)
    assert np.isnan(res.p_value[:5, :5]).all() and np.isnan(res.p_intervals[:, :5, :5]).all()
    assert (res.first_change[:5, :5] == -1).all() and (res.n_changes[:5, :5] == 0).all()
    assert not res.observed[:5, :5].any()
    with pytest.raises(MethodError, match="at least 2 images"):
        omnibus_series(images[:1], enl=4)
    with pytest.raises(MethodError, match="differ in shape"):
        omnibus_series([images[0], images[1][:50]], enl=4)
    with pytest.raises(MethodError, match="negative values"):
        omnibus_series([images[0], -images[2]], enl=4)
    with pytest.raises(MethodError, match="enl must be > 0"):
        omnibus_series(images, enl=0)
    with pytest.raises(MethodError, match="alpha"):
        omnibus_series(images, enl=4, alpha=1.5)


# --------------------------------------------------------------------------- real data


def _read_band(path) -> np.ndarray:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read(1).astype(np.float32)


def _kappa(changed: np.ndarray, truth: np.ndarray) -> float:
    n = truth.size
    tp, fp = np.sum(changed & truth), np.sum(changed & ~truth)
    fn, tn = np.sum(~changed & truth), np.sum(~changed & ~truth)
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    return float((po - pe) / (1 - pe))


@pytest.mark.parametrize(("method", "alpha", "least"), [
    ("sar-log-ratio", 0.01, 0.90),   # measured 0.921 (defaults)
    ("sar-omnibus", 0.001, 0.88),    # measured 0.899
])
def test_ottawa_pair(method, alpha, least):
    d = need_shared("sar", "ottawa")
    before, after = _read_band(d / "ottawa_1.bmp"), _read_band(d / "ottawa_2.bmp")
    truth = _read_band(d / "ottawa_gt.bmp") > 127
    cm = detect_arrays(before, after, ["hh"], method, sensor="sar", alpha=alpha)
    assert _kappa(cm.changed, truth) >= least
