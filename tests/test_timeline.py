"""A site's per-part timeline, read back from what a run stored: rows per part and date, the
(time, grid) matrix, unobserved dates as missing (never 0), the JSON form, the part filter,
and the plot.  The store is filled through the public path (ingest + run_site) on the small
synthetic series of test_pipeline: a bright block planted on the pad from date 6, date 3
under cloud."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from sitewatch.errors import SitewatchError
from sitewatch.store import Store
from sitewatch.times import iso
from sitewatch.watch.pipeline import RunParams, run_site
from sitewatch.watch.timeline import Timeline, build_timeline, plot_timeline
from sitewatch.watch.zonal import REST
from test_pipeline import CLOUDY_AT, EVENT_AT, PARAMS, catalogue

N = 10
CLOUDY, EVENT = f"scene_{CLOUDY_AT:02d}", f"scene_{EVENT_AT:02d}"


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timeline")
    with Store.open_path(tmp / "db" / "sitewatch.db") as store:
        catalogue(store, tmp / "imgs", range(N))
        run_site(store, "testsite", PARAMS)
        yield store


@pytest.fixture(scope="module")
def tl(watched) -> Timeline:
    return build_timeline(watched, "testsite", PARAMS.hash)


def test_one_row_per_part_and_date_in_time_order(tl):
    assert tl.site == "testsite" and tl.params_hash == PARAMS.hash
    assert tl.parts == ["pad", "quiet", REST]  # named parts sorted, the rest of the site last
    assert len(tl.rows) == 3 * N
    assert [(r.time, r.part) for r in tl.rows] == sorted(
        (r.time, r.part) for r in tl.rows)
    assert [r.scene_id for r in tl.rows[::3]] == [f"scene_{i:02d}" for i in range(N)]
    assert {r.grid for r in tl.rows} == {"optical-10m"}
    assert tl.rows[0].time == datetime(2024, 1, 1, 2, tzinfo=UTC)  # UTC-aware inside
    assert tl.rows[0].to_dict()["time"] == "2024-01-01T02:00:00Z"  # ISO at the edge


def test_rows_say_what_each_date_was_compared_with(tl):
    by = {(r.scene_id, r.part): r for r in tl.rows}
    first = by["scene_00", "pad"]
    assert (first.status, first.reference, first.previous_id) == ("first", "none", None)
    assert first.observed and first.status_word == "first"
    assert math.isnan(first.changed_fraction)
    # The date after the cloudy one is compared with the last usable date before it.
    after = by[f"scene_{CLOUDY_AT + 1:02d}", "pad"]
    assert after.previous_id == f"scene_{CLOUDY_AT - 1:02d}" and after.status == "ok"
    ev = by[EVENT, "pad"]
    assert ev.previous_id == f"scene_{EVENT_AT - 1:02d}" and ev.status_word == ""
    assert ev.changed_fraction == pytest.approx(36 / 144, abs=0.08)
    assert by[EVENT, "quiet"].changed_fraction < 0.02
    # The composite still sees the change on the next date; the previous date does not.
    nxt = by[f"scene_{EVENT_AT + 1:02d}", "pad"]
    assert nxt.composite_fraction > 0.15 and nxt.changed_fraction < 0.05
    assert ev.measures["objects"] == 1 and ev.measures["brightness_change"] > 0.05


def test_unobserved_dates_are_missing_not_zero(tl):
    for r in tl.rows:
        if r.scene_id == CLOUDY:
            assert not r.observed and r.status == "unusable" and r.status_word == "unusable"
            assert r.observed_fraction == 0
            assert math.isnan(r.changed_fraction) and math.isnan(r.composite_fraction)
            d = r.to_dict()
            assert d["observed"] is False
            assert d["changed_fraction"] is None and d["changed_fraction_vs_composite"] is None
        else:
            assert r.observed and r.observed_fraction == 1.0


def test_matrix_is_date_and_grid_then_part(tl):
    m = tl.matrix()
    keys = list(m)
    assert len(keys) == N and keys == sorted(keys)
    assert all(g == "optical-10m" for _, g in keys)
    for (t, _g), parts in m.items():
        assert sorted(parts) == sorted(tl.parts)
        assert all(r.time == t and r.part == p for p, r in parts.items())
    cloudy = m[(datetime(2024, 2, 15, 2, tzinfo=UTC), "optical-10m")]
    assert {r.scene_id for r in cloudy.values()} == {CLOUDY}
    assert all(math.isnan(r.changed_fraction) for r in cloudy.values())


def test_alerts_mark_the_dates_they_belong_to(tl):
    (alert,) = tl.alerts
    assert alert.part == "pad" and alert.time.date().isoformat() == "2024-04-01"
    # The event's findings: the planted date, then the dates the composite still sees it.
    found = sorted({f["time"] for f in alert.alert.findings})
    assert found[0] == next(iso(r.time) for r in tl.rows if r.scene_id == EVENT)
    marked = [(iso(r.time), r.part, r.alerts) for r in tl.rows if r.alerts]
    assert marked == [(t, "pad", [alert.id]) for t in found]


def test_json_form_keeps_its_keys_and_is_strict_json(tl):
    d = tl.to_dict()
    assert list(d) == ["site", "params_hash", "observations", "alerts"]
    text = json.dumps(d, allow_nan=False)  # NaN would not be JSON: unobserved is null
    back = json.loads(text)
    assert len(back["observations"]) == 3 * N
    o = back["observations"][0]
    assert list(o) == ["time", "scene", "grid", "part", "status", "observed", "previous",
                       "observed_fraction", "changed_fraction",
                       "changed_fraction_vs_composite", "measures", "alerts"]
    ev = next(o for o in back["observations"] if o["scene"] == EVENT and o["part"] == "pad")
    assert ev["previous"] == f"scene_{EVENT_AT - 1:02d}" and ev["alerts"]
    (a,) = back["alerts"]
    assert a["status"] == "new" and a["part"] == "pad" and a["id"] == ev["alerts"][0]
    assert "record" not in a  # the published alert form (sinks.alert_payload)


def test_part_filter(watched, tl):
    pad = build_timeline(watched, "testsite", PARAMS.hash, part="pad")
    assert pad.parts == ["pad"] and len(pad.rows) == N
    assert [r.to_dict() for r in pad.rows] == [r.to_dict() for r in tl.rows if r.part == "pad"]
    assert [a.id for a in pad.alerts] == [a.id for a in tl.alerts]
    quiet = build_timeline(watched, "testsite", PARAMS.hash, part="quiet")
    assert {r.part for r in quiet.rows} == {"quiet"} and quiet.alerts == []
    assert not any(r.alerts for r in quiet.rows)
    rest = build_timeline(watched, "testsite", PARAMS.hash, part=REST)
    assert rest.parts == [REST] and len(rest.rows) == N


def test_unknown_site_part_or_parameters(watched):
    with pytest.raises(SitewatchError, match="no site 'nowhere'"):
        build_timeline(watched, "nowhere", PARAMS.hash)
    with pytest.raises(SitewatchError, match="no part 'nope'"):
        build_timeline(watched, "testsite", PARAMS.hash, part="nope")
    other = build_timeline(watched, "testsite", RunParams(method="cva").hash)
    assert other.rows == [] and other.alerts == [] and other.parts == []


def _png(path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)[..., :3]


def _near(img: np.ndarray, rgb: tuple[float, float, float], tol: float = 0.08) -> np.ndarray:
    return np.all(np.abs(img - np.array(rgb)) < tol, axis=-1)


def _bands(rows: np.ndarray, h: int) -> set[int]:
    """Which of three stacked panels (below the figure's title) image rows fall in."""
    return {int(3 * (r - 0.1 * h) / (0.9 * h)) for r in rows if r > 0.1 * h}


def test_plot_draws_a_panel_per_part_with_lines_misses_and_alerts(tl, tmp_path):
    pytest.importorskip("matplotlib")
    img = _png(plot_timeline(tl, tmp_path / "tl.png"))
    h, w = img.shape[:2]
    assert (h, w) == (round((1.6 * 3 + 0.8) * 110), 9 * 110)  # three panels
    assert _near(img, (1, 1, 1), 0.02).mean() < 0.97  # not blank
    # The series line (matplotlib's first colour) is drawn in each of the three panels.
    rows = np.nonzero(_near(img, (0x1F / 255, 0x77 / 255, 0xB4 / 255)).any(axis=1))[0]
    assert _bands(rows, h) >= {0, 1, 2}
    # Unobserved dates: a cross in every panel (drawing without them differs in each).
    seen = dataclasses.replace(tl, rows=[r for r in tl.rows if r.observed])
    assert len(seen.rows) == len(tl.rows) - 3
    img1 = _png(plot_timeline(seen, tmp_path / "seen.png"))
    diff = np.nonzero(np.abs(img - img1).sum(axis=-1) > 0.3)[0]
    assert _bands(diff, h) >= {0, 1, 2}
    # The alert triangle: the same timeline without alerts differs in the pad panel only.
    calm = dataclasses.replace(tl, rows=[dataclasses.replace(r, alerts=[]) for r in tl.rows])
    img2 = _png(plot_timeline(calm, tmp_path / "calm.png"))
    diff = np.nonzero(np.abs(img - img2).sum(axis=-1) > 0.3)[0]
    assert diff.size > 30
    assert diff.max() < h * 0.45  # the top panel (pad), legend included


def test_plot_of_one_part_is_one_panel(watched, tmp_path):
    pytest.importorskip("matplotlib")
    pad = build_timeline(watched, "testsite", PARAMS.hash, part="quiet")
    img = _png(plot_timeline(pad, tmp_path / "quiet.png"))
    assert img.shape[:2] == (round((1.6 + 0.8) * 110), 9 * 110)
    assert _near(img, (1, 1, 1), 0.02).mean() < 0.97


def test_plot_to_an_unwritable_place_is_a_sitewatch_error(tl, tmp_path):
    pytest.importorskip("matplotlib")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SitewatchError, match="cannot write .*file"):
        plot_timeline(tl, blocker / "tl.png")


