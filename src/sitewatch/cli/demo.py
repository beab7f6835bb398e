"""``sitewatch demo``: the whole spine on the simulated site, offline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sitewatch.cli.common import Ctx, echo_json, err, esc, out, pass_ctx, progress_bar
from sitewatch.cli.tables import Col, print_table, styled, wide_option
from sitewatch.times import iso_day

if TYPE_CHECKING:
    from rich.text import Text

    from sitewatch.sim.demo import DemoResult


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.0f}"


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Where the simulated scenario and the brief go [default: HOME/demo].")
@click.option("--seed", type=int, default=0, show_default=True, help="Scenario seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@wide_option
@pass_ctx
def demo(ctx: Ctx, workdir: str | None, seed: int, as_json: bool, wide: bool) -> None:
    """Simulate a launch site, catalogue it, run the watch pipeline on it (per-part change,
    alerts), show what it stored beside the ground truth, and write the analyst brief.
    Offline; SIMULATED data."""
    from sitewatch.sim.demo import run_demo  # the simulator loads only when the demo runs

    home = ctx.home
    err.print(f"sitewatch demo: SIMULATED launch site; catalogue in {esc(home)}")
    with progress_bar(not as_json, stage_lines=True) as tick:
        res = run_demo(home, workdir=Path(workdir) if workdir else None, seed=seed,
                       progress=tick)
    if as_json:
        echo_json(res.to_dict())
        return
    ing = res.ingest
    counts = ", ".join(f"{ing.count(k)} {k}" for k in ("added", "updated", "unchanged",
                                                        "duplicate") if ing.count(k)) or "none"
    out.print(f"catalogued {len(ing.items)} scenes of site {res.site.id!r} ({counts})")
    if res.shifts:
        errs = sorted(c.error for c in res.shifts)
        out.print(f"co-registered {len(errs)} scenes to the reference of their grid; error "
                  f"against the simulator's true shifts: median {errs[len(errs) // 2]:.2f} px, "
                  f"max {errs[-1]:.2f} px")
    for sc, why in res.flagged_registrations:
        out.print(esc(f"  co-registration flagged: {sc.id}: {why}"))
    for sc, why in res.skipped:
        out.print(esc(f"  not usable: {sc.id} ({sc.acquired:%Y-%m-%d}): {why}"))
    for sensor in sorted({p.sensor for p in res.pairs}):
        _pairs_table(res, sensor, wide)
    by_id = {a.id: a for a in res.alerts}
    card = res.scorecard
    if card is not None:
        print_table(SCORE_COLUMNS, [
            (h.change.event, h.change.time, h.change.kind,
             (hit.id if wide else hit.id[:8]) if hit else styled("MISSED", "bold"),
             iso_day(hit.time) if hit else "", hit.tier if hit else "",
             str(h.lag) if h.lag is not None else "", ", ".join(h.change.parts))
            for h in card.hits for hit in [by_id.get(h.alert or "")]], wide=wide,
            title="alerts from `sitewatch run` beside the planted changes (lag in usable "
                  "scenes after the change; detected = lag 0 or 1)")
        for fa in card.false_alarms:
            what = fa.text if wide else fa.text.split(". ")[0]  # `sitewatch alert ID`: all
            out.print(esc(f"  false alarm: {fa.id if wide else fa.id[:8]} {iso_day(fa.time)} "
                          f"{fa.tier}: {what}"))
        s = card.summary()
        out.print(f"alerts: {s['detected']} of {s['changes']} planted changes detected within "
                  f"one usable scene (mean lag {s['mean_lag_scenes'] or 0:.2f}); "
                  f"{s['false_alarms']} false alarm(s) in {s['alerts']} alerts "
                  f"({s['false_alarms_per_part_year'] or 0:.2f} per part-year)")
        out.print(f"see them: sitewatch alerts {res.site.id}; sitewatch timeline {res.site.id}")
    sm = res.summary()
    out.print(f"flagged (>= 5 % changed): {sm['quiet_flagged']:.1%} of "
              f"{sm['quiet_part_pairs']} part-pairs where nothing happened, "
              f"{sm['event_flagged']:.1%} of {sm['event_part_pairs']} where an event did; "
              f"{sm['event_checks_hit']} of {sm['event_checks']} events seen at their part")
    if res.story:
        print_table(STORY_COLUMNS, [
            (r.date, f"{r.launch} ({r.launch_likelihood:.0%})",
             f"{r.engine_test} ({r.engine_test_likelihood:.0%})", r.window or "", r.what)
            for r in res.story], wide=wide,
            title=f"the assessment as evidence arrives (reports: {esc(res.story_sources)})")
        out.print(f"why: sitewatch assess {res.site.id} --at {res.story[-1].date}")
    if res.brief:
        out.print(f"brief: {esc(res.brief)}")
    out.print(esc(f"see it in the browser: {serve_command(home)}, then open "
                  f"http://127.0.0.1:8000/sites/{res.site.id}"), soft_wrap=True)


#: The scorecard: the event, its date and the alert that caught it first.
SCORE_COLUMNS = (Col("event"), Col("date"), Col("change", 3), Col("alert"),
                 Col("alert date", 1), Col("tier", 4), Col("lag", 2, justify="right"),
                 Col("parts", 5, text=True, one_line=False, min_width=16))
#: The story: the date and the two assessments first; what arrived wraps.
STORY_COLUMNS = (Col("date"), Col("launch"), Col("engine test"),
                 Col("expected launch window", 1, text=True, one_line=False, min_width=12),
                 Col("what arrived", 2, text=True, one_line=False, min_width=16))


def _pairs_table(res: DemoResult, sensor: str, wide: bool) -> None:
    """Changed % per pair of dates (rows) and part (columns) for one sensor; at a narrow
    terminal the parts where the simulator planted events are kept first."""
    from sitewatch.sim.demo import REST

    pairs = [q for q in res.pairs if q.sensor == sensor]
    events = {p: sum(bool(q.truth_at(p)) for q in pairs) for p in res.parts}
    rank = sorted(res.parts, key=lambda p: -events[p])
    cols = [Col("before"), Col("after"),
            *(Col(p.replace("_", " "), 2 + rank.index(p), justify="right") for p in res.parts),
            Col("rest", 1, justify="right"),
            Col("ground truth between the dates", 2 + len(rank), text=True, one_line=False)]
    rows = []
    for pair in pairs:
        cells: list[str | Text] = []
        for p in res.parts:
            pc = pair.parts.get(p)
            style = " ".join(s for s, on in (("bold", pair.flagged(p)),
                                              ("reverse", pair.truth_at(p))) if on)
            cells.append(styled("n/o" if pc is None or not pc.observed
                                else _pct(pc.changed_fraction), style))
        truth = "; ".join(f"{e.id} {e.kind} @ {e.part}" for e in pair.events)
        rows.append((iso_day(pair.before.acquired), iso_day(pair.after.acquired), *cells,
                     _pct(pair.parts[REST].changed_fraction), truth))
    print_table(cols, rows, wide=wide,
                title=f"changed % of each part's observed pixels, {sensor} (bold = flagged "
                      ">= 5 %; [reverse] x [/] = ground-truth event there)")


def serve_command(home: Path) -> str:
    """The command that serves ``home``'s web view (with the install step when the ``web``
    extra is missing)."""
    import importlib.util
    import shlex

    cmd = f"sitewatch --home {shlex.quote(str(home))} serve"
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        cmd = f"pip install 'sitewatch[web]' && {cmd}"
    return cmd

__all__ = ["demo", "serve_command"]
