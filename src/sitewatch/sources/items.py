"""From a STAC Item and its cached windows to a :class:`~sitewatch.imagery.scenes.Scene`.

The scene's provenance is ``Scene.properties["stac"]``: ``api``, ``collection``, ``item``,
``assets`` (band -> the asset href as the catalogue gave it, credentials and query strings
redacted), ``properties`` (the Item's own metadata: datetime, platform, cloud cover,
``proj:*``, ``sat:*``, ``sar:*``, tiles...), ``windows`` (band -> the pixel window read,
``[col, row, width, height]``) and, when other collections had the same acquisition,
``duplicates`` (``[{"api", "collection", "item"}]``).  Sentinel-1 scenes also get
``properties["polarisations"]`` (from ``sar:polarizations``), ``["orbit_direction"]``
(``sat:orbit_state``), ``["relative_orbit"]`` (``sat:relative_orbit``, an int) and
``["sar_units"]`` (``power`` for float assets such as RTC gamma0, ``amplitude`` for integer
GRD digital numbers).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rasterio.io import DatasetReader

from sitewatch.errors import SceneError
from sitewatch.fileio import safe_name
from sitewatch.imagery.geo import footprint_lonlat
from sitewatch.imagery.rasters import open_raster, validate_raster
from sitewatch.imagery.scenes import BandRef, FileRef, MaskRef, Scene, sha256_file
from sitewatch.sources.access import redact
from sitewatch.sources.cache import CachedAsset
from sitewatch.sources.presets import AssetBand, AssetMask, Preset, scale_offset_nodata
from sitewatch.sources.records import Source
from sitewatch.times import parse_time

#: Item properties kept in the scene's provenance: these keys, and those with these prefixes.
_KEEP = ("datetime", "start_datetime", "end_datetime", "platform", "constellation",
         "instruments", "gsd", "eo:cloud_cover", "s2:mgrs_tile", "s2:processing_baseline",
         "s2:product_uri", "grid:code", "created", "updated")
_KEEP_PREFIX = ("proj:", "sat:", "sar:", "view:", "landsat:", "mgrs:", "processing:",
                "s1:")


@dataclass(frozen=True)
class ItemMeta:
    """What sitewatch takes from an Item's own metadata."""

    item_id: str
    acquired: datetime
    platform: str | None
    cloud_cover: float | None
    properties: dict[str, Any]  # the kept properties (see _KEEP)


def item_meta(item: Mapping[str, Any], src: Source) -> ItemMeta:
    """The id, time, platform and cloud cover of ``item``; :class:`SceneError` when it has
    no id or no readable datetime."""
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise SceneError(f"an Item of {src.collection!r} has no id")
    props = item.get("properties")
    if not isinstance(props, dict):
        raise SceneError(f"Item {item_id!r} has no properties")
    when = props.get("datetime") or props.get("start_datetime")
    if not when:
        raise SceneError(f"Item {item_id!r} has no datetime")
    acquired = parse_time(str(when), f"Item {item_id!r} datetime", SceneError)
    cloud = props.get("eo:cloud_cover")
    kept = {k: v for k, v in props.items() if k in _KEEP or k.startswith(_KEEP_PREFIX)}
    return ItemMeta(item_id, acquired, str(props["platform"]) if props.get("platform") else None,
                    float(cloud) if isinstance(cloud, int | float) else None, kept)


def href_of(asset: Any) -> str:
    return str(asset.get("href") or "") if isinstance(asset, dict) else ""


def asset_epsg(asset: Mapping[str, Any], properties: Mapping[str, Any]) -> Any:
    """The EPSG code an asset says it is in (asset-level ``proj:`` first, then the Item's)."""
    for where in (asset, properties):
        for key in ("proj:epsg", "proj:code"):
            if where.get(key) not in (None, ""):
                return where[key]
    return None


def item_url(src: Source, item_id: str) -> str:
    """The Item's address in its API: the scene's ``source``."""
    return (f"{redact(src.api).rstrip('/')}/collections/{quote(src.collection, safe='')}"
            f"/items/{quote(item_id, safe='')}")


def scene_id_for(store: Any, site_id: str, src: Source, item_id: str) -> str:
    """A scene id for the Item: its own id made safe, with a short hash of the API and
    collection when another scene of the site already has that id."""
    sid = safe_name(item_id, "item", 100)
    other = store.get_scene(site_id, sid)
    if other is None or other.source == item_url(src, item_id):
        return sid
    digest = hashlib.sha256(f"{src.api}\n{src.collection}".encode()).hexdigest()[:8]
    return safe_name(f"{sid[:100]}_{digest}")


def cached_of(path: Path, ds: DatasetReader) -> CachedAsset:
    t = ds.transform
    return CachedAsset(path, path.stat().st_size, sha256_file(path), ds.width, ds.height,
                       tuple(t)[:6], ds.crs.to_wkt() if ds.crs else "",
                       float((math.hypot(t.a, t.d) + math.hypot(t.b, t.e)) / 2),
                       (0, 0, ds.width, ds.height))


