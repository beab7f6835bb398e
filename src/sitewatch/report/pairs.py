"""Before/after pictures of any part of a site (or the whole site) on any two processed dates,
and of a ``sitewatch detect`` result, each returned as a typed record of what was drawn.

The brief's alert figures, ``sitewatch compare`` and ``sitewatch detect --quicklook`` all draw
here, so a caption is always made from the numbers of the drawing itself (:class:`PairFigure`):
the change objects outlined, the one stretch both dates share, which panels are hatched.

A site pair is drawn on the grid the pipeline used (:func:`~sitewatch.watch.products.
processed_grid`), each scene loaded with the shift its run applied.  Its change objects come
from the stored change map when the two dates are the pair the run compared (the after
scene's previous usable date); for any other pair they are detected again with the run's own
detector, bands and threshold (:func:`~sitewatch.change.detect.detect_arrays`, as
:mod:`sitewatch.watch.grids` calls it), over the whole grid so that the threshold is the one
the run would have found.  Only objects touching the part are drawn, by the pipeline's rule
(:func:`~sitewatch.watch.zonal.part_changes`: 8-connected changed pixels inside the part or
next to it).  The part :data:`~sitewatch.watch.zonal.REST` is the site outside every placed
part: the whole site when it has none (a site made by ``sitewatch ingest``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sitewatch.errors import BriefError, SceneError, SiteError, SitewatchError
from sitewatch.imagery.grid import GridImage, SiteGrid, load_scene
from sitewatch.imagery.scenes import Scene
from sitewatch.imagery.sensors import composite_words, rgb_bands
from sitewatch.report.figures import Panel, pair_figure
from sitewatch.report.findings import part_label
from sitewatch.report.quicklook import credit, limits, stretch, true_colour, unobserved
from sitewatch.sites.site import Site
from sitewatch.times import iso_day
from sitewatch.watch.products import CHANGE_NODATA, applied_shift, processed_grid
from sitewatch.watch.records import ProcessedScene
from sitewatch.watch.zonal import REST

if TYPE_CHECKING:
    from sitewatch.store import Store

log = logging.getLogger(__name__)

#: Margin around a part in its before/after crop (share of the part's size, and at least).
CROP_MARGIN, CROP_MIN_PX = 0.6, 24
#: A quicklook of a detect result is read decimated to at most this many pixels a side.
QUICKLOOK_MAX_PX = 2000
#: Where the change objects of a pair come from: ``stored`` the run's change map of the
#: pair, ``computed`` detected again for this pair with the run's detector, ``none`` not drawn
#: (:attr:`PairFigure.change_note` says why).
ChangeSource = Literal["stored", "computed", "none"]


@dataclass(frozen=True)
class ChangeObjects:
    """The change objects a figure draws: those touching its part (the pipeline's rule,
    :func:`~sitewatch.watch.zonal.part_changes`: 8-connected changed pixels inside the part
    or next to it), their outlines in the crop's pixel coordinates, and their sizes."""

    rings: list[np.ndarray]
    pixels: list[int]
    holes: list[np.ndarray] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many objects are drawn (the caption's number)."""
        return len(self.pixels)


@dataclass(frozen=True)
class PairFigure:
    """What a before/after picture shows, as drawn: a caption is made from these numbers.

    ``part`` is the part's name (:data:`~sitewatch.watch.zonal.REST` for the site outside
    every part, or ``""`` for a detect result), ``label`` how it is called in words;
    ``pixel_m`` the drawn pixel size (0 for images without georeferencing), ``downsample``
    how many grid pixels a drawn pixel stands for, a side; ``limits`` the stretch (low, high
    per band) shared by both dates; ``hatched_before`` / ``hatched_after`` whether a panel has
    pixels not observed; ``change`` where the objects come from (:data:`ChangeSource`),
    ``change_map`` the stored map read (if any), ``change_note`` why none are drawn."""

    path: Path
    part: str
    label: str
    before: Scene
    after: Scene
    grid: str
    pixel_m: float
    objects: ChangeObjects
    change: ChangeSource
    limits: tuple[list[float], list[float]]
    hatched_before: bool
    hatched_after: bool
    credit: str
    caption: str
    change_map: str | None = None
    change_note: str | None = None
    method: str = ""
    downsample: int = 1

    @property
    def pixel_m2(self) -> float:
        return self.pixel_m * self.pixel_m

    @property
    def largest_m2(self) -> float | None:
        """The largest drawn object's area (None with no object or no georeferencing)."""
        if not self.objects.pixels or not self.pixel_m:
            return None
        return max(self.objects.pixels) * self.pixel_m2

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (``sitewatch compare --json``)."""
        return {
            "path": str(self.path), "part": self.part, "label": self.label,
            "before": _scene_dict(self.before), "after": _scene_dict(self.after),
            "grid": self.grid, "pixel_m": self.pixel_m, "downsample": self.downsample,
            "objects": self.objects.count, "object_pixels": list(self.objects.pixels),
            "object_areas_m2": [p * self.pixel_m2 for p in self.objects.pixels]
            if self.pixel_m else None,
            "largest_m2": self.largest_m2, "change": self.change,
            "change_map": self.change_map, "change_note": self.change_note,
            "method": self.method,
            "limits": {"low": self.limits[0], "high": self.limits[1]},
            "hatched_before": self.hatched_before, "hatched_after": self.hatched_after,
            "credit": self.credit, "caption": self.caption}


def _scene_dict(s: Scene) -> dict[str, Any]:
    return {"id": s.id, "sensor": s.sensor, "date": _date_of(s)}


def _date_of(s: Scene) -> str | None:
    """The scene's day, or None for an undated input of ``detect`` (stored as 1970-01-01)."""
    return None if s.acquired.year <= 1970 else iso_day(s.acquired)


# --- geometry helpers ------------------------------------------------------------------------

def rings(geom: Any, transform: Any) -> list[np.ndarray]:
    """Exterior rings of a projected geometry, in pixel (col, row) coordinates."""
    inv = ~transform
    out = []
    for poly in getattr(geom, "geoms", [geom]):
        ext = getattr(poly, "exterior", None)
        if ext is None:
            continue
        xy = np.asarray(ext.coords)
        cols, rows = inv @ (xy[:, 0], xy[:, 1])
        out.append(np.column_stack([np.asarray(cols) - 0.5, np.asarray(rows) - 0.5]))
    return out


def window(mask_rows: np.ndarray, mask_cols: np.ndarray, shape: tuple[int, int]
           ) -> tuple[slice, slice]:
    """The crop around the pixels (``mask_rows``, ``mask_cols``) with a margin of
    :data:`CROP_MARGIN` of their extent, at least :data:`CROP_MIN_PX`, within ``shape``."""
    r0, r1 = int(mask_rows.min()), int(mask_rows.max()) + 1
    c0, c1 = int(mask_cols.min()), int(mask_cols.max()) + 1
    pad_r = max(CROP_MIN_PX, int((r1 - r0) * CROP_MARGIN))
    pad_c = max(CROP_MIN_PX, int((c1 - c0) * CROP_MARGIN))
    return (slice(max(0, r0 - pad_r), min(shape[0], r1 + pad_r)),
            slice(max(0, c0 - pad_c), min(shape[1], c1 + pad_c)))


def rgb_crop(img: GridImage, win: tuple[slice, slice]) -> np.ndarray:
    """The true-colour crop ``win`` of a loaded image, not stretched (NaN: not observed)."""
    return true_colour(img)[:, win[0], win[1]]


def objects_touching(change: np.ndarray, part_mask: np.ndarray) -> ChangeObjects:
    """The change objects of a change map crop (uint8: 1 change, 0 none, 255 not observed)
    that touch ``part_mask`` (the part's pixels in the same crop): 8-connected changed pixels
    inside the part or next to it, as the pipeline counts them; objects elsewhere in the crop
    are not drawn, so a caption's count is the number on the picture."""
    from rasterio.features import shapes
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    labels, _n = ndimage.label(change == 1, structure=eight)
    near = ndimage.binary_dilation(part_mask, structure=eight)
    ids = np.unique(labels[near])
    ids = ids[ids > 0]
    if ids.size == 0:
        return ChangeObjects([], [])
    sizes = np.bincount(labels.ravel())
    keep = np.isin(labels, ids)
    outer, holes = [], []
    for geom, _val in shapes(labels.astype(np.int32), mask=keep, connectivity=8):
        exterior, *inner = (np.asarray(r, dtype=float) - 0.5 for r in geom["coordinates"])
        outer.append(exterior)
        holes += inner
    return ChangeObjects(outer, [int(sizes[i]) for i in ids], holes)


def change_objects(path: str | None, win: tuple[slice, slice], part_mask: np.ndarray
                   ) -> ChangeObjects:
    """The change objects of a stored change map's crop ``win`` that touch ``part_mask``
    (:func:`objects_touching`); none when there is no map at ``path``."""
    if not path or not Path(path).is_file():
        return ChangeObjects([], [])
    from sitewatch.watch.products import read_change

    change, _t, _c = read_change(path, win)  # the crop only
    return objects_touching(change, part_mask)


# --- parts -------------------------------------------------------------------------------------

#: Words that name the site outside its parts (or the whole site), besides :data:`REST`.
_REST_WORDS = {"rest", "rest of site", "whole", "whole site", "site", "all", REST}


def _plain_words(text: str) -> str:
    """``text`` lower-cased, underscores as spaces: "Launch_Pad" and "launch pad" match."""
    return " ".join(text.replace("_", " ").lower().split())


def find_part(site: Site, text: str | None) -> str:
    """The part named or labelled ``text`` (case-insensitive, underscores as spaces: "launch
    pad" finds ``launch_pad``); None, "whole site" or
    "rest of site" is :data:`REST`.  :class:`SiteError` names the text and the parts."""
    if text is None or _plain_words(text) in _REST_WORDS:
        return REST
    want = _plain_words(text)
    for p in site.parts:
        if want in (_plain_words(p.name), _plain_words(p.label)):
            if not p.placed:
                raise SiteError(f"part {text!r} of site {site.id!r} is not placed yet "
                                f"(sitewatch site place {site.id} {p.name} ...)")
            return p.name
    known = ", ".join(f"{p.name} ({p.label})" if p.label != p.name else p.name
                      for p in site.placed_parts()[:30]) or "none"
    raise SiteError(f"site {site.id!r} has no part {text!r} (placed parts: {known}; or "
                    "leave --part out for the whole site)")


def zone_mask(site: Site, grid: SiteGrid, part: str) -> np.ndarray:
    """The part's pixels as the pipeline measures them (:class:`~sitewatch.watch.grids.
    GridRun`'s zones): a placed part's pixel centres (the pixel it falls in when it is smaller
    than one); :data:`REST` the site's pixels outside every placed part."""
    if part == REST:
        rest = grid.site_mask(site)
        for m in grid.part_masks(site).values():
            rest &= ~m
        return rest
    p = site.part(part)
    fp = p.footprint(grid.crs)
    if fp is None or fp.is_empty:
        raise BriefError(f"part {p.name!r} is not placed")
    m = grid.mask(fp)
    if not m.any():  # as SiteGrid.part_masks: a part smaller than a pixel
        m = grid.mask(fp, all_touched=True)
    return m


def _outline_rings(site: Site, grid: SiteGrid, part: str, transform: Any) -> list[np.ndarray]:
    """What is outlined dashed: the part, or for :data:`REST` the site boundary and the
    placed parts it leaves out."""
    from sitewatch.imagery.geo import to_crs

    if part != REST:
        fp = site.part(part).footprint(grid.crs)
        return rings(fp, transform) if fp is not None else []
    out = rings(to_crs(site.boundary, "EPSG:4326", grid.crs), transform)
    for p in site.placed_parts():
        fp = p.footprint(grid.crs)
        if fp is not None and not fp.is_empty:
            out += rings(fp, transform)
    return out


def _outline_words(site: Site) -> str:
    """The legend's words for the dashed outlines of a :data:`REST` picture."""
    if site.placed_parts():
        return "site boundary and the parts left out (dashed)"
    return "site boundary (dashed)"


# --- captions ----------------------------------------------------------------------------------

def credits(*scenes: Scene) -> str:
    """The imagery credit lines of ``scenes`` (one per sensor and year, in order)."""
    return "; ".join(dict.fromkeys(credit(s.sensor, s.acquired.year if _date_of(s) else
                                          "undated") for s in scenes))


def objects_words(objects: ChangeObjects, pixel_m2: float) -> str:
    """"2 change objects (largest 700 m²)", "1 change object (4 px)", "no change object"."""
    n = objects.count
    if not n:
        return "no change object"
    big = max(objects.pixels)
    size = f"{big * pixel_m2:,.0f} m²" if pixel_m2 else f"{big} px"
    return f"{n} change object{'s' if n != 1 else ''} (largest {size})"


def _sensors(before: Scene, after: Scene) -> str:
    return before.sensor if before.sensor == after.sensor else f"{before.sensor} / {after.sensor}"


def _day_or_id(s: Scene) -> str:
    return _date_of(s) or s.id


def _title(which: str, s: Scene) -> str:
    """A panel's title as a published figure has it: "Before: 2024-03-15 (sentinel-2)"
    (the scene id, which readers do not need, is in the brief's provenance; an undated
    scene is named by its id)."""
    day = _date_of(s)
    head = which[:1].upper() + which[1:]
    return f"{head}: {day} ({s.sensor})" if day else f"{head}: {s.id}"


def pair_caption(label: str, objects: ChangeObjects, before: Scene, after: Scene,
                 pixel_m: float, *, hatched: bool, change: ChangeSource,
                 note: str | None = None, downsample: int = 1) -> str:
    """The one-line caption of a standalone pair, from the numbers drawn: "Launch pad: 2
    change objects (largest 700 m²), 2024-02-24 -> 2024-03-10, sim-s2 10 m; same stretch
    for both dates; hatched: not observed"."""
    what = objects_words(objects, pixel_m * pixel_m) if change != "none" else \
        f"change objects not drawn ({note or 'no change map'})"
    res = f" {pixel_m:g} m" if pixel_m else " (pixel grid)"
    text = (f"{label}: {what}, {_day_or_id(before)} -> {_day_or_id(after)}, "
            f"{_sensors(before, after)}{res}; same stretch for both dates")
    if downsample > 1:
        size = f"{pixel_m:g} m pixels" if pixel_m else f"{downsample} x {downsample} px cells"
        text += f"; drawn at 1/{downsample} resolution: objects and areas counted on its {size}"
    if change == "computed":
        text += "; objects detected for this pair with the run's detector"
    shown = composite_words(rgb_bands(after.band_names))
    if shown:
        text += f"; {shown}"
    if hatched:
        text += "; hatched: not observed"
    return text


# --- a pair of processed scenes ------------------------------------------------------------

def _subgrid(grid: SiteGrid, win: tuple[slice, slice]) -> SiteGrid:
    from affine import Affine

    t = grid.transform @ Affine.translation(win[1].start, win[0].start)
    return SiteGrid(grid.crs, t, win[1].stop - win[1].start, win[0].stop - win[0].start)


def _computed_change(grid: SiteGrid, before: Scene, after: Scene, row_b: ProcessedScene,
                     row_a: ProcessedScene) -> tuple[np.ndarray, str]:
    """The change map (uint8 codes, as stored) of ``before`` -> ``after`` over the whole
    grid, by the run's own detector call (:mod:`sitewatch.watch.grids`): its bands, method,
    parameters and threshold, each scene loaded with the shift its run applied."""
    from sitewatch.change.detect import detect_arrays
    from sitewatch.imagery.sensors import watch_threshold

    bands = tuple(row_a.bands)
    if tuple(row_b.bands) != bands or row_b.grid != row_a.grid:
        raise BriefError(f"{before.id} and {after.id} were processed on different grids or "
                         "bands; they cannot be compared")
    kind = row_a.grid.split("-", 1)[0]
    b = load_scene(before, grid, bands, shift=applied_shift(row_b))
    a = load_scene(after, grid, bands, shift=applied_shift(row_a))
    ch = detect_arrays(b.data, a.data, bands, row_a.method or None, sensor=kind,
                       params=dict(row_a.method_params) or None,
                       threshold=watch_threshold(row_a.method))
    code = np.where(ch.observed, ch.changed.astype(np.uint8), np.uint8(CHANGE_NODATA))
    return code.astype(np.uint8), ch.method


def draw_pair(path: Path, site: Site, before: Scene, after: Scene,
              rows: Mapping[str, ProcessedScene], grid_scenes: Sequence[Scene], part: str, *,
              objects: Literal["auto", "stored"] = "auto", standalone: bool = False,
              ) -> PairFigure:
    """Draw ``before`` -> ``after`` (processed scenes of one grid, their rows in ``rows`` by
    scene id; ``grid_scenes`` the grid's scenes) cropped around ``part`` (a part name, or
    :data:`REST`: the whole grid), and return what was drawn.

    ``objects="stored"``: change objects only from the stored change map of ``after`` (a
    brief's alert figure: the pair its alert was raised on); ``"auto"``: that map when the
    pair is the one the run compared and its map is on disk, else detected for this pair
    (:func:`_computed_change`).  ``standalone`` draws the caption and the imagery credit in
    the picture (a PNG with no page around it)."""
    row_b, row_a = rows.get(before.id), rows.get(after.id)
    grid = processed_grid(row_a, site, grid_scenes)
    mask = zone_mask(site, grid, part)
    label = part_label(site, part)
    rws, cls = np.nonzero(mask)
    if rws.size == 0:
        raise BriefError(f"{label.lower()} is outside the grid")
    win = ((slice(0, grid.height), slice(0, grid.width)) if part == REST
           else window(rws, cls, grid.shape))
    crop = _subgrid(grid, win)
    pick = rgb_bands(after.band_names)
    img_b = load_scene(before, crop, pick, shift=applied_shift(row_b))
    img_a = load_scene(after, crop, pick, shift=applied_shift(row_a))
    # One stretch for both dates (limits over the clear pixels of both crops): a brighter
    # after is brighter ground, not another stretch.
    raw_b, raw_a = true_colour(img_b), true_colour(img_a)
    lo, hi = limits(raw_b, raw_a)
    rgb_b, rgb_a = stretch(raw_b, lo, hi)[0], stretch(raw_a, lo, hi)[0]

    products = row_a.products if row_a else None
    stored = products.change if products else None
    is_stored_pair = row_a is not None and row_a.previous_id == before.id
    drawn, note, method = ChangeObjects([], []), None, ""
    source: ChangeSource = "none"
    if objects == "stored" or (is_stored_pair and stored and Path(stored).is_file()):
        if not stored:
            note = "this pair was processed before sitewatch kept change maps"
        elif not Path(stored).is_file():
            note = f"the stored change map {stored} is missing (moved or deleted)"
        else:
            try:
                drawn, source = change_objects(stored, win, mask[win]), "stored"
                method = row_a.previous.method if row_a and row_a.previous else ""
            except SitewatchError as exc:
                note = str(exc)
    elif row_a is None or row_b is None or not (row_a.usable and row_b.usable):
        note = "a scene of the pair was not usable in the run"
    else:
        try:
            code, method = _computed_change(grid, before, after, row_b, row_a)
            drawn, source = objects_touching(code[win], mask[win]), "computed"
        except SitewatchError as exc:
            note = f"change detection failed: {exc}"
    res_m = grid.resolution
    hatched_b, hatched_a = bool(unobserved(raw_b).any()), bool(unobserved(raw_a).any())
    caption = pair_caption(label, drawn, before, after, res_m, hatched=hatched_b or hatched_a,
                           change=source, note=note)
    rec = PairFigure(Path(path), part, label, before, after, row_a.grid if row_a else "",
                     res_m, drawn, source, (lo.tolist(), hi.tolist()), hatched_b, hatched_a,
                     credits(before, after), caption,
                     stored if source == "stored" or objects == "stored" else None, note, method)
    t = crop.transform
    pair_figure(Path(path),
                Panel(rgb_b, res_m, _title("before", before),
                      unobserved(raw_b)),
                Panel(rgb_a, res_m, _title("after", after),
                      unobserved(raw_a)),
                _outline_rings(site, grid, part, t), drawn.rings, change_holes=drawn.holes,
                caption=caption if standalone else None,
                credit=rec.credit if standalone else None,
                outline_label=_outline_words(site) if part == REST else None)
    return rec


# --- a pair of processed dates of a stored site --------------------------------------------

def _near(days: Sequence[str], day: str, k: int = 4) -> str:
    from datetime import date

    d0 = date.fromisoformat(day)
    near = sorted(set(days), key=lambda d: abs((date.fromisoformat(d) - d0).days))[:k]
    return ", ".join(sorted(near)) or "none"


def scene_on(rows: Mapping[str, ProcessedScene], scenes: Mapping[str, Scene], day: str,
             site_id: str) -> Scene:
    """The one processed, usable scene of day ``day`` (YYYY-MM-DD); :class:`SceneError`
    naming the day and the nearest processed days when there is none, or several."""
    ok = {sid: r for sid, r in rows.items() if r.usable and sid in scenes}
    days = [iso_day(r.acquired) for r in ok.values()]
    on = sorted(sid for sid, r in ok.items() if iso_day(r.acquired) == day)
    if not on:
        bad = [f"{sid} ({r.status}: {r.reason})" for sid, r in rows.items()
               if iso_day(r.acquired) == day]
        why = f"its scene was not usable: {'; '.join(bad)}; " if bad else ""
        raise SceneError(f"site {site_id!r} has no usable processed scene on {day} ({why}"
                         f"nearest processed dates: {_near(days, day)})")
    if len(on) > 1:
        raise SceneError(f"site {site_id!r} has {len(on)} processed scenes on {day} "
                         f"({', '.join(on)}); pick a day with one (nearest processed dates: "
                         f"{_near([d for d in days if d != day], day)})")
    return scenes[on[0]]


def _pair_on(rows: Mapping[str, ProcessedScene], scenes: Mapping[str, Scene], d1: str,
             d2: str, site_id: str) -> tuple[Scene, Scene]:
    """The scenes of days ``d1`` and ``d2``: the one grid on which each day has exactly one
    usable scene (a day seen by two sensors is then no ambiguity), else :func:`scene_on`'s
    rule for each day."""
    by_grid: dict[str, dict[str, list[str]]] = {}
    for sid, r in rows.items():
        day = iso_day(r.acquired)
        if r.usable and sid in scenes and day in (d1, d2):
            by_grid.setdefault(r.grid, {}).setdefault(day, []).append(sid)
    one = [g for g, days in by_grid.items()
           if len(days.get(d1, [])) == 1 and len(days.get(d2, [])) == 1]
    if len(one) == 1:
        return scenes[by_grid[one[0]][d1][0]], scenes[by_grid[one[0]][d2][0]]
    return scene_on(rows, scenes, d1, site_id), scene_on(rows, scenes, d2, site_id)


def compare(store: Store, site_id: str, part: str | None, day_before: str, day_after: str,
            path: str | Path | None = None, *, figures_dir: str | Path | None = None
            ) -> PairFigure:
    """Draw a part (by name or label; None: the whole site) of a stored site between two
    processed days (``YYYY-MM-DD``), from the site's last finished run; writes ``path``
    (default ``figures_dir/SITE_PART_D1_D2.png``) and returns what was drawn.  Errors name
    the site, part or day at fault, and the nearest processed days."""
    from sitewatch.fileio import safe_name
    from sitewatch.times import parse_date

    site = store.use_site(site_id)
    if site is None:
        raise SiteError(f"no site {site_id!r} in the catalogue")
    d1, d2 = (parse_date(d, what, SceneError) for d, what in ((day_before, "before date"),
                                                              (day_after, "after date")))
    assert d1 is not None and d2 is not None
    if d1 >= d2:
        raise SceneError(f"the before date {d1} must come before the after date {d2}")
    name = find_part(site, part)
    run = store.last_run(site_id, finished=True)
    rows = store.processed(site_id, run.params_hash) if run else {}
    if not rows:
        raise BriefError(f"site {site_id!r} has not been processed yet: run `sitewatch run "
                         f"{site_id}` first")
    scenes = {s.id: s for s in store.scenes(site_id)}
    before, after = _pair_on(rows, scenes, d1.isoformat(), d2.isoformat(), site_id)
    gb, ga = rows[before.id].grid, rows[after.id].grid
    if gb != ga:
        raise SceneError(f"{before.id} ({d1}) is on the {gb} grid and {after.id} ({d2}) on "
                         f"the {ga} grid: pick two dates of one grid")
    grid_scenes = [scenes[sid] for sid, r in rows.items() if r.grid == ga and sid in scenes]
    if path is None:
        folder = Path(figures_dir) if figures_dir is not None else Path("figures")
        part_word = "site" if name == REST else name
        path = folder / (f"{safe_name(site_id)}_{safe_name(part_word, 'part', 40)}_"
                         f"{d1.isoformat()}_{d2.isoformat()}.png")
    return draw_pair(Path(path), site, before, after, rows, grid_scenes, name,
                     standalone=True)


# --- a detect result -------------------------------------------------------------------------

def _coarse(grid: SiteGrid, f: int) -> SiteGrid:
    from affine import Affine

    return SiteGrid(grid.crs, grid.transform @ Affine.scale(f), -(-grid.width // f),
                    -(-grid.height // f))


def _decimated_rgb(scene: Scene, grid: SiteGrid, shift: Any, f: int) -> np.ndarray:
    """The true-colour bands of ``scene`` on the coarse ``grid`` (``f`` source pixels a
    side; ``shift`` in coarse pixels), averaged by GDAL's warper window by window (memory:
    the output only); NaN where no data.  Provider cloud masks are not read at this scale."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from sitewatch.imagery.grid import _dst_transform

    names = rgb_bands(scene.band_names)
    names = names if len(names) >= 3 else names[:1] * 3
    out = np.full((3, *grid.shape), np.nan, np.float32)
    for i, name in enumerate(names):
        ref = scene.band(name)
        with rasterio.open(ref.path) as ds:
            if grid.crs is None or ds.crs is None:
                arr = ds.read(ref.index, out_shape=grid.shape, masked=True,
                              resampling=Resampling.average)
            else:
                with WarpedVRT(ds, crs=grid.rio_crs, transform=_dst_transform(grid, shift),
                               width=grid.width, height=grid.height,
                               resampling=Resampling.average) as vrt:
                    arr = vrt.read(ref.index, masked=True)
        band = arr.astype(np.float32).filled(np.nan)
        if ref.nodata is not None and not math.isnan(ref.nodata):
            band[band == ref.nodata] = np.nan
        out[i] = band * ref.scale + ref.offset
    return out


def _decimated_change(path: Path, f: int, shape: tuple[int, int]) -> np.ndarray:
    """``change.tif`` reduced by ``f`` a side, strip by strip: a coarse pixel is changed
    when any of its pixels is, not observed when none of them was (objects never vanish;
    nearby ones may merge)."""
    import rasterio
    from rasterio.windows import Window

    out = np.full(shape, CHANGE_NODATA, np.uint8)
    with rasterio.open(path) as ds:
        strip = max(1, 256 // f) * f
        for r0 in range(0, ds.height, strip):
            h = min(strip, ds.height - r0)
            a = ds.read(1, window=Window(0, r0, ds.width, h))
            ph, pw = -(-h // f) * f, -(-ds.width // f) * f
            pad = np.full((ph, pw), CHANGE_NODATA, np.uint8)
            pad[:h, :ds.width] = a
            blocks = pad.reshape(ph // f, f, pw // f, f)
            changed = (blocks == 1).any(axis=(1, 3))
            seen = (blocks != CHANGE_NODATA).any(axis=(1, 3))
            code = np.where(changed, 1, np.where(seen, 0, CHANGE_NODATA)).astype(np.uint8)
            out[r0 // f:r0 // f + code.shape[0]] = code[:, :shape[1]]
    return out


def detect_quicklook(before: Scene | str | Path, after: Scene | str | Path,
                     out_dir: str | Path, path: str | Path | None = None, *,
                     max_px: int = QUICKLOOK_MAX_PX) -> PairFigure:
    """``out_dir/quicklook.png`` (or ``path``): the pair a ``sitewatch detect`` run compared,
    over its whole extent, one stretch for both, its change objects (every object of
    ``change.tif``) outlined, hatched where not observed (no data in an image, or not
    observed in the change map), with a caption and the imagery credit; read decimated to at
    most ``max_px`` pixels a side (the caption says so).  Returns what was drawn."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        # Plain pictures (SAR BMPs) are fine here, as in detect: the caption says "pixel grid".
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return _detect_quicklook(before, after, Path(out_dir), path, max_px)


def _detect_quicklook(before: Scene | str | Path, after: Scene | str | Path, out: Path,
                      path: str | Path | None, max_px: int) -> PairFigure:
    from sitewatch.change.tiled import open_input, scene_grid
    from sitewatch.imagery.coregister import Shift

    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BriefError(f"{out}: no readable detect result (summary.json): {exc}") from None
    sb = before if isinstance(before, Scene) else open_input(before)  # as detect_scenes does
    sa = after if isinstance(after, Scene) else open_input(after)
    grid = scene_grid(sb)
    reg = summary.get("registration") or {}
    shift = (Shift(float(reg["dy"]), float(reg["dx"]))
             if summary.get("registration_applied") and reg else None)
    f = max(1, math.ceil(max(grid.shape) / max_px))
    change_path = out / "change.tif"
    if f == 1:
        pick = rgb_bands(sa.band_names)
        raw_b = true_colour(load_scene(sb, grid, pick))
        raw_a = true_colour(load_scene(sa, grid, pick, shift=shift))
        from sitewatch.watch.products import read_change

        code = read_change(change_path)[0]
        drawn_grid = grid
    else:
        drawn_grid = _coarse(grid, f)
        raw_b = _decimated_rgb(sb, drawn_grid, None, f)
        raw_a = _decimated_rgb(sa, drawn_grid, Shift(shift.dy / f, shift.dx / f)
                               if shift is not None else None, f)
        code = _decimated_change(change_path, f, drawn_grid.shape)
    not_seen = code == CHANGE_NODATA
    raw_b[:, not_seen] = np.nan  # what detection did not see is hatched on both dates
    raw_a[:, not_seen] = np.nan
    drawn = objects_touching(code, np.ones(code.shape, bool))
    lo, hi = limits(raw_b, raw_a)
    pixel_m = drawn_grid.resolution if grid.crs is not None else 0.0
    hatched_b, hatched_a = bool(unobserved(raw_b).any()), bool(unobserved(raw_a).any())
    caption = pair_caption("Change from before to after", drawn, sb, sa, pixel_m,
                           hatched=hatched_b or hatched_a, change="stored", downsample=f)
    target = Path(path) if path is not None else out / "quicklook.png"
    rec = PairFigure(target, "", "Whole extent", sb, sa, summary.get("sensor", ""), pixel_m,
                     drawn, "stored", (lo.tolist(), hi.tolist()), hatched_b, hatched_a,
                     credits(sb, sa), caption, str(change_path), None,
                     str(summary.get("method", "")), f)
    pair_figure(target,
                Panel(stretch(raw_b, lo, hi)[0], pixel_m, _title("before", sb),
                      unobserved(raw_b)),
                Panel(stretch(raw_a, lo, hi)[0], pixel_m, _title("after", sa),
                      unobserved(raw_a)),
                [], drawn.rings, change_holes=drawn.holes, caption=caption,
                credit=rec.credit, outline_label="")
    return rec


__all__ = ["CROP_MARGIN", "CROP_MIN_PX", "QUICKLOOK_MAX_PX", "ChangeObjects", "ChangeSource",
           "PairFigure", "change_objects", "compare", "credits", "detect_quicklook",
           "draw_pair", "find_part", "objects_touching", "objects_words", "pair_caption",
           "part_label", "rgb_crop", "rings", "scene_on", "window", "zone_mask"]
