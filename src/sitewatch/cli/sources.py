"""``sitewatch source add|list|remove`` and ``sitewatch sync``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click

from sitewatch.cli.common import Ctx, echo_json, err, esc, out, pass_ctx, progress_bar
from sitewatch.cli.tables import Col, print_table, wide_option
from sitewatch.errors import SiteError, SourceError
from sitewatch.times import parse_time

_PRESET_NAMES = ("s2-l2a", "landsat-c2-l2", "s1-rtc", "s1-grd")


def _query(values: tuple[str, ...]) -> dict[str, Any]:
    """``--query`` values: JSON objects (merged), or ``key=value`` (``eo:cloud_cover<20``
    style is not parsed: give JSON for operators)."""
    query: dict[str, Any] = {}
    for v in values:
        text = v.strip()
        if text.startswith("{"):
            try:
                got = json.loads(text)
            except ValueError as exc:
                raise SourceError(f"--query {text[:80]!r} is not valid JSON ({exc})") from None
            if not isinstance(got, dict):
                raise SourceError(f"--query {text[:80]!r} is not a JSON object")
            query.update(got)
            continue
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise SourceError(f"--query {text[:80]!r}: give JSON or key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        query[key.strip()] = {"eq": value}
    return query


@click.group()
def source() -> None:
    """STAC imagery sources of a site (what `sitewatch sync` searches)."""


@source.command("add")
@click.argument("site_id")
@click.option("--preset", type=click.Choice(_PRESET_NAMES),
              help="A public catalogue: Sentinel-2 L2A (Earth Search), Landsat C2 L2, "
                   "Sentinel-1 RTC or GRD (Planetary Computer, signed: needs the "
                   "stac-signing extra).")
@click.option("--stac", "api", help="STAC API URL (instead of, or overriding, a preset's).")
@click.option("--collection", help="Collection id (with --stac).")
@click.option("--name", help="Source name [default: the preset or collection].")
@click.option("--query", "queries", multiple=True,
              help='Extra search query: JSON ({"s2:mgrs_tile": {"eq": "52TDL"}}) or '
                   "key=value; repeatable.")
@click.option("--max-cloud", type=click.FloatRange(0, 100),
              help="Largest eo:cloud_cover (percent) to catalogue.")
@click.option("--header-env", metavar="NAME",
              help="Environment variable holding a token or 'Header: value' sent to the API "
                   "host (the value is never stored or shown).")
@click.option("--json", "as_json", is_flag=True, help="The stored source as JSON.")
@pass_ctx
def add(ctx: Ctx, site_id: str, preset: str | None, api: str | None, collection: str | None,
        name: str | None, queries: tuple[str, ...], max_cloud: float | None,
        header_env: str | None, as_json: bool) -> None:
    """Add a STAC source to a site: a --preset, or --stac URL --collection C."""
    from sitewatch.sources.presets import get_preset
    from sitewatch.sources.records import Source

    if preset is None and not (api and collection):
        raise click.UsageError("give --preset NAME, or --stac URL with --collection C")
    p = get_preset(preset) if preset else None
    api = api or (p.api if p else None)
    collection = collection or (p.collection if p else None)
    assert api is not None and collection is not None
    src = Source(site_id, name or preset or collection, api, collection, _query(queries),
                 max_cloud, preset, header_env)
    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue at {ctx.home}")
        stored = store.add_source(src)
    if as_json:
        echo_json(stored.to_dict())
        return
    out.print(esc(f"site {site_id!r}: source {stored.name!r} added ({stored.collection} at "
                  f"{stored.api})"))
    if p is not None and p.signing:
        err.print(esc("note: this catalogue's assets are signed: pip install "
                      "'sitewatch[stac-signing]' before `sitewatch sync`"))


@source.command("list")
@click.argument("site_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@wide_option
@pass_ctx
def list_(ctx: Ctx, site_id: str | None, as_json: bool, wide: bool) -> None:
    """List the sources of a site (or of every site)."""
    with ctx.store() as store:
        if site_id is not None and store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue at {ctx.home}")
        rows = store.sources(site_id)
    if as_json:
        echo_json([s.to_dict() for s in rows])
        return
    print_table(SOURCE_COLUMNS, [
        (s.site_id, s.name, s.preset or "-", s.collection,
         f"{s.max_cloud:g}%" if s.max_cloud is not None else "-",
         json.dumps(s.query, sort_keys=True) if s.query else "-", s.api) for s in rows],
        wide=wide)
    out.print(f"{len(rows)} source(s)")


#: `source list`: the query and the API URL are the long ones; --wide shows them.
SOURCE_COLUMNS = (Col("site"), Col("name"), Col("preset", 3), Col("collection", 1),
                  Col("max cloud", 2, justify="right"), Col("query", 5, text=True),
                  Col("api", 4))


@source.command("remove")
@click.argument("site_id")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Remove without asking.")
@pass_ctx
def remove(ctx: Ctx, site_id: str, name: str, yes: bool) -> None:
    """Remove a source (the scenes it brought stay catalogued)."""
    with ctx.store() as store:
        if not any(s.name == name for s in store.sources(site_id)):
            raise SourceError(f"site {site_id!r} has no source {name!r} (see `sitewatch "
                              f"source list {site_id}`)")
        if not yes:
            click.confirm(f"Remove source {name} of site {site_id} (its scenes stay)?",
                          abort=True, err=True)
        store.remove_source(site_id, name)
    out.print(esc(f"site {site_id!r}: source {name!r} removed; its scenes stay catalogued"))


@click.command()
@click.argument("site_id")
@click.option("--from", "start", help="Only Items acquired from this date/time (ISO 8601).")
@click.option("--to", "end", help="Only Items acquired up to this date/time (ISO 8601).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@pass_ctx
def sync(ctx: Ctx, site_id: str, start: str | None, end: str | None, as_json: bool) -> None:
    """Catalogue the new Items of a site's STAC sources, reading only the site's window of
    each asset (kept under the home's cache/; `sitewatch run` then works offline).

    A re-sync reads nothing already catalogued.  Exits with status 1 when an Item or a
    source failed (they are tried again at the next sync).
    """
    from sitewatch.sources.sync import sync_site

    t0 = parse_time(start, "--from") if start else None
    t1 = parse_time(end, "--to") if end else None
    if t1 is not None and end is not None and len(end.strip()) <= 10:  # a day: all of it
        t1 += timedelta(days=1, seconds=-1)
    with ctx.store() as store, progress_bar(not as_json) as tick:
        report = sync_site(store, site_id, start=t0, end=t1, progress=tick,
                           cache=ctx.home / "cache")
    if as_json:
        echo_json(report.to_dict())
    else:
        if ctx.verbosity >= 0:
            for note in report.skipped:
                err.print(esc(f"skipped {note}"))
            for note in report.failed:
                err.print(esc(f"failed {note}"))
        out.print(esc(report.summary()))
    if not report.ok:
        raise SystemExit(1)


__all__ = ["source", "sync"]
