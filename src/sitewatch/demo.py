"""The demo: the whole spine on a simulated site, offline, in well under a minute.

1. simulate the ``sohae-sim`` scenario (a made-up layout at Sohae's coordinates; SIMULATED);
2. ingest its scenes into the catalogue (re-running the demo re-ingests nothing);
3. load every scene onto the site grid of its sensor;
4. measure change between consecutive usable dates, per part;
5. set the per-part change beside the ground-truth events, and write an HTML page with the
   before/after images.

Later capabilities replace each stage with the real one; the demo grows with them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from .change import ChangeResult, robust_difference
from .errors import GridError
from .grid import GridImage, load_scene, site_grid
from .ingest import IngestReport, ingest
from .scenes import Scene
from .simulate import Scenario, SimEvent, simulate_scenario
from .sites import Site
from .store import Store
from .zonal import REST, PartChange, part_changes

log = logging.getLogger(__name__)

SITE_ID = "sohae-sim"
#: A date is usable when at least this fraction of the site boundary is observed.
MIN_USABLE = 0.5
#: A part is flagged when at least this fraction of its observed pixels changed.
FLAG_FRACTION = 0.05


@dataclass
class PairRow:
    """Change between two consecutive usable dates of one sensor."""

    sensor: str
    before: Scene
    after: Scene
    parts: dict[str, PartChange]
    events: list[SimEvent]  # ground truth events that happened between the two dates
    result: ChangeResult
    images: tuple[GridImage, GridImage]

    def truth_at(self, part: str) -> list[SimEvent]:
        """Ground-truth events between the two dates that touch ``part``."""
        return [e for e in self.events if part in e.parts]

    def flagged(self, part: str) -> bool:
        pc = self.parts.get(part)
        return bool(pc and pc.observed and pc.changed_fraction >= FLAG_FRACTION)


@dataclass
class EventCheck:
    """Whether a ground-truth event showed at its parts in the first pair that spans it."""

    event: SimEvent
    sensor: str
    pair: PairRow | None
    detected: bool
    best_fraction: float


@dataclass
class DemoResult:
    scenario: Scenario
    site: Site
    ingest: IngestReport
    skipped: list[tuple[Scene, str]] = field(default_factory=list)  # (scene, why unusable)
    pairs: list[PairRow] = field(default_factory=list)
    checks: list[EventCheck] = field(default_factory=list)
    html: Path | None = None

    @property
    def parts(self) -> list[str]:
        return [p.name for p in self.site.placed_parts()]


#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]


def run_demo(home: Path, *, workdir: Path | None = None, seed: int = 0,
             progress: Progress | None = None, html: bool = True) -> DemoResult:
    """Run the demo; results in ``home`` (catalogue) and ``workdir`` (default home/demo)."""
    tick = progress or (lambda *_: None)
    work = Path(workdir) if workdir else Path(home) / "demo"
    scenario = simulate_scenario(work / "scenario", seed=seed,
                                 progress=lambda d, n: tick("simulate", d, n))
    with Store.open_home(home) as store:
        report = ingest(store, [scenario.out_dir / "scenes"], SITE_ID, site=scenario.site,
                        progress=tick)
        site = store.get_site(SITE_ID)
        assert site is not None
        scenes = store.scenes(SITE_ID)
    res = DemoResult(scenario, site, report)

    by_sensor: dict[str, list[Scene]] = {}
    for s in scenes:
        by_sensor.setdefault(s.sensor, []).append(s)
    done, total = 0, len(scenes)
    for sensor, group in sorted(by_sensor.items()):
        grid = site_grid(site, group[0].resolution or 10.0)
        masks = grid.part_masks(site)
        from rasterio.features import rasterize

        from .geo import to_crs

        inside = rasterize([(to_crs(site.boundary, "EPSG:4326", grid.crs), 1)],
                           out_shape=grid.shape, transform=grid.transform).astype(bool)
        pixel_area = grid.resolution**2
        prev: GridImage | None = None
        prev_scene: Scene | None = None
        for sc in group:
            done += 1
            tick("load and compare", done, total)
            img = load_scene(sc, grid)
            seen = float(img.valid[inside].mean())
            if seen < MIN_USABLE:
                res.skipped.append((sc, f"{seen:.0%} of the site observed (cloud or no data)"))
                continue
            if prev is not None and prev_scene is not None:
                try:
                    ch = robust_difference(prev, img)
                except GridError as exc:
                    res.skipped.append((sc, str(exc)))
                    continue
                stats = part_changes(ch, masks, pixel_area, site_mask=inside)
                events = scenario.events_between(prev_scene.acquired, sc.acquired)
                res.pairs.append(PairRow(sensor, prev_scene, sc, stats, events, ch, (prev, img)))
            prev, prev_scene = img, sc
    res.checks = _check_events(res)
    if html:
        from .report.demo_page import write_demo_page

        res.html = write_demo_page(res, work / "report")
    return res


def _check_events(res: DemoResult) -> list[EventCheck]:
    checks = []
    for sensor in sorted({p.sensor for p in res.pairs}):
        pairs = [p for p in res.pairs if p.sensor == sensor]
        for ev in res.scenario.events:
            pair = next((p for p in pairs if ev in p.events), None)
            if pair is None:
                checks.append(EventCheck(ev, sensor, None, False, math.nan))
                continue
            fracs = [pair.parts[n].changed_fraction for n in ev.parts if n in pair.parts
                     and not np.isnan(pair.parts[n].changed_fraction)]
            best = max(fracs, default=math.nan)
            hit = any(pair.flagged(n) for n in ev.parts)
            checks.append(EventCheck(ev, sensor, pair, hit, best))
    return checks


def date_label(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


__all__ = ["REST", "DemoResult", "EventCheck", "PairRow", "run_demo"]
