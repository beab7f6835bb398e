"""What happens in a SIMULATED scenario, and when: the five scripted events (their dates,
their geometry on the site and what they paint, :func:`script_events`) and the schedule
of acquisitions with their clouds and swath edge (:func:`plan_scenes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SiteError
from sitewatch.imagery.geo import to_crs
from sitewatch.sim.scenario import REQUIRED_PARTS, SENSORS, SimEvent, SimulationError
from sitewatch.sites.site import Part, Site

__all__ = [
    "SUN_AZ0",
    "SUN_EL0",
    "EventPlan",
    "SceneSpec",
    "layout_test_stand",
    "placed_footprint",
    "plan_scenes",
    "rect",
    "require_parts",
    "script_events",
    "sector",
    "shadow_of",
    "to_lonlat",
]

SUN_AZ0, SUN_EL0 = 155.0, 40.0  # fixed sun of the truth scene's shadows and hill shading


# --------------------------------------------------------------------------- geometry


def shadow_of(geom: BaseGeometry, height: float, az: float = SUN_AZ0,
              el: float = SUN_EL0) -> BaseGeometry:
    """The ground shadow of a prism of ``height`` metres standing on ``geom``."""
    length = height / math.tan(math.radians(el))
    a = math.radians(az + 180.0)
    moved = affinity.translate(geom, length * math.sin(a), length * math.cos(a))
    return shapely.union(geom, moved).convex_hull.difference(geom)


def rect(cx: float, cy: float, w: float, h: float) -> Polygon:
    return box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def sector(apex: tuple[float, float], direction: float, radius: float,
           half_angle: float = 40.0, n: int = 24) -> Polygon:
    """A circular sector with its apex at ``apex`` opening towards ``direction`` (deg from N)."""
    pts = [apex]
    for a in np.linspace(direction - half_angle, direction + half_angle, n):
        r = math.radians(a)
        pts.append((apex[0] + radius * math.sin(r), apex[1] + radius * math.cos(r)))
    return Polygon(pts)


def to_lonlat(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    return shapely.set_precision(to_crs(geom, crs, "EPSG:4326"), 1e-7)


def placed_footprint(part: Part, crs: Any) -> BaseGeometry:
    """A placed part's footprint in ``crs`` (the simulator draws only placed parts)."""
    fp = part.footprint(crs)
    if fp is None:
        raise SimulationError(f"part {part.name!r} is not placed; the simulator cannot draw it")
    return fp


# --------------------------------------------------------------------------- events


@dataclass
class EventPlan:
    """UTM geometry of what the events paint (internal to the simulator)."""

    e1_clearing: Polygon
    e1_building: Polygon
    e2_building: Polygon
    e3_parked: Polygon
    e3_arrival: Polygon
    e3_rail_strip: Polygon
    e4_slots: list[Polygon]
    e4_bright: list[bool]
    e4_area: Polygon
    e5_fan: Polygon
    e5_apex: tuple[float, float]
    e5_radius: float
    stand_layout: dict[str, Any]
    e1_roof_date: date


def require_parts(site: Site) -> None:
    missing = []
    for name, why in REQUIRED_PARTS.items():
        try:
            p = site.part(name)
        except SiteError:
            missing.append(f"{name!r} (for {why})")
            continue
        if not p.placed:
            missing.append(f"{name!r} (unplaced; needed for {why})")
    if missing:
        raise SiteError(
            f"site {site.id!r} cannot be simulated: it lacks part(s) "
            + ", ".join(missing)
            + " that the scripted events use"
        )


def layout_test_stand(fp: BaseGeometry, horizontal: bool) -> dict[str, Any]:
    """Concrete pad, stand structure, flame trench and exhaust direction of a test stand."""
    x0, y0, x1, y1 = fp.bounds
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if horizontal:  # exhaust to the east
        pad = box(x0 + 0.05 * w, cy - 0.25 * h, x0 + 0.45 * w, cy + 0.25 * h)
        pc = pad.centroid
        structure = rect(pc.x, pc.y, 0.12 * min(w, h), 0.25 * h)
        trench = box(pc.x, cy - 3.5, x0 + 0.6 * w, cy + 3.5)
        apex, direction = (x0 + 0.6 * w, cy), 90.0
    else:  # vertical stand, flame trench exiting south
        pad = box(cx - 0.25 * w, y1 - 0.45 * h, cx + 0.25 * w, y1 - 0.05 * h)
        pc = pad.centroid
        structure = rect(pc.x, pc.y, 0.15 * min(w, h), 0.15 * min(w, h))
        trench = box(cx - 4.0, y1 - 0.55 * h, cx + 4.0, pc.y)
        apex, direction = (cx, y1 - 0.55 * h), 180.0
    return {"pad": pad.intersection(fp), "structure": structure, "trench": trench,
            "apex": apex, "direction": direction}


