#!/usr/bin/env python
"""The watch pipeline on a real Landsat series with planted events (issue 4): detection
rate, detection lag and false alarms per part-year of ``sitewatch.watch.pipeline.run_site``.

Usage (from the repository root)::

    python benchmarks/bench_watch_colorado.py [--data ../shared/data] [--seeds 20]
        [--first-seed 10] [--events 8] [--runs "as-is=default,hacd,cva off=default"]
        [--json summary.json] [--compare LABEL=earlier.json]
        [--out docs/bench_watch_colorado.md]

Seeds 0-9 are for choosing parameters; the default run reports on seeds 10-29 (issue 20).
Besides the site-scene scoring below, events are scored *within one usable scene of the
part*: on the first two usable scenes after the event's day on which the part is seen
(at least half its box clear in Fmask), and alerts at untouched parts whose every finding
came from a comparison spanning seasons are counted (``season_only``).

The series is ``landsat_timeseries_colorado``: 105 real Landsat 5/7 scenes (2008-2013,
61 x 61 px at 30 m, red / nir / swir16 surface reflectance with an Fmask band) with their
real clouds, snow, shadows, SLC-off gaps and seasons.  For each seed a copy of the series
is written to a temporary folder with ``--events`` changes planted in it:

* sizes: every size of :data:`SIZES` once per seed, the rest drawn at random from them;
* shapes: compact blobs grown from a random pixel by random 4-connected growth, at least
  :data:`EDGE` px from the image edge;
* dates: a scene index drawn uniformly in [15, 100) of the 105 (time order), so every event
  has history before it; the event's day is drawn between the previous scene and that one;
* kinds: half construction-like (bright bare concrete), half clearing-like (vegetation
  removed to bare soil), reflectances drawn per event from :data:`KINDS` with a small
  per-date gain jitter and per-pixel noise;
* persistence: the planted reflectance is written into that scene and every later one, on
  pixels the scene's Fmask calls clear (0) or water (1) and that have data in every band.
  Cloud, shadow, snow and fill stay on top, as they would on the ground.

Parts: one per event (its bounding box grown by 1 px, at least 5 x 5 px, named
``event_e<i>_<n>px``) and as many untouched 5 x 5 px parts (``quiet_q<i>``) on ground with no
planted change; parts keep a 1 px gap from each other.  The site boundary is the image
footprint less 5 m.  The copy is catalogued with ``sitewatch.imagery.ingest.ingest`` and every
method runs through ``run_site`` on the same store (alerts cleared before each method: the
store keys alerts by site, part and date, not by parameters, so a second method would
update the first one's alerts).  Co-registration runs as the pipeline does it (``as-is``)
and, as diagnostics, switched off or matched on swir16 (see :data:`MODES`); each mode gets
its own store.  Alerts are scored with
``sitewatch.sim.evaluate.score``: an event is detected when an alert at its part has a finding
on one of the first two usable scenes at or after its day (lag 0 or 1 usable scene).  False
alarms per part-year on the untouched parts = alerts there / (untouched parts x years
spanned by the usable dates).  Everything is drawn from the seed, so a run is repeatable.
Temporary copies are deleted at the end.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.warp import transform_geom

from sitewatch.change.detect import DEFAULT_METHOD
from sitewatch.imagery.coregister import ZERO, Registration
from sitewatch.imagery.grid import grid_for_scenes
from sitewatch.imagery.ingest import ingest
from sitewatch.sim import evaluate
from sitewatch.sites.site import site_from_geojson
from sitewatch.store import Store
from sitewatch.times import iso_day
from sitewatch.watch import grids, pipeline
from sitewatch.watch.pipeline import RunParams, run_site, usable_dates
from sitewatch.watch.records import json_safe
from sitewatch.watch.zonal import MIN_OBSERVED

#: Days apart from which a comparison spans seasons (the pipeline's rule since issue 20).
SEASON_GAP_DAYS = getattr(grids, "SEASON_GAP_DAYS", 60)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import code_state  # noqa: E402

SERIES = "landsat_timeseries_colorado"
BAND_FILES = {"red": "b3", "nir": "b4", "swir16": "b5"}
SCALE = 1e-4  # DN -> reflectance (the files carry no scale; values confirm 1e-4)
NODATA = -9999
PLANT_ON = (0, 1)  # Fmask codes the planted ground shows through: clear, water
SIZES = (1, 2, 4, 8, 12, 20)
BIG = 4  # the target is for events of at least this many pixels
EDGE = 3  # planted pixels stay this far (px) from the image edge
FIRST_SCENE, LAST_SCENE = 15, 100  # event scene index drawn in [FIRST, LAST)
QUIET_SIZE = 5
MIN_PART = 5
#: Reflectance ranges (red, nir, swir16) an event's level is drawn from.
KINDS: dict[str, tuple[tuple[float, float], ...]] = {
    "construction": ((0.20, 0.30), (0.25, 0.32), (0.30, 0.40)),
    "clearing": ((0.12, 0.18), (0.18, 0.24), (0.25, 0.32)),
}
GAIN_SD = 0.03  # per-date multiplicative jitter of an event's level (haze, sun angle)
NOISE_SD = 0.005  # per-pixel, per-date additive noise (reflectance)
TARGET_DETECT = 0.90
TARGET_FA = 1.0

# --------------------------------------------------------------------------- the series


@dataclass
class SceneDir:
    name: str
    day: date

    def path(self, root: Path, band: str) -> Path:
        return root / self.name / f"{self.name}_{band}.tif"


def list_scenes(root: Path) -> list[SceneDir]:
    out = []
    for d in sorted(p.name for p in root.iterdir() if p.is_dir()):
        # Landsat scene ids: LXSPPPRRRYYYYDDD...
        year, doy = int(d[9:13]), int(d[13:16])
        out.append(SceneDir(d, date(year, 1, 1) + timedelta(days=doy - 1)))
    out.sort(key=lambda s: (s.day, s.name))
    return out


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as f:
        return f.read(1)


@dataclass
class Series:
    root: Path
    scenes: list[SceneDir]
    shape: tuple[int, int]
    transform: Any
    crs: Any
    fmask: list[np.ndarray] = field(default_factory=list)
    bands: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Series:
        scenes = list_scenes(root)
        with rasterio.open(scenes[0].path(root, "fmask")) as f:
            shape, transform, crs = (f.height, f.width), f.transform, f.crs
        s = cls(root, scenes, shape, transform, crs)
        s.fmask = [read(sc.path(root, "fmask")) for sc in scenes]
        s.bands = {b: [read(sc.path(root, f)) for sc in scenes] for b, f in BAND_FILES.items()}
        return s

    def clear_share(self, k: int, box: tuple[int, int, int, int]) -> float:
        """The share of a part's box (r0, r1, c0, c1 inclusive) that scene ``k`` sees clear
        (Fmask clear or water, data in every band)."""
        if not hasattr(self, "_plantable"):
            self._plantable: dict[int, np.ndarray] = {}
        if k not in self._plantable:
            self._plantable[k] = self.plantable(k)
        r0, r1, c0, c1 = box
        return float(self._plantable[k][r0:r1 + 1, c0:c1 + 1].mean())

    def plantable(self, k: int) -> np.ndarray:
        ok = np.isin(self.fmask[k], PLANT_ON)
        for arrs in self.bands.values():
            ok &= arrs[k] != NODATA
        return ok

    def clear_levels(self) -> dict[str, tuple[float, float, float]]:
        """Median clear-sky reflectance per band over the summer (Jun-Sep) scenes, and the
        5th and 95th percentiles of the pixels: what the ground looks like."""
        out = {}
        for b, arrs in self.bands.items():
            vals = [a[(f == 0) & (a != NODATA)] for a, f, sc in zip(arrs, self.fmask,
                                                                   self.scenes, strict=True)
                    if 6 <= sc.day.month <= 9]
            v = np.concatenate(vals).astype(float) * SCALE
            out[b] = (float(np.percentile(v, 5)), float(np.median(v)),
                      float(np.percentile(v, 95)))
        return out


# --------------------------------------------------------------------------- planting


@dataclass
class Event:
    id: str
    size: int
    kind: str
    scene: int  # index of the first scene that shows it (when clear there)
    day: date  # the day it appears on the ground
    pixels: np.ndarray  # (n, 2) rows, cols
    level: np.ndarray  # (3,) reflectance red, nir, swir16
    part: str = ""
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # r0, r1, c0, c1 inclusive


@dataclass
class Layout:
    seed: int
    events: list[Event]
    quiet: dict[str, tuple[int, int, int, int]]

    @property
    def boxes(self) -> dict[str, tuple[int, int, int, int]]:
        return {**{e.part: e.box for e in self.events}, **self.quiet}


def _grow_blob(rng: np.random.Generator, size: int, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    r, c = int(rng.integers(EDGE, h - EDGE)), int(rng.integers(EDGE, w - EDGE))
    blob = [(r, c)]
    have = {(r, c)}
    while len(blob) < size:
        frontier = sorted({(y + dy, x + dx) for y, x in blob
                           for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))
                           if EDGE <= y + dy < h - EDGE and EDGE <= x + dx < w - EDGE} - have)
        y, x = frontier[int(rng.integers(len(frontier)))]
        blob.append((y, x))
        have.add((y, x))
    return np.array(blob)


def _part_box(pix: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    r0, c0 = pix.min(axis=0) - 1
    r1, c1 = pix.max(axis=0) + 1
    for lo, hi, n in ((0, 1, shape[0]), (2, 3, shape[1])):
        b = [r0, r1, c0, c1]
        while b[hi] - b[lo] + 1 < MIN_PART:  # grow alternately on each side
            if (b[hi] - b[lo]) % 2 == 0 and b[lo] > 0:
                b[lo] -= 1
            elif b[hi] < n - 1:
                b[hi] += 1
            else:
                b[lo] -= 1
        r0, r1, c0, c1 = b
    return int(r0), int(r1), int(c0), int(c1)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 1) -> bool:
    return not (a[1] + gap < b[0] or b[1] + gap < a[0] or a[3] + gap < b[2] or b[3] + gap < a[2])


def make_layout(seed: int, n_events: int, series: Series) -> Layout:
    rng = np.random.default_rng([4, seed])
    shape = series.shape
    sizes = list(SIZES[:n_events]) + [int(rng.choice(SIZES))
                                      for _ in range(max(0, n_events - len(SIZES)))]
    rng.shuffle(sizes)
    kinds = ["construction", "clearing"] * (n_events // 2 + 1)
    kinds = kinds[:n_events]
    rng.shuffle(kinds)
    events: list[Event] = []
    boxes: list[tuple[int, int, int, int]] = []
    for i, (size, kind) in enumerate(zip(sizes, kinds, strict=True)):
        for _try in range(1000):
            pix = _grow_blob(rng, size, shape)
            box = _part_box(pix, shape)
            if not any(_overlaps(box, b) for b in boxes):
                break
        else:
            raise SystemExit(f"seed {seed}: no room for event {i} ({size} px)")
        k = int(rng.integers(FIRST_SCENE, LAST_SCENE))
        prev, this = series.scenes[k - 1].day, series.scenes[k].day
        day = prev + timedelta(days=int(rng.integers(1, (this - prev).days + 1)))
        level = np.array([rng.uniform(lo, hi) for lo, hi in KINDS[kind]])
        e = Event(f"E{i}", size, kind, k, day, pix, level, f"event_e{i}_{size}px", box)
        events.append(e)
        boxes.append(box)
    quiet: dict[str, tuple[int, int, int, int]] = {}
    for q in range(n_events):
        for _try in range(1000):
            r0 = int(rng.integers(EDGE, shape[0] - EDGE - QUIET_SIZE + 1))
            c0 = int(rng.integers(EDGE, shape[1] - EDGE - QUIET_SIZE + 1))
            box = (r0, r0 + QUIET_SIZE - 1, c0, c0 + QUIET_SIZE - 1)
            if not any(_overlaps(box, b) for b in boxes):
                break
        else:
            raise SystemExit(f"seed {seed}: no room for untouched part {q}")
        quiet[f"quiet_q{q}"] = box
        boxes.append(box)
    return Layout(seed, events, quiet)


def write_copy(series: Series, layout: Layout, dest: Path) -> int:
    """The series with the layout's events planted, under ``dest`` (same folder and file
    names, profiles and tags).  Returns the number of planted pixel-dates."""
    planted = 0
    bands = list(BAND_FILES)
    for k, sc in enumerate(series.scenes):
        (dest / sc.name).mkdir(parents=True)
        shutil.copy2(sc.path(series.root, "fmask"), sc.path(dest, "fmask"))
        live = [e for e in layout.events if e.scene <= k]
        if not live:
            for f in BAND_FILES.values():
                shutil.copy2(sc.path(series.root, f), sc.path(dest, f))
            continue
        arrs = {b: series.bands[b][k].copy() for b in bands}
        ok = series.plantable(k)
        for j, e in enumerate(layout.events):
            if e.scene > k:
                continue
            rng = np.random.default_rng([5, layout.seed, j, k])
            gain = 1.0 + rng.normal(0.0, GAIN_SD)
            rr, cc = e.pixels[:, 0], e.pixels[:, 1]
            on = ok[rr, cc]
            for i, b in enumerate(bands):
                v = e.level[i] * gain + rng.normal(0.0, NOISE_SD, len(rr))
                dn = np.clip(np.round(v / SCALE), 1, 10000).astype(np.int16)
                arrs[b][rr[on], cc[on]] = dn[on]
            planted += int(on.sum())
        for b, f in BAND_FILES.items():
            src = sc.path(series.root, f)
            with rasterio.open(src) as s:
                profile, tags = s.profile, s.tags()
                band_tags, desc = s.tags(1), s.descriptions
            with rasterio.open(sc.path(dest, f), "w", **profile) as o:
                o.write(arrs[b], 1)
                o.update_tags(**tags)
                o.update_tags(1, **band_tags)
                if desc and desc[0]:
                    o.set_band_description(1, desc[0])
    return planted


# --------------------------------------------------------------------------- the site


def _lonlat(series: Series, r0: float, r1: float, c0: float, c1: float,
            inset_m: float = 0.0) -> dict[str, Any]:
    """Pixel rows r0..r1 and columns c0..c1 (inclusive) as a lon/lat polygon."""
    t = series.transform
    x0, y0 = t * (c0, r0)
    x1, y1 = t * (c1 + 1, r1 + 1)
    x0, x1 = min(x0, x1) + inset_m, max(x0, x1) - inset_m
    y0, y1 = min(y0, y1) + inset_m, max(y0, y1) - inset_m
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return transform_geom(series.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})


def site_geojson(series: Series, layout: Layout, site_id: str) -> dict[str, Any]:
    h, w = series.shape
    feats = [{"type": "Feature", "geometry": _lonlat(series, 0, h - 1, 0, w - 1, inset_m=5.0),
              "properties": {"role": "site", "id": site_id, "name": f"Colorado planted, seed "
                             f"{layout.seed}", "site_type": "facility", "simulated": True}}]
    for name, (r0, r1, c0, c1) in layout.boxes.items():
        feats.append({"type": "Feature", "geometry": _lonlat(series, r0, r1, c0, c1),
                      "properties": {"role": "part", "name": name, "kind": "other"}})
    return {"type": "FeatureCollection", "features": feats}


# --------------------------------------------------------------------------- co-registration

#: How co-registration runs.  ``as-is``: the pipeline untouched.  The others are
#: diagnostics, patched into :mod:`sitewatch.watch.pipeline` for the run only: ``off`` replaces
#: ``register`` by "no shift, ok" (the Landsat scenes already share one terrain-corrected
#: grid), so every scene seen well enough is compared; ``swir16`` makes the pipeline match
#: the swir16 band instead of red (``registration_bands``), acceptance rules unchanged.
MODES = ("as-is", "off", "swir16")
DEFAULT_RUNS = "as-is=default"
MODE_WORDS = {"as-is": "co-reg as is", "off": "co-reg off", "swir16": "co-reg on swir16"}


def _no_registration(reference: Any, moving: Any, **_: Any) -> Registration:
    return Registration(ZERO, 0.0, math.nan, (), "ok", "co-registration bypassed (benchmark)")


@contextmanager
def coregistration(mode: str) -> Iterator[None]:
    """Run the pipeline with co-registration ``mode`` (see :data:`MODES`)."""
    saved = {"registration_bands": grids.registration_bands, "register": grids.register}
    old = saved["registration_bands"]

    def swir16(bands: Any) -> list[str]:
        return ["swir16"] if "swir16" in bands else old(bands)

    if mode == "off":
        grids.register = _no_registration
    elif mode == "swir16":
        grids.registration_bands = swir16
    elif mode != "as-is":
        raise SystemExit(f"unknown co-registration mode {mode!r} (use {', '.join(MODES)})")
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(grids, k, v)


def default_method(kind: str = "optical") -> str:
    """The detector ``RunParams()`` (method None) runs."""
    table = getattr(pipeline, "WATCH_METHOD", None) or DEFAULT_METHOD
    return str(table[kind])


def parse_runs(spec: str) -> dict[str, list[str]]:
    """``"as-is=default,ratio off=default"`` -> {mode: [methods]}."""
    out: dict[str, list[str]] = {}
    for item in spec.split():
        mode, _, methods = item.partition("=")
        if mode not in MODES or not methods:
            raise ValueError(f"bad run spec {item!r}: MODE=METHOD[,METHOD...] with MODE in "
                             f"{', '.join(MODES)}")
        out[mode] = [m.strip() for m in methods.split(",") if m.strip()]
    if not out:
        raise ValueError("no runs given")
    return out


# --------------------------------------------------------------------------- scoring


@dataclass
class MethodResult:
    """Everything one method (in one co-registration mode) gives over the seeds."""

    method: str
    mode: str
    seconds: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # one per planted event
    quiet_alerts: list[dict[str, Any]] = field(default_factory=list)
    quiet_part_years: float = 0.0
    event_fa: int = 0  # unexplained alerts at event parts
    rest_alerts: int = 0
    all_fa: int = 0
    all_alerts: int = 0
    all_part_years: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    why: Counter = field(default_factory=Counter)  # non-usable reasons (shortened)
    usable: list[int] = field(default_factory=list)
    years: list[float] = field(default_factory=list)
    detector: set = field(default_factory=set)
    shifts: list[float] = field(default_factory=list)
    fa_seen: list[float] = field(default_factory=list)  # observed share, unexplained alerts
    unapplied: list[float] = field(default_factory=list)  # shifts measured, not applied
    quiet_pairs: Counter = field(default_factory=Counter)  # sensor pair -> untouched part-pairs
    #: alerts at untouched parts whose every finding came from a comparison spanning
    #: seasons, by (tier, confidence)
    season_only: Counter = field(default_factory=Counter)
    season_confirmed: int = 0  # of those, confirmed by the same-season comparison

    @property
    def label(self) -> str:
        return self.method if self.mode == "as-is" else f"{self.method}, {MODE_WORDS[self.mode]}"


def _first_lag(alerts: list[dict[str, Any]], part: str, day: str, use: list[str]
               ) -> int | None:
    """Usable scenes from the first one at or after ``day`` to the first finding at ``part``
    on or after it (any lag), None when no alert there ever shows it."""
    i0 = bisect.bisect_left(use, day)
    best = None
    for a in alerts:
        if a.part != part:
            continue
        for f in a.alert.findings:
            d = f["time"][:10]
            if d >= day and d in use:
                lag = use.index(d) - i0
                best = lag if best is None else min(best, lag)
    return best


def _pair(before: str | None, after: str | None) -> str:
    """The sensors of a compared pair from the scene ids, e.g. ``LT05>LE07``."""
    return f"{(before or '?')[:4]}>{(after or '?')[:4]}"


def _short(why: str) -> str:
    if "of the site observed" in why:
        return f"under min_usable ({RunParams().min_usable:.0%}) of the site observed"
    return re.sub(r"\s*\([^)]*\d[^)]*\)", "", re.sub(r"-?\d+\.\d+", "x", why))


def _spans(when: str, ref_times: list[str]) -> bool:
    """Whether a comparison of the scene of day ``when`` with references of these days
    spans seasons (more than :data:`SEASON_GAP_DAYS` apart; the pipeline's rule, taken
    here from the dates so that any version of the pipeline is scored alike)."""
    return any(abs((date.fromisoformat(when) - date.fromisoformat(t)).days) > SEASON_GAP_DAYS
               for t in ref_times)


def season_only(alert: Any, processed: Mapping[str, Any]) -> bool:
    """Whether every finding of the alert came from a comparison that spans seasons: the
    previous usable date (``changed_excess``) or the composite's middle member
    (``changed_excess_composite``) more than :data:`SEASON_GAP_DAYS` before the date."""
    by_day = {iso_day(r.acquired): r for r in processed.values() if r.usable}
    times = {k: iso_day(r.acquired) for k, r in processed.items()}
    for f in alert.alert.findings or []:
        day, m = f["time"][:10], str(f.get("measure") or "")
        row = by_day.get(day)
        if row is None:
            return False
        comp = list(row.chain.composite)
        if m == "changed_excess":
            refs = [times.get(row.chain.previous, day)]
        elif m == "changed_excess_composite" and len(comp) >= 2:
            refs = [times.get(comp[(len(comp) - 1) // 2], day)]
        else:
            return False
        if not _spans(day, refs):
            return False
    return bool(alert.alert.findings)


def part_window(series: Series, box: tuple[int, int, int, int], use: list[str], day: str
                ) -> list[str]:
    """The usable dates at or after ``day`` on which the part is seen (at least
    :data:`MIN_OBSERVED` of its box clear on that scene): the event's window "within one
    usable scene of the part" is the first two of them."""
    k_of = {sc.day.isoformat(): k for k, sc in enumerate(series.scenes)}
    i0 = bisect.bisect_left(use, day)
    return [d for d in use[i0:] if d in k_of
            and series.clear_share(k_of[d], box) >= MIN_OBSERVED]


