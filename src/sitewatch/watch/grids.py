"""One grid of a site in a watch run: its bands (those most scenes share), its reference
(re-chosen from the scenes by every run), the memory it may hold, and each scene's result
and per-part observations (see :mod:`sitewatch.watch.pipeline` for the whole flow).

A scene that lacks the grid's bands is stored unusable; one whose pixels cannot be read is
stored failed with the reason (and left out of the later dates' chains), and the run goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.errors
from rasterio._err import CPLE_BaseError

from sitewatch import __version__
from sitewatch.change.base import MethodError
from sitewatch.change.detect import detect_arrays, resolve
from sitewatch.change.optical import local_mean
from sitewatch.errors import GridError, SitewatchError
from sitewatch.imagery.coregister import Shift, register
from sitewatch.imagery.grid import (
    GridImage,
    SiteGrid,
    default_resolution,
    grid_for_scenes,
    load_scene,
)
from sitewatch.imagery.scenes import Scene
from sitewatch.imagery.sensors import (
    ASSUMED_KIND,
    OPTICAL_BANDS,
    WATCH_METHOD,
    kind_of,
    registration_bands,
    watch_threshold,
    worth_applying,
)
from sitewatch.imagery.sentinel1 import orbit_key
from sitewatch.sites.site import Site
from sitewatch.store import Store
from sitewatch.store.parts import layout_key
from sitewatch.watch.imagecache import ImageCache
from sitewatch.watch.params import PipelineError, RunParams, RunReport
from sitewatch.watch.records import (
    Chain,
    ChangeProducts,
    Comparison,
    Observation,
    ProcessedScene,
    SceneRegistration,
    measures_of,
)
from sitewatch.watch.sarseries import OMNIBUS_ALPHA, OMNIBUS_DATES, omnibus_observations
from sitewatch.watch.zonal import MIN_OBSERVED, REST, ZoneIndex, part_changes

log = logging.getLogger(__name__)

#: A scene whose site coverage reaches this can be a grid's co-registration reference.
REFERENCE_MIN_SEEN = 0.9
#: A comparison spans seasons when its reference date (the previous usable date, or the
#: composite's middle member) is more than this many days before the scene.
SEASON_GAP_DAYS = 60
#: The same-season reference: usable dates of earlier years within this many days of the
#: scene's day of year (and at least :data:`SEASON_MIN_AGE_DAYS` before it) ...
SEASON_WINDOW_DAYS = 31
SEASON_MIN_AGE_DAYS = 300
#: ... the most recent this many of them, composited by per-pixel median.
SEASON_MEMBERS = 3
#: What reading a catalogued scene's pixels can raise besides sitewatch's own errors: GDAL's
#: read errors (a corrupt tile that ingest's probe of the first and last blocks missed), and
#: the file system's (a file gone or unreadable since it was ingested).
_READ_ERRORS = (rasterio.errors.RasterioError, CPLE_BaseError, OSError)

#: Environment variable: the most memory a run may plan to hold, in bytes or with a unit
#: (``512M``, ``8G``, ``1.5T``); default half the machine's physical memory.
MEMORY_ENV = "SITEWATCH_MEMORY_BUDGET"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def memory_budget() -> tuple[int, str]:
    """The bytes a run may plan to hold, and where that figure comes from: ``$SITEWATCH_
    MEMORY_BUDGET`` when set, else half the physical memory (8 GiB where it is not known)."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.lower())
        if m is None or float(m.group(1)) <= 0:
            raise PipelineError(f"{MEMORY_ENV}={text!r}: give bytes or a size such as 512M "
                                "or 8G")
        return int(float(m.group(1)) * _UNITS[m.group(2)]), f"{MEMORY_ENV}={text}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30, f"default; set {MEMORY_ENV} to change it"
    return total // 2, f"half the physical memory; set {MEMORY_ENV} to change it"


def run_memory(grid: SiteGrid, bands: int, composite: int, parts: int) -> int:
    """The bytes processing one grid holds at its peak, an estimate fitted to the pipeline's
    measured peak (numpy allocations traced on a 1,200 x 1,200 px, 4-band grid; GDAL's block
    cache, ``GDAL_CACHEMAX``, comes on top).  An image is ``bands`` float32 bands on the grid;
    the composite's members (``composite`` images, the previous date one of them) are kept
    from one date to the next.  The peak is the larger of co-registration (the probe, the
    reference band and the phase correlation's transforms, about 110 bytes a pixel) and
    change detection (the scene in hand, the composite, the detector's and the per-part
    measures' working copies: about 8 images); a byte a pixel for each part's mask and a few
    more (site, rest, quality, validity); and 64 MiB for the rest (Python, the database).
    Measured peaks were about 0.8 of it (781 and 1,182 px square grids).  A scene whose
    comparisons span seasons is then also compared with the same season of earlier years
    (:func:`season_members`), after the other two and with the composite still held: its
    :data:`SEASON_MEMBERS` images, their median, the composite, the scene and one
    comparison's working copies (about 4 images); counted from that sum, not yet measured."""
    px = grid.width * grid.height
    image = px * bands * 4
    held = image * composite
    register_peak = held + px * 112
    detect_peak = held + image * 8
    season_peak = held + image * (SEASON_MEMBERS + 1 + 1 + 1 + 4)
    return max(register_peak, detect_peak, season_peak) + px * (parts + 6) + 64 * 2**20


