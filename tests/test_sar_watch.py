"""Sentinel-1 in the watch: SAR series per relative orbit, the omnibus test over a part's
recent dates, and coverage by sensor, on synthetic speckled scenes of a small site."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from conftest import SOHAE_UTM, write_tif
from sitewatch.change.sar import omnibus_stack
from sitewatch.imagery.geo import to_crs
from sitewatch.imagery.grid import grid_for_scenes, load_scene
from sitewatch.imagery.ingest import ingest
from sitewatch.imagery.sentinel1 import orbit_key, relative_orbit
from sitewatch.sites.site import Part, Site
from sitewatch.store import Store
from sitewatch.warning.record import assess_site
from sitewatch.watch.pipeline import RunParams, run_site

SIZE = 96
X0, Y0 = SOHAE_UTM[0] - 480, SOHAE_UTM[1] + 480
TRANSFORM = Affine(10, 0, X0, 0, -10, Y0)
PAD = (10, 10, 22, 22)  # pixel boxes (row0, col0, row1, col1)
STAND = (60, 20, 72, 32)
QUIET = (40, 40, 52, 52)
#: The planted change: the pad's structure brightens from this day on.
EVENT_DAY = datetime(2023, 3, 20, tzinfo=UTC)
T0 = datetime(2023, 1, 5, 9, 40, tzinfo=UTC)  # an ascending S1A pass over the site
#: Two relative orbits of Sentinel-1A, interleaved: (relative orbit, first absolute orbit,
#: days after T0, hour of the pass in UTC: ascending ~18:00, descending ~06:00 local solar).
ORBITS = {"A": (47, 119 + 175 * 260, 0, (9, 40)), "B": (120, 192 + 175 * 260, 5, (21, 35))}
N_DATES = 10  # per orbit, 12 days apart
LOOKS = 4.5
PARAMS = RunParams()


def _lonlat_box(r0: int, c0: int, r1: int, c1: int):
    return to_crs(box(X0 + 10 * c0, Y0 - 10 * r1, X0 + 10 * c1, Y0 - 10 * r0),
                  "EPSG:32651", "EPSG:4326")


def sar_site() -> Site:
    return Site("sarsite", "SAR test site", _lonlat_box(4, 4, SIZE - 4, SIZE - 4),
                (Part("pad", "launch_pad", _lonlat_box(*PAD)),
                 Part("stand", "engine_test_stand", _lonlat_box(*STAND)),
                 Part("quiet", "support_area", _lonlat_box(*QUIET))),
                {"site_type": "launch_site"})


def backscatter(orbit: str) -> np.ndarray:
    """The mean backscatter (VV, VH; linear power) the site shows from one orbit: fields,
    a few bright buildings, and a pattern that depends on the viewing geometry (so the two
    orbits differ everywhere)."""
    rng = np.random.default_rng(7)
    vv = np.full((SIZE, SIZE), 0.05) * np.exp(rng.normal(0, 0.3, (SIZE, SIZE)))
    vv[30:36, 60:70] = 0.8
    vv[PAD[0] + 2:PAD[2] - 2, PAD[1] + 2:PAD[3] - 2] = 0.12
    rows = np.arange(SIZE)[:, None] * np.ones((1, SIZE))
    look = 1.0 + 0.6 * np.sin(rows / 7.0) if orbit == "A" else 1.0 + 0.6 * np.cos(rows / 5.0)
    vv = vv * look
    return np.stack([vv, vv * 0.2]).astype(np.float64)


def acquisitions() -> list[tuple[str, int, datetime]]:
    """(orbit, absolute orbit, time) of every SAR date, in time order."""
    out = []
    for name, (_rel, abs0, days, (hh, mm)) in ORBITS.items():
        for n in range(N_DATES):
            t = (T0 + timedelta(days=days + 12 * n)).replace(hour=hh, minute=mm)
            out.append((name, abs0 + 175 * n, t))
    return sorted(out, key=lambda x: x[2])


def s1_name(abs_orbit: int, t: datetime) -> str:
    start = t.strftime("%Y%m%dT%H%M%S")
    stop = (t + timedelta(seconds=25)).strftime("%Y%m%dT%H%M%S")
    return f"S1A_IW_GRDH_1SDV_{start}_{stop}_{abs_orbit:06d}_0596A8_{abs_orbit % 9999:04X}"


def s1_scene(orbit: str, t: datetime, seed: int) -> np.ndarray:
    """One date: the orbit's backscatter, the planted change from EVENT_DAY on, gamma
    speckle with LOOKS looks."""
    mean = backscatter(orbit)
    if t >= EVENT_DAY:
        mean[:, 14:20, 14:20] *= 8.0  # a new bright structure on the pad
    rng = np.random.default_rng(seed)
    return rng.gamma(LOOKS, mean / LOOKS).astype(np.float32)


def write_s1_series(folder: Path) -> list[tuple[str, str, datetime]]:
    """The SAR dates as Sentinel-1 GRD COGs (VV, VH power); returns (file stem, orbit,
    time)."""
    out = []
    for i, (orbit, abs_orbit, t) in enumerate(acquisitions()):
        name = s1_name(abs_orbit, t)
        write_tif(folder / f"{name}.tif", s1_scene(orbit, t, 1000 + i), transform=TRANSFORM,
                  descriptions=["VV", "VH"], driver="COG")
        out.append((name, orbit, t))
    return out


def write_cloudy_optical(folder: Path, n: int = 8) -> None:
    """Optical dates over the same weeks, every one under cloud (Fmask 4 everywhere)."""
    rng = np.random.default_rng(3)
    for i in range(n):
        t = T0 + timedelta(days=3 + 14 * i)
        img = rng.uniform(500, 3000, (4, SIZE, SIZE)).astype(np.uint16)
        fmask = np.full((1, SIZE, SIZE), 4, np.uint16)
        write_tif(folder / f"optical_{i:02d}.tif", np.concatenate([img, fmask]),
                  transform=TRANSFORM, nodata=0,
                  tags={"ACQUISITION_TIME": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "SENSOR": "sentinel-2"},
                  descriptions=["blue", "green", "red", "nir", "fmask"])


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The site with its SAR series and cloudy optical dates, ingested and run once."""
    tmp = tmp_path_factory.mktemp("sarwatch")
    files = write_s1_series(tmp / "s1")
    write_cloudy_optical(tmp / "s2")
    with Store.open_path(tmp / "db" / "sitewatch.db") as store:
        ingest(store, [tmp / "s1", tmp / "s2"], "sarsite", site=sar_site())
        report = run_site(store, "sarsite", PARAMS)
        yield store, report, files


