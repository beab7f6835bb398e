"""What a part is compared with (issue 20): its last clear view when the previous usable date
did not see it, and the same season of earlier years when a comparison spans seasons."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from conftest import SOHAE_UTM, rng_image, write_tif
from sitewatch.imagery.geo import to_crs
from sitewatch.imagery.ingest import ingest
from sitewatch.sites.site import Part, Site
from sitewatch.store import Store
from sitewatch.watch.alerts import Alert
from sitewatch.watch.events import Obs, series_findings
from sitewatch.watch.grids import season_members
from sitewatch.watch.pipeline import RunParams, run_site
from sitewatch.watch.records import StoredAlert

SIZE = 64
X0, Y0 = SOHAE_UTM[0] - 320, SOHAE_UTM[1] + 320
TRANSFORM = Affine(10, 0, X0, 0, -10, Y0)
PAD = (8, 8, 18, 18)  # row0, col0, row1, col1 (pixels)
QUIET = (28, 28, 38, 38)
PARAMS = RunParams(method="ratio")


def _lonlat_box(r0: int, c0: int, r1: int, c1: int):
    return to_crs(box(X0 + 10 * c0, Y0 - 10 * r1, X0 + 10 * c1, Y0 - 10 * r0),
                  "EPSG:32651", "EPSG:4326")


def _site() -> Site:
    return Site("refsite", "References", _lonlat_box(2, 2, SIZE - 2, SIZE - 2),
                (Part("pad", "launch_pad", _lonlat_box(*PAD)),
                 Part("quiet", "support_area", _lonlat_box(*QUIET))),
                {"site_type": "launch_site"})


def _write(folder: Path, dates: list[str], paint) -> None:
    """One 4-band scene per date: a fixed landscape and noise, ``paint(i, img)`` (float,
    changed in place; 0 = no data), then a small gain over the whole scene."""
    base = rng_image(3, size=SIZE).astype(np.float32)
    for i, day in enumerate(dates):
        rng = np.random.default_rng(200 + i)
        img = base + rng.normal(0, 6, base.shape)
        paint(i, img)
        img *= 1.0 + 0.02 * math.sin(i)  # illumination: the whole scene
        write_tif(folder / f"s{i:02d}.tif", np.clip(img, 0, 65535).astype(np.uint16),
                  transform=TRANSFORM, nodata=0, tags={"ACQUISITION_TIME": f"{day}T02:00:00Z"},
                  descriptions=["blue", "green", "red", "nir"])


def _run(tmp_path: Path, dates: list[str], paint) -> Store:
    _write(tmp_path / "imgs", dates, paint)
    store = Store.open_path(tmp_path / "db" / "sitewatch.db")
    ingest(store, [tmp_path / "imgs"], "refsite", site=_site())
    run_site(store, "refsite", PARAMS)
    return store


def _previous_rows(store: Store, part: str):
    return {r.scene_id: r for r in store.observations("refsite", PARAMS.hash, part=part,
                                                       reference="previous")}


def test_a_part_clouded_on_the_previous_date_is_compared_with_its_last_clear_view(tmp_path):
    """The pad is under cloud on s05 only (the rest of the site is clear, so the date is
    usable) and a building appears there on s05: s06 is the first date that sees it.  Before
    issue 20 the pad was "not observed" against the previous date at s06 (its previous
    date, s05, did not see it) and only the composite could speak; now s06 is compared
    with the pad's last clear view (s04) and the change is a finding of the pair."""
    dates = [f"2024-{m:02d}-{d:02d}" for m in (3, 4, 5, 6) for d in (1, 15)]

    def paint(i: int, img: np.ndarray) -> None:
        if i >= 5:
            img[:, 11:16, 11:16] = 4200.0
        if i == 5:
            img[:, 8:19, 8:19] = 0  # cloud over the pad (no data)

    with _run(tmp_path, dates, paint) as store:
        pad = _previous_rows(store, "pad")
        at = pad["s06"]
        assert at.reference_id == "s05"
        assert at.observed  # seen against its last clear view ...
        assert at.measures["reference_filled"] == pytest.approx(1.0)  # ... s04's pixels
        assert at.changed_fraction > 0.1
        assert pad["s07"].changed_fraction < 0.05  # seen on s06: compared with s06 after
        alerts = store.alerts("refsite")
        hits = [f for a in alerts if a.part == "pad" for f in a.alert.findings
                if f["time"].startswith(dates[6]) and f["measure"] == "changed_excess"]
        assert hits, [(a.part, a.alert.findings) for a in alerts]
        assert not [a for a in alerts if a.part == "quiet"]