def score_run(res: MethodResult, store: Store, site_id: str, params: RunParams,
              layout: Layout, report: Any, series: Series) -> dict[str, Any]:
    """Score one run into ``res``; returns what the run alerted (for comparisons)."""
    alerts = store.alerts(site_id)
    usable = usable_dates(store, site_id, params.hash)
    if len(usable) != 1:
        raise SystemExit(f"expected one grid, got {sorted(usable)}")
    use = sorted(t[:10] for ts in usable.values() for t in ts)
    years = (date.fromisoformat(use[-1]) - date.fromisoformat(use[0])).days / 365.25
    changes = [evaluate.TruthChange(e.id, e.day.isoformat(), (e.part,), e.kind)
               for e in layout.events]
    n_parts = len(layout.events) + len(layout.quiet) + 1  # + the rest of the site
    card = evaluate.score(alerts, changes, usable, part_years=n_parts * years)
    # Each part's measures against the previous usable date, by day.
    measures = {(part, o.time[:10]): o.measures
                for (part, _g), obs in pipeline.series(store, site_id, params.hash).items()
                for o in obs}
    seen = {k: m.get("observed_fraction", math.nan) for k, m in measures.items()}
    seen_comp = {(r.part, iso_day(r.acquired)): r.observed_fraction
                 for r in store.observations(site_id, params.hash, reference="composite")}
    found_at: dict[str, set[str]] = defaultdict(set)
    for a in alerts:
        for f in a.alert.findings or []:
            found_at[a.part].add(f["time"][:10])
    for e, hit in zip(layout.events, card.hits, strict=True):
        i0 = bisect.bisect_left(use, e.day.isoformat())
        win = use[i0:i0 + evaluate.MAX_LAG + 1]
        seen_days = part_window(series, e.box, use, e.day.isoformat())
        win_p = seen_days[:evaluate.MAX_LAG + 1]
        det_p = bool(found_at[e.part] & set(win_p))
        res.events.append({
            "detected_part": det_p, "part_seen_after": len(seen_days),
            "part_wait": (use.index(win_p[0]) - i0) if win_p else None,
            "miss_part": None if det_p else why_missed_part(
                [measures.get((e.part, d), {}) for d in win_p]),
            "window_part": [_window_row(d, measures.get((e.part, d), {})) for d in win_p],
            "seed": layout.seed, "id": e.id, "size": e.size, "kind": e.kind,
            "day": e.day.isoformat(), "detected": hit.alert is not None, "lag": hit.lag,
            "first_lag": _first_lag(alerts, e.part, e.day.isoformat(), use),
            "usable_after": len(use) - i0,
            "miss": None if hit.alert is not None else
            why_missed([measures.get((e.part, d), {}) for d in win])})
    fa_ids = {a.id for a in card.false_alarms}
    processed = store.processed(site_id, params.hash)
    for a in alerts:
        rec = a.alert
        first = min(rec.findings or [json_safe(rec.to_dict())], key=lambda f: f["time"])
        measure = str(first.get("measure") or "")
        frac = (seen_comp if measure.endswith("_composite") else seen).get(
            (a.part, first["time"][:10]), math.nan)
        if a.id in fa_ids:
            res.fa_seen.append(frac)
        if a.part in layout.quiet and season_only(a, processed):
            res.season_only[(rec.tier, rec.confidence)] += 1
            # confirmed: at some finding's date the part changed against the same season
            # of earlier years too (the pipeline's measure, when it has one)
            same = [float(measures.get((a.part, f["time"][:10]), {}).get(
                "changed_excess_season", math.nan)) for f in rec.findings]
            if any(v > 0 for v in same if math.isfinite(v)):
                res.season_confirmed += 1
        if a.part in layout.quiet:
            res.quiet_alerts.append({"seed": layout.seed, "part": a.part,
                                     "time": iso_day(a.time), "tier": a.tier,
                                     "kind": a.kind, "z": json_safe(rec.z),
                                     "value": json_safe(rec.value),
                                     "measure": measure, "first_value": first.get("value"),
                                     "observed": frac,
                                     "pair": _pair(rec.before_scene, rec.after_scene)})
        elif a.id in fa_ids and a.part.startswith("event_"):
            res.event_fa += 1
        elif a.part not in layout.boxes:
            res.rest_alerts += 1
    res.quiet_part_years += len(layout.quiet) * years
    res.all_fa += len(card.false_alarms)
    res.all_alerts += len(alerts)
    res.all_part_years += card.part_years
    res.seconds.append(report.seconds)
    res.usable.append(len(use))
    res.years.append(years)
    res.statuses.update(st for _, st, _ in report.processed)
    res.why.update(_short(why) for _, st, why in report.processed
                   if st not in ("ok", "first"))
    for row in store.processed(site_id, params.hash).values():
        res.detector.add(f"{row.method} {dict(row.method_params)}")
        reg = row.registration
        if reg and row.usable:
            mag = reg.shift.magnitude
            if reg.applied:
                res.shifts.append(mag)
            else:
                res.unapplied.append(mag)
        if row.status == "ok" and row.previous_id:
            res.quiet_pairs[_pair(row.previous_id, row.scene_id)] += len(layout.quiet)
    return {"usable": use, "alerts": sorted((a.part, a.alert.time, a.tier, a.kind)
                                            for a in alerts)}


