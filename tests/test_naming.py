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
