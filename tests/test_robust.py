"""The numpy paths that replaced scipy calls and stacked temporaries give the same values to
the bit: the normal-scaled MAD, the ratio detector band by band, the fit's pixel sample."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sitewatch.change.base import observed_both, with_nan
from sitewatch.change.normalise import pixels
from sitewatch.change.optical import Ratio, _log_ratio, _robust_sigma
from sitewatch.robust import mad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 5, 100, 1001])
def test_mad_equals_scipy_to_the_bit(dtype: type, n: int) -> None:
    x = (np.random.default_rng(n).standard_normal(n) * 3 + 1).astype(dtype)
    kept = x.copy()
    want = stats.median_abs_deviation(x, scale="normal")
    got = mad(x)
    assert float(got) == float(want)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    assert np.array_equal(x, kept)  # the caller's array is left alone
    assert float(mad(x.copy(), overwrite=True)) == float(want)


def test_mad_along_an_axis_and_nan_propagates() -> None:
    x = np.random.default_rng(0).standard_normal((4, 777)).astype(np.float32)
    assert np.array_equal(mad(x, axis=1), stats.median_abs_deviation(x, axis=1, scale="normal"))
    x[2, 5] = np.nan
    got = mad(x, axis=1)
    assert np.isnan(got[2]) and np.isfinite(got[[0, 1, 3]]).all()


def _stacked_ratio(before: np.ndarray, after: np.ndarray) -> tuple[list[float], np.ndarray]:
    """The ratio detector as it was: over the whole (bands, rows, cols) stack at once."""
    lr = _log_ratio(before, after)
    v = [lr[i][np.isfinite(lr[i])] for i in range(len(lr))]
    sigma = [float(stats.median_abs_deviation(x, scale="normal")) for x in v]
    z = lr / np.asarray(sigma, np.float32)[:, None, None]
    return sigma, with_nan(np.sqrt(np.mean(z**2, axis=0)), observed_both(before, after))


@pytest.mark.parametrize("shape", [(4, 300, 200), (3, 50, 70), (2, 40, 40), (6, 33, 90)])
def test_ratio_band_by_band_equals_the_stack(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    before = rng.random(shape, dtype=np.float32) * 0.5
    after = (before * rng.normal(1, 0.1, shape)).astype(np.float32)
    before[:, :5, :7] = np.nan
    after[1, 10:20, 3:9] = np.nan
    before[0, 30, 30] = 0.0  # below the floor
    bands = tuple(f"b{i}" for i in range(shape[0]))
    sigma, score = _stacked_ratio(before, after)
    det = Ratio()
    fitted = det.fit(before, after, bands)
    assert fitted["sigma"] == sigma
    assert np.array_equal(det.score(before, after, bands, fitted), score, equal_nan=True)


def test_robust_sigma_falls_back_to_the_spread_when_the_mad_is_zero() -> None:
    values = np.r_[np.zeros(100), np.linspace(0, 1, 20), np.nan].astype(np.float32)
    assert _robust_sigma(values) == float(np.std(values[np.isfinite(values)]))
    assert _robust_sigma(np.full(3, np.nan, np.float32)) == 1.0


@pytest.mark.parametrize("limit", [None, 1000, 10**9])
def test_fit_pixels_are_the_strided_observed_pixels(limit: int | None) -> None:
    rng = np.random.default_rng(7)
    arr = rng.random((4, 120, 90), dtype=np.float32)
    observed = rng.random((120, 90)) > 0.3
    want = arr[:, observed]
    if limit is not None and want.shape[1] > limit:
        want = want[:, :: int(np.ceil(want.shape[1] / limit))]
    got = pixels(arr, observed, limit)
    assert got.dtype == np.float64 and got.flags.c_contiguous
    assert np.array_equal(got, want.astype(np.float64))
    view = arr[:, ::2, ::3]  # not contiguous
    assert np.array_equal(pixels(view, observed[::2, ::3]), view[:, observed[::2, ::3]])


def test_ratio_noise_comes_from_a_strided_sample_on_large_grids() -> None:
    """Over MAX_FIT_PIXELS observed pixels, each band's noise is the MAD of an even stride
    of them (the sample IR-MAD uses), close to the MAD of every pixel."""
    from sitewatch.change.normalise import MAX_FIT_PIXELS

    rng = np.random.default_rng(11)
    shape = (2, 700, 500)  # 350,000 px: strided by 2
    before = rng.random(shape, dtype=np.float32) * 0.4 + 0.05
    after = (before * rng.lognormal(0, 0.05, shape)).astype(np.float32)
    fitted = Ratio().fit(before, after, ("b0", "b1"))
    for i in range(2):
        lr = _log_ratio(before[i], after[i]).ravel()
        assert lr.size > MAX_FIT_PIXELS
        assert fitted["sigma"][i] == float(mad(lr[::2]))
        assert fitted["sigma"][i] == pytest.approx(float(mad(lr)), rel=0.01)
