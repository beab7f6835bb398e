"""What Sentinel-2 and Landsat file names say: acquisition time, platform, tile, band.

Conventions understood (the band suffix, if any, is split off first):

* Sentinel-2 compact tile files ``T33UUU_20170216T102101_B04[_10m]`` and product names
  ``S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_...``;
* Sentinel-2 pre-2017 ("OPER") tile names
  ``S2A_OPER_MSI_L1C_TL_SGS__20160315T201048_A003809_T31UDP_B01``.  The time in these names
  is the *processing* time, often months or years after acquisition; the acquisition time
  comes from the absolute orbit number (``A003809``), since Sentinel-2A flies exactly 143
  orbits every 10 days;
* Landsat scene ids ``LE70350322008118EDC00`` (sensor, mission, path, row, year, day of year);
* Landsat collection product ids ``LC08_L1TP_035032_20200101_20200113_02_T1``;
* pre-collection Landsat MTL names ``L71119038_03820000317`` (path, row, YYYYMMDD), as found
  inside ENVI headers;
* Sentinel-1 product ids ``S1A_IW_GRDH_1SDV_20230105T095959_20230105T100024_046629_0596A8_1A2B``
  (start time, absolute orbit), the measurement files of a ``.SAFE``
  ``s1a-iw-grd-vv-20230105t095959-20230105t100024-046629-0596a8-001.tiff`` (polarisation in
  the middle of the name) and ASF HyP3 RTC names ``S1A_IW_20230105T095959_DVP_RTC30_G_...``;
  polarisation band files ``<stem>_VV.tif`` or a bare ``vh.tif`` (the folder names the scene).

Examples
--------
>>> info = parse_name("LE70350322008118EDC00_b3.tif")
>>> info.platform, info.acquired.date().isoformat(), info.band, info.key
('LE07', '2008-04-27', '3', '035032')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: Sentinel-2A absolute orbit 162 was sensed over Pisa (43.7 N) at about 10:10 UTC on
#: 2015-07-04 (OSCD ``pisa``).  Orbits are exactly 10/143 days apart; a scene's time within its
#: orbit varies with latitude by well under an hour, which never moves the date far from
#: 10:30 local solar time.
_S2A_ANCHOR_ORBIT = 162
_S2A_ANCHOR_TIME = datetime(2015, 7, 4, 10, 10, tzinfo=UTC)
_S2_ORBIT_PERIOD = timedelta(days=10) / 143

_BAND_SUFFIX = re.compile(
    r"^(?P<stem>.+?)[_-](?:SR_|sr_)?(?P<band>"
    r"B(?:0?[1-9]|1[0-2]|8A)(?:_\d+m)?|b\d{1,2}|band\d{1,2}|"
    r"fmask|cfmask|QA_PIXEL|pixel_qa|SCL(?:_\d+m)?|mask|cloud_?mask|VV|VH|HH|HV)$",
    re.IGNORECASE,
)
#: SAR polarisations, as band names (lower case) and file-name suffixes.
POLARISATIONS = ("vv", "vh", "hh", "hv")

#: Layers of standard products that are neither image bands nor the quality mask sitewatch
#: uses: true-colour previews, atmosphere and saturation layers, surface temperature.
AUXILIARY = re.compile(
    r"[_-](?:TCI|AOT|WVP|CLD|SNW|QA_RADSAT|SR_QA_AEROSOL|ST_[A-Z0-9]+|radsat_qa|"
    r"sr_cloud_qa|sr_atmos_opacity|sr_aerosol|bqa|ANG|MTL|VAA|VZA|SAA|SZA)(?:_\d+m)?$",
    re.IGNORECASE,
)

_S1_PRODUCT = re.compile(
    r"(?:^|[^A-Z0-9])(?P<plat>S1[A-D])_(?P<mode>IW|EW|SM|WV|S[1-6])_(?P<type>[A-Z]{3}[A-Z_])_"
    r"(?P<level>\d)[SA_](?P<pol>SH|SV|DH|DV|HH|HV|VV|VH)_(?P<start>\d{8}T\d{6})_"
    r"\d{8}T\d{6}_(?P<orbit>\d{6})_(?P<take>[0-9A-F]{6})", re.IGNORECASE)
_S1_MEASUREMENT = re.compile(
    r"^(?P<plat>s1[a-d])-(?P<swath>iw[1-3]?|ew[1-5]?|s[1-6]|wv[12])-(?P<type>grd|slc)-"
    r"(?P<pol>hh|hv|vv|vh)-(?P<start>\d{8}t\d{6})-\d{8}t\d{6}-(?P<orbit>\d{6})-"
    r"(?P<take>[0-9a-f]{6})-\d{3}$", re.IGNORECASE)
_S1_HYP3 = re.compile(
    r"(?:^|[^A-Z0-9])(?P<plat>S1[A-D])_(?P<mode>IW|EW|SM)_(?P<start>\d{8}T\d{6})_"
    r"(?P<pol>[SD][VH])[PRO][A-Z]?_RTC\d+", re.IGNORECASE)
_S2_OPER = re.compile(
    r"(?P<plat>S2[AB])_OPER_MSI_(?P<level>L1C|L2A)_TL_\w{3,4}_+(?P<proc>\d{8}T\d{6})_"
    r"A(?P<orbit>\d{6})_T(?P<tile>\d{2}[A-Z]{3})"
)
_S2_PRODUCT = re.compile(
    r"(?P<plat>S2[ABC])_MSI(?P<level>L1C|L2A)_(?P<time>\d{8}T\d{6})_N(?P<baseline>\d{4})_R\d{3}_"
    r"T(?P<tile>\d{2}[A-Z]{3})"
)
_S2_TILE = re.compile(r"(?:^|_)T(?P<tile>\d{2}[A-Z]{3})_(?P<time>\d{8}T\d{6})(?:_|$)")
_LANDSAT_ID = re.compile(
    r"(?:^|_)L(?P<sensor>[CETMO])(?P<mission>[4-9])(?P<path>\d{3})(?P<row>\d{3})"
    r"(?P<year>\d{4})(?P<doy>\d{3})[A-Z]{3}\d{2}"
)
_LANDSAT_C = re.compile(
    r"(?:^|_)L(?P<sensor>[CETMO])0(?P<mission>[4-9])_(?P<level>L\w{3})_(?P<path>\d{3})(?P<row>\d{3})_"
    r"(?P<date>\d{8})_\d{8}_\d{2}_(?:T1|T2|RT)"
)
_LANDSAT_MTL = re.compile(
    r"(?:^|[^A-Z0-9])L(?P<mission>[4578])\d(?P<path>\d{3})(?P<row>\d{3})_\d{3}(?P<date>\d{8})"
)


@dataclass(frozen=True)
class NameInfo:
    """What a file name says.  Any field may be None."""

    stem: str  # the name without extension and band suffix
    band: str | None = None  # band id from the suffix ("B04", "3", "fmask", ...)
    acquired: datetime | None = None
    time_source: str | None = None
    platform: str | None = None  # "S2A", "LE07", ...
    sensor: str | None = None  # "sentinel-2", "landsat"
    mission: int | None = None  # Landsat mission number
    key: str | None = None  # tile ("T33UUU") or path/row ("035032")
    level: str | None = None  # processing level: "L1C", "L2A", "L2SP", ...
    baseline: str | None = None  # Sentinel-2 processing baseline ("0400"), when named
    orbit: int | None = None  # absolute orbit (Sentinel-1), when named


def s2a_orbit_time(orbit: int) -> datetime:
    """Approximate sensing time of Sentinel-2A absolute orbit ``orbit`` (within ~1 h)."""
    t = _S2A_ANCHOR_TIME + (orbit - _S2A_ANCHOR_ORBIT) * _S2_ORBIT_PERIOD
    return t.replace(second=0, microsecond=0)


def _t(s: str) -> datetime | None:
    """None for an impossible time (month 13, day 00...): the name then dates nothing."""
    try:
        return datetime.strptime(s, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _d(s: str) -> datetime | None:
    try:
        return datetime.strptime(s, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _doy(year: str, doy: str) -> datetime | None:
    try:
        return datetime(int(year), 1, 1, tzinfo=UTC) + timedelta(days=int(doy) - 1)
    except (ValueError, OverflowError):  # year 0000, or day 999 of year 9999
        return None


def split_band(stem: str) -> tuple[str, str | None]:
    """Split a band suffix off a file stem.

    >>> split_band("T33UUU_20170216T102101_B04")
    ('T33UUU_20170216T102101', 'B04')
    """
    m = _BAND_SUFFIX.match(stem)
    if not m:
        return stem, None
    band = re.sub(r"_\d+m$", "", m.group("band"))
    if band.lower().startswith("band"):
        band = band[4:]
    elif band[0] in "bB" and band[1:].isdigit():
        band = band[1:] if band[0] == "b" else band
    return m.group("stem"), band


def parse_name(name: str) -> NameInfo:
    """Parse a file or folder name (extension ignored) for what its conventions carry."""
    base = name.rsplit("/", 1)[-1]
    stem = base.split(".", 1)[0] if "." in base else base
    if m := _S1_MEASUREMENT.match(stem):
        # A .SAFE measurement file: the polarisation sits inside the name.
        pol = m.group("pol").upper()
        plat = m.group("plat").upper()
        return NameInfo(stem.replace(f"-{m.group('pol')}-", "-", 1), pol,
                        _t(m.group("start").upper()), "file name: Sentinel-1 measurement file",
                        plat, "sentinel-1", None, m.group("orbit"), m.group("type").upper(),
                        orbit=int(m.group("orbit")))
    if stem.lower() in POLARISATIONS:  # a bare vv.tif: the folder names the scene
        return NameInfo("", stem.upper())
    stem, band = split_band(stem)
    return parse_text(stem, band=band)


def parse_text(text: str, *, band: str | None = None) -> NameInfo:
    """Look for a Sentinel-2 or Landsat identifier anywhere in ``text``."""
    stem = text
    if m := _S1_PRODUCT.search(text):
        return NameInfo(stem, band, _t(m.group("start").upper()),
                        "file name: Sentinel-1 product id", m.group("plat").upper(),
                        "sentinel-1", None, m.group("orbit"), m.group("type").upper(),
                        orbit=int(m.group("orbit")))
    if m := _S1_HYP3.search(text):
        return NameInfo(stem, band, _t(m.group("start").upper()),
                        "file name: Sentinel-1 RTC (HyP3) name", m.group("plat").upper(),
                        "sentinel-1", None, None, "RTC")
    if m := _S2_OPER.search(text):
        orbit = int(m.group("orbit"))
        acq: datetime | None
        if m.group("plat") == "S2A":
            acq, src = s2a_orbit_time(orbit), f"file name: Sentinel-2A absolute orbit {orbit}"
        else:  # no anchor known for S2B OPER names (they are rare): fall back, and say so
            acq, src = _t(m.group("proc")), "file name: processing time (S2B OPER name)"
        return NameInfo(stem, band, acq, src, m.group("plat"), "sentinel-2", None,
                        "T" + m.group("tile"), m.group("level"), "0000")
    if m := _S2_PRODUCT.search(text):
        return NameInfo(stem, band, _t(m.group("time")), "file name: Sentinel-2 product id",
                        m.group("plat"), "sentinel-2", None, "T" + m.group("tile"),
                        m.group("level"), m.group("baseline"))
    if m := _S2_TILE.search(text):
        return NameInfo(stem, band, _t(m.group("time")), "file name: Sentinel-2 tile file",
                        None, "sentinel-2", None, "T" + m.group("tile"))
    if m := _LANDSAT_C.search(text):
        mission = int(m.group("mission"))
        return NameInfo(stem, band, _d(m.group("date")), "file name: Landsat product id",
                        f"L{m.group('sensor')}0{mission}", "landsat", mission,
                        m.group("path") + m.group("row"), m.group("level"))
    if m := _LANDSAT_ID.search(text):
        mission = int(m.group("mission"))
        acq = _doy(m.group("year"), m.group("doy"))
        return NameInfo(stem, band, acq, "file name: Landsat scene id",
                        f"L{m.group('sensor')}0{mission}", "landsat", mission,
                        m.group("path") + m.group("row"))
    if m := _LANDSAT_MTL.search(text):
        mission = int(m.group("mission"))
        letter = {4: "T", 5: "T", 7: "E", 8: "C"}[mission]
        return NameInfo(stem, band, _d(m.group("date")), "Landsat MTL name",
                        f"L{letter}0{mission}", "landsat", mission,
                        m.group("path") + m.group("row"))
    return NameInfo(stem, band)


def is_auxiliary(name: str) -> bool:
    """True for product layers that are not scenes, bands or masks (``*_TCI.jp2``...)."""
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    return bool(AUXILIARY.search(stem))

__all__ = ["AUXILIARY", "POLARISATIONS", "NameInfo", "is_auxiliary", "parse_name", "parse_text",
           "s2a_orbit_time", "split_band"]
