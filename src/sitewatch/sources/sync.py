"""``sitewatch sync``: bring a site's catalogue up to date with its STAC sources.

For each source of the site: search (:mod:`.stac`); for each Item not settled before (key: API
URL + collection + Item id; a re-sync reads no pixels), read the site's window of each asset
into the cache (:mod:`.cache`), build the :class:`~sitewatch.imagery.scenes.Scene` from the
cached files and the Item's metadata (:mod:`.items`), and store the scene with its Item row in
one transaction.  Cache files are written before the row: a sync killed at any point leaves
no half scene, and the files it left are reused (or their temporary files removed) by the
next sync.  An Item that cannot be read fails with one line and the sync goes on; one that
never will be (no overlap with the site, a duplicate acquisition, no usable asset) is skipped
and remembered.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from shapely.geometry import mapping

from sitewatch.errors import (
    MissingExtraError,
    SceneError,
    SiteError,
    SourceError,
    StoreError,
)
from sitewatch.fileio import path_under, safe_name
from sitewatch.imagery.rasters import open_raster, validate_raster
from sitewatch.sites.site import Site
from sitewatch.sources import items as I
from sitewatch.sources.access import (
    Credentials,
    HttpPolicy,
    credentials,
    gdal_header_file,
    gdal_options,
    redact,
    url_signer,
)
from sitewatch.sources.cache import CachedAsset, NoOverlapError, cache_window, clean_partials
from sitewatch.sources.presets import (
    Preset,
    asset_map,
    get_preset,
    needs_signing,
    sensor_of,
)
from sitewatch.sources.records import ItemNote, Source, SyncReport
from sitewatch.sources.stac import (
    acquisition_key,
    footprint,
    same_acquisition,
    search_items,
    unique_items,
)
from sitewatch.store import Store
from sitewatch.store.sources import SettledItem

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``, as the CLI's progress bars take it.
Progress = Callable[[str, int, int], None]


def cache_root(store: Store, cache: str | Path | None = None) -> Path:
    """Where synced windows are kept: ``cache``, else ``cache/`` beside the catalogue file
    (``<home>/cache``)."""
    if cache is not None:
        return Path(cache)
    url = sa.engine.make_url(store.url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "cache"
    raise SourceError("this catalogue is not a file in a sitewatch home: give the cache folder "
                      "for synced imagery (sync_site(..., cache=FOLDER))")


class _Outcome(SceneError):
    """How one Item ended (``kind`` skipped or failed), raised from deep inside its
    processing; never leaves :func:`sync_site`."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def sync_site(store: Store, site_id: str, *, start: datetime | None = None,
              end: datetime | None = None, progress: Progress | None = None,
              cache: str | Path | None = None, policy: HttpPolicy | None = None
              ) -> SyncReport:
    """Search every source of ``site_id`` for Items over the site in [start, end] and
    catalogue the new ones, reading only the site's window of each asset.

    ``cache`` is the folder of cached windows (default ``<home>/cache``); ``policy`` the
    timeouts and retries (default :meth:`HttpPolicy.from_env`).  Returns a
    :class:`SyncReport`; a source that cannot be searched is one of its ``failed`` entries
    (``item`` None).  :class:`SiteError` for an unknown site, :class:`SourceError` for a
    site without sources.
    """
    site = store.use_site(site_id)
    if site is None:
        raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
    sources = store.sources(site_id)
    if not sources:
        raise SourceError(f"site {site_id!r} has no imagery sources: add one with `sitewatch "
                          f"source add {site_id} --preset s2-l2a`")
    policy = policy or HttpPolicy.from_env()
    root = path_under(cache_root(store, cache), site_id)
    root.mkdir(parents=True, exist_ok=True)
    removed = clean_partials(root)
    if removed:
        log.info("removed %d temporary file(s) an interrupted sync left in %s", removed, root)
    added: list[str] = []
    skipped: list[ItemNote] = []
    failed: list[ItemNote] = []
    already = 0
    for src in sources:
        try:
            found = _search(src, site, start, end, policy)
        except (SourceError, MissingExtraError) as exc:
            failed.append(ItemNote(src.name, None, str(exc)))
            continue
        preset, creds, sign, items = found
        known = store.settled_items(site_id, src.api, src.collection)
        todo = list(unique_items(items))
        for n, item in enumerate(todo, 1):
            item_id = str(item.get("id") or "")
            if progress:
                progress(f"sync {src.name}", n - 1, len(todo))
            if item_id in known:
                already += 1
                continue
            try:
                scene_id = _sync_item(store, site, src, preset, creds, sign, item, root,
                                      policy)
            except _Outcome as out:
                (skipped if out.kind == "skipped" else failed).append(
                    ItemNote(src.name, item_id, out.reason))
                continue
            known.add(item_id)
            added.append(scene_id)
        if progress:
            progress(f"sync {src.name}", len(todo), len(todo))
    return SyncReport(site_id, tuple(s.name for s in sources), tuple(added), already,
                      tuple(skipped), tuple(failed))


def _search(src: Source, site: Site, start: datetime | None, end: datetime | None,
            policy: HttpPolicy) -> tuple[Preset | None, Credentials, Callable[[str], str],
                                         list[dict[str, Any]]]:
    preset = get_preset(src.preset) if src.preset else None
    creds = credentials(src.api, src.header_env)
    sign = url_signer(needs_signing(preset, src.api))
    items = search_items(src, site.boundary, start=start, end=end, creds=creds, policy=policy,
                         use_cloud=not preset or preset.cloud_cover)
    return preset, creds, sign, items