def grid_key(scene: Scene) -> str:
    """The grid (and series) a scene is processed on: its sensor kind and resolution, e.g.
    ``optical-10m``; SAR scenes also by orbit, ``sar-10m-rel047-asc``
    (:func:`~sitewatch.imagery.sentinel1.orbit_key`), so that a SAR date is only ever
    compared with, co-registered to and scored against dates of the same viewing geometry."""
    kind = kind_of(scene.sensor) or ASSUMED_KIND
    key = f"{kind}-{default_resolution([scene]):g}m"
    return f"{key}-{orbit_key(scene.properties)}" if kind == "sar" else key


def chain_length(params: RunParams, kind: str) -> int:
    """How many usable dates before a scene its result rests on: the composite's members,
    and on SAR grids the omnibus series (:data:`OMNIBUS_DATES`) when that is longer."""
    return max(params.composite, OMNIBUS_DATES - 1) if kind == "sar" else params.composite


def load_bands(scenes: Sequence[Scene], kind: str) -> tuple[str, ...]:
    """The bands a grid uses, standard optical ones first: those more than half of its
    scenes have, so that one scene with other bands cannot shrink them (it is stored as
    unusable on the grid instead).  While no scene has them all, the band fewest scenes have
    is dropped (the last in order among equals); when no band has a majority (two scenes with
    different bands), the earliest scene's bands are used.

    >>> from types import SimpleNamespace as S
    >>> four = S(band_names=["blue", "green", "red", "nir"])
    >>> load_bands([four, four, four, S(band_names=["b1", "b2"])], "optical")
    ('blue', 'green', 'red', 'nir')
    """
    if not scenes:
        return ()
    have = [set(s.band_names) for s in scenes]
    order = [b for b in OPTICAL_BANDS if kind == "optical"]
    for s in scenes:
        order += [b for b in s.band_names if b not in order]
    count = {b: sum(b in h for h in have) for b in order}
    keep = [b for b in order if 2 * count[b] > len(scenes)]
    while keep and not any(set(keep) <= h for h in have):
        keep.remove(min(reversed(keep), key=lambda b: count[b]))
    if not keep:
        keep = [b for b in order if b in have[0]]
    if kind == "optical":
        pick = tuple(b for b in keep if b in OPTICAL_BANDS)
        if pick:
            return pick
    return tuple(keep)


def lacking(scene: Scene, bands: Sequence[str]) -> list[str]:
    """The grid bands ``scene`` does not have."""
    names = set(scene.band_names)
    return [b for b in bands if b not in names]


def detector_for(params: RunParams, kind: str, bands: Sequence[str]) -> tuple[str, dict]:
    """The detector name and parameters for a grid."""
    name = params.method or WATCH_METHOD[kind]
    p = dict(params.method_params)
    if name == "hacd" and "bands" not in p and not {"blue", "green", "red"} <= set(bands):
        p["bands"] = "all"
    resolve(name, kind, p).check_bands(tuple(bands))  # fails early, naming what is missing
    return name, p


class UnreadableScene(SitewatchError, OSError):
    """A catalogued scene's pixels cannot be read now (a corrupt tile that passed ingest's
    probe, a file gone or changed since): the scene fails, the run goes on."""

    def __init__(self, scene_id: str, message: str):
        super().__init__(message)
        self.scene_id = scene_id


def _read_message(exc: BaseException) -> str:
    """One line saying why a read failed, GDAL's own words first when it gave them
    (rasterio's "Read failed. See previous exception" carries them as its cause)."""
    seen: list[str] = []
    e: BaseException | None = exc
    while e is not None and len(seen) < 2:
        text = str(e).strip()
        line = text.splitlines()[0] if text else type(e).__name__
        if line not in seen and not line.startswith("Read failed. See previous"):
            seen.append(line)
        e = e.__cause__ or e.__context__
    return "; ".join(seen) or type(exc).__name__


