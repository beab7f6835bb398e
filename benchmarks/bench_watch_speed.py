#!/usr/bin/env python
"""Speed of ``sitewatch run`` on a big synthetic site: one new scene on top of a long
history, and the whole series from scratch.

Usage (from the repository root)::

    python benchmarks/bench_watch_speed.py [--scenes 100] [--size 2000] [--parts 20]
        [--methods ratio,hacd] [--workdir DIR] [--keep] [--jobs 2]
        [--out docs/bench_watch_speed.md]

A SIMULATED site is written to a temporary folder (deleted at the end unless ``--keep``):
``--scenes`` + 1 GeoTIFF scenes of ``--size`` x ``--size`` pixels at 10 m in the local UTM
zone (EPSG:32651 near Sohae, lon 124.7 lat 39.66), one every 5 days, written like
:mod:`sitewatch.sim.simulate` writes its 10 m scenes (file names ``SIM10_YYYYMMDDTHHMMSS.tif``,
tags ``ACQUISITION_TIME``/``SENSOR=sim-10m``/``SIMULATED=true``, uint16 reflectance x 10000
in bands blue, green, red, nir with scale 1e-4 and nodata 65535, an Fmask band 5, deflate,
256 x 256 tiles).  The ground mixes bare soil and vegetation whose greenness follows the
seasons, with a fine texture, roads and the site's parts in concrete, asphalt, gravel or
roofs; each scene has its own band gains and offsets, sensor noise, a sub-pixel
misregistration, and about one in two has clouds with shadows (marked in the Fmask band),
a few of them too cloudy to use; one has a swath edge.  Planted changes (construction,
razing, vehicles, a burn scar, a new roof) appear at set dates, the last one in the extra
scene.

The site boundary is a square that, with the site grid's 200 m margin, makes the grid
exactly ``--size`` x ``--size`` pixels; it has ``--parts`` rectangular parts of various
sizes.  Then, each step in its own fresh process (so its peak RSS is its own):

1. ``ingest`` the first ``--scenes`` scenes into ``Store.open_path(tmp/sw.db)``;
2. ``run_site`` from scratch, once per method of ``--methods`` (the first is timed per
   stage);
3. ``ingest`` the extra scene, then the incremental ``run_site`` with each method (it
   processes only that scene, then scores the series' new date), and the same run again
   under cProfile on a copy of the database (and of the image cache beside it) taken
   before it;
4. a no-op re-run (nothing new).

Per-scene seconds come from the ``progress`` callback; the split into stages comes from
timing wrappers put around the functions :mod:`sitewatch.watch.grids` calls (``load_scene``,
``register``, ``detect_arrays``, ``part_changes``, ``_composite``, the store writes and
``score_alerts``): cheap, no profiler.  Results go to ``--out`` as markdown.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import cProfile
import io
import json
import math
import multiprocessing as mp
import platform
import pstats
import re
import resource
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import code_state

from sitewatch.imagery.sensors import WATCH_METHOD as _WATCH_METHODS

#: The optical method `sitewatch run` uses by default (the synthetic site is optical).
WATCH_METHOD = _WATCH_METHODS["optical"]

REPO = Path(__file__).resolve().parents[1]
SITE_ID = "speed-sim"
LON, LAT = 124.7, 39.66
RES = 10.0
MARGIN_M = 200.0  # sitewatch.imagery.grid.DEFAULT_MARGIN_M, checked below
START = datetime(2024, 1, 3, 2, 22, 0, tzinfo=UTC)
INTERVAL_DAYS = 5
NODATA = 65535
BANDS = ("blue", "green", "red", "nir")
WAVELENGTHS = (0.490, 0.560, 0.665, 0.842)
# Reflectance spectra (blue, green, red, nir), as in sitewatch.sim.simulate.
SPECTRA = {
    "soil": (0.085, 0.125, 0.165, 0.225),
    "veg_dormant": (0.050, 0.070, 0.090, 0.190),
    "veg_peak": (0.030, 0.075, 0.040, 0.400),
    "concrete": (0.260, 0.290, 0.310, 0.330),
    "asphalt": (0.100, 0.110, 0.120, 0.140),
    "gravel": (0.170, 0.200, 0.230, 0.270),
    "roof_gray": (0.300, 0.310, 0.320, 0.340),
    "roof_blue": (0.220, 0.180, 0.120, 0.200),
    "fresh_soil": (0.130, 0.170, 0.220, 0.260),
    "rubble": (0.160, 0.180, 0.210, 0.250),
    "scorched": (0.030, 0.030, 0.035, 0.040),
    "vehicle_bright": (0.400, 0.420, 0.420, 0.430),
}
PART_MATERIALS = ("concrete", "asphalt", "gravel", "roof_gray", "roof_blue")
PART_KINDS = ("launch_pad", "assembly_building", "fuel_storage", "support_area",
              "engine_test_stand", "rail_terminal", "command_center", "observation_building")


# --------------------------------------------------------------------------- the site


def site_layout(size: int, n_parts: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The site GeoJSON and the pixel layout (grid transform, part rectangles, events)."""
    import shapely
    from shapely.geometry import box, mapping

    from sitewatch.imagery.geo import local_utm_crs, to_crs

    utm = local_utm_crs(LON, LAT)
    c = to_crs(shapely.Point(LON, LAT), "EPSG:4326", utm)
    cx, cy = round(c.x / RES) * RES, round(c.y / RES) * RES
    half = size * RES / 2
    # The grid takes the boundary's bounds plus the margin, outwards to whole pixels: a
    # boundary 1 m inside (size * RES - 2 * margin) keeps the grid at size x size pixels.
    inner = half - MARGIN_M - 1.0
    left, top = cx - half, cy + half
    boundary = to_crs(box(cx - inner, cy - inner, cx + inner, cy + inner), utm, "EPSG:4326")
    rng = np.random.default_rng([seed, 1])
    # Parts: rectangles from 6 to 300 pixels a side (60 m to 3 km) on a jittered layout.
    ncol = math.ceil(math.sqrt(n_parts))
    nrow = math.ceil(n_parts / ncol)
    lo = round(MARGIN_M / RES) + 20
    cell_h, cell_w = (size - 2 * lo) / nrow, (size - 2 * lo) / ncol
    sides = np.geomspace(6, min(300, 0.8 * min(cell_h, cell_w)), n_parts)
    rng.shuffle(sides)
    parts, feats = [], []
    for k in range(n_parts):
        i, j = divmod(k, ncol)
        h = int(sides[k])
        w = int(np.clip(sides[k] * rng.uniform(0.6, 1.6), 4, 0.9 * cell_w))
        r0 = int(lo + i * cell_h + rng.uniform(0, max(cell_h - h, 1)))
        c0 = int(lo + j * cell_w + rng.uniform(0, max(cell_w - w, 1)))
        name = f"part_{k + 1:02d}"
        parts.append({"name": name, "rect": (r0, c0, h, w),
                      "material": PART_MATERIALS[k % len(PART_MATERIALS)]})
        poly = box(left + c0 * RES, top - (r0 + h) * RES, left + (c0 + w) * RES,
                   top - r0 * RES)
        feats.append({"type": "Feature", "geometry": mapping(to_crs(poly, utm, "EPSG:4326")),
                      "properties": {"role": "part", "name": name,
                                     "kind": PART_KINDS[k % len(PART_KINDS)],
                                     "label": f"synthetic part {k + 1} ({h} x {w} px)"}})
    site_json = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(boundary),
         "properties": {"role": "site", "id": SITE_ID, "site_type": "launch_site",
                        "name": "Speed benchmark site (SIMULATED, not real)",
                        "simulated": True,
                        "note": "SIMULATED: a synthetic layout for bench_watch_speed.py"}},
        *feats]}
    layout = {"size": size, "transform": [RES, 0.0, left, 0.0, -RES, top],
              "epsg": utm.to_epsg(), "parts": parts, "events": plan_events(parts, size, rng)}
    return site_json, layout


