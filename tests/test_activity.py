"""Baselines, departures and change points of per-part activity series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from sitewatch.watch.baseline import BaselineError, days, fit_baseline
from sitewatch.watch.changepoints import find_changepoints

WEEKS = np.arange("2020-01-06", "2022-01-06", 7, dtype="datetime64[D]")[:100]


def noise(seed, n=100, level=0.01, sd=0.002):
    return np.random.default_rng(seed).normal(level, sd, size=n)


# --------------------------------------------------------------------------- baseline


def test_baseline_learns_level_and_spread_and_grades_departures():
    b = fit_baseline(WEEKS, noise(0))
    assert b.level == pytest.approx(0.01, abs=0.0006)
    assert b.scale == pytest.approx(0.002, rel=0.2)
    assert b.n == 100 and b.confidence == "high" and not b.seasonal
    quiet = b.departure(WEEKS[-1] + 7, 0.0105)
    loud = b.departure(WEEKS[-1] + 7, 0.03)  # 10 spreads
    assert not quiet.unusual and abs(quiet.z) < 1
    assert loud.unusual and loud.raw_z > 8 and loud.z > 6 and loud.p < 1e-8
    assert b.departure(WEEKS[-1] + 7, -0.01).z < -8  # signed


def test_a_short_history_says_so_and_demands_more():
    v = noise(1)
    few = fit_baseline(WEEKS[:3], v[:3])
    many = fit_baseline(WEEKS, v)
    assert few.confidence == "low" and fit_baseline(WEEKS[:6], v[:6]).confidence == "medium"
    # The same departure in spreads counts for much less with 3 dates than with 100.
    x_few = few.expected(WEEKS[3]) + 6 * few.scale
    x_many = many.expected(WEEKS[3]) + 6 * many.scale
    z_few = few.departure(WEEKS[3], float(x_few)).z
    z_many = many.departure(WEEKS[3], float(x_many)).z
    assert few.departure(WEEKS[3], float(x_few)).raw_z == pytest.approx(6)
    assert z_many > 5.5 and z_few < 3.5


def test_unobserved_dates_are_skipped_not_zeros():
    v = noise(2)
    v[::3] = np.nan
    b = fit_baseline(WEEKS, v)
    assert b.n == int(np.isfinite(v).sum())
    assert b.level == pytest.approx(0.01, abs=0.001)  # zeros would have dragged it down
    empty = fit_baseline(WEEKS, np.full(100, np.nan))
    assert empty.n == 0 and empty.confidence == "none"
    d = empty.departure(WEEKS[0], 0.5)
    assert np.isnan(d.z) and not d.unusual
    assert np.isnan(b.departure(WEEKS[0], float("nan")).z)


def test_a_quiet_history_uses_the_floor():
    b = fit_baseline(WEEKS, np.zeros(100), floor=0.002)
    assert b.scale == 0.002
    d = b.departure(WEEKS[-1], 0.02)
    assert d.raw_z == pytest.approx(10) and np.isfinite(d.z)
    with pytest.raises(BaselineError, match="floor"):
        fit_baseline(WEEKS, np.zeros(100), floor=-1)


def test_annual_cycle_is_learned_from_a_year_or_more_of_irregular_dates():
    rng = np.random.default_rng(3)
    t0 = np.datetime64("2019-01-01")
    t = np.sort(t0 + rng.choice(3 * 365, size=80, replace=False).astype("timedelta64[D]"))
    phase = 2 * np.pi * (t - np.datetime64("1970-01-01")).astype(float) / 365.25
    ndvi = 0.4 + 0.2 * np.cos(phase - 3.0) + rng.normal(0, 0.02, size=t.size)
    b = fit_baseline(t, ndvi)
    assert b.seasonal and b.scale == pytest.approx(0.02, rel=0.35)
    amp = np.hypot(b.cos, b.sin)
    assert amp == pytest.approx(0.2, rel=0.1)
    # The summer peak is normal in summer and not in winter.
    day = np.arange("2022-01-01", "2023-01-01", dtype="datetime64[D]")
    exp = b.expected(day)
    peak, trough = day[np.argmax(exp)], day[np.argmin(exp)]
    assert not b.departure(peak, 0.6).unusual
    assert b.departure(trough, 0.6).z > 5
    # Less than a year of the same data: no cycle (it could not be told from a trend).
    short = fit_baseline(t[t < t0 + 200], ndvi[t < t0 + 200])
    assert not short.seasonal
    flat = fit_baseline(WEEKS, noise(4))  # no cycle to find: not kept
    assert not flat.seasonal


def test_confirmed_events_can_be_left_out_of_normal():
    v = noise(5)
    v[50:60] = 0.2
    normal = np.ones(100, bool)
    normal[50:60] = False
    with_event = fit_baseline(WEEKS, v)
    without = fit_baseline(WEEKS, v, normal=normal)
    assert without.n == 90 and with_event.n == 100
    assert without.scale < with_event.scale
    with pytest.raises(BaselineError, match="'normal' flags"):
        fit_baseline(WEEKS, v, normal=normal[:5])


def test_times_in_any_form_and_bad_input_named():
    utc = datetime(2024, 5, 1, tzinfo=UTC)
    plus9 = datetime(2024, 5, 1, 9, tzinfo=timezone(timedelta(hours=9)))  # the same instant
    assert days([utc])[0] == days([plus9])[0] == days(["2024-05-01"])[0]
    assert days(np.array(["2024-05-01"], dtype="datetime64[D]"))[0] == days([utc])[0]
    with pytest.raises(BaselineError, match="not a time: 'yesterday'"):
        days(["yesterday"])
    with pytest.raises(BaselineError, match="3 times but 2 values"):
        fit_baseline(WEEKS[:3], [1.0, 2.0])


# --------------------------------------------------------------------------- change points


def test_pure_noise_has_no_change_points():
    found = sum(len(find_changepoints(WEEKS, noise(s))) for s in range(20))
    assert found <= 1


def test_a_new_level_is_a_level_shift_at_its_first_date():
    v = noise(6)
    v[60:] += 0.012  # construction: six spreads, for good
    cps = find_changepoints(WEEKS, v)
    assert [c.kind for c in cps] == ["level_shift"]
    c = cps[0]
    assert c.index == 60 and c.time.startswith(str(WEEKS[60]))
    assert c.before == pytest.approx(0.01, abs=0.001)
    assert c.after == pytest.approx(0.022, abs=0.001)
    assert c.size == pytest.approx(6, rel=0.3) and c.length == 40
    down = find_changepoints(WEEKS, -v)  # razing: the same, downwards
    assert [c.kind for c in down] == ["level_shift"] and down[0].size < 0


def test_a_spike_is_not_a_new_level():
    v = noise(7)
    v[40] += 0.014  # vehicles on the pad for one date
    cps = find_changepoints(WEEKS, v)
    assert [(c.kind, c.index) for c in cps] == [("spike", 40)]
    assert cps[0].after == pytest.approx(v[40])
    v[41] += 0.014  # two dates: still transient, the level comes back
    assert [c.kind for c in find_changepoints(WEEKS, v)] == ["spike"]


def test_a_departure_on_the_last_date_is_unconfirmed():
    v = noise(8)
    v[-1] += 0.014
    cps = find_changepoints(WEEKS, v)
    assert [(c.kind, c.index) for c in cps] == [("unconfirmed", 99)]
    v[-2] += 0.014  # two dates at the new level: a shift
    assert [(c.kind, c.index) for c in find_changepoints(WEEKS, v)] == [("level_shift", 98)]


def test_gaps_are_skipped_and_indices_refer_to_the_input():
    v = noise(9)
    v[60:] += 0.012
    v[[10, 58, 59, 60, 61]] = np.nan
    cps = find_changepoints(WEEKS, v)
    assert [(c.kind, c.index) for c in cps] == [("level_shift", 62)]
    assert find_changepoints(WEEKS[:2], v[:2]) == []


def test_the_annual_cycle_is_taken_out_before_looking():
    t = np.arange("2018-01-01", "2022-01-01", 10, dtype="datetime64[D]")
    phase = 2 * np.pi * (t - np.datetime64("1970-01-01")).astype(float) / 365.25
    v = 0.4 + 0.2 * np.cos(phase) + np.random.default_rng(10).normal(0, 0.01, t.size)
    assert find_changepoints(t, v) == []  # seasons are not change
    v[100:] -= 0.1  # cleared ground: ten spreads down, for good
    cps = find_changepoints(t, v)
    assert [(c.kind, c.index) for c in cps] == [("level_shift", 100)]


def test_unsorted_times_are_refused():
    with pytest.raises(BaselineError, match="increasing"):
        find_changepoints(WEEKS[::-1], noise(0))


# --------------------------------------------------------------------------- alerts


def test_departures_become_graded_readable_alerts_with_stable_ids():
    from sitewatch.watch.alerts import from_departure

    b = fit_baseline(WEEKS, noise(11))
    t = str(WEEKS[-1] + 7)
    assert from_departure("sohae", "pad", "changed_fraction", t, b.departure(t, 0.0105),
                          b) is None
    grades = {}
    for spreads in (4, 6.5, 12):
        x = float(b.expected(t)) + spreads * b.scale
        a = from_departure("sohae", "pad", "changed_fraction", t, b.departure(t, x), b,
                           before_scene="S1", after_scene="S2")
        grades[spreads] = a.tier
    assert grades == {4: "info", 6.5: "watch", 12: "warning"}
    assert a.before_scene == "S1" and a.kind == "departure" and a.confidence == "high"
    assert "pad: changed share since the previous usable image" in a.text
    assert "spreads above normal" in a.text
    assert t[:10] in a.text and "100 dates of history" in a.text
    again = from_departure("sohae", "pad", "changed_fraction", t + "T10:00:00",
                           b.departure(t, x), b)
    other = from_departure("sohae", "tower", "changed_fraction", t, b.departure(t, x), b)
    assert again.id == a.id and other.id != a.id  # same event, same id


def test_short_history_caps_the_tier_and_says_so():
    from sitewatch.watch.alerts import from_changepoint, from_departure

    few = fit_baseline(WEEKS[:3], [0.01, 0.011, 0.009], floor=0.001)
    t = str(WEEKS[3])
    d = few.departure(t, 0.5)
    a = from_departure("s", "pad", "changed_fraction", t, d, few)
    assert d.raw_z > 100 and a.tier == "info"  # a warning with a long history
    assert "low confidence, 3 dates of history" in a.text
    cp = find_changepoints(WEEKS, np.r_[noise(1)[:60], noise(2)[60:] + 0.02])[0]
    assert from_changepoint("s", "pad", "m", cp, fit_baseline(WEEKS, noise(3))).tier \
        == "warning"
    assert from_changepoint("s", "pad", "m", cp, few).tier == "watch"  # lowered one tier


def test_change_points_become_alerts_a_new_level_at_least_watch():
    from sitewatch.watch.alerts import from_changepoint

    v = noise(6)
    v[60:] += 0.008  # four spreads, for good
    b = fit_baseline(WEEKS, v)
    (cp,) = find_changepoints(WEEKS, v)
    a = from_changepoint("s", "rail terminal", "changed_fraction", cp, b)
    assert a.kind == "level_shift" and a.tier == "watch"  # persistent: at least watch
    assert "a new level from" in a.text and str(WEEKS[60]) in a.text
    v = noise(8)
    v[-1] += 0.014
    (cp,) = find_changepoints(WEEKS, v)
    a = from_changepoint("s", "pad", "changed_fraction", cp, fit_baseline(WEEKS, v))
    assert a.kind == "unconfirmed" and "next usable scene" in a.text