def _first_after(orbit: str, day: datetime) -> datetime:
    return min(t for o, _, t in acquisitions() if o == orbit and t >= day)


def test_sar_series_find_the_planted_change_at_the_right_part_and_date(watched):
    store, report, _files = watched
    status = {s: st for s, st, _ in report.processed}
    # Every optical date is under cloud; every SAR date is usable (no cloud mask on radar).
    assert [st for s, st in status.items() if s.startswith("optical")] == ["unusable"] * 8
    sar_ids = [s for s in status if s.startswith("S1A")]
    assert len(sar_ids) == 2 * N_DATES
    assert all(status[s] in ("first", "ok") for s in sar_ids)
    # One series (grid) per relative orbit and direction, named by them.
    assert set(report.grids) == {"optical-10m", "sar-10m-rel047-asc", "sar-10m-rel120-desc"}
    # One alert, at the pad, on the first SAR date after the change (orbit B's), from the
    # SAR series only.
    alerts = store.alerts("sarsite", params_hash=PARAMS.hash)
    assert [(a.part, a.time) for a in alerts] == [("pad", _first_after("B", EVENT_DAY))]
    rec = alerts[0].alert
    assert rec.grid == "sar-10m-rel120-desc" and rec.tier in ("watch", "warning")
    assert rec.after_scene.startswith("S1A_20230323") and rec.before_scene.startswith(
        "S1A_20230311")
    # Both orbits saw it on their first date after it; nothing changed at the other parts.
    for orbit, grid in (("A", "sar-10m-rel047-asc"), ("B", "sar-10m-rel120-desc")):
        t_ev = _first_after(orbit, EVENT_DAY)
        for o in store.observations("sarsite", PARAMS.hash, reference="previous"):
            if o.grid != grid:
                continue
            if o.part == "pad" and o.acquired == t_ev:
                assert o.changed_fraction > 0.2
            elif o.part in ("stand", "quiet"):
                assert o.changed_fraction < 0.05


