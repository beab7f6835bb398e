"""``sitewatch run``: the incremental pipeline from catalogued scenes to per-part
observations and alerts.

For each grid of a site (one per sensor resolution), scenes are taken in time order and each
one that has no result with the current parameters (or whose result rests on a different
chain: another previous date, composite, reference or file) is

1. loaded onto the site grid with its quality mask (cloud, shadow, no data);
2. judged usable when at least ``min_usable`` of the site is observed ("not observed" is
   stored as a result for every part);
3. co-registered to the grid's reference scene (the earliest that sees at least 90% of the
   site, re-chosen from the scenes by every run), the shift undone in the same warp; a weak
   match that the local windows cannot check (small sites, dates seasons apart) is not
   applied, and the scene is used as its provider geolocated it; a match the windows
   contradict makes the scene unusable;
4. compared with the previous usable date and with a rolling clear-sky composite (the
   per-pixel median of the last ``composite`` usable dates), the detector normalising
   radiometry as it prefers; SAR scenes are grouped by relative orbit and direction (one
   grid, reference and series each: a SAR date is never compared across orbits or with
   optical dates), and each new SAR date also runs the sequential omnibus test over the
   recent dates of its orbit (:mod:`sitewatch.watch.sarseries`);
5. scored per part (:func:`sitewatch.watch.zonal.part_changes`), and stored with its parameters in
   one transaction: a crash or Ctrl-C loses at most the scene in hand, and the next run
   resumes from there.

A scene that lacks the grid's bands is stored unusable; one whose pixels cannot be read is
stored failed with the reason (and left out of the later dates' chains), and the run goes on.
A grid whose estimated peak memory exceeds the budget (:func:`memory_budget`) is refused
before anything is processed.

After the scenes, every part's series is scored (:mod:`sitewatch.watch.events`) and
alerts are stored; an event already alerted is updated, never alerted twice.  Scoring is
incremental: each series resumes after the dates it scored (its state is kept in the
store), and a run in which nothing it reads changed scores nothing; the composite's members
are kept between runs in an image cache beside the catalogue
(:mod:`sitewatch.watch.imagecache`), so a new scene reads only its own file.  The library
never prints: progress goes to a callback, messages to :mod:`logging`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from sitewatch import __version__
from sitewatch.imagery.scenes import Scene
from sitewatch.imagery.sensors import WATCH_METHOD
from sitewatch.store import Store
from sitewatch.times import iso, parse_time
from sitewatch.watch.events import (
    DEPARTURE_FLOORS,
    SCORING_VERSION,
    Obs,
    SeriesState,
    group_events,
    score_series,
)
from sitewatch.watch.grids import (
    MEMORY_ENV,
    GridRun,
    UnreadableScene,
    grid_key,
    lacking,
    load_bands,
    memory_budget,
    plan_grids,
    process_grid,
    run_memory,
    season_spans,
)
from sitewatch.watch.imagecache import cache_folder
from sitewatch.watch.params import PIPELINE_VERSION, PipelineError, Progress, RunParams, RunReport
from sitewatch.watch.records import STATUSES, ProcessedScene, RunSummary, StoredAlert
from sitewatch.watch.sinks import Sink, deliver_pending
from sitewatch.watch.zonal import MIN_OBSERVED, REST

log = logging.getLogger(__name__)


def series(store: Store, site_id: str, params_hash: str, *, part: str | None = None,
           processed: Mapping[str, ProcessedScene] | None = None
           ) -> dict[tuple[str, str], list[Obs]]:
    """Every part's observations against the previous usable date, per (part, grid); with
    ``part``, that part's only (and the rest of the site, which its measures are relative
    to).  ``processed``: the site's processed scenes when the caller has read them."""
    if processed is None:
        processed = store.processed(site_id, params_hash)
    times = {k: v.acquired for k, v in processed.items()}
    if part is None or part == REST:
        every = store.observations(site_id, params_hash, part=part)
    else:
        every = sorted([*store.observations(site_id, params_hash, part=part),
                        *store.observations(site_id, params_hash, part=REST)],
                       key=lambda r: (r.acquired, r.scene_id, r.part, r.reference))
    rows = [r for r in every if r.reference == "previous"]
    rest = {r.scene_id: r for r in rows if r.part == REST}
    # A part seen on less than half its pixels is not observed that date (zonal.MIN_OBSERVED):
    # a changed share of a few pixels at a cloud's edge is not evidence.
    comp = {(r.scene_id, r.part): r.changed_fraction if r.observed else math.nan
            for r in every if r.reference == "composite"}
    comp_p95 = {(r.scene_id, r.part): r.measure("p95_score") if r.observed else math.nan
                for r in every if r.reference == "composite"}
    out: dict[tuple[str, str], list[Obs]] = {}
    for r in rows:
        m = dict(r.measures)
        # The same-season comparison is judged on what it saw itself: it stands when it saw
        # the part (a part half clouded on the previous date can be clear on both dates of
        # the same-season pair), and is not evidence when it did not.
        season_seen = m.get("observed_fraction_season", math.nan) >= MIN_OBSERVED
        keep = {"pixels", "observed_fraction", "observed_fraction_season"}
        if not r.observed:
            m.update({k: math.nan for k in m if k not in keep
                      and not (season_seen and k.endswith("_season"))})
        if not season_seen:
            m.update({k: math.nan for k in m if k.endswith("_season") and k not in keep})
        m["changed_fraction_composite"] = comp.get((r.scene_id, r.part), math.nan)
        around = rest.get(r.scene_id)
        # Change beyond what the rest of the site shows on the same pair (see events).
        base, base_c = 0.0, 0.0
        if r.part != REST:
            base = around.measure("changed_fraction") if around else math.nan
            base_c = comp.get((r.scene_id, REST), math.nan)
            base = base if math.isfinite(base) else 0.0
            base_c = base_c if math.isfinite(base_c) else 0.0
        m["changed_excess"] = m.get("changed_fraction", math.nan) - base
        m["changed_excess_composite"] = m["changed_fraction_composite"] - base_c
        # A part the previous date did not see was compared with its last clear view, an
        # older date (grids.last_clear): its change counts where the composite agrees, so
        # that the older date's phenology alone is not a change.
        if m.get("reference_filled", 0.0) > 0 and math.isfinite(m["changed_excess_composite"]):
            m["changed_excess"] = min(m["changed_excess"], m["changed_excess_composite"])
        # The detector's score at the part (its 95th percentile, in the pair's noise units)
        # beyond the rest of the site's: no pixel threshold, so a part whose change the
        # pair's threshold (set over the whole scene) misses can still depart from its own
        # history.  Likewise against the composite, for a part seen through its last clear
        # view, and against the same season.  Optical grids only: a SAR pair's score is a
        # log ratio of speckled means, whose tail at a part is not in noise units.
        if r.part != REST and not r.grid.startswith("sar"):
            rest_p95 = around.measure("p95_score") if around else math.nan
            sx = m.get("p95_score", math.nan) - rest_p95
            if m.get("reference_filled", 0.0) > 0:
                sx = min(sx, comp_p95.get((r.scene_id, r.part), math.nan)
                         - comp_p95.get((r.scene_id, REST), math.nan))
            m["score_excess"] = sx
            m["score_excess_season"] = m.get("p95_score_season", math.nan) - (
                around.measure("p95_score_season") if around else math.nan)
        # The same comparison against the same season of earlier years (when the pair
        # spans seasons and history has it), beyond the rest of the site's, and whether
        # each comparison spans seasons: a finding on such a pair needs its confirmation.
        base_s = 0.0
        if r.part != REST and around is not None:
            base_s = around.measure("changed_fraction_season")
            base_s = base_s if math.isfinite(base_s) else 0.0
        m["changed_excess_season"] = m.get("changed_fraction_season", math.nan) - base_s
        done = processed.get(r.scene_id)
        if done is not None:
            span_p, span_c = season_spans(r.acquired, done.chain.previous,
                                          done.chain.composite, times)
            m["season_span"] = float(span_p)
            m["season_span_composite"] = float(span_c)
        # SAR: the share the omnibus test flags at this date, beyond the rest of the site.
        om = m.get("omnibus_changed_fraction", math.nan)
        if math.isfinite(om) and r.part != REST:
            om_rest = around.measure("omnibus_changed_fraction") if around else math.nan
            om -= om_rest if math.isfinite(om_rest) else 0.0
        m["changed_excess_omnibus"] = om
        if r.part != REST:  # levels relative to the rest of the site (see events)
            for name in ("brightness", "ndvi"):
                m[f"{name}_rel"] = m.get(f"{name}_after", math.nan) - (
                    around.measure(f"{name}_after") if around else math.nan)
        prev = r.reference_id
        prev_time = times.get(prev) if prev else None
        out.setdefault((r.part, r.grid), []).append(
            Obs(iso(r.acquired), r.scene_id, prev, iso(prev_time) if prev_time else None,
                r.grid, m))
    return out


