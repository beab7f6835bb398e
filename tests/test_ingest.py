import sqlite3
from datetime import UTC, datetime

import numpy as np
import pytest
from affine import Affine

from conftest import SOHAE_UTM, need_shared, rng_image, write_tif
from sitewatch.errors import SceneError, SiteError, StoreError
from sitewatch.imagery.ingest import ingest
from sitewatch.store import Store


def series(folder, n=3, offset=(0.0, 0.0)):
    """n dated 4-band scenes at Sohae, one file each."""
    t = Affine(10, 0, SOHAE_UTM[0] - 500 + offset[0], 0, -10, SOHAE_UTM[1] + 500 + offset[1])
    return [
        write_tif(folder / f"scene_{i}.tif", rng_image(i), transform=t,
                  tags={"ACQUISITION_TIME": f"2024-0{i + 1}-01T02:00:00Z"},
                  descriptions=["blue", "green", "red", "nir"])
        for i in range(n)
    ]


@pytest.fixture
def store(tmp_path):
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as s:
        yield s


def test_ingest_is_idempotent_and_detects_changes(store, tmp_path):
    files = series(tmp_path / "imgs")
    r = ingest(store, [tmp_path / "imgs"], "sohae")
    assert r.site_status == "builtin" and r.count("added") == 3
    assert [s.id for s in store.scenes("sohae")] == ["scene_0", "scene_1", "scene_2"]
    assert store.get_site("sohae").name == "Sohae Satellite Launching Station"

    again = ingest(store, [tmp_path / "imgs"], "sohae")
    assert again.count("unchanged") == 3 and again.count("added") == 0

    # Rewrite one file with other pixels: detected by checksum, record updated in place.
    old = store.get_scene("sohae", "scene_1").checksum
    write_tif(files[1], rng_image(99), transform=Affine(10, 0, SOHAE_UTM[0] - 500, 0, -10,
                                                        SOHAE_UTM[1] + 500),
              tags={"ACQUISITION_TIME": "2024-02-01T02:00:00Z"})
    r = ingest(store, [tmp_path / "imgs"], "sohae")
    assert r.count("updated") == 1 and r.count("unchanged") == 2
    assert store.get_scene("sohae", "scene_1").checksum != old
    assert len(store.scenes("sohae")) == 3

    # The same bytes under another name are a duplicate, not a new scene.
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "scene_0.tif").write_bytes(files[0].read_bytes())
    r = ingest(store, [tmp_path / "copy"], "sohae")
    assert r.count("duplicate") == 1 and len(store.scenes("sohae")) == 3


def test_new_site_is_made_from_footprints(store, tmp_path):
    series(tmp_path / "imgs", 2)
    r = ingest(store, [tmp_path / "imgs"], "newsite")
    assert r.site_status == "created" and "bare site" in r.site_note
    site = store.get_site("newsite")
    assert site.parts == () and all(s.footprint.within(site.boundary.buffer(1e-6))
                                    for s in store.scenes("newsite"))


def test_no_overlap_stores_nothing(store, tmp_path):
    series(tmp_path / "far", 2, offset=(50_000, 0))  # 50 km east of the site
    with pytest.raises(SceneError, match=r"scene_0.tif.*does not overlap site 'sohae'"):
        ingest(store, [tmp_path / "far"], "sohae")
    assert store.get_site("sohae") is None and store.list_sites() == []


def test_corrupt_file_in_folder_stores_nothing(store, tmp_path):
    series(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "broken.tif").write_text("garbage")
    with pytest.raises(SceneError, match="broken.tif: not a readable raster"):
        ingest(store, [tmp_path / "imgs"], "sohae")
    assert store.list_sites() == []


def test_undated_images_in_a_folder_are_skipped_but_named_ones_fail(store, tmp_path):
    series(tmp_path / "imgs", 1)
    write_tif(tmp_path / "imgs" / "label.tif", np.zeros((100, 100), np.uint8))
    r = ingest(store, [tmp_path / "imgs"], "sohae")
    assert r.count("added") == 1 and r.skipped[0][0].endswith("label.tif")
    with pytest.raises(SceneError, match="label.tif: acquisition time unknown"):
        ingest(store, [tmp_path / "imgs" / "label.tif"], "sohae")
    r = ingest(store, [tmp_path / "imgs" / "label.tif"], "sohae",
               time=datetime(2024, 5, 1, tzinfo=UTC))
    assert r.count("added") == 1


