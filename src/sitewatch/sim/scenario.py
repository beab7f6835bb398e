"""SIMULATED scenarios: what the simulator writes, as types (scenes, events, the scenario),
its constants (bands, Fmask codes, sensors, the parts the events need) and reading a
scenario folder back (:func:`load_scenario`).  Everything here describes simulated data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SitewatchError
from sitewatch.sites.site import Site

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
    "SENSORS",
    "WAVELENGTHS_UM",
    "Scenario",
    "SimEvent",
    "SimScene",
    "SimulationError",
    "as_date",
    "load_ground_truth",
    "load_scenario",
]

#: Band descriptions of the reflectance bands, in band order (bands 1-4).
BAND_NAMES: tuple[str, ...] = ("blue", "green", "red", "nir")
#: Centre wavelengths of bands 1-4 in micrometres.
WAVELENGTHS_UM: tuple[float, ...] = (0.490, 0.560, 0.665, 0.842)
#: Fmask codes of band 5.
FMASK_CLEAR, FMASK_WATER, FMASK_SHADOW, FMASK_SNOW, FMASK_CLOUD, FMASK_FILL = 0, 1, 2, 3, 4, 255
#: Nodata value of the reflectance bands (fill pixels).
NODATA = 65535
#: Parts the scripted events need, with the event that needs each.
REQUIRED_PARTS: dict[str, str] = {
    "construction_compound": "E1 construction",
    "support_compound": "E2 razing",
    "transfer_structure": "E3 transfer structure moved (its parked spot)",
    "pad_rail": "E3 transfer structure moved (the rail it runs on)",
    "gantry_tower": "E3 transfer structure moved (where it arrives)",
    "launch_pad": "E4 vehicles gathered",
    "vertical_engine_test_stand": "E5 burn scar",
}
#: Kinds of the scripted events.
EVENT_KINDS: tuple[str, ...] = (
    "construction",
    "razing",
    "transfer_structure_moved",
    "vehicles_gathered",
    "burn_scar",
)

SENSORS: dict[str, dict[str, Any]] = {
    # key: resolution, file prefix, nominal UTC acquisition time, noise sigma, band response
    "sim-10m": {"res": 10.0, "prefix": "SIM10", "hour": 2.22, "jitter_min": 6.0,
                "noise": 0.005, "response": (1.0, 1.0, 1.0, 1.0)},
    "sim-3m": {"res": 3.0, "prefix": "SIM3", "hour": 2.3, "jitter_min": 40.0,
               "noise": 0.008, "response": (0.97, 1.0, 1.03, 0.96)},
}


class SimulationError(SitewatchError, ValueError):
    """The simulator cannot run with these arguments or cannot write where asked."""



# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SimScene:
    """One simulated acquisition.

    Attributes
    ----------
    path : Path
        The GeoTIFF written.
    acquired : datetime
        Acquisition time, timezone-aware UTC.
    sensor : str
        ``"sim-10m"`` or ``"sim-3m"``.
    resolution : float
        Pixel size in metres.
    cloud_fraction : float
        Fraction (0..1) of the imaged (non-fill) part of the site boundary under cloud
        (cloud opacity of at least 0.3).
    shift_px : tuple of float
        ``(dy, dx)`` misregistration of the content in this sensor's pixels; ``+dy`` moves
        content south (down), ``+dx`` east (right).  The georeference stays nominal.
    """

    path: Path
    acquired: datetime
    sensor: str
    resolution: float
    cloud_fraction: float
    shift_px: tuple[float, float]


@dataclass(frozen=True)
class SimEvent:
    """A scripted change on the ground.

    Attributes
    ----------
    id : str
        ``"E1"``, ``"E2"``...
    kind : str
        One of :data:`EVENT_KINDS`.
    part : str
        The site part where it happens.
    start : date
        First date it is on the ground.
    end : date or None
        Last date it is on the ground; ``None`` when it persists.
    description : str
        What happens, in words.
    geometry : BaseGeometry
        Lon/lat (EPSG:4326) polygon(s) of the changed area (footprints; shadows excluded).
    parts : tuple of str
        Every part whose area the change touches.
    stages : tuple of (date, str)
        Dates where the look of the event changes while it is on the ground (the first is
        ``start``), e.g. a cleared plot becoming a roofed building.
    """

    id: str
    kind: str
    part: str
    start: date
    end: date | None
    description: str
    geometry: BaseGeometry
    parts: tuple[str, ...]
    stages: tuple[tuple[date, str], ...] = ()

    def on_ground(self, when: date | datetime) -> bool:
        """True when the event is visible on the ground at ``when``."""
        d = as_date(when)
        return self.start <= d and (self.end is None or d <= self.end)

    def change_dates(self) -> tuple[date, ...]:
        """Dates where the ground changes: start, later stages and the day after ``end``."""
        dates = {self.start, *(d for d, _ in self.stages)}
        if self.end is not None:
            dates.add(self.end + timedelta(days=1))
        return tuple(sorted(dates))


@dataclass(frozen=True)
class Scenario:
    """A simulated scenario: where it was written, its scenes and its events."""

    out_dir: Path
    site: Site
    scenes: tuple[SimScene, ...]
    events: tuple[SimEvent, ...]
    ground_truth_path: Path
    seed: int = 0

    def events_between(
        self, t0: date | datetime, t1: date | datetime
    ) -> list[SimEvent]:
        """Events whose ground changes in ``(t0, t1]``.

        An event counts when its start, one of its later stages or the start of its
        disappearance (the day after ``end``) falls in the interval.  Datetimes are compared
        by their UTC date, so two scenes see a difference from an event exactly when the
        event is returned for the pair of their acquisition times.

        Parameters
        ----------
        t0, t1 : date or datetime
            The interval; ``t0`` excluded, ``t1`` included.

        Returns
        -------
        list of SimEvent
            In id order.
        """
        d0, d1 = as_date(t0), as_date(t1)
        return [e for e in self.events if any(d0 < c <= d1 for c in e.change_dates())]

    def scene(self, name: str) -> SimScene:
        """The scene whose file name is ``name``."""
        for s in self.scenes:
            if s.path.name == name:
                return s
        raise KeyError(name)


# --------------------------------------------------------------------------- dates


def as_date(t: date | datetime) -> date:
    if isinstance(t, datetime):
        if t.tzinfo is not None:
            t = t.astimezone(UTC)
        return t.date()
    return t


# --------------------------------------------------------------------------- reading back


def load_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read a scenario's ``ground_truth.json`` (give the file or the scenario folder).

    Returns
    -------
    dict
        The JSON document as written (dates as ISO strings, geometries as GeoJSON).

    Raises
    ------
    SimulationError
        When the file is missing, unreadable or not the simulator's ground truth.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "ground_truth.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimulationError(f"{p}: no such ground-truth file") from None
    except (OSError, ValueError) as exc:
        raise SimulationError(f"{p}: cannot read ground truth: {exc}") from None
    if not isinstance(doc, dict) or doc.get("simulated") is not True:
        raise SimulationError(f"{p}: not a ground-truth file of sitewatch's simulator")
    return doc


def load_scenario(out_dir: str | Path) -> Scenario:
    """Rebuild a :class:`Scenario` from a folder written by :func:`simulate_scenario`."""
    from sitewatch.sites.site import load_site

    out = Path(out_dir)
    doc = load_ground_truth(out)
    site = load_site(out / "site.geojson")
    events = tuple(
        SimEvent(
            e["id"], e["kind"], e["part"], date.fromisoformat(e["start"]),
            date.fromisoformat(e["end"]) if e.get("end") else None, e["description"],
            shape(e["geometry"]), tuple(e["parts"]),
            tuple((date.fromisoformat(s["date"]), s["state"]) for s in e.get("stages", [])),
        )
        for e in doc["events"]
    )
    scenes = tuple(
        SimScene(
            out / s["file"],
            datetime.strptime(s["acquired"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
            s["sensor"], float(s["resolution"]), float(s["cloud_fraction"]),
            (float(s["shift_px"][0]), float(s["shift_px"][1])),
        )
        for s in doc["scenes"]
    )
    return Scenario(out, site, scenes, events, out / "ground_truth.json", int(doc["seed"]))