def _inputs_digest(params: RunParams, processed: Mapping[str, ProcessedScene],
                   versions: Mapping[str, int], stored: Sequence[StoredAlert]) -> str:
    """A hash of everything :func:`score_alerts` reads: each processed scene's result (its
    observations are written with it, and rewritten only with it), the parts' current
    geometry versions, the stored alerts with their status, and the parameters."""
    h = hashlib.sha256(repr((SCORING_VERSION, params.hash, params.levels,
                             sorted(versions.items()))).encode())
    for sid in sorted(processed):
        r = processed[sid]
        h.update(repr((sid, r.grid, iso(r.acquired), r.status, r.previous_id,
                       sorted(r.chain.to_dict().items()), repr(r.detail()),
                       r.created_at)).encode())
    for a in sorted(stored, key=lambda a: a.id):
        h.update(repr((a.id, a.status, a.reason, sorted(a.alert.to_dict().items()))).encode())
    return h.hexdigest()


def _series_key(part: str, grid: str) -> str:
    return f"{part}\x1f{grid}"


def score_alerts(store: Store, site_id: str, params: RunParams
                 ) -> dict[str, list[StoredAlert]]:
    """Score every part's series and store the alerts; returns the new and updated ones.
    Alerts belong to a parameter set: another method's run neither sees nor updates them.

    Incremental: what scoring left is kept in the store (:meth:`Store.scoring_state`).  When
    nothing it reads has changed since (no scene processed, no alert dismissed or changed,
    no part moved), nothing is scored; otherwise each series resumes after the dates it
    scored (:func:`sitewatch.watch.events.score_series`), or starts again where its history
    changed.  Either way the alerts are those scoring every date from scratch gives."""
    stored = store.alerts(site_id, params_hash=params.hash)
    processed = store.processed(site_id, params.hash)
    versions = store.current_part_versions(site_id)
    kept = store.scoring_state(site_id, params.hash) or {}
    if kept.get("version") != SCORING_VERSION:
        kept = {}
    out: dict[str, list[StoredAlert]] = {"new": [], "updated": []}
    if kept.get("inputs") == _inputs_digest(params, processed, versions, stored):
        return out  # nothing new to score: the stored alerts are what scoring would give
    dismissed: dict[str, set[str]] = {}
    for a in stored:
        if a.status == "dismissed":
            dismissed.setdefault(a.part, set()).update(a.finding_times())
    findings = []
    states: dict[str, dict[str, Any]] = {}
    old_states = kept.get("series") or {}
    # series() holds each part's current geometry version only: alerts and baselines never
    # mix a part's series across geometries.
    for (part, grid), obs in sorted(series(store, site_id, params.hash,
                                           processed=processed).items()):
        key = _series_key(part, grid)
        old = old_states.get(key)
        try:
            state = SeriesState.from_dict(old) if old else None
        except (KeyError, TypeError, ValueError):
            state = None  # a cache: unreadable means the series is scored from its start
        got, new_state = score_series(site_id, part, obs, dismissed=dismissed.get(part, ()),
                                      levels=params.levels, state=state)
        findings += got
        states[key] = new_state.to_dict()
    by_id = {a.id: a for a in stored}
    claimed: set[str] = set()
    for ev in group_events(site_id, findings, salt=params.hash):
        if not params.levels and not any(f["measure"] in DEPARTURE_FLOORS
                                         for f in ev.findings):
            continue  # level change points only characterise departures (see RunParams)
        # The same event found again (perhaps now starting a date earlier) updates the
        # stored alert whose dates it overlaps.
        ev_start, ev_end = parse_time(ev.start or ev.time), parse_time(ev.end or ev.time)
        target = ev.id if ev.id in by_id else next(
            (a.id for a in stored if a.part == ev.part and a.id not in claimed
             and a.start <= ev_end and ev_start <= a.end), ev.id)
        claimed.add(target)
        ev = replace(ev, part_version=versions.get(ev.part, 0))
        what = store.put_alert(ev, params.hash, replaces=target)
        if what in out:
            got_alert = store.get_alert(target)
            assert got_alert is not None
            if what == "updated" and got_alert.status == "dismissed":
                continue  # stored, but not news: nobody wants to hear of it again
            out[what].append(got_alert)
    inputs = _inputs_digest(params, processed, versions,
                            store.alerts(site_id, params_hash=params.hash))
    store.put_scoring_state(site_id, params.hash, {"version": SCORING_VERSION,
                                                   "inputs": inputs, "series": states})
    return out


