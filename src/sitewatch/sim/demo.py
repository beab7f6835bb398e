"""The demo: the whole spine on a simulated site, offline.

1. simulate the ``sohae-sim`` scenario (a made-up layout at Sohae's coordinates; SIMULATED);
2. ingest its scenes into the catalogue (re-running the demo re-ingests nothing);
3. run the watch pipeline once (:func:`sitewatch.watch.pipeline.run_site`, as
   ``sitewatch run`` does, with the demo's detector): every scene loaded onto its grid,
   co-registered to the grid's reference, compared with the previous usable date and the
   recent composite, scored per part, and alerts raised;
4. read back what the run stored and set it beside the simulator's ground truth: the
   per-part change of each pair of consecutive usable dates beside the planted events, the
   recorded co-registration shifts beside the true ones, the alerts scored against the
   planted changes (hits, misses, lag, false alarms; :mod:`sitewatch.sim.evaluate`);
5. add reports and a navigation notice along the simulated year and assess the site as
   evidence arrives;
6. write the analyst brief of the simulated site: the demo's page.

Nothing here loads, registers, detects or measures imagery: the demo shows what the
pipeline stored, so what it prints is what ``sitewatch alerts``, ``timeline`` and ``brief``
read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

from sitewatch.imagery.coregister import Shift
from sitewatch.imagery.ingest import IngestReport, ingest
from sitewatch.imagery.scenes import Scene
from sitewatch.sim import evaluate
from sitewatch.sim.evaluate import Scorecard
from sitewatch.sim.simulate import Scenario, SimEvent, simulate_scenario
from sitewatch.sites.site import Site
from sitewatch.store import Store
from sitewatch.times import iso, iso_day, parse_time
from sitewatch.watch.pipeline import RunParams, RunReport, run_site, usable_dates
from sitewatch.watch.records import Observation, ProcessedScene, StoredAlert
from sitewatch.watch.zonal import REST, PartChange

log = logging.getLogger(__name__)

__all__ = ["DEMO_METHOD", "FLAG_FRACTION", "REST", "SITE_ID", "DemoResult", "EventCheck",
           "PairRow", "ShiftCheck", "StoryRow", "collateral_story", "demo_reports", "run_demo",
           "watch_scenario"]

SITE_ID = "sohae-sim"
#: A part is flagged when at least this fraction of its observed pixels changed.
FLAG_FRACTION = 0.05
#: The detector the demo runs: on the simulated site it flags the fewest quiet parts while
#: catching the planted events (docs/benchmarks.md, "The demo against its ground truth").
DEMO_METHOD = "ratio"

_PART_FIELDS = tuple(f.name for f in fields(PartChange))


@dataclass
class PairRow:
    """Change between two consecutive usable dates of one sensor, as the pipeline stored it
    (its observations against the previous usable date)."""

    sensor: str
    before: Scene
    after: Scene
    parts: dict[str, PartChange]
    events: list[SimEvent]  # ground truth events that happened between the two dates

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


@dataclass(frozen=True)
class ShiftCheck:
    """A recorded co-registration shift beside the simulator's true one (grid pixels)."""

    scene: str
    estimated: Shift
    true: Shift

    @property
    def error(self) -> float:
        return (self.estimated - self.true).magnitude


@dataclass(frozen=True)
class StoryRow:
    """The assessment on one date of the demo's story, after what happened that day."""

    date: str
    what: str
    launch: str
    launch_likelihood: float
    engine_test: str
    engine_test_likelihood: float
    window: str | None = None