def test_a_season_that_comes_back_is_at_most_a_low_confidence_season_note(tmp_path):
    """The pad greens up every May-June (the rest of the site does not).  In year two, May
    is compared with the previous November (winter dates unusable): the pair shows the pad
    changed, but so did May-June of year one against which the same season is compared,
    so what is raised on the pad in year two's May is at most info, low confidence, and
    says "Season?" (before issue 20: a watch or warning of high confidence)."""
    dates = ["2022-04-01", "2022-05-01", "2022-06-01", "2022-07-01", "2022-08-01",
             "2022-09-01", "2022-10-01", "2022-11-01", "2023-05-05", "2023-06-05"]

    def paint(i: int, img: np.ndarray) -> None:
        if dates[i][5:7] in ("05", "06"):
            img[:, 8:19, 8:19] *= 1.6  # the whole pad, seasonally

    with _run(tmp_path, dates, paint) as store:
        pad = _previous_rows(store, "pad")
        may = pad["s08"]
        assert may.reference_id == "s07"
        assert may.changed_fraction > 0.5  # May against November: changed
        assert may.measures["changed_fraction_season"] < 0.05  # against May-June 2022: not
        done = store.processed("refsite", PARAMS.hash)
        assert done["s08"].chain.season == ("s01", "s02")
        # June: the previous date (May) is near, but its composite (Aug-May) is not
        assert done["s09"].chain.season == ("s02", "s03")
        alerts = [a for a in store.alerts("refsite") if a.part == "pad"
                  and a.alert.time.startswith("2023")]
        for a in alerts:
            assert (a.tier, a.alert.confidence) == ("info", "low"), a.alert
            assert "Season?" in a.alert.text


def _obs(values: list[dict[str, float]], start: str = "2024-01-01") -> list[Obs]:
    from datetime import date, timedelta

    d0 = date.fromisoformat(start)
    out = []
    for i, m in enumerate(values):
        t = (d0 + timedelta(days=10 * i)).isoformat() + "T00:00:00Z"
        prev = (d0 + timedelta(days=10 * (i - 1))).isoformat() + "T00:00:00Z" if i else None
        out.append(Obs(t, f"s{i}", f"s{i - 1}" if i else None, prev, "optical-10m", m))
    return out


@pytest.mark.parametrize(("season", "expect"), [
    (math.nan, ("info", "low")),  # no same-season reference: graded down, said so
    (0.0, ("info", "low")),  # the same season of earlier years looks the same: likewise
    (0.25, ("watch", None)),  # confirmed by the same season: kept as it was
])
def test_a_cross_season_finding_needs_the_same_season(season, expect):
    quiet = {"changed_excess": 0.0, "season_span": 0.0}
    values = [dict(quiet) for _ in range(8)]
    values.append({"changed_excess": 0.3, "season_span": 1.0,
                   "changed_excess_season": season})
    got = [f for f in series_findings("s", "p", _obs(values), levels=False)
           if f.measure == "changed_excess"]
    if expect is None:
        assert got == []
        return
    (f,) = got
    assert f.tier == expect[0] or (expect[0] == "watch" and f.tier in ("watch", "warning"))
    if expect[1] == "low":
        assert f.confidence == "low" and "Season?" in f.text
    else:
        assert f.confidence != "low" and "changed too" in f.text