def test_sar_dates_are_compared_only_within_their_orbit(watched):
    store, _report, _files = watched
    scenes = {s.id: s for s in store.scenes("sarsite")}
    done = store.processed("sarsite", PARAMS.hash)
    compared = 0
    for sid, row in done.items():
        sc = scenes[sid]
        if not sc.sensor.startswith("sentinel-1"):
            assert row.status == "unusable"  # the cloudy optical dates pair with nothing
            continue
        orbit = "rel047-asc" if sc.properties["relative_orbit"] == 47 else "rel120-desc"
        assert row.grid == f"sar-10m-{orbit}"
        # The previous date, the omnibus series and the co-registration reference are all
        # of the scene's own orbit, and never optical.
        linked = [row.previous_id, row.chain.reference, *row.chain.composite,
                  *(row.omnibus or {}).get("members", [])]
        for other in filter(None, linked):
            o = scenes[other]
            assert o.sensor.startswith("sentinel-1")
            assert o.properties["relative_orbit"] == sc.properties["relative_orbit"]
            assert o.properties["orbit_direction"] == sc.properties["orbit_direction"]
        if row.status == "ok":
            compared += 1
            prev = scenes[row.previous_id]
            same = sorted((s for s in scenes.values() if s.sensor.startswith("sentinel-1")
                           and s.properties["relative_orbit"] == sc.properties[
                               "relative_orbit"] and s.acquired < sc.acquired),
                          key=lambda s: s.acquired)
            assert prev.id == same[-1].id  # the previous date *of the same orbit*
            assert row.previous is not None and row.previous.method == "sar-log-ratio"
            assert row.composite is None  # on SAR the omnibus series replaces it
    assert compared == 2 * (N_DATES - 1)
    for o in store.observations("sarsite", PARAMS.hash):
        if o.reference_id and o.reference == "previous":
            assert scenes[o.reference_id].properties.get("relative_orbit") == scenes[
                o.scene_id].properties.get("relative_orbit")


def test_omnibus_finds_the_change_index_per_part(watched):
    store, _report, _files = watched
    done = store.processed("sarsite", PARAMS.hash)
    rows = store.observations("sarsite", PARAMS.hash, reference="previous")
    for grid, orbit in (("sar-10m-rel047-asc", "A"), ("sar-10m-rel120-desc", "B")):
        t_ev = _first_after(orbit, EVENT_DAY)
        pad = sorted((o for o in rows if o.grid == grid and o.part == "pad"),
                     key=lambda o: o.acquired)
        for o in pad:
            first = o.measures["omnibus_first"]
            members = done[o.scene_id].omnibus["members"]
            assert members[-1] == o.scene_id and len(members) == o.measures["omnibus_dates"]
            assert len(members) <= 8
            if o.acquired < t_ev:
                assert first == -1, o.scene_id  # nothing before the change
            else:
                # The first change in the series is at the event's date, whatever the date.
                changed_at = store.get_scene("sarsite", members[first]).acquired
                assert changed_at == t_ev, (o.scene_id, first, members)
                assert o.measures["omnibus_first_p"] < 1e-6
                assert o.measures["omnibus_first_days"] == pytest.approx(
                    (o.acquired - t_ev).total_seconds() / 86400)
        ev = next(o for o in pad if o.acquired == t_ev)
        assert ev.measures["omnibus_changed_fraction"] > 0.2 and ev.measures["omnibus_p"] < 1e-6
        # The other parts never change in the series.
        for o in rows:
            if o.grid == grid and o.part in ("stand", "quiet"):
                assert o.measures["omnibus_first"] == -1
                assert o.measures["omnibus_changed_fraction"] < 0.05


