"""SIMULATED imagery: a synthetic multi-date, multiband image series of a launch site.

Everything the simulator writes is **simulated**.  It shows no real place and no real event:
it exists for sitewatch's demo, its tests and the evaluation of its change detection.  Every
file says so (GeoTIFF tag ``SIMULATED=true``, ``"simulated": true`` in the ground truth, the
README of the scenario folder).

:func:`simulate_scenario` renders a truth scene of a site (by default the built-in
``sohae-sim`` layout) on a fine 1 m grid, then, for every acquisition date, degrades it to a
3 m or a 10 m sensor grid by exact area averaging, with what real optical data has:

* hilly terrain (FFT fractal elevation, hill shading), mixed vegetation and bare soil whose
  greenness follows an annual cycle (low in winter, peak in July), roads and a railway;
* the site's parts drawn by kind (concrete pads, roofs, rails, a gantry tower and its shadow,
  bunkers, engine test stands with flame trenches);
* per-scene multiplicative band gains and offsets, an additive haze field strongest in blue,
  Gaussian sensor noise;
* clouds (smooth fractal fields, bright and white) and their shadows offset along the sun
  direction, marked in an Fmask band with slightly imperfect edges; many clear scenes, some
  partly cloudy and, when there are three or more 10 m dates, one almost fully cloudy;
* sub-pixel misregistration of the content (the georeference stays nominal), a random origin
  offset of the 3 m grids, and one 10 m scene cut by a swath edge;
* scripted events with dates derived from the span of the series (see
  :func:`sitewatch.sim.plan.script_events`).

The simulator is split by what each step does; this module writes the scenario folder and
re-exports the public names, so ``from sitewatch.sim.simulate import ...`` is all a user needs:

* :mod:`sitewatch.sim.scenario`: the public types (:class:`Scenario`, :class:`SimScene`,
  :class:`SimEvent`, :class:`SimulationError`), constants, and reading a folder back;
* :mod:`sitewatch.sim.plan`: the scripted events and the schedule of acquisitions;
* :mod:`sitewatch.sim.truth`: the static truth scene on a fine grid;
* :mod:`sitewatch.sim.render`: one acquisition (events painted, degraded to the sensor,
  clouds, noise, Fmask) and its GeoTIFF;
* :mod:`sitewatch.sim.simulate` (here): :func:`simulate_scenario`, the folder, the ground
  truth and the README.

Output folder layout::

    out_dir/site.geojson                        the site (Site.dumps())
    out_dir/scenes/SIM10_YYYYMMDDTHHMMSS.tif    10 m scenes
    out_dir/scenes/SIM3_YYYYMMDDTHHMMSS.tif     3 m scenes
    out_dir/ground_truth.json                   events and per-scene parameters
    out_dir/README.txt                          a plain statement of what this is

Each GeoTIFF is uint16 with 5 bands: reflectance x 10000 in bands 1-4 (descriptions
``blue``, ``green``, ``red``, ``nir``; scale 1e-4; tag ``wavelength`` in micrometres) and
Fmask codes in band 5 (``fmask``: 0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud,
255 fill).  Fill pixels hold 65535 (the dataset nodata) in the reflectance bands.  Output is
byte-for-byte deterministic for a given seed and set of arguments.

Examples
--------
>>> scenario = simulate_scenario("/tmp/sim", seed=1, n_dates_10m=6, n_dates_3m=2)  # doctest: +SKIP
>>> [e.kind for e in scenario.events]  # doctest: +SKIP
['construction', 'razing', 'transfer_structure_moved', 'vehicles_gathered', 'burn_scar']
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS as RioCRS
from shapely.geometry import mapping

from sitewatch import __version__
from sitewatch.imagery.geo import local_utm_crs, to_crs
from sitewatch.sim.plan import plan_scenes, require_parts, script_events
from sitewatch.sim.render import Painter, render_scene, write_scene_tif
from sitewatch.sim.scenario import (
    BAND_NAMES,
    EVENT_KINDS,
    FMASK_CLEAR,
    FMASK_CLOUD,
    FMASK_FILL,
    FMASK_SHADOW,
    FMASK_SNOW,
    FMASK_WATER,
    NODATA,
    REQUIRED_PARTS,
    SENSORS,
    WAVELENGTHS_UM,
    Scenario,
    SimEvent,
    SimScene,
    SimulationError,
    as_date,
    load_ground_truth,
    load_scenario,
)
from sitewatch.sim.truth import MARGIN, FineGrid, render_truth
from sitewatch.sites.site import Site, builtin_site, plain_json

__all__ = [
    "BAND_NAMES",
    "EVENT_KINDS",
    "FMASK_CLEAR",
    "FMASK_CLOUD",
    "FMASK_FILL",
    "FMASK_SHADOW",
    "FMASK_SNOW",
    "FMASK_WATER",
    "NODATA",
    "REQUIRED_PARTS",
    "WAVELENGTHS_UM",
    "Scenario",
    "SimEvent",
    "SimScene",
    "SimulationError",
    "load_ground_truth",
    "load_scenario",
    "simulate_scenario",
]

logger = logging.getLogger(__name__)

_FINE = 1.0  # metres: resolution of the truth scene (1.5 m for sites over _FINE_MAX_M)
_FINE_MAX_M = 2600.0  # widest truth frame rendered at 1 m
_MAX_SITE_M = 6000.0  # widest site boundary the simulator accepts
_PAD = 40.0  # extra metres of truth beyond the margin (for shifts and grid offsets)
_FILE_RE = re.compile(r"^SIM(10|3)_\d{8}T\d{6}\.tif$")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- output folder


def _prepare_out_dir(out_dir: Path) -> None:
    """Refuse a foreign non-empty folder; clear a previous scenario's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SimulationError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        gt = out_dir / "ground_truth.json"
        try:
            ok = json.loads(gt.read_text(encoding="utf-8")).get("simulated") is True
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise SimulationError(
                f"{out_dir}: folder is not empty and holds no scenario written by sitewatch's "
                "simulator (no ground_truth.json with \"simulated\": true); refusing to write "
                "there. Choose an empty or new folder."
            )
        scenes = out_dir / "scenes"
        if scenes.is_dir():
            for f in scenes.iterdir():
                if f.is_file() and _FILE_RE.match(f.name):
                    f.unlink()
        for name in ("ground_truth.json", "site.geojson", "README.txt"):
            (out_dir / name).unlink(missing_ok=True)
    (out_dir / "scenes").mkdir(parents=True, exist_ok=True)


