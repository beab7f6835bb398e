"""The fast watch pipeline gives what the slow one gave: a series run scene by scene (with
the scoring state and the image cache kept between runs) stores the same observations and
alerts as the same scenes run at once from scratch; a run with nothing new scores nothing;
the one-pass zonal statistics and the composite's sorting network give the values of the
per-mask and per-pixel-sort computations they replace."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from sitewatch.change.base import ChangeMap
from sitewatch.store import Store
from sitewatch.watch import events, grids, pipeline
from sitewatch.watch.events import Obs, score_series, series_findings
from sitewatch.watch.imagecache import CACHE_ENV
from sitewatch.watch.pipeline import run_site
from sitewatch.watch.zonal import REST, ZoneIndex, part_changes
from test_pipeline import PARAMS, catalogue


def stored(store: Store) -> dict[str, list]:
    """What runs store, without timestamps: observations with every measure, each scene's
    status and chain, and the alerts (whole records)."""
    obs = sorted((r.scene_id, r.part, r.reference, str(r.reference_id),
                  json.dumps(r.to_dict()["measures"], sort_keys=True))
                 for r in store.observations("testsite", PARAMS.hash))
    done = sorted((k, v.status, json.dumps(v.chain.to_dict(), sort_keys=True))
                  for k, v in store.processed("testsite", PARAMS.hash).items())
    alerts = sorted((a.id, a.status, json.dumps(a.alert.to_dict(), sort_keys=True))
                    for a in store.alerts("testsite"))
    return {"observations": obs, "processed": done, "alerts": alerts}


@pytest.fixture
def counted(monkeypatch):
    """Counts scene loads (read + warp from the file) and series scorings."""
    n = {"loads": 0, "reads": 0, "scored": 0}
    load, read, score = grids.GridRun.load, grids.GridRun.read, pipeline.score_series

    def counting_read(self, sc, bands, shift=None):
        n["reads"] += 1
        return read(self, sc, bands, shift)

    def counting_load(self, sc, shift=None):
        n["loads"] += 1
        return load(self, sc, shift)

    def counting_score(*a, **kw):
        n["scored"] += 1
        return score(*a, **kw)

    monkeypatch.setattr(grids.GridRun, "load", counting_load)
    monkeypatch.setattr(grids.GridRun, "read", counting_read)
    monkeypatch.setattr(pipeline, "score_series", counting_score)
    return n


def test_scene_by_scene_runs_store_what_one_run_from_scratch_stores(tmp_path, counted):
    with Store.open_path(tmp_path / "all" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs_all", range(12))
        run_site(store, "testsite", PARAMS)
        scratch = stored(store)
    assert scratch["alerts"], "the planted change should raise an alert"
    with Store.open_path(tmp_path / "steps" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs_steps", range(5))
        run_site(store, "testsite", PARAMS)
        for i in range(5, 12):
            catalogue(store, tmp_path / "imgs_steps", [i])
            loads, reads = counted["loads"], counted["reads"]
            rep = run_site(store, "testsite", PARAMS)
            assert [s for s, _, _ in rep.processed] == [f"scene_{i:02d}"]
            # The new scene is read from its file twice (a probe for co-registration, then
            # its bands); the reference's band, the previous date and the composite's
            # members come from the cache.
            assert counted["loads"] - loads == 1
            assert counted["reads"] - reads == 2
        assert stored(store) == scratch
        # Nothing new: no series is scored, nothing is stored again.
        scored = counted["scored"]
        rep = run_site(store, "testsite", PARAMS)
        assert rep.processed == [] and rep.alerts == {"new": [], "updated": []}
        assert counted["scored"] == scored
        assert stored(store) == scratch
    # The cache keeps only what the next date needs: the composite's members, and the
    # co-registration reference's band.
    cached = list((tmp_path / "steps" / "cache" / "watch").rglob("*.npz"))
    assert len(cached) == PARAMS.composite + 1


def test_a_series_holds_two_images_through_its_comparisons(tmp_path, monkeypatch):
    """From scratch, with a disk image cache: while a scene is compared, only the previous
    date and the scene itself are held in memory (the composite's other members wait on
    disk), and the disk never holds more than the window; without a cache, all but the
    member leaving the window are held.  The results are the same (the tests above)."""
    held: list[int] = []
    on_disk: list[int] = []
    real = grids._observations

    def watching(g, *a, **kw):
        held.append(len(g.cache))
        if g.disk is not None and g.disk.folder.is_dir():
            on_disk.append(len(list(g.disk.folder.glob("*.npz"))))
        return real(g, *a, **kw)

    monkeypatch.setattr(grids, "_observations", watching)
    with Store.open_path(tmp_path / "a" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs", range(12))
        run_site(store, "testsite", PARAMS)
    assert held and max(held[4:]) == 2
    # The window's members and the reference's band, plus the member written this scene.
    assert on_disk and max(on_disk) <= PARAMS.composite + 2
    held.clear()
    monkeypatch.setenv(CACHE_ENV, "off")
    with Store.open_path(tmp_path / "b" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs", range(12))
        run_site(store, "testsite", PARAMS)
    assert max(held) == PARAMS.composite


def test_without_the_image_cache_the_results_are_the_same(tmp_path, monkeypatch, counted):
    with Store.open_path(tmp_path / "a" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs_a", range(9))
        run_site(store, "testsite", PARAMS)
        cached = stored(store)
    monkeypatch.setenv(CACHE_ENV, "off")
    with Store.open_path(tmp_path / "b" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs_b", range(8))
        run_site(store, "testsite", PARAMS)
        catalogue(store, tmp_path / "imgs_b", [8])
        loads = counted["loads"]
        run_site(store, "testsite", PARAMS)
        assert counted["loads"] - loads > 2  # the members are read from their files again
        assert stored(store) == cached
    assert not (tmp_path / "b" / "cache").exists()


def test_a_dismissal_rescoring_matches_scoring_from_scratch(tmp_path):
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs", range(10))
        run_site(store, "testsite", PARAMS)
        (alert,) = store.alerts("testsite")
        store.set_alert_status(alert.id, "dismissed", "a test")
        catalogue(store, tmp_path / "imgs", [10, 11])
        run_site(store, "testsite", PARAMS)
        incremental = stored(store)
        # The same store scored again with no state kept: the same alerts.
        with store.engine.begin() as c:
            c.exec_driver_sql("DELETE FROM scoring_state")
        rep = pipeline.score_alerts(store, "testsite", PARAMS)
        assert rep == {"new": [], "updated": []}
        assert stored(store) == incremental


def _series(n: int, seed: int) -> list[Obs]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = abs(rng.normal(0.01, 0.004))
        if i in (14, 15, 31):
            v += 0.3  # events
        m = {"changed_excess": v if i != 9 else math.nan,
             "changed_excess_composite": abs(rng.normal(0.01, 0.004)),
             "brightness_rel": rng.normal(0, 0.003) + (0.05 if i > 25 else 0.0),
             "ndvi_rel": rng.normal(0, 0.01), "changed_area_m2": 100.0 * i, "objects": i % 3}
        t = np.datetime64("2024-01-03T02:00:00") + np.timedelta64(12 * i, "D")
        out.append(Obs(f"{t}Z", f"s{i}", f"s{i - 1}" if i else None, None, "optical-10m", m))
    return out


@pytest.mark.parametrize("levels", [False, True])
def test_resumed_series_scoring_equals_scoring_from_the_first_date(levels):
    series = _series(40, 3)
    assert [o.time for o in series] == sorted(o.time for o in series)
    full = series_findings("s", "pad", series, levels=levels)
    assert any(a.kind == "departure" for a in full)
    state = None
    for k in (3, 10, 11, 25, 40):
        got, state = score_series("s", "pad", series[:k], levels=levels, state=state)
        assert state.n == k
    assert got == full
    # The kept state survives its JSON form.
    again, _ = score_series("s", "pad", series, levels=levels,
                            state=events.SeriesState.from_dict(
                                json.loads(json.dumps(state.to_dict()))))
    assert again == full
    # A changed history (a date scored again with other values) is scored from its start.
    changed = list(series)
    changed[14] = replace(changed[14],
                          measures={**changed[14].measures, "changed_excess": 0.01})
    got, _ = score_series("s", "pad", changed, levels=levels, state=state)
    assert got == series_findings("s", "pad", changed, levels=levels)
    assert got != full
    # So is a series whose dismissed dates changed.
    dismissed = [series[14].time]
    got, _ = score_series("s", "pad", series, levels=levels, state=state, dismissed=dismissed)
    assert got == series_findings("s", "pad", series, levels=levels, dismissed=dismissed)


def _reference_part_changes(ch, masks, area, site, before, after, bands):
    """The per-mask computation the one-pass zonal statistics replaced (full-grid masks,
    full-grid float64 indices)."""
    from scipy import ndimage

    zones = dict(masks)
    zones[REST] = site & ~np.logical_or.reduce(list(masks.values()))
    labels, n_obj = ndimage.label(ch.changed & ch.observed, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n_obj + 1)
    ndvi = [(x[3].astype(np.float64) - x[2]) / (x[3].astype(np.float64) + x[2])
            for x in (before, after)]
    out = {}
    for name, m in zones.items():
        obs = m & ch.observed
        s = ch.score[obs]
        s = s[np.isfinite(s)]
        near = ndimage.binary_dilation(m, structure=np.ones((3, 3), bool))
        ids = np.unique(labels[near])
        ids = ids[ids > 0]
        both = obs & np.isfinite(ndvi[0]) & np.isfinite(ndvi[1])
        out[name] = (int(m.sum()), int(obs.sum()) / int(m.sum()),
                     int((ch.changed & obs).sum()) / int(obs.sum()),
                     float(np.mean(s)), float(np.percentile(s, 95)), int(ids.size),
                     float(sizes[ids].sum()) * area, float(ndvi[0][both].mean()),
                     float(ndvi[1][both].mean()))
    return out


def test_one_pass_zonal_statistics_equal_the_per_mask_ones():
    rng = np.random.default_rng(0)
    h = w = 300
    score = rng.standard_normal((h, w)).astype(np.float32)
    score[rng.random((h, w)) < 0.01] = np.nan
    observed = rng.random((h, w)) > 0.2
    changed = (score > 1.5) & observed
    ch = ChangeMap(score, changed, observed, 1.5, "x", "ratio", {})
    masks = {}
    for k in range(6):
        m = np.zeros((h, w), bool)
        r, c = rng.integers(0, h - 60, 2)
        m[r:r + rng.integers(2, 60), c:c + rng.integers(2, 60)] = True
        masks[f"p{k}"] = m
    site = np.zeros((h, w), bool)
    site[5:-5, 5:-5] = True
    bands = ["blue", "green", "red", "nir"]
    before, after = (rng.uniform(0.01, 0.5, (4, h, w)).astype(np.float32) for _ in range(2))
    before[:, rng.random((h, w)) < 0.05] = np.nan
    got = part_changes(ch, masks, 100.0, zones=ZoneIndex(masks, site), before=before,
                       after=after, bands=bands)
    want = _reference_part_changes(ch, masks, 100.0, site, before, after, bands)
    assert set(got) == set(want) == {*masks, REST}
    for name, pc in got.items():
        assert (pc.pixels, pc.observed_fraction, pc.changed_fraction, pc.mean_score,
                pc.p95_score, pc.objects, pc.objects_area_m2, pc.ndvi_before,
                pc.ndvi_after) == want[name], name


def test_large_zones_sum_their_index_means_in_chunks(monkeypatch):
    """A zone over INDEX_CHUNK observed pixels averages its indices chunk by chunk: the same
    means, to float64 rounding, as averaging every pixel at once."""
    from sitewatch.watch import zonal

    rng = np.random.default_rng(5)
    h = w = 200
    score = rng.standard_normal((h, w)).astype(np.float32)
    observed = rng.random((h, w)) > 0.1
    ch = ChangeMap(score, (score > 1.5) & observed, observed, 1.5, "x", "ratio", {})
    part = np.zeros((h, w), bool)
    part[20:60, 30:90] = True
    site = np.ones((h, w), bool)
    bands = ["blue", "green", "red", "nir"]
    before, after = (rng.uniform(0.01, 0.5, (4, h, w)).astype(np.float32) for _ in range(2))
    after[:, rng.random((h, w)) < 0.05] = np.nan
    zones = ZoneIndex({"p": part}, site)
    whole = part_changes(ch, {}, 100.0, zones=zones, before=before, after=after, bands=bands)
    monkeypatch.setattr(zonal, "INDEX_CHUNK", 997)  # the rest of the site: ~33 chunks
    chunked = part_changes(ch, {}, 100.0, zones=zones, before=before, after=after,
                           bands=bands)
    for name in ("p", REST):
        a, b = whole[name].to_dict(), chunked[name].to_dict()
        assert a.keys() == b.keys()
        for k, v in a.items():
            if isinstance(v, float) and math.isfinite(v):
                assert b[k] == pytest.approx(v, rel=1e-12, abs=1e-15), (name, k)
            else:
                assert b[k] == v or (v != v and b[k] != b[k]), (name, k)
    assert math.isfinite(chunked[REST].ndvi_change)


def test_composite_is_the_nan_skipping_median():
    rng = np.random.default_rng(1)
    for m in (1, 2, 3, 5, 6):
        data = [rng.uniform(0, 1, (2, 40, 50)).astype(np.float32) for _ in range(m)]
        for d in data:
            d[:, rng.random((40, 50)) < 0.4] = np.nan
        imgs = [type("I", (), {"data": d})() for d in data]
        got = grids._composite(imgs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
            want = np.nanmedian(np.stack(data), axis=0)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_the_scoring_state_is_kept_on_either_database(store_url, tmp_path, counted):
    """On SQLite and PostgreSQL: the state is stored, replaced, and a run with nothing new
    scores no series; a new scene's run stores what one run from scratch stores."""
    with Store.open_url(store_url) as store:
        assert store.scoring_state("testsite", PARAMS.hash) is None
        store.put_scoring_state("testsite", PARAMS.hash, {"version": "x", "n": [1, 2]})
        store.put_scoring_state("testsite", PARAMS.hash, {"version": "y"})
        assert store.scoring_state("testsite", PARAMS.hash) == {"version": "y"}
        catalogue(store, tmp_path / "imgs", range(7))
        run_site(store, "testsite", PARAMS)
        kept = store.scoring_state("testsite", PARAMS.hash)
        assert kept is not None and kept["version"] == events.SCORING_VERSION
        assert kept["series"]  # one state per part's series
        scored = counted["scored"]
        run_site(store, "testsite", PARAMS)
        assert counted["scored"] == scored
        catalogue(store, tmp_path / "imgs", [7, 8])
        run_site(store, "testsite", PARAMS)
        steps = stored(store)
    with Store.open_path(tmp_path / "scratch" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs_scratch", range(9))
        run_site(store, "testsite", PARAMS)
        assert stored(store) == steps