def usable_dates(store: Store, site_id: str, params_hash: str) -> dict[str, list[str]]:
    """Per grid, the acquisition times of the usable scenes (sorted ISO strings)."""
    out: dict[str, list[str]] = {}
    for row in store.processed(site_id, params_hash).values():
        if row.usable:
            out.setdefault(row.grid, []).append(iso(row.acquired))
    return {g: sorted(v) for g, v in out.items()}


def site_grids(store: Store, site_id: str) -> list[str]:
    """The keys of the grids a run of ``site_id`` processes (one per sensor kind and
    resolution, and per SAR orbit), in the order it processes them."""
    return sorted({grid_key(s) for s in store.scenes(site_id) if s.georeferenced})


def run_site(store: Store, site_id: str, params: RunParams | None = None, *,
             progress: Progress | None = None,
             sinks: Sequence[Sink] = (), products: str | Path | None = None,
             grids: Sequence[str] | None = None,
             processed_elsewhere: Sequence[RunReport] = ()) -> RunReport:
    """Process every catalogued scene of ``site_id`` not yet processed with ``params``, then
    score the series and store alerts (with their events, in the store's outbox); then each
    sink gets every event of the site still pending for it, this run's and those an earlier
    run left (:func:`sitewatch.watch.sinks.deliver_pending`).  With ``products`` (a folder),
    each pair's change map and score are kept there as Cloud Optimized GeoTIFFs
    (:mod:`sitewatch.watch.products`) for briefs.

    A site's grids are independent until scoring, so a cluster may process them apart
    (:mod:`sitewatch.watch.fleet`): ``grids`` (keys from :func:`site_grids`) processes only
    those, and neither scores, delivers nor records a run: that is left to a whole run
    after them, given their reports as ``processed_elsewhere`` so that its own report and
    run record count their scenes as processed, not reused."""
    t0 = _time.perf_counter()
    params = params or RunParams()
    site = store.use_site(site_id)
    if site is None:
        raise PipelineError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
    if not site.placed_parts() and grids is None:
        log.warning("%s: the site has no placed parts; only the rest of the site is scored",
                    site_id)
    scenes = [s for s in store.scenes(site_id) if s.georeferenced]
    if not scenes:
        raise PipelineError(f"site {site_id!r} has no georeferenced scenes; ingest some first "
                            "(`sitewatch ingest SITE PATH...`)")
    groups: dict[str, list[Scene]] = {}
    for s in scenes:
        groups.setdefault(grid_key(s), []).append(s)
    if grids is not None:
        unknown = sorted(set(grids) - set(groups))
        if unknown:
            raise PipelineError(f"site {site_id!r} has no grid {', '.join(unknown)} (its "
                                f"grids: {', '.join(sorted(groups))})")
        groups = {k: v for k, v in groups.items() if k in grids}
        scenes = [s for k in groups for s in groups[k]]
    plans = plan_grids(site, groups, params)  # refused up front, before anything is stored
    report = RunReport(site_id, params)
    whole = grids is None
    run = store.start_run(site_id, params.hash, params.to_dict(), __version__) if whole else None
    # A sink used for the first time gets the events from this run on.
    first_use = {s.key for s in sinks if store.subscribe_sink(s.key, site_id)} if whole else set()
    done = store.processed(site_id, params.hash)
    total = len(scenes)
    counted: set[str] = set()
    tick_cb = progress or (lambda *_: None)

    def tick(scene_id: str) -> None:
        counted.add(scene_id)  # a grid's pass may start again: each scene counts once
        tick_cb("process", len(counted), total)

    # The pipeline runs its own threads (a scene read while its references are made
    # ready; the two comparisons at once).  Its matrix products are small (bands x bands
    # by bands x pixels), where OpenBLAS's own threads only spin against those: one BLAS
    # thread made a new scene about a fifth faster (docs/profile_watch.md).
    with threadpool_limits(limits=1, user_api="blas"):
        for key in sorted(groups):
            grid, bands = plans[key]
            g = GridRun(store, site, key, groups[key], params,
                        Path(products) if products is not None else None, grid=grid,
                        bands=bands, cache=cache_folder(store.url))
            process_grid(g, done, report, tick)
            del g
    report.seconds = _time.perf_counter() - t0
    if run is None:  # some grids only: scoring and delivery come with the whole run
        return report
    # The grids processed elsewhere: their scenes count as processed, not reused, here.
    elsewhere = [p for part in processed_elsewhere for p in part.processed]
    report.processed = [*elsewhere, *report.processed]
    report.reused = max(report.reused - len(elsewhere), 0)
    tick_cb("alerts", 0, 1)
    report.alerts = score_alerts(store, site_id, params)
    tick_cb("alerts", 1, 1)
    report.deliveries = deliver_pending(store, site, sinks, first_use=first_use)
    report.seconds = _time.perf_counter() - t0
    store.finish_run(run.id, RunSummary(len(report.processed), report.reused,
                                        len(report.alerts["new"]),
                                        len(report.alerts["updated"]),
                                        round(report.seconds, 3)))
    return report


__all__ = [
    "MEMORY_ENV",
    "PIPELINE_VERSION",
    "STATUSES",
    "WATCH_METHOD",
    "PipelineError",
    "RunParams",
    "RunReport",
    "UnreadableScene",
    "grid_key",
    "lacking",
    "load_bands",
    "memory_budget",
    "run_memory",
    "run_site",
    "score_alerts",
    "series",
    "site_grids",
    "usable_dates",
]