@dataclass
class DemoResult:
    scenario: Scenario
    site: Site
    ingest: IngestReport
    skipped: list[tuple[Scene, str]] = field(default_factory=list)  # (scene, why unusable)
    pairs: list[PairRow] = field(default_factory=list)
    checks: list[EventCheck] = field(default_factory=list)
    shifts: list[ShiftCheck] = field(default_factory=list)
    flagged_registrations: list[tuple[Scene, str]] = field(default_factory=list)
    run: RunReport | None = None
    alerts: list[StoredAlert] = field(default_factory=list)
    scorecard: Scorecard | None = None
    story: list[StoryRow] = field(default_factory=list)
    story_sources: str = ""
    brief: Path | None = None

    @property
    def parts(self) -> list[str]:
        return [p.name for p in self.site.placed_parts()]

    def summary(self) -> dict[str, float | int]:
        """How the change measure did against the ground truth, over part-pairs (a part in a
        pair of consecutive usable dates, observed on both): the share flagged where nothing
        happened and where an event did, event checks hit, and co-registration error."""
        quiet: list[bool] = []
        busy: list[bool] = []
        for p in self.pairs:
            for name, pc in p.parts.items():
                if name == REST or not pc.observed:
                    continue
                (busy if p.truth_at(name) else quiet).append(p.flagged(name))
        errors = sorted(c.error for c in self.shifts)
        return {
            "quiet_part_pairs": len(quiet),
            "quiet_flagged": sum(quiet) / len(quiet) if quiet else math.nan,
            "event_part_pairs": len(busy),
            "event_flagged": sum(busy) / len(busy) if busy else math.nan,
            "event_checks": len(self.checks),
            "event_checks_hit": sum(c.detected for c in self.checks),
            "shift_error_median_px": errors[len(errors) // 2] if errors else math.nan,
            "shift_error_max_px": errors[-1] if errors else math.nan,
            "coregistered_scenes": len(errors),
        }

    def _alert_score(self) -> dict[str, object] | None:
        if self.scorecard is None:
            return None
        sc = self.scorecard
        return {
            "summary": sc.summary(),
            "changes": [{"event": h.change.event, "kind": h.change.kind, "date": h.change.time,
                         "parts": list(h.change.parts), "alert": h.alert, "lag": h.lag}
                        for h in sc.hits],
            "false_alarms": [a.id for a in sc.false_alarms],
        }

    def to_dict(self) -> dict[str, object]:
        """Everything the demo found, JSON-ready (NaN becomes null)."""

        def num(v: float | None) -> float | None:
            return None if v is None or math.isnan(v) else round(float(v), 6)

        def event(e: SimEvent) -> dict[str, object]:
            return {"id": e.id, "kind": e.kind, "part": e.part, "parts": list(e.parts),
                    "start": str(e.start), "end": str(e.end) if e.end else None,
                    "description": e.description}

        return {
            "simulated": True,
            "site": self.site.id,
            "scenario": str(self.scenario.out_dir),
            "catalogue": self.ingest.to_dict(),
            "not_usable": [{"scene": sc.id, "reason": why} for sc, why in self.skipped],
            "coregistration": [
                {"scene": c.scene, "estimated": [c.estimated.dy, c.estimated.dx],
                 "true": [round(c.true.dy, 6), round(c.true.dx, 6)], "error_px": num(c.error)}
                for c in self.shifts
            ],
            "pairs": [
                {"sensor": p.sensor, "before": p.before.id, "after": p.after.id,
                 "before_time": iso(p.before.acquired), "after_time": iso(p.after.acquired),
                 "events": [e.id for e in p.events],
                 "parts": {n: {"observed_fraction": num(pc.observed_fraction),
                               "changed_fraction": num(pc.changed_fraction),
                               "changed_area_m2": num(pc.changed_area_m2),
                               "flagged": p.flagged(n)}
                           for n, pc in p.parts.items()}}
                for p in self.pairs
            ],
            "events": [event(e) for e in self.scenario.events],
            "event_checks": [
                {"event": c.event.id, "sensor": c.sensor, "detected": c.detected,
                 "max_changed_fraction": num(c.best_fraction),
                 "pair": [c.pair.before.id, c.pair.after.id] if c.pair else None}
                for c in self.checks
            ],
            "summary": {k: (num(v) if isinstance(v, float) else v)
                        for k, v in self.summary().items()},
            "run": self.run.to_dict() if self.run else None,
            "alerts": [{"id": a.id, "part": a.part, "time": a.alert.time, "tier": a.tier,
                        "kind": a.kind, "status": a.status, "text": a.text}
                       for a in self.alerts],
            "alert_score": self._alert_score(),
            "story": {"reports": self.story_sources,
                      "rows": [asdict(r) for r in self.story]},
            "brief": str(self.brief) if self.brief else None,
        }


#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]

#: What the demo's stages are called in its progress (the library's stage names, which
#: other commands show bare, said as the steps of the demo).
DEMO_STAGES = {"simulate": "simulate scenes", "read": "ingest: read scenes",
               "store": "ingest: catalogue scenes",
               "process": "run: co-register and measure each scene",
               "alerts": "run: raise alerts", "story": "assess the reports",
               "figures": "brief: figures"}


def run_demo(home: Path, *, workdir: Path | None = None, seed: int = 0,
             progress: Progress | None = None, brief: bool = True,
             method: str = DEMO_METHOD) -> DemoResult:
    """Run the demo; results in ``home`` (catalogue, change products) and ``workdir``
    (default home/demo: the scenario, the notice, the brief unless ``brief`` is False)."""
    given = progress or (lambda *_: None)

    def tick(stage: str, done: int, total: int) -> None:
        given(DEMO_STAGES.get(stage, stage), done, total)

    work = Path(workdir) if workdir else Path(home) / "demo"
    scenario = simulate_scenario(work / "scenario", seed=seed,
                                 progress=lambda d, n: tick("simulate", d, n))
    with Store.open_home(home) as store:
        res = watch_scenario(store, scenario, RunParams(method=method), progress=tick,
                             products=Path(home) / "products")
        res.story, res.story_sources = collateral_story(store, res.site, scenario, work,
                                                        progress=tick)
        if brief:
            from sitewatch.report.brief import write_brief

            last = max(sc.acquired.date() for sc in scenario.scenes)
            res.brief = write_brief(store, SITE_ID, work / "brief", end=last,
                                    progress=tick).html
    return res


def watch_scenario(store: Store, scenario: Scenario, params: RunParams | None = None, *,
                   progress: Progress | None = None, products: Path | None = None
                   ) -> DemoResult:
    """Ingest a simulated scenario of the demo's site, run the watch pipeline on it once
    (:func:`~sitewatch.watch.pipeline.run_site`; ``params`` default: the demo's detector)
    and read back what it stored, beside the scenario's ground truth.  Scenes of earlier
    scenarios of the site are dropped from the catalogue first, with the site's alerts."""
    params = params or RunParams(method=DEMO_METHOD)
    tick = progress or (lambda *_: None)
    scene_dir = (scenario.out_dir / "scenes").resolve()
    # The demo owns the simulated scenes of its site: drop those of earlier scenarios
    # (another seed or work folder), so the catalogue never points at files now gone.
    stale = [old for old in store.scenes(SITE_ID)
             if old.simulated and Path(old.source).resolve().parent != scene_dir]
    for old in stale:
        store.delete_scene(SITE_ID, old.id)
    if stale:  # alerts about another scenario's scenes would be about nothing now
        store.delete_alerts(SITE_ID)
    report = ingest(store, [scene_dir], SITE_ID, site=scenario.site, progress=tick)
    site = store.get_site(SITE_ID)
    assert site is not None  # ingest stored it
    res = DemoResult(scenario, site, report)
    res.run = run_site(store, SITE_ID, params, progress=tick, products=products)

    scenes = {s.id: s for s in store.scenes(SITE_ID)
              if s.simulated and Path(s.source).resolve().parent == scene_dir}
    processed = {k: v for k, v in store.processed(SITE_ID, params.hash).items() if k in scenes}
    for sid, row in processed.items():
        if not row.usable:
            res.skipped.append((scenes[sid], row.reason or row.status))
    res.skipped.sort(key=lambda t: (t[0].sensor, t[0].acquired))
    res.shifts, res.flagged_registrations = _registrations(store, scenario, scenes, processed)
    res.pairs = _pairs(store, scenario, scenes, params.hash)
    res.checks = _check_events(res)
    res.alerts = store.alerts(SITE_ID, params_hash=params.hash)
    usable = usable_dates(store, SITE_ID, params.hash)
    days = [t for ts in usable.values() for t in ts]
    years = ((parse_time(max(days)) - parse_time(min(days))).days / 365.25) if days else 0.0
    res.scorecard = evaluate.score(res.alerts, evaluate.changes_from_events(scenario.events),
                                   usable, part_years=(len(res.parts) + 1) * years)
    return res


def _registrations(store: Store, scenario: Scenario, scenes: dict[str, Scene],
                   processed: dict[str, ProcessedScene]
                   ) -> tuple[list[ShiftCheck], list[tuple[Scene, str]]]:
    """The stored co-registrations of the usable scenes beside the simulator's true shifts
    (relative to the grid's reference), and those the pipeline flagged."""
    truth = {Path(sc.path).stem: Shift(*sc.shift_px) for sc in scenario.scenes}
    shifts, flagged = [], []
    for sid, row in processed.items():
        r = row.registration  # the one it rests on (None for a grid's reference)
        if sid not in scenes or r is None or not row.usable:
            continue  # not a registration of a scene the run used
        ref = r.reference_id
        if sid in truth and ref in truth:
            shifts.append(ShiftCheck(sid, r.shift, truth[sid] - truth[ref]))
        if r.status == "flagged":
            flagged.append((scenes[sid], r.reason))
    order = {sid: (s.sensor, s.acquired) for sid, s in scenes.items()}
    shifts.sort(key=lambda c: order[c.scene])
    flagged.sort(key=lambda t: order[t[0].id])
    return shifts, flagged


def _pairs(store: Store, scenario: Scenario, scenes: dict[str, Scene], params_hash: str
           ) -> list[PairRow]:
    """Each usable date against the previous usable one, per part, as stored by the run."""
    by_scene: dict[str, list[Observation]] = {}
    for r in store.observations(SITE_ID, params_hash, reference="previous"):
        by_scene.setdefault(r.scene_id, []).append(r)
    pairs = []
    for sid, rows in by_scene.items():
        after, before = scenes.get(sid), scenes.get(rows[0].reference_id or "")
        if after is None or before is None:
            continue
        parts = {r.part: _part_change(r) for r in rows}
        pairs.append(PairRow(after.sensor, before, after, parts,
                             scenario.events_between(before.acquired, after.acquired)))
    pairs.sort(key=lambda p: (p.sensor, p.after.acquired))
    return pairs


def _part_change(o: Observation) -> PartChange:
    """A stored observation's measures as the zonal statistics they were made from."""
    known = {k: v for k, v in o.measures.items() if k in _PART_FIELDS and k != "part"}
    return PartChange(o.part, **known)  # type: ignore[arg-type]  # numbers by field name


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
                     and not math.isnan(pair.parts[n].changed_fraction)]
            best = max(fracs, default=math.nan)
            hit = any(pair.flagged(n) for n in ev.parts)
            checks.append(EventCheck(ev, sensor, pair, hit, best))
    return checks