def test_interrupted_ingest_resumes(store, tmp_path):
    series(tmp_path / "imgs", 3)

    def stop_after_first(stage, done, total):
        if stage == "store" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(store, [tmp_path / "imgs"], "sohae", progress=stop_after_first)
    assert len(store.scenes("sohae")) == 1  # whole scenes only
    r = ingest(store, [tmp_path / "imgs"], "sohae")
    assert r.count("unchanged") == 1 and r.count("added") == 2
    assert len(store.scenes("sohae")) == 3


def test_schema_version_guards(tmp_path):
    db = tmp_path / "sitewatch.db"
    Store.open_path(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        Store.open_path(db)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a sitewatch catalogue"):
        Store.open_path(other)
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all" * 100)
    with pytest.raises(StoreError, match="not a usable database"):
        Store.open_path(junk)


def test_unknown_site_from_pixel_images_needs_a_site(store, tmp_path):
    p = write_tif(tmp_path / "x.png", rng_image(1, 3).astype(np.uint8), crs=None, driver="PNG")
    with pytest.raises(SiteError, match="no georeferencing"):
        ingest(store, [p], "pixels", time=datetime(2024, 1, 1, tzinfo=UTC))


# ----------------------------------------------------------------------- real data


def test_real_oscd_cities(store):
    root = need_shared("oscd")
    cities = sorted(p for p in root.iterdir() if (p / "imgs_1").is_dir())
    assert len(cities) == 10
    for city in cities:
        r = ingest(store, [city], city.name)
        assert r.count("added") == 2, city.name
        expected = [line.split(": ")[1].strip() for line in
                    (city / "dates.txt").read_text().splitlines() if ": " in line]
        scenes = store.scenes(city.name)
        assert len(scenes) == 2
        for sc in scenes:
            assert len(sc.bands) == 13 and sc.sensor == "sentinel-2"
        got = sorted(sc.acquired.strftime("%Y%m%d") for sc in scenes)
        # dates.txt is wrong for a few date-2 images; the file names are right (data README).
        assert got[0] == expected[0], city.name
        assert r.skipped  # the change-map labels in cm/ are not scenes


def test_real_colorado_series(store):
    root = need_shared("landsat_timeseries_colorado")
    r = ingest(store, [root], "colorado")
    assert r.count("added") == 105 and r.site_status == "created"
    scenes = store.scenes("colorado")
    assert len({s.acquired for s in scenes}) == 105
    assert all(s.masks and s.masks[0].kind == "fmask" for s in scenes)
    assert all(s.band_names == ["red", "nir", "swir16"] for s in scenes)
    assert scenes[0].acquired.year == 2008 and scenes[-1].acquired.year == 2013
    assert ingest(store, [root], "colorado").count("unchanged") == 105


def test_real_landsat_pairs(store):
    root = need_shared("landsat_pairs")
    for city, days in (("Taizhou", ["2000-03-17", "2003-02-06"]),
                       ("Nanjing", ["2000-05-03", "2002-07-12"])):
        ingest(store, [root / city], city.lower())
        scenes = store.scenes(city.lower())
        assert [s.acquired.date().isoformat() for s in scenes] == days
        assert all(len(s.bands) == 6 and s.resolution == 30 for s in scenes)
        assert scenes[0].band_names[:4] == ["blue", "green", "red", "nir"]


def test_unchanged_sources_are_recognised_without_raster_work(store, tmp_path, monkeypatch):
    series(tmp_path / "imgs", 3)
    ingest(store, [tmp_path / "imgs"], "sohae")
    import sitewatch.imagery.ingest as ing

    def boom(*a, **k):
        raise AssertionError("read_scene called for an unchanged file")

    monkeypatch.setattr(ing, "read_scene", boom)
    r = ingest(store, [tmp_path / "imgs"], "sohae")
    assert r.count("unchanged") == 3
    # A changed file still goes through the full read (and so fails here, as it should).
    write_tif(tmp_path / "imgs" / "scene_2.tif", rng_image(42),
              tags={"ACQUISITION_TIME": "2024-03-01T02:00:00Z"})
    with pytest.raises(AssertionError, match="read_scene called"):
        ingest(store, [tmp_path / "imgs"], "sohae")


def test_duplicates_in_one_batch_moves_and_corrections(store, tmp_path):
    a = series(tmp_path / "a", 1)[0]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "copy.tif").write_bytes(a.read_bytes())
    r = ingest(store, [tmp_path / "a", tmp_path / "b"], "sohae")
    assert r.count("added") == 1 and r.count("duplicate") == 1
    # The data moves: the record follows it instead of calling the new place a duplicate.
    moved = tmp_path / "moved"
    moved.mkdir()
    a.rename(moved / a.name)
    (tmp_path / "b" / "copy.tif").unlink()
    r = ingest(store, [moved], "sohae")
    assert r.count("updated") == 1 and "moved" in r.items[0].note
    (only,) = store.scenes("sohae")
    assert only.source == str((moved / a.name).resolve())
    # A corrected time is a change to the record, not "unchanged".
    p = write_tif(tmp_path / "nt" / "undated.tif", rng_image(7), descriptions=["red"])
    ingest(store, [p], "sohae", time=datetime(2020, 5, 1, tzinfo=UTC))
    r = ingest(store, [p], "sohae", time=datetime(2021, 6, 1, tzinfo=UTC))
    assert r.count("updated") == 1
    assert store.get_scene("sohae", "undated").acquired.year == 2021


