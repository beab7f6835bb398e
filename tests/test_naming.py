from datetime import date

import pytest

from conftest import need_shared
from sitewatch.imagery.naming import parse_name, parse_text, s2a_orbit_time, split_band


@pytest.mark.parametrize(
    ("name", "platform", "day", "band", "key"),
    [
        ("LE70350322008118EDC00_b3.tif", "LE07", "2008-04-27", "3", "035032"),
        ("LT50350322011294PAC01_fmask.tif", "LT05", "2011-10-21", "fmask", "035032"),
        ("T40QBM_20180328T065919_B8A.tif", None, "2018-03-28", "B8A", "T40QBM"),
        ("T33UUU_20170216T102101_B02.jp2", None, "2017-02-16", "B02", "T33UUU"),
        ("S2B_MSIL2A_20230101T020000_N0509_R031_T51SUJ_20230101T040000_B04_10m.jp2", "S2B",
         "2023-01-01", "B04", "T51SUJ"),
        ("LC08_L2SP_035032_20200101_20200113_02_T1_SR_B4.TIF", "LC08", "2020-01-01", "B4",
         "035032"),
        ("LC09_L1TP_116032_20230405_20230405_02_T1_QA_PIXEL.TIF", "LC09", "2023-04-05",
         "QA_PIXEL", "116032"),
        # OPER names: the time in the name is processing time (2016-12-27); the orbit says 2015.
        ("S2A_OPER_MSI_L1C_TL_EPA__20161227T091305_A001222_T22LHH_B01.tif", "S2A",
         "2015-09-16", "B01", "T22LHH"),
    ],
)
def test_conventions(name, platform, day, band, key):
    info = parse_name(name)
    assert info.platform == platform
    assert info.acquired.date().isoformat() == day
    assert info.band == band
    assert info.key == key


def test_no_convention_no_time():
    for n in ("cm.png", "abudhabi-cm.tif", "2000TM", "ottawa_1.bmp"):
        assert parse_name(n).acquired is None


def test_landsat_mtl_name_in_envi_band_names():
    info = parse_text("Resize (ETM+ Meta (Band 1):L71119038_03820000317_MTL.txt)")
    assert info.platform == "LE07" and info.acquired.date() == date(2000, 3, 17)


def test_split_band():
    assert split_band("T33UUU_20170216T102101_B04") == ("T33UUU_20170216T102101", "B04")
    assert split_band("scene_band3") == ("scene", "3")
    assert split_band("nobandhere") == ("nobandhere", None)


def test_orbit_dates_match_oscd_dates_file():
    """Every OSCD date-1 file uses the OPER convention; its orbit must give dates.txt's date."""
    root = need_shared("oscd")
    checked = 0
    for city in sorted(p for p in root.iterdir() if (p / "dates.txt").exists()):
        expected = dict(line.split(": ") for line in (city / "dates.txt").read_text().split("\n")
                        if ": " in line)
        for folder, k in (("imgs_1", "date_1"), ("imgs_2", "date_2")):
            f = sorted((city / folder).glob("*.tif"))[0]
            info = parse_name(f.name)
            got = info.acquired.strftime("%Y%m%d")
            if "_OPER_" in f.name:
                assert got == expected[k].strip(), f"{city.name}/{folder}"
                checked += 1
    assert checked >= 9


def test_orbit_arithmetic():
    # 143 orbits every 10 days, exactly.
    assert (s2a_orbit_time(162 + 143) - s2a_orbit_time(162)).total_seconds() == 10 * 86400


@pytest.mark.parametrize(
    ("name", "platform", "expected"),
    [
        ("T39QZG_20160120T065000_B04.tif", "S2A", "S2A_20160120_T39QZG"),
        ("LE70350322008118EDC00_b3.tif", "LE07", "LE07_20080427_035032"),
        ("T39QZG_20160120T065000_B04.tif", None, "S2_20160120_T39QZG"),
        ("my scene (1).tif", None, "my_scene_1"),
    ],
)
def test_scene_ids_stay_readable(name, platform, expected):
    from datetime import UTC, datetime
    from pathlib import Path

    from sitewatch.imagery.scenes import make_scene_id

    info = parse_name(name)
    when = info.acquired or datetime(2024, 1, 1, tzinfo=UTC)
    assert make_scene_id(info, when, platform, info.sensor, Path(name)) == expected


@pytest.mark.parametrize("platform", ["/tmp/xyz/abs", "../../x", "..", "S2A/../../etc",
                                      "S2A\n", "\x1b]0;pwned\x07", "P" * 5000, ""])
def test_a_hostile_platform_tag_gives_a_safe_scene_id(platform):
    """Issue 14 item 1: the PLATFORM tag went into the scene id, and the id into paths."""
    from datetime import UTC, datetime
    from pathlib import Path

    from sitewatch.fileio import is_safe_name
    from sitewatch.imagery.scenes import make_scene_id

    info = parse_name("T39QZG_20160120T065000_B04.tif")
    sid = make_scene_id(info, datetime(2016, 1, 20, tzinfo=UTC), platform, "sentinel-2",
                        Path("T39QZG_20160120T065000_B04.tif"))
    assert is_safe_name(sid) and "/" not in sid and ".." not in sid, sid
    assert sid.endswith("_20160120_T39QZG") or len(sid) <= 120
    other = make_scene_id(info, datetime(2016, 1, 20, tzinfo=UTC), platform + "x",
                          "sentinel-2", Path("T39QZG_20160120T065000_B04.tif"))
    assert other != sid  # two hostile tags never share an id (nor a product file)


def test_builtin_site_ids_are_not_paths():
    from sitewatch.errors import SiteError
    from sitewatch.sites.site import builtin_site

    with pytest.raises(SiteError, match="no built-in site"):
        builtin_site("../builtin/sohae")