MISS_WHY = ("no usable scene after the event",
            f"part under {MIN_OBSERVED:.0%} seen on every window date",
            "part seen, the detector flagged nothing there",
            "changed pixels flagged at the part, no alert")


def why_missed(window: list[Mapping[str, Any]]) -> tuple[str, float]:
    """Why an event was not detected, from its part's measures on the window's dates:
    (one of :data:`MISS_WHY`, the largest changed fraction seen there)."""
    if not window:
        return MISS_WHY[0], math.nan
    frac = [float(m.get("observed_fraction") or 0.0) for m in window]
    changed = [float(m["changed_fraction"]) for m in window
               if m.get("changed_fraction") is not None
               and math.isfinite(float(m["changed_fraction"]))]
    top = max(changed, default=math.nan)
    if max(frac) < MIN_OBSERVED:
        return MISS_WHY[1], top
    if not top > 0:
        return MISS_WHY[2], top
    return MISS_WHY[3], top


def _window_row(day: str, m: Mapping[str, Any]) -> str:
    """One window date of a missed event in words: the part's changed share against the
    previous date's last clear view, the composite and the same season, its 95th
    percentile score, and whether the pair spans seasons."""
    def f(k: str) -> str:
        v = m.get(k)
        return _num(float(v)) if v is not None else "–"

    span = "season-spanning" if float(m.get("season_span") or 0) > 0 else ""
    return (f"{day}: prev {f('changed_fraction')}, comp {f('changed_fraction_composite')}, "
            f"season {f('changed_fraction_season')}, p95 score {f('p95_score')} {span}").strip()


