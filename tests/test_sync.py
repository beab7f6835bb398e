"""``sitewatch sync`` against the real STAC test services (tests/stac_server.py): a
stac-fastapi-pgstac catalogue, a Range-capable file server and a fault proxy on 127.0.0.1.

Items are built from the real Colorado Landsat series (../shared/data); pystac-client and GDAL
talk to the services over HTTP exactly as they would to a public catalogue.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import shape

from conftest import need_shared

pytest.importorskip("stac_server", reason="the real STAC test services (tests/stac_server.py) "
                    "are not in this tree")

from sitewatch.sites.site import bare_site
from sitewatch.sources.access import HttpPolicy
from sitewatch.sources.records import Source
from sitewatch.sources.sync import sync_site
from sitewatch.store import Store

#: Fast retries for tests: no waiting on backoff, Retry-After honoured up to 2 s.
FAST = HttpPolicy(connect_timeout=5, read_timeout=20, retries=2, backoff=0.0,
                  backoff_max=0.0, retry_after_cap=2.0, page_size=100)
COLLECTION = "landsat-c2-l2"


def colorado(stac, limit: int | None = None) -> list[dict]:
    from stac_items import colorado_landsat_items

    data = need_shared("landsat_timeseries_colorado")
    return colorado_landsat_items(stac.files.root, stac.asset_href, data=data, limit=limit)


def site_over(item: dict, site_id: str = "rockies", shrink: float = 0.6):
    """A site inside the Item's footprint (``shrink`` of it, about its centre)."""
    from shapely.affinity import scale

    return bare_site(site_id, scale(shape(item["geometry"]), shrink, shrink), "test")


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def open_store(home: Path) -> Store:
    return Store.open_home(home)


def add_landsat(store: Store, stac, site, *, name: str = "landsat",
                collection: str = COLLECTION, **kw) -> Source:
    store.put_site(site, "file")
    return store.add_source(Source(site.id, name, stac.api_url, collection,
                                   preset="landsat-c2-l2", **kw))


def load(stac, items: list[dict], collection: str = COLLECTION) -> None:
    stac.add_collection(collection)
    stac.add_items(collection, items)


def catalogue(store: Store, site_id: str) -> dict[str, str]:
    return {s.id: s.checksum for s in store.scenes(site_id)}


# --------------------------------------------------------------------------- end to end


def test_sync_colorado_then_run_offline_and_resync_reads_nothing(stac, home):
    items = colorado(stac, limit=12)
    load(stac, items)
    stac.api.page_cap = 4  # 12 Items: 3 pages
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        ticks: list[tuple[str, int, int]] = []
        rep = sync_site(store, "rockies", progress=lambda *a: ticks.append(a), policy=FAST)
        assert rep.ok and sorted(rep.added) == sorted(it["id"] for it in items)
        assert rep.already == 0 and rep.skipped == ()
        assert ticks[-1] == ("sync landsat", 12, 12)
        assert len([r for r in stac.proxy.requests if r.path == "/search"]) >= 3
        scenes = store.scenes("rockies")
        assert len(scenes) == 12
        s = scenes[0]
        assert s.sensor == "landsat" and s.platform in ("landsat-5", "landsat-7")
        assert s.band_names == ["red", "nir", "swir16"]
        assert [m.kind for m in s.masks] == ["qa_pixel"]
        red = s.band("red")
        assert (red.scale, red.offset, red.nodata) == (0.0001, 0.0, -9999.0)  # Item's own
        stac_prov = s.properties["stac"]
        assert stac_prov["api"] == stac.api_url and stac_prov["collection"] == COLLECTION
        assert stac_prov["item"] == s.id and stac_prov["assets"]["red"].endswith("_red.tif")
        assert stac_prov["properties"]["proj:epsg"] == 32613
        assert stac_prov["properties"]["eo:cloud_cover"] >= 0
        assert s.source.endswith(f"/collections/{COLLECTION}/items/{s.id}")
        for f in s.files:  # under the home's cache, checksummed, pixels as served
            p = Path(f.path)
            assert p.is_relative_to(home / "cache" / "rockies" / s.id)
            import hashlib
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256
        data = need_shared("landsat_timeseries_colorado")
        with rasterio.open(red.path) as ds, \
                rasterio.open(data / s.id / f"{s.id}_b3.tif") as src:
            col, row, w, h = s.properties["stac"]["windows"]["red"]
            window = rasterio.windows.Window(col, row, w, h)
            assert np.array_equal(ds.read(1), src.read(1, window=window))
            assert ds.transform == src.window_transform(window) and ds.crs == src.crs

        # Re-sync: no Item is read again, no pixel byte is served.
        stac.files.reset_log()
        again = sync_site(store, "rockies", policy=FAST)
        assert again.ok and again.added == () and again.already == 12
        assert stac.files.requests == []

    # Offline: the services are gone (API stopped, assets refused); run works from the cache.
    stac.api.stop()
    stac.proxy.plan.not_found("/files/")
    from sitewatch.watch.pipeline import RunParams, run_site

    with open_store(home) as store:
        run = run_site(store, "rockies", RunParams(method="ratio"))
        assert run.count("failed") == 0 and run.count("first") == 1
        assert len(run.processed) == 12
        down = sync_site(store, "rockies", policy=FAST)
        assert not down.ok and down.failed[0].item is None
        assert stac.api_url in down.failed[0].reason and "HTTP 502" in down.failed[0].reason
        assert len(store.scenes("rockies")) == 12


