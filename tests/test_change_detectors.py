"""Optical detectors, IR-MAD normalisation and the in-memory runner, on planted change."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from sitewatch.change import thresholds
from sitewatch.change.base import MethodError, get_detector, methods
from sitewatch.change.detect import detect_arrays
from sitewatch.change.normalise import fit_mad, fit_normalisation, pixels

BANDS6 = ("blue", "green", "red", "nir", "swir16", "swir22")
ROOF = (slice(40, 52), slice(60, 76))  # 12 x 16 pixels


def landscape(seed: int = 0, size: int = 128, bands: int = 6) -> np.ndarray:
    """Textured, band-correlated reflectance-like data (0.05..0.45)."""
    rng = np.random.default_rng(seed)
    common = ndimage.gaussian_filter(rng.normal(size=(size, size)), 3)
    own = ndimage.gaussian_filter(rng.normal(size=(bands, size, size)), (0, 2, 2))
    x = 0.6 * common[None] / common.std() + 0.4 * own / own.std(axis=(1, 2), keepdims=True)
    base = np.linspace(0.08, 0.3, bands)[:, None, None]
    return (base + 0.04 * x).astype(np.float32)


def pair(seed: int = 0, gain: float = 1.15, offset: float = 0.02, noise: float = 0.004,
         roof: float = 0.12):
    """``after`` = gain * before + offset + noise, with a new bright roof planted."""
    a = landscape(seed)
    rng = np.random.default_rng(seed + 100)
    b = gain * a + offset + rng.normal(scale=noise, size=a.shape).astype(np.float32)
    b[:, ROOF[0], ROOF[1]] += roof
    truth = np.zeros(a.shape[1:], bool)
    truth[ROOF] = True
    return a, b.astype(np.float32), truth


@pytest.mark.parametrize("method", ["difference", "ratio", "cva", "mad", "irmad",
                                    "pca-kmeans", "brightness", "hacd"])
def test_each_method_finds_the_planted_roof_and_little_else(method):
    a, b, truth = pair()
    cm = detect_arrays(a, b, BANDS6, method)
    assert cm.method == method
    assert cm.score.dtype == np.float32 and cm.score.shape == truth.shape
    recall = cm.changed[truth].mean()
    false_alarm = cm.changed[~truth].mean()
    assert recall > 0.9, (method, recall)
    assert false_alarm < 0.02, (method, false_alarm)
    # The score ranks the roof above the background.
    assert np.nanmedian(cm.score[truth]) > np.nanpercentile(cm.score[~truth], 99)


def test_unobserved_pixels_are_never_scored_or_changed():
    a, b, truth = pair()
    b[:, :, :20] = np.nan  # cloud on the after date
    a[0, 100:, 100:] = np.nan  # one band missing on the before date
    cm = detect_arrays(a, b, BANDS6, "irmad")
    assert not cm.observed[:, :20].any() and not cm.observed[100:, 100:].any()
    assert np.isnan(cm.score[:, :20]).all() and not cm.changed[:, :20].any()
    assert cm.changed[truth].mean() > 0.9


def test_irmad_normalisation_recovers_gain_and_offset_despite_change():
    a, b, _ = pair(gain=1.25, offset=-0.03, roof=0.3)
    b[:, 90:128, 0:40] *= 0.5  # a second, large change (10% of the scene)
    norm = fit_normalisation(a, b)
    # after = 1.25 before - 0.03  =>  before = after / 1.25 + 0.024
    np.testing.assert_allclose(norm.gain, 1 / 1.25, rtol=0.01)
    np.testing.assert_allclose(norm.offset, 0.03 / 1.25, atol=0.003)
    # The changed pixels were left out of the fit: far fewer than all pixels were used.
    assert norm.n_pixels < 0.95 * a.shape[1] * a.shape[2]


def test_plain_regression_would_be_biased_where_irmad_is_not():
    """The reason for IR-MAD weights: a large change pulls an all-pixel fit."""
    a, b, _ = pair(gain=1.0, offset=0.0, roof=0.0)
    b[:, :40, :] += 0.1  # 30% of the scene brightened by real change
    naive_offset = float(np.mean(b[0] - a[0]))
    norm = fit_normalisation(a, b)
    assert abs(naive_offset) > 0.025
    assert abs(norm.offset[0]) < 0.01 and abs(norm.gain[0] - 1) < 0.03


def test_irmad_chi_square_follows_its_null_distribution_without_change():
    a, b, _ = pair(roof=0.0)
    obs = np.ones(a.shape[1:], bool)
    f = fit_mad(pixels(a, obs), pixels(b, obs))
    z = f.chi2(pixels(a, obs), pixels(b, obs))
    rate = float((z > thresholds.significance(0.01, 6)).mean())
    assert 0.002 < rate < 0.03
    assert f.converged and len(f.rho) == 6
    assert np.all(np.diff(f.rho) >= -1e-9)  # ascending: MAD_1 holds the most change
    # Invariance: mixing the bands of one date leaves the statistic unchanged.
    mix = np.random.default_rng(3).normal(size=(6, 6)) + 3 * np.eye(6)
    b2 = np.einsum("ij,jyx->iyx", mix, b)
    z2 = fit_mad(pixels(a, obs), pixels(b2, obs), iterate=False).chi2(pixels(a, obs),
                                                                      pixels(b2, obs))
    z1 = fit_mad(pixels(a, obs), pixels(b, obs), iterate=False).chi2(pixels(a, obs),
                                                                     pixels(b, obs))
    # (up to the tiny ridge that regularises the covariances)
    np.testing.assert_allclose(z1, z2, rtol=2e-2, atol=2e-2)


def test_significance_threshold_is_the_chi_square_quantile():
    a, b, _ = pair()
    cm = detect_arrays(a, b, BANDS6, "irmad", alpha=0.001)
    assert cm.threshold == pytest.approx(stats.chi2.isf(0.001, 6))
    assert "significance" in cm.threshold_rule


def vegetation_pair():
    """Three planted changes: cleared vegetation, a burn scar, new concrete."""
    a = landscape(5)
    a[3] += 0.25  # vegetated: high nir
    a[2] -= 0.05
    b = a.copy()
    clear = (slice(10, 30), slice(10, 30))
    burn = (slice(60, 80), slice(10, 30))
    build = (slice(60, 80), slice(80, 100))
    b[3][clear] -= 0.2  # nir falls, red rises: bare soil
    b[2][clear] += 0.08
    b[3][burn] -= 0.25  # burn: nir collapses, swir22 rises, visible darkens
    b[5][burn] += 0.12
    b[0:3, burn[0], burn[1]] -= 0.03
    b[3][build] -= 0.2  # concrete: nir down, swir16 up
    b[4][build] += 0.15
    return a, b, clear, burn, build


@pytest.mark.parametrize("method,hit", [("ndvi-loss", "clear"), ("dnbr", "burn"),
                                        ("ndbi-gain", "build")])
def test_index_methods_find_their_kind_of_change(method, hit):
    a, b, clear, burn, build = vegetation_pair()
    cm = detect_arrays(a, b, BANDS6, method)
    regions = {"clear": clear, "burn": burn, "build": build}
    assert cm.changed[regions[hit]].mean() > 0.9
    quiet = np.ones(cm.changed.shape, bool)
    for r in regions.values():
        quiet[r] = False
    assert cm.changed[quiet].mean() < 0.01


def test_index_method_without_its_bands_says_which_are_missing():
    a, b, _ = pair()
    with pytest.raises(MethodError, match="swir22"):
        detect_arrays(a[:4], b[:4], BANDS6[:4], "dnbr")


def test_unknown_method_and_parameter_errors_list_the_choices():
    with pytest.raises(MethodError, match="known: .*irmad"):
        get_detector("magic")
    with pytest.raises(MethodError, match="takes: block"):
        get_detector("pca-kmeans", size=3)
    with pytest.raises(MethodError, match="odd"):
        a, b, _ = pair()
        detect_arrays(a, b, BANDS6, "pca-kmeans", params={"block": 4})


def test_mismatched_arrays_and_unobserved_pairs_are_refused():
    a, b, _ = pair()
    with pytest.raises(MethodError, match="one shape"):
        detect_arrays(a, b[:, :100], BANDS6, "cva")
    with pytest.raises(MethodError, match="name"):
        detect_arrays(a, b, BANDS6[:3], "cva")
    with pytest.raises(MethodError, match="no pixel is observed"):
        detect_arrays(a, np.full_like(b, np.nan), BANDS6, "cva")


def test_difference_tolerates_a_one_pixel_shift_that_cva_does_not():
    a, _, _ = pair(roof=0.0)
    rng = np.random.default_rng(9)
    for _ in range(25):  # sharp-edged buildings: a shift lights up their edges
        r, c = rng.integers(4, 120, 2)
        a[:, r:r + 4, c:c + 5] += 0.15
    b = np.roll(a, 1, axis=2)
    tol = detect_arrays(a, b, BANDS6, "difference", threshold="4")
    raw = detect_arrays(a, b, BANDS6, "difference", params={"tolerance": 0}, threshold="4")
    assert tol.changed[:, 2:-2].mean() < 0.01
    assert raw.changed[:, 2:-2].mean() > tol.changed[:, 2:-2].mean()


def test_every_registered_method_describes_itself():
    names = [m.name for m in methods()]
    assert {"difference", "ratio", "cva", "mad", "irmad", "pca-kmeans", "ndvi-loss", "dnbr",
            "ndbi-gain", "sar-log-ratio", "sar-omnibus"} <= set(names)
    for m in methods():
        d = m.describe()
        assert d["summary"] and d["sensor"] in ("optical", "sar")
        rule = d["default_threshold"]
        assert rule in thresholds.THRESHOLD_METHODS or rule == "ki" or float(rule) == float(rule)


def test_hacd_ignores_any_per_band_affine_change_of_a_date_and_finds_the_roof():
    """Scene-wide change (a different gain and offset per band, and bands mixed as a
    different atmosphere would) is explained by the joint statistics; a roof is not."""
    a, b, truth = pair(roof=0.0)
    det = get_detector("hacd")
    bands3 = BANDS6[:3]
    mix = np.array([[1.3, 0.2, 0.0], [0.1, 0.8, 0.1], [0.0, 0.3, 1.1]], np.float32)
    b2 = np.einsum("ij,jrc->irc", mix, b[:3]) + np.float32([0.05, -0.01, 0.02])[:, None, None]
    s1 = det.score(a[:3], b[:3], bands3, det.fit(a[:3], b[:3], bands3))
    s2 = det.score(a[:3], b2, bands3, det.fit(a[:3], b2, bands3))
    np.testing.assert_allclose(s1, s2, rtol=1e-3, atol=1e-3)  # invariant
    b2[:, ROOF[0], ROOF[1]] += 0.12
    cm = detect_arrays(a[:3], b2, bands3, "hacd")
    assert cm.threshold == 2.0 and not cm.details.get("normalisation")
    assert cm.changed[truth].mean() > 0.9
    assert cm.changed[~truth].mean() < 0.01
    # Per pixel (window 1) the roof still stands out, but noise speckles more.
    px = detect_arrays(a[:3], b2, bands3, get_detector("hacd", window=1), threshold="4")
    assert px.changed[truth].mean() > 0.9


def test_hacd_band_choice_and_bad_parameters():
    a, b, truth = pair()
    allb = get_detector("hacd", bands="all", window=3)
    assert allb.needs == () and allb.halo == 1
    cm = detect_arrays(a, b, BANDS6, allb, threshold="3")
    assert cm.changed[truth].mean() > 0.9
    with pytest.raises(MethodError, match="needs band"):
        detect_arrays(a[3:], b[3:], BANDS6[3:], "hacd")
    for bad in (4, 0, 2.5, True, "5"):
        with pytest.raises(MethodError, match="window"):
            get_detector("hacd", window=bad)
    with pytest.raises(MethodError, match="too few pixels"):
        nan = np.full_like(a[:3], np.nan)
        get_detector("hacd").fit(nan, nan, BANDS6[:3])