def test_brief_timelines_mark_each_alert_at_the_value_it_was_raised_on(tmp_path, monkeypatch):
    """The brief plots the measure and grid each alert was raised on: the triangle sits at the
    alert's own value on its own date, outside the normal band."""
    import sitewatch.report.brief as brief_mod
    from sitewatch.report.brief import write_brief

    drawn: list[tuple] = []
    real = brief_mod.timeline_figure

    def spy(path, times, values, unobserved, alerts, band, title, caption, ylabel):
        drawn.append((list(times), list(values), list(alerts), band, ylabel))
        return real(path, times, values, unobserved, alerts, band, title, caption, ylabel)

    monkeypatch.setattr(brief_mod, "timeline_figure", spy)
    with Store.open_path(tmp_path / "db.sqlite") as store:
        catalogue(store, tmp_path / "imgs", range(10))
        run_site(store, "testsite", PARAMS)
        alerts = store.alerts("testsite")
        write_brief(store, "testsite", tmp_path / "out")
    assert drawn, "a timeline per alerted part"
    named = {(str(f["time"])[:10], round(float(f["value"]), 9))
             for a in alerts for f in a.alert.findings}
    for times, values, marks, band, _ylabel in drawn:
        assert marks
        for t, v, other, *_end in marks:
            assert v is not None
            if other:  # raised on another measure: at the value the alert names
                assert (t.date().isoformat(), round(v, 9)) in named
                continue
            assert v == values[times.index(t)]
            if band is not None:
                assert v > band[1]
    assert {d[4] for d in drawn} <= {"changed share", "radar change share"}