MISS_WHY_PART = ("part never seen clear after the event",
                 "part seen, the detector flagged nothing there",
                 "changed pixels flagged at the part, no alert")


def why_missed_part(window: list[Mapping[str, Any]]) -> str:
    """Why an event was not detected within one usable scene of its part, from the part's
    measures on those dates (against the previous date's last clear view and against the
    composite)."""
    if not window:
        return MISS_WHY_PART[0]
    flagged = [float(m[k]) for m in window
               for k in ("changed_fraction", "changed_fraction_composite")
               if m.get(k) is not None and math.isfinite(float(m[k]))]
    if not max(flagged, default=0.0) > 0:
        return MISS_WHY_PART[1]
    return MISS_WHY_PART[2]


def registration_stats(store: Store, site_id: str) -> list[dict[str, Any]]:
    return [{"scene": r.scene_id, "status": r.status, "reliability": r.reliability,
             "shift": r.shift.magnitude} for r in store.registrations(site_id)]


# --------------------------------------------------------------------------- report


def _by_size(events: list[dict[str, Any]], key: str) -> list[str]:
    """The share of events whose ``key`` is true, one cell per planted size (:data:`SIZES`)."""
    out = []
    for size in SIZES:
        ev = [e for e in events if e["size"] == size]
        out.append(_pct(sum(e[key] for e in ev), len(ev)))
    return out


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.0f} % ({n}/{d})" if d else "–"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else \
        format(v, fmt)


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def summary(res: MethodResult) -> dict[str, Any]:
    ev = res.events
    big = [e for e in ev if e["size"] >= BIG]
    lags = [e["first_lag"] for e in ev if e["first_lag"] is not None]
    big_lags = [e["first_lag"] for e in big if e["first_lag"] is not None]
    det_big = sum(e["detected"] for e in big)
    fa_q = len(res.quiet_alerts) / res.quiet_part_years if res.quiet_part_years else math.nan
    seen_big = [e for e in big if e["usable_after"] > 0]
    det_big_p = sum(e["detected_part"] for e in big)
    return {
        "big_det_part": det_big_p,
        "big_rate_part": det_big_p / len(big) if big else math.nan,
        "all_det_part": sum(e["detected_part"] for e in ev),
        "season_only": sum(res.season_only.values()),
        "season_confirmed": res.season_confirmed,
        "season_only_not_low": sum(n for (_t, c), n in res.season_only.items()
                                   if c not in ("low", "none")),
        "quiet_alerts": len(res.quiet_alerts), "quiet_part_years": res.quiet_part_years,
        "big_rate": det_big / len(big) if big else math.nan, "big_n": len(big),
        "big_det": det_big, "all_det": sum(e["detected"] for e in ev), "all_n": len(ev),
        "seen_big_n": len(seen_big), "seen_big_det": sum(e["detected"] for e in seen_big),
        "lags": lags, "big_lags": big_lags, "fa_quiet": fa_q,
        "fa_all": res.all_fa / res.all_part_years if res.all_part_years else math.nan,
    }


