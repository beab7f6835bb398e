"""Change detection between two whole scenes, window by window, in bounded memory.

:func:`detect_scenes` puts AFTER on BEFORE's grid (its finest band), co-registers AFTER to
BEFORE, masks what either date cannot see, and then works in two passes:

1. a *sample* of windows spread evenly over the scene gives the global statistics: the
   relative normalisation, the detector's fit and the threshold;
2. every window (with the detector's context halo) is loaded, normalised, scored,
   thresholded and cleaned, and written straight into ``change.tif`` and ``score.tif``.

Memory therefore depends on the window size, the sample and the width of a strip of
windows, never on the number of rows.

Pass 2 reads each file of a scene that lies on the grid's own pixels in full-width chunks of
rows aligned to its blocks, every block decoded once for all the bands the file holds
(:mod:`sitewatch.change.blockread`), and cuts the windows with their halo out of them; the
windows of a strip are scored in a small thread pool while the next strip's rows are
decoded (GDAL's decoders and numpy release the GIL).  A date that must be warped (another
grid, or a co-registration shift to undo) is loaded per window by ``load_scene``.  The
statistics of pass 1 come from the sample in memory, so IR-MAD's iterations (at most
``max_iter``, 30) run on the sample and add no pass over the scene: each input block is
decoded once in pass 2, plus the sample and co-registration windows in pass 1.

Change polygons are traced strip by strip and the pieces of an object cut by a strip seam
are joined again.  Outputs are written under temporary names and renamed at the end, so an
interrupted run leaves no half-written results behind.
"""

from __future__ import annotations

import json
import math
import os
import time as _time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from sitewatch import __version__
from sitewatch.change import post
from sitewatch.change.base import ChangeMap, Detector, MethodError, observed_both
from sitewatch.change.blockread import Handles, SceneReader, StripFeed
from sitewatch.change.detect import _plain, resolve, threshold_for
from sitewatch.change.normalise import Normalisation, NormalisationError, fit_normalisation
from sitewatch.errors import GridError, SceneError
from sitewatch.fileio import atomic_path
from sitewatch.imagery.bands import canonical
from sitewatch.imagery.coregister import Registration, Shift, register
from sitewatch.imagery.discover import discover
from sitewatch.imagery.grid import GridImage, SiteGrid, load_scene
from sitewatch.imagery.masks import Quality
from sitewatch.imagery.scenes import Scene, read_scene
from sitewatch.imagery.sensors import (
    ASSUMED_KIND,
    MIN_APPLIED_SHIFT_PX,
    OPTICAL_BANDS,
    SENSOR_KINDS,
    kind_of,
    registration_bands,
    worth_applying,
)
from sitewatch.times import iso

#: Placeholder time for inputs that carry none (detection does not need one).
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: change.tif values.
CHANGE, NO_CHANGE, NOT_OBSERVED = 1, 0, 255
OUTPUTS = ("change.tif", "score.tif", "changes.geojson", "summary.json")

Progress = Callable[[str, int, int], None]


def open_input(path: str | Path, *, sensor: str | None = None, decode: bool = True) -> Scene:
    """One scene from a path as the catalogue accepts it (a file, or a folder holding one
    scene such as an OSCD ``imgs_1``); an undated input is fine here.  ``decode=False``: no
    decode of every block now (see :func:`~sitewatch.imagery.scenes.read_scene`)."""
    p = Path(path)
    if not p.exists():
        raise SceneError(f"{p}: no such file or folder")
    sources = discover([p])
    if not sources:
        raise SceneError(f"{p}: no image found there")
    if len(sources) > 1:
        keys = ", ".join(Path(s.key).name for s in sources[:5])
        raise SceneError(f"{p}: holds {len(sources)} scenes ({keys}...); give one scene")
    return read_scene(sources[0], time=_NO_TIME, sensor=sensor, decode=decode)


def scene_grid(scene: Scene) -> SiteGrid:
    """A scene's own grid at its finest band resolution."""
    if scene.crs is None or scene.transform is None:
        return SiteGrid(None, Affine.identity(), scene.width, scene.height)
    return SiteGrid(scene.crs, Affine(*scene.transform), scene.width, scene.height)


