"""Tests of the SIMULATED image series (sitewatch.sim.simulate).

A few small scenarios (6 dates at 10 m, 2 at 3 m) are written once per module and checked for
determinism, file format, ground truth and the visibility of the planted changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
from shapely.geometry import box, mapping, shape

from sitewatch.errors import SiteError, SitewatchError
from sitewatch.imagery.geo import to_crs
from sitewatch.sim.simulate import (
    BAND_NAMES,
    EVENT_KINDS,
    FMASK_CLEAR,
    FMASK_CLOUD,
    FMASK_FILL,
    NODATA,
    Scenario,
    SimulationError,
    load_ground_truth,
    load_scenario,
    simulate_scenario,
)
from sitewatch.sites.site import builtin_site

SMALL = {"n_dates_10m": 6, "n_dates_3m": 2}
UTM = "EPSG:32651"


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    calls: list[tuple[int, int]] = []
    a = simulate_scenario(
        tmp_path_factory.mktemp("a") / "scenario", seed=0,
        progress=lambda done, total: calls.append((done, total)), **SMALL,
    )
    b = simulate_scenario(tmp_path_factory.mktemp("b"), seed=0, **SMALL)
    c = simulate_scenario(tmp_path_factory.mktemp("c"), seed=1, **SMALL)
    return {"a": a, "b": b, "c": c, "calls": calls}


@pytest.fixture(scope="module")
def scenario(runs: dict[str, object]) -> Scenario:
    sc = runs["a"]
    assert isinstance(sc, Scenario)
    return sc


def _read(path: Path) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.transform


def _event_mask(scenario: Scenario, event_id: str, shape_: tuple[int, int],
                transform: rasterio.Affine) -> np.ndarray:
    event = next(e for e in scenario.events if e.id == event_id)
    geom = to_crs(event.geometry, "EPSG:4326", UTM)
    return rasterio.features.rasterize(
        [(mapping(geom), 1)], out_shape=shape_, transform=transform, fill=0, dtype="uint8"
    ).astype(bool)


def _clear_means(scenario: Scenario, event_id: str, band: int) -> dict[date, float]:
    """Per 10 m scene date: mean reflectance of ``band`` over the clear pixels of the event."""
    out = {}
    for s in scenario.scenes:
        if s.sensor != "sim-10m":
            continue
        data, transform = _read(s.path)
        m = _event_mask(scenario, event_id, data.shape[1:], transform)
        clear = m & (data[4] == FMASK_CLEAR)
        if clear.sum() >= 0.6 * m.sum() and m.sum() > 0:
            out[s.acquired.date()] = float(data[band][clear].mean()) * 1e-4
    return out


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files(runs: dict[str, Scenario]) -> None:
    ha, hb = _hashes(runs["a"].out_dir), _hashes(runs["b"].out_dir)
    assert ha == hb
    assert sum(k.endswith(".tif") for k in ha) == 8
    assert {"site.geojson", "ground_truth.json", "README.txt"} <= set(ha)


def test_other_seed_gives_other_files(runs: dict[str, Scenario]) -> None:
    ha, hc = _hashes(runs["a"].out_dir), _hashes(runs["c"].out_dir)
    tifs_a = {v for k, v in ha.items() if k.endswith(".tif")}
    tifs_c = {v for k, v in hc.items() if k.endswith(".tif")}
    assert not tifs_a & tifs_c
    assert ha["ground_truth.json"] != hc["ground_truth.json"]
    assert ha["site.geojson"] == hc["site.geojson"]


def test_progress_reports_every_scene(runs: dict[str, object], scenario: Scenario) -> None:
    n = len(scenario.scenes)
    assert runs["calls"] == [(k, n) for k in range(1, n + 1)]


# --------------------------------------------------------------------------- file format


def test_geotiffs_follow_the_format(scenario: Scenario) -> None:
    site = scenario.site
    boundary = to_crs(site.boundary, "EPSG:4326", UTM)
    bx0, by0, bx1, by1 = boundary.bounds
    sensors = [s.sensor for s in scenario.scenes]
    assert sensors.count("sim-10m") == 6 and sensors.count("sim-3m") == 2
    times = [s.acquired for s in scenario.scenes]
    assert times == sorted(times)
    for s in scenario.scenes:
        assert s.acquired.tzinfo is not None and s.acquired.utcoffset() == timedelta(0)
        prefix = "SIM10" if s.sensor == "sim-10m" else "SIM3"
        assert s.path.name == f"{prefix}_{s.acquired:%Y%m%dT%H%M%S}.tif"
        assert s.path.parent == scenario.out_dir / "scenes"
        with rasterio.open(s.path) as ds:
            assert ds.crs.to_epsg() == 32651
            assert ds.count == 5 and ds.dtypes == ("uint16",) * 5
            assert ds.descriptions == (*BAND_NAMES, "fmask")
            assert ds.scales[:4] == pytest.approx((1e-4,) * 4)
            assert ds.nodata == NODATA
            assert ds.res == pytest.approx((s.resolution, s.resolution))
            assert ds.transform.b == 0 and ds.transform.d == 0  # north-up
            assert ds.compression is not None and ds.compression.value == "DEFLATE"
            tags = ds.tags()
            assert tags["ACQUISITION_TIME"] == s.acquired.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert tags["TIFFTAG_DATETIME"] == s.acquired.strftime("%Y:%m:%d %H:%M:%S")
            assert tags["SENSOR"] == s.sensor
            assert tags["PLATFORM"] == "SITEWATCH-SIM"
            assert tags["SIMULATED"] == "true"
            assert tags["SITE"] == site.id
            for i, wl in enumerate(("0.490", "0.560", "0.665", "0.842"), start=1):
                assert float(ds.tags(i)["wavelength"]) == pytest.approx(float(wl))
            left, bottom, right, top = ds.bounds
            assert left <= bx0 - 200 and right >= bx1 + 200
            assert bottom <= by0 - 200 and top >= by1 + 200
            data = ds.read()
        fmask = data[4]
        assert set(np.unique(fmask)) <= {0, 1, 2, 3, 4, 255}
        fill = fmask == FMASK_FILL
        assert np.all(data[:4, fill] == NODATA)
        assert not np.any(data[:4, ~fill] == NODATA)
        if s.sensor == "sim-3m":
            # A random sub-pixel origin: not on a 3 m grid.
            assert abs(left / 3.0 - round(left / 3.0)) > 1e-3


def test_one_10m_scene_is_cut_by_a_swath_edge(scenario: Scenario) -> None:
    boundary = to_crs(scenario.site.boundary, "EPSG:4326", UTM)
    partial = []
    for s in scenario.scenes:
        data, transform = _read(s.path)
        inside = rasterio.features.rasterize(
            [(mapping(boundary), 1)], out_shape=data.shape[1:], transform=transform
        ).astype(bool)
        filled = (data[4][inside] == FMASK_FILL).mean()
        if filled > 0:
            partial.append((s.sensor, filled))
    assert len(partial) == 1
    sensor, filled = partial[0]
    assert sensor == "sim-10m" and 0.1 < filled < 0.7


def test_reflectance_is_plausible_and_clouds_are_bright(scenario: Scenario) -> None:
    clear_blue, cloud_blue = [], []
    for s in scenario.scenes:
        data, _ = _read(s.path)
        refl = data[:4].astype(np.float64) * 1e-4
        fmask = data[4]
        clear = fmask == FMASK_CLEAR
        if clear.sum() > 1000:
            assert 0.02 < np.median(refl[3][clear]) < 0.5
        clear_blue.append(refl[0][clear])
        cloud_blue.append(refl[0][fmask == FMASK_CLOUD])
    clear_mean = np.concatenate(clear_blue).mean()
    cloud = np.concatenate(cloud_blue)
    assert cloud.size > 1000
    assert cloud.mean() > 3.0 * clear_mean
    assert cloud.mean() > 0.3


def test_site_file_and_readme(scenario: Scenario) -> None:
    site = builtin_site("sohae-sim")
    assert (scenario.out_dir / "site.geojson").read_text(encoding="utf-8") == site.dumps()
    readme = (scenario.out_dir / "README.txt").read_text(encoding="utf-8")
    assert "SIMULATED" in readme and "seed 0" in readme
    for e in scenario.events:
        assert e.id in readme and e.kind in readme


# --------------------------------------------------------------------------- ground truth


def test_ground_truth_lists_the_events_and_scenes(scenario: Scenario) -> None:
    gt = load_ground_truth(scenario.ground_truth_path)
    assert gt == load_ground_truth(scenario.out_dir)
    assert gt["simulated"] is True and "SIMULATED" in gt["note"]
    assert gt["site"] == "sohae-sim" and gt["seed"] == 0
    names = {p.name for p in scenario.site.parts}
    first = min(s.acquired for s in scenario.scenes).date()
    last = max(s.acquired for s in scenario.scenes).date()
    assert [e["id"] for e in gt["events"]] == ["E1", "E2", "E3", "E4", "E5"]
    assert {e["kind"] for e in gt["events"]} == set(EVENT_KINDS)
    for e in gt["events"]:
        assert e["part"] in names and e["part"] in e["parts"]
        assert set(e["parts"]) <= names
        start = date.fromisoformat(e["start"])
        assert first < start <= last
        if e["end"] is not None:
            assert date.fromisoformat(e["end"]) > start
        geom = shape(e["geometry"])
        assert geom.is_valid and geom.area > 0
        assert geom.intersects(scenario.site.part(e["part"]).geometry)
    e3 = next(e for e in gt["events"] if e["kind"] == "transfer_structure_moved")
    assert {"transfer_structure", "gantry_tower", "pad_rail"} <= set(e3["parts"])

    assert [s["file"] for s in gt["scenes"]] == [
        s.path.relative_to(scenario.out_dir).as_posix() for s in scenario.scenes
    ]
    for rec, s in zip(gt["scenes"], scenario.scenes, strict=True):
        assert rec["acquired"] == s.acquired.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert rec["sensor"] == s.sensor and rec["resolution"] == s.resolution
        assert rec["cloud_fraction"] == s.cloud_fraction
        assert tuple(rec["shift_px"]) == s.shift_px
        assert len(rec["gain"]) == 4 and all(0.85 <= g <= 1.15 for g in rec["gain"])
        assert rec["haze"] >= 0


def test_cloud_fractions_vary(scenario: Scenario) -> None:
    fractions = [s.cloud_fraction for s in scenario.scenes]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert sum(f < 0.05 for f in fractions) >= 3
    assert max(fractions) > 0.9
    first10 = next(s for s in scenario.scenes if s.sensor == "sim-10m")
    assert first10.cloud_fraction == 0.0


def test_shifts_are_sub_pixel_and_real(scenario: Scenario) -> None:
    shifts = np.array([s.shift_px for s in scenario.scenes])
    assert np.all(np.abs(shifts) <= 1.5)
    assert np.abs(shifts).max() > 0.3
    # The recorded shifts are the ones applied: phase correlation between two clear 10 m
    # scenes finds their difference.
    clear = []
    for s in scenario.scenes:
        data, _ = _read(s.path)
        if s.sensor == "sim-10m" and s.cloud_fraction == 0 and not (data[4] == 255).any():
            clear.append((s, data[3].astype(np.float64)))
    assert len(clear) >= 2
    (sa, a), (sb, b) = clear[0], clear[-1]
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    cross = np.fft.fft2((b - b.mean()) * win) * np.conj(np.fft.fft2((a - a.mean()) * win))
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-12)).real
    i, j = np.unravel_index(np.argmax(corr), corr.shape)
    n, m = corr.shape

    def parabolic(lo: float, mid: float, hi: float) -> float:
        return 0.5 * (lo - hi) / (lo - 2 * mid + hi)

    dy = (i if i < n // 2 else i - n) + parabolic(corr[i - 1, j], corr[i, j], corr[(i + 1) % n, j])
    dx = (j if j < m // 2 else j - m) + parabolic(corr[i, j - 1], corr[i, j], corr[i, (j + 1) % m])
    assert dy == pytest.approx(sb.shift_px[0] - sa.shift_px[0], abs=0.3)
    assert dx == pytest.approx(sb.shift_px[1] - sa.shift_px[1], abs=0.3)


def test_events_between(scenario: Scenario) -> None:
    first, last = scenario.scenes[0].acquired, scenario.scenes[-1].acquired
    assert {e.id for e in scenario.events_between(first, last)} == {"E1", "E2", "E3", "E4", "E5"}
    assert scenario.events_between(first, first) == []
    e3 = next(e for e in scenario.events if e.id == "E3")
    assert e3.end is not None
    gone = e3.end + timedelta(days=1)
    assert e3 in scenario.events_between(e3.end, gone)
    assert e3 not in scenario.events_between(e3.start, e3.end)
    assert e3.on_ground(e3.start) and not e3.on_ground(gone)
    # Datetimes work too (compared by their UTC date).
    t0 = datetime.combine(e3.start - timedelta(days=1), datetime.min.time(), UTC)
    assert e3 in scenario.events_between(t0, t0 + timedelta(days=1))


def test_load_scenario_round_trip(scenario: Scenario) -> None:
    again = load_scenario(scenario.out_dir)
    assert again.scenes == scenario.scenes
    assert [(e.id, e.kind, e.part, e.start, e.end, e.parts, e.stages) for e in again.events] == [
        (e.id, e.kind, e.part, e.start, e.end, e.parts, e.stages) for e in scenario.events
    ]
    for e1, e2 in zip(again.events, scenario.events, strict=True):
        assert e1.geometry.equals_exact(e2.geometry, 1e-9)


# --------------------------------------------------------------------------- planted change


def test_burn_scar_darkens_nir(scenario: Scenario) -> None:
    e5 = next(e for e in scenario.events if e.kind == "burn_scar")
    nir = _clear_means(scenario, "E5", band=3)
    before = [v for d, v in nir.items() if d < e5.start]
    after = [v for d, v in nir.items() if e5.on_ground(d)]
    assert before and after
    # Misregistration (up to 1.5 px), imperfect cloud masks and the scar's fading blur the
    # change, yet it stays clear: the freshest clear view loses well over a quarter of its NIR.
    assert np.mean(after) < 0.85 * np.mean(before)
    assert min(after) < 0.7 * np.mean(before)


def test_new_structure_changes_reflectance(scenario: Scenario) -> None:
    e1 = next(e for e in scenario.events if e.kind == "construction")
    roofed = e1.stages[-1][0]
    for band in (0, 2):
        values = _clear_means(scenario, "E1", band=band)
        before = [v for d, v in values.items() if d < e1.start]
        after = [v for d, v in values.items() if d >= roofed]
        assert before and after
        assert np.mean(after) - np.mean(before) > 0.06


# --------------------------------------------------------------------------- refusals


def test_refuses_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SimulationError, match=re.escape(str(tmp_path))):
        simulate_scenario(tmp_path, n_dates_10m=2, n_dates_3m=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    # A ground_truth.json that is not the simulator's is refused too.
    (tmp_path / "ground_truth.json").write_text('{"simulated": false}', encoding="utf-8")
    with pytest.raises(SitewatchError):
        simulate_scenario(tmp_path, n_dates_10m=2, n_dates_3m=0)
    a_file = tmp_path / "notes.txt"
    with pytest.raises(ValueError, match="not a folder"):
        simulate_scenario(a_file, n_dates_10m=2, n_dates_3m=0)


def test_overwrites_a_previous_scenario(tmp_path: Path) -> None:
    first = simulate_scenario(tmp_path, seed=3, n_dates_10m=3, n_dates_3m=1)
    (tmp_path / "analyst-notes.txt").write_text("keep me", encoding="utf-8")
    second = simulate_scenario(tmp_path, seed=4, n_dates_10m=2, n_dates_3m=0)
    files = sorted(p.name for p in (tmp_path / "scenes").iterdir())
    assert files == sorted(s.path.name for s in second.scenes)
    assert len(first.scenes) == 4 and len(second.scenes) == 2
    assert (tmp_path / "analyst-notes.txt").exists()
    assert json.loads((tmp_path / "ground_truth.json").read_text())["seed"] == 4


def test_missing_part_is_a_site_error() -> None:
    site = builtin_site("sohae-sim")
    cut = dataclasses.replace(site, parts=tuple(p for p in site.parts if p.name != "pad_rail"))
    with pytest.raises(SiteError, match="pad_rail"):
        simulate_scenario("/nonexistent/never-written", site=cut)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_dates_10m": 1}, {"seed": -1}, {"interval_days": 0}, {"n_dates_3m": -1}],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(SimulationError):
        simulate_scenario(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_load_ground_truth_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(SimulationError):
        load_ground_truth(tmp_path)
    (tmp_path / "ground_truth.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SimulationError):
        load_ground_truth(tmp_path / "ground_truth.json")


def test_event_geometry_is_in_lon_lat(scenario: Scenario) -> None:
    minx, miny, maxx, maxy = scenario.site.boundary.bounds
    frame = box(minx, miny, maxx, maxy).buffer(0.01)
    for e in scenario.events:
        assert frame.contains(e.geometry)
