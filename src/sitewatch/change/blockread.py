"""Reading a scene window by window with each file decoded once for all of its bands.

:func:`sitewatch.imagery.grid.load_scene` reads one band at a time and opens the file for
each read.  That is right for a site's small grid, but on a whole scene it multiplies the
decoding: a pixel-interleaved GeoTIFF (what GDAL writes by default: every block holds all
bands, often in strips one row high) is decoded once per band, and a window that cuts
through blocks decodes the blocks it touches in full every time.  A 10980 x 10980 x 4 pair
stored that way took 245 s where the decoding alone is ~10 s.

Here, when every band of a scene lies on the processing grid's own pixels (same CRS, pixel
size and extent: the usual case for a pair of one tile), the scene is read

* per window, with one ``read`` per *file* for all the bands it holds
  (:meth:`SceneReader.window`), for the sample and co-registration windows; and
* per strip of rows, full width (:class:`RowChunks`), for the pass over every window: each
  block of every file is decoded once, whatever the layout (per-band files, pixel- or
  band-interleaved, strips or tiles, JPEG 2000), and the windows of a strip with their
  context halo are cut out of the chunks in memory.

Values, NaN rules and quality are exactly those of ``load_scene`` (the same nodata, GDAL
mask, scale/offset and provider-mask steps, in the same order), so a change map is the same
bit for bit.  Datasets are opened once per thread (GDAL datasets must not be shared between
threads) and closed together.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.io import DatasetReader
from rasterio.windows import Window

from sitewatch.imagery.grid import GridImage, SiteGrid, _read_quality
from sitewatch.imagery.masks import Quality, combine
from sitewatch.imagery.rasters import open_raster, reading
from sitewatch.imagery.scenes import BandRef, Scene


class Handles:
    """Open datasets, one per file and thread, closed together by :meth:`close`."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[DatasetReader] = []
        self._lock = threading.Lock()

    def get(self, path: str) -> DatasetReader:
        """This thread's dataset for ``path`` (opened with :func:`open_raster`)."""
        mine: dict[str, DatasetReader] | None = getattr(self._local, "ds", None)
        if mine is None:
            mine = self._local.ds = {}
        ds = mine.get(path)
        if ds is None:
            ds = mine[path] = open_raster(path)
            with self._lock:
                self._all.append(ds)
        return ds

    def close(self) -> None:
        with self._lock:
            for ds in self._all:
                ds.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Handles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Band:
    """How one band's raw values become ``load_scene``'s float32 values."""

    slot: int  # position in the output stack
    ref: BandRef
    gdal_nodata: float | None  # compare with this (GDAL's mask is only the nodata value)
    gdal_mask: bool  # GDAL's mask needs ``read_masks`` (internal mask, alpha, ...)


@dataclass(frozen=True)
class _File:
    """One file of a scene and the bands read from it."""

    path: str
    indexes: tuple[int, ...]
    bands: tuple[_Band, ...]
    block_rows: int  # height of the file's blocks (1 for one-row strips)


def _band_rule(ds: DatasetReader, index: int) -> tuple[float | None, bool]:
    """(nodata to compare with, whether read_masks is needed): ``_read_valid``'s rule."""
    flags = ds.mask_flag_enums[index - 1]
    if MaskFlags.all_valid in flags:
        return None, False
    nd = ds.nodatavals[index - 1]
    if flags == [MaskFlags.nodata] and nd is not None:
        return (None if np.isnan(nd) else float(nd)), False
    return None, True


def _on_grid(ds: DatasetReader, grid: SiteGrid) -> bool:
    """Whether ``ds`` covers ``grid`` exactly on its own pixels (no warp, no offset)."""
    st, t = ds.transform, grid.transform
    if st.b or st.d or t.b or t.d or (ds.height, ds.width) != grid.shape:
        return False
    if not all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, abs(t.a)))
               for x, y in ((st.a, t.a), (st.e, t.e), (st.c, t.c), (st.f, t.f))):
        return False
    return ds.crs is not None and ds.crs == grid.rio_crs