def test_home_with_url_characters(tmp_path):
    home = tmp_path / "we?ird%41"
    from sitewatch.sites.site import builtin_site

    with Store.open_home(home) as s:
        s.put_site(builtin_site("sohae"), "builtin")
    assert (home / "sitewatch.db").exists()
    assert not (tmp_path / "we").exists()


def test_store_clash_is_a_clear_error(store, tmp_path):
    series(tmp_path / "imgs", 1)
    ingest(store, [tmp_path / "imgs"], "sohae")
    sc = store.scenes("sohae")[0]
    from dataclasses import replace

    # Another writer inserted the same source under another id between our read and write.
    with pytest.raises(StoreError, match="another sitewatch may be writing"):
        store.put_scene(replace(sc, id="other-id"))
    assert len(store.scenes("sohae")) == 1


def test_time_in_a_walk_dates_only_a_folder_of_undated_images(store, tmp_path):
    series(tmp_path / "mixed", 1)
    write_tif(tmp_path / "mixed" / "label.tif", np.zeros((100, 100), np.uint8))
    r = ingest(store, [tmp_path / "mixed"], "sohae", time=datetime(2024, 5, 1, tzinfo=UTC))
    assert r.count("added") == 1 and r.skipped  # the label is not dated with --time
    for i in range(2):
        write_tif(tmp_path / "plain" / f"img{i}.tif", rng_image(i), descriptions=["red"])
    r = ingest(store, [tmp_path / "plain"], "sohae", time=datetime(2024, 6, 1, tzinfo=UTC))
    assert r.count("added") == 2 and not r.skipped