def plan_events(parts: list[dict[str, Any]], size: int, rng: np.random.Generator
                ) -> list[dict[str, Any]]:
    """Planted changes: (first, last) scene index as a fraction of the series (1.0 = the
    extra scene), a rectangle inside a part (or outside every part) and its material."""
    big = sorted(range(len(parts)), key=lambda k: -parts[k]["rect"][2] * parts[k]["rect"][3])

    def inside(k: int, frac: float) -> tuple[int, int, int, int]:
        r0, c0, h, w = parts[k]["rect"]
        hh, ww = max(2, int(h * frac)), max(2, int(w * frac))
        return (r0 + (h - hh) // 2, c0 + (w - ww) // 2, hh, ww)

    free = (size // 2 + 5, 30 + round(MARGIN_M / RES), 60, 80)  # between the parts' columns
    plan = [
        ("construction (cleared)", big[0], 0.2, 0.4, "fresh_soil", 0.5),
        ("construction (built)", big[0], 0.4, None, "concrete", 0.5),
        ("razing", big[1], 0.35, None, "rubble", 0.6),
        ("vehicles gathered", big[2], 0.5, 0.52, "vehicle_bright", 0.4),
        ("new roof", big[3], 0.75, None, "roof_blue", 0.7),
        ("construction in the new scene", big[4], 1.0, None, "concrete", 0.6),
    ]
    out = [{"what": what, "part": parts[k]["name"], "rect": inside(k, frac), "start": s,
            "end": e, "material": mat} for what, k, s, e, mat, frac in plan]
    out.append({"what": "burn scar", "part": None, "rect": free, "start": 0.6, "end": None,
                "material": "scorched"})
    del rng
    return out


# --------------------------------------------------------------------------- the scenes


_BASE: dict[str, Any] = {}


def _smooth_field(rng: np.random.Generator, size: int, coarse: int, order: int = 3
                  ) -> np.ndarray:
    from scipy import ndimage

    low = rng.standard_normal((coarse, coarse)).astype(np.float32)
    up = ndimage.zoom(low, size / coarse, order=order, grid_mode=True, mode="nearest")
    return np.ascontiguousarray(up[:size, :size])


def _base(layout: dict[str, Any], seed: int) -> dict[str, Any]:
    """The static ground, computed once per process."""
    key = (seed, json.dumps(layout["parts"]), layout["size"])
    if _BASE.get("key") == key:
        return _BASE
    from scipy import ndimage

    size = layout["size"]
    rng = np.random.default_rng([seed, 2])
    veg = _smooth_field(rng, size, 40) + 0.4 * _smooth_field(rng, size, 160)
    veg = 1.0 / (1.0 + np.exp(-1.8 * veg))
    tex = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.0)
    tex = 1.0 + 0.25 * tex / tex.std()
    mat = np.full((size, size), -1, np.int16)  # index into SPECTRA keys, -1 = natural
    keys = list(SPECTRA)
    for k in range(6):  # roads, 2-3 px wide
        pos = int(rng.uniform(0.05, 0.95) * size)
        if k % 2:
            mat[pos:pos + 2 + k % 2, :] = keys.index("asphalt")
        else:
            mat[:, pos:pos + 2 + k % 2] = keys.index("gravel")
    for p in layout["parts"]:
        r0, c0, h, w = p["rect"]
        mat[r0:r0 + h, c0:c0 + w] = keys.index(p["material"])
    _BASE.clear()
    _BASE.update(key=key, veg=veg.astype(np.float32),
                 tex=tex.astype(np.float32), mat=mat, keys=keys)
    return _BASE


def scene_plan(n: int, seed: int) -> list[dict[str, Any]]:
    """Per scene (n + 1, the last being the extra one): time, cloud cover, shift, swath."""
    out = []
    for k in range(n + 1):
        rng = np.random.default_rng([seed, 3, k])
        u = rng.uniform()
        if k == 0 or k == n:
            cover = 0.0  # a clear reference and a clear new scene
        elif u < 0.5:
            cover = 0.0
        elif u < 0.85:
            cover = float(rng.uniform(0.02, 0.35))
        elif u < 0.95:
            cover = float(rng.uniform(0.55, 0.9))
        else:
            cover = 0.97
        shift = (0.0, 0.0) if k == 0 else tuple(float(v) for v in rng.uniform(-0.35, 0.35, 2))
        out.append({"k": k, "time": START + timedelta(days=INTERVAL_DAYS * k),
                    "cover": cover, "shift": shift,
                    "swath": k == max(1, round(0.45 * n)) and k != n})
    return out


def _subpixel(v: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``v`` with its content moved by (dy, dx) pixels (|d| < 1; +dy = south, +dx = east),
    bilinear, edges repeated."""
    out = v
    for axis, d in ((0, dy), (1, dx)):
        if not d:
            continue
        nb = np.roll(out, 1 if d > 0 else -1, axis=axis)
        edge = [slice(None)] * 2
        edge[axis] = 0 if d > 0 else -1
        nb[tuple(edge)] = out[tuple(edge)]
        out = (1.0 - abs(d)) * out + abs(d) * nb
    return out.astype(np.float32, copy=False)


def render(k: int, layout: dict[str, Any], spec: dict[str, Any], n: int, seed: int
           ) -> np.ndarray:
    """(5, size, size) uint16: reflectance x 10000 in bands 1-4, Fmask codes in band 5."""
    b = _base(layout, seed)
    size = layout["size"]
    rng = np.random.default_rng([seed, 4, k])
    t = spec["time"]
    doy = t.timetuple().tm_yday
    season = (0.5 * (1.0 - math.cos(2.0 * math.pi * (doy - 20) / 365.25))) ** 1.3
    active = [e for e in layout["events"]
              if e["start"] * n <= k and (e["end"] is None or k <= e["end"] * n)]
    cloud = np.zeros((size, size), np.float32)
    if spec["cover"] > 0:
        f = _smooth_field(rng, size, 24, 1) + 0.35 * _smooth_field(rng, size, 90, 1)
        thr = np.quantile(f[::7, ::7], 1.0 - spec["cover"])
        cloud = np.clip((f - thr) / (0.4 * f.std()) + 0.3, 0.0, 1.0).astype(np.float32)
    cmask = cloud > 0.25
    smask = np.roll(cmask, (30, -24), axis=(0, 1)) & ~cmask
    fill = np.zeros((size, size), bool)
    if spec["swath"]:
        fill[:, int(0.72 * size):] = True
    gains = rng.normal(1.0, 0.03, 4)
    offsets = rng.normal(0.0, 0.004, 4)
    dy, dx = spec["shift"]
    out = np.empty((5, size, size), np.uint16)
    keys = b["keys"]
    for i in range(4):
        veg_s = SPECTRA["veg_dormant"][i] * (1 - season) + SPECTRA["veg_peak"][i] * season
        v = (1.0 - b["veg"]) * SPECTRA["soil"][i] + b["veg"] * veg_s
        lut = np.array([SPECTRA[kk][i] for kk in keys], np.float32)
        man = b["mat"] >= 0
        v[man] = lut[b["mat"][man]]
        for e in active:
            r0, c0, h, w = e["rect"]
            v[r0:r0 + h, c0:c0 + w] = SPECTRA[e["material"]][i]
        v *= b["tex"]
        if dy or dx:  # content misregistration; the georeference stays nominal
            v = _subpixel(v, dy, dx)
        v = v * (1.0 - 0.55 * smask)
        v = v * (1.0 - cloud) + cloud * 0.55 * (0.9 + 0.2 * b["tex"])
        v = v * gains[i] + offsets[i] + 0.005 * rng.standard_normal((size, size), np.float32)
        q = np.clip(np.rint(v * 10000.0), 0, NODATA - 1).astype(np.uint16)
        q[fill] = NODATA
        out[i] = q
    fm = np.zeros((size, size), np.uint8)
    fm[smask] = 2
    fm[cmask] = 4
    fm[fill] = 255
    out[4] = fm
    return out


def write_scene(args: tuple[int, dict[str, Any], dict[str, Any], int, int, str]) -> str:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    k, layout, spec, n, seed, folder = args
    data = render(k, layout, spec, n, seed)
    t = spec["time"]
    path = Path(folder) / f"SIM10_{t:%Y%m%dT%H%M%S}.tif"
    size = layout["size"]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 5,
               "dtype": "uint16", "crs": CRS.from_epsg(layout["epsg"]),
               "transform": Affine(*layout["transform"]), "nodata": NODATA,
               "compress": "deflate", "zlevel": 1, "predictor": 2, "interleave": "pixel",
               "tiled": True, "blockxsize": 256, "blockysize": 256}
    tags = {"ACQUISITION_TIME": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "TIFFTAG_DATETIME": t.strftime("%Y:%m:%d %H:%M:%S"),
            "SENSOR": "sim-10m", "PLATFORM": "SITEWATCH-SIM", "SIMULATED": "true",
            "SITE": SITE_ID, "SEED": str(seed),
            "TIFFTAG_IMAGEDESCRIPTION": "SIMULATED image made by bench_watch_speed.py"}
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        for i, name in enumerate((*BANDS, "fmask"), start=1):
            ds.set_band_description(i, name)
        ds.scales = (1e-4, 1e-4, 1e-4, 1e-4, 1.0)
        ds.update_tags(**tags)
        for i, wl in enumerate(WAVELENGTHS, start=1):
            ds.update_tags(i, wavelength=f"{wl:.3f}")
        ds.update_tags(5, codes="0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill")
    return str(path)


# --------------------------------------------------------------------------- the steps
# Each runs in a fresh spawned process: its own imports, its own peak RSS.


STAGES = {  # stage -> functions of sitewatch.watch.grids / .pipeline, or Store methods
    "load (read + warp onto the grid)": ("grids", "load_scene"),
    "co-register": ("grids", "register"),
    "detect (normalise, score, threshold, clean)": ("grids", "detect_arrays"),
    "zonal (part_changes)": ("grids", "part_changes"),
    "composite (median of 5)": ("grids", "_composite"),
    "not-observed rows": ("grids", "_not_observed"),
    "image cache: read (composite members kept between runs)": ("cache", "get"),
    "image cache: write": ("cache", "put"),
    "store: put_result (with the registration)": ("store", "put_result"),
    "store: registrations (read)": ("store", "registrations"),
    "score alerts (all series)": ("pipeline", "score_alerts"),
}


def _install_timers() -> dict[str, list[float]]:
    from sitewatch.store import Store
    from sitewatch.watch import grids, pipeline

    try:
        from sitewatch.watch.imagecache import ImageCache
    except ImportError:  # a sitewatch from before the image cache
        ImageCache = None
    acc: dict[str, list[float]] = {k: [0.0, 0] for k in STAGES}

    def wrap(fn, key):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                acc[key][0] += time.perf_counter() - t0
                acc[key][1] += 1
        return timed

    for key, (where, name) in STAGES.items():
        owner = {"pipeline": pipeline, "grids": grids, "cache": ImageCache}.get(where, Store)
        if owner is not None and hasattr(owner, name):
            setattr(owner, name, wrap(getattr(owner, name), key))
    return acc


def step_ingest(db: str, folder: str, site_json: dict[str, Any] | None) -> dict[str, Any]:
    from sitewatch.imagery.ingest import ingest
    from sitewatch.sites.site import site_from_geojson
    from sitewatch.store import Store

    site = site_from_geojson(site_json, "bench") if site_json else None
    t0 = time.perf_counter()
    with Store.open_path(db) as store:
        rep = ingest(store, [folder], SITE_ID, site=site)
    import sitewatch

    return {"seconds": time.perf_counter() - t0, "added": rep.count("added"),
            "skipped": len(rep.skipped), "rss_mib": _rss_mib(),
            "sitewatch": str(Path(sitewatch.__file__).parent)}


def step_run(db: str, method: str | None, profile: bool = False,
             cache: str | None = None) -> dict[str, Any]:
    if cache is not None:  # the image cache of the composite's members
        os.environ["SITEWATCH_WATCH_CACHE"] = cache
    from sitewatch.store import Store
    from sitewatch.times import iso
    from sitewatch.watch import grids, pipeline
    from sitewatch.watch.pipeline import RunParams, run_site

    acc = _install_timers()
    statuses: list[str] = []
    orig = grids._process_scene

    def process_scene(*a, **kw):
        res = orig(*a, **kw)
        statuses.append(getattr(res[0], "status", res[0]))  # a ProcessedScene since issue 13
        return res

    grids._process_scene = process_scene
    ticks: list[tuple[str, str, float, float]] = []  # (status or 'reused', stage, t, cpu)
    seen = [0]

    def progress(stage: str, done: int, total: int) -> None:
        t, cpu = time.perf_counter(), time.process_time()
        if stage == "process":
            st = statuses[-1] if len(statuses) > seen[0] else "reused"
            seen[0] = len(statuses)
            ticks.append((st, stage, t, cpu))
            if st != "reused" and (done % 10 == 0 or done == total or total - done < 2):
                prev = ticks[-2][2] if len(ticks) > 1 else t_call[0]
                print(f"      {method or WATCH_METHOD}: scene {done}/{total} {st} {t - prev:.1f} s "
                      f"({t - t_call[0]:.0f} s so far)", file=sys.stderr, flush=True)
        else:
            ticks.append(("", f"{stage}:{done}", t, cpu))

    params = RunParams(method=method)
    prof = cProfile.Profile() if profile else None
    t_call = [0.0]
    load0 = os.getloadavg()[0]
    with Store.open_path(db) as store:
        cpu0 = time.process_time()
        t0 = t_call[0] = time.perf_counter()
        if prof:
            prof.enable()
        rep = run_site(store, SITE_ID, params, progress=progress)
        if prof:
            prof.disable()
        total = time.perf_counter() - t0
        cpu_total = time.process_time() - cpu0
    per_scene, per_cpu, last, last_cpu = [], [], t0, cpu0
    alerts_s = 0.0
    for st, stage, t, cpu in ticks:
        if stage == "process":
            per_scene.append((st, t - last))
            per_cpu.append((st, cpu - last_cpu))
        elif stage == "alerts:1":
            alerts_s = t - last
        last, last_cpu = t, cpu
    out = {"method": method or f"{WATCH_METHOD} (default)", "seconds": total,
           "per_scene": per_scene,
           "cpu": cpu_total, "per_cpu": per_cpu, "load": (load0, os.getloadavg()[0]),
           "alerts_s": alerts_s, "processed": len(rep.processed), "reused": rep.reused,
           "statuses": {s: rep.count(s) for s in pipeline.STATUSES},
           "new_alerts": [(a.part, iso(a.start), iso(a.end)) for a in rep.alerts["new"]],
           "updated_alerts": len(rep.alerts["updated"]),
           "stages": {k: (v[0], v[1]) for k, v in acc.items()}, "rss_mib": _rss_mib(),
           "sitewatch": str(Path(pipeline.__file__).parents[1])}
    with Store.open_path(db) as store:
        out["stored_alerts"] = [(x.part, iso(x.start), iso(x.end), x.tier)
                                for x in store.alerts(SITE_ID)]
    if prof:
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("cumulative").print_stats(30)
        out["profile"] = _short_profile(buf.getvalue())
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        out["profile_self"] = _short_profile(buf.getvalue())
    return out


def _short_profile(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    keep = [ln.replace(str(REPO / "src") + "/", "")
              .replace(sys.prefix + "/lib/python" + sys.version[:4] + "/", "")
            for ln in lines[start:] if ln.strip()]
    head = [ln.strip() for ln in lines[:start] if "function calls" in ln]
    return "\n".join(head + keep)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(fn, *args):
    """Run ``fn(*args)`` in a fresh spawned process and return its result."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


def copy_db(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


# --------------------------------------------------------------------------- report


@dataclass
class Summary:
    n: int
    mean: float
    median: float
    max: float
    total: float


def summary(values: list[float]) -> Summary | None:
    if not values:
        return None
    return Summary(len(values), statistics.fmean(values), statistics.median(values),
                   max(values), sum(values))


def scene_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | method | kind of scene | n | mean s | median s | max s | total s | "
             "mean CPU s | median CPU s | max CPU s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        groups = {"all": ([s for _, s in r["per_scene"]], [s for _, s in r["per_cpu"]])}
        for st in ("ok", "first", "unusable", "rejected", "failed", "reused"):
            v = [s for k, s in r["per_scene"] if k == st]
            c = [s for k, s in r["per_cpu"] if k == st]
            if v:
                groups[st] = (v, c)
        for g, (v, c) in groups.items():
            s, sc = summary(v), summary(c)
            if s and sc:
                lines.append(f"| {r['label']} | {r['method']} | {g} | {s.n} | {s.mean:.2f} | "
                             f"{s.median:.2f} | {s.max:.2f} | {s.total:.1f} | {sc.mean:.2f} | "
                             f"{sc.median:.2f} | {sc.max:.2f} |")
    return lines


def stage_table(r: dict[str, Any]) -> list[str]:
    total = r["seconds"]
    lines = ["| stage | calls | seconds | share of the run |", "|---|---:|---:|---:|"]
    accounted = 0.0
    for k, (s, n) in r["stages"].items():
        if n:
            lines.append(f"| {k} | {n} | {s:.1f} | {s / total:.0%} |")
            accounted += s
    if accounted <= total:
        lines.append(f"| other (catalogue reads, grid set-up, masks, bookkeeping) | | "
                     f"{total - accounted:.1f} | {(total - accounted) / total:.0%} |")
    else:  # a scene's bands are read on a second thread while the composite is made
        lines.append(f"| overlap: stages that ran at once on two threads (the new scene's "
                     f"load beside the composite and the cache reads; the comparison with "
                     f"the previous date beside the one with the composite), less the "
                     f"rest | | "
                     f"{total - accounted:.1f} | {(total - accounted) / total:.0%} |")
    lines.append(f"| **total** | | {total:.1f} | 100% |")
    return lines


def _top_stages(r: dict[str, Any], k: int = 3) -> str:
    st = sorted(((v[0], name) for name, v in r["stages"].items() if v[1]), reverse=True)[:k]
    return ", ".join(f"{name} {sec:.1f} s ({sec / r['seconds']:.0%})" for sec, name in st)


def headline(info: dict[str, Any]) -> list[str]:
    out = []
    for r in info["runs"]:
        if r["label"] == "from scratch":
            ok = [s for k, s in r["per_scene"] if k == "ok"]
            out.append(f"- **Whole series from scratch** ({r['method']}): {r['seconds'] / 60:.1f}"
                       f" min wall ({r['cpu'] / 60:.1f} min CPU) for {r['processed']} scenes, "
                       f"{statistics.fmean(ok):.1f} s per usable scene on average. Largest "
                       f"stages: {_top_stages(r)}.")
        elif r["label"] == "new scene":
            out.append(f"- **One new scene on top of {r['reused']} scenes of history** "
                       f"({r['method']}): {r['seconds']:.1f} s wall ({r['cpu']:.1f} s CPU), "
                       f"in a fresh process as `sitewatch run` would be. Largest stages: "
                       f"{_top_stages(r)}.")
        elif r["label"] == "no-op re-run":
            out.append(f"- **Re-run with nothing new** ({r['method']}): {r['seconds']:.2f} s, "
                       f"of which scoring the alerts again {r['alerts_s']:.2f} s.")
    return out


#: Issue 19's targets for the default site (2000 x 2000 px, 20 parts, 100 dates), on this
#: 2-core machine when quiet: run label -> (seconds, what).
TARGETS = {"new scene": (2.0, "one new scene"), "from scratch": (180.0, "the series from scratch"),
           "no-op re-run": (0.5, "a run with nothing new")}
TARGET_RSS_MIB = 1024


def target_table(a: argparse.Namespace, info: dict[str, Any]) -> list[str]:
    """Measured against issue 19's targets (only for the site they are set for)."""
    if (a.scenes, a.size, a.parts) != (100, 2000, 20):
        return []
    lines = ["## Against the targets (issue 19)", "",
             "Targets are wall times on a quiet 2-core machine. The pipeline uses both cores "
             "for a scene (its read beside its references, its two comparisons at once), so "
             "its CPU time exceeds its wall time; on a shared machine (see *load*) the wall "
             "time is an upper bound.", "",
             "| run | target s | wall s | CPU s | met (wall) | peak RSS MiB (target "
             f"{TARGET_RSS_MIB}) | RSS met |", "|---|---:|---:|---:|---|---:|---|"]
    for r in info["runs"]:
        if r["label"] not in TARGETS or r["method"] != info["runs"][0]["method"]:
            continue
        t, what = TARGETS[r["label"]]
        met = "yes" if r["seconds"] <= t else f"no, {r['seconds'] / t:.1f}x"
        rss = "yes" if r["rss_mib"] <= TARGET_RSS_MIB else "no"
        lines.append(f"| {what} | {t:g} | {r['seconds']:.2f} | {r['cpu']:.2f} | {met} | "
                     f"{r['rss_mib']:.0f} | {rss} |")
    return [*lines, ""]


def build_report(a: argparse.Namespace, cmd: str, info: dict[str, Any]) -> str:
    import rasterio
    import scipy
    import sqlalchemy

    n = a.scenes
    lay = info["layout"]
    lines = [
        "# Speed of `sitewatch run` on a big site: one new scene, and the series from scratch",
        "",
        f"- command: `{cmd}`",
        f"- date: {info.get('date') or f'{datetime.now(UTC):%Y-%m-%d %H:%M} UTC'}",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared with other jobs); Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), "
        f"SQLAlchemy {sqlalchemy.__version__}",
        f"- code: {info['code']}; src/sitewatch was copied when the benchmark started "
        "and every step imported that copy (" + info["code_where"] + ")",
        f"- wall time of the whole benchmark: {info['wall']:.0f} s (writing the scenes: "
        + (f"{info['write_s']:.0f} s with {a.jobs} processes)"
           if math.isfinite(info["write_s"]) else
           "none: those of an earlier run with the same plan were reused, `--reuse-scenes`)"),
        "",
        "## The synthetic site (SIMULATED)",
        "",
        f"- {n} scenes of history plus 1 new scene, every {INTERVAL_DAYS} days from "
        f"{START:%Y-%m-%d}; each a {lay['size']} x {lay['size']} px GeoTIFF at {RES:g} m in "
        f"EPSG:{lay['epsg']} (the site's local UTM zone, so scenes are read without "
        f"resampling unless a shift is applied), 4 reflectance bands + Fmask, uint16, "
        f"deflate (level 1, predictor 2, 256 px tiles); {info['scene_mib']:.0f} MiB per "
        "scene on disk.",
        f"- site grid: {info['grid_shape'][0]} x {info['grid_shape'][1]} px "
        f"({info['grid_shape'][0] * info['grid_shape'][1] / 1e6:.1f} Mpx); the boundary "
        f"covers {info['site_px'] / 1e6:.2f} Mpx; {len(lay['parts'])} parts from "
        f"{info['part_px'][0]} to {info['part_px'][1]} px "
        f"(all parts: {info['part_px'][2] / 1e6:.2f} Mpx).",
        f"- clouds: {info['clouds']['clear']} clear scenes, {info['clouds']['partly']} partly "
        f"cloudy (2-35 %), {info['clouds']['heavy']} 55-97 % cloudy; one scene with a swath "
        f"edge; sub-pixel misregistration up to 0.35 px per axis.",
        "- planted changes: " + "; ".join(
            f"{e['what']} ({e['part'] or 'outside the parts'}, scene "
            f"{math.ceil(e['start'] * n) + 1}"
            + (f" to {math.floor(e['end'] * n) + 1}" if e["end"] else " on") + ")"
            for e in lay["events"]) + " (scene numbers from 1; the new scene is "
        f"{n + 1}).",
        "",
        "Every step ran in its own fresh Python process (times start after its imports; "
        "peak RSS is that process's own). Ingest of the history: "
        f"{info['ingest']['seconds']:.1f} s for {info['ingest']['added']} scenes (reads "
        "metadata and hashes every file); ingest of the new scene: "
        f"{info['ingest_new']['seconds']:.2f} s.",
        "",
        "## Headline",
        "",
        *headline(info),
        "",
        *target_table(a, info),
        "*CPU s* is the process's CPU time (all its threads) over the same span: above the "
        "wall time when both cores worked for it; below it when the process waited, mostly "
        "for a core taken by other jobs on this shared machine. *load* is the 1-minute load "
        "average at the start and the end of the run (2 cores).",
        "",
        "| run | method | scenes processed | reused | wall s | CPU s | wall s per processed "
        "scene | CPU s per processed scene | scoring alerts s | peak RSS MiB | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in info["runs"]:
        proc = max(r["processed"], 1)
        lines.append(f"| {r['label']} | {r['method']} | {r['processed']} | {r['reused']} | "
                     f"{r['seconds']:.1f} | {r['cpu']:.1f} | {r['seconds'] / proc:.2f} | "
                     f"{r['cpu'] / proc:.2f} | {r['alerts_s']:.2f} | {r['rss_mib']:.0f} | "
                     f"{r['load'][0]:.1f} -> {r['load'][1]:.1f} |")
    if len(a.methods.split(",")) == 1:
        lines += ["", f"Only {a.methods} was run (`--methods {a.methods}`); "
                  "`--methods ratio,hacd` adds the same runs with `RunParams(method=\"hacd\")`."]
    lines += ["", "Statuses of the from-scratch runs: " + "; ".join(
        f"{r['method']}: " + ", ".join(f"{k} {v}" for k, v in r["statuses"].items() if v)
        for r in info["runs"] if r["label"] == "from scratch") + "."]
    lines += ["", "## Seconds per scene (from the progress callback)", "",
              "*ok* scenes are compared twice (with the previous usable date and with the "
              "median of the last 5) and scored per part; *unusable* ones (under 50 % of the "
              "site observed) are loaded and stored as not observed; *reused* ones were "
              "already done. The first scene of a run also chooses and loads the "
              "co-registration reference.", "", *scene_table(info["runs"])]
    first = info["runs"][0]
    lines += ["", f"## Where the time goes: {first['label']}, {first['method']}", "",
              "Timing wrappers around what `sitewatch.watch.pipeline` calls (no profiler). *load* "
              "includes re-loading a scene with its co-registration shift and the composite "
              "members found neither in memory nor in the image cache (`cache/watch` beside "
              "the catalogue, which keeps the next date's members between runs).", "",
              *stage_table(first)]
    inc = [r for r in info["runs"] if r["label"] == "new scene"]
    for r in inc[:1]:
        lines += ["", f"The same split for the incremental run ({r['method']}):", "",
                  *stage_table(r)]
    if info.get("profile"):
        text = re.sub(r"\S*/src/(sitewatch/)", r"\1", info["profile"]["text"])
        text = text.replace(str(REPO) + "/", "")
        lines += ["", "## cProfile of the incremental run (new scene + scoring), "
                  f"{info['profile']['method']}", "",
                  f"Run on a copy of the database taken just before the timed incremental "
                  f"run; {info['profile']['seconds']:.1f} s under the profiler. Top 30 by "
                  "cumulative time (`timed` and `process_scene` are this benchmark's timing "
                  "wrappers):", "", "```", text, "```"]
        if info["profile"].get("self"):
            own = re.sub(r"\S*/src/(sitewatch/)", r"\1", info["profile"]["self"])
            lines += ["", "Top 25 by own time:", "", "```",
                      own.replace(str(REPO) + "/", ""), "```"]
    if info.get("alerts"):
        lines += alert_section(info, n)
    return "\n".join(lines) + "\n"


def alert_section(info: dict[str, Any], n: int) -> list[str]:
    """Whether the runs raised alerts where changes were planted (context, not a detection
    benchmark: the synthetic ground is cruder than the simulator's)."""
    rest = info["rest_name"]
    lines = ["", "## Alerts (do the detectors do real work?)", ""]
    for label, method, new, updated in info["alerts"]:
        lines.append(f"- {label}, {method}: {new} new alerts, {updated} updated.")
    final = info["runs"][-1]
    stored = final["stored_alerts"]
    lay, times = info["layout"], info["times"]
    planted = {e["part"] or rest for e in lay["events"]}
    lines += ["", f"After the last run, {len(stored)} alerts are stored "
              f"({final['method']}), {sum(p in planted for p, *_ in stored)} of them at the "
              f"{len(planted)} parts with a planted change (the burn scar is outside every "
              f"part, in {rest!r}). Per planted change, the alerts at "
              "its part whose span (previous usable date .. date) contains the date the "
              "change first shows (or, for a transient one, the date it is gone):", "",
              "| planted change | part | first scene (date) | alert spans covering it |",
              "|---|---|---|---|"]
    for e in lay["events"]:
        part = e["part"] or rest
        k = math.ceil(e["start"] * n)
        when = [times[k]] + ([times[math.floor(e["end"] * n) + 1]] if e["end"] else [])
        hits = [f"{s[:10]}..{(t or '')[:10]} ({tier})" for p, s, t, tier in stored
                if p == part and any(s <= w <= (t or s) for w in when)]
        lines.append(f"| {e['what']} | {part} | {k + 1} ({times[k][:10]}) | "
                     + (", ".join(hits) or "none") + " |")
    quiet = {}
    for p, *_ in stored:
        if p not in planted:
            quiet[p] = quiet.get(p, 0) + 1
    lines += ["", "Alerts at parts with nothing planted (false alarms on this synthetic "
              "ground): "
              + (", ".join(f"{p} {c}" for p, c in sorted(quiet.items())) or "none") + "."]
    return lines


# --------------------------------------------------------------------------- main


def command(argv: list[str] | None) -> str:
    here = Path(__file__)
    shown = (os.path.relpath(here, Path.cwd()) if here.is_relative_to(Path.cwd())
             else str(here))
    return "python " + " ".join(shlex.quote(x) for x in
                                [shown, *(sys.argv[1:] if argv is None else argv)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=100, help="scenes of history (default 100)")
    ap.add_argument("--size", type=int, default=2000, help="grid side in pixels (default 2000)")
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--methods", default=WATCH_METHOD,
                    help="comma-separated, e.g. ratio,hacd; the first defaults to the watch's own "
                         "(RunParams(), sensors.WATCH_METHOD); each adds a from-scratch and an "
                         "incremental run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="processes writing the scenes")
    ap.add_argument("--workdir", default=None, help="where to write (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scenes and the database")
    ap.add_argument("--reuse-scenes", action="store_true",
                    help="when --workdir already holds this plan's scenes (from a --keep run "
                         "with the same --scenes/--size/--parts/--seed), use them instead of "
                         "writing them again")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                    help="profile the incremental run (on a copy of the database)")
    ap.add_argument("--out", default=str(REPO / "docs" / "bench_watch_speed.md"))
    ap.add_argument("--json", default=None, help="also write every measurement here")
    ap.add_argument("--from-json", default=None,
                    help="only write --out again from a --json file of an earlier run")
    a = ap.parse_args(argv)
    if a.from_json:
        saved = json.loads(Path(a.from_json).read_text())
        run_args = argparse.Namespace(**saved.pop("args"))
        saved.setdefault("date", datetime.fromtimestamp(
            Path(a.from_json).stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC"))
        cmd = saved.pop("cmd", None) or "python benchmarks/bench_watch_speed.py" + (
            f" --json {run_args.json}" if run_args.json else "")
        text = build_report(run_args, cmd, saved)
        text = text.replace("\n\n## The synthetic site", "\n- report written again from "
                            f"that run's JSON (`--from-json {a.from_json}`)\n\n"
                            "## The synthetic site", 1)
        Path(a.out).write_text(text)
        print(text)
        return 0
    if a.scenes < 3 or a.size < 200 or a.parts < 5:
        ap.error("need --scenes >= 3, --size >= 200, --parts >= 5 (the planted changes "
                 "use five parts)")
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="sw_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    # src/ may be edited while this runs (tens of minutes): every step imports one copy.
    snap = work / "src"
    shutil.rmtree(snap, ignore_errors=True)
    code = code_state()
    shutil.copytree(REPO / "src" / "sitewatch", snap / "sitewatch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(snap))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(snap), *filter(None, [os.environ.get("PYTHONPATH")])])
    from sitewatch.imagery.grid import DEFAULT_MARGIN_M, site_grid
    from sitewatch.sites.site import site_from_geojson
    from sitewatch.watch.zonal import REST

    if DEFAULT_MARGIN_M != MARGIN_M:
        raise SystemExit(f"the site grid margin is now {DEFAULT_MARGIN_M} m; update MARGIN_M")
    meths = [m.strip() for m in a.methods.split(",") if m.strip()]
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    hist, new = work / "scenes", work / "new"
    db = work / "sw.db"
    try:
        site_json, lay = site_layout(a.size, a.parts, a.seed)
        site = site_from_geojson(json.loads(json.dumps(site_json)), "bench")
        grid = site_grid(site, RES)
        if grid.shape != (a.size, a.size) or list(grid.transform)[:6] != lay["transform"]:
            raise SystemExit(f"the site grid is {grid.shape} at {list(grid.transform)[:6]}, "
                             f"not the {a.size} x {a.size} the scenes are written on")
        masks = grid.part_masks(site)
        sizes = [int(m.sum()) for m in masks.values()]
        info: dict[str, Any] = {
            "layout": lay, "grid_shape": grid.shape, "code": code, "rest_name": REST,
            "site_px": int(grid.site_mask(site).sum()),
            "part_px": (min(sizes), max(sizes), sum(sizes)),
        }
        plan = scene_plan(a.scenes, a.seed)
        info["times"] = [p["time"].strftime("%Y-%m-%dT%H:%M:%SZ") for p in plan]
        info["clouds"] = {"clear": sum(p["cover"] == 0 for p in plan[:-1]),
                          "partly": sum(0 < p["cover"] < 0.5 for p in plan[:-1]),
                          "heavy": sum(p["cover"] >= 0.5 for p in plan[:-1])}
        for f in work.glob("sw*.db*"):
            f.unlink()
        for d in ("cache", "cache_profile"):  # image caches of an earlier run's catalogue
            shutil.rmtree(work / d, ignore_errors=True)
        stamp = work / "scenes.json"
        want = json.dumps({"scenes": a.scenes, "size": a.size, "parts": a.parts,
                           "seed": a.seed, "times": info["times"]})
        if a.reuse_scenes and stamp.exists() and stamp.read_text() == want:
            log(f"reusing the {a.scenes} + 1 scenes already in {work}")
            info["write_s"] = math.nan
        else:
            stamp.unlink(missing_ok=True)
            for d in (hist, new):
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
            log(f"writing {a.scenes} + 1 scenes of {a.size} x {a.size} px to {work}")
            t0 = time.perf_counter()
            jobs = [(k, lay, plan[k], a.scenes, a.seed, str(hist if k < a.scenes else new))
                    for k in range(a.scenes + 1)]
            with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as ex:
                for i, _ in enumerate(ex.map(write_scene, jobs, chunksize=4)):
                    if (i + 1) % 10 == 0:
                        log(f"  {i + 1} scenes written")
            info["write_s"] = time.perf_counter() - t0
            stamp.write_text(want)
        info["scene_mib"] = np.mean([f.stat().st_size for f in hist.glob("*.tif")]) / 2**20
        log(f"scenes written in {info['write_s']:.0f} s ({info['scene_mib']:.0f} MiB each)")

        info["ingest"] = in_child(step_ingest, str(db), str(hist), site_json)
        log(f"ingested {info['ingest']['added']} scenes in {info['ingest']['seconds']:.1f} s")
        runs: list[dict[str, Any]] = []
        alerts = []
        for m in meths:
            r = in_child(step_run, str(db), None if m == WATCH_METHOD else m)
            r["label"] = "from scratch"
            runs.append(r)
            alerts.append(("from scratch", r["method"], len(r["new_alerts"]),
                           r["updated_alerts"]))
            log(f"from scratch, {r['method']}: {r['seconds']:.0f} s, {r['processed']} scenes")
        info["ingest_new"] = in_child(step_ingest, str(db), str(new), None)
        log(f"ingested the new scene in {info['ingest_new']['seconds']:.2f} s")
        if a.profile:
            copy_db(db, work / "sw_profile.db")
            # The image cache goes with its catalogue: the profiled run finds what the
            # timed one found (the timed run prunes the cache to its own next date).
            if (work / "cache").is_dir():
                shutil.copytree(work / "cache", work / "cache_profile")
        for m in meths:
            r = in_child(step_run, str(db), None if m == WATCH_METHOD else m)
            r["label"] = "new scene"
            runs.append(r)
            alerts.append(("new scene", r["method"], len(r["new_alerts"]),
                           r["updated_alerts"]))
            log(f"new scene, {r['method']}: {r['seconds']:.1f} s")
        r = in_child(step_run, str(db), None if meths[0] == WATCH_METHOD else meths[0])
        r["label"] = "no-op re-run"
        runs.append(r)
        log(f"no-op re-run, {r['method']}: {r['seconds']:.2f} s")
        if a.profile:
            p = in_child(step_run, str(work / "sw_profile.db"),
                         None if meths[0] == WATCH_METHOD else meths[0], True,
                         str(work / "cache_profile" / "watch"))
            info["profile"] = {"method": p["method"], "seconds": p["seconds"],
                               "text": p["profile"], "self": p.get("profile_self", "")}
            log(f"profiled the new-scene run: {p['seconds']:.1f} s under cProfile")
        info["runs"] = runs
        info["alerts"] = alerts
        where = {r["sitewatch"] for r in [*runs, info["ingest"], info["ingest_new"]]}
        if a.profile:
            where.add(p["sitewatch"])
        if where != {str(snap / "sitewatch")}:
            raise SystemExit(f"a step imported sitewatch from {where}, not the copy {snap}")
        info["code_where"] = "checked in every step"
        info["wall"] = time.perf_counter() - t_start
        info["date"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        if a.json:
            Path(a.json).write_text(json.dumps({"args": vars(a), "cmd": command(argv), **info},
                                               default=str, indent=1))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    text = build_report(a, command(argv), info)
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