def test_sync_cli_json_and_summary(stac, home):
    from click.testing import CliRunner

    from sitewatch.cli.main import cli

    items = colorado(stac, limit=3)
    load(stac, items)
    with open_store(home) as store:
        store.put_site(site_over(items[0]), "file")
    run = CliRunner().invoke(cli, ["--home", str(home), "source", "add", "rockies", "--preset",
                                   "landsat-c2-l2", "--stac", stac.api_url, "--max-cloud",
                                   "100"])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(cli, ["--home", str(home), "sync", "rockies", "--json"])
    assert run.exit_code == 0, run.output
    got = json.loads(run.output)
    assert len(got["added"]) == 3 and got["ok"] and got["summary"].startswith("sync rockies")
    run = CliRunner().invoke(cli, ["--home", str(home), "sync", "rockies"])
    assert run.exit_code == 0
    assert "0 added, 3 already, 0 skipped, 0 failed (1 source)" in run.output


def test_sync_date_range_and_max_cloud(stac, home):
    items = colorado(stac, limit=20)
    load(stac, items)

    start, end = datetime(2008, 6, 1), datetime(2008, 9, 30)
    want = [it["id"] for it in items
            if "2008-06-01" <= it["properties"]["datetime"][:10] <= "2008-09-30"
            and it["properties"]["eo:cloud_cover"] <= 20]
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]), max_cloud=20)
        rep = sync_site(store, "rockies", start=start, end=end, policy=FAST)
        assert sorted(rep.added) == sorted(want) and want


# --------------------------------------------------------------------------- faults


