"""``sitewatch run``, ``timeline``, ``alerts`` and ``alert``: watching a site over time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

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
from sitewatch.errors import SiteError
from sitewatch.imagery.sensors import WATCH_METHOD
from sitewatch.times import iso_day

if TYPE_CHECKING:
    from sitewatch.store import Store
    from sitewatch.watch.records import StoredAlert
    from sitewatch.watch.sinks import Delivery

TIER_STYLE = {"info": "", "watch": "bold", "warning": "bold reverse"}


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


@click.command()
@click.argument("site_id")
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
@pass_ctx
def run(ctx: Ctx, site_id: str, method: str | None, params: tuple[str, ...],
        min_usable: float, composite: int, level_alerts: bool, jsonl: str | None,
        geojson: str | None, webhook: str | None, as_json: bool) -> None:
    """Process the site's new scenes, score every part and raise alerts.

    Only scenes without a result for these parameters are processed; an interrupted run
    resumes where it stopped.  Each sink gets the site's alert events it has not received,
    those an earlier run left pending included (see `sitewatch alerts deliver`).  While a
    `sitewatch watch` cycle works on the site, the run waits for it (the site's lock).
    """
    from sitewatch.watch.locks import describe_holder, site_lock
    from sitewatch.watch.pipeline import RunParams, run_site

    rp = RunParams(method=method, method_params=_params(params), min_usable=min_usable,
                   composite=composite, levels=level_alerts)

    def waiting(holder: Any) -> None:
        err.print(esc(f"site {site_id!r}: {describe_holder(holder)} is working on it; this "
                      "run starts when it is done (Ctrl-C gives up)"), soft_wrap=True)

    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
        # The site's lock: a watcher's cycle and this run never interleave (docs/watching.md).
        with site_lock(ctx.home, site_id, purpose="sitewatch run", wait=True,
                       on_wait=waiting):
            sinks = _sinks(jsonl, geojson, webhook, store, rp.hash)
            try:
                with progress_bar(not as_json) as tick:
                    rep = run_site(store, site_id, rp, progress=tick, sinks=sinks,
                                   products=ctx.home / "products")
            finally:
                for s in sinks:
                    s.close()
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
        _alert_table([*new, *upd], title="new and updated alerts")
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


def _alert_table(alerts: Sequence[StoredAlert], title: str) -> None:
    t = Table(title=title, title_justify="left")
    for c in ("id", "date", "part", "tier", "kind", "status", "what"):
        t.add_column(c, overflow="fold")
    for a in alerts:
        style = TIER_STYLE.get(a.tier, "")
        t.add_row(a.id, iso_day(a.time), esc(a.part), f"[{style}]{a.tier}[/]"
                  if style else a.tier, a.kind, a.status, esc(a.text))
    out.print(t)


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
@pass_ctx
def timeline(ctx: Ctx, site_id: str, part: str | None, plot: str | None,
             as_json: bool) -> None:
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
        t = Table(title=f"{part}: per date (changed % is of the part's observed pixels; "
                        "n/o = not observed)", title_justify="left")
        for c in ("date", "grid", "observed %", "changed %", "changed m2", "objects",
                  "vs composite %", "NDVI", "brightness", "alert"):
            t.add_column(c, justify="right" if c not in ("date", "grid", "alert") else "left")
        for r in tl.rows:
            m = r.measures
            obs = r.observed_fraction >= 0.5 and r.reference == "previous"
            t.add_row(iso_day(r.time), r.grid, _pct(r.observed_fraction),
                      _pct(r.changed_fraction) if obs else r.status_word,
                      _num(m.get("changed_area_m2"), "{:,.0f}") if obs else "",
                      str(int(m.get("objects") or 0)) if obs else "",
                      _pct(r.composite_fraction), _num(m.get("ndvi_after")),
                      _num(m.get("brightness_after")), ", ".join(r.alerts))
        out.print(t)
        return
    parts = tl.parts
    t = Table(title="changed % of each part since the previous usable date (n/o = not "
                    "observed; * = alert)", title_justify="left")
    t.add_column("date")
    t.add_column("grid")
    for p in parts:
        t.add_column(esc(p.replace("_", " ")), justify="right", max_width=12)
    for (time, grid), cells in tl.matrix().items():
        row = []
        for p in parts:
            cell = cells.get(p)
            if cell is None:
                row.append("")
            elif cell.reference != "previous" or cell.observed_fraction < 0.5:
                row.append(cell.status_word)
            else:
                row.append(_pct(cell.changed_fraction) + ("*" if cell.alerts else ""))
        t.add_row(iso_day(time), grid, *row)
    out.print(t)


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
@pass_ctx
def list_alerts(ctx: Ctx, site_id: str, statuses: tuple[str, ...], part: str | None,
                as_json: bool) -> None:
    """List a site's alerts (of the latest run's parameters), oldest first."""
    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue")
        last = store.last_run(site_id)  # the alerts of the latest run's parameters
        found = store.alerts(site_id, status=statuses or None, part=part,
                             params_hash=last.params_hash if last else None)
    if as_json:
        echo_json([a.payload() for a in found])
        return
    if not found:
        out.print("no alerts" + (f" with status {', '.join(statuses)}" if statuses else ""))
        return
    _alert_table(found, title=f"alerts at {esc(site_id)} ({len(found)})")


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
@click.argument("action", type=click.Choice(["seen", "dismiss", "confirm", "reopen"]))
@click.option("--reason", help="Why (kept with the alert; asked for when dismissing).")
@click.option("--json", "as_json", is_flag=True, help="The updated alert as JSON.")
@pass_ctx
def alert(ctx: Ctx, alert_id: str, action: str, reason: str | None, as_json: bool) -> None:
    """Mark an alert seen, dismiss it (a false alarm: its dates become normal for the part's
    baseline at the next run), confirm it (a real event), or reopen it.  ALERT_ID may be a
    unique prefix."""
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

__all__ = ["TIER_STYLE", "alert", "alerts", "deliver", "list_alerts", "run", "timeline"]
