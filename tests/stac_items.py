"""STAC Items with COG assets, built from the real imagery in ../shared/data (and synthetic SAR).

Each builder writes its COGs under ``files_root`` once (a file already there is reused, so a
session builds each asset once) and returns Item dicts whose asset hrefs come from
``href(rel_path)``; with the ``stac`` fixture use ``colorado_landsat_items(stac.files.root,
stac.asset_href, data=...)`` (assets through the fault proxy) or ``stac.files.url_for``
(direct).  Items are plain dicts: tests may break them on purpose (drop ``proj:epsg``, point
an asset elsewhere) before loading them with ``stac.add_items``.

- :func:`colorado_landsat_items`: the 105-date Landsat 5/7 series (61 x 61 px, 30 m, EPSG:32613)
  as Landsat Collection 2 L2-like Items: ``red``/``nir08``/``swir16`` (the series' b3/b4/b5,
  int16 surface reflectance x 10,000, nodata -9999, kept as stored) and ``qa_pixel``, the
  series' Fmask codes CONVERTED to Collection 2 QA_PIXEL bits (:data:`FMASK_TO_QA_PIXEL`).
- :func:`sentinel2_items`: the Sentinel-2 crop (T33UUU, 2017-02-16; L1C top-of-atmosphere
  pixels, 1536 x 768 px at 10 m) as Sentinel-2 L2A-like Items: ``blue green red nir`` (10 m),
  ``swir16 swir22`` (20 m) and a SYNTHETIC ``scl`` (20 m) from simple thresholds.
- :func:`sentinel1_rtc_items`: synthetic Sentinel-1 RTC-like Items, ``vv``/``vh`` float32 linear
  power with gamma speckle, deterministic from a seed, alternating two relative orbits.
- :func:`big_cog`: a Sentinel-2-sized (10980 x 10980 uint16, 512 px tiles, overviews) COG for
  bytes-read measurements (about 170 MB, about 6 s to write).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_geom

__all__ = ["FMASK_TO_QA_PIXEL", "big_cog", "colorado_landsat_items", "item_dict",
           "sentinel1_rtc_items", "sentinel2_items", "truncated_copy", "write_cog"]

Href = Callable[[str], str]

EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
}

#: Fmask code -> Landsat Collection 2 QA_PIXEL value (bits: 0 fill, 3 cloud, 4 shadow, 5 snow,
#: 6 clear, 7 water; confidence pairs 8-9 cloud, 10-11 shadow, 12-13 snow set low, or high
#: for the flagged class).  These are the values real Landsat 7 C2 L2 scenes carry.
FMASK_TO_QA_PIXEL = {0: 5440, 1: 5504, 2: 7440, 3: 13600, 4: 5896, 255: 1}
QA_FILL = 1


def write_cog(path: Path, data: np.ndarray, *, crs: str, transform: Affine,
              nodata: float | None = None, blocksize: int = 256) -> Path:
    """Write (bands, rows, cols) or (rows, cols) as a deflate COG with overviews; returns path.
    An existing file is kept (builders call this once per session per asset)."""
    if path.exists():
        return path
    arr = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    profile: dict[str, Any] = {
        "driver": "COG", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
        "dtype": arr.dtype.name, "crs": crs, "transform": transform, "blocksize": blocksize,
        "compress": "deflate", "predictor": 2 if arr.dtype.kind in "iu" else 3,
        "overview_resampling": "nearest"}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(tmp, "w", **profile) as ds:
        ds.write(arr)
    tmp.replace(path)
    return path


def truncated_copy(root: Path, rel: str, new_rel: str, keep_fraction: float = 0.5) -> str:
    """Copy the first ``keep_fraction`` of ``root/rel`` to ``root/new_rel`` (a COG cut short on
    the server: the header opens, tiles past the cut cannot be read); returns ``new_rel``."""
    data = (root / rel).read_bytes()
    out = root / new_rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data[: int(len(data) * keep_fraction)])
    return new_rel


def _footprint(crs: str, transform: Affine, shape: tuple[int, int]) -> dict[str, Any]:
    rows, cols = shape
    corners = [transform @ (c, r) for c, r in ((0, 0), (cols, 0), (cols, rows), (0, rows))]
    ring = [*corners, corners[0]]
    geom = transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    return {"type": "Polygon", "coordinates": [[[round(x, 7), round(y, 7)]
                                                 for x, y in geom["coordinates"][0]]]}


def item_dict(item_id: str, when: datetime, *, crs: str, transform: Affine,
              shape: tuple[int, int], properties: dict[str, Any],
              assets: dict[str, dict[str, Any]], extensions: Sequence[str]) -> dict[str, Any]:
    """A STAC 1.0 Item dict with the footprint of ``shape`` on ``transform`` and item-level
    projection metadata (``proj:epsg``, ``proj:shape``, ``proj:transform``)."""
    geom = _footprint(crs, transform, shape)
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    props = {"datetime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "proj:epsg": int(crs.split(":")[1]), "proj:shape": list(shape),
             "proj:transform": list(transform)[:6], **properties}
    return {"type": "Feature", "stac_version": "1.0.0",
            "stac_extensions": [EXT[e] for e in ("proj", *extensions)], "id": item_id,
            "geometry": geom, "bbox": [min(xs), min(ys), max(xs), max(ys)],
            "properties": props, "assets": assets, "links": []}


def _asset(href: str, title: str, roles: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": title, "roles": list(roles), **extra}


# -- Landsat (Colorado series) ---------------------------------------------------------------

LANDSAT_BANDS = (("red", "b3", "B3", 0.66), ("nir08", "b4", "B4", 0.84),
                 ("swir16", "b5", "B5", 1.65))


def colorado_landsat_items(files_root: Path, href: Href, *, data: Path,
                           limit: int | None = None) -> list[dict[str, Any]]:
    """The Colorado Landsat 5/7 series as C2 L2-like Items (``data`` is
    ``../shared/data/landsat_timeseries_colorado``), oldest first; ``limit`` keeps the first N."""
    scenes = sorted((p for p in data.iterdir() if p.is_dir()), key=lambda p: p.name[9:16])
    items = []
    for scene in scenes[:limit]:
        sid = scene.name  # e.g. LE70350322008118EDC00: sensor, path, row, year, day of year
        when = datetime.strptime(sid[9:16], "%Y%j").replace(hour=17, minute=30, tzinfo=UTC)
        platform, instrument = {"LE7": ("landsat-7", "etm+"), "LT5": ("landsat-5", "tm"),
                                "LC8": ("landsat-8", "oli")}[sid[:3]]
        assets: dict[str, dict[str, Any]] = {}
        with rasterio.open(scene / f"{sid}_fmask.tif") as src:
            fmask = src.read(1)
            crs, transform, shape = src.crs.to_string(), src.transform, src.shape
        for key, stem, name, wavelength in LANDSAT_BANDS:
            rel = f"landsat/{sid}/{sid}_{key}.tif"
            with rasterio.open(scene / f"{sid}_{stem}.tif") as src:
                write_cog(files_root / rel, src.read(1), crs=crs, transform=transform,
                          nodata=-9999)
            assets[key] = _asset(href(rel), f"{name} surface reflectance", ["data"],
                                 **{"eo:bands": [{"name": name, "common_name": key,
                                                  "center_wavelength": wavelength}],
                                    "raster:bands": [{"data_type": "int16", "nodata": -9999,
                                                      "scale": 0.0001, "offset": 0.0,
                                                      "spatial_resolution": 30}]})
        qa = np.full(fmask.shape, QA_FILL, dtype=np.uint16)
        for code, value in FMASK_TO_QA_PIXEL.items():
            qa[fmask == code] = value
        rel = f"landsat/{sid}/{sid}_qa_pixel.tif"
        write_cog(files_root / rel, qa, crs=crs, transform=transform, nodata=QA_FILL)
        assets["qa_pixel"] = _asset(href(rel), "Pixel quality (QA_PIXEL bits, from Fmask)",
                                    ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
                                    **{"raster:bands": [{"data_type": "uint16", "nodata": 1,
                                                         "unit": "bit index"}]})
        valid = fmask != 255
        cloud = float(100.0 * np.count_nonzero(fmask[valid] == 4) / max(1, valid.sum()))
        props = {"platform": platform, "instruments": [instrument],
                 "eo:cloud_cover": round(cloud, 2), "landsat:scene_id": sid,
                 "landsat:wrs_path": sid[3:6], "landsat:wrs_row": sid[6:9],
                 "landsat:collection_category": "T1"}
        items.append(item_dict(sid, when, crs=crs, transform=transform, shape=shape,
                               properties=props, assets=assets,
                               extensions=("eo", "raster")))
    return items


# -- Sentinel-2 crop ---------------------------------------------------------------------------

S2_BANDS = (("blue", "B02", 0.49), ("green", "B03", 0.56), ("red", "B04", 0.665),
            ("nir", "B08", 0.842), ("swir16", "B11", 1.61), ("swir22", "B12", 2.19))
S2_WHEN = datetime(2017, 2, 16, 10, 21, 1, tzinfo=UTC)


def _synthetic_scl(red20: np.ndarray, nir20: np.ndarray, swir20: np.ndarray,
                   blue20: np.ndarray) -> np.ndarray:
    """A stand-in Scene Classification Layer from thresholds on TOA reflectance x 10,000:
    4 vegetation, 5 not vegetated, 6 water, 9 cloud (high probability), 0 no data."""
    r, n, s, b = (a.astype(np.float32) for a in (red20, nir20, swir20, blue20))
    ndvi = (n - r) / np.maximum(n + r, 1)
    scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
    scl[(n < 1200) & (s < 800)] = 6
    scl[(b > 3000) & (s > 2500)] = 9
    scl[(red20 == 0)] = 0
    return scl


def sentinel2_items(files_root: Path, href: Href, *, data: Path,
                    dates: Sequence[datetime] = (S2_WHEN,)) -> list[dict[str, Any]]:
    """The Sentinel-2 crop (``data`` is ``../shared/data/s2_l1c_single``) as one L2A-like Item
    per date in ``dates``; the Items share the same assets (the same pixels every date)."""
    img = data / "IMG_DATA"
    assets: dict[str, dict[str, Any]] = {}
    at20: dict[str, np.ndarray] = {}
    crs10 = t10 = shape10 = None
    for key, band, wavelength in S2_BANDS:
        with rasterio.open(img / f"T33UUU_20170216T102101_{band}.jp2") as src:
            arr, crs, t, shape = src.read(1), src.crs.to_string(), src.transform, src.shape
        if key == "blue":
            crs10, t10, shape10 = crs, t, shape
        rel = f"sentinel2/T33UUU_20170216/{key}.tif"
        write_cog(files_root / rel, arr, crs=crs, transform=t, nodata=0)
        res = int(t.a)
        at20[key] = arr if res == 20 else arr.reshape(shape[0] // 2, 2, shape[1] // 2, 2)[
            :, 0, :, 0]
        assets[key] = _asset(href(rel), f"{band} ({key}) {res} m", ["data", "reflectance"],
                             **{"eo:bands": [{"name": band, "common_name": key,
                                              "center_wavelength": wavelength}],
                                "proj:shape": list(shape), "proj:transform": list(t)[:6],
                                "gsd": res,
                                "raster:bands": [{"data_type": "uint16", "nodata": 0,
                                                  "scale": 0.0001, "offset": 0.0,
                                                  "spatial_resolution": res}]})
    assert crs10 is not None and t10 is not None and shape10 is not None
    scl = _synthetic_scl(at20["red"], at20["nir"], at20["swir16"], at20["blue"])
    t20 = t10 @ Affine.scale(2)
    rel = "sentinel2/T33UUU_20170216/scl.tif"
    write_cog(files_root / rel, scl, crs=crs10, transform=t20, nodata=0)
    assets["scl"] = _asset(href(rel), "Scene classification map (SYNTHETIC, from thresholds)",
                           ["data"], **{"proj:shape": list(scl.shape),
                                        "proj:transform": list(t20)[:6], "gsd": 20,
                                        "raster:bands": [{"data_type": "uint8", "nodata": 0}]})
    valid = scl > 0
    cloud = round(float(100.0 * np.count_nonzero(scl[valid] == 9) / max(1, valid.sum())), 2)
    items = []
    for when in dates:
        stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
        props = {"platform": "sentinel-2a", "constellation": "sentinel-2",
                 "instruments": ["msi"], "eo:cloud_cover": cloud, "mgrs:utm_zone": 33,
                 "mgrs:latitude_band": "U", "mgrs:grid_square": "UU",
                 "s2:processing_baseline": "02.04", "processing:level": "L2A-like (L1C pixels)"}
        items.append(item_dict(f"S2A_MSIL2A_{stamp}_T33UUU", when, crs=crs10, transform=t10,
                               shape=shape10, properties=props, assets=dict(assets),
                               extensions=("eo", "raster")))
    return items


# -- Sentinel-1 RTC (synthetic) ------------------------------------------------------------------

#: Sohae (UTM 51N) -- the same point as conftest.SOHAE_UTM.
SOHAE_UTM = (646_260.0, 4_391_410.0)
S1_ORBITS = ((127, "ascending", 9, 30), (61, "descending", 21, 10))  # orbit, state, h, min


def sentinel1_rtc_items(files_root: Path, href: Href, *, seed: int = 0, n_dates: int = 12,
                        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
                        every_days: int = 6, center: tuple[float, float] = SOHAE_UTM,
                        epsg: int = 32651, size: int = 256, pixel: float = 10.0,
                        looks: float = 4.0, change_after: int | None = None,
                        collection_tag: str = "s1rtc") -> list[dict[str, Any]]:
    """``n_dates`` synthetic RTC Items (``vv``/``vh`` float32 linear power, nodata -32768)
    over a ``size`` x ``size`` px square centred on ``center``.  Each pixel's mean backscatter
    is a fixed smooth texture (from ``seed``) times gamma speckle of ``looks`` looks drawn per
    date; dates alternate relative orbits 127 (ascending) and 61 (descending).  With
    ``change_after=k``, dates k and later carry a +10 dB bright 20 x 20 px square at the
    centre (a new structure)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), 6)
    texture = (texture - texture.mean()) / (texture.std() + 1e-9)
    mean_db = {"vv": -11.0 + 2.5 * texture, "vh": -18.0 + 2.5 * texture}
    crs = f"EPSG:{epsg}"
    transform = Affine(pixel, 0, center[0] - size * pixel / 2, 0, -pixel,
                       center[1] + size * pixel / 2)
    items = []
    for i in range(n_dates):
        orbit, state, hour, minute = S1_ORBITS[i % 2]
        when = (start + timedelta(days=i * every_days)).replace(hour=hour, minute=minute)
        stamp = when.strftime("%Y%m%dT%H%M%S")
        item_id = f"S1A_IW_{stamp}_R{orbit:03d}_{collection_tag}_{seed}"
        drng = np.random.default_rng([seed, i])
        assets = {}
        for pol in ("vv", "vh"):
            db = mean_db[pol].copy()
            if change_after is not None and i >= change_after:
                c = size // 2
                db[c - 10:c + 10, c - 10:c + 10] += 10.0
            power = 10 ** (db / 10) * drng.gamma(looks, 1.0 / looks, size=(size, size))
            rel = f"sentinel1/{item_id}/{pol}.tif"
            write_cog(files_root / rel, power.astype(np.float32), crs=crs, transform=transform,
                      nodata=-32768.0)
            assets[pol] = _asset(href(rel), f"{pol.upper()} gamma0 (linear power)", ["data"],
                                 **{"sar:polarizations": [pol.upper()],
                                    "raster:bands": [{"data_type": "float32",
                                                      "nodata": -32768, "unit": "linear"}]})
        props = {"platform": "sentinel-1a", "constellation": "sentinel-1",
                 "instruments": ["c-sar"], "sar:polarizations": ["VV", "VH"],
                 "sar:instrument_mode": "IW", "sar:frequency_band": "C",
                 "sar:center_frequency": 5.405, "sar:product_type": "RTC",
                 "sar:looks_equivalent_number": looks, "sat:orbit_state": state,
                 "sat:relative_orbit": orbit, "sat:absolute_orbit": 50_000 + i * 87}
        items.append(item_dict(item_id, when, crs=crs, transform=transform, shape=(size, size),
                               properties=props, assets=assets,
                               extensions=("sar", "sat", "raster")))
    return items