def test_server_down_is_one_line_naming_the_api(stac, home):
    items = colorado(stac, limit=2)
    load(stac, items)
    with open_store(home) as store:
        src = add_landsat(store, stac, site_over(items[0]))
        store.remove_source("rockies", src.name)
        dead = f"http://127.0.0.1:{_free_port()}/v1"
        store.add_source(Source("rockies", "dead", dead, COLLECTION, preset="landsat-c2-l2"))
        rep = sync_site(store, "rockies", policy=FAST)
    (note,) = rep.failed
    assert note.source == "dead" and note.item is None and "\n" not in note.reason
    assert dead in note.reason and "connection refused" in note.reason
    assert rep.summary().endswith(f"dead: {note.reason}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_500_retried_then_budget_exhausted(stac, home):
    items = colorado(stac, limit=3)
    load(stac, items)
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        rule = stac.proxy.plan.fail(500, times=2, match="/search")
        rep = sync_site(store, "rockies", policy=FAST)  # 2 failures, 2 retries: succeeds
        assert rep.ok and len(rep.added) == 3 and rule.hits == 2
        store.remove_scene("rockies", rep.added[0])
        stac.proxy.plan.fail(500, times=None, match="/search")
        rep = sync_site(store, "rockies", policy=FAST)
    (note,) = rep.failed
    assert "HTTP 500 (after 3 tries)" in note.reason and stac.api_url in note.reason


def test_429_with_retry_after_is_honoured(stac, home):
    items = colorado(stac, limit=2)
    load(stac, items)
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        rule = stac.proxy.plan.throttle(retry_after=1, times=1, match="/search")
        rep = sync_site(store, "rockies", policy=FAST)
    assert rep.ok and len(rep.added) == 2 and rule.hits == 1
    statuses = [r.status for r in stac.proxy.requests if r.path == "/search"]
    assert statuses[:2] == [429, 200]


def test_a_page_that_times_out(stac, home):
    items = colorado(stac, limit=2)
    load(stac, items)
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        stac.proxy.plan.stall(60, match="/search", times=None)
        policy = HttpPolicy(read_timeout=0.5, retries=1, backoff=0.0)
        try:
            rep = sync_site(store, "rockies", policy=policy)
        finally:
            stac.proxy.plan.clear()
        assert store.scenes("rockies") == []
    (note,) = rep.failed
    assert "no answer within 0.5 s (after 2 tries)" in note.reason


def test_a_timed_out_page_is_retried(stac, home):
    items = colorado(stac, limit=2)
    load(stac, items)
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        stac.proxy.plan.stall(60, match="/search", times=1)
        rep = sync_site(store, "rockies", policy=HttpPolicy(read_timeout=1, retries=2,
                                                             backoff=0.0))
        stac.proxy.plan.clear()
    assert rep.ok and len(rep.added) == 2


def test_asset_faults_fail_or_skip_that_item_only(stac, home):
    """A missing asset, a 404, a truncated COG, wrong and missing projection, no overlap:
    each Item is failed or skipped with one line; the others are catalogued whole."""
    items = colorado(stac, limit=7)
    site = site_over(items[0])
    ids = [it["id"] for it in items]
    del items[1]["assets"]["red"]  # missing asset
    stac.proxy.plan.not_found(f"/files/landsat/{ids[2]}/{ids[2]}_nir08.tif")  # 404
    items[4]["properties"]["proj:epsg"] = 32614  # wrong projection metadata
    # No projection: the asset is a COG without a CRS.
    nocrs = f"landsat/{ids[5]}/nocrs_red.tif"
    with rasterio.open(stac.files.root / f"landsat/{ids[5]}/{ids[5]}_red.tif") as src:
        arr = src.read(1)
    with rasterio.open(stac.files.root / nocrs, "w", driver="COG", width=arr.shape[1],
                       height=arr.shape[0], count=1, dtype=arr.dtype.name) as ds:
        ds.write(arr, 1)
    items[5]["assets"]["red"]["href"] = stac.asset_href(nocrs)
    items[5]["properties"].pop("proj:epsg")
    # No overlap: the Item is over the site, but its asset's pixels lie 100 km east.
    away = f"landsat/{ids[6]}/away_red.tif"
    with rasterio.open(stac.files.root / f"landsat/{ids[6]}/{ids[6]}_red.tif") as src:
        arr, profile = src.read(1), src.profile
    t = profile["transform"]
    profile.update(driver="COG", transform=rasterio.Affine(t.a, t.b, t.c + 100_000, t.d, t.e,
                                                           t.f))
    for key in ("blockxsize", "blockysize", "tiled", "interleave"):
        profile.pop(key, None)
    with rasterio.open(stac.files.root / away, "w", **profile) as ds:
        ds.write(arr, 1)
    items[6]["assets"]["red"]["href"] = stac.asset_href(away)
    load(stac, items)
    with open_store(home) as store:
        add_landsat(store, stac, site)
        # A truncated COG: the body stops after its header.
        stac.proxy.plan.truncate(f"/files/landsat/{ids[3]}/{ids[3]}_swir16.tif", keep_bytes=600)
        rep = sync_site(store, "rockies", policy=HttpPolicy(retries=0, backoff=0.0))
        catalogued = catalogue(store, "rockies")
    failed = {n.item: n.reason for n in rep.failed}
    skipped = {n.item: n.reason for n in rep.skipped}
    assert "has no asset 'red'" in skipped[ids[1]]
    assert "not found (HTTP 404)" in failed[ids[2]] and "nir08" in failed[ids[2]]
    assert ids[3] in failed and "swir16" in failed[ids[3]]
    assert "not the Item's proj:epsg 32614" in failed[ids[4]]
    assert "no projection" in failed[ids[5]]
    assert "does not cover the site" in skipped[ids[6]]
    assert list(catalogued) == [ids[0]]
    assert all("\n" not in r for r in (*failed.values(), *skipped.values()))
    # Nothing half-stored: no cache folder of a failed or skipped Item is left.
    assert sorted(p.name for p in (home / "cache" / "rockies").iterdir()) == [ids[0]]
    # The next sync tries the failed ones again and does not re-read the skipped ones.
    stac.proxy.plan.clear()
    with open_store(home) as store:
        rep2 = sync_site(store, "rockies", policy=FAST)
    assert sorted(rep2.added) == sorted([ids[2], ids[3]])
    assert rep2.already == 3 and {n.item for n in rep2.failed} == {ids[4], ids[5]}


def test_same_item_twice_is_one_scene(stac, home):
    items = colorado(stac, limit=3)
    load(stac, items)
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        stac.proxy.plan.duplicate_item(match="/search")
        rep = sync_site(store, "rockies", policy=FAST)
        assert rep.ok and len(rep.added) == 3 and len(store.scenes("rockies")) == 3


def test_duplicate_items_across_collections_are_one_scene(stac, home):
    items = colorado(stac, limit=3)
    load(stac, items)
    copies = json.loads(json.dumps(items))
    for it in copies:  # the same acquisitions, republished under other ids
        it["id"] = "mirror-" + it["id"]
        it["properties"]["datetime"] = it["properties"]["datetime"].replace("Z", ".4Z")
    load(stac, copies, "landsat-mirror")
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
        add_landsat(store, stac, site_over(items[0]), name="mirror",
                    collection="landsat-mirror")
        rep = sync_site(store, "rockies", policy=FAST)
        assert sorted(rep.added) == sorted(it["id"] for it in items)
        assert len(rep.skipped) == 3 and all("same acquisition" in n.reason
                                             for n in rep.skipped)
        scenes = store.scenes("rockies")
        assert len(scenes) == 3
        for s in scenes:
            assert s.properties["stac"]["duplicates"] == [
                {"api": stac.api_url, "collection": "landsat-mirror", "item": "mirror-" + s.id}]
        again = sync_site(store, "rockies", policy=FAST)
        assert again.already == 6 and again.added == () and again.skipped == ()


def test_token_header_goes_to_the_api_and_is_never_shown(stac, home, monkeypatch, caplog):
    items = colorado(stac, limit=1)
    load(stac, items)
    monkeypatch.setenv("TEST_STAC_TOKEN", "s3cr3t-token-value")
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]), header_env="TEST_STAC_TOKEN")
        stac.proxy.plan.fail(500, times=None, match="/search")
        import logging
        with caplog.at_level(logging.DEBUG):
            rep = sync_site(store, "rockies", policy=HttpPolicy(retries=0, backoff=0.0))
        listed = store.sources("rockies")
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in rep.summary()
    assert listed[0].header_env == "TEST_STAC_TOKEN"
    db = (home / "sitewatch.db").read_bytes()
    assert b"s3cr3t" not in db


