"""The static truth scene of a SIMULATED site on a fine (1 m) grid: terrain, vegetation,
water, roads and railway, and the site's parts drawn by kind (:func:`render_truth`);
the spectra and noise fields it is made of.  The events' changing objects are painted
per date by :mod:`sitewatch.sim.render`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
import rasterio.features
import scipy.fft
import shapely
from rasterio.transform import Affine
from scipy import ndimage, sparse
from shapely import affinity
from shapely.geometry import Point, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from sitewatch.imagery.geo import to_crs
from sitewatch.sim.plan import (
    SUN_AZ0,
    SUN_EL0,
    EventPlan,
    layout_test_stand,
    placed_footprint,
    rect,
    shadow_of,
)
from sitewatch.sites.site import Site

__all__ = [
    "MARGIN",
    "SHADE",
    "SPECTRA",
    "VEG_DELTA",
    "FineGrid",
    "Truth",
    "area_weights",
    "fractal",
    "render_truth",
    "sigmoid",
    "upsample",
]

MARGIN = 250.0  # metres of imagery around the site boundary
SHADE = 0.45  # reflectance factor in shadows
_GANTRY_SIZE = 12.0  # metres: side of the tower structure inside the gantry_tower part

# Reflectance spectra (blue, green, red, nir).
SPECTRA: dict[str, tuple[float, float, float, float]] = {
    "soil": (0.085, 0.125, 0.165, 0.225),
    "veg_dormant": (0.050, 0.070, 0.090, 0.190),
    "veg_peak": (0.030, 0.075, 0.040, 0.400),
    "conifer": (0.030, 0.050, 0.035, 0.230),
    "water": (0.060, 0.060, 0.040, 0.020),
    "concrete": (0.260, 0.290, 0.310, 0.330),
    "asphalt": (0.100, 0.110, 0.120, 0.140),
    "gravel": (0.170, 0.200, 0.230, 0.270),
    "ballast": (0.070, 0.080, 0.090, 0.110),
    "roof_gray": (0.300, 0.310, 0.320, 0.340),
    "roof_blue": (0.220, 0.180, 0.120, 0.200),
    "roof_green": (0.070, 0.120, 0.080, 0.140),
    "roof_red": (0.090, 0.100, 0.180, 0.220),
    "white": (0.450, 0.460, 0.460, 0.460),
    "trench": (0.040, 0.045, 0.050, 0.060),
    "fresh_soil": (0.130, 0.170, 0.220, 0.260),
    "rubble": (0.160, 0.180, 0.210, 0.250),
    "scorched": (0.030, 0.030, 0.035, 0.040),
    "vehicle_dark": (0.050, 0.070, 0.060, 0.130),
    "vehicle_bright": (0.400, 0.420, 0.420, 0.430),
}
# Materials of the static truth raster: 0 natural ground, 1 meadow (forced vegetation),
# then fixed spectra.
_NATURAL, _MEADOW = 0, 1
_MATERIALS: tuple[str, ...] = (
    "natural", "meadow", "water", "concrete", "asphalt", "gravel", "ballast", "roof_gray",
    "roof_blue", "roof_green", "roof_red", "white", "trench",
)
_MAT = {name: i for i, name in enumerate(_MATERIALS)}
_ROOFS_BY_KIND = {
    "assembly_building": "roof_gray",
    "rail_terminal": "roof_blue",
    "command_center": "roof_green",
    "observation_building": "roof_red",
}
_HEIGHTS_BY_KIND = {
    "assembly_building": 25.0,
    "rail_terminal": 12.0,
    "command_center": 10.0,
    "observation_building": 8.0,
    "radar": 15.0,
}

# --------------------------------------------------------------------------- noise fields


def fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float,
            fmin: float = 0.0) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian field with power spectrum ~ 1 / f**beta."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(nx).astype(np.float32)[None, :]
    amp = fy * fy + fx * fx + np.float32(fmin * fmin)
    amp[0, 0] = np.inf
    np.power(amp, np.float32(-beta / 4.0), out=amp)
    spec = np.empty(amp.shape, np.complex64)
    spec.real = rng.standard_normal(amp.shape, dtype=np.float32)
    spec.imag = rng.standard_normal(amp.shape, dtype=np.float32)
    spec *= amp
    del amp
    out = scipy.fft.irfft2(spec, s=(ny, nx), workers=1)
    del spec
    out = out.astype(np.float32, copy=False)
    out -= out.mean(dtype=np.float64)
    sd = float(out.std(dtype=np.float64))
    if sd > 0:
        out /= np.float32(sd)
    return out


def upsample(field_lr: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a low-resolution field, cropped to ``shape``."""
    up = ndimage.zoom(field_lr, factor, order=1, grid_mode=True, mode="nearest")
    return np.ascontiguousarray(up[: shape[0], : shape[1]], dtype=np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


# --------------------------------------------------------------------------- the fine grid


class FineGrid:
    """The fine truth grid (north-up, in the site's UTM CRS)."""

    def __init__(self, left: float, top: float, nx: int, ny: int, res: float):
        self.left, self.top, self.nx, self.ny, self.res = left, top, nx, ny, res
        self.transform = Affine(res, 0.0, left, 0.0, -res, top)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    def rasterize(self, shapes: Iterable[tuple[BaseGeometry, int]]) -> np.ndarray:
        items = [(mapping(g), v) for g, v in shapes if g is not None and not g.is_empty]
        if not items:
            return np.zeros(self.shape, np.uint8)
        return rasterio.features.rasterize(
            items, out_shape=self.shape, transform=self.transform, fill=0, dtype="uint8"
        )

    def window_mask(self, geom: BaseGeometry) -> tuple[slice, slice, np.ndarray] | None:
        """Row/column slices around ``geom`` and its boolean mask there (None when outside)."""
        if geom.is_empty:
            return None
        x0, y0, x1, y1 = geom.bounds
        c0 = max(0, math.floor((x0 - self.left) / self.res) - 1)
        c1 = min(self.nx, math.ceil((x1 - self.left) / self.res) + 1)
        r0 = max(0, math.floor((self.top - y1) / self.res) - 1)
        r1 = min(self.ny, math.ceil((self.top - y0) / self.res) + 1)
        if c1 <= c0 or r1 <= r0:
            return None
        tr = Affine(self.res, 0.0, self.left + c0 * self.res, 0.0, -self.res,
                    self.top - r0 * self.res)
        m = rasterio.features.rasterize(
            [(mapping(geom), 1)], out_shape=(r1 - r0, c1 - c0), transform=tr, fill=0,
            dtype="uint8",
        ).astype(bool)
        if not m.any():
            return None
        return slice(r0, r1), slice(c0, c1), m

    def centers(self, rs: slice, cs: slice) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (x row vector, y column vector) of pixel centres in a window."""
        xs = self.left + (np.arange(cs.start, cs.stop) + 0.5) * self.res
        ys = self.top - (np.arange(rs.start, rs.stop) + 0.5) * self.res
        return xs[None, :], ys[:, None]


def area_weights(n_out: int, start: float, step: float, n_fine: int) -> sparse.csr_matrix:
    """Sparse (n_out, n_fine) matrix averaging fine cells over output cells.

    Output cell ``i`` covers fine coordinates ``[start + i*step, start + (i+1)*step]``
    (fine cell ``k`` covers ``[k, k+1]``); weights are the overlap lengths over ``step``.
    """
    a = start + step * np.arange(n_out, dtype=np.float64)
    b = a + step
    k0 = np.floor(a).astype(np.int64)
    m = math.ceil(step) + 2
    cols = k0[:, None] + np.arange(m)[None, :]
    w = np.minimum(b[:, None], cols + 1) - np.maximum(a[:, None], cols)
    w = np.clip(w, 0.0, None) / step
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    keep = w > 1e-12
    if cols[keep].min() < 0 or cols[keep].max() >= n_fine:
        raise AssertionError("sensor grid reaches beyond the truth grid")  # a bug, not input
    return sparse.csr_matrix(
        (w[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n_out, n_fine)
    )


# --------------------------------------------------------------------------- the truth scene


@dataclass
class Truth:
    grid: FineGrid
    a: np.ndarray  # (4, ny, nx) reflectance that does not follow the season
    g: np.ndarray  # (ny, nx) seasonal amplitude; reflectance = a + season * g * VEG_DELTA
    water: np.ndarray  # (ny, nx) float32 0/1
    tex: np.ndarray  # (ny, nx) unit-variance texture


VEG_DELTA = (np.array(SPECTRA["veg_peak"], np.float32)
             - np.array(SPECTRA["veg_dormant"], np.float32))


def _roads(site: Site, crs: Any, frame: tuple[float, float, float, float],
           rng: np.random.Generator) -> list[BaseGeometry]:
    """Road centre lines: a spanning tree over the parts' gates plus an entry road."""
    hubs = [p for p in site.placed_parts()
            if p.kind in ("assembly_building", "rail_terminal", "support_area",
                          "engine_test_stand", "fuel_storage", "command_center",
                          "storage_area", "launch_pad", "observation_building", "radar")]
    centre = to_crs(site.boundary, "EPSG:4326", crs).centroid
    gates = []
    for p in hubs:
        fp = placed_footprint(p, crs)
        gates.append(nearest_points(fp.exterior if fp.geom_type == "Polygon"
                                                else fp.boundary, centre)[0])
    lines: list[BaseGeometry] = []

    def wiggly(p0: Point, p1: Point) -> BaseGeometry:
        n = 12
        t = np.linspace(0.0, 1.0, n)
        dx, dy = p1.x - p0.x, p1.y - p0.y
        d = math.hypot(dx, dy) or 1.0
        amp = 0.06 * d * rng.uniform(-1.0, 1.0)
        off = amp * np.sin(np.pi * t)
        xs = p0.x + dx * t - dy / d * off
        ys = p0.y + dy * t + dx / d * off
        return shapely.LineString(np.column_stack([xs, ys]))

    if gates:
        # Prim's minimum spanning tree over the gates.
        done, todo = [0], list(range(1, len(gates)))
        while todo:
            best = min((gates[i].distance(gates[j]), i, j) for i in done for j in todo)
            _, i, j = best
            lines.append(wiggly(gates[i], gates[j]))
            done.append(j)
            todo.remove(j)
        south = min(range(len(gates)), key=lambda k: gates[k].y)
        x = gates[south].x + rng.uniform(-150.0, 150.0)
        lines.append(wiggly(Point(x, frame[1] - 10.0), gates[south]))
    # A second, through road across the frame.
    y = centre.y + rng.uniform(-300.0, 300.0)
    lines.append(wiggly(Point(frame[0] - 10.0, y), Point(frame[2] + 10.0,
                                                         y + rng.uniform(-200.0, 200.0))))
    return lines


def render_truth(site: Site, crs: Any, grid: FineGrid, plan: EventPlan, seed: int) -> Truth:
    """Render the static truth scene (everything but the events' changing objects)."""
    rng = np.random.default_rng([seed, 1])
    ny, nx = grid.shape
    frame = (grid.left, grid.top - ny * grid.res, grid.left + nx * grid.res, grid.top)
    boundary = to_crs(site.boundary, "EPSG:4326", crs)
    _, by0, bx1, by1 = boundary.bounds

    shapes: list[tuple[BaseGeometry, int]] = []
    shadows: list[BaseGeometry] = []
    # Water: a reservoir in the south-east margin.
    pond = Point(bx1 + 0.55 * MARGIN, by0 + 0.3 * (by1 - by0)).buffer(1.0, quad_segs=32)
    pond = affinity.rotate(affinity.scale(pond, 70.0, 140.0), rng.uniform(-30.0, 30.0))
    shapes.append((pond, _MAT["water"]))
    # Roads and the railway to the rail terminal.
    for line in _roads(site, crs, frame, rng):
        shapes.append((line.buffer(3.5), _MAT["asphalt"]))
    parts = {p.name: p for p in site.placed_parts()}
    fps = {n: placed_footprint(p, crs) for n, p in parts.items()}
    terminals = [n for n, p in parts.items() if p.kind == "rail_terminal"]
    for n in terminals:
        t = fps[n]
        tx0, ty0, tx1, ty1 = t.bounds
        tyc = (ty0 + ty1) / 2
        rail = shapely.LineString([(frame[0] - 20.0, tyc - 180.0), (tx0 - 200.0, tyc - 40.0),
                                   (tx0 - 60.0, tyc), (tx1 + 10.0, tyc)])
        shapes.append((rail.buffer(4.0), _MAT["ballast"]))
        asm = [m for m, p in parts.items() if p.kind == "assembly_building"]
        if asm:
            a_pt = nearest_points(fps[asm[0]], Point(tx1, tyc))[0]
            spur = shapely.LineString([(tx1, tyc), ((tx1 + a_pt.x) / 2, tyc),
                                       (a_pt.x, a_pt.y)])
            shapes.append((spur.buffer(4.0), _MAT["ballast"]))

    order = ["support_area", "storage_area", "road", "launch_pad", "fuel_storage",
             "engine_test_stand", "helipad", "rail_line", "transfer_structure",
             "assembly_building", "rail_terminal", "command_center", "observation_building",
             "radar", "other", "gantry_tower"]
    ranked = sorted(parts.values(),
                    key=lambda p: (order.index(p.kind) if p.kind in order else 99, p.name))
    for p in ranked:
        fp = fps[p.name]
        x0, y0, x1, y1 = fp.bounds
        w, h = x1 - x0, y1 - y0
        if p.kind == "support_area":
            ring = fp.difference(fp.buffer(-6.0))
            shapes.append((ring, _MAT["gravel"]))
            for cx, cy in ((x0 + 18, y0 + 18), (x1 - 18, y1 - 18), (x0 + 18, y1 - 18)):
                shed = rect(cx, cy, 10.0, 15.0).intersection(fp)
                shapes.append((shed, _MAT["roof_red" if cx < x1 - 18 else "roof_blue"]))
                shadows.append(shadow_of(shed, 5.0))
        elif p.kind in ("storage_area", "helipad"):
            shapes.append((fp, _MAT["gravel" if p.kind == "storage_area" else "concrete"]))
        elif p.kind == "road":
            shapes.append((fp, _MAT["asphalt"]))
        elif p.kind == "launch_pad":
            shapes.append((fp, _MAT["concrete"]))
        elif p.kind == "fuel_storage":
            shapes.append((fp, _MAT["gravel"]))
            for k in range(3):
                if h >= w:
                    b = rect((x0 + x1) / 2, y0 + h * (k + 0.5) / 3, 0.6 * w, 0.18 * h)
                else:
                    b = rect(x0 + w * (k + 0.5) / 3, (y0 + y1) / 2, 0.18 * w, 0.6 * h)
                shapes.append((b, _MAT["concrete"]))
                shadows.append(shadow_of(b, 4.0))
        elif p.kind == "engine_test_stand":
            lay = (plan.stand_layout if p.name == "vertical_engine_test_stand"
                   else layout_test_stand(fp, horizontal="horizontal" in p.name))
            shapes.append((lay["pad"], _MAT["concrete"]))
            shapes.append((lay["trench"], _MAT["trench"]))
            shapes.append((lay["structure"], _MAT["white"]))
            shadows.append(shadow_of(lay["structure"], 30.0))
        elif p.kind == "rail_line":
            shapes.append((fp, _MAT["ballast"]))
        elif p.kind == "transfer_structure":
            # The structure itself is drawn per scene; its ground is a concrete apron + rail.
            shapes.append((fp, _MAT["concrete"]))
            if p.name == "transfer_structure":
                shapes.append((plan.e3_rail_strip, _MAT["ballast"]))
        elif p.kind == "gantry_tower":
            shapes.append((fp, _MAT["concrete"]))
            c = fp.centroid
            tower = rect(c.x, c.y, _GANTRY_SIZE, _GANTRY_SIZE)
            shapes.append((tower, _MAT["white"]))
            shadows.append(shadow_of(tower, 50.0))
        else:  # buildings and anything else: a roof with its shadow
            roof = _ROOFS_BY_KIND.get(p.kind, "roof_gray")
            shapes.append((fp, _MAT[roof]))
            shadows.append(shadow_of(fp, _HEIGHTS_BY_KIND.get(p.kind, 8.0)))
    # Ground under the events' objects: meadow before E1's clearing and E5's scar, a gravel
    # yard under E2's building.
    # The meadows are rounded and larger than the events' areas, so as not to outline them.
    compound = fps.get("construction_compound")
    e1_meadow = plan.e1_clearing.buffer(15.0)
    if compound is not None:
        e1_meadow = e1_meadow.intersection(compound.buffer(-6.0)).union(plan.e1_clearing)
    shapes.append((e1_meadow, _MEADOW))
    shapes.append((plan.e2_building.buffer(4.0), _MAT["gravel"]))
    fan_c = plan.e5_fan.centroid
    e5_meadow = shapely.union(fan_c.buffer(0.9 * plan.e5_radius), plan.e5_fan.buffer(8.0))
    shapes.append((e5_meadow.difference(plan.stand_layout["pad"])
                   .difference(plan.stand_layout["trench"]), _MEADOW))

    mat = grid.rasterize(shapes)
    shade = grid.rasterize((s, 1) for s in shadows)

    # Natural ground: low-frequency fields at 4 m, upsampled.
    k = 4
    lr = (math.ceil(ny / k) + 1, math.ceil(nx / k) + 1)
    elev = 25.0 * fractal(rng, lr, 4.0, fmin=1.0 / 400.0)
    gy, gx = np.gradient(elev, k * grid.res)
    az, el = math.radians(SUN_AZ0), math.radians(SUN_EL0)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    # rows run south: d(elev)/d(north) = -gy
    hs = (-gx * sx + gy * sy + sz) / np.sqrt(gx * gx + gy * gy + 1.0) / sz
    hs = np.clip(hs, 0.35, 1.6).astype(np.float32)
    veg = sigmoid(1.8 * fractal(rng, lr, 3.0) + 0.8 - 0.01 * elev)
    ever = sigmoid(2.0 * fractal(rng, lr, 3.0) - 1.0)
    soilb = 1.0 + 0.12 * fractal(rng, lr, 2.4)
    btr = Affine(k * grid.res, 0.0, grid.left, 0.0, -k * grid.res, grid.top)
    grid_inside = rasterio.features.rasterize([(mapping(boundary), 1)], out_shape=lr,
                                              transform=btr, fill=0, dtype="uint8")
    inside = ndimage.gaussian_filter(grid_inside.astype(np.float32), 25.0 / k)
    ever *= 1.0 - 0.8 * inside
    veg *= 1.0 - 0.25 * inside
    hs_f = upsample(hs, k, grid.shape)
    veg_f = upsample(veg, k, grid.shape)
    ever_f = upsample(ever, k, grid.shape)
    soil_f = upsample(soilb, k, grid.shape)
    del elev, gx, gy, hs, veg, ever, soilb, inside

    tex = fractal(rng, grid.shape, 1.6)
    meadow = mat == _MEADOW
    veg_f[meadow] = np.maximum(veg_f[meadow], 0.75)
    ever_f[meadow] *= 0.2
    natural = (mat == _NATURAL) | meadow
    del meadow
    # Per-pixel weights of the natural ground's three spectra (zero on built surfaces), in
    # place to keep the memory modest: reflectance = soil*w_soil + conifer*w_con + dormant*g
    # (+ season * g * (peak - dormant)).
    ntex = hs_f
    ntex *= 1.0 + 0.10 * tex
    ntex *= natural
    shade_f = np.where(shade > 0, np.float32(SHADE), np.float32(1.0))
    ntex *= shade_f
    w_soil = 1.0 - veg_f
    w_soil *= soil_f
    w_soil *= ntex
    del soil_f
    w_con = veg_f * ever_f
    w_con *= ntex
    g = veg_f  # veg * (1 - ever) * ntex, reusing veg_f's memory
    g *= ntex
    g -= w_con
    del ever_f, ntex, veg_f
    built_tex = 1.0 + 0.03 * tex
    built_tex *= ~natural
    built_tex *= shade_f
    del shade_f, natural
    lut = np.array([SPECTRA.get(m, (0.0, 0.0, 0.0, 0.0)) for m in _MATERIALS], np.float32)
    a = np.empty((4, *grid.shape), np.float32)
    for b in range(4):
        ab = a[b]
        np.take(lut[:, b], mat, out=ab)
        ab *= built_tex
        ab += w_soil * SPECTRA["soil"][b]
        ab += w_con * SPECTRA["conifer"][b]
        ab += g * SPECTRA["veg_dormant"][b]
    del w_soil, w_con, built_tex
    water = (mat == _MAT["water"]).astype(np.float32)
    return Truth(grid, a, g, water, tex)