def _settle(src: Source, item: dict[str, Any], status: str, scene_id: str | None,
            reason: str | None) -> SettledItem:
    """The Item row to store."""
    platform, when, tile = acquisition_key(item)
    geom = footprint(item)
    return SettledItem(src.api, src.collection, str(item["id"]), src.name, status, scene_id,
                       platform, when, tile, mapping(geom) if geom is not None else None,
                       reason)


def _skip(store: Store, site: Site, src: Source, item: dict[str, Any], reason: str) -> None:
    """Remember an Item skipped for a lasting reason, and end its processing."""
    store.settle_item(site.id, _settle(src, item, "skipped", None, reason))
    raise _Outcome("skipped", reason)


def _duplicate_of(store: Store, site: Site, src: Source, item: dict[str, Any]) -> None:
    """If ``item`` is an acquisition already catalogued from another Item (another
    collection), record it as a duplicate, note it in the kept scene's provenance, and end."""
    key, geom = acquisition_key(item), footprint(item)
    if not key[0] or not key[1]:
        return
    for other in store.items_acquired(site.id, key[0], key[1]):
        if other.status not in ("scene", "duplicate") or other.scene_id is None:
            continue
        other_geom = footprint({"geometry": other.geometry}) if other.geometry else None
        if not same_acquisition(key, geom, (other.platform, other.acquired, other.tile),
                                other_geom):
            continue
        kept = store.get_scene(site.id, other.scene_id)
        reason = (f"same acquisition as Item {other.item_id!r} of {other.collection!r} "
                  f"(scene {other.scene_id})")
        it = _settle(src, item, "duplicate", other.scene_id, reason)
        store.settle_item(site.id, it, scene=I.with_duplicate(kept, src, item)
                          if kept is not None else None)
        raise _Outcome("skipped", reason)


def _sync_item(store: Store, site: Site, src: Source, preset: Preset | None,
               creds: Credentials, sign: Callable[[str], str], item: dict[str, Any],
               root: Path, policy: HttpPolicy) -> str:
    """Catalogue one Item; returns its scene id, or raises :class:`_Outcome`."""
    secrets = creds.secrets
    try:
        meta = I.item_meta(item, src)
    except SceneError as exc:
        raise _Outcome("failed", redact(exc, secrets)) from None
    cloud = meta.cloud_cover
    if (src.max_cloud is not None and cloud is not None and (not preset or preset.cloud_cover)
            and cloud > src.max_cloud):
        raise _Outcome("skipped", f"cloud cover {cloud:g}% over the source's maximum "
                                  f"{src.max_cloud:g}%")
    geom = footprint(item)
    if geom is not None and not geom.intersects(site.boundary):
        _skip(store, site, src, item, "its footprint does not overlap the site")
    _duplicate_of(store, site, src, item)
    bands, masks = asset_map(item, preset)
    assets = item.get("assets") or {}
    wanted = [(b.band, b.asset) for b in bands if b.asset in assets] + \
        [(m.kind, m.asset) for m in masks if m.asset in assets]
    missing = [b.asset for b in bands if b.required and b.asset not in assets]
    if missing:
        _skip(store, site, src, item, f"the Item has no asset {', '.join(map(repr, missing))}")
    if not any(b.asset in assets for b in bands):
        _skip(store, site, src, item, "the Item has no image asset sitewatch can map to a "
                                      "band (give a preset, or assets with eo:bands)")
    for _, key in wanted:
        href = I.href_of(assets[key])
        if not href.lower().startswith(("http://", "https://")):
            _skip(store, site, src, item, f"asset {key!r} is not an http(s) URL "
                                          f"({redact(href, secrets)[:120]})")
    scene_id = I.scene_id_for(store, site.id, src, meta.item_id)
    folder = path_under(root, scene_id)
    try:
        cached = _cache_assets(site, wanted, assets, meta, folder, creds, sign, policy)
        scene = I.build_scene(site.id, scene_id, src, preset, item, meta, bands, masks, cached,
                              sensor=preset.sensor if preset else sensor_of(
                                  meta.properties, src.collection))
    except NoOverlapError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        _skip(store, site, src, item, redact(exc, secrets))
    except (SceneError, SourceError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _Outcome("failed", redact(exc, secrets)) from None
    try:
        store.settle_item(site.id, _settle(src, item, "scene", scene_id, None),
                          scene=scene)
    except StoreError as exc:
        raise _Outcome("failed", str(exc)) from None
    return scene_id


def _cache_assets(site: Site, wanted: list[tuple[str, str]], assets: dict[str, Any],
                  meta: I.ItemMeta, folder: Path, creds: Credentials,
                  sign: Callable[[str], str], policy: HttpPolicy) -> dict[str, CachedAsset]:
    """Each wanted asset's window in ``folder`` (a file an interrupted sync left there is
    reused when it is a whole, valid raster)."""
    out: dict[str, CachedAsset] = {}
    options = gdal_options(policy)
    for band, key in wanted:
        asset = assets[key]
        href = I.href_of(asset)
        dest = folder / f"{safe_name(band)}.tif"
        reused = _reuse(dest)
        if reused is not None:
            out[band] = reused
            continue
        url = sign(href)
        with gdal_header_file(creds, url) as header:
            out[band] = cache_window(url, site.boundary, dest,
                                     name=f"asset {key!r} ({redact(href, creds.secrets)})",
                                     env={**options, **header},
                                     expect_epsg=I.asset_epsg(asset, meta.properties))
    return out


def _reuse(dest: Path) -> CachedAsset | None:
    """A cached window left by an interrupted sync, when it is a valid raster."""
    if not dest.is_file():
        return None
    try:
        with open_raster(dest) as ds:
            validate_raster(ds, dest)
            return I.cached_of(dest, ds)
    except SceneError:
        dest.unlink(missing_ok=True)
        return None


__all__ = ["Progress", "cache_root", "sync_site"]