def sensor_kind(scene: Scene, given: str | None) -> tuple[str, str | None]:
    """``optical`` or ``sar`` for a scene, and a note when it had to be assumed."""
    if given:
        if given not in SENSOR_KINDS:
            raise MethodError(f"unknown sensor {given!r}; use optical or sar")
        return given, None
    kind = kind_of(scene.sensor)
    if kind is not None:
        return kind, None
    return ASSUMED_KIND, (f"{scene.id}: the sensor is not known from the file; assuming "
                          f"{ASSUMED_KIND} (give --sensor sar for radar intensity images)")


def choose_bands(det: Detector, before: Scene, after: Scene, sensor: str,
                 bands: Sequence[str] | None) -> tuple[str, ...]:
    """The bands to compare: asked for, else what the method needs plus the standard optical
    set, else every band both scenes share."""
    have_b = {b.common_name or b.name for b in before.bands}
    have_a = {b.common_name or b.name for b in after.bands}
    shared = have_b & have_a
    if bands:
        want = tuple(canonical(b) for b in bands)
        missing = [b for b in want if b not in shared]
        if missing:
            raise MethodError(f"band(s) {', '.join(missing)} are not in both scenes (shared: "
                              f"{', '.join(sorted(shared)) or 'none'})")
        return want
    if sensor == "optical":
        pick = [b for b in OPTICAL_BANDS if b in shared]
        pick += [b for b in det.needs if b in shared and b not in pick]
        if len(pick) >= 2 or (pick and len(shared) == 1):
            return tuple(pick)
    order = [b.common_name or b.name for b in before.bands]
    common = tuple(b for b in order if b in shared)
    if not common:
        raise MethodError(f"{before.id} and {after.id} share no band")
    return common if sensor == "optical" else common[:1]