def script_events(site: Site, crs: Any, first: date, span_days: int,
                  rng: np.random.Generator) -> tuple[list[SimEvent], EventPlan]:
    """The five scripted events, dated by fractions of the series span.

    E1 construction (clearing at 15 % of the span, roof at 40 %, persistent), E2 razing
    (85 %, persistent), E3 transfer structure at the tower (55 % to 72 %), E4 vehicles on
    the pad (50 % to 76 %), E5 burn scar (30 %, fading over 60 days).  Every start is at
    least one day after ``first``.
    """
    def at(frac: float) -> date:
        return first + timedelta(days=max(1, round(frac * span_days)))

    fp = {n: placed_footprint(site.part(n), crs) for n in REQUIRED_PARTS}

    # E1: a 60 x 40 m building on a cleared 70 x 50 m plot in the construction compound.
    c = fp["construction_compound"].centroid
    e1_building = rect(c.x, c.y, 60.0, 40.0)
    e1_clearing = rect(c.x, c.y, 70.0, 50.0)
    e1_start = at(0.15)
    e1_roof = max(at(0.40), e1_start + timedelta(days=1))

    # E2: a 50 x 40 m building in the support compound, razed.
    c = fp["support_compound"].centroid
    e2_building = rect(c.x, c.y, 50.0, 40.0)
    e2_start = at(0.85)

    # E3: the transfer structure rolls along the rail from its parked spot to the tower.
    parked = fp["transfer_structure"]
    pc, tc = parked.centroid, fp["gantry_tower"].centroid
    vx, vy = tc.x - pc.x, tc.y - pc.y
    dist = math.hypot(vx, vy) or 1.0
    ux, uy = vx / dist, vy / dist
    # Length of the structure along the move: its extent projected on the direction.
    pxs = np.asarray(parked.exterior.coords) if parked.geom_type == "Polygon" else np.asarray(
        parked.envelope.exterior.coords)
    proj = (pxs[:, 0] - pc.x) * ux + (pxs[:, 1] - pc.y) * uy
    length = float(proj.max() - proj.min())
    travel = dist - length / 2.0  # its leading edge reaches the tower's centre
    arrival = affinity.translate(parked, ux * travel, uy * travel)
    rail = fp["pad_rail"]
    rx0, ry0, rx1, ry1 = rail.bounds
    rail_width = max(4.0, min(rx1 - rx0, ry1 - ry0))
    strip = shapely.LineString(
        [(pc.x - ux * length, pc.y - uy * length), (pc.x + ux * length, pc.y + uy * length)]
    ).buffer(rail_width / 2.0, cap_style="flat").intersection(parked)
    e3_start, e3_end = at(0.55), at(0.72)
    if e3_end <= e3_start:
        e3_end = e3_start + timedelta(days=1)

    # E4: up to 20 vehicles (3 x 8 m) parked in rows on the south-west of the pad.
    px0, py0 = fp["launch_pad"].bounds[:2]
    slots, bright = [], []
    for row in range(4):
        for col in range(5):
            jx, jy = rng.uniform(-0.4, 0.4, 2)
            x = px0 + 8.0 + col * 4.5 + 1.5 + jx
            y = py0 + 8.0 + row * 10.0 + 4.0 + jy
            slots.append(rect(x, y, 3.0, 8.0))
            bright.append(bool(rng.random() < 0.2))
    e4_area = box(px0 + 7.0, py0 + 7.0, px0 + 9.0 + 4 * 4.5 + 3.0, py0 + 9.0 + 4 * 10.0)
    e4_area = e4_area.intersection(fp["launch_pad"])
    e4_start, e4_end = at(0.50), at(0.76)
    if e4_end <= e4_start:
        e4_end = e4_start + timedelta(days=1)

    # E5: a fan of scorched ground below the vertical test stand's flame trench.
    layout = layout_test_stand(fp["vertical_engine_test_stand"], horizontal=False)
    sy0, sy1 = fp["vertical_engine_test_stand"].bounds[1::2]
    radius = float(np.clip(0.55 * (sy1 - sy0), 40.0, 70.0))
    fan = sector(layout["apex"], layout["direction"], radius, half_angle=42.0)
    e5_start = at(0.30)
    e5_end = e5_start + timedelta(days=60)

    plan = EventPlan(e1_clearing, e1_building, e2_building, parked, arrival, strip, slots,
                     bright, e4_area, fan, layout["apex"], radius, layout, e1_roof)

    def touched(geom: BaseGeometry, main: str) -> tuple[str, ...]:
        names = [main]
        for p in site.placed_parts():
            if p.name == main:
                continue
            inter = placed_footprint(p, crs).intersection(geom).area
            if inter > max(1.0, 0.001 * geom.area):
                names.append(p.name)
        return tuple(names)

    e3_geom = shapely.union(parked, arrival)
    events = [
        SimEvent(
            "E1", "construction", "construction_compound", e1_start, None,
            "SIMULATED: a 70 x 50 m plot in the construction compound is cleared to bare soil; "
            f"from {e1_roof.isoformat()} a new roofed building (60 x 40 m) stands on it.",
            to_lonlat(e1_clearing, crs), touched(e1_clearing, "construction_compound"),
            ((e1_start, "plot cleared to bare soil"), (e1_roof, "roofed building stands")),
        ),
        SimEvent(
            "E2", "razing", "support_compound", e2_start, None,
            "SIMULATED: a 50 x 40 m building in the support compound is razed; rubble and bare "
            "soil remain.",
            to_lonlat(e2_building, crs), touched(e2_building, "support_compound"),
            ((e2_start, "razed"),),
        ),
        SimEvent(
            "E3", "transfer_structure_moved", "transfer_structure", e3_start, e3_end,
            "SIMULATED: the rail-mounted transfer structure rolls along the pad rail from its "
            "parked spot to the gantry tower and later returns.",
            to_lonlat(e3_geom, crs), touched(e3_geom, "transfer_structure"),
            ((e3_start, "at the gantry tower"),),
        ),
        SimEvent(
            "E4", "vehicles_gathered", "launch_pad", e4_start, e4_end,
            "SIMULATED: vehicles (3 x 8 m) gather in a growing cluster on the launch pad "
            "around the transfer structure's move, then leave.",
            to_lonlat(e4_area, crs), touched(e4_area, "launch_pad"),
            ((e4_start, "first vehicles"),),
        ),
        SimEvent(
            "E5", "burn_scar", "vertical_engine_test_stand", e5_start, e5_end,
            "SIMULATED: an engine test scorches a fan of vegetation below the vertical test "
            "stand's flame trench (dark, low NIR); the scar fades over about two months.",
            to_lonlat(fan, crs), touched(fan, "vertical_engine_test_stand"),
            ((e5_start, "fresh burn scar"),),
        ),
    ]
    return events, plan