def _event_json(e: SimEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "part": e.part,
        "parts": list(e.parts),
        "start": e.start.isoformat(),
        "end": e.end.isoformat() if e.end else None,
        "description": e.description,
        "stages": [{"date": d.isoformat(), "state": s} for d, s in e.stages],
        "geometry": plain_json(mapping(e.geometry)),
    }


def _readme(site: Site, seed: int, events: list[SimEvent], scenes: list[SimScene]) -> str:
    lines = [
        "SIMULATED DATA - NOT REAL IMAGERY",
        "",
        f"This folder was made by sitewatch {__version__} (sitewatch.sim.simulate) with seed"
        f" {seed}.",
        f"Every image of site {site.id!r} in scenes/ is synthetic: it shows no real place and",
        "no real event.  It exists for sitewatch's demo, tests and evaluation.",
        "",
        f"Scenes: {len(scenes)} ({sum(s.sensor == 'sim-10m' for s in scenes)} at 10 m, "
        f"{sum(s.sensor == 'sim-3m' for s in scenes)} at 3 m), "
        f"{scenes[0].acquired.date()} to {scenes[-1].acquired.date()}.",
        "GeoTIFF bands: 1 blue, 2 green, 3 red, 4 nir (reflectance x 10000), 5 fmask",
        "(0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill); nodata 65535.",
        "",
        "Scripted events (ground truth in ground_truth.json):",
    ]
    for e in events:
        end = e.end.isoformat() if e.end else "persists"
        lines.append(f"  {e.id} {e.kind} at {e.part}: {e.start.isoformat()} .. {end}")
        lines.append(f"     {e.description}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main entry


def simulate_scenario(
    out_dir: str | Path,
    *,
    site: Site | None = None,
    seed: int = 0,
    start: date = date(2024, 1, 10),
    n_dates_10m: int = 24,
    n_dates_3m: int = 8,
    interval_days: int = 15,
    progress: Callable[[int, int], None] | None = None,
) -> Scenario:
    """Write a SIMULATED image series of a site with scripted events and its ground truth.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write.  It must be new, empty, or a previous scenario folder (which is
        overwritten); anything else raises :class:`SimulationError`.
    site : Site, optional
        The site; default the built-in ``sohae-sim``.  It must have the parts of
        :data:`REQUIRED_PARTS`.
    seed : int
        Seed (>= 0); the output is byte-for-byte the same for the same arguments.
    start : date
        Date of the first 10 m acquisition.
    n_dates_10m : int
        Number of 10 m scenes (>= 2), one every ``interval_days``.
    n_dates_3m : int
        Number of 3 m scenes (>= 0), spread over the same span.
    interval_days : int
        Days between 10 m scenes (>= 1).
    progress : callable, optional
        Called as ``progress(done, total)`` after each scene is written.

    Returns
    -------
    Scenario
        The folder, site, scenes (sorted by time), events and ground-truth path.

    Raises
    ------
    SiteError
        When the site lacks a part the scripted events need.
    SimulationError
        On bad arguments or an ``out_dir`` that is not the simulator's to write.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SimulationError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if n_dates_10m < 2:
        raise SimulationError(f"n_dates_10m must be at least 2, got {n_dates_10m}")
    if n_dates_3m < 0:
        raise SimulationError(f"n_dates_3m must be >= 0, got {n_dates_3m}")
    if interval_days < 1:
        raise SimulationError(f"interval_days must be at least 1, got {interval_days}")
    if isinstance(start, datetime):
        start = as_date(start)
    site = site if site is not None else builtin_site("sohae-sim")
    require_parts(site)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)

    lon, lat = site.center
    pcrs = local_utm_crs(lon, lat)
    epsg = pcrs.to_epsg()
    rcrs = RioCRS.from_epsg(epsg) if epsg else RioCRS.from_wkt(pcrs.to_wkt())
    boundary = to_crs(site.boundary, "EPSG:4326", pcrs)
    bx0, by0, bx1, by1 = boundary.bounds
    widest = max(bx1 - bx0, by1 - by0)
    if widest > _MAX_SITE_M:
        raise SimulationError(
            f"site {site.id!r} is {widest / 1000:.1f} km across; the simulator renders sites up "
            f"to {_MAX_SITE_M / 1000:.0f} km"
        )
    ext = MARGIN + _PAD
    fine = _FINE if widest + 2 * ext <= _FINE_MAX_M else 1.5
    gl = math.floor(bx0 - ext)
    gt = math.ceil(by1 + ext)
    grid = FineGrid(gl, gt, math.ceil((bx1 + ext - gl) / fine),
                    math.ceil((gt - by0 + ext) / fine), fine)

    span = (n_dates_10m - 1) * interval_days
    events, plan = script_events(site, pcrs, start, span, np.random.default_rng([seed, 0]))
    logger.info("simulating %s (seed %d): %d x 10 m + %d x 3 m scenes, truth grid %dx%d",
                site.id, seed, n_dates_10m, n_dates_3m, grid.nx, grid.ny)
    truth = render_truth(site, pcrs, grid, plan, seed)
    painter = Painter(grid, plan, events, truth.tex)
    specs = plan_scenes(start, n_dates_10m, n_dates_3m, interval_days, seed)

    scenes: list[SimScene] = []
    scene_json: list[dict[str, Any]] = []
    total = len(specs)
    for k, spec in enumerate(specs):
        data, transform, params = render_scene(truth, painter, spec, boundary, seed,
                                               (lon, lat))
        prefix = SENSORS[spec.sensor]["prefix"]
        name = f"{prefix}_{spec.acquired.strftime('%Y%m%dT%H%M%S')}.tif"
        path = out_dir / "scenes" / name
        tags = {
            "ACQUISITION_TIME": _iso(spec.acquired),
            "TIFFTAG_DATETIME": spec.acquired.strftime("%Y:%m:%d %H:%M:%S"),
            "SENSOR": spec.sensor,
            "PLATFORM": "SITEWATCH-SIM",
            "SIMULATED": "true",
            "SITE": site.id,
            "SEED": str(seed),
            "TIFFTAG_IMAGEDESCRIPTION": "SIMULATED image made by sitewatch; not real imagery",
            "TIFFTAG_SOFTWARE": f"sitewatch {__version__} simulate",
        }
        write_scene_tif(path, data, transform, rcrs, tags)
        scene = SimScene(path, spec.acquired, spec.sensor, params["resolution"],
                         params["cloud_fraction"], (params["shift_px"][0], params["shift_px"][1]))
        scenes.append(scene)
        on_ground = [e.id for e in events if e.on_ground(spec.acquired)]
        scene_json.append({"file": f"scenes/{name}", "acquired": _iso(spec.acquired),
                           **params, "swath_edge": spec.swath, "events_on_ground": on_ground})
        logger.debug("wrote %s (cloud %.2f, shift %s)", path, params["cloud_fraction"],
                     params["shift_px"])
        if progress is not None:
            progress(k + 1, total)

    (out_dir / "site.geojson").write_text(site.dumps(), encoding="utf-8")
    gt_path = out_dir / "ground_truth.json"
    doc = {
        "simulated": True,
        "note": "SIMULATED data made by sitewatch's simulator (sitewatch.sim.simulate). The scenes "
                "show no real place and no real event; they exist for sitewatch's demo, tests "
                "and evaluation.",
        "generator": f"sitewatch {__version__}",
        "site": site.id,
        "seed": seed,
        "crs": f"EPSG:{epsg}" if epsg else pcrs.to_wkt(),
        "start": start.isoformat(),
        "interval_days": interval_days,
        "events": [_event_json(e) for e in events],
        "scenes": scene_json,
    }
    gt_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "README.txt").write_text(_readme(site, seed, events, scenes), encoding="utf-8")
    logger.info("simulated scenario written to %s", out_dir)
    return Scenario(out_dir, site, tuple(scenes), tuple(events), gt_path, seed)