def windows(shape: tuple[int, int], size: int) -> list[Window]:
    """Windows covering ``shape``: ``size`` x ``size`` pixels, or as many pixels in a longer
    strip where the grid is narrower (or shorter) than ``size``, so a 4 x 3,000,000 image is
    a dozen windows rather than thousands.

    >>> [(w.width, w.height) for w in windows((3_000_000, 4), 1024)][:2]
    [(4, 262144), (4, 262144)]
    """
    h, w = shape
    rows = size if w >= size else max(size, size * size // max(w, 1))
    cols = size if h >= size else max(size, size * size // max(h, 1))
    return [Window(c, r, min(cols, w - c), min(rows, h - r))
            for r in range(0, h, rows) for c in range(0, w, cols)]


def sub_grid(grid: SiteGrid, win: Window) -> SiteGrid:
    return SiteGrid(grid.crs, grid.transform @ Affine.translation(win.col_off, win.row_off),
                    int(win.width), int(win.height))


def padded(win: Window, halo: int, shape: tuple[int, int]) -> tuple[Window, tuple[int, int]]:
    """``win`` grown by ``halo`` (clipped to the grid) and the offset of ``win`` inside it."""
    r0 = max(0, win.row_off - halo)
    c0 = max(0, win.col_off - halo)
    r1 = min(shape[0], win.row_off + win.height + halo)
    c1 = min(shape[1], win.col_off + win.width + halo)
    return Window(c0, r0, c1 - c0, r1 - r0), (win.row_off - r0, win.col_off - c0)


@dataclass
class PairLoader:
    """Loads the same window of both scenes, co-registered and masked."""

    before: Scene
    after: Scene
    grid: SiteGrid
    bands: tuple[str, ...]
    shift: Shift | None = None
    exclude: np.ndarray | None = None  # user mask on the full grid (bool, True = exclude)
    spectral_clouds: bool = False
    #: Readers of scenes that lie on the grid's own pixels (None: warp with load_scene).
    readers: tuple[SceneReader | None, SceneReader | None] = (None, None)
    #: Strip feeds of the pass over every window (set by :func:`detect_scenes`).
    feeds: tuple[StripFeed | None, StripFeed | None] = (None, None)

    def _image(self, i: int, scene: Scene, g: SiteGrid, win: Window | None,
               shift: Shift | None) -> GridImage:
        """One date's window: cut from its strip feed or read once per file where the
        scene lies on the grid and no shift is undone, else warped by ``load_scene``."""
        if win is not None and shift is None:
            feed, reader = self.feeds[i], self.readers[i]
            if feed is not None:
                return feed.window(win)
            if reader is not None:
                return reader.window(win)
        return load_scene(scene, g, self.bands, shift=shift)

    def load(self, win: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.grid.crs is None:
            if win is not None and (win.width, win.height) != (self.grid.width,
                                                               self.grid.height):
                raise GridError("images without georeferencing are processed whole")
            g = self.grid
        else:
            g = self.grid if win is None else sub_grid(self.grid, win)
        b = self._image(0, self.before, g, win, None)
        a = self._image(1, self.after, g, win, self.shift)
        if self.spectral_clouds:
            _mask_clouds(b, a)
        if self.exclude is not None:
            ex = self.exclude if win is None else self.exclude[
                win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width]
            b.data[:, ex] = np.nan
            a.data[:, ex] = np.nan
        return b.data, a.data


def _mask_clouds(b: GridImage, a: GridImage) -> None:
    """Spectral cloud test on both dates, with the temporal check that keeps persistent
    bright surfaces (concrete pads) observed."""
    from sitewatch.imagery.masks import cloud_from_reflectance, temporal_cloud_check

    need = ("blue", "green", "red", "nir")
    if not all(n in b.bands for n in need):
        return
    bb = {n: b.band(n) for n in b.bands}
    ab = {n: a.band(n) for n in a.bands}
    qb = temporal_cloud_check(cloud_from_reflectance(bb), bb, ab)
    qa = temporal_cloud_check(cloud_from_reflectance(ab), ab, bb)
    b.data[:, qb != Quality.VALID] = np.nan
    a.data[:, qa != Quality.VALID] = np.nan


def sample_windows(shape: tuple[int, int], size: int, budget: int) -> list[Window]:
    """Windows of ``size`` spread evenly over the grid, about ``budget`` pixels in all."""
    allw = windows(shape, size)
    total = shape[0] * shape[1]
    if total <= budget:
        return allw
    n = max(1, budget // (size * size))
    idx = np.unique(np.linspace(0, len(allw) - 1, n).round().astype(int))
    return [allw[i] for i in idx]


def mosaic(pairs: Sequence[tuple[np.ndarray, np.ndarray]], gutter: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Sample windows side by side, separated by NaN gutters wider than any halo."""
    if len(pairs) == 1:
        return pairs[0]
    nb = pairs[0][0].shape[0]
    h = max(p[0].shape[1] for p in pairs)
    w = sum(p[0].shape[2] for p in pairs) + gutter * (len(pairs) - 1)
    out_b = np.full((nb, h, w), np.nan, np.float32)
    out_a = np.full((nb, h, w), np.nan, np.float32)
    c = 0
    for b, a in pairs:
        out_b[:, :b.shape[1], c:c + b.shape[2]] = b
        out_a[:, :a.shape[1], c:c + a.shape[2]] = a
        c += b.shape[2] + gutter
    return out_b, out_a


def coregister_pair(loader: PairLoader, brightness_bands: Sequence[str],
                    size: int = 1024) -> Registration | None:
    """Register AFTER to BEFORE on the central window (mean of the bands)."""
    h, w = loader.grid.shape
    if loader.grid.crs is None:
        win = None
    else:
        ww, hh = min(size, w), min(size, h)
        win = Window((w - ww) // 2, (h - hh) // 2, ww, hh)
    b, a = loader.load(win)
    idx = [loader.bands.index(n) for n in brightness_bands]
    try:
        return register(np.mean(b[idx], axis=0), np.mean(a[idx], axis=0))
    except GridError:
        return None


@dataclass
class DetectRun:
    """Everything :func:`detect_scenes` decided and measured (``summary.json``)."""

    summary: dict[str, Any]
    out_dir: Path

    @property
    def paths(self) -> dict[str, Path]:
        return {name: self.out_dir / name for name in OUTPUTS}


def _check_out(out_dir: Path, overwrite: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [n for n in OUTPUTS if (out_dir / n).exists()]
    if existing and not overwrite:
        raise SceneError(f"{out_dir}: already holds {', '.join(existing)}; choose another "
                         "folder or overwrite them (--overwrite)")


def _profile(grid: SiteGrid, dtype: str, nodata: float, block: int) -> dict[str, Any]:
    tiled = grid.width >= 256 and grid.height >= 256
    prof: dict[str, Any] = {"driver": "GTiff", "width": grid.width, "height": grid.height,
                            "count": 1, "dtype": dtype, "nodata": nodata,
                            "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    if grid.crs is not None:
        prof.update(crs=grid.rio_crs, transform=grid.transform)
    if tiled:
        prof.update(tiled=True, blockxsize=min(512, block), blockysize=min(512, block))
    if dtype == "float32":
        # A float score hardly compresses (57 vs 64 MiB per 16.8 Mpx); DEFLATE spends
        # ~73 ms per Mpx on it (9 s on a full tile), ZSTD level 1 ~9 ms for the same size.
        prof.update(compress="zstd", zstd_level=1)
    return prof


def _open_pair(before: Scene | str | Path, after: Scene | str | Path) -> tuple[Scene, Scene]:
    """Both inputs opened side by side (most of the time goes to the checksum of the files,
    which releases the GIL); an error of BEFORE is raised first.

    No decode of every block when opening: the pass over every window decodes each block
    once anyway, and a block that fails then fails the run with a SceneError naming the file
    (and leaves no outputs).  On a whole tile that saves a second full decode."""

    def one(p: Scene | str | Path) -> Scene:
        return p if isinstance(p, Scene) else open_input(p, decode=False)

    with ThreadPoolExecutor(max_workers=2) as ex:
        fb, fa = ex.submit(one, before), ex.submit(one, after)
        return fb.result(), fa.result()


def detect_scenes(
    before: Scene | str | Path,
    after: Scene | str | Path,
    out_dir: str | Path,
    *,
    method: str | Detector | None = None,
    sensor: str | None = None,
    params: dict[str, Any] | None = None,
    threshold: str | float | None = None,
    alpha: float = 0.01,
    bands: Sequence[str] | None = None,
    normalise: bool | None = None,
    coregister: bool = True,
    mask: str | Path | None = None,
    clouds: bool = True,
    window: int = 1024,
    sample_pixels: int = 4_000_000,
    min_pixels: int = 4,
    max_hole_pixels: int = 4,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> DetectRun:
    """Detect change from ``before`` to ``after`` and write the four outputs to ``out_dir``.

    See the module docstring for the passes and ``sitewatch detect --help`` for the options.
    """
    t0 = _time.perf_counter()
    tick = progress or (lambda *_: None)
    notes: list[str] = []
    sb, sa = _open_pair(before, after)
    kind, note = sensor_kind(sb, sensor)
    if note:
        notes.append(note)
    det = resolve(method, kind, params)
    use = choose_bands(det, sb, sa, kind, bands)
    det.check_bands(use)
    grid = scene_grid(sb)
    if grid.crs is None:
        notes.append("the images are not georeferenced: outputs are on BEFORE's pixel grid, "
                     "polygons in pixel coordinates, and no co-registration is applied")
    if (sb.crs is None) != (sa.crs is None):
        raise GridError(f"{sb.id} and {sa.id}: one is georeferenced and the other is not")
    if sb.footprint is not None and sa.footprint is not None and not sb.footprint.intersects(
            sa.footprint):
        raise GridError(f"{sb.id} and {sa.id} do not overlap")
    out = Path(out_dir)
    _check_out(out, overwrite)
    exclude = None
    if mask is not None:
        from sitewatch.imagery.masks import user_mask

        exclude = user_mask(mask, grid.crs, grid.transform, grid.shape)
    spectral = clouds and kind == "optical" and not sb.masks and not sa.masks
    with ExitStack() as res:
        # Every block is read once and every output block written once: GDAL's block cache
        # (5 % of RAM by default, 1.2 GB here) would only hold dirty output blocks and
        # decoded input blocks nobody asks for again, as resident memory.
        res.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        handles = res.enter_context(Handles())
        pool = res.enter_context(_pool())
        loader = PairLoader(sb, sa, grid, use, exclude=exclude, spectral_clouds=spectral,
                            readers=(SceneReader.for_scene(sb, grid, use, handles),
                                     SceneReader.for_scene(sa, grid, use, handles)))
        halo = int(getattr(det, "halo", 0))
        win_size = max(64, int(window))

        # Co-registration (optical and SAR alike; a rejected match is reported, not applied).
        reg = None
        if coregister and grid.crs is not None:
            tick("co-registering", 0, 1)
            reg = coregister_pair(loader, registration_bands(use))
            if reg is None:
                notes.append("co-registration skipped: too little overlap in the central window")
            elif reg.status == "rejected":
                notes.append(f"co-registration rejected ({reg.reason}); no shift applied")
            elif not worth_applying(reg.shift):
                # Below the estimate's own precision; applying it would resample every AFTER
                # band (a warp per band and window instead of a plain read) for nothing.
                notes.append(f"co-registration shift ({reg.shift.dy:.2f}, "
                             f"{reg.shift.dx:.2f}) px is below {MIN_APPLIED_SHIFT_PX} px; "
                             "not applied")
            else:
                loader.shift = reg.shift
            tick("co-registering", 1, 1)

        # Pass 1: global statistics from a sample.
        samp = sample_windows(grid.shape, win_size, sample_pixels) if grid.crs else [None]
        pairs = []
        tick("sampling", 0, len(samp))
        for i, (b, a) in enumerate(pool.map(loader.load, samp)):  # in order: same mosaic
            tick("sampling", i, len(samp))
            if observed_both(b, a).any():
                pairs.append((b, a))
        tick("sampling", len(samp), len(samp))
        if not pairs:
            raise SceneError(f"{sb.id} -> {sa.id}: no pixel is observed on both dates (cloud, "
                             "nodata or no overlap)")
        sb_arr, sa_arr = mosaic(pairs, 2 * halo + 2)
        del pairs
        norm: Normalisation | None = None
        details: dict[str, Any] = {}
        if (det.normalise if normalise is None else normalise) and kind == "optical":
            try:
                norm = fit_normalisation(sb_arr, sa_arr)
                sa_arr = norm.apply(sa_arr)
                details["normalisation"] = norm.to_dict()
            except NormalisationError as exc:
                notes.append(f"normalisation skipped: {exc}")
        fitted = det.fit(sb_arr, sa_arr, use)
        sample_score = det.score(sb_arr, sa_arr, use, fitted)
        t, rule = threshold_for(det, sample_score, threshold, len(use), alpha)
        observed_sample = int(np.isfinite(sample_score).sum())
        del sb_arr, sa_arr, sample_score

        # Pass 2: every window, written as it is done.
        all_w = windows(grid.shape, win_size) if grid.crs else [Window(0, 0, grid.width,
                                                                          grid.height)]
        counts = {"observed": 0, "changed": 0}
        strips: dict[int, list[tuple[Window, np.ndarray, np.ndarray]]] = {}
        features: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        with ExitStack() as stack:
            # Renamed into place together once all are written (summary.json last: it says the
            # run is complete); an error leaves no partial output and any older ones intact.
            tmp = {n: stack.enter_context(atomic_path(out / n)) for n in reversed(OUTPUTS)}
            with rasterio.open(tmp["change.tif"], "w", **_profile(grid, "uint8", NOT_OBSERVED,
                                                                    win_size)) as dc, \
                 rasterio.open(tmp["score.tif"], "w", **_profile(grid, "float32", float("nan"),
                                                                   win_size)) as ds:
                for i, (w, cm) in enumerate(_changes(loader, det, fitted, norm, t, rule,
                                                     all_w, halo, grid, min_pixels,
                                                     max_hole_pixels, pool, res)):
                    tick("detecting", i, len(all_w))
                    code = np.where(cm.changed, CHANGE, NO_CHANGE).astype(np.uint8)
                    code[~cm.observed] = NOT_OBSERVED
                    dc.write(code, 1, window=w)
                    ds.write(cm.score.astype(np.float32), 1, window=w)
                    counts["observed"] += int(cm.observed.sum())
                    counts["changed"] += int(cm.changed.sum())
                    strips.setdefault(int(w.row_off), []).append((w, cm.changed, cm.score))
                    if sum(int(x.width) for x, _, _ in strips[int(w.row_off)]) >= grid.width:
                        row = strips.pop(int(w.row_off))
                        _strip_polygons(row, grid, features, pending)
                tick("detecting", len(all_w), len(all_w))
            features.extend(_join_pieces(pending, grid.crs))
            features.sort(key=lambda f: -(f["properties"]["pixels"]))
            for k, f in enumerate(features, 1):
                f["properties"]["id"] = k
            fc = post.feature_collection(features, grid.crs)
            tmp["changes.geojson"].write_text(json.dumps(fc))
            px_area = _pixel_area_m2(grid)
            summary = {
                "sitewatch": __version__,
                "before": _scene_summary(sb), "after": _scene_summary(sa),
                "sensor": kind, "method": det.name, "params": det.options,
                "bands": list(use),
                "threshold": t, "threshold_rule": rule,
                "grid": {"crs": grid.crs, "transform": list(grid.transform)[:6],
                         "width": grid.width, "height": grid.height},
                "registration": reg.to_dict() if reg else None,
                "registration_applied": loader.shift is not None,
                "cloud_test": "spectral with temporal check" if spectral else
                              ("provider masks" if (sb.masks or sa.masks) else "none"),
                "user_mask": str(mask) if mask is not None else None,
                "details": {**details, **{k: v for k, v in fitted.items() if _plain(v)}},
                "pixels": {"total": grid.width * grid.height, **counts,
                           "sampled_for_statistics": observed_sample},
                "changed_fraction": (counts["changed"] / counts["observed"]
                                     if counts["observed"] else None),
                "changed_area_m2": counts["changed"] * px_area if px_area else None,
                "objects": len(features),
                "seconds": round(_time.perf_counter() - t0, 3),
                "notes": notes,
                "outputs": {n: n for n in OUTPUTS},
                "values": {"change.tif": {"1": "change", "0": "no change",
                                          "255": "not observed"}},
            }
            tmp["summary.json"].write_text(json.dumps(summary, indent=2, default=_json_default))
        return DetectRun(summary, out)


#: GDAL's block cache while a pair is detected, MB (enough for a few rows of blocks).
GDAL_CACHE_MB = 32
#: Most threads decoding and scoring windows side by side (GDAL's decoders and numpy release
#: the GIL); memory grows by a window's working set per thread.
MAX_THREADS = 4


def _threads() -> int:
    """Threads for the pool: the CPUs this process may use, at least 2 (so decoding overlaps
    computing even on one core), at most :data:`MAX_THREADS`."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(2, min(MAX_THREADS, n))


@contextmanager
def _pool() -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, when the run fails, drops the work not yet started."""
    pool = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="sitewatch-detect")
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _strip_groups(all_w: Sequence[Window]) -> list[list[Window]]:
    """The windows grouped by strip (same first row), in order."""
    groups: list[list[Window]] = []
    for w in all_w:
        if groups and groups[-1][0].row_off == w.row_off:
            groups[-1].append(w)
        else:
            groups.append([w])
    return groups


def _changes(loader: PairLoader, det: Detector, fitted: dict[str, Any],
             norm: Normalisation | None, t: float, rule: str, all_w: Sequence[Window],
             halo: int, grid: SiteGrid, min_pixels: int, max_hole_pixels: int,
             pool: ThreadPoolExecutor, res: ExitStack) -> Iterator[tuple[Window, ChangeMap]]:
    """Every window's change map, in the order of ``all_w``.

    The windows of a strip are scored in ``pool`` while the rows of the strips after it are
    decoded (:class:`~sitewatch.change.blockread.StripFeed`: each block of each file once,
    for all its bands); a date that has to be warped is loaded per window instead.
    """
    ctx = max(halo, 4) if grid.crs is not None else 0
    groups = _strip_groups(all_w)
    bounds = [(int(g[0].row_off), int(g[0].row_off + g[0].height)) for g in groups]
    feeds: list[StripFeed | None] = []
    for i, reader in enumerate(loader.readers):
        usable = reader is not None and (i == 0 or loader.shift is None)
        feed = StripFeed(reader, bounds, ctx, pool.submit) if usable and reader else None
        if feed is not None:
            res.callback(feed.close)
        feeds.append(feed)
    loader.feeds = (feeds[0], feeds[1])
    for k, ws in enumerate(groups):
        for feed in feeds:
            if feed is not None:
                feed.ready(k)
        futs = [pool.submit(_window_change, loader, det, fitted, norm, t, rule, w, halo, grid,
                            min_pixels, max_hole_pixels) for w in ws]
        for w, fut in zip(ws, futs, strict=True):
            yield w, fut.result()


def _window_change(loader: PairLoader, det: Detector, fitted: dict[str, Any],
                   norm: Normalisation | None, t: float, rule: str, w: Window, halo: int,
                   grid: SiteGrid, min_pixels: int, max_hole_pixels: int) -> ChangeMap:
    """Score, threshold and clean one window (computed on the window plus a context halo;
    the cleaning needs context too, so the halo is at least a few pixels)."""
    ctx = max(halo, 4) if grid.crs is not None else 0
    pw, (oy, ox) = padded(w, ctx, grid.shape)
    b, a = loader.load(pw if grid.crs is not None else None)
    if norm is not None:
        a = norm.apply(a)
    score = det.score(b, a, loader.bands, fitted)
    obs = observed_both(b, a)
    changed = np.zeros(score.shape, bool)
    changed[obs] = score[obs] > t
    changed = post.clean(changed, obs, min_pixels=min_pixels, max_hole_pixels=max_hole_pixels)
    sl = (slice(oy, oy + int(w.height)), slice(ox, ox + int(w.width)))
    return ChangeMap(score[sl], changed[sl], obs[sl], t, rule, det.name)


def _strip_polygons(row: list[tuple[Window, np.ndarray, np.ndarray]], grid: SiteGrid,
                    features: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
    """Polygons of one strip of windows; those touching the strip's top or bottom seam wait
    in ``pending`` to be joined with their other parts."""
    row.sort(key=lambda x: x[0].col_off)
    changed = np.concatenate([c for _, c, _ in row], axis=1)
    score = np.concatenate([s for _, _, s in row], axis=1)
    w0 = row[0][0]
    strip = Window(0, w0.row_off, grid.width, changed.shape[0])
    tr = grid.transform @ Affine.translation(0, strip.row_off)
    top, bottom = strip.row_off, strip.row_off + strip.height
    for f in post.polygons(changed, tr, grid.crs, score=score):
        geom_rows = _row_extent(f["geometry"], grid.transform)
        f["properties"]["_seam"] = ((geom_rows[0] <= top and top > 0)
                                    or (geom_rows[1] >= bottom and bottom < grid.height))
        (pending if f["properties"]["_seam"] else features).append(f)
        if not f["properties"]["_seam"]:
            del f["properties"]["_seam"]


def _row_extent(geom: dict[str, Any], transform: Affine) -> tuple[float, float]:
    from shapely.geometry import shape

    minx, miny, maxx, maxy = shape(geom).bounds
    inv = ~transform
    r1 = (inv @ (minx, miny))[1]
    r2 = (inv @ (maxx, maxy))[1]
    return min(r1, r2), max(r1, r2)


def _join_pieces(pending: list[dict[str, Any]], crs: str | None) -> Iterator[dict[str, Any]]:
    """Join polygon pieces that touch across strip seams into whole objects."""
    if not pending:
        return
    from shapely import STRtree
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    geoms = [shape(f["geometry"]) for f in pending]
    tree = STRtree(geoms)
    parent = list(range(len(geoms)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, g in enumerate(geoms):
        for j in tree.query(g, predicate="intersects"):
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for i in range(len(geoms)):
        groups.setdefault(find(i), []).append(i)
    for members in groups.values():
        props = [pending[i]["properties"] for i in members]
        n = sum(p["pixels"] for p in props)
        geom = unary_union([geoms[i] for i in members])
        means = [(p["mean_score"], p["pixels"]) for p in props if p.get("mean_score") is not None]
        maxes = [p["max_score"] for p in props if p.get("max_score") is not None]
        merged = {"pixels": n,
                  "mean_score": (sum(m * k for m, k in means) / sum(k for _, k in means)
                                 if means else None),
                  "max_score": max(maxes) if maxes else None}
        for key in ("area_m2", "area_px"):
            vals = [p.get(key) for p in props]
            if all(v is not None for v in vals):
                merged[key] = sum(vals)
            elif key in props[0]:
                merged[key] = None
        yield {"type": "Feature", "geometry": mapping(geom), "properties": merged}


def _pixel_area_m2(grid: SiteGrid) -> float | None:
    if grid.crs is None:
        return None
    from rasterio.crs import CRS as RioCRS

    crs = RioCRS.from_wkt(grid.crs)
    if crs.is_geographic:
        from pyproj import Geod

        lon, lat = grid.transform @ (grid.width / 2, grid.height / 2)
        a, e = grid.transform.a, grid.transform.e
        geod = Geod(ellps="WGS84")
        area, _ = geod.polygon_area_perimeter([lon, lon + a, lon + a, lon],
                                              [lat, lat, lat + e, lat + e])
        return abs(area)
    unit = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return abs(grid.transform.a * grid.transform.e) * unit * unit


def _scene_summary(s: Scene) -> dict[str, Any]:
    return {"id": s.id, "source": s.source, "sensor": s.sensor,
            "acquired": None if s.acquired == _NO_TIME else iso(s.acquired),
            "bands": s.band_names}


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)

__all__ = ["OUTPUTS", "DetectRun", "PairLoader", "Progress", "choose_bands", "coregister_pair",
           "detect_scenes", "mosaic", "open_input", "padded", "sample_windows", "scene_grid",
           "sensor_kind", "sub_grid", "windows"]