@dataclass
class SceneReader:
    """Windows of one scene on ``grid``; build with :meth:`for_scene`."""

    scene: Scene
    grid: SiteGrid
    names: tuple[str, ...]
    files: tuple[_File, ...]
    handles: Handles
    sar_units: str | None = None
    reads: list[tuple[str, Window]] = field(default_factory=list)  # (path, window) log

    @classmethod
    def for_scene(cls, scene: Scene, grid: SiteGrid, bands: Sequence[str],
                  handles: Handles) -> SceneReader | None:
        """A reader when every band of ``bands`` lies on ``grid``'s pixels, else None (the
        caller then warps with ``load_scene``)."""
        if grid.crs is None:
            return None
        refs = [scene.band(b) for b in bands]
        by_path: dict[str, list[tuple[int, BandRef]]] = {}
        for slot, ref in enumerate(refs):
            by_path.setdefault(ref.path, []).append((slot, ref))
        files = []
        for path, members in by_path.items():
            ds = handles.get(path)
            if not _on_grid(ds, grid):
                return None
            specs = []
            for slot, ref in members:
                nd, needs_mask = _band_rule(ds, ref.index)
                specs.append(_Band(slot, ref, nd, needs_mask))
            block_rows = int(ds.block_shapes[0][0]) if ds.block_shapes else 1
            files.append(_File(path, tuple(r.index for _, r in members), tuple(specs),
                               max(1, block_rows)))
        names = tuple(r.common_name or r.name for r in refs)
        return cls(scene, grid, names, tuple(files), handles,
                   scene.properties.get("sar_units"))

    @property
    def block_rows(self) -> list[int]:
        return [f.block_rows for f in self.files]

    def _read(self, f: _File, win: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw values of ``f``'s bands in ``win`` (one read for all of them) and, where a band
        needs GDAL's mask, the masks (0 = no data)."""
        ds = self.handles.get(f.path)
        with reading(f.path):
            raw = ds.read(list(f.indexes), window=win)
            masks = None
            if any(b.gdal_mask for b in f.bands):
                masks = np.stack([ds.read_masks(b.ref.index, window=win) if b.gdal_mask else
                                  np.empty((0, 0), np.uint8) for b in f.bands])
        self.reads.append((f.path, win))
        return raw, masks

    def read_rows(self, r0: int, r1: int) -> RowChunk:
        """Rows ``r0..r1`` of every file, full width, raw (each block decoded once)."""
        win = Window(0, r0, self.grid.width, r1 - r0)
        return RowChunk(r0, r1, [self._read(f, win) for f in self.files])

    def window(self, win: Window) -> GridImage:
        """``win`` of the grid as ``load_scene`` returns it, one read per file."""
        r0, c0 = int(win.row_off), int(win.col_off)
        return self.assemble([RowChunk(r0, r0 + int(win.height),
                                       [self._read(f, win) for f in self.files], c0)], win)

    def assemble(self, chunks: Sequence[RowChunk], win: Window) -> GridImage:
        """``win`` (grid pixels) built from ``chunks`` that together cover its rows."""
        r0, c0 = int(win.row_off), int(win.col_off)
        h, w = int(win.height), int(win.width)
        data = np.empty((len(self.names), h, w), dtype=np.float32)
        for ch in chunks:
            a, b = max(r0, ch.r0), min(r0 + h, ch.r1)
            if b <= a:
                continue
            rows = slice(a - ch.r0, b - ch.r0)
            cols = slice(c0 - ch.c0, c0 - ch.c0 + w)
            for f, (raw, masks) in zip(self.files, ch.parts, strict=True):
                for k, band in enumerate(f.bands):
                    out = data[band.slot, a - r0:b - r0]
                    _convert(out, raw[k, rows, cols],
                             None if masks is None else masks[k, rows, cols], band)
        return self._finish(data, win)

    def _finish(self, data: np.ndarray, win: Window) -> GridImage:
        """SAR units, quality and provider masks: the tail of ``load_scene``."""
        if self.sar_units == "db":
            np.power(np.float32(10.0), data / np.float32(10.0), out=data)
        elif self.sar_units == "amplitude":
            np.square(data, out=data)
        g = SiteGrid(self.grid.crs, self.grid.transform @ Affine.translation(
            win.col_off, win.row_off), int(win.width), int(win.height))
        quality = [np.where(np.isnan(data).any(axis=0), Quality.NODATA, Quality.VALID)
                   .astype(np.uint8)]
        quality.extend(_read_quality(m, g, None) for m in self.scene.masks)
        q = combine(*quality)
        data[:, q != Quality.VALID] = np.nan
        s = self.scene
        return GridImage(s.id, s.acquired, s.sensor, g, self.names, data, q, None)


def _convert(out: np.ndarray, raw: np.ndarray, mask: np.ndarray | None, band: _Band) -> None:
    """``out`` = the float32 value of ``raw`` with ``_read_valid``'s NaN rules, then scaled
    as ``load_scene`` scales it (``x * scale + offset``, float32 throughout)."""
    np.copyto(out, raw, casting="unsafe")
    if band.gdal_nodata is not None:
        out[out == np.float32(band.gdal_nodata)] = np.nan
    elif band.gdal_mask and mask is not None:
        out[mask == 0] = np.nan
    nd = band.ref.nodata
    if nd is not None and not np.isnan(nd):
        out[out == nd] = np.nan
    # load_scene computes arr * scale + offset into the stack: the same two float32 steps.
    np.multiply(out, band.ref.scale, out=out)
    np.add(out, band.ref.offset, out=out)


@dataclass
class RowChunk:
    """Raw values of rows ``r0..r1`` (from column ``c0``) of each file of a scene."""

    r0: int
    r1: int
    parts: list[tuple[np.ndarray, np.ndarray | None]]
    c0: int = 0

    def tail(self, n: int) -> RowChunk:
        """The last ``n`` rows only (copies, so the rest is freed)."""
        k = max(0, (self.r1 - self.r0) - n)
        return RowChunk(self.r1 - min(n, self.r1 - self.r0), self.r1,
                        [(raw[:, k:].copy(), None if m is None else m[:, k:].copy())
                         for raw, m in self.parts], self.c0)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes + (0 if m is None else m.nbytes) for r, m in self.parts)