#: Where in the simulated year each report is published (share of the series' span).
STORY_AT = (0.25, 0.5, 0.7)


def demo_reports() -> tuple[list[Path], str]:
    """The three seed articles when ``../shared/seeds`` is at hand (``$SITEWATCH_SEEDS``, when
    set, is the only place looked at), else three short SIMULATED reports shipped with
    sitewatch that make the same kinds of claims."""
    import os
    from importlib import resources

    given = os.environ.get("SITEWATCH_SEEDS")
    candidates = [given] if given else [Path.cwd().parent / "shared" / "seeds",
                                        Path(__file__).resolve().parents[4] / "shared" / "seeds"]
    for c in candidates:
        if c and Path(c).is_dir():
            found = {p.name[:3]: p for p in sorted(Path(c).glob("*.txt"))}
            # rebuilding (2019), trains (2016), fuel and personnel (2016): the story's order
            order = [found.get(k) for k in ("004", "001", "000")]
            if all(order):
                return [p for p in order if p], f"the seed articles in {c}"
    base = resources.files("sitewatch.warning").joinpath("data", "demo")
    return ([Path(str(base.joinpath(n))) for n in ("1_rebuilding.txt", "2_trains.txt",
                                                   "3_fuel.txt")],
            "sitewatch's SIMULATED stand-ins for the seed articles")