def test_v1_catalogue_is_migrated_and_registrations_recorded(tmp_path):
    from sitewatch.imagery.coregister import Registration, Shift
    from sitewatch.store import SCHEMA_VERSION
    from sitewatch.watch.records import SceneRegistration

    db = tmp_path / "old.db"
    series(tmp_path / "imgs", 2)
    with Store.open_path(db) as s:
        ingest(s, [tmp_path / "imgs"], "sohae")
    # Make it a version-1 catalogue, as sitewatch 0.1 wrote it.
    con = sqlite3.connect(db)
    for table in ("registrations", "grids", "observations", "processed", "alerts", "runs",
                  "reports", "evidence", "notes"):
        con.execute(f"DROP TABLE {table}")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    with Store.open_path(db) as s:
        assert s.schema_version() == SCHEMA_VERSION >= 5
        assert s.alerts("sohae") == [] and s.last_run("sohae") is None
        assert s.reports("sohae") == [] and s.evidence("sohae") == []
        assert len(s.scenes("sohae")) == 2  # nothing lost
        reg = SceneRegistration.of("sohae", "scene_1", "10m", "scene_0", Registration(
            Shift(0.5, -1.25, 0.2), 0.8, 0.1, (), "ok", "fine"), applied=True)
        s.put_registration(reg)
        s.put_registration(reg)  # replaced, not doubled
        (row,) = s.registrations("sohae")
        assert (row.dy, row.dx, row.status, row.applied) == (0.5, -1.25, "ok", True)
        assert s.delete_scene("sohae", "scene_1") and s.registrations("sohae") == []


# --------------------------------------------------------------------------- Sentinel-1

_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" xmlns:safe="http://www.esa.int/safe/sentinel-1.0"
  xmlns:s1="http://www.esa.int/safe/sentinel-1.0/sentinel-1"
  xmlns:s1sarl1="http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1">
 <metadataSection>
  <metadataObject ID="platform"><metadataWrap><xmlData>
   <safe:platform><safe:familyName>SENTINEL-1</safe:familyName><safe:number>A</safe:number>
   </safe:platform></xmlData></metadataWrap></metadataObject>
  <metadataObject ID="measurementOrbitReference"><metadataWrap><xmlData>
   <safe:orbitReference>
    <safe:orbitNumber type="start">46629</safe:orbitNumber>
    <safe:orbitNumber type="stop">46629</safe:orbitNumber>
    <safe:relativeOrbitNumber type="start">{rel}</safe:relativeOrbitNumber>
    <safe:relativeOrbitNumber type="stop">{rel}</safe:relativeOrbitNumber>
    <safe:extension><s1:orbitProperties><s1:pass>{pass_}</s1:pass></s1:orbitProperties>
    </safe:extension>
   </safe:orbitReference></xmlData></metadataWrap></metadataObject>
  <metadataObject ID="acquisitionPeriod"><metadataWrap><xmlData>
   <safe:acquisitionPeriod><safe:startTime>2023-01-05T21:35:10.123456</safe:startTime>
   </safe:acquisitionPeriod></xmlData></metadataWrap></metadataObject>
  <metadataObject ID="generalProductInformation"><metadataWrap><xmlData>
   <s1sarl1:standAloneProductInformation>
    <s1sarl1:productType>GRD</s1sarl1:productType>
    <s1sarl1:transmitterReceiverPolarisation>VV</s1sarl1:transmitterReceiverPolarisation>
    <s1sarl1:transmitterReceiverPolarisation>VH</s1sarl1:transmitterReceiverPolarisation>
   </s1sarl1:standAloneProductInformation></xmlData></metadataWrap></metadataObject>
 </metadataSection>