def test_season_members_are_earlier_years_near_the_day_of_year():
    from datetime import datetime

    days = {"a": "2021-05-20", "b": "2021-07-01", "c": "2022-04-20", "d": "2022-05-25",
            "e": "2022-11-01", "x": "2023-05-10"}
    scenes = {k: SimpleNamespace(id=k, acquired=datetime.fromisoformat(v))
              for k, v in days.items()}
    g = SimpleNamespace(kind="optical", params=RunParams(), scene=scenes.__getitem__)
    usable = ["a", "b", "c", "d", "e"]
    # x (May 2023) after e (November): spans seasons; a, c, d are within 31 days of its
    # day of year in earlier years, b is not.
    assert season_members(g, scenes["x"], usable) == ("a", "c", "d")
    # within the season (the previous date 15 days before): no same-season reference
    near = SimpleNamespace(id="y", acquired=datetime.fromisoformat("2022-11-16"))
    assert season_members(g, near, ["e"]) == ()


def test_a_change_under_the_pair_threshold_departs_through_the_score_excess():
    """No pixel passed the pair's threshold (set over the whole scene), so the changed
    share is 0; the part's score beyond the rest of the site's departs from its history."""
    rng = np.random.default_rng(1)
    values = [{"changed_excess": 0.0, "score_excess": float(v), "season_span": 0.0}
              for v in rng.normal(0.0, 0.2, 10)]
    values.append({"changed_excess": 0.0, "score_excess": 3.0, "season_span": 0.0})
    got = series_findings("s", "p", _obs(values), levels=False)
    assert [(f.measure, f.time[:10]) for f in got] == [("score_excess", "2024-04-10")]
    # across seasons, the same season's score must show it too, else it is a season note
    values[-1] = {**values[-1], "season_span": 1.0, "score_excess_season": 0.2}
    (f,) = series_findings("s", "p", _obs(values), levels=False)
    assert (f.tier, f.confidence) == ("info", "low") and "Season?" in f.text



def _stored(confidence: str, text: str, history: int = 26) -> StoredAlert:
    rec = Alert(id="a1", site="refsite", part="(rest of site)", time="2011-05-14T00:00:00Z",
                measure="changed_excess_composite", kind="departure", tier="info", value=0.15,
                expected=0.002, z=14.0, confidence=confidence, history=history, text=text,
                before_scene="b", after_scene="a")
    return StoredAlert(rec, "new", "h")


def test_the_brief_says_why_a_season_graded_alert_is_low_confidence():
    from sitewatch.report.brief import _caveat
    from sitewatch.report.findings import PairFinding, pair_sentence

    graded = _stored("low", "changed share ...; 26 dates of history. Season? The pair spans "
                            "seasons and ...: possibly the season, not the ground.")
    short = _stored("low", "changed share ...; low confidence, 2 dates of history.", 2)
    assert "may be the season" in _caveat(graded) and "normal range" not in _caveat(graded)
    assert "normal range rests on 2 earlier dates" in _caveat(short)
    # A high-confidence alert one of whose findings was season-graded has no such caveat.
    assert "season" not in _caveat(_stored("high", graded.alert.text))
    days = {"b": "2010-11-03", "a": "2011-05-14"}
    s = pair_sentence(PairFinding((graded,)), _site(), {}, {}, {}, days)
    assert "Possibly the season" in s and "few earlier dates" not in s
    s = pair_sentence(PairFinding((short,)), _site(), {}, {}, {}, days)
    assert "few earlier dates" in s and "Possibly the season" not in s
    # The web view marks it too (the alert list's "season" flag, shown as "season?").
    from sitewatch.web.views import _alert

    assert _alert(_site(), graded)["season"] is True
    assert _alert(_site(), short)["season"] is False
    assert _alert(_site(), _stored("high", graded.alert.text))["season"] is False