def _q(v: list[float], p: float) -> float:
    return float(np.percentile(v, p)) if v else math.nan


def render(results: list[MethodResult], layouts: list[Layout], series: Series, args: Any,
           cmd: str, wall: float, extras: dict[str, Any]) -> str:
    lv = series.clear_levels()
    n_sc = len(series.scenes)
    base = RunParams()
    lines = [
        "# Watch pipeline on a real Landsat series with planted events (Colorado)",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
        f"rasterio {rasterio.__version__}",
        f"- code: {extras['code']}",
        f"- wall time: {wall:.0f} s for {len(layouts)} seeds x {len(results)} runs",
        "",
        "## What was done",
        "",
        f"The real series `{SERIES}` ({n_sc} Landsat 5/7 scenes, "
        f"{series.scenes[0].day} to {series.scenes[-1].day}, {series.shape[0]} x "
        f"{series.shape[1]} px at 30 m, red / nir / swir16 with Fmask) was copied once per "
        f"seed (seeds {', '.join(str(lay.seed) for lay in layouts)}) with {args.events} "
        "changes planted in each: sizes "
        f"{', '.join(str(s) for s in SIZES)} px each once per seed and the rest drawn from "
        "them; compact 4-connected blobs at random places at least "
        f"{EDGE} px from the edge; the first scene showing each drawn uniformly from scene "
        f"indices [{FIRST_SCENE}, {LAST_SCENE}) and its day between the previous scene and "
        "that one; half construction-like, half clearing-like; persistent (written into that "
        "scene and every later one where Fmask says clear or water and every band has data, "
        "so clouds, shadows, snow and gaps stay on top).",
        "",
        "Planted reflectance (each event's level drawn uniformly per band, then per date a "
        f"gain jitter of sd {GAIN_SD:.0%} and per pixel noise of sd {NOISE_SD}) against the "
        "ground's clear-sky reflectance in the summer scenes (Jun-Sep; 5th percentile / "
        "median / 95th percentile of the pixels):",
        "",
        "| | red | nir | swir16 |",
        "|---|---|---|---|",
        "| ground, summer | " + " | ".join(f"{lv[b][0]:.3f} / {lv[b][1]:.3f} / {lv[b][2]:.3f}"
                                           for b in BAND_FILES) + " |",
    ]
    for k, rng_ in KINDS.items():
        lines.append(f"| {k} | " + " | ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in rng_) + " |")
    lines += [
        "",
        f"Parts per seed: one per event (its bounding box grown by 1 px, at least {MIN_PART} "
        f"x {MIN_PART} px) and {args.events} untouched {QUIET_SIZE} x {QUIET_SIZE} px parts "
        "on ground with no planted change, 1 px apart; the site is the image footprint (the "
        "pipeline's part and site masks are checked to fall on exactly the planned pixels). "
        "Each copy is catalogued with `ingest` and run with `run_site(store, site, "
        f"RunParams(method=M))` at the pipeline's defaults (min_usable {base.min_usable}, "
        f"composite {base.composite}, levels {base.levels}); alerts are cleared between "
        "methods. *default* is `RunParams()` (method None).",
        "",
        "Co-registration modes: **as-is** is the pipeline untouched (the rows without a "
        "suffix). The others are diagnostics, not sitewatch settings, that show what "
        "co-registration does to the figures: **co-reg off** replaces "
        "`sitewatch.watch.grids.register` for the run by \"no shift, ok\" (the scenes already "
        "share the terrain-corrected Landsat grid), so every scene seen well enough is "
        "compared and the detectors and alerting are measured on their own; **co-reg on "
        "swir16** (when run) replaces `sitewatch.watch.grids.registration_bands` so that scenes "
        "are matched on swir16 instead of red, every rule of the pipeline unchanged. Each "
        "mode has its own catalogue (the parameters hash does not see the patch).",
        "",
        f"Scoring: detected = an alert at the event's part with a finding on one of the first "
        f"{evaluate.MAX_LAG + 1} usable scenes at or after the event's day "
        "(`sitewatch.sim.evaluate.score`; lag 0 = the first usable scene after the change). "
        "*Lag (any)* = usable scenes from that first one to the first finding at the part on "
        "or after the day, however late. False alarms per part-year on the untouched parts = "
        "every alert there / (untouched parts x the years spanned by the usable scenes of "
        "the run); *all parts* = the alerts `evaluate.score` finds unexplained at every part, "
        "the rest of the site included, over (all parts + 1) x years.",
        "",
        "## Headline",
        "",
        f"Targets (issue 4): >= {TARGET_DETECT:.0%} of planted events of >= {BIG} px "
        f"detected within one usable scene; <= {TARGET_FA:g} false alarm per part-year on "
        "untouched parts.",
        "",
        "| method (detector as run) | co-registration | detected, >= 4 px | target | "
        "FA / part-year, untouched | target | FA / part-year, all parts | detected, all "
        "sizes | usable scenes per run | s per run (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sums = {r.label: summary(r) for r in results}
    for r in results:
        s = sums[r.label]
        det = "; ".join(sorted(r.detector))
        use = (f"{min(r.usable)}" if min(r.usable) == max(r.usable)
               else f"{min(r.usable)}-{max(r.usable)}")
        lines.append(
            f"| {r.method} (`{det}`) | {r.mode} | {_pct(s['big_det'], s['big_n'])} | "
            f"{_met(s['big_rate'] >= TARGET_DETECT)} | {_num(s['fa_quiet'])} "
            f"({len(r.quiet_alerts)} in {r.quiet_part_years:.0f}) | "
            f"{_met(s['fa_quiet'] <= TARGET_FA)} | {_num(s['fa_all'])} | "
            f"{_pct(s['all_det'], s['all_n'])} | {use} | {statistics.mean(r.seconds):.1f} |")
    if extras.get("same"):
        lines += ["", *extras["same"]]
    lines += [
        "",
        "### Within one usable scene of the part (issue 20)",
        "",
        "The site-scene scoring above counts the first two usable scenes of the *site* after "
        "the event, even when the part is under cloud on both. Scored *within one usable "
        "scene of the part*: an event is detected when an alert at its part has a finding "
        "on the first usable scene at or after the event's day on which the part is seen "
        f"(at least {MIN_OBSERVED:.0%} of its box clear in the scene's Fmask, with data in "
        "every band), or on the next such scene. *Alerts on cross-season pairs only*: alerts "
        "at untouched parts whose every finding came from a comparison spanning seasons (the "
        "previous usable date, or the composite's middle member, more than "
        f"{SEASON_GAP_DAYS} days before the date); *not low* = of confidence medium or high; "
        "*season alone* = of those, the ones the same-season comparison (against the same "
        "months of earlier years) did not confirm (before issue 20 there was none: all). "
        "Targets (issue 20): >= 90 % within one usable scene of the part; <= 1 false alarm "
        "per untouched part-year; no season-only alert that is not low confidence.",
        "",
        "| run | code | detected >= 4 px, within one scene of the part | target | detected "
        ">= 4 px, within one site scene | detected, all sizes, of the part | FA / "
        "part-year, untouched | alerts on cross-season pairs only, untouched (not low) | "
        "of them season alone (no same-season confirmation) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, other in extras.get("compare", []):
        for lab, o in other["summaries"].items():
            lines.append(
                f"| {lab} ({label}) | {other['code']} | "
                f"{_pct(o['big_det_part'], o['big_n'])} | "
                f"{_met(o['big_rate_part'] >= TARGET_DETECT)} | "
                f"{_pct(o['big_det'], o['big_n'])} | {_pct(o['all_det_part'], o['all_n'])} | "
                f"{_num(o['fa_quiet'])} | {o['season_only']} ({o['season_only_not_low']}) | "
                f"{o['season_only'] - o.get('season_confirmed', 0)} |")
    for r in results:
        s = sums[r.label]
        lines.append(
            f"| {r.label} (this run) | {extras['code']} | "
            f"{_pct(s['big_det_part'], s['big_n'])} | "
            f"{_met(s['big_rate_part'] >= TARGET_DETECT)} | "
            f"{_pct(s['big_det'], s['big_n'])} | {_pct(s['all_det_part'], s['all_n'])} | "
            f"{_num(s['fa_quiet'])} | {s['season_only']} ({s['season_only_not_low']}) | "
            f"{s['season_only'] - s['season_confirmed']} |")
    lines += ["", "Season-only alerts at untouched parts by tier and confidence:", ""]
    for r in results:
        cells = ", ".join(f"{t}/{c}: {n}" for (t, c), n in sorted(r.season_only.items()))
        lines.append(f"- {r.label}: {cells or 'none'}; of them confirmed by the same-season "
                     f"comparison (the part changed against the same season of earlier "
                     f"years too, so not season alone): {r.season_confirmed}")
    lines += ["", "Within one usable scene of the part, by size:", "",
              "| method | " + " | ".join(f"{s} px" for s in SIZES) + " | >= 4 px |",
              "|---|" + "---|" * (len(SIZES) + 1)]
    for r in results:
        cells = _by_size(r.events, "detected_part")
        s = sums[r.label]
        lines.append(f"| {r.label} | " + " | ".join(cells) +
                     f" | {_pct(s['big_det_part'], s['big_n'])} |")
    lines += ["", "Why events of >= 4 px were missed within one usable scene of the part (its "
              "measures on those dates: against the previous date's last clear view and "
              "against the composite), by size:", "",
              "| method | size | missed | " + " | ".join(MISS_WHY_PART) + " |",
              "|---|---|---|" + "---|" * len(MISS_WHY_PART)]
    for r in results:
        for size in [*[z for z in SIZES if z >= BIG], "all >= 4"]:
            missed = [e for e in r.events if not e["detected_part"] and e["size"] >= BIG
                      and (size == "all >= 4" or e["size"] == size)]
            lines.append(f"| {r.label} | {size} | {len(missed)} | " + " | ".join(
                str(sum(e["miss_part"] == w for e in missed)) for w in MISS_WHY_PART) + " |")
    lines += ["", "The missed events of >= 4 px (within one usable scene of the part), with "
              "the part's measures on those dates (changed share against the previous date's "
              "last clear view, the composite and the same season; the detector's 95th "
              "percentile score at the part, in the pair's noise units):", "",
              "| method | seed | event | size | kind | day | cause | window dates |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for e in r.events:
            if e["size"] >= BIG and not e["detected_part"]:
                lines.append(f"| {r.label} | {e['seed']} | {e['id']} | {e['size']} | "
                             f"{e['kind']} | {e['day']} | {e['miss_part']} | "
                             + "; ".join(e["window_part"]) + " |")
    waits = [e["part_wait"] for r in results for e in r.events if e["part_wait"]]
    lines += ["", "Events whose part was under cloud on the first usable scene(s) after the "
              f"day: {len(waits)} (the part's first clear usable scene came "
              f"{_num(_q(waits, 50), '.0f')} usable scenes later, median; max "
              f"{max(waits, default=0)})."]
    lines += ["", "## Detection by size (within one usable scene)", "",
              "| method | " + " | ".join(f"{s} px" for s in SIZES) + " | >= 4 px | >= 4 px "
              "with a usable scene after the event |",
              "|---|" + "---|" * (len(SIZES) + 2)]
    for r in results:
        cells = _by_size(r.events, "detected")
        s = sums[r.label]
        lines.append(f"| {r.label} | " + " | ".join(cells) +
                     f" | {_pct(s['big_det'], s['big_n'])} | "
                     f"{_pct(s['seen_big_det'], s['seen_big_n'])} |")
    lines += ["", "Why events of >= 4 px were missed (their part's measures on the window's "
              "usable dates; for the last column, the median of the largest changed fraction "
              "at the part):",
              "", "| method | missed | " + " | ".join(MISS_WHY) + " |",
              "|---|---|" + "---|" * len(MISS_WHY)]
    for r in results:
        missed = [e for e in r.events if e["size"] >= BIG and not e["detected"]]
        cells = []
        for w in MISS_WHY:
            got = [e for e in missed if e["miss"][0] == w]
            cell = str(len(got))
            if w == MISS_WHY[3] and got:
                cell += f" (median {statistics.median(e['miss'][1] for e in got):.2f})"
            cells.append(cell)
        lines.append(f"| {r.label} | {len(missed)} | " + " | ".join(cells) + " |")
    lines += ["", "By kind (>= 4 px):", "", "| method | construction | clearing |",
              "|---|---|---|"]
    for r in results:
        cells = []
        for kind in KINDS:
            ev = [e for e in r.events if e["kind"] == kind and e["size"] >= BIG]
            cells.append(_pct(sum(e["detected"] for e in ev), len(ev)))
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    lines += ["", "## Detection lag (usable scenes)", "",
              "Lag 0 = the first usable scene at or after the event's day. *within window*: "
              "the lags of the detections `evaluate.score` counts (0 or 1); *any*: to the "
              "first finding at the part on or after the day however late, and how many "
              "events ever got one.", "",
              "| method | lag 0 | lag 1 | mean lag (within window) | ever found | mean / median "
              "lag (any) | max lag (any) | mean / median lag (any), >= 4 px |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = sums[r.label]
        win = [e["lag"] for e in r.events if e["lag"] is not None]
        la, bl = s["lags"], s["big_lags"]
        lines.append(
            f"| {r.label} | {win.count(0)} | {win.count(1)} | "
            f"{_num(statistics.mean(win) if win else None)} | {_pct(len(la), len(r.events))} | "
            f"{_num(statistics.mean(la) if la else None)} / "
            f"{_num(statistics.median(la) if la else None, 'g')} | {max(la) if la else '–'} | "
            f"{_num(statistics.mean(bl) if bl else None)} / "
            f"{_num(statistics.median(bl) if bl else None, 'g')} |")
    lines += ["", "## False alarms", "",
              "| method | alerts at untouched parts | part-years (untouched) | per part-year | "
              "unexplained alerts at event parts | alerts on the rest of the site | "
              "unexplained, all parts | all alerts |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = sums[r.label]
        lines.append(f"| {r.label} | {len(r.quiet_alerts)} | {r.quiet_part_years:.1f} | "
                     f"{_num(s['fa_quiet'])} | {r.event_fa} | {r.rest_alerts} | {r.all_fa} | "
                     f"{r.all_alerts} |")
    lines += ["", f"Where the false alarms come from (each alert's first finding): *part < "
              f"{MIN_OBSERVED:.0%} seen* = the comparison it came from (against the previous "
              "usable date, or the composite for `*_composite` measures) saw less than "
              "`sitewatch.watch.zonal.MIN_OBSERVED` of the part, so its changed share is of a few "
              "pixels; *<= 2 px* = its value (a changed share, or a changed share in excess of "
              f"the rest of the site's) is at most 2 pixels of a {QUIET_SIZE} x {QUIET_SIZE} "
              f"part (<= {2 / QUIET_SIZE ** 2:.2f}); *measure*: of the first finding.", "",
              "| method | untouched: part < 50 % seen | untouched: <= 2 px changed | "
              "untouched: measure | unexplained, all parts: part < 50 % seen |",
              "|---|---|---|---|---|"]
    for r in results:
        qa = r.quiet_alerts
        low = sum(1 for a in qa if a["observed"] < MIN_OBSERVED)
        small = sum(1 for a in qa if a["measure"].startswith("changed")
                    and a["first_value"] is not None
                    and a["first_value"] <= 2 / QUIET_SIZE ** 2 + 1e-9)
        meas = Counter(a["measure"] for a in qa)
        lines.append(f"| {r.label} | {_pct(low, len(qa))} | {_pct(small, len(qa))} | "
                     + (", ".join(f"{k} {v}" for k, v in meas.items()) or "–") + " | "
                     + _pct(sum(1 for f in r.fa_seen if f < MIN_OBSERVED), len(r.fa_seen))
                     + " |")
    lines += ["", "Untouched-part alerts by date (the dates with most; one date alerting in "
              "many seeds, i.e. at many random places, points at the scene rather than the "
              "ground). Tiers: info / watch / warning.", ""]
    for r in results:
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in r.quiet_alerts:
            by_day[a["time"]].append(a)
        if not by_day:
            lines.append(f"- {r.label}: none")
            continue
        top = sorted(by_day.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:8]
        tiers = Counter(a["tier"] for a in r.quiet_alerts)
        share = sum(len(v) for _, v in top) / len(r.quiet_alerts)
        lines.append(
            f"- {r.label}: {len(by_day)} dates; tiers " +
            " / ".join(str(tiers[t]) for t in ("info", "watch", "warning")) +
            "; top dates (alerts, seeds): " + ", ".join(
                f"{d} ({len(v)}, {len({a['seed'] for a in v})})" for d, v in top) +
            f" = {share:.0%} of them")
    pairs = sorted({k for r in results for k in r.quiet_pairs})
    if pairs:
        lines += ["", "Untouched-part alerts by the sensors of the compared pair (Landsat 5 "
                  "TM = LT05, Landsat 7 ETM+ SLC-off = LE07): alerts / part-pairs compared "
                  "= per 100.", "", "| method | " + " | ".join(pairs) + " |",
                  "|---|" + "---|" * len(pairs)]
        for r in results:
            got = Counter(a["pair"] for a in r.quiet_alerts)
            lines.append(f"| {r.label} | " + " | ".join(
                f"{got[k]} / {r.quiet_pairs[k]} = {100 * got[k] / r.quiet_pairs[k]:.1f}"
                if r.quiet_pairs[k] else f"{got[k]} / 0" for k in pairs) + " |")
    tops = sorted({d for r in results for d, _ in Counter(
        a["time"] for a in r.quiet_alerts).most_common(3)})
    if tops:
        lines += ["", "Fmask make-up of those dates' scenes (top 3 dates per method; share of "
                  "the image):", "",
                  "| date | scene | clear | water | shadow | snow | cloud | fill |",
                  "|---|---|---|---|---|---|---|---|"]
        for d in tops:
            k = next((i for i, sc in enumerate(series.scenes) if sc.day.isoformat() == d), None)
            if k is None:
                continue
            fm = series.fmask[k]
            lines.append(f"| {d} | {series.scenes[k].name} | " + " | ".join(
                f"{100 * float(np.mean(fm == v)):.0f} %" for v in (0, 1, 2, 3, 4, 255)) + " |")
    lines += ["", "## Scenes and co-registration", "",
              "Per run (the same for every method of a mode; planting changes little):", ""]
    for r in results:
        runs = len(r.seconds)
        st = ", ".join(f"{k} {v / runs:.1f}" for k, v in sorted(r.statuses.items()))
        why = "; ".join(f"{k} ({v / runs:.1f})" for k, v in r.why.most_common())
        sh = (f"; shifts applied: {len(r.shifts) / runs:.1f} scenes, median "
              f"{statistics.median(r.shifts):.2f} px, max {max(r.shifts):.2f} px"
              if r.shifts else "; no shift applied")
        if r.unapplied and max(r.unapplied) > 0:
            sh += (f"; shifts measured but not applied: {len(r.unapplied) / runs:.1f} scenes "
                   f"(median {statistics.median(r.unapplied):.2f} px, max "
                   f"{max(r.unapplied):.2f} px)")
        lines.append(f"- {r.label}: scene statuses {st}; usable scenes "
                     f"{min(r.usable)}-{max(r.usable)} spanning {statistics.mean(r.years):.2f} "
                     f"years; not usable: {why or 'none'}{sh}.")
    for mode, regs in extras["registrations"].items():
        if not regs or mode == "off":
            continue
        st = Counter(g["status"] for g in regs)
        rel_rej = [g["reliability"] for g in regs if g["status"] == "rejected"]
        rel_ok = [g["reliability"] for g in regs if g["status"] != "rejected"]
        big_shift = sum(g["shift"] > 2 for g in regs)
        rej = (f"; reliability of the rejected: median {_num(_q(rel_rej, 50))} (5-95 %: "
               f"{_num(_q(rel_rej, 5))}-{_num(_q(rel_rej, 95))})" if rel_rej else "")
        lines.append(
            f"- matches, {MODE_WORDS[mode]} (all seeds; the scenes seen well enough to be "
            "matched; as recorded in the catalogue): "
            + ", ".join(f"{k} {v}" for k, v in sorted(st.items())) + rej
            + f"; reliability of the others: median {_num(_q(rel_ok, 50))}; recorded shifts "
            f"over 2 px: {big_shift}")
    for mode, ref in extras["reference"].items():
        lines.append(f"- co-registration reference, {MODE_WORDS[mode]}, per seed: "
                     + ", ".join(f"{k} ({v})" for k, v in Counter(ref).most_common()))
    lines += ["", "## Planted events", "",
              "| seed | events (id size kind day) |", "|---|---|"]
    for lay in layouts:
        lines.append(f"| {lay.seed} | " + "; ".join(
            f"{e.id} {e.size}px {e.kind} {e.day}" for e in lay.events) + " |")
    lines += ["", f"Planted pixel-dates written per seed: "
              f"{', '.join(str(v) for v in extras['planted'])}.", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("SITEWATCH_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", default=default_data,
                    help=f"folder holding {SERIES}/ (default: $SITEWATCH_DATA or "
                         "../shared/data)")
    ap.add_argument("--seeds", type=int, default=20, help="number of seeds")
    ap.add_argument("--first-seed", type=int, default=10,
                    help="the first seed (seeds 0-9 are kept for choosing parameters)")
    ap.add_argument("--json", default=None, help="also write the summaries here (JSON)")
    ap.add_argument("--compare", action="append", default=[],
                    help="LABEL=FILE: a --json of another run (e.g. an earlier commit on "
                         "the same seeds) shown beside this one in the headline")
    ap.add_argument("--library-note", default="",
                    help="said of the library measured (when it is not this checkout's)")
    ap.add_argument("--events", type=int, default=8, help="planted events per seed")
    ap.add_argument("--runs", default=DEFAULT_RUNS,
                    help="space-separated MODE=METHOD[,METHOD...]: co-registration mode "
                         "(as-is: the pipeline untouched; off, swir16: diagnostics, see "
                         "MODES) and detectors for RunParams(method=...), 'default' = "
                         "RunParams() (HACD); default: '%(default)s'")
    ap.add_argument("--check-default", action=argparse.BooleanOptionalAction, default=True,
                    help="on the first seed, also run the method the default resolves to, "
                         "by name, and check it alerts "
                         "exactly as the default")
    ap.add_argument("--out", default=str(REPO / "docs" / "bench_watch_colorado.md"))
    ap.add_argument("--workdir", default=None,
                    help="where the temporary copies go (a new folder inside it, removed)")
    args = ap.parse_args(argv)
    if args.events < 2 or args.seeds < 1:
        ap.error("need --events >= 2 and --seeds >= 1")
    try:
        plan = parse_runs(args.runs)
    except ValueError as exc:
        ap.error(str(exc))
    # RunParams() resolves to this detector; where 'default' runs, a run of the same
    # detector by name would repeat it (the first seed checks that it does).
    resolved = default_method()
    for ms in plan.values():
        if "default" in ms and resolved in ms:
            ms.remove(resolved)

    t_start = time.perf_counter()
    code0, print0 = code_state(), src_fingerprint()
    root = Path(args.data) / SERIES
    if not root.is_dir():
        print(f"no {SERIES} under {args.data}; give --data or set SITEWATCH_DATA",
              file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    series = Series.load(root)
    log(f"read {len(series.scenes)} scenes {series.shape}")
    results = {(mo, m): MethodResult(m, mo) for mo, ms in plan.items() for m in ms}
    layouts: list[Layout] = []
    extras: dict[str, Any] = {"planted": [], "registrations": {mo: [] for mo in plan},
                              "reference": {},
                              "same": []}
    tmp = Path(tempfile.mkdtemp(prefix="sw-bench-colorado-", dir=args.workdir))
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            layout = make_layout(seed, args.events, series)
            layouts.append(layout)
            work = tmp / f"seed{seed}"
            copy = work / SERIES
            extras["planted"].append(write_copy(series, layout, copy))
            site_id = f"colorado-planted-{seed}"
            site = site_from_geojson(site_geojson(series, layout, site_id), site_id)
            for mode, methods in plan.items():
                with Store.open_path(work / f"{mode}.db") as store, coregistration(mode):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ing = ingest(store, [copy], site_id, site=site)
                    if ing.count("added") != len(series.scenes):
                        raise SystemExit(f"seed {seed}: ingest added {ing.count('added')} "
                                         f"of {len(series.scenes)} scenes")
                    check_masks(store, site_id, series, layout)
                    runs = list(methods)
                    if (args.check_default and seed == args.first_seed and mode == "as-is"
                            and "default" in methods):
                        runs.append(f"{resolved}?")
                    got: dict[str, dict[str, Any]] = {}
                    for m in runs:
                        name = m.rstrip("?")
                        params = RunParams(method=None if name == "default" else name)
                        store.delete_alerts(site_id)
                        rep = run_site(store, site_id, params)
                        if m.endswith("?"):  # the identity check, not scored
                            got[m] = score_run(MethodResult(name, mode), store, site_id,
                                               params, layout, rep, series)
                            same = got[m] == got["default"]
                            extras["same"].append(
                                f"Check ({mode}, seed {seed}): "
                                f"`RunParams(method={resolved!r})` "
                                f"gives {'the same' if same else 'DIFFERENT'} usable scenes "
                                f"and alerts as `RunParams()` ({len(got[m]['alerts'])} vs "
                                f"{len(got['default']['alerts'])} alerts).")
                            log(extras["same"][-1])
                            continue
                        r = results[(mode, m)]
                        got[m] = score_run(r, store, site_id, params, layout, rep, series)
                        if m == runs[0]:
                            extras["registrations"][mode] += registration_stats(store, site_id)
                            extras["reference"].setdefault(mode, []).append("; ".join(
                                f"{k}: {v}" for k, v in rep.grids.items()))
                        ev = [e for e in r.events if e["seed"] == seed]
                        log(f"seed {seed} {r.label}: {sum(e['detected'] for e in ev)}/"
                            f"{len(ev)} detected ({sum(e['detected_part'] for e in ev)} "
                            f"within one scene of the part), {len(got[m]['usable'])} usable "
                            "scenes, "
                            f"{sum(a['seed'] == seed for a in r.quiet_alerts)} alerts at "
                            f"untouched parts, {rep.seconds:.1f} s")
            shutil.rmtree(work)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t_start
    extras["code"] = f"{code0} (src/sitewatch fingerprint {print0})"
    code1, print1 = code_state(), src_fingerprint()
    if print1 != print0:
        extras["code"] += (f"; **src/ changed during the run** (now {code1}, fingerprint "
                           f"{print1}): the modules loaded at the start were measured")
        log("src/ changed during the run")
    elif code1 != code0:
        extras["code"] += f"; the same src/ is now {code1}"
    cmd = "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(__file__, Path.cwd()) if Path(__file__).is_relative_to(Path.cwd())
        else __file__, *(sys.argv[1:] if argv is None else argv)])
    if args.library_note:
        extras["code"] += f"; {args.library_note}"
    compare = []
    for spec in args.compare:
        label, _, path = spec.partition("=")
        compare.append((label, json.loads(Path(path).read_text())))
    extras["compare"] = compare
    text = render(list(results.values()), layouts, series, args, cmd, wall, extras)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "code": extras["code"], "seeds": [lay.seed for lay in layouts],
            "summaries": {r.label: {k: v for k, v in summary(r).items()
                                    if k not in ("lags", "big_lags")}
                          for r in results.values()}}, indent=1, default=str))
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out}")
    return 0


def src_fingerprint() -> str:
    """sha256 (12 hex) of every .py file under src/sitewatch (names and contents): which
    working-tree state of the library was measured, committed or not."""
    h = hashlib.sha256()
    src = REPO / "src" / "sitewatch"
    for f in sorted(src.rglob("*.py")):
        h.update(str(f.relative_to(src)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def check_masks(store: Store, site_id: str, series: Series, layout: Layout) -> None:
    """The pipeline's site and part masks hold exactly the planned pixels (the lon/lat round
    trip must not move a part by a pixel)."""
    site = store.get_site(site_id)
    if site is None:
        raise SystemExit(f"{site_id}: not catalogued")
    grid = grid_for_scenes(site, [s for s in store.scenes(site_id) if s.georeferenced])
    col = (series.transform.c - grid.transform.c) / grid.transform.a
    row = (series.transform.f - grid.transform.f) / grid.transform.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        raise SystemExit(f"{site_id}: the site grid is not in phase with the scenes")
    r, c = round(row), round(col)
    h, w = series.shape
    want = np.zeros(grid.shape, bool)
    want[r:r + h, c:c + w] = True
    if not np.array_equal(grid.site_mask(site), want):
        raise SystemExit(f"{site_id}: the site mask is not the image footprint")
    masks = grid.part_masks(site)
    for name, (r0, r1, c0, c1) in layout.boxes.items():
        want = np.zeros(grid.shape, bool)
        want[r + r0:r + r1 + 1, c + c0:c + c1 + 1] = True
        if name not in masks or not np.array_equal(masks[name], want):
            raise SystemExit(f"{site_id}: part {name} is not on its planned pixels")


if __name__ == "__main__":
    raise SystemExit(main())
