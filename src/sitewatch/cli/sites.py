"""``sitewatch site list|show|init|validate|add|set``."""

from __future__ import annotations

from pathlib import Path

import click

from sitewatch.cli.common import (
    Ctx,
    echo_json,
    echo_json_text,
    err,
    esc,
    out,
    pass_ctx,
)
from sitewatch.cli.tables import Col, print_table, styled, wide_option
from sitewatch.errors import SiteError
from sitewatch.sites.site import (
    PART_KINDS,
    SITE_TYPES,
    Site,
    builtin_site,
    builtin_site_ids,
    load_site,
    new_site,
    with_properties,
)


def _resolve(ctx: Ctx, ref: str) -> tuple[Site, str]:
    """A site from a file path, the catalogue database, or the built-in catalogue."""
    p = Path(ref)
    if p.suffix.lower() in (".geojson", ".json") or p.is_file():
        return load_site(p), "file"
    if ctx.has_catalogue():
        with ctx.store() as store:
            site = store.get_site(ref)
        if site is not None:
            return site, "catalogue"
    if ref in builtin_site_ids():
        return builtin_site(ref), "built-in"
    raise SiteError(f"no site {ref!r} in the catalogue or built in, and no such file")


@click.group()
def site() -> None:
    """Define, check and list sites."""


@site.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@wide_option
@pass_ctx
def list_(ctx: Ctx, as_json: bool, wide: bool) -> None:
    """List built-in sites and sites in the catalogue."""
    rows: dict[str, dict[str, object]] = {}
    for sid in builtin_site_ids():
        s = builtin_site(sid)
        rows[sid] = {"id": sid, "name": s.name, "type": s.site_type, "origin": "built-in",
                     "parts": len(s.parts), "placed": len(s.placed_parts()), "scenes": 0,
                     "simulated": s.simulated}
    if ctx.has_catalogue():
        with ctx.store() as store:
            for r in store.list_sites():
                s = r.site
                rows[s.id] = {"id": s.id, "name": s.name, "type": s.site_type,
                              "origin": "built-in" if r.origin == "builtin" else r.origin,
                              "parts": len(s.parts),
                              "placed": len(s.placed_parts()), "scenes": r.n_scenes,
                              "simulated": s.simulated}
    if as_json:
        echo_json(list(rows.values()))
        return
    print_table(SITE_COLUMNS, [
        (str(row["id"]), str(row["type"]), str(row["origin"]),
         f"{row['parts']} ({row['placed']})", str(row["scenes"]),
         str(row["name"]) + (" [SIMULATED]" if row["simulated"] else ""))
        for row in rows.values()], wide=wide)


#: The sites table: the name is the free text, last, wrapped in what room is left.
SITE_COLUMNS = (Col("id"), Col("type", 2), Col("origin", 3),
                Col("parts (placed)", 1, justify="right"), Col("scenes", 1, justify="right"),
                Col("name", 4, text=True, one_line=False, min_width=16))
#: The parts table of `site show`: the label is the free text.
PART_COLUMNS = (Col("part"), Col("kind", 3), Col("status", 1), Col("version", 4, justify="right"),
                Col("label", 2, text=True, one_line=False, min_width=16))


def format_latlon(lat: float, lon: float) -> str:
    """``lat, lon`` as unsigned degrees with their hemisphere letters, the way a map shows
    them: ``39.66000 N, 106.91418 W`` (a sign and a hemisphere letter together contradict).

    >>> format_latlon(39.66, -106.91418)
    '39.66000 N, 106.91418 W'
    >>> format_latlon(-5.0, 0.0)
    '5.00000 S, 0.00000 E'
    """
    ns = "S" if lat < 0 else "N"
    ew = "W" if lon < 0 else "E"
    return f"{abs(lat):.5f} {ns}, {abs(lon):.5f} {ew}"