class GridRun:
    """The state of one grid while its scenes are processed."""

    def __init__(self, store: Store, site: Site, key: str, scenes: list[Scene],
                 params: RunParams, products: Path | None = None, *,
                 grid: SiteGrid | None = None, bands: tuple[str, ...] | None = None,
                 cache: Path | None = None):
        self.store, self.site, self.key, self.scenes, self.params = store, site, key, scenes, params
        self.products = products
        self.kind = key.split("-", 1)[0]
        self.grid: SiteGrid = grid or grid_for_scenes(site, scenes)
        self.fingerprint = self.grid.fingerprint()
        self.bands = bands if bands is not None else load_bands(scenes, self.kind)
        if not self.bands:
            raise PipelineError(f"{site.id}: the {key} scenes have no band")
        #: Scenes without every grid band: unusable on this grid (item: band sets).
        self.missing = {s.id: gap for s in scenes if (gap := lacking(s, self.bands))}
        self.method, self.method_params = detector_for(params, self.kind, self.bands)
        self.reg_bands = registration_bands(self.bands)
        if self.grid.crs is None:
            _ = self.masks  # refused now (a pixel grid cannot place parts), as before
        #: The zones part_changes reports on: each placed part, then the rest of the site.
        #: Their masks are made when first needed (a run with nothing new needs none).
        self.zone_names = [*self._part_names(), REST]
        #: Each zone's geometry version, stored with its observations; the layout key
        #: (parts and versions) is part of every result's chain, so a part moved since a
        #: scene was scored makes the scene scored again.
        current = store.current_part_versions(site.id)
        self.versions = {name: current.get(name, 0) for name in self.zone_names}
        self.layout = layout_key(self.versions)
        self.pixel_area = self.grid.resolution ** 2
        self.cache: dict[str, GridImage] = {}
        self.ref_id: str | None = None
        self.ref_band: np.ndarray | None = None
        #: Scenes found unreadable in this run, with why: failed, and left out of every chain.
        self.unreadable: dict[str, str] = {}
        #: The composite's members kept on disk between runs (None: no cache folder).
        self.disk = (ImageCache(cache, site.id, params.hash, key, self.grid, self.fingerprint,
                                tuple(self.bands)) if cache is not None else None)

    def _part_names(self) -> list[str]:
        """The parts :meth:`SiteGrid.part_masks` makes a mask of (those with a footprint on
        the grid's CRS), in its order, without drawing the masks."""
        out = []
        for p in self.site.placed_parts():
            geom = p.footprint(self.grid.crs)
            if geom is not None and not geom.is_empty:
                out.append(p.name)
        return out

    @functools.cached_property
    def masks(self) -> dict[str, np.ndarray]:
        """Each placed part's mask on the grid."""
        return self.grid.part_masks(self.site)

    @functools.cached_property
    def inside(self) -> np.ndarray:
        """The site's mask on the grid."""
        return self.grid.site_mask(self.site)

    @functools.cached_property
    def zones(self) -> dict[str, np.ndarray]:
        """Each part's mask and the rest of the site's (inside the site, outside every
        part): what part_changes reports on."""
        rest = self.inside.copy()
        for m in self.masks.values():
            rest &= ~m
        zones = {**self.masks, REST: rest}
        if list(zones) != self.zone_names:
            raise PipelineError(f"{self.site.id}: the {self.key} grid's part masks "
                                f"{list(zones)} are not its parts {self.zone_names}")
        return zones

    @functools.cached_property
    def zone_index(self) -> ZoneIndex:
        """The zones as pixel indices, worked out once for every date of the grid (and not
        at all by a run with nothing to process).  The part masks it is made from are not
        kept unless something else asked for them (SAR's omnibus zones): a full-grid mask
        per part is 80 MB for 20 parts at 2000 x 2000 px."""
        masks = self.__dict__.get("masks") or self.grid.part_masks(self.site)
        return ZoneIndex(masks, self.inside)

    def read(self, sc: Scene, bands: Sequence[str], shift: Shift | None = None) -> GridImage:
        """``sc`` on the grid; whatever stops its pixels being read (sitewatch's errors,
        GDAL's, the file system's) is :class:`UnreadableScene`."""
        try:
            return load_scene(sc, self.grid, bands, shift=shift)
        except UnreadableScene:
            raise
        except SitewatchError as exc:
            raise UnreadableScene(sc.id, str(exc)) from None
        except _READ_ERRORS as exc:
            raise UnreadableScene(
                sc.id, f"{sc.source}: pixels cannot be read ({_read_message(exc)})") from None

    def load(self, sc: Scene, shift: Shift | None = None) -> GridImage:
        return self.read(sc, self.bands, shift)

    def reg_image(self, img: GridImage) -> np.ndarray:
        """The image co-registration matches.  SAR: the polarisations' mean, look-averaged
        over 3 x 3 and in dB, so that speckle and a few bright scatterers do not dominate
        the phase correlation (scenes of one orbit share their geometry; a match the
        windows cannot confirm is not applied, as for optical scenes)."""
        x = np.mean([img.band(b) for b in self.reg_bands], axis=0)
        if self.kind != "sar":
            return x
        with np.errstate(invalid="ignore", divide="ignore"):
            db = 10.0 * np.log10(np.maximum(local_mean(x, 3), 1e-10))
        return np.where(np.isfinite(x), db, np.nan).astype(np.float32)

    def seen(self, img: GridImage) -> float:
        return float(img.valid[self.inside].mean()) if self.inside.any() else 0.0

    def _seen_share(self, sc: Scene, row: ProcessedScene | None) -> float | None:
        """The share of the site ``sc`` sees: from its stored result when that was measured
        on this grid with these bands and file, else read now (None: it cannot be)."""
        if (row is not None and row.grid == self.key and row.chain.checksum == sc.checksum
                and row.chain.grid in ("", self.fingerprint)
                and tuple(row.bands) == tuple(self.bands)):
            return row.site_observed if math.isfinite(row.site_observed) else None
        try:
            return self.seen(self.read(sc, self.reg_bands))
        except UnreadableScene as exc:
            log.warning("%s: cannot be read as a reference: %s", sc.id, exc)
            self.unreadable[sc.id] = f"cannot be loaded: {exc}"
            return None

    def choose_reference(self, done: Mapping[str, ProcessedScene]) -> str:
        """The earliest scene (by time, then id) seeing at least 90% of the site, else the
        one seeing most (the earliest of equals), among the scenes that have the grid's bands
        and can be read: a function of the grid's scenes, so the same scenes give the same
        reference (and results) whatever order they were ingested in.  A back-filled older
        scene that becomes the reference makes every result of the grid stale (its chain
        names the reference).  Stored for display (``grids``).  When no scene qualifies,
        every scene is failed (or unusable) and the reference is ``""``."""
        best, best_seen = None, -1.0
        for sc in self.scenes:  # the store's order: time, then id
            if sc.id in self.missing or sc.id in self.unreadable:
                continue
            s = self._seen_share(sc, done.get(sc.id))
            if s is None:
                continue
            if s > best_seen:
                best, best_seen = sc.id, s
            if s >= REFERENCE_MIN_SEEN:
                break
        if best is None:  # every scene fails (or is unusable); the run goes on
            log.warning("%s: no %s scene could be read", self.site.id, self.key)
            for sc in self.scenes:
                if sc.id not in self.missing:
                    self.unreadable.setdefault(sc.id, "cannot be loaded: no scene of the grid "
                                                      "could be read as its reference")
            self.ref_id, self.ref_band = "", None
            return ""
        if best != self.ref_id:
            self.cache.clear()  # loaded with shifts measured against another reference
            self.ref_band = None
            self.ref_id = best
        if self.store.grid_reference(self.site.id, self.key) != best:
            self.store.set_grid_reference(self.site.id, self.key, best)
        return best

    def reference_band(self) -> np.ndarray:
        """The reference's registration band; :class:`_Unreadable` when it cannot be read."""
        if self.ref_band is None:
            assert self.ref_id is not None
            sc = self.scene(self.ref_id)
            band = self.disk.get_band(sc, self._ref_what) if self.disk is not None else None
            if band is None:
                try:
                    band = self.reg_image(self.read(sc, self.reg_bands))
                except UnreadableScene as exc:
                    raise _Unreadable(sc.id, str(exc)) from None
                if self.disk is not None:
                    self.disk.put_band(sc, self._ref_what, band)
            self.ref_band = band
        return self.ref_band

    @property
    def _ref_what(self) -> tuple[str, ...]:
        """How the reference's band is made (its key in the disk cache)."""
        return ("registration", self.kind, *self.reg_bands)

    def aligned(self, scene_id: str) -> GridImage:
        """A usable scene, loaded again with its recorded shift (cached); :class:`_Unreadable`
        when its pixels cannot be read any more."""
        if scene_id not in self.cache:
            sc = self.scene(scene_id)
            shift = self.recorded_shift(scene_id)
            img = self.disk.get(sc, shift) if self.disk is not None else None
            if img is None:
                try:
                    img = self.load(sc, shift)
                except UnreadableScene as exc:
                    raise _Unreadable(sc.id, str(exc)) from None
            self.cache[scene_id] = img
        return self.cache[scene_id]

    def scene(self, scene_id: str) -> Scene:
        return next(s for s in self.scenes if s.id == scene_id)

    def recorded_shift(self, scene_id: str) -> Shift | None:
        """The shift undone when the usable scene was loaded (its registration to the
        grid's reference), None when none was."""
        shift = None
        for r in self.store.registrations(self.site.id, self.key, scene_id=scene_id):
            if r.reference_id == self.ref_id:
                shift = r.applied_shift
        return shift

    def keep_on_disk(self, ids: Sequence[str]) -> None:
        """Keep the images of ``ids`` (the next date's composite members) in the disk cache,
        and only those of the grid."""
        if self.disk is None:
            return
        wanted = []
        for i in ids:
            sc = self.scene(i)
            img = self.cache.get(i)
            if img is not None:
                self.disk.put(sc, img)
                wanted.append((sc, img.shift))
            else:
                wanted.append((sc, self.recorded_shift(i)))
        ref = [(self.scene(self.ref_id), self._ref_what)] if self.ref_id else []
        self.disk.keep(wanted, ref)

    def release_members(self, members: Sequence[str], previous: str) -> None:
        """Once the composite of ``members`` is made, what the comparisons need not hold
        (each member is 68 MB at 2000 x 2000 px x 4 bands).  With the window full, the
        oldest member, which no later date's composite has once this scene is usable
        (should it not be, the next date reads it again); and, when there is a disk image
        cache, every other member but the previous date (compared next): kept there (each
        is written once, when first let go) and read back from there for the next date,
        about 0.1 s each.  A series from scratch then holds 2 images instead of 5 between
        its comparisons, for about a tenth more time (docs/bench_watch_speed.md)."""
        full = len(members) == chain_length(self.params, self.kind)
        for i, m in enumerate(members):
            if m == previous:
                continue
            img = self.cache.get(m)
            if i == 0 and full:  # out of the window: not kept on disk either
                self.cache.pop(m, None)
                if self.disk is not None:
                    shift = img.shift if img is not None else self.recorded_shift(m)
                    self.disk.drop(self.scene(m), shift)
            elif img is not None and self.disk is not None and self.disk.put(self.scene(m), img):
                del self.cache[m]  # kept when the cache cannot be written

    def needs_fill(self, previous: GridImage) -> np.ndarray | None:
        """The pixels of the parts ``previous`` saw less than :data:`~sitewatch.watch.
        zonal.MIN_OBSERVED` of (None: no part): only those take their last clear view from
        earlier dates, so that a part the previous date saw is compared with that date
        alone, as before, and the rest of the site (the measures' baseline) likewise."""
        valid = previous.valid.ravel()
        out: np.ndarray | None = None
        for name, px in self.zone_index.pixels.items():
            if name == REST or not px.size or valid[px].mean() >= MIN_OBSERVED:
                continue
            if out is None:
                out = np.zeros(valid.size, bool)
            out[px] = True
        return out.reshape(previous.valid.shape) if out is not None else None

    def keep_only(self, ids: Iterable[str]) -> None:
        keep = set(ids)
        for k in list(self.cache):
            if k not in keep:
                del self.cache[k]


