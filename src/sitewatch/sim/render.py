"""One SIMULATED acquisition: the events of its date painted on the truth scene
(:class:`Painter`), degraded to the sensor's grid by exact area averaging with
misregistration, gains, haze, clouds and their shadows, noise and an Fmask band
(:func:`render_scene`), and written as a GeoTIFF (:func:`write_scene_tif`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from sitewatch.sim.plan import EventPlan, SceneSpec, shadow_of
from sitewatch.sim.scenario import (
    BAND_NAMES,
    FMASK_CLEAR,
    FMASK_CLOUD,
    FMASK_FILL,
    FMASK_SHADOW,
    FMASK_WATER,
    NODATA,
    SENSORS,
    WAVELENGTHS_UM,
    SimEvent,
)
from sitewatch.sim.truth import (
    MARGIN,
    SHADE,
    SPECTRA,
    VEG_DELTA,
    FineGrid,
    Truth,
    area_weights,
    fractal,
    sigmoid,
)

__all__ = [
    "PaintOp",
    "Painter",
    "render_scene",
    "season_phase",
    "sun_position",
    "write_scene_tif",
]

def season_phase(d: date) -> float:
    """Greenness phase 0 (mid-January) .. 1 (mid-July)."""
    doy = d.timetuple().tm_yday
    s = 0.5 * (1.0 - math.cos(2.0 * math.pi * (doy - 20) / 365.25))
    return s**1.3


def sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate sun (elevation, azimuth) in degrees; azimuth clockwise from north."""
    doy = when.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    hours = when.hour + when.minute / 60.0 + when.second / 3600.0 + lon / 15.0
    h = math.radians(15.0 * (hours - 12.0))
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(h)
    el = math.asin(max(-1.0, min(1.0, sin_el)))
    az = math.atan2(math.sin(h), math.cos(h) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    return math.degrees(el), (math.degrees(az) + 180.0) % 360.0


# --------------------------------------------------------------------------- per-scene ops


@dataclass
class PaintOp:
    """A paint operation on a window of the fine grid."""

    rs: slice
    cs: slice
    mask: np.ndarray  # bool, or float alpha for "blend"
    kind: str  # "set", "blend" or "shade"
    spec: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    factor: float = 1.0


class Painter:
    """Builds, per date, the paint operations of the events on the ground."""

    def __init__(self, grid: FineGrid, plan: EventPlan, events: list[SimEvent], tex: np.ndarray):
        self.grid, self.plan, self.tex = grid, plan, tex
        self.events = {e.id: e for e in events}
        wm = grid.window_mask
        self.m_e1_clear = wm(plan.e1_clearing)
        self.m_e1_bld = wm(plan.e1_building)
        self.m_e1_shadow = wm(shadow_of(plan.e1_building, 10.0))
        self.m_e2_bld = wm(plan.e2_building)
        self.m_e2_shadow = wm(shadow_of(plan.e2_building, 9.0))
        self.m_e3_parked = wm(plan.e3_parked)
        self.m_e3_parked_shadow = wm(shadow_of(plan.e3_parked, 30.0))
        self.m_e3_arrival = wm(plan.e3_arrival)
        self.m_e3_arrival_shadow = wm(shadow_of(plan.e3_arrival, 30.0))
        self.m_e4 = [wm(s) for s in plan.e4_slots]
        self.m_e4_shadow = [wm(shadow_of(s, 3.0)) for s in plan.e4_slots]
        fan = wm(plan.e5_fan)
        self.e5_alpha: tuple[slice, slice, np.ndarray] | None = None
        if fan is not None:
            rs, cs, m = fan
            xs, ys = grid.centers(rs, cs)
            r = np.hypot(xs - plan.e5_apex[0], ys - plan.e5_apex[1]) / plan.e5_radius
            soft = ndimage.gaussian_filter(m.astype(np.float32), 1.0)
            alpha = soft * np.clip(1.2 - 0.3 * r, 0.85, 1.0) * (1.0 + 0.05 * tex[rs, cs])
            self.e5_alpha = (rs, cs, np.clip(alpha, 0.0, 1.0).astype(np.float32))

    @staticmethod
    def _set(m: tuple[slice, slice, np.ndarray] | None, name: str) -> list[PaintOp]:
        return [] if m is None else [PaintOp(m[0], m[1], m[2], "set", SPECTRA[name])]

    @staticmethod
    def _shade(m: tuple[slice, slice, np.ndarray] | None) -> list[PaintOp]:
        return [] if m is None else [PaintOp(m[0], m[1], m[2], "shade", factor=SHADE)]

    def ops(self, d: date) -> list[PaintOp]:
        """Paint operations for the ground on date ``d``, in painting order."""
        ev, plan = self.events, self.plan
        ground: list[PaintOp] = []
        roofs: list[PaintOp] = []
        shades: list[PaintOp] = []
        # E5 burn scar (ground level, fading).
        e5 = ev["E5"]
        if e5.on_ground(d) and self.e5_alpha is not None:
            assert e5.end is not None
            frac = (d - e5.start).days / max(1, (e5.end - e5.start).days)
            rs, cs, alpha = self.e5_alpha
            # Dark for weeks, then fading as the vegetation grows back.
            ground.append(PaintOp(rs, cs, alpha * (1.0 - 0.85 * frac**3), "blend",
                                  SPECTRA["scorched"]))
        # E1 construction.
        e1 = ev["E1"]
        if e1.on_ground(d):
            ground += self._set(self.m_e1_clear, "fresh_soil")
            if d >= plan.e1_roof_date:
                roofs += self._set(self.m_e1_bld, "roof_gray")
                shades += self._shade(self.m_e1_shadow)
        # E2 razing.
        if ev["E2"].on_ground(d):
            ground += self._set(self.m_e2_bld, "rubble")
        else:
            roofs += self._set(self.m_e2_bld, "roof_green")
            shades += self._shade(self.m_e2_shadow)
        # E4 vehicles: a cluster that grows to its full size by the middle of the event.
        e4 = ev["E4"]
        if e4.on_ground(d):
            assert e4.end is not None
            frac = (d - e4.start).days / max(1, (e4.end - e4.start).days)
            n = min(len(self.m_e4), 6 + round((len(self.m_e4) - 6) * min(1.0, frac / 0.5)))
            for k in range(n):
                ground += self._set(self.m_e4[k], "vehicle_bright" if plan.e4_bright[k]
                                    else "vehicle_dark")
                shades += self._shade(self.m_e4_shadow[k])
        # E3 transfer structure: at the tower or parked.
        if ev["E3"].on_ground(d):
            roofs += self._set(self.m_e3_arrival, "roof_blue")
            shades += self._shade(self.m_e3_arrival_shadow)
        else:
            roofs += self._set(self.m_e3_parked, "roof_blue")
            shades += self._shade(self.m_e3_parked_shadow)
        return ground + roofs + shades

    def apply(self, band: np.ndarray, b: int, ops: list[PaintOp]) -> None:
        """Apply ``ops`` to one band of the fine scene, in place."""
        for op in ops:
            win = band[op.rs, op.cs]
            if op.kind == "set":
                t = self.tex[op.rs, op.cs][op.mask]
                win[op.mask] = op.spec[b] * (1.0 + 0.03 * t)
            elif op.kind == "blend":
                win *= 1.0 - op.mask
                win += op.mask * op.spec[b]
            else:
                win[op.mask] *= op.factor


# --------------------------------------------------------------------------- one scene


def render_scene(truth: Truth, painter: Painter, spec: SceneSpec,
                 boundary_utm: BaseGeometry, seed: int, center: tuple[float, float]
                 ) -> tuple[np.ndarray, Affine, dict[str, Any]]:
    """Render one scene: (5, ny, nx) uint16 data, its transform and its parameters."""
    cfg = SENSORS[spec.sensor]
    res = float(cfg["res"])
    sid = 10 if spec.sensor == "sim-10m" else 3
    rng = np.random.default_rng([seed, 3, sid, spec.index])
    grid = truth.grid
    bx0, by0, bx1, by1 = boundary_utm.bounds

    # Sensor grid: 10 m snapped to multiples of 10 m, 3 m with a random sub-pixel origin.
    if spec.sensor == "sim-10m":
        ox = oy = 0.0
    else:
        ox, oy = (round(float(v), 3) for v in rng.uniform(0.1, 2.9, 2))
    left = math.floor((bx0 - MARGIN) / res) * res - ox
    top = math.ceil((by1 + MARGIN) / res) * res + oy
    nx = math.ceil((bx1 + MARGIN - left) / res)
    ny = math.ceil((top - (by0 - MARGIN)) / res)
    transform = Affine(res, 0.0, left, 0.0, -res, top)

    # Scene parameters (rounded first, so that what is recorded is what is applied).
    dy, dx = (round(float(v), 3) for v in rng.uniform(-1.5, 1.5, 2))
    g0 = rng.uniform(0.9, 1.1)
    gains = [round(float(np.clip(g0 * r * rng.uniform(0.97, 1.03), 0.85, 1.15)), 4)
             for r in cfg["response"]]
    offsets = [round(float(v), 4) for v in rng.uniform(-0.004, 0.004, 4)]
    haze = round(float(rng.uniform(0.0, 0.05) if rng.random() < 0.7 else rng.uniform(0.05,
                                                                                  0.09)), 4)
    sigma = float(cfg["noise"])
    el, az = sun_position(spec.acquired, *center)
    d = spec.acquired.date()
    season = season_phase(d)

    # Area-average the fine truth (with the content shifted) onto the sensor grid.
    step = res / grid.res
    wy = area_weights(ny, (grid.top - top - dy * res) / grid.res, step, grid.ny)
    wx = area_weights(nx, (left - dx * res - grid.left) / grid.res, step, grid.nx)
    wxt = wx.T.tocsr()
    ops = painter.ops(d)
    refl = np.empty((4, ny, nx), np.float32)
    for b in range(4):
        band = truth.a[b] + np.float32(season * VEG_DELTA[b]) * truth.g
        painter.apply(band, b, ops)
        refl[b] = np.asarray((wy @ band) @ wxt)
    water = np.asarray((wy @ truth.water) @ wxt)

    # Boundary mask and swath fill on the sensor grid.
    inside = rasterio.features.rasterize([(mapping(boundary_utm), 1)], out_shape=(ny, nx),
                                         transform=transform, fill=0, dtype="uint8") > 0
    xs = left + (np.arange(nx) + 0.5) * res
    ys = top - (np.arange(ny) + 0.5) * res
    fill = np.zeros((ny, nx), bool)
    if spec.swath:
        tilt = math.radians(rng.uniform(8.0, 14.0))
        x_edge = bx1 - rng.uniform(0.3, 0.45) * (bx1 - bx0)
        yc = (by0 + by1) / 2
        fill = (xs[None, :] - x_edge) > (ys[:, None] - yc) * math.tan(tilt)
    valid_in = inside & ~fill

    # Clouds and their shadows.
    cloud_alpha = np.zeros((ny, nx), np.float32)
    shadow_alpha = np.zeros((ny, nx), np.float32)
    cloud_mask = np.zeros((ny, nx), bool)
    shadow_mask = np.zeros((ny, nx), bool)
    cloud_height = round(float(rng.uniform(500.0, 1500.0)), 1)
    if spec.cloud_target > 0:
        offset = min(500.0, cloud_height / math.tan(math.radians(max(el, 10.0))))
        a = math.radians(az + 180.0)
        sh_x, sh_y = offset * math.sin(a), offset * math.cos(a)  # shadow = cloud + (sh_x, sh_y)
        p = math.ceil(offset / res) + 2
        beta = 3.6 if spec.cloud_target > 0.5 else 3.2
        ext = fractal(rng, (ny + 2 * p, nx + 2 * p), beta, fmin=res / 3000.0)
        pert = 0.12 * fractal(rng, (ny, nx), 1.8)
        c = ext[p:p + ny, p:p + nx]
        vals = c[valid_in] if valid_in.any() else c.ravel()
        width = 0.5
        # "Under cloud" means an opacity of at least 0.3: the target fraction is set on it.
        thr = float(np.quantile(vals, 1.0 - spec.cloud_target)) - 0.3 * width
        cloud_alpha = np.clip((c - thr) / width, 0.0, 1.0)
        # Shadow at pixel P comes from the cloud at P - (sh_x, sh_y): rows grow southwards.
        r_off = round(sh_y / res)
        c_off = round(-sh_x / res)
        cs = ext[p + r_off:p + r_off + ny, p + c_off:p + c_off + nx]
        shadow_alpha = np.clip((cs - thr) / width, 0.0, 1.0) * (1.0 - cloud_alpha)
        cloud_mask = (c + pert) > thr + 0.3 * width
        shadow_mask = ((cs + pert) > thr + 0.4 * width) & ~cloud_mask
    cloud_fraction = float((cloud_alpha[valid_in] >= 0.3).mean()) if valid_in.any() else 0.0
    cloud_fraction = round(cloud_fraction, 4)
    coverage = round(float(valid_in.sum() / max(1, inside.sum())), 4)

    haze_field = 0.6 + 0.8 * sigmoid(1.5 * fractal(rng, (ny, nx), 3.5))
    ctex = 1.0 + 0.08 * fractal(rng, (ny, nx), 2.5)
    haze_k = (1.0, 0.7, 0.45, 0.25)
    cloud_spec = (1.03, 1.0, 0.98, 0.95)
    cloud_level = float(rng.uniform(0.55, 0.75))
    out = np.empty((5, ny, nx), np.uint16)
    for b in range(4):
        v = refl[b] * (1.0 - (1.0 - SHADE) * shadow_alpha)
        v = v * (1.0 - cloud_alpha) + cloud_alpha * (cloud_level * cloud_spec[b] * ctex)
        v = v + haze * haze_k[b] * haze_field
        v = v * gains[b] + offsets[b]
        v = v + rng.normal(0.0, sigma, (ny, nx)).astype(np.float32)
        q = np.clip(np.rint(v * 10000.0), 0, NODATA - 1).astype(np.uint16)
        q[fill] = NODATA
        out[b] = q
    fmask = np.full((ny, nx), FMASK_CLEAR, np.uint8)
    fmask[water > 0.5] = FMASK_WATER
    fmask[shadow_mask] = FMASK_SHADOW
    fmask[cloud_mask] = FMASK_CLOUD
    fmask[fill] = FMASK_FILL
    out[4] = fmask

    params = {
        "sensor": spec.sensor,
        "resolution": res,
        "cloud_fraction": cloud_fraction,
        "shift_px": [dy, dx],
        "gain": gains,
        "offset": offsets,
        "haze": haze,
        "noise_sigma": sigma,
        "coverage": coverage,
        "grid_origin_offset_m": [ox, oy],
        "sun_elevation": round(el, 2),
        "sun_azimuth": round(az, 2),
        "cloud_height_m": cloud_height if spec.cloud_target > 0 else None,
        "season_phase": round(season, 4),
    }
    return out, transform, params


def write_scene_tif(path: Path, data: np.ndarray, transform: Affine, crs: Any,
                    tags: dict[str, str]) -> None:
    _, ny, nx = data.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": nx, "height": ny, "count": 5, "dtype": "uint16",
        "crs": crs, "transform": transform, "nodata": NODATA, "compress": "deflate",
        "predictor": 2, "interleave": "pixel",
    }
    if min(nx, ny) >= 128:
        block = 256 if min(nx, ny) >= 512 else 128
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        for i, name in enumerate((*BAND_NAMES, "fmask"), start=1):
            ds.set_band_description(i, name)
        ds.scales = (1e-4, 1e-4, 1e-4, 1e-4, 1.0)
        ds.update_tags(**tags)
        for i, wl in enumerate(WAVELENGTHS_UM, start=1):
            ds.update_tags(i, wavelength=f"{wl:.3f}")
        ds.update_tags(5, codes="0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill")


