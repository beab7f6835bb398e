"""Threshold pickers on synthetic score distributions."""

from __future__ import annotations

import numpy as np
import pytest

from sitewatch.change import thresholds as th
from sitewatch.change.thresholds import (
    THRESHOLD_METHODS,
    ThresholdError,
    kittler_illingworth,
    otsu,
    pick,
    quantile,
    significance,
)
from sitewatch.errors import SitewatchError


def bimodal(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, 9000), rng.normal(8, 1, 1000)])


def unbalanced(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, 9900), rng.normal(10, 0.5, 100)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bimodal_otsu_and_ki_in_the_gap(seed):
    x = bimodal(seed)
    assert 3 < otsu(x) < 6
    t = kittler_illingworth(x)
    assert 3 < t < 6
    # The Bayes minimum-error cut for 0.9 N(0,1) vs 0.1 N(8,1) is 4 + ln(9)/8 = 4.27.
    assert t == pytest.approx(4 + np.log(9) / 8, abs=0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ki_separates_heavily_unbalanced_classes(seed):
    no, yes = unbalanced(seed)
    t = kittler_illingworth(np.concatenate([no, yes]))
    assert no.max() < t < yes.min()
    # The modes are separated by empty bins: KI returns the middle of the gap, not its edge.
    assert no.max() + 1.5 < t < yes.min() - 1.5


def test_nans_and_infs_are_ignored():
    x = bimodal()
    dirty = np.concatenate([x, [np.nan] * 500, [np.inf, -np.inf]])
    assert otsu(dirty) == otsu(x)
    assert kittler_illingworth(dirty) == kittler_illingworth(x)
    assert quantile(dirty, 0.9) == quantile(x, 0.9)


def test_otsu_accepts_2d_and_lists():
    x = bimodal()
    assert otsu(x.reshape(100, 100)) == otsu(x)
    assert otsu(list(x)) == otsu(x)


def test_otsu_subsamples_huge_inputs_deterministically(monkeypatch):
    x = bimodal()
    monkeypatch.setattr(th, "_OTSU_MAX_VALUES", 1000)
    t1, t2 = otsu(x), otsu(x)
    assert t1 == t2
    assert 3 < t1 < 6


@pytest.mark.parametrize("fn", [otsu, kittler_illingworth, lambda v: quantile(v, 0.5)])
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "at least 2 finite"),
        ([1.0], "at least 2 finite"),
        ([np.nan, 3.0, np.inf], "at least 2 finite"),
        ([2.5, 2.5, 2.5, np.nan], "all 3 finite scores equal 2.5"),
    ],
)
def test_too_few_or_constant_values_raise(fn, values, message):
    with pytest.raises(ValueError, match=message) as info:
        fn(values)
    assert isinstance(info.value, SitewatchError)


def test_ki_without_a_valid_cut_raises():
    # Two values only: every cut leaves a class with a single non-empty bin.
    with pytest.raises(ThresholdError, match="no valid Kittler-Illingworth cut"):
        kittler_illingworth([0.0, 1.0])


def test_significance():
    assert significance(0.05, 4) == pytest.approx(9.4877, abs=1e-4)
    assert significance(0.01, 1) == pytest.approx(6.6349, abs=1e-4)
    # A smaller false-alarm rate gives a higher threshold.
    assert significance(0.001, 4) > significance(0.05, 4)


@pytest.mark.parametrize(("alpha", "dof"), [(0, 4), (1, 4), (-0.1, 4), (0.05, 0), (0.05, 2.5)])
def test_significance_validates(alpha, dof):
    with pytest.raises(ValueError, match="alpha|dof"):
        significance(alpha, dof)


def test_quantile():
    x = np.arange(101, dtype=float)
    assert quantile(x, 0.9) == pytest.approx(90.0)
    for q in (0, 1, 1.5):
        with pytest.raises(ValueError, match="q must be"):
            quantile(x, q)


def test_pick_dispatches():
    x = bimodal()
    assert pick(x, "otsu") == otsu(x)
    assert pick(x, "kittler-illingworth") == kittler_illingworth(x)
    assert pick(x, "ki") == kittler_illingworth(x)
    assert pick(x, " KI ") == kittler_illingworth(x)
    assert pick(x, "quantile", q=0.95) == quantile(x, 0.95)
    assert pick(x, "quantile") == quantile(x, 0.99)
    assert pick(None, "significance", alpha=0.05, dof=4) == significance(0.05, 4)
    assert set(THRESHOLD_METHODS) == {"otsu", "kittler-illingworth", "significance", "quantile",
                                      "kmeans", "otsu-robust", "ki-robust", "kmeans-robust"}
    assert pick(x, "kmeans") == th.kmeans(x)
    assert pick(x, "ki-robust") == pick(x, "kittler-illingworth-robust")
    assert pick(x, "otsu-robust") == otsu(th.robust(x))


def test_pick_fixed_numbers():
    x = bimodal()
    assert pick(x, "0.35") == 0.35
    assert pick(x, "4") == 4.0
    assert pick(x, "-1e-3") == -0.001
    assert pick([], "2.5") == 2.5  # a fixed threshold does not look at the values
    with pytest.raises(ValueError, match="finite number"):
        pick(x, "nan")


def test_pick_significance_needs_dof():
    with pytest.raises(ValueError, match="needs dof"):
        pick([1.0, 2.0], "significance")


def test_pick_unknown_name_lists_the_options():
    with pytest.raises(ValueError, match="unknown threshold method 'mean'") as info:
        pick([1.0, 2.0], "mean")
    for name in (*THRESHOLD_METHODS, "ki"):
        assert repr(name) in str(info.value)


def spiked(seed: int = 0, explode: bool = False) -> np.ndarray:
    """|log-ratio|-like scores: 30 % ties at 0 (dark water on both dates), a folded
    no-change mode, 10 % change (the last values), and with ``explode`` 1 % of the change
    exploding (land flooded to zeros)."""
    rng = np.random.default_rng(seed)
    change = rng.normal(2.5, 0.4, 1000)
    if explode:
        change[-100:] = rng.uniform(30, 40, 100)
    return np.concatenate([np.zeros(3000), np.abs(rng.normal(0, 0.3, 6000)), change])


@pytest.mark.parametrize("seed", [0, 1])
def test_robust_rules_survive_a_spike_and_exploding_ratios(seed):
    truth = np.arange(10_000) >= 9000
    x = spiked(seed)
    assert np.mean((x > kittler_illingworth(x)) == truth) < 0.5  # KI cuts in the spike
    y = spiked(seed, explode=True)
    assert np.mean((y > otsu(y)) == truth) < 0.95  # Otsu splits the changes
    for rule in ("ki-robust", "otsu-robust", "kmeans-robust"):
        for v in (x, y):
            assert np.mean((v > pick(v, rule)) == truth) > 0.99, rule


def test_robust_leaves_out_the_spike_and_clips():
    x = spiked(explode=True)
    r = th.robust(x)
    assert r.size == x.size - 3000 and r.min() > 0  # the ties at 0 are gone
    q1, q3 = np.quantile(x[x > 0], [0.25, 0.75])
    assert r.max() == pytest.approx(q3 + 3 * (q3 - q1))
    y = np.concatenate([np.zeros(5), np.linspace(1, 2, 995)])  # 0.5 % ties: not a spike
    assert th.robust(y).size == 1000
    with pytest.raises(ThresholdError, match="tie at the lowest"):
        th.robust([0.0] * 10 + [1.0])
