"""Sentinel-1 in the watch: SAR series per relative orbit, the omnibus test over a part's
recent dates, and coverage by sensor, on synthetic speckled scenes of a small site."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
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
from sitewatch.watch.grids import grid_key
from sitewatch.watch.pipeline import RunParams, run_site, series

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
