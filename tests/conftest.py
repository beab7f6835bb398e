"""Fixtures: small synthetic rasters written on the fly, and the shared real data folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

SHARED_DATA = Path(os.environ.get("SITEWATCH_DATA", Path(__file__).parents[1] / ".." / "shared"
                                  / "data")).resolve()

#: A UTM 51N point inside the simulated site (Sohae's public coordinates).
SOHAE_UTM = (646_260.0, 4_391_410.0)


def write_tif(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32651",
              transform: Affine | None = None, nodata: float | None = None,
              tags: dict[str, str] | None = None, descriptions: Sequence[str] | None = None,
              band_tags: Sequence[dict[str, str]] | None = None, driver: str = "GTiff",
              scales: Sequence[float] | None = None) -> Path:
    """Write ``data`` (bands, rows, cols) or (rows, cols) as a raster file."""
    arr = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": driver, "width": arr.shape[2], "height": arr.shape[1],
               "count": arr.shape[0], "dtype": arr.dtype.name}
    if crs is not None:
        profile["crs"] = crs
        profile["transform"] = transform or Affine(10, 0, SOHAE_UTM[0] - 500, 0, -10,
                                                   SOHAE_UTM[1] + 500)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(arr)
        if tags:
            ds.update_tags(**tags)
        for i, d in enumerate(descriptions or []):
            ds.set_band_description(i + 1, d)
        for i, t in enumerate(band_tags or []):
            ds.update_tags(i + 1, **t)
        if scales:
            ds.scales = tuple(scales)
    return path


@pytest.fixture
def make_tif(tmp_path: Path):
    """make_tif(name, data, **kw) -> path under tmp_path."""

    def _make(name: str, data: np.ndarray, **kw) -> Path:
        return write_tif(tmp_path / name, data, **kw)

    return _make


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated sitewatch home (also set as SITEWATCH_HOME)."""
    h = tmp_path / "home"
    monkeypatch.setenv("SITEWATCH_HOME", str(h))
    return h


def rng_image(seed: int, bands: int = 4, size: int = 100) -> np.ndarray:
    """Smooth-ish random reflectance-like uint16 data."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(bands, size, size))
    x = ndimage.gaussian_filter(x, (0, 2, 2))
    x = (x - x.min()) / (x.max() - x.min())
    return (1000 + 2000 * x).astype(np.uint16)


def need_shared(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test saying why."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} (the ../shared folder sits beside the "
                    "project in development and CI; set SITEWATCH_DATA to point elsewhere)")
    return p


@dataclass(frozen=True)
class DemoRun:
    """The demo run once for the whole test session: its home, work folder and result."""

    home: Path
    work: Path
    result: Any


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``sitewatch demo``'s library call, run once per session in a home of its own (set as
    SITEWATCH_HOME for that run only).  The story uses sitewatch's SIMULATED stand-ins for
    the seed articles, so the run does not depend on ../shared.  Tests must not change its
    home; re-running the demo there is allowed (it adds nothing)."""
    from sitewatch.sim.demo import run_demo

    root = tmp_path_factory.mktemp("demo")
    home, work = root / "home", root / "work"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SITEWATCH_HOME", str(home))
        mp.setenv("SITEWATCH_SEEDS", str(root / "no-seeds-here"))
        result = run_demo(home, workdir=work)
    return DemoRun(home, work, result)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="tests/test_fuzz.py: run many more seeded cases (or set "
                          "SITEWATCH_FUZZ_N to the number of seeds per format and mutation)")


# -- real STAC services (tests/stac_server.py; docs/testing.md) ------------------------------

def _services_required() -> bool:
    return os.environ.get("SITEWATCH_REQUIRE_SERVICES", "") not in ("", "0")


@pytest.fixture(scope="session")
def stac_services(tmp_path_factory: pytest.TempPathFactory):
    """PostgreSQL + PostGIS + pgstac, stac-fastapi-pgstac, the file server and the fault
    proxy, started once per session (tests/stac_server.py).  Skips saying why when the
    services are not installed, unless SITEWATCH_REQUIRE_SERVICES=1 (CI), then fails."""
    from stac_server import missing_services, start_services

    why = missing_services()
    if why and _services_required():
        pytest.fail(f"test services required (SITEWATCH_REQUIRE_SERVICES=1) but: {why}",
                    pytrace=False)
    if why:
        pytest.skip(f"test STAC services unavailable: {why} "
                    "(run scripts/install-test-services.sh)")
    services = start_services(tmp_path_factory.mktemp("stac"))  # installed but broken: fail
    try:
        yield services
    finally:
        services.close()


@pytest.fixture
def stac(stac_services):
    """The session's services, emptied for this test: no collections or Items, no fault
    rules, empty request logs, the API running, the default page cap."""
    stac_services.reset()
    yield stac_services
    stac_services.proxy.plan.clear()


@pytest.fixture(scope="session")
def big_s2_asset(stac_services) -> str:
    """A Sentinel-2-band-sized COG (10980 x 10980 uint16, 512 px tiles, about 170 MB) under the
    file server's root, written once per session (about 6 s); returns its relative path."""
    from stac_items import big_cog

    rel = "big/S2_10980_B04.tif"
    big_cog(stac_services.files.root / rel)
    return rel


# -- the catalogue on both databases (tests/pg_server.py; docs/testing.md) -------------------

#: The password of the test PostgreSQL server over TCP (the tests of a wrong one need one).
PG_PASSWORD = "sw-test-secret"

#: The databases the store tests run on (``store_url``).
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 15 server for the store tests, started once per session on
    127.0.0.1 (its data under a temporary folder, removed with the server when the session
    ends).  Skips saying why when PostgreSQL or psycopg is not installed, unless
    SITEWATCH_REQUIRE_SERVICES=1 (CI), then fails."""
    from pg_server import missing_postgres, start_postgres

    why = missing_postgres()
    if why and _services_required():
        pytest.fail(f"PostgreSQL required (SITEWATCH_REQUIRE_SERVICES=1) but: {why}",
                    pytrace=False)
    if why:
        pytest.skip(f"PostgreSQL unavailable: {why} (run scripts/install-test-services.sh)")
    cluster = start_postgres(password=PG_PASSWORD)  # installed but broken: fail
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_server) -> Any:
    """The URL of a new, empty database on the test server, dropped after the test."""
    name = pg_server.new_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store test keeps its catalogue, once per database: a SQLite file under
    tmp_path, then a fresh PostgreSQL database (``Store.open_url`` opens either)."""
    if request.param == "sqlite":
        return str(tmp_path / "db" / "sitewatch.db")
    return str(request.getfixturevalue("pg_url"))