# --------------------------------------------------------------------------- interruption

_SYNC = """
import sys
from sitewatch.sources.access import HttpPolicy
from sitewatch.sources.sync import sync_site
from sitewatch.store import Store
with Store.open_home(sys.argv[1]) as store:
    print(sync_site(store, "rockies", policy=HttpPolicy(backoff=0.0)).summary())
"""


def test_sync_killed_at_random_points_resumes_to_the_same_catalogue(stac, home, tmp_path):
    items = colorado(stac, limit=10)
    load(stac, items)
    with open_store(tmp_path / "clean") as store:
        add_landsat(store, stac, site_over(items[0]))
        assert sync_site(store, "rockies", policy=FAST).ok
        clean = catalogue(store, "rockies")
    with open_store(home) as store:
        add_landsat(store, stac, site_over(items[0]))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    rng = random.Random(15)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _SYNC, str(home)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))  # a random point: not an assertion on time
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with open_store(home) as store:  # whatever is stored is whole
            for s in store.scenes("rockies"):
                assert all(Path(f.path).is_file() for f in s.files)
    with open_store(home) as store:
        rep = sync_site(store, "rockies", policy=FAST)
        assert rep.ok
        assert catalogue(store, "rockies") == clean
    leftovers = [p for p in (home / "cache").rglob("*.part")]
    assert leftovers == []