def test_coverage_says_which_sensor_saw_which_part(watched):
    store, _report, _files = watched
    site = store.use_site("sarsite")
    a = assess_site(store, site, at=date(2023, 4, 30))
    seen = {(s.part, s.sensor): s for s in a.imagery.seen}
    # Cloudy optical dates leave nothing seen by optical imagery; SAR saw every part.
    assert {k for k in seen} == {("pad", "sar"), ("stand", "sar"), ("quiet", "sar")}
    pad = seen[("pad", "sar")]
    assert pad.last == date(2023, 4, 28) and pad.dates == 2 * N_DATES
    assert "engine_test_stand" not in " ".join(pad.indicators)
    # Indicators SAR cannot show stay unobserved, saying SAR saw the part.
    unobs = {u.indicator: u.why for e in ("launch", "engine_test")
             for u in a.event(e).unobserved}
    sar_only = [w for w in unobs.values() if "seen only by SAR" in w]
    assert sar_only, unobs
    assert a.to_dict()["imagery"]["seen"][0]["sensor"] == "sar"


def test_sar_decibels_are_loaded_as_power(tmp_path):
    rng = np.random.default_rng(5)
    power = rng.gamma(LOOKS, 0.1 / LOOKS, (2, SIZE, SIZE)).astype(np.float32)
    name = s1_name(ORBITS["A"][1], T0)
    write_tif(tmp_path / "db" / f"{name}.tif", 10 * np.log10(power), transform=TRANSFORM,
              descriptions=["VV", "VH"])
    with Store.open_path(tmp_path / "s.db") as store:
        ingest(store, [tmp_path / "db"], "sarsite", site=sar_site())
        (sc,) = store.scenes("sarsite")
    assert sc.properties["sar_units"] == "db"
    assert any("negative" in w and "linear power" in w for w in sc.warnings)
    img = load_scene(sc, grid_for_scenes(sar_site(), [sc]), ["vv"])
    ok = np.isfinite(img.data[0])
    assert ok.mean() > 0.5 and float(np.nanmin(img.data)) > 0
    assert float(np.nanmedian(img.data[0])) == pytest.approx(float(np.median(power[0])),
                                                             rel=0.2)


def test_orbit_helpers():
    assert relative_orbit("S1A", 119 + 175 * 3) == 47 and relative_orbit("S1B", 27) == 1
    assert relative_orbit("S1C", 1000) is None  # no offset assumed for later units
    assert orbit_key({"relative_orbit": 120, "orbit_direction": "descending"}) == \
        "rel120-desc"
    r = omnibus_stack([np.full((1, 40, 40), 1.0) * (1 + 0.0 * i) +
                       np.random.default_rng(i).gamma(4.0, 0.25, (1, 40, 40))
                       for i in range(4)])
    assert r.changes.shape == (3, 40, 40) and not math.isnan(r.enl)


def test_the_brief_names_each_sar_scenes_orbit(watched, tmp_path):
    from sitewatch.report.brief import write_brief

    store, _report, _files = watched
    b = write_brief(store, "sarsite", tmp_path / "brief", end=date(2023, 4, 30))
    html = (tmp_path / "brief" / "brief.html").read_text()
    assert "sentinel-1 (relative orbit" in html and "ascending" in html, b
    assert html.count("(relative orbit") == 2 * N_DATES
