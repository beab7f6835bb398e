"""STAC Items for exported change products (pystac, with the projection and raster
extensions): one Item per pair, its change map and score as assets, so catalogues and tools
that speak STAC can find, place and read them.

Examples
--------
>>> import numpy as np, rasterio, tempfile, pathlib
>>> from affine import Affine
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with rasterio.open(d / "c.tif", "w", driver="GTiff", width=4, height=3, count=1,
...                    dtype="uint8", crs="EPSG:32651", nodata=255,
...                    transform=Affine(10, 0, 500000, 0, -10, 4390000)) as ds:
...     ds.write(np.zeros((3, 4), np.uint8), 1)
>>> item = change_item("pair-1", {"change": d / "c.tif"}, "2024-05-02T02:00:00Z",
...                    {"site": "s", "before": "a", "after": "b"})
>>> item.properties["proj:code"], item.properties["proj:shape"]
('EPSG:32651', [3, 4])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pystac
import rasterio
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension
from shapely.geometry import box, mapping

from sitewatch.imagery.geo import to_crs
from sitewatch.times import parse_time

_ROLES = {"change": ("data",), "score": ("data",)}
_TITLES = {"change": "Change map: 1 change, 0 no change, 255 not observed",
           "score": "Change score (above the threshold is change); NaN not observed"}


def change_item(item_id: str, assets: dict[str, str | Path], when: str,
                properties: dict[str, Any]) -> pystac.Item:
    """A STAC Item for one pair's change products (paths are made relative by the caller's
    ``href`` choices: they are used as given)."""
    first = Path(next(iter(assets.values())))
    with rasterio.open(first) as ds:
        crs, transform, shape, bounds = ds.crs, ds.transform, (ds.height, ds.width), ds.bounds
    footprint = to_crs(box(*bounds), crs.to_wkt(), "EPSG:4326") if crs else box(*bounds)
    item = pystac.Item(id=item_id, geometry=mapping(footprint), bbox=list(footprint.bounds),
                       datetime=parse_time(when),
                       properties=dict(properties))
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = crs.to_epsg() if crs else None
    if epsg:
        proj.code = f"EPSG:{epsg}"
    elif crs:
        proj.wkt2 = crs.to_wkt()
    proj.shape = list(shape)
    proj.transform = list(transform)[:6]
    proj.bbox = list(bounds)
    RasterExtension.add_to(item)
    for key, path in assets.items():
        p = Path(path)
        with rasterio.open(p) as ds:
            dtype, nodata, res = ds.dtypes[0], ds.nodata, ds.res[0]
        asset = pystac.Asset(href=p.name, media_type=pystac.MediaType.COG,
                             title=_TITLES.get(key, key), roles=list(_ROLES.get(key, ("data",))))
        item.add_asset(key, asset)
        nd: float | NoDataStrings | None = (NoDataStrings.NAN if nodata is not None
                                             and nodata != nodata else nodata)
        band = RasterBand.create(nodata=nd, data_type=DataType(dtype),
                                 spatial_resolution=float(res))
        RasterExtension.ext(asset).bands = [band]
    return item


def write_item(item: pystac.Item, path: Path) -> Path:
    """Write an Item as JSON beside its assets (asset hrefs are relative file names)."""
    import json

    path.write_text(json.dumps(item.to_dict(include_self_link=False), indent=1),
                    encoding="utf-8")
    return path


__all__ = ["change_item", "write_item"]
