"""``sitewatch run``, ``timeline``, ``alerts`` and ``alert``: watching a site over time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from sitewatch.cli.common import (
    Ctx,
    ListByDefaultGroup,
    echo_json,
    err,
    esc,
    out,
    pass_ctx,
    progress_bar,
)
from sitewatch.cli.detect import _params
from sitewatch.cli.tables import Col, print_table, styled, wide_option
from sitewatch.errors import SiteError
from sitewatch.imagery.sensors import WATCH_METHOD
from sitewatch.times import iso_day

if TYPE_CHECKING:
    from sitewatch.store import Store
    from sitewatch.watch.records import StoredAlert
    from sitewatch.watch.sinks import Delivery
    from sitewatch.watch.timeline import Timeline

TIER_STYLE = {"info": "", "watch": "bold", "warning": "bold reverse"}


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


@click.command()
@click.argument("site_ids", metavar="SITE...", nargs=-1)
@click.option("--all", "all_sites", is_flag=True, help="Every site in the catalogue.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Run the sites on a local Dask cluster of this many worker processes "
                   "(needs the `cluster` extra) [default with several sites: one per core].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the sites on this Dask scheduler (tcp://host:8786); its workers need "
                   "sitewatch and the same home (shared file system) and store.")
@click.option("--method", help="Change detector (see `sitewatch methods`) [default: "
              f"{WATCH_METHOD['optical']} for optical, {WATCH_METHOD['sar']} for SAR].")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A detector parameter; repeatable.")
@click.option("--min-usable", type=float, default=0.5, show_default=True,
              help="A scene is used when at least this share of the site is observed.")
@click.option("--composite", type=int, default=5, show_default=True,
              help="Usable dates in the rolling clear-sky reference composite.")
@click.option("--level-alerts", is_flag=True,
              help="Also alert on change points in parts' brightness/NDVI alone (noisy with "
                   "less than a year of history).")
@click.option("--jsonl", type=click.Path(dir_okay=False),
              help="Append new and updated alerts to this JSON-lines file.")
@click.option("--geojson", type=click.Path(dir_okay=False),
              help="Write all the site's alerts to this GeoJSON file.")
@click.option("--webhook", help="POST each new or updated alert to this URL (JSON body, "
              "see docs/watch.md); retried with back-off for at most 30 s in all.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@wide_option
@pass_ctx
def run(ctx: Ctx, site_ids: tuple[str, ...], all_sites: bool, workers: int | None,
        scheduler: str | None, method: str | None, params: tuple[str, ...],
        min_usable: float, composite: int, level_alerts: bool, jsonl: str | None,
        geojson: str | None, webhook: str | None, as_json: bool, wide: bool) -> None:
    """Process the site's new scenes, score every part and raise alerts.

    Only scenes without a result for these parameters are processed; an interrupted run
    resumes where it stopped.  Each sink gets the site's alert events it has not received,
    those an earlier run left pending included (see `sitewatch alerts deliver`).  While a
    `sitewatch watch` cycle works on the site, the run waits for it (the site's lock).

    Several sites (or --all) run as one task per site on a Dask cluster: a local one of
    --workers processes, or the scheduler at --scheduler (docs/scale.md).
    """
    from sitewatch.watch.pipeline import RunParams

    rp = RunParams(method=method, method_params=_params(params), min_usable=min_usable,
                   composite=composite, levels=level_alerts)
    if all_sites and site_ids:
        raise click.UsageError("give sites or --all, not both")
    if not all_sites and not site_ids:
        raise click.UsageError("missing SITE (or --all)")
    if workers and scheduler:
        raise click.UsageError("give --workers (a local cluster) or --scheduler, not both")
    if all_sites or len(site_ids) > 1 or workers or scheduler:
        if jsonl or geojson or webhook:
            raise click.UsageError("--jsonl/--geojson/--webhook go with one site; with many, "
                                   "`sitewatch alerts deliver SITE` sends each site's events")
        _run_fleet(ctx, site_ids, rp, workers=workers, scheduler=scheduler, as_json=as_json)
        return
    _run_one(ctx, site_ids[0], rp, jsonl=jsonl, geojson=geojson, webhook=webhook,
             as_json=as_json, wide=wide)


def _run_fleet(ctx: Ctx, site_ids: tuple[str, ...], rp: Any, *, workers: int | None,
               scheduler: str | None, as_json: bool) -> None:
    """Many sites on a Dask cluster: a line per site as it finishes, a table at the end."""
    from sitewatch.watch.fleet import jobs_for, run_fleet

    with ctx.store() as store:
        known = [r.site.id for r in store.list_sites()]
        missing = [s for s in site_ids if s not in known]
        if missing:
            raise SiteError(f"no site {missing[0]!r} in the catalogue (see `sitewatch site "
                            "list`)")
        db = store.engine.url.render_as_string(hide_password=False)
    ids = site_ids or tuple(known)
    jobs = jobs_for(ids, db, ctx.home, rp)

    def said(o: Any) -> None:
        if not as_json:
            what = (f"{o.processed} processed, {o.reused} already done, {o.new_alerts} new "
                    f"alert(s), {o.seconds:.1f} s" if o.ok else f"failed: {o.error}")
            err.print(esc(f"  {o.site_id}: {what}"), soft_wrap=True)

    with progress_bar(not as_json) as tick:
        outcomes = run_fleet(jobs, scheduler=scheduler, workers=workers, progress=tick,
                             on_outcome=said)
    if as_json:
        echo_json([o.to_dict() for o in outcomes])
    else:
        bad = [o for o in outcomes if not o.ok]
        out.print(f"{len(outcomes)} site(s): {len(outcomes) - len(bad)} done, {len(bad)} "
                  "failed")
    if any(not o.ok for o in outcomes):
        raise SystemExit(1)


def _run_one(ctx: Ctx, site_id: str, rp: Any, *, jsonl: str | None, geojson: str | None,
             webhook: str | None, as_json: bool, wide: bool) -> None:
    from sitewatch.watch.locks import describe_holder, site_lock
    from sitewatch.watch.pipeline import run_site

    def waiting(holder: Any) -> None:
        err.print(esc(f"site {site_id!r}: {describe_holder(holder)} is working on it; this "
                      "run starts when it is done (Ctrl-C gives up)"), soft_wrap=True)

    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
        # The site's lock: a watcher's cycle and this run never interleave (docs/watching.md).
        with site_lock(ctx.home, site_id, purpose="sitewatch run", wait=True, store=store,
                       on_wait=waiting):
            sinks = _sinks(jsonl, geojson, webhook, store, rp.hash)
            try:
                with progress_bar(not as_json) as tick:
                    rep = run_site(store, site_id, rp, progress=tick, sinks=sinks,
                                   products=ctx.home / "products")
            finally:
                for s in sinks:
                    s.close()
        labels = _part_labels(store, site_id)
    if as_json:
        echo_json(rep.to_dict())
        return
    done = ", ".join(f"{rep.count(s)} {s}" for s in ("ok", "first", "unusable", "rejected",
                                                     "failed") if rep.count(s)) or "none"
    out.print(f"site {esc(repr(site_id))}: {len(rep.processed)} scene(s) processed ({done}); "
              f"{rep.reused} already done; {rep.seconds:.1f} s")
    if ctx.verbosity > 0:
        for sc, st, why in rep.processed:
            out.print(esc(f"  {st:9} {sc}  {why}"))
    else:
        for sc, st, why in rep.processed:
            if st in ("rejected", "failed"):
                err.print(esc(f"  {st}: {sc}: {why}"))
    new, upd = rep.alerts.get("new", []), rep.alerts.get("updated", [])
    out.print(f"{len(new)} new alert(s), {len(upd)} updated")
    if new or upd:
        _alert_table([*new, *upd], title="new and updated alerts", wide=wide, labels=labels)
    _print_deliveries(rep.deliveries)
    left = sum(d.pending for d in rep.deliveries)
    if left:
        err.print(f"{left} alert event(s) still pending: `sitewatch alerts deliver "
                  f"{esc(site_id)}` sends them (so does the next run)")


def _sinks(jsonl: str | None, geojson: str | None, webhook: str | None, store: Store,
           params_hash: str | None) -> list[Any]:
    from sitewatch.watch.sinks import GeoJsonSink, JsonLinesSink, WebhookSink

    sinks: list[Any] = []
    if jsonl:
        sinks.append(JsonLinesSink(jsonl))
    if geojson:
        sinks.append(GeoJsonSink(geojson, lambda s: store.alerts(s, params_hash=params_hash)))
    if webhook:
        sinks.append(WebhookSink(webhook))
    return sinks


def _print_deliveries(deliveries: Sequence[Delivery]) -> None:
    for d in deliveries:
        line = f"{d.sink}: {d.delivered} alert event(s) delivered, {d.pending} pending"
        if d.first_use:
            line += " (first use for this site: it gets the events from now on)"
        out.print(esc(line))
        if d.error:
            err.print(esc(f"  {d.sink}: {d.error}"))


#: The alerts table: the date, the part, the tier and the short id always; the rest as room
#: allows (`sitewatch alert ID` shows one alert in full).
ALERT_COLUMNS = (Col("date"), Col("part"), Col("tier", 1), Col("status", 2), Col("kind", 3),
                 Col("id"), Col("what", 4, text=True, min_width=16),
                 Col("label", 5, text=True))


#: An alert's kind in the table, short (the brief's words, as `sitewatch alert ID` shows).
KIND_SHORT = {"departure": "unusual", "level_shift": "new level", "spike": "short-lived",
              "unconfirmed": "unconfirmed"}


def _alert_table(alerts: Sequence[StoredAlert], title: str, wide: bool = False,
                 labels: dict[str, str] | None = None) -> None:
    """One line per alert at 80 columns; ``wide``: the full id and the full text."""
    short = _short_ids([a.id for a in alerts])
    rows = []
    for a in alerts:
        what = a.text
        if what.startswith(f"{a.part}: "):  # the part is in its own column
            what = what[len(a.part) + 2:]
        if not wide:  # its first sentence; the findings are in `sitewatch alert ID`
            what = what.split(". ")[0]
        rows.append((iso_day(a.time), a.part, styled(a.tier, TIER_STYLE.get(a.tier, "")),
                     a.status, KIND_SHORT.get(a.kind, a.kind), a.id if wide else short[a.id],
                     what,
                     (labels or {}).get(a.part, "")))
    print_table(ALERT_COLUMNS, rows, title=title, wide=wide)


def _short_ids(ids: Sequence[str], least: int = 8) -> dict[str, str]:
    """Each id cut to the shortest prefix of at least ``least`` characters that tells the
    listed ids apart (``sitewatch alert`` takes a unique prefix).

    >>> _short_ids(["abcdef0123", "abcdef0199"], least=4)
    {'abcdef0123': 'abcdef012', 'abcdef0199': 'abcdef019'}
    """
    n = least
    while len({i[:n] for i in ids}) < len(set(ids)):
        n += 1
    return {i: i[:n] for i in ids}


def _part_labels(store: Store, site_id: str) -> dict[str, str]:
    site = store.use_site(site_id)
    return {p.name: p.label for p in site.parts} if site is not None else {}


def _params_hash(store: Store, site_id: str) -> str:
    if store.use_site(site_id) is None:
        raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
    last = store.last_run(site_id)
    if last is None:
        raise SiteError(f"site {site_id!r} has not been run yet: `sitewatch run {site_id}`")
    return last.params_hash


@click.command()
@click.argument("site_id")
@click.option("--part", help="One part (default: every part, changed % per date).")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Also draw the timeline to this PNG (needs matplotlib: "
                   "pip install 'sitewatch[plot]').")
@click.option("--json", "as_json", is_flag=True, help="Every observation as JSON.")
@wide_option
@pass_ctx
def timeline(ctx: Ctx, site_id: str, part: str | None, plot: str | None,
             as_json: bool, wide: bool) -> None:
    """Per-part observations over time (from the latest `sitewatch run`)."""
    from sitewatch.watch.timeline import build_timeline

    with ctx.store() as store:
        ph = _params_hash(store, site_id)
        tl = build_timeline(store, site_id, ph, part=part)
    if plot:
        from sitewatch.watch.timeline import plot_timeline

        path = plot_timeline(tl, plot)
        err.print(f"plot: {esc(path)}")
    if as_json:
        echo_json(tl.to_dict())
        return
    if part:
        _part_timeline(tl, part, wide)
    else:
        _matrix_timeline(tl, wide)


#: `timeline --part`: the date, the grid, the changed share and the alerts first.
PART_TIMELINE_COLUMNS = (
    Col("date"), Col("grid"), Col("observed %", 2, justify="right"),
    Col("changed %", justify="right"), Col("changed m2", 3, justify="right"),
    Col("objects", 4, justify="right"), Col("vs composite %", 2, justify="right"),
    Col("NDVI", 5, justify="right"), Col("brightness", 6, justify="right"), Col("alert", 1))


def _part_timeline(tl: Timeline, part: str, wide: bool) -> None:
    rows = []
    for r in tl.rows:
        m = r.measures
        obs = r.observed_fraction >= 0.5 and r.reference == "previous"
        ids = ", ".join(r.alerts) if wide else ", ".join(i[:8] for i in r.alerts)
        rows.append((iso_day(r.time), r.grid, _pct(r.observed_fraction),
                     _pct(r.changed_fraction) if obs else r.status_word,
                     _num(m.get("changed_area_m2"), "{:,.0f}") if obs else "",
                     str(int(m.get("objects") or 0)) if obs else "",
                     _pct(r.composite_fraction), _num(m.get("ndvi_after")),
                     _num(m.get("brightness_after")), ids))
    print_table(PART_TIMELINE_COLUMNS, rows, wide=wide,
                title=f"{esc(part)}: per date (changed % is of the part's observed pixels; "
                      "n/o = not observed)")


def _matrix_timeline(tl: Timeline, wide: bool) -> None:
    """Changed % per date (rows) and part (columns); at a narrow terminal the parts with
    the most alerts, then the most change, are kept."""
    matrix = tl.matrix()
    parts = tl.parts
    alerted = {p: sum(bool(c.get(p) and c[p].alerts) for c in matrix.values()) for p in parts}
    peak = {p: max((c[p].changed_fraction for c in matrix.values()
                    if c.get(p) is not None and not math.isnan(c[p].changed_fraction)),
                   default=0.0) for p in parts}
    rank = sorted(parts, key=lambda p: (-alerted[p], -peak[p]))
    cols = [Col("date"), Col("grid")] + [
        Col(p.replace("_", " "), 1 + rank.index(p), justify="right") for p in parts]
    rows = []
    for (time, grid), cells in matrix.items():
        row = [iso_day(time), grid]
        for p in parts:
            cell = cells.get(p)
            if cell is None:
                row.append("")
            elif cell.reference != "previous" or cell.observed_fraction < 0.5:
                row.append(cell.status_word)
            else:
                row.append(_pct(cell.changed_fraction) + ("*" if cell.alerts else ""))
        rows.append(row)
    print_table(cols, rows, wide=wide, title="changed % of each part since the previous "
                "usable date (n/o = not observed; * = alert)")


@click.group(cls=ListByDefaultGroup, subcommand_metavar="SITE | COMMAND [ARGS]...")
def alerts() -> None:
    """A site's alerts: `sitewatch alerts SITE` lists them (short for `sitewatch alerts list
    SITE`); `sitewatch alerts deliver SITE` sends the alert events still pending for sinks.
    """


@alerts.command("list")
@click.argument("site_id")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["new", "seen", "dismissed", "confirmed"]),
              help="Only alerts with this status (repeatable) [default: all].")
@click.option("--part", help="Only this part.")
@click.option("--json", "as_json", is_flag=True, help="Full alerts as JSON.")
@wide_option
@pass_ctx
def list_alerts(ctx: Ctx, site_id: str, statuses: tuple[str, ...], part: str | None,
                as_json: bool, wide: bool) -> None:
    """List a site's alerts (of the latest run's parameters), oldest first: one line each
    (`sitewatch alert ALERT_ID` shows one in full; so do --wide and --json)."""
    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue")
        last = store.last_run(site_id)  # the alerts of the latest run's parameters
        found = store.alerts(site_id, status=statuses or None, part=part,
                             params_hash=last.params_hash if last else None)
        labels = _part_labels(store, site_id)
    if as_json:
        echo_json([a.payload() for a in found])
        return
    if not found:
        out.print("no alerts" + (f" with status {', '.join(statuses)}" if statuses else ""))
        return
    _alert_table(found, title=f"alerts at {esc(site_id)} ({len(found)})", wide=wide,
                 labels=labels)


@alerts.command("deliver")
@click.argument("site_id")
@click.option("--jsonl", type=click.Path(dir_okay=False), help="A JSON-lines file.")
@click.option("--geojson", type=click.Path(dir_okay=False), help="A GeoJSON file.")
@click.option("--webhook", help="A webhook URL.")
@click.option("--all", "replay", is_flag=True,
              help="Also send the events stored before the sink was first used for the site.")
@click.option("--json", "as_json", is_flag=True, help="What was delivered, as JSON.")
@pass_ctx
def deliver(ctx: Ctx, site_id: str, jsonl: str | None, geojson: str | None,
            webhook: str | None, replay: bool, as_json: bool) -> None:
    """Send the site's alert events still pending for sinks, without processing imagery.

    A sink gets the events stored since it was first used for the site that it has not
    received (a run killed or failing before it delivered leaves them pending); --all also
    sends the earlier ones.  With no sink option, every sink used for the site before gets
    what is pending for it.  Delivery is at least once: receivers de-duplicate by
    `event_id`.  Exits with 1 when some events are still pending.
    """
    from sitewatch.watch.sinks import SinkError, deliver_pending, sink_of

    with ctx.store() as store:
        site = store.use_site(site_id)
        if site is None:
            raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
        last = store.last_run(site_id)
        ph = last.params_hash if last else None
        sinks = _sinks(jsonl, geojson, webhook, store, ph)
        if not sinks:
            keys = store.sinks_of(site_id)
            if not keys:
                raise SinkError(f"site {site_id!r} has no sinks yet: name one (--jsonl, "
                                "--geojson or --webhook)")
            sinks = [sink_of(k, lambda s: store.alerts(s, params_hash=ph)) for k in keys]
        try:
            got = deliver_pending(store, site, sinks, replay=replay)
        finally:
            for s in sinks:
                s.close()
    if as_json:
        echo_json([d.to_dict() for d in got])
    else:
        _print_deliveries(got)
    left = sum(d.pending for d in got)
    if left:
        raise SinkError(f"{left} alert event(s) of site {site_id!r} still pending; run "
                        "`sitewatch alerts deliver` again later")


@click.command()
@click.argument("alert_id")
@click.argument("action", required=False,
                type=click.Choice(["seen", "dismiss", "confirm", "reopen"]))
@click.option("--reason", help="Why (kept with the alert; asked for when dismissing).")
@click.option("--json", "as_json", is_flag=True, help="The (updated) alert as JSON.")
@pass_ctx
def alert(ctx: Ctx, alert_id: str, action: str | None, reason: str | None,
          as_json: bool) -> None:
    """Show one alert in full (`sitewatch alert ALERT_ID`), or mark it seen, dismiss it (a
    false alarm: its dates become normal for the part's baseline at the next run), confirm
    it (a real event), or reopen it.  ALERT_ID may be a unique prefix (as `alerts` shows)."""
    if action is None:
        with ctx.store() as store:
            found = store.get_alert(alert_id)
            if found is None:
                raise SiteError(f"no alert {alert_id!r} (see `sitewatch alerts SITE`)")
            labels = _part_labels(store, found.site)
        if as_json:
            echo_json(found.payload())
        else:
            _show_alert(found, labels.get(found.part, ""))
        return
    status = {"seen": "seen", "dismiss": "dismissed", "confirm": "confirmed",
              "reopen": "new"}[action]
    if action == "dismiss" and not reason:
        reason = "dismissed without a reason"
    with ctx.store() as store:
        a = store.set_alert_status(alert_id, status, reason)
    if as_json:
        echo_json(a.payload())
        return
    out.print(esc(f"alert {a.id} ({a.part}, {iso_day(a.time)}): {status}"
                  + (f" ({reason})" if reason else "")))
    if action == "dismiss":
        out.print("its dates count as normal for the part from the next `sitewatch run`")

def _show_alert(a: StoredAlert, label: str) -> None:
    """Every field of one alert an analyst reads, then its full text."""
    x = a.alert
    span = iso_day(a.time) + (f" to {iso_day(a.end)}" if iso_day(a.end) != iso_day(a.time)
                              else "")
    rows = [("alert", a.id), ("site", a.site),
            ("part", a.part + (f" ({label})" if label else "")),
            ("dates", f"{span} (previous usable image {iso_day(a.start)})"
             if x.start else span),
            ("tier", a.tier), ("kind", a.kind),
            ("status", a.status + (f" ({a.reason})" if a.reason else "")),
            ("measure", f"{x.measure}: {_num(x.value, '{:.4g}')} against a normal "
                        f"{_num(x.expected, '{:.4g}')}, {_num(x.z, '{:.1f}')} spreads"),
            ("confidence", f"{x.confidence}, {x.history} dates of history"),
            ("scenes", f"{x.before_scene or '?'} -> {x.after_scene or '?'}"
             + (f" ({x.grid})" if x.grid else ""))]
    if x.objects:
        rows.append(("objects", f"{x.objects}, largest {x.largest_object_m2:,.0f} m2"))
    for k, v in rows:
        out.print(f"[bold]{k:>10}[/]  {esc(v)}")
    out.print()
    out.print(esc(a.text), soft_wrap=False)  # wrapped at words on a terminal


__all__ = ["TIER_STYLE", "alert", "alerts", "deliver", "list_alerts", "run", "timeline"]