</xfdu:XFDU>
"""


def _write_safe(root, rel=92, pass_="DESCENDING"):
    """A small Sentinel-1 GRD .SAFE: manifest, two georeferenced measurement files (uint16
    amplitude DN), a quick-look and an annotation file that are not scenes."""
    name = "S1A_IW_GRDH_1SDV_20230105T213510_20230105T213535_046629_0596A8_1A2B.SAFE"
    safe = root / name
    (safe / "measurement").mkdir(parents=True)
    (safe / "annotation").mkdir()
    (safe / "preview").mkdir()
    (safe / "manifest.safe").write_text(_MANIFEST.format(rel=rel, pass_=pass_))
    (safe / "annotation" / "s1a-iw-grd-vv.xml").write_text("<product/>")
    write_tif(safe / "preview" / "quick-look.png", np.zeros((3, 8, 8), np.uint8), crs=None,
              driver="PNG")
    rng = np.random.default_rng(1)
    for pol in ("vv", "vh"):
        dn = (np.sqrt(rng.gamma(4.5, 1e4 / 4.5, (64, 64))) + 1).astype(np.uint16)
        write_tif(safe / "measurement" / (f"s1a-iw-grd-{pol}-20230105t213510-20230105t213535-"
                                          "046629-0596a8-001.tiff"), dn)
    return safe


def test_sentinel1_safe_reads_orbit_and_polarisation_from_its_manifest(store, tmp_path):
    safe = _write_safe(tmp_path / "in")
    ingest(store, [tmp_path / "in"], "s1site")
    (sc,) = store.scenes("s1site")
    assert sc.sensor == "sentinel-1" and sc.platform == "S1A"
    assert sc.id == "S1A_20230105_046629"
    assert sc.acquired == datetime(2023, 1, 5, 21, 35, 10, tzinfo=UTC)
    assert sc.band_names == ["vh", "vv"]
    assert sc.properties["polarisations"] == ["VH", "VV"]
    # From the manifest, not derived: 92 is not (46629 - 73) % 175 + 1.
    assert sc.properties["relative_orbit"] == 92
    assert sc.properties["orbit_direction"] == "descending"
    assert sc.properties["sar_units"] == "amplitude"  # GRD DN: squared on loading
    assert not any("solar time" in w or "from absolute orbit" in w for w in sc.warnings)
    assert all(str(safe / "measurement") in f.path for f in sc.files)


def test_sentinel1_safe_without_manifest_fields_derives_them_and_says_so(store, tmp_path):
    safe = _write_safe(tmp_path / "in")
    text = (safe / "manifest.safe").read_text()
    cut = text.split("<safe:relativeOrbitNumber")[0] + text.split("</safe:relativeOrbitNumber>"
                                                                 )[-1]
    (safe / "manifest.safe").write_text(cut.replace("<s1:pass>DESCENDING</s1:pass>", ""))
    ingest(store, [tmp_path / "in"], "s1site")
    (sc,) = store.scenes("s1site")
    assert sc.properties["relative_orbit"] == (46629 - 73) % 175 + 1
    assert sc.properties["orbit_direction"] == "descending"  # 21:35 UTC at 124.7 E: ~06 h
    assert any("from absolute orbit 46629" in w for w in sc.warnings)
    assert any("local solar time" in w for w in sc.warnings)


def test_sentinel1_polarisation_files_group_into_one_scene(store, tmp_path):
    rng = np.random.default_rng(2)
    stem = "S1A_IW_GRDH_1SDV_20230117T213510_20230117T213535_046804_0596A8_1A2B"
    for pol in ("VV", "VH"):
        write_tif(tmp_path / "a" / f"{stem}_{pol}.tif",
                  rng.gamma(4.5, 0.02, (64, 64)).astype(np.float32))
    # A folder named for its product, with bare vv.tif / vh.tif (as some RTC downloads).
    folder = tmp_path / "b" / "S1A_IW_GRDH_1SDV_20230129T213510_20230129T213535_046979_0596A8_1A2B"
    for pol in ("vv", "vh"):
        write_tif(folder / f"{pol}.tif", rng.gamma(4.5, 0.02, (64, 64)).astype(np.float32),
                  tags={"RELATIVE_ORBIT": "92", "ORBIT_DIRECTION": "DESCENDING"})
    ingest(store, [tmp_path / "a", tmp_path / "b"], "s1site")
    got = {s.acquired.date().isoformat(): s for s in store.scenes("s1site")}
    assert sorted(got) == ["2023-01-17", "2023-01-29"]
    for sc in got.values():
        assert sc.band_names == ["vh", "vv"] and sc.sensor == "sentinel-1"
        assert sc.properties["sar_units"] == "power"
    # From the product name's absolute orbit, and from the tag where one is given (the name
    # would say 7 there too).
    assert got["2023-01-17"].properties["relative_orbit"] == (46804 - 73) % 175 + 1 == 7
    assert got["2023-01-29"].properties["relative_orbit"] == 92
    assert got["2023-01-29"].properties["orbit_direction"] == "descending"
    assert not any("solar time" in w for w in got["2023-01-29"].warnings)  # the tag said so
    assert any("solar time" in w for w in got["2023-01-17"].warnings)