def collateral_story(store: Store, site: Site, scenario: Scenario, work: Path,
                     progress: Progress | None = None) -> tuple[list[StoryRow], str]:
    """Add reports and a navigation notice along the simulated year and assess the site on
    each alert and report date: the assessment moving as evidence arrives (``progress``
    ticks "story" per date assessed)."""
    tick = progress or (lambda *_: None)
    from importlib import resources

    from sitewatch.warning.record import add_report, assess_site

    times = sorted(sc.acquired.date() for sc in scenario.scenes)
    first, last = times[0], times[-1]
    span = (last - first).days
    files, sources = demo_reports()
    events: list[tuple[str, str]] = []
    for f, frac in zip(files, STORY_AT, strict=True):
        when = first + timedelta(days=round(frac * span))
        added = add_report(store, site, f, published=when)
        events.append((when.isoformat(), f"report: {added.reading.title[:70]}"))
    # A navigation notice near the end, with its window a few days later.
    notice_day = first + timedelta(days=round(0.9 * span))
    tmpl = resources.files("sitewatch.warning").joinpath("data", "demo", "4_notice.txt")
    text = tmpl.read_text(encoding="utf-8").format(
        start=(notice_day + timedelta(days=4)).strftime("%B %d, %Y"),
        end=(notice_day + timedelta(days=14)).strftime("%B %d, %Y"))
    notice = work / "notice.txt"
    notice.parent.mkdir(parents=True, exist_ok=True)
    notice.write_text(text, encoding="utf-8")
    add_report(store, site, notice, published=notice_day)
    events.append((notice_day.isoformat(), "navigation notice declared"))
    run = store.last_run(site.id, finished=True)
    for al in store.alerts(site.id, params_hash=run.params_hash if run else None):
        events.append((iso_day(al.time), f"alert {al.tier} at {al.part}"))
    by_day: dict[str, list[str]] = {}
    for day, what in sorted(events):
        by_day.setdefault(day, []).append(what)
    rows = [StoryRow(first.isoformat(), "imagery starts", "no_evidence", 0.05, "no_evidence",
                     0.05)]
    for n, (day, whats) in enumerate(sorted(by_day.items())):
        tick("story", n, len(by_day))
        judged = assess_site(store, site, at=date.fromisoformat(day))
        w = judged.launch.window
        rows.append(StoryRow(day, "; ".join(whats), judged.launch.level,
                             judged.launch.likelihood, judged.engine_test.level,
                             judged.engine_test.likelihood,
                             f"{w.start} to {w.end}" if w and w.start else None))
    tick("story", len(by_day), len(by_day))
    return rows, sources