def test_sync_sentinel2_and_sentinel1_presets(stac, home):
    from stac_items import sentinel1_rtc_items, sentinel2_items

    s2 = sentinel2_items(stac.files.root, stac.asset_href, data=need_shared("s2_l1c_single"))
    s1 = sentinel1_rtc_items(stac.files.root, stac.asset_href, seed=3, n_dates=4, size=64,
                             change_after=2)
    load(stac, s2, "sentinel-2-l2a")
    load(stac, s1, "sentinel-1-rtc")
    with open_store(home) as store:
        for items, preset, coll in ((s2, "s2-l2a", "sentinel-2-l2a"),
                                    (s1, "s1-rtc", "sentinel-1-rtc")):
            site = site_over(items[0], site_id=preset, shrink=0.3)
            store.put_site(site, "file")
            store.add_source(Source(site.id, preset, stac.api_url, coll, preset=preset))
            rep = sync_site(store, site.id, policy=FAST)
            assert rep.ok and len(rep.added) == len(items), rep.summary()
        (opt,) = store.scenes("s2-l2a")
        assert opt.sensor == "sentinel-2" and [m.kind for m in opt.masks] == ["scl"]
        assert opt.band_names == ["blue", "green", "red", "nir", "swir16", "swir22"]
        assert opt.band("swir16").resolution == 20 and opt.resolution == 10
        sar = store.scenes("s1-rtc")
        assert [s.band_names for s in sar] == [["vv", "vh"]] * 4
        for s, it in zip(sar, sorted(s1, key=lambda i: i["properties"]["datetime"]),
                         strict=True):
            p = it["properties"]
            assert s.sensor == "sentinel-1" and s.properties["sar_units"] == "power"
            assert s.properties["polarisations"] == p["sar:polarizations"]
            assert s.properties["orbit_direction"] == p["sat:orbit_state"]
            assert s.properties["relative_orbit"] == p["sat:relative_orbit"]


def test_sync_reads_a_small_fraction_of_a_sentinel2_sized_asset(stac, home, big_s2_asset):
    """A 6 km site on a 10980 x 10980 px asset: only the header and the tiles under the site's
    window are fetched (the file server's own count of body bytes sent)."""
    from affine import Affine

    from sitewatch.sites.site import square_boundary
    from stac_items import item_dict

    href = stac.asset_href(big_s2_asset)
    t = Affine(10, 0, 600_000.0, 0, -10, 4_400_040.0)
    asset = {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
             "roles": ["data"]}
    when = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    item = item_dict("S2X_big", when, crs="EPSG:32651", transform=t, shape=(10980, 10980),
        properties={"platform": "sentinel-2b", "eo:cloud_cover": 1.0},
        assets={"red": asset, "nir": asset}, extensions=())
    load(stac, [item], "sentinel-2-l2a")
    site = bare_site("six", square_boundary(124.705, 39.66, 3000), "6 km")
    with open_store(home) as store:
        store.put_site(site, "file")
        store.add_source(Source("six", "s2", stac.api_url, "sentinel-2-l2a", preset="s2-l2a"))
        stac.files.reset_log()
        rep = sync_site(store, "six", policy=FAST)
        assert rep.ok and rep.added == ("S2X_big",)
        (s,) = store.scenes("six")
    size = (stac.files.root / big_s2_asset).stat().st_size
    served = stac.files.bytes_served(big_s2_asset) / 2  # two assets, one file
    assert 0 < served < 0.02 * size  # measured: 0.67 %
    w, h = s.width, s.height
    assert 680 <= w <= 700 and 680 <= h <= 700  # 6 km + 2 x 400 m at 10 m
    print(f"bytes per asset: {served:,.0f} of {size:,} ({100 * served / size:.2f} %)")
