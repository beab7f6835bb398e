"""From a part's observations to events: series_findings scores each date against the dates
before it only, group_events merges findings whose dates touch into one alert.  Everything
here runs on hand-made observation series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sitewatch.watch.events import Obs, group_events, series_findings

#: A quiet history: the changed share beyond the rest of the site, within its noise floor.
QUIET = [0.0, 0.01, 0.0, 0.005, 0.0, 0.01, 0.002, 0.0]
GRID = "optical-10m"


def day(i: int, start: str = "2024-01-01", step: int = 10) -> str:
    return str(np.datetime64(start) + np.timedelta64(i * step, "D")) + "T00:00:00Z"


def obs(values, **more) -> list[Obs]:
    """Dates 10 days apart, each against the date before it; ``more``: other measures, one
    value per date."""
    out = []
    for i, v in enumerate(values):
        m = {"changed_excess": v, **{k: vs[i] for k, vs in more.items()}}
        out.append(Obs(day(i), f"s{i}", f"s{i - 1}" if i else None, day(i - 1) if i else None,
                       GRID, m))
    return out


def test_a_quiet_series_gives_nothing():
    noise = np.random.default_rng(3).normal(0, 0.002, 20)
    series = obs([*QUIET, *QUIET, 0.0, 0.004, 0.0, 0.001],
                 changed_excess_composite=list(np.abs(noise)),
                 brightness_rel=list(noise), ndvi_rel=list(-noise))
    assert series_findings("s", "pad", series) == []
    assert group_events("s", []) == []
    assert series_findings("s", "pad", []) == []


def test_a_planted_rise_is_one_finding_and_one_event():
    series = obs([*QUIET, 0.3, 0.0, 0.004, 0.0])
    series[8] = Obs(series[8].time, "s8", "s7", day(7), GRID,
                    {"changed_excess": 0.3, "objects": 2, "changed_area_m2": 3600.0,
                     "objects_area_m2": 3500.0, "largest_object_m2": 2400.0})
    (f,) = series_findings("s", "pad", series, levels=False)
    assert f.time == day(8) and f.kind == "departure" and f.measure == "changed_excess"
    assert f.value == pytest.approx(0.3) and f.z > 8 and f.tier == "warning"
    assert f.history == 8 and f.expected == pytest.approx(np.median(QUIET))
    assert (f.before_scene, f.after_scene) == ("s7", "s8")
    assert (f.start, f.end, f.grid) == (day(7), day(8), GRID)
    assert (f.objects, f.changed_area_m2, f.largest_object_m2) == (2, 3600.0, 2400.0)
    (ev,) = group_events("s", [f])
    assert (ev.part, ev.time, ev.start, ev.end, ev.tier) == ("pad", day(8), day(7), day(8),
                                                            "warning")
    assert ev.text.startswith("pad: unusual change, 2024-03-21 (previous usable image "
                              "2024-03-11); 2 change objects at the part, largest 2,400 m2.")
    assert [g["time"] for g in ev.findings] == [day(8)] and ev.id != f.id


def test_only_rises_count_and_a_date_without_history_is_not_scored():
    assert series_findings("s", "pad", obs([*QUIET, -0.3, 0.0]), levels=False) == []
    # The first date has nothing before it: however large, it is not a finding.
    assert series_findings("s", "pad", obs([0.5, 0.0, 0.0, 0.0]), levels=False) == []


def test_unobserved_dates_are_skipped_not_read_as_zero():
    values = [*QUIET, math.nan, None, 0.3]
    series = obs(values)
    (f,) = series_findings("s", "pad", series, levels=False)
    assert f.time == day(10) and f.history == 8  # the two unobserved dates are not history


def test_a_short_history_cannot_say_warning():
    (f,) = series_findings("s", "pad", obs([0.0, 0.0, 0.9]), levels=False)
    assert f.z > 8 and f.confidence == "low" and f.tier == "watch"


def test_scored_against_earlier_dates_only():
    series = obs([*QUIET, 0.3, 0.0, 0.01, 0.2, 0.0, 0.0, 0.5, 0.0])
    full = [f.to_dict() for f in series_findings("s", "pad", series, levels=False)]
    assert [f["time"] for f in full] == [day(8), day(11), day(14)]
    # Every prefix of the series gives exactly the findings of the full run up to its end:
    # adding a later date never changes an earlier finding.
    for k in range(1, len(series) + 1):
        head = [f.to_dict() for f in series_findings("s", "pad", series[:k], levels=False)]
        assert head == [f for f in full if f["time"] <= series[k - 1].time], k
    # Nor does a later date's value, however large.
    wild = [*series[:12], *obs([0.0] * 12 + [9.0, 9.0, 9.0, 9.0])[12:]]
    again = [f.to_dict() for f in series_findings("s", "pad", wild, levels=False)]
    assert [f for f in again if f["time"] <= day(11)] == full[:2]


def test_an_alerted_date_is_not_history_unless_dismissed():
    series = obs([0.0, 0.3] * 6)  # a part that jumps every other date
    found = series_findings("s", "pad", series, levels=False)
    # Each jump is scored against the quiet dates only: every one is a finding.
    assert [f.time for f in found] == [day(i) for i in range(1, 12, 2)]
    assert [f.history for f in found] == [1, 2, 3, 4, 5, 6]
    # The analyst dismisses the first two: they were normal after all, so they join the
    # history and the later jumps, now like normal dates, stop alerting.
    dismissed = {found[0].time, found[1].time}
    again = series_findings("s", "pad", series, levels=False, dismissed=dismissed)
    assert [f.time for f in again] == [found[0].time]  # scored before any history had jumps
    # The dismissed dates are counted as history of the dates after them.
    one = series_findings("s", "pad", obs([*QUIET, 0.3, 0.0, 0.4]), levels=False)
    assert [f.history for f in one] == [8, 9]  # the 0.3 date is not history of the 0.4 one
    kept = series_findings("s", "pad", obs([*QUIET, 0.3, 0.0, 0.4]), levels=False,
                           dismissed={one[0].time})
    assert [f.time for f in kept][-1] == day(10) and kept[-1].history == 10


def test_touching_dates_merge_into_one_event():
    series = obs([*QUIET, 0.4, 0.4, 0.0, 0.0, 0.0, 0.0, 0.4, 0.0],
                 changed_excess_composite=[*QUIET, 0.4, 0.45, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    found = series_findings("s", "pad", series, levels=False)
    assert [(f.time, f.measure) for f in found] == [
        (day(8), "changed_excess"), (day(8), "changed_excess_composite"),
        (day(9), "changed_excess"), (day(9), "changed_excess_composite"),
        (day(10), "changed_excess_composite"), (day(14), "changed_excess")]
    events = group_events("s", found)
    assert len(events) == 2
    first, second = events
    # Days 8, 9, 10 touch (each one's previous date is the last date of the event so far).
    assert (first.time, first.start, first.end) == (day(8), day(7), day(10))
    assert len(first.findings) == 5 and "2024-03-21 to 2024-04-10" in first.text
    assert (second.time, second.start, second.end, len(second.findings)) == (
        day(14), day(13), day(14), 1)
    assert first.id != second.id
    # A gap of one quiet date splits events; the same findings at another part are their own.
    other = [f.__class__(**{**f.to_dict(), "part": "tower", "findings": ()}) for f in found]
    both = group_events("s", [*found, *other])
    assert [(e.part, e.time) for e in both] == [("pad", day(8)), ("tower", day(8)),
                                                ("pad", day(14)), ("tower", day(14))]


def test_event_ids_are_stable_and_salted_by_parameters():
    found = series_findings("s", "pad", obs([*QUIET, 0.3, 0.0]), levels=False)
    a, b = group_events("s", found), group_events("s", list(found))
    assert [e.id for e in a] == [e.id for e in b]
    assert [e.id for e in group_events("s", found, salt="p2")] != [e.id for e in a]
    assert [e.id for e in group_events("other", found)] != [e.id for e in a]


def test_a_new_level_is_a_persistent_event_of_at_least_watch():
    step = [0.0, 0.002, -0.001, 0.001, 0.0, 0.001, -0.002, 0.0,
            0.05, 0.051, 0.049, 0.05, 0.052, 0.05]
    series = obs([0.0] * len(step), brightness_rel=step)
    assert series_findings("s", "pad", series, levels=False) == []
    (f,) = series_findings("s", "pad", series)
    assert f.kind == "level_shift" and f.measure == "brightness_rel"
    assert f.time[:10] == day(8)[:10] and f.value == pytest.approx(0.05, abs=0.002)
    (ev,) = group_events("s", [f])
    assert ev.kind == "level_shift" and ev.tier in ("watch", "warning")
    assert "persistent change (a new level)" in ev.text


def test_a_level_shift_and_a_departure_on_the_same_date_are_one_event():
    step = [0.0, 0.002, -0.001, 0.001, 0.0, 0.001, -0.002, 0.0,
            0.05, 0.051, 0.049, 0.05, 0.052, 0.05]
    series = obs([*QUIET, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0], brightness_rel=step)
    found = series_findings("s", "pad", series)
    assert sorted(f.kind for f in found) == ["departure", "level_shift"]
    (ev,) = group_events("s", found)
    assert ev.kind == "level_shift" and len(ev.findings) == 2


def test_a_departure_the_date_after_a_level_shift_touches_it():
    step = [0.0, 0.002, -0.001, 0.001, 0.0, 0.001, -0.002, 0.0,
            0.05, 0.051, 0.049, 0.05, 0.052, 0.05]
    series = obs([*QUIET, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0], brightness_rel=step)
    found = series_findings("s", "pad", series)
    shift = next(f for f in found if f.kind == "level_shift")
    dep = next(f for f in found if f.kind == "departure")
    assert dep.start == day(8) and shift.end[:10] == day(8)[:10]  # they touch
    assert len(group_events("s", found)) == 1