class _Unreadable(SitewatchError, RuntimeError):
    """A scene an earlier result rests on (the reference, a previous date, a composite
    member) cannot be read any more: the grid's pass starts again without it."""

    def __init__(self, scene_id: str, why: str):
        super().__init__(why)
        self.scene_id, self.why = scene_id, why


def _chain(g: GridRun, sc: Scene, ref: str, previous: str | None, composite: list[str],
           season: Sequence[str] = ()) -> Chain:
    return Chain(sc.checksum, ref, previous, tuple(composite), g.fingerprint, g.layout,
                 tuple(season))


def _days_apart(a: Any, b: Any) -> float:
    return abs((a - b).total_seconds()) / 86400.0


def season_spans(when: Any, previous: str | None, composite: Sequence[str],
                 times: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether a scene's comparison with its previous usable date, and with its composite
    (its middle member), reach across seasons: more than :data:`SEASON_GAP_DAYS` apart.
    ``times``: acquisition times by scene id."""
    def far(i: str | None) -> bool:
        t = times.get(i) if i is not None else None
        return t is not None and _days_apart(when, t) > SEASON_GAP_DAYS

    return far(previous), len(composite) >= 2 and far(composite[(len(composite) - 1) // 2])


def spans_seasons(g: GridRun, sc: Scene, previous: str | None, composite: Sequence[str]
                  ) -> bool:
    """Whether either of the scene's comparisons spans seasons (:func:`season_spans`)."""
    ids = [i for i in (previous, *composite) if i is not None]
    return any(season_spans(sc.acquired, previous, composite,
                            {i: g.scene(i).acquired for i in ids}))


def season_members(g: GridRun, sc: Scene, usable: Sequence[str]) -> tuple[str, ...]:
    """The same-season reference of ``sc`` when its comparisons span seasons
    (:func:`spans_seasons`): the latest :data:`SEASON_MEMBERS` usable dates of earlier years
    (at least :data:`SEASON_MIN_AGE_DAYS` before it) within :data:`SEASON_WINDOW_DAYS` of
    its day of year, oldest first; () when there is none or the pair does not span seasons
    (optical grids only).  A function of the usable dates before the scene, so it is part
    of the chain, and an incremental run gives what a run from scratch gives."""
    if g.kind == "sar" or not usable:
        return ()
    held = chain_length(g.params, g.kind)
    if not spans_seasons(g, sc, usable[-1], usable[-held:]):
        return ()
    out: list[str] = []
    for i in reversed(usable):
        other = g.scene(i).acquired
        age = _days_apart(sc.acquired, other)
        if age < SEASON_MIN_AGE_DAYS:
            continue
        doy = abs(sc.acquired.timetuple().tm_yday - other.timetuple().tm_yday)
        if min(doy, 365 - doy) <= SEASON_WINDOW_DAYS:
            out.append(i)
            if len(out) == SEASON_MEMBERS:
                break
    return tuple(reversed(out))


def _obs(g: GridRun, sc: Scene, part: str, reference: str, reference_id: str | None,
         observed: float, changed: float, measures: dict[str, float]) -> Observation:
    return Observation(g.site.id, sc.id, g.params.hash, part, reference, g.key, sc.acquired,
                       reference_id, observed, changed, measures, g.versions.get(part, 0))


def _not_observed(g: GridRun, sc: Scene, img: GridImage | None) -> list[Observation]:
    rows = []
    valid = img.valid.ravel() if img is not None else None
    for name in g.zone_names:
        px = g.zone_index.pixels[name]
        n = int(px.size)
        frac = float(valid[px].mean()) if (valid is not None and n) else 0.0
        rows.append(_obs(g, sc, name, "none", None, frac, math.nan,
                         {"pixels": n, "observed_fraction": frac}))
    return rows


def _observations(g: GridRun, sc: Scene, before: np.ndarray, after: GridImage, reference: str,
                  reference_id: str, members: Sequence[str] = (), products: bool = False,
                  filled: np.ndarray | None = None) -> tuple[list[Observation], Comparison]:
    ch = detect_arrays(before, after.data, g.bands, g.method, sensor=g.kind,
                       params=g.method_params or None, threshold=watch_threshold(g.method))
    stats = part_changes(ch, {}, g.pixel_area, before=before, after=after.data,
                         bands=g.bands, zones=g.zone_index)  # the zones hold the masks
    rows = []
    for name, pc in stats.items():
        m = measures_of(pc.to_dict())
        if filled is not None:
            # The share of the zone's compared pixels whose reference is an earlier date
            # than the previous one (their last clear observation).
            px = g.zone_index.pixels[name]
            seen = ch.observed.ravel()[px]
            m["reference_filled"] = (float(filled.ravel()[px][seen].mean()) if seen.any()
                                     else math.nan)
        rows.append(_obs(g, sc, name, reference, reference_id, pc.observed_fraction,
                         pc.changed_fraction, m))
    written = None
    if g.products is not None and products:
        from sitewatch.watch.products import product_paths, write_change_products

        paths = product_paths(g.products, g.site.id, g.params.hash, g.key, sc.id)
        got = write_change_products(
            ch, g.grid, paths, {"site": g.site.id, "scene": sc.id, "before": reference_id,
                                "reference": reference, "sitewatch": __version__})
        written = ChangeProducts(got["change"], got["score"])
    site_obs = g.inside & ch.observed
    info = Comparison(reference, reference_id, ch.method, ch.threshold, ch.threshold_rule,
                      float(ch.changed[site_obs].mean()) if site_obs.any() else math.nan,
                      tuple(members), written)
    return rows, info


def _composite(images: Sequence[GridImage]) -> np.ndarray:
    """Per-pixel median of the images (clear-sky: masked pixels are NaN and skipped).

    Band by band, the members' values are put in order by a sorting network of elementwise
    minima and maxima (NaN taken as +inf, so it sorts last); the median is then read at the
    middle of each pixel's ``k`` valid values.  The same values as sorting each pixel's
    members (what this did before, and ``np.nanmedian``), several times faster and without
    a members-last copy of the stack.

    >>> a = np.array([[[1.0, np.nan]]], np.float32)
    >>> b = np.array([[[3.0, np.nan]]], np.float32)
    >>> c = np.array([[[np.nan, np.nan]]], np.float32)
    >>> imgs = [type("I", (), {"data": x})() for x in (a, b, c)]
    >>> _composite(imgs).tolist()
    [[[2.0, nan]]]
    """
    first = images[0].data
    m = len(images)
    out = np.empty(first.shape, np.float32)
    inf = np.float32(np.inf)
    for b in range(first.shape[0]):
        vals = []
        k = np.zeros(first.shape[1:], np.int8 if m < 127 else np.int32)
        for im in images:
            x = np.array(im.data[b], dtype=np.float32)  # a copy: sorted in place below
            k += np.isfinite(x)
            x[np.isnan(x)] = inf
            vals.append(x)
        # Odd-even transposition network: m rounds of compare-exchange put every pixel's
        # m values in ascending order (exact: min/max only move values).
        for r in range(m):
            for i in range(r % 2, m - 1, 2):
                lo = np.minimum(vals[i], vals[i + 1])
                np.maximum(vals[i], vals[i + 1], out=vals[i + 1])
                vals[i] = lo
        lo = _pick(vals, np.maximum((k - 1) // 2, 0))
        hi = _pick(vals, np.maximum(k // 2, 0))
        out[b] = (lo + hi) * np.float32(0.5)
        out[b][k == 0] = np.nan
    return out


def _pick(vals: Sequence[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Per pixel, ``vals[idx]`` (``np.choose``, by ``np.where`` over the few indices that
    occur: several times faster)."""
    top = int(idx.max()) if idx.size else 0
    sel = vals[top]
    for j in range(top - 1, -1, -1):
        sel = np.where(idx == j, vals[j], sel)
    return sel


def process_grid(g: GridRun, done: dict[str, ProcessedScene], report: RunReport,
                  tick: Callable[[str], None]) -> None:
    """Process the grid's scenes in time order.  When a scene an earlier result rests on (the
    reference, a previous date, a composite member) turns out unreadable, it is failed with
    the reason and the pass starts again without it: the results are then those of a run in
    which that scene failed from the start (at most one pass more per such scene)."""
    reused0, n0 = report.reused, len(report.processed)
    for _ in range(len(g.scenes) + 1):
        report.reused = reused0
        try:
            usable = _grid_pass(g, done, report, tick)
            g.keep_on_disk(usable[-chain_length(g.params, g.kind):])
            break
        except _Unreadable as bad:
            log.warning("%s: %s; it is failed, and later dates are compared without it",
                        bad.scene_id, bad.why)
            g.unreadable[bad.scene_id] = f"can no longer be read: {bad.why}"
            g.cache.pop(bad.scene_id, None)
    g.cache.clear()  # a grid's images are not needed by the next grid
    # A scene processed by two passes is reported once, with its last result.
    last = {sc: i for i, (sc, _, _) in enumerate(report.processed) if i >= n0}
    report.processed[n0:] = [p for i, p in enumerate(report.processed)
                             if i >= n0 and last[p[0]] == i]


def _grid_pass(g: GridRun, done: dict[str, ProcessedScene], report: RunReport,
               tick: Callable[[str], None]) -> list[str]:
    """One pass over the grid's scenes; returns the usable ones, in time order."""
    store, params = g.store, g.params
    ref = g.choose_reference(done)
    report.grids[g.key] = ref
    usable: list[str] = []
    held = chain_length(params, g.kind)
    for sc in g.scenes:
        previous = usable[-1] if usable else None
        comp_ids = usable[-held:]
        chain = _chain(g, sc, ref, previous, comp_ids, season_members(g, sc, usable))
        row = done.get(sc.id)
        fresh = (row is not None and row.chain.same_as(chain) and row.grid == g.key
                 and tuple(row.bands) == tuple(g.bands)
                 and (sc.id not in g.unreadable or not row.usable))
        if fresh:
            assert row is not None
            report.reused += 1
            if row.usable:
                usable.append(sc.id)
            tick(sc.id)
            continue
        result, obs = _process_scene(g, sc, chain)
        store.put_result(result, obs)
        done[sc.id] = result
        report.processed.append((sc.id, result.status, result.reason))
        if result.usable:
            usable.append(sc.id)
            # What the next date needs: the composite's members (the previous date is one)
            # and, on SAR grids, the omnibus series.
            g.keep_only(usable[-held:])
        else:
            g.cache.pop(sc.id, None)
        tick(sc.id)
    return usable


def _process_scene(g: GridRun, sc: Scene, chain: Chain
                   ) -> tuple[ProcessedScene, list[Observation]]:
    ref, previous, chain_ids = chain.reference, chain.previous, list(chain.composite)
    comp_ids = chain_ids[-g.params.composite:]
    seen = math.nan
    reg_rec: SceneRegistration | None = None
    comparisons: dict[str, Comparison] = {}
    omnibus: dict[str, Any] | None = None

    def result(status: str, why: str, obs: list[Observation]
               ) -> tuple[ProcessedScene, list[Observation]]:
        return ProcessedScene(
            g.site.id, sc.id, g.params.hash, g.key, sc.acquired, status, why, chain,
            g.params.to_dict(), previous if status == "ok" else None, seen, tuple(g.bands),
            g.method, dict(g.method_params), __version__, comparisons.get("previous"),
            comparisons.get("composite"), reg_rec, omnibus=omnibus), obs

    if sc.id in g.unreadable:
        return result("failed", g.unreadable[sc.id], _not_observed(g, sc, None))
    missing = g.missing.get(sc.id)
    if missing:
        why = (f"lacks the band(s) the {g.key} grid uses: {', '.join(missing)} (it has "
               f"{', '.join(sc.band_names)})")
        return result("unusable", why, _not_observed(g, sc, None))
    # The registration band(s) alone decide usability and the shift; the scene's bands are
    # then read once, with the shift undone in the same warp.
    try:
        probe = g.read(sc, g.reg_bands)
    except UnreadableScene as exc:
        return result("failed", f"cannot be loaded: {exc}", _not_observed(g, sc, None))
    seen = g.seen(probe)
    if seen < g.params.min_usable:
        why = f"{seen:.0%} of the site observed (cloud, shadow or no data)"
        return result("unusable", why, _not_observed(g, sc, probe))
    shift = None
    if sc.id != ref:
        try:
            reg = register(g.reference_band(), g.reg_image(probe))
        except GridError as exc:
            return result("rejected", f"co-registration failed: {exc}",
                          _not_observed(g, sc, probe))
        unconfirmed = reg.status == "rejected" and math.isnan(reg.residual_px)
        applied = not unconfirmed and worth_applying(reg.shift)
        if unconfirmed:
            # A weak match that too few windows can check (a small site, or seasons apart):
            # no evidence of a shift either way, so the scene is used as geolocated by its
            # provider, and the record says so.
            reg_rec = SceneRegistration.of(
                g.site.id, sc.id, g.key, ref, reg, applied=False, status="flagged",
                reason=reg.reason + "; not applied (provider geolocation used)")
        else:
            reg_rec = SceneRegistration.of(g.site.id, sc.id, g.key, ref, reg, applied=applied)
        if reg_rec.status == "rejected":
            return result("rejected", f"co-registration rejected: {reg.reason}",
                          _not_observed(g, sc, probe))
        shift = reg_rec.applied_shift
    del probe  # not held while the scene's bands are read
    # Both cores: the scene's bands are read (GDAL, without the GIL) on one while the
    # previous date and the composite are made ready (from memory or the image cache) on
    # the other; then the comparison with the previous date runs on one while the
    # comparison with the composite runs on the other (numpy and GDAL release the GIL for
    # their array work).  The results are those of doing it in turn: each comparison reads
    # only its own inputs, and the rows keep their order (previous, then composite).
    with ThreadPoolExecutor(1, thread_name_prefix="sitewatch-scene") as pool:
        loading = pool.submit(g.load, sc, shift)
        ready = _references(g, previous, comp_ids)
        try:
            img = loading.result()
        except UnreadableScene as exc:
            return result("failed", f"cannot be loaded: {exc}", _not_observed(g, sc, None))
        g.cache[sc.id] = img
        if previous is None:
            return result("first", "first usable date", _not_observed(g, sc, img))
        if ready.comp is not None:
            g.release_members(comp_ids, previous)
        try:
            with_previous = pool.submit(_observations, g, sc, ready.previous_data(), img,
                                        "previous", previous, products=True,
                                        filled=ready.filled)
            try:
                # SAR: no median composite (its speckle statistics change with its number
                # of members); the omnibus test over the orbit's recent dates replaces it.
                comp = ready.composite()
                c_obs: list[Observation] = []
                if comp is not None:
                    c_obs, comparisons["composite"] = _observations(
                        g, sc, comp, img, "composite", ",".join(comp_ids), members=comp_ids)
            finally:
                # Its outcome (or error) is wanted whatever happened to the composite's.
                obs, comparisons["previous"] = with_previous.result()
            if chain.season:
                obs = _with_season(g, sc, img, list(chain.season), obs, chain_ids)
            obs += c_obs
            del ready, comp
        except (MethodError, GridError) as exc:
            g.cache.pop(sc.id, None)
            comparisons.clear()
            return result("failed", f"change detection failed: {exc}",
                          _not_observed(g, sc, img))
    if g.kind == "sar":
        obs, omnibus = omnibus_observations(g, sc, img, chain_ids[-(OMNIBUS_DATES - 1):], obs)
    return result("ok", f"{seen:.0%} of the site observed", obs)


class _Ready:
    """The previous date and the composite made ready for a scene, or why they could not
    be (raised when they are first wanted, where comparing one by one would have found
    it)."""

    def __init__(self) -> None:
        self.prev: GridImage | None = None
        self.comp: np.ndarray | None = None
        #: The previous date with the pixels it did not see taken from the latest earlier
        #: member that saw them (None: nothing to fill), and where that was done.
        self.last_clear: np.ndarray | None = None
        self.filled: np.ndarray | None = None
        self.prev_error: _Unreadable | None = None
        self.comp_error: _Unreadable | None = None

    def previous(self) -> GridImage:
        if self.prev_error is not None:
            raise self.prev_error
        assert self.prev is not None
        return self.prev

    def previous_data(self) -> np.ndarray:
        """What the scene is compared with as its "previous" date: each pixel's last clear
        observation (the previous usable date where it saw the pixel, else the latest
        earlier member of the composite that did)."""
        prev = self.previous()
        return self.last_clear if self.last_clear is not None else prev.data

    def composite(self) -> np.ndarray | None:
        if self.comp_error is not None:
            raise self.comp_error
        return self.comp


def _references(g: GridRun, previous: str | None, comp_ids: Sequence[str]) -> _Ready:
    """The previous usable date and the composite of ``comp_ids`` (None for SAR grids or
    fewer than two members); a scene that cannot be read is kept as the error to raise."""
    out = _Ready()
    if previous is None:
        return out
    try:
        out.prev = g.aligned(previous)
    except _Unreadable as exc:
        out.prev_error = exc
        return out
    if len(comp_ids) >= 2 and g.kind != "sar":
        try:
            members = [g.aligned(i) for i in comp_ids]
            out.comp = _composite(members)
            need = g.needs_fill(out.prev)
            if need is not None:
                out.last_clear, out.filled = last_clear(out.prev, members, need)
        except _Unreadable as exc:
            out.comp_error = exc
    return out


def last_clear(previous: GridImage, members: Sequence[GridImage],
               where: np.ndarray | None = None
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each pixel's last clear observation: ``previous`` where it saw the pixel, else the
    latest of ``members`` (in time order; ``previous`` among them) that did, scaled band by
    band onto ``previous``'s radiometry (the ratio of their medians over the pixels both
    saw); and the mask of the pixels so filled.  Only pixels of ``where`` (default: all) are
    filled.  (None, None) when there is nothing to fill.  A part under cloud on the previous
    usable date is so compared with the last date that saw it, not left unobserved, at no
    extra comparison (the members are held for the composite anyway).

    >>> from types import SimpleNamespace as S
    >>> q = lambda v: np.array([[0 if np.isfinite(x) else 1 for x in v]], np.uint8)
    >>> mk = lambda v: S(scene_id=str(v), data=np.array([[v]], np.float32), valid=q(v) == 0)
    >>> old, prev = mk([5.0, 2.0, np.nan]), mk([5.0, np.nan, np.nan])
    >>> data, filled = last_clear(prev, [old, prev])
    >>> data.tolist(), filled.tolist()
    ([[[5.0, 2.0, nan]]], [[False, True, False]])
    """
    todo = ~previous.valid
    if where is not None:
        todo &= where
    if not todo.any():
        return None, None
    data = previous.data.copy()
    filled = np.zeros(todo.shape, bool)
    for m in reversed(members):
        if m is previous or m.scene_id == previous.scene_id:
            continue
        take = todo & m.valid
        if take.any():
            both = previous.valid & m.valid
            for b in range(data.shape[0]):
                data[b][take] = m.data[b][take] * _gain(previous.data[b], m.data[b], both)
            filled |= take
            todo &= ~take
            if not todo.any():
                break
    if not filled.any():
        return None, None
    return data, filled


def _gain(to: np.ndarray, frm: np.ndarray, both: np.ndarray, limit: int = 250_000) -> float:
    """The ratio of the medians of ``to`` and ``frm`` over ``both`` (about ``limit`` pixels
    evenly strided), 1 when fewer than 100 pixels or a median is not positive."""
    idx = np.flatnonzero(both)
    if idx.size < 100:
        return 1.0
    idx = idx[:: max(1, idx.size // limit)]
    a, b = float(np.median(to.ravel()[idx])), float(np.median(frm.ravel()[idx]))
    return a / b if a > 0 and b > 0 else 1.0


def _with_season(g: GridRun, sc: Scene, img: GridImage, season: list[str],
                 obs: list[Observation], held: Sequence[str]) -> list[Observation]:
    """The comparison rows against the previous date with, for each zone, the same-season
    reference's measures added (``changed_fraction_season``, ``observed_fraction_season``):
    the scene compared with the per-pixel median of the usable dates of earlier years near
    its day of year (:func:`season_members`).  Not stored as rows of their own: one row a
    part and date stays what every reader of "previous" rows expects."""
    imgs = [g.aligned(i) for i in season]
    ref = _composite(imgs) if len(imgs) >= 2 else imgs[0].data
    for i in season:  # older dates: not needed by the next scene
        if i not in held:
            g.cache.pop(i, None)
    rows, _ = _observations(g, sc, ref, img, "season", ",".join(season), members=season)
    by_part = {r.part: r for r in rows}
    out = []
    for o in obs:
        s_row = by_part.get(o.part)
        if s_row is None:
            out.append(o)
            continue
        m = dict(o.measures)
        m["observed_fraction_season"] = s_row.observed_fraction
        m["changed_fraction_season"] = (s_row.changed_fraction if s_row.observed
                                        else math.nan)
        m["p95_score_season"] = (s_row.measure("p95_score") if s_row.observed
                                 else math.nan)
        out.append(dataclasses.replace(o, measures=m))
    return out


def plan_grids(site: Site, groups: Mapping[str, Sequence[Scene]], params: RunParams
               ) -> dict[str, tuple[SiteGrid, tuple[str, ...]]]:
    """Each grid's pixels and bands, refusing up front (before anything is stored) a grid
    whose run would hold more than the memory budget (:func:`memory_budget`)."""
    budget, why = memory_budget()
    plans: dict[str, tuple[SiteGrid, tuple[str, ...]]] = {}
    for key in sorted(groups):
        grid = grid_for_scenes(site, groups[key])
        kind = key.split("-", 1)[0]
        bands = load_bands(groups[key], kind)
        held = max(params.composite, OMNIBUS_DATES) if kind == "sar" else params.composite
        need = run_memory(grid, len(bands), held, len(site.placed_parts()))
        if need > budget:
            raise PipelineError(
                f"site {site.id!r}: the {key} grid is {grid.width} x {grid.height} px with "
                f"{len(bands)} band(s); a run would hold about {need / 2**30:.1f} GiB, over "
                f"the budget of {budget / 2**30:.1f} GiB ({why}); use a smaller site "
                "boundary or a coarser grid")
        plans[key] = (grid, bands)
    return plans


__all__ = ["MEMORY_ENV", "OMNIBUS_ALPHA", "OMNIBUS_DATES", "REFERENCE_MIN_SEEN", "GridRun",
           "UnreadableScene", "chain_length", "detector_for", "grid_key", "lacking",
           "load_bands", "memory_budget", "plan_grids", "process_grid", "run_memory",
           "season_members", "season_spans"]