# -- a Sentinel-2-sized asset ------------------------------------------------------------------

def big_cog(path: Path, *, size: int = 10980, blocksize: int = 512,
            epsg: int = 32651, origin: tuple[float, float] = (600_000.0, 4_400_040.0),
            pixel: float = 10.0, seed: int = 0) -> Path:
    """A Sentinel-2-band-sized uint16 COG (deflate, ``blocksize`` tiles, overviews) whose
    tiles all compress alike (6 bits of noise per pixel; a repeated 1098 px pattern), so the
    bytes a window read costs are representative; about 170 MB and about 6 s at the defaults.
    The default grid is UTM 51N tile 51SYJ-like and covers Sohae.  Kept if it exists."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    cell = -(-size // 10)
    base = rng.integers(0, 64, size=(cell, cell), dtype=np.uint16) + 1000
    data = np.tile(base, (10, 10))[:size, :size]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_PAM_ENABLED="NO"), rasterio.open(
            tmp, "w", driver="COG", width=size, height=size, count=1, dtype="uint16",
            crs=f"EPSG:{epsg}", transform=Affine(pixel, 0, origin[0], 0, -pixel, origin[1]),
            blocksize=blocksize, compress="deflate", predictor=2, level=1, nodata=0,
            overview_resampling="nearest", num_threads="ALL_CPUS") as ds:
        ds.write(data, 1)
    tmp.replace(path)
    return path