@site.command("show")
@click.argument("site_ref", metavar="SITE")
@click.option("--json", "as_json", is_flag=True, help="Print the site file (GeoJSON).")
@wide_option
@pass_ctx
def show(ctx: Ctx, site_ref: str, as_json: bool, wide: bool) -> None:
    """Show SITE (an id in the catalogue, a built-in id, or a site file) and its parts."""
    s, origin = _resolve(ctx, site_ref)
    versions: dict[str, int] = {}
    if origin == "catalogue":
        with ctx.store() as store:
            versions = store.current_part_versions(s.id)
    if as_json:
        echo_json_text(s.dumps(), nl=False)
        return
    lon, lat = s.center
    out.print(f"[bold]{esc(s.id)}[/]: {esc(s.name)}"
              + ("  [reverse] SIMULATED [/]" if s.simulated else ""))
    out.print(f"type {esc(s.site_type)}; from {origin}; centre {format_latlon(lat, lon)}")
    if s.properties.get("note"):
        out.print(f"note: {esc(s.properties['note'])}")
    unplaced = sum(not p.placed for p in s.parts)
    print_table(PART_COLUMNS, [
        (p.name, p.kind, "placed" if p.placed else styled("unplaced", "yellow"),
         str(versions.get(p.name, "-")) if p.placed else "-", p.label) for p in s.parts],
        wide=wide)
    if unplaced:
        out.print(f"{unplaced} part(s) unplaced: their positions are not known; place them "
                  f"with `sitewatch site place {esc(s.id)} PART --point LON LAT --radius M` "
                  "(or --geojson, --wkt, --bbox).")
    if origin == "catalogue" and s.placed_parts():
        out.print(f"versions: `sitewatch site history {esc(s.id)}` lists every geometry a part "
                  "has had.")


@site.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check site files; exit 1 at the first invalid one."""
    for f in files:
        s = load_site(f)
        out.print(f"{esc(f)}: valid site {esc(repr(s.id))} with {len(s.parts)} part(s), "
                  f"{len(s.unplaced_parts())} unplaced")


@site.command("init")
@click.argument("site_id")
@click.option("--lat", type=float, required=True, help="Centre latitude (WGS 84 degrees).")
@click.option("--lon", type=float, required=True, help="Centre longitude (WGS 84 degrees).")
@click.option("--size", "size_m", type=float, default=3000.0, show_default=True,
              help="Width of the square boundary, metres.")
@click.option("--name", help="Human-readable name.")
@click.option("--type", "site_type", type=click.Choice(SITE_TYPES), default="launch_site",
              show_default=True, help="Site type (sets the part template).")
@click.option("-o", "--out", "--output", "output", type=click.Path(dir_okay=False),
              help="Write the site file here (default: stdout).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def init(site_id: str, lat: float, lon: float, size_m: float, name: str | None,
         site_type: str, output: str | None, overwrite: bool) -> None:
    """Write a new site file: a square boundary and the type's parts, unplaced."""
    s = new_site(site_id, lon, lat, half_size_m=size_m / 2, name=name, site_type=site_type)
    text = s.dumps()
    if output is None:
        click.echo(text, nl=False)
        return
    p = Path(output)
    if p.exists() and not overwrite:
        raise click.ClickException(f"{p} exists; use --overwrite to replace it")
    p.write_text(text, encoding="utf-8")
    err.print(f"wrote {esc(p)}: site {esc(repr(site_id))}, {len(s.parts)} unplaced part(s); "
              f"draw their polygons (kinds: {', '.join(PART_KINDS)}) then "
              f"`sitewatch site add {esc(p)}`")


@site.command("add")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@pass_ctx
def add(ctx: Ctx, file: str) -> None:
    """Register (or update) a site in the catalogue from a site file."""
    s = load_site(file)
    with ctx.store() as store:
        status = store.put_site(s, "file")
    out.print(f"site {esc(repr(s.id))}: {status}")

@site.command("set")
@click.argument("site_id", metavar="SITE")
@click.option("--type", "site_type", type=click.Choice(SITE_TYPES),
              help="The site's type: it decides which events are assessed (launch_site: "
                   "launch and engine test; other types: change only).")
@click.option("--name", help="The site's display name.")
@pass_ctx
def set_(ctx: Ctx, site_id: str, site_type: str | None, name: str | None) -> None:
    """Change a catalogued site's type or name (a site made by `ingest` is a `facility`:
    `sitewatch site set SITE --type launch_site` makes its assessments launch ones)."""
    if site_type is None and name is None:
        raise click.UsageError("nothing to set: give --type and/or --name")
    with ctx.store() as store:
        current = store.get_site(site_id)
        if current is None:
            raise SiteError(f"no site {site_id!r} in the catalogue (sitewatch site list)")
        changed = with_properties(current, site_type=site_type, name=name)
        status = store.put_site(changed, None, note="site set")
    out.print(f"site {esc(repr(site_id))}: {status}; type {esc(changed.site_type)}, name "
              f"{esc(repr(changed.name))}")


__all__ = ["add", "format_latlon", "init", "list_", "set_", "show", "site", "validate"]