# --------------------------------------------------------------------------- acquisitions


@dataclass
class SceneSpec:
    sensor: str
    acquired: datetime
    index: int  # index among the scenes of its sensor
    cloud_target: float = 0.0
    swath: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def plan_scenes(start: date, n10: int, n3: int, interval: int, seed: int) -> list[SceneSpec]:
    rng = np.random.default_rng([seed, 2])
    span = (n10 - 1) * interval
    specs: list[SceneSpec] = []
    for i in range(n10):
        cfg = SENSORS["sim-10m"]
        minutes = cfg["hour"] * 60 + rng.uniform(-cfg["jitter_min"], cfg["jitter_min"])
        t = datetime.combine(start + timedelta(days=i * interval), time(0), UTC)
        specs.append(SceneSpec("sim-10m", t + timedelta(seconds=round(minutes * 60)), i))
    used: set[date] = set()
    for j in range(n3):
        cfg = SENSORS["sim-3m"]
        day = round((j + 0.5) * span / n3 + rng.uniform(-0.25, 0.25) * span / n3)
        day = min(max(day, 1), max(span, 1))
        d = start + timedelta(days=day)
        while d in used:
            d += timedelta(days=1)
        used.add(d)
        minutes = cfg["hour"] * 60 + rng.uniform(-cfg["jitter_min"], cfg["jitter_min"])
        t = datetime.combine(d, time(0), UTC) + timedelta(seconds=round(minutes * 60))
        specs.append(SceneSpec("sim-3m", t, j))
    # Clouds: many clear, some partly cloudy, one 10 m scene almost fully cloudy.  The first
    # 10 m scene is clear: every event has a clear "before".
    tens = [s for s in specs if s.sensor == "sim-10m"]
    full = int(rng.integers(1, n10 - 1)) if n10 >= 3 else -1
    swath_choices = [i for i in range(1, n10) if i != full]
    swath = swath_choices[int(rng.integers(len(swath_choices)))] if swath_choices else -1
    for s in specs:
        u = rng.random()
        if s.sensor == "sim-10m" and s.index == 0:
            s.cloud_target = 0.0
        elif s.sensor == "sim-10m" and s.index == full:
            s.cloud_target = float(rng.uniform(0.93, 0.99))
        elif u < 0.6:
            s.cloud_target = float(rng.uniform(0.0, 0.03)) if u < 0.2 else 0.0
        else:
            s.cloud_target = float(rng.uniform(0.10, 0.40))
    if swath >= 0:
        tens[swath].swath = True
    specs.sort(key=lambda s: (s.acquired, s.sensor))
    return specs