def _validated(cached: CachedAsset) -> None:
    """The cached file through the same checks as any input image (the safety layer)."""
    with open_raster(cached.path) as ds:
        validate_raster(ds, cached.path)


def _sar(properties: Mapping[str, Any], dtype_float: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pols = properties.get("sar:polarizations")
    if isinstance(pols, list):
        out["polarisations"] = [str(p).upper() for p in pols]
    state = properties.get("sat:orbit_state")
    if isinstance(state, str) and state:
        out["orbit_direction"] = state.lower()
    rel = properties.get("sat:relative_orbit")
    if isinstance(rel, int | float) and not isinstance(rel, bool):
        out["relative_orbit"] = int(rel)
    out["sar_units"] = "power" if dtype_float else "amplitude"
    return out


def build_scene(site_id: str, scene_id: str, src: Source, preset: Preset | None,
                item: Mapping[str, Any], meta: ItemMeta, bands: Sequence[AssetBand],
                masks: Sequence[AssetMask], cached: Mapping[str, CachedAsset], *,
                sensor: str) -> Scene:
    """The scene of ``item`` whose bands are the ``cached`` windows (keyed by band name or
    mask kind).  :class:`SceneError` when the windows disagree on their CRS."""
    assets = item.get("assets") or {}
    refs: list[BandRef] = []
    float_data = False
    for b in bands:
        c = cached.get(b.band)
        if c is None:
            continue
        _validated(c)
        scale, offset, nodata = scale_offset_nodata(assets[b.asset], preset, meta.properties)
        with open_raster(c.path) as ds:
            float_data = float_data or ds.dtypes[0].startswith("float")
            if nodata is None and ds.nodata is not None and not math.isnan(ds.nodata):
                nodata = float(ds.nodata)
        refs.append(BandRef(b.band, str(c.path), 1, b.common_name, b.wavelength,
                            c.resolution, 1.0 if scale is None else scale,
                            0.0 if offset is None else offset, nodata))
    mrefs = []
    for m in masks:
        if m.kind in cached:
            _validated(cached[m.kind])
            mrefs.append(MaskRef(m.kind, str(cached[m.kind].path), 1))
    if not refs:
        raise SceneError(f"Item {meta.item_id!r}: no band could be read")
    finest = min((cached[r.name] for r in refs), key=lambda c: c.resolution)
    for name, c in cached.items():
        if c.crs_wkt != finest.crs_wkt:
            raise SceneError(f"Item {meta.item_id!r}: asset {name!r} is in another CRS than "
                             "the other bands")
    from affine import Affine
    from rasterio.crs import CRS

    crs = CRS.from_wkt(finest.crs_wkt)
    fp, note = footprint_lonlat(Affine(*finest.transform), finest.width, finest.height, crs,
                                str(finest.path))
    files = tuple(sorted((FileRef(str(c.path), c.size, c.sha256) for c in cached.values()),
                         key=lambda f: f.path))
    checksum = hashlib.sha256("".join(f"{f.sha256}\n" for f in files).encode()).hexdigest()
    stac: dict[str, Any] = {
        "api": redact(src.api), "collection": src.collection, "item": meta.item_id,
        "source": src.name,
        "assets": {name: redact(href_of(assets[key]))
                   for name, key in [(b.band, b.asset) for b in bands]
                   + [(m.kind, m.asset) for m in masks] if name in cached},
        "windows": {name: list(c.window) for name, c in cached.items()},
        "properties": meta.properties,
    }
    props: dict[str, Any] = {"stac": stac}
    if sensor == "sentinel-1":
        props.update(_sar(meta.properties, float_data))
    return Scene(
        id=scene_id, source=item_url(src, meta.item_id), acquired=meta.acquired,
        time_source="STAC Item datetime", sensor=sensor, platform=meta.platform,
        bands=tuple(refs), masks=tuple(mrefs), crs=finest.crs_wkt, width=finest.width,
        height=finest.height, transform=finest.transform,
        resolution=min(r.resolution for r in refs if r.resolution), footprint=fp,
        files=files, checksum=checksum, site_id=site_id,
        warnings=(note,) if note else (), properties=props)


def with_duplicate(scene: Scene, src: Source, item: Mapping[str, Any]) -> Scene:
    """``scene`` with ``item`` (the same acquisition in another collection) noted in its
    provenance."""
    props = dict(scene.properties)
    stac = dict(props.get("stac") or {})
    dups = list(stac.get("duplicates") or [])
    entry = {"api": redact(src.api), "collection": src.collection, "item": str(item.get("id"))}
    if entry not in dups:
        dups.append(entry)
    stac["duplicates"] = dups
    props["stac"] = stac
    return replace(scene, properties=props)


__all__ = ["ItemMeta", "asset_epsg", "build_scene", "cached_of", "href_of", "item_meta",
           "item_url", "scene_id_for", "with_duplicate"]
