"""STAC sources without a server: presets and asset mapping, de-duplication keys, redaction
and credentials, the window cache from a local COG, the Item -> Scene record, the store's
source rows and the CLI's source commands."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box, mapping

from conftest import SOHAE_UTM
from sitewatch.cli.main import cli
from sitewatch.errors import MissingExtraError, SceneError, SourceError
from sitewatch.imagery.geo import to_crs
from sitewatch.sources import access, presets, stac
from sitewatch.sources.cache import NoOverlapError, cache_window, clean_partials
from sitewatch.sources.items import build_scene, item_meta, with_duplicate
from sitewatch.sources.records import ItemNote, Source, SyncReport
from sitewatch.store import Store
from sitewatch.store.schema import SCHEMA_VERSION


def test_presets_map_provider_masks_and_bands():
    s2 = presets.get_preset("s2-l2a")
    assert s2.api == presets.EARTH_SEARCH and s2.collection == "sentinel-2-l2a"
    assert [(m.asset, m.kind) for m in s2.masks] == [("scl", "scl")]
    assert {b.band for b in s2.bands} >= {"blue", "green", "red", "nir", "swir16", "swir22"}
    ls = presets.get_preset("landsat-c2-l2")
    assert ls.signing and (ls.scale, ls.offset) == (2.75e-5, -0.2)
    assert [(m.asset, m.kind) for m in ls.masks] == [("qa_pixel", "qa_pixel")]
    assert ("nir08", "nir") in [(b.asset, b.band) for b in ls.bands]
    for name in ("s1-rtc", "s1-grd"):
        p = presets.get_preset(name)
        assert p.sensor == "sentinel-1" and not p.cloud_cover
        assert [b.band for b in p.bands] == ["vv", "vh"]
    with pytest.raises(SourceError, match="no preset 'x'.*s2-l2a"):
        presets.get_preset("x")


def test_guessed_mapping_from_eo_bands_and_raster_scale():
    item = {"assets": {
        "B4": {"href": "https://h/B4.tif", "type": "image/tiff",
               "eo:bands": [{"common_name": "red"}],
               "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]},
        "B8": {"href": "https://h/B8.tif", "eo:bands": [{"center_wavelength": 0.83}]},
        "qa_pixel": {"href": "https://h/qa.tif"},
        "thumbnail": {"href": "https://h/t.tif", "roles": ["thumbnail"]},
        "metadata": {"href": "https://h/m.xml"}}}
    bands, masks = presets.guess_assets(item)
    assert [(b.asset, b.band) for b in bands] == [("B4", "red"), ("B8", "nir")]
    assert [(m.asset, m.kind) for m in masks] == [("qa_pixel", "qa_pixel")]
    assert presets.scale_offset_nodata(item["assets"]["B4"], None) == (0.0001, -0.1, 0.0)
    assert presets.scale_offset_nodata(item["assets"]["B8"], None) == (None, None, None)
    s2 = presets.PRESETS["s2-l2a"]
    assert presets.scale_offset_nodata({}, s2, {"datetime": "2021-06-01T00:00:00Z"}) == (
        0.0001, 0.0, 0.0)
    assert presets.scale_offset_nodata({}, s2, {"datetime": "2023-06-01T00:00:00Z"}) == (
        0.0001, -0.1, 0.0)


def test_signing_needs_the_extra_only_for_the_preset_catalogue():
    pc = presets.PRESETS["s1-rtc"]
    assert presets.needs_signing(pc, presets.PLANETARY_COMPUTER)
    assert not presets.needs_signing(pc, "http://127.0.0.1:9/stac")
    assert access.url_signer(False)("https://x/a.tif?y=1") == "https://x/a.tif?y=1"
    try:
        import planetary_computer  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"pip install 'sitewatch\[stac-signing\]'"):
            access.url_signer(True)


def test_redaction_and_credentials(monkeypatch):
    assert access.redact("https://me:pw@h.org/x.tif?sv=1&sig=abc: 403") == \
        "https://***@h.org/x.tif?*** 403"
    monkeypatch.setenv("TOK", "abcdef123")
    c = access.credentials("https://api.example.org/v1", "TOK")
    assert c.headers == {"Authorization": "Bearer abcdef123"} and "abcdef" not in repr(c)
    assert c.applies_to("https://api.example.org/files/a.tif")
    assert not c.applies_to("https://elsewhere.org/a.tif")
    assert access.redact("rejected Bearer abcdef123", c.secrets) == "rejected ***"
    monkeypatch.setenv("HDR", "X-Api-Key: k-123456")
    assert access.credentials("https://a.org", "HDR").headers == {"X-Api-Key": "k-123456"}
    monkeypatch.delenv("HDR")
    with pytest.raises(SourceError, match="HDR .* is not set"):
        access.credentials("https://a.org", "HDR")
    with access.gdal_header_file(c, "https://api.example.org/a.tif") as opt:
        path = opt["GDAL_HTTP_HEADER_FILE"]
        with open(path) as f:
            assert f.read() == "Authorization: Bearer abcdef123\n"
    import os
    assert not os.path.exists(path)
    with access.gdal_header_file(c, "https://other.org/a.tif") as opt:
        assert opt == {}


def test_policy_from_env(monkeypatch):
    monkeypatch.setenv(access.TIMEOUT_ENV, "7.5")
    monkeypatch.setenv(access.RETRIES_ENV, "1")
    p = access.HttpPolicy.from_env()
    assert (p.read_timeout, p.retries) == (7.5, 1)
    monkeypatch.setenv(access.RETRIES_ENV, "many")
    with pytest.raises(SourceError, match="SITEWATCH_STAC_RETRIES"):
        access.HttpPolicy.from_env()


def _item(item_id, when, platform="landsat-7", tile=("035", "032"), geom=None, **props):
    g = geom or box(-106.92, 40.28, -106.90, 40.30)
    return {"id": item_id, "geometry": mapping(g),
            "properties": {"datetime": when, "platform": platform,
                           "landsat:wrs_path": tile[0], "landsat:wrs_row": tile[1], **props}}


def test_duplicate_acquisitions_by_tile_or_footprint():
    a = _item("A", "2008-04-27T17:30:00.12Z")
    b = _item("B", "2008-04-27T17:30:00.98Z")
    c = _item("C", "2008-04-27T17:30:01Z")
    other_tile = _item("D", "2008-04-27T17:30:00Z", tile=("035", "033"))
    key = stac.acquisition_key
    fp = stac.footprint
    assert stac.same_acquisition(key(a), fp(a), key(b), fp(b))
    assert not stac.same_acquisition(key(a), fp(a), key(c), fp(c))  # another second
    assert not stac.same_acquisition(key(a), fp(a), key(other_tile), fp(other_tile))
    # Without tiles: the footprints decide.
    n1 = {"id": "n1", "geometry": a["geometry"], "properties": {"datetime": "2020-01-01T00:00:00Z",
                                                                "platform": "x"}}
    n2 = {**n1, "id": "n2"}
    far = {**n1, "id": "n3", "geometry": mapping(box(0, 0, 0.01, 0.01))}
    assert stac.same_acquisition(key(n1), fp(n1), key(n2), fp(n2))
    assert not stac.same_acquisition(key(n1), fp(n1), key(far), fp(far))
    assert [it["id"] for it in stac.unique_items([a, b, a, c])] == ["A", "B", "C"]


def _cog(path, shape=(200, 300), crs="EPSG:32651", nodata=0, dtype="uint16", seed=1):
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10000, size=shape).astype(dtype)
    t = Affine(10, 0, SOHAE_UTM[0] - 1500, 0, -10, SOHAE_UTM[1] + 1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=shape[1], height=shape[0], count=1,
                       dtype=dtype, crs=crs, transform=t, nodata=nodata) as ds:
        ds.write(data, 1)
    return data, t


def _site_geom(half=150.0):
    x, y = SOHAE_UTM
    return to_crs(box(x - half, y - half, x + half, y + half), "EPSG:32651", "EPSG:4326")


def test_cache_window_crops_on_the_assets_own_grid(tmp_path):
    data, t = _cog(tmp_path / "a.tif")
    c = cache_window(str(tmp_path / "a.tif"), _site_geom(), tmp_path / "c" / "red.tif",
                     name="a", env=access.gdal_options(access.HttpPolicy()),
                     expect_epsg="EPSG:32651", margin_m=50)
    col, row, w, h = c.window
    assert 40 <= w <= 42 and 40 <= h <= 42 and c.resolution == 10  # 300 m + 2 x 50 m
    with rasterio.open(c.path) as ds:
        assert np.array_equal(ds.read(1), data[row:row + h, col:col + w])
        assert ds.transform == t @ Affine.translation(col, row) and ds.nodata == 0
    from rio_cogeo.cogeo import cog_validate
    assert cog_validate(str(c.path))[0]
    with pytest.raises(SceneError, match="not the Item's proj:epsg 32652"):
        cache_window(str(tmp_path / "a.tif"), _site_geom(), tmp_path / "c" / "x.tif",
                     name="a", env={}, expect_epsg=32652)
    far = to_crs(box(0, 0, 100, 100), "EPSG:32651", "EPSG:4326")
    with pytest.raises(NoOverlapError, match="does not cover the site"):
        cache_window(str(tmp_path / "a.tif"), far, tmp_path / "c" / "y.tif", name="a", env={})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["red.tif"]


def test_clean_partials_removes_dead_writers_files_only(tmp_path):
    import os
    dead = tmp_path / "s" / ".red.tif.999999999-abcd1234.part"
    live = tmp_path / "s" / f".nir.tif.{os.getpid()}-abcd1234.part"
    dead.parent.mkdir()
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    assert clean_partials(tmp_path) == 1
    assert not dead.exists() and live.exists()


def test_item_to_scene_with_provenance_and_sentinel1_keys(tmp_path):
    _cog(tmp_path / "vv.tif", dtype="float32", nodata=None)
    src = Source("sohae", "s1", "https://user:pw@api.example.org/v1", "sentinel-1-rtc",
                 preset="s1-rtc")
    item = {"id": "S1A_IW_GRDH_1SDV_20240105", "geometry": mapping(_site_geom(2000)),
            "assets": {"vv": {"href": "https://blob.example/vv.tif?sig=SECRET"}},
            "properties": {"datetime": "2024-01-05T21:30:15Z", "platform": "sentinel-1a",
                           "sar:polarizations": ["VV", "VH"], "sat:orbit_state": "ascending",
                           "sat:relative_orbit": 127.0, "proj:epsg": 32651, "ignored": 1}}
    meta = item_meta(item, src)
    preset = presets.PRESETS["s1-rtc"]
    cached = {"vv": cache_window(str(tmp_path / "vv.tif"), _site_geom(), tmp_path / "c/vv.tif",
                                 name="vv", env={})}
    scene = build_scene("sohae", "S1A_x", src, preset, item, meta, preset.bands, (), cached,
                        sensor="sentinel-1")
    assert scene.band_names == ["vv"] and scene.sensor == "sentinel-1"
    assert scene.properties["polarisations"] == ["VV", "VH"]
    assert scene.properties["orbit_direction"] == "ascending"
    assert scene.properties["relative_orbit"] == 127
    assert scene.properties["sar_units"] == "power"
    prov = scene.properties["stac"]
    assert prov["api"] == "https://***@api.example.org/v1"
    assert prov["assets"] == {"vv": "https://blob.example/vv.tif?***"}
    assert "ignored" not in prov["properties"] and prov["properties"]["sat:relative_orbit"]
    assert "SECRET" not in json.dumps(scene.to_dict()) and "pw" not in scene.source
    dup = with_duplicate(scene, src, {"id": "other"})
    assert dup.properties["stac"]["duplicates"] == [
        {"api": "https://***@api.example.org/v1", "collection": "sentinel-1-rtc",
         "item": "other"}]


def test_source_record_checks():
    with pytest.raises(SourceError, match="not an http"):
        Source("s", "n", "ftp://x", "c")
    with pytest.raises(SourceError, match="not a plain name"):
        Source("s", "../n", "https://x", "c")
    with pytest.raises(SourceError, match="percentage"):
        Source("s", "n", "https://x", "c", max_cloud=120)


def test_sync_report_summary():
    r = SyncReport("sohae", ("a", "b"), ("x",), 4, (ItemNote("a", "i", "no overlap"),),
                   (ItemNote("b", None, "STAC API https://h: HTTP 500 (after 5 tries)"),))
    assert r.summary() == ("sync sohae: 1 added, 4 already, 1 skipped, 1 failed (2 sources); "
                           "b: STAC API https://h: HTTP 500 (after 5 tries)")
    assert not r.ok and r.to_dict()["failed"][0]["item"] is None


def test_store_sources_and_migration_from_v6(tmp_path):
    db = tmp_path / "sitewatch.db"
    with Store.open_path(db) as store:
        store.use_site("sohae")
        s = store.add_source(Source("sohae", "s2", presets.EARTH_SEARCH, "sentinel-2-l2a",
                                    {"s2:mgrs_tile": {"eq": "51SUD"}}, 20, "s2-l2a", "TOK"))
        assert s.created_at and store.sources("sohae") == [s]
        with pytest.raises(SourceError, match="already has a source 's2'"):
            store.add_source(Source("sohae", "s2", presets.EARTH_SEARCH, "x"))
        assert store.remove_source("sohae", "s2") and not store.remove_source("sohae", "s2")
    # An older catalogue (version 6, without the tables) is migrated on opening.
    con = sqlite3.connect(db)
    con.execute("DROP TABLE sources")
    con.execute("DROP TABLE stac_items")
    con.execute("UPDATE meta SET value='6' WHERE key='schema_version'")
    con.commit()
    con.close()
    with Store.open_path(db) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.sources() == []


def test_cli_source_commands_on_a_builtin_site(tmp_path):
    home = ["--home", str(tmp_path)]
    run = CliRunner().invoke(cli, [*home, "source", "add", "sohae", "--preset", "s2-l2a",
                                   "--max-cloud", "30", "--query", "s2:mgrs_tile=51SUD"])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(cli, [*home, "source", "add", "sohae", "--preset", "s1-rtc"])
    assert run.exit_code == 0 and "stac-signing" in run.output
    run = CliRunner().invoke(cli, [*home, "source", "list", "sohae", "--json"])
    rows = json.loads(run.output)
    assert [r["name"] for r in rows] == ["s1-rtc", "s2-l2a"]
    assert rows[1]["query"] == {"s2:mgrs_tile": {"eq": "51SUD"}} and rows[1]["max_cloud"] == 30
    run = CliRunner().invoke(cli, [*home, "source", "add", "sohae", "--stac", "https://x"])
    assert run.exit_code == 2 and "--collection" in run.output
    run = CliRunner().invoke(cli, [*home, "source", "remove", "sohae", "s1-rtc", "--yes"])
    assert run.exit_code == 0
    run = CliRunner().invoke(cli, [*home, "source", "remove", "sohae", "nope", "--yes"])
    assert run.exit_code == 1 and "has no source 'nope'" in run.output
    run = CliRunner().invoke(cli, [*home, "sync", "nosuchsite"])
    assert run.exit_code == 1 and "no site 'nosuchsite'" in run.output
