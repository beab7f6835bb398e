"""A shift undone on the grid's own pixel lattice (grid._translated) gives what GDAL's
bilinear warp gives: the same unobserved pixels, the same values to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from conftest import write_tif
from sitewatch.imagery import grid as grid_mod
from sitewatch.imagery.coregister import Shift
from sitewatch.imagery.grid import SiteGrid

CRS = "EPSG:32651"


def _gdal(path, grid: SiteGrid, shift: Shift, nodata: float | None) -> np.ndarray:
    """The warp every shifted read went through before (and still does off-lattice)."""
    with rasterio.open(path) as ds:
        dst_t = grid_mod._dst_transform(grid, shift)
        win = grid_mod._src_window(ds, grid, dst_t)
        out = np.full(grid.shape, np.nan, np.float32)
        if win is None:
            return out
        src = grid_mod._read_valid(ds, 1, win, nodata)
        reproject(source=src, destination=out, src_transform=ds.window_transform(win),
                  src_crs=ds.crs, src_nodata=np.nan, dst_transform=dst_t,
                  dst_crs=grid.rio_crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
    return out


def _grid(w: int = 120, h: int = 90) -> SiteGrid:
    from rasterio.crs import CRS as RioCRS

    return SiteGrid(RioCRS.from_user_input(CRS).to_wkt(), Affine(10, 0, 500_000, 0, -10,
                                                                    4_400_000), w, h)


SHIFTS = [Shift(0.37, -0.61), Shift(-1.25, 2.5), Shift(0.0, 0.3), Shift(-0.05, 0.999),
          Shift(2.71, -3.33), Shift(0.5, 0.5), Shift(-0.9999, 0.0001)]


@pytest.mark.parametrize("margin", [0, 3])
@pytest.mark.parametrize("shift", SHIFTS, ids=str)
def test_translated_read_equals_gdal_bilinear(tmp_path, shift: Shift, margin: int) -> None:
    """On a source that is just the grid (edges beyond the source are no data) and one a
    few pixels larger, with nodata holes, single unobserved pixels and an unobserved row."""
    grid = _grid()
    rng = np.random.default_rng(int(1000 * abs(shift.dy + 2 * shift.dx)) + margin)
    h, w = grid.height + 2 * margin, grid.width + 2 * margin
    data = rng.uniform(100, 4000, (h, w)).astype(np.float32)
    data[10:20, 30:45] = -9999  # a hole
    data[rng.random((h, w)) < 0.01] = -9999  # scattered pixels
    data[50, :] = -9999  # a whole row
    t = Affine(10, 0, 500_000 - 10 * margin, 0, -10, 4_400_000 + 10 * margin)
    path = write_tif(tmp_path / "b.tif", data, crs=CRS, transform=t, nodata=-9999)
    fast = grid_mod._read_band(str(path), 1, grid, Resampling.bilinear, None, shift)
    want = _gdal(path, grid, shift, None)
    assert np.array_equal(np.isnan(fast), np.isnan(want))
    ok = ~np.isnan(want)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(fast[ok], want[ok], rtol=5e-7, atol=0)


def test_translated_read_is_used_only_on_the_lattice(tmp_path, monkeypatch) -> None:
    """Off the source's lattice (a half-pixel offset) or with another resampling, the read
    is GDAL's warp; on it, the cheap path."""
    grid = _grid(40, 30)
    calls: list[int] = []
    real = grid_mod._translated

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(grid_mod, "_translated", spy)
    data = np.arange(50 * 60, dtype=np.float32).reshape(50, 60)
    on = write_tif(tmp_path / "on.tif", data, crs=CRS,
                   transform=Affine(10, 0, 499_900, 0, -10, 4_400_100))
    off = write_tif(tmp_path / "off.tif", data, crs=CRS,
                    transform=Affine(10, 0, 499_905, 0, -10, 4_400_100))
    s = Shift(0.25, -0.4)
    grid_mod._read_band(str(on), 1, grid, Resampling.bilinear, None, s)
    assert calls == [1]
    grid_mod._read_band(str(off), 1, grid, Resampling.bilinear, None, s)
    grid_mod._read_band(str(on), 1, grid, Resampling.nearest, None, s)
    grid_mod._read_band(str(on), 1, grid, Resampling.bilinear, None, None)
    assert calls == [1]
    # A linear ramp is reproduced exactly where it is interpolated inside the source.
    got = grid_mod._read_band(str(on), 1, grid, Resampling.bilinear, None, s)
    rows, cols = np.mgrid[0:30, 0:40]
    expect = (rows + 10 + s.dy) * 60 + (cols + 10 + s.dx)
    np.testing.assert_allclose(got, expect, rtol=1e-6)