def chunk_bounds(height: int, strip_rows: int, block_rows: Sequence[int]
                 ) -> list[tuple[int, int]]:
    """Row ranges to read a file set in: about half a strip of ``strip_rows`` each (the halo
    below a strip then holds half a strip's rows in memory, not a whole one), starting on a
    block boundary of every file (the least common multiple of their block heights), so
    that no block is decoded twice.  Files with blocks taller than two strips are read in
    strips of ``strip_rows`` (their blocks on a seam are then decoded twice).

    >>> chunk_bounds(2000, 1024, [512, 1])
    [(0, 512), (512, 1024), (1024, 1536), (1536, 2000)]
    >>> chunk_bounds(2000, 1024, [1024])[:2], chunk_bounds(2000, 128, [2000])[:2]
    ([(0, 1024), (1024, 2000)], [(0, 128), (128, 256)])
    """
    step = math.lcm(*block_rows) if block_rows else 1
    if step > 2 * strip_rows:
        step = strip_rows
    else:
        step *= max(1, round(strip_rows / 2 / step))
    return [(r, min(r + step, height)) for r in range(0, height, step)]


class StripFeed:
    """Windows of one scene for a pass over strips of windows, in order.

    ``bounds`` are the strips' (first row, end row).  The scene is read in block-aligned
    chunks of rows, full width (:func:`chunk_bounds`), each once.  :meth:`ready` (called
    with each strip before its windows are loaded) makes sure that the chunks covering the
    strip and its context halo of ``ctx`` rows are in memory, drops the rows no later strip
    needs, and starts reading the chunks of the next strip through ``submit`` (a thread
    pool), so that decoding overlaps computing.  :meth:`window` may be called from several
    threads.
    """

    def __init__(self, reader: SceneReader, bounds: Sequence[tuple[int, int]], ctx: int,
                 submit: Callable[..., Future[RowChunk]]) -> None:
        self.reader, self.bounds, self.ctx = reader, list(bounds), ctx
        tallest = max((r1 - r0 for r0, r1 in bounds), default=1)
        self.chunks = chunk_bounds(reader.grid.height, tallest, reader.block_rows)
        self._submit = submit
        self._pending: dict[int, Future[RowChunk]] = {}
        self._loaded: dict[int, RowChunk] = {}
        self._current: list[RowChunk] = []

    def _want(self, j: int) -> None:
        if 0 <= j < len(self.chunks) and j not in self._loaded and j not in self._pending:
            self._pending[j] = self._submit(self.reader.read_rows, *self.chunks[j])

    def _needed(self, k: int) -> tuple[int, list[int]]:
        """The first row strip ``k`` reaches (with its halo) and the chunks holding it."""
        r0, r1 = self.bounds[k]
        lo, hi = max(0, r0 - self.ctx), min(self.reader.grid.height, r1 + self.ctx)
        return lo, [j for j, (a, b) in enumerate(self.chunks) if a < hi and b > lo]

    def ready(self, k: int) -> None:
        """Strip ``k``'s rows and halo are in memory; strip ``k + 1``'s are on their way."""
        lo, need = self._needed(k)
        for j in need:
            self._want(j)
        for j in need:
            if j in self._pending:
                self._loaded[j] = self._pending.pop(j).result()
        for j in list(self._loaded):
            if j < need[0]:
                del self._loaded[j]  # no later strip reaches above ``lo``
        first = self._loaded[need[0]]
        if first.r1 - lo < (first.r1 - first.r0) // 2:
            self._loaded[need[0]] = first.tail(first.r1 - lo)
        if k + 1 < len(self.bounds):
            for j in self._needed(k + 1)[1]:
                self._want(j)
        self._current = [self._loaded[j] for j in need]

    def window(self, win: Window) -> GridImage:
        return self.reader.assemble(self._current, win)

    def close(self) -> None:
        """Wait for reads still under way (their threads use the datasets) and drop all."""
        for fut in self._pending.values():
            fut.cancel()
        for fut in self._pending.values():
            if not fut.cancelled():
                # The run is ending anyway; an error of a read it no longer needs is moot.
                with contextlib.suppress(Exception):
                    fut.result()
        self._pending.clear()
        self._loaded.clear()
        self._current = []

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._loaded.values())


__all__ = ["Handles", "RowChunk", "SceneReader", "StripFeed", "chunk_bounds"]
