"""``sitewatch site place|edit|history``: placing and editing a site's parts, and the
history of their geometry (each placement is a new version: :mod:`sitewatch.store.parts`)."""

from __future__ import annotations

import getpass
from collections.abc import Callable

import click
from rich.text import Text

from sitewatch.cli.common import Ctx, echo_json, err, esc, out, pass_ctx
from sitewatch.cli.sites import format_latlon, site
from sitewatch.cli.tables import Col, print_table, styled, wide_option
from sitewatch.errors import SiteError
from sitewatch.sites.place import (
    Placement,
    add_part,
    metres_area,
    place_part,
    placement,
    remove_part,
    rename_part,
    set_part_kind,
)
from sitewatch.sites.site import Site
from sitewatch.store import Store


def _who(by: str | None) -> str | None:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or password database
        return None


def _site(store: Store, site_id: str) -> Site:
    s = store.use_site(site_id)
    if s is None:
        raise SiteError(f"no site {site_id!r} in the catalogue or built in (see `sitewatch "
                        "site list`)")
    return s


def geometry_options(f: Callable[..., None]) -> Callable[..., None]:
    """The geometry forms of ``site place`` (and ``site edit --add``)."""
    for opt in reversed([
        click.option("--geojson", metavar="FILE_OR_TEXT",
                     help="A Polygon/MultiPolygon, Feature, or one-feature FeatureCollection."),
        click.option("--wkt", metavar="TEXT", help="A WKT POLYGON or MULTIPOLYGON (lon lat)."),
        click.option("--point", type=(float, float), metavar="LON LAT",
                     help="Centre of a circle (with --radius)."),
        click.option("--radius", type=float, metavar="METRES",
                     help="Radius on the ground of the --point circle."),
        click.option("--bbox", type=(float, float, float, float), metavar="W S E N",
                     help="A lon/lat box: west, south, east, north."),
    ]):
        f = opt(f)
    return f


def _placement(s: Site, geojson: str | None, wkt: str | None,
               point: tuple[float, float] | None, radius: float | None,
               bbox: tuple[float, float, float, float] | None) -> Placement:
    pl = placement(s, geojson=geojson, wkt=wkt, point=point, radius_m=radius, bbox=bbox)
    for w in pl.warnings:
        err.print(f"[yellow]warning:[/] {esc(w)}")
    return pl


def _placed_text(s: Site, part: str, version: int | None) -> str:
    g = s.part(part).geometry
    assert g is not None
    c = g.centroid
    v = f"version {version}" if version else "unchanged"
    return (f"{v}, {metres_area(g) / 1e4:.2f} ha, centre {format_latlon(c.y, c.x)}")


@site.command("place")
@click.argument("site_id")
@click.argument("part")
@geometry_options
@click.option("--note", help="Why (kept with the version).")
@click.option("--by", help="Who placed it [default: the user name].")
@pass_ctx
def place(ctx: Ctx, site_id: str, part: str, geojson: str | None, wkt: str | None,
          point: tuple[float, float] | None, radius: float | None,
          bbox: tuple[float, float, float, float] | None, note: str | None,
          by: str | None) -> None:
    """Place (or move) PART of SITE from exactly one geometry form.

    Each placement is a new version of the part's geometry; the next `sitewatch run`
    scores the part with it on every date (older observations keep their version)."""
    with ctx.store() as store:
        s = _site(store, site_id)
        s.part(part)  # an unknown part is named before the geometry is checked
        pl = _placement(s, geojson, wkt, point, radius, bbox)
        new = place_part(s, part, pl.geometry)
        store.put_site(new, None, note=note or f"placed from {pl.source}", author=_who(by))
        version = store.current_part_versions(site_id).get(part)
    out.print(f"site {esc(repr(site_id))}: part {esc(repr(part))} placed: "
              f"{_placed_text(new, part, version)}; `sitewatch run {esc(site_id)}` scores it")


@site.command("edit", context_settings={"allow_interspersed_args": True})
@click.argument("site_id")
@click.argument("kind_value", nargs=-1, metavar="")
@click.option("--rename", type=(str, str), metavar="OLD NEW", help="Rename a part.")
@click.option("--kind", "kind_part", metavar="PART KIND",
              help="Change a part's kind (`--kind PART KIND`), or the kind of the part "
                   "--add makes (`--add PART --kind KIND`).")
@click.option("--add", "add", metavar="PART", help="Add a part (with --kind KIND, and a "
              "geometry option to place it at once).")
@click.option("--label", help="Label of the part --add makes.")
@click.option("--remove", metavar="PART", help="Remove a part (its history and stored "
              "observations are kept).")
@click.option("--yes", is_flag=True, help="Do not ask before --remove.")
@geometry_options
@click.option("--note", help="Why (kept with any geometry version made).")
@click.option("--by", help="Who [default: the user name].")
@pass_ctx
def edit(ctx: Ctx, site_id: str, kind_value: tuple[str, ...], rename: tuple[str, str] | None,
         kind_part: str | None, add: str | None, label: str | None, remove: str | None,
         yes: bool, geojson: str | None, wkt: str | None,
         point: tuple[float, float] | None, radius: float | None,
         bbox: tuple[float, float, float, float] | None, note: str | None,
         by: str | None) -> None:
    """Edit SITE's parts: one of --rename OLD NEW, --kind PART KIND,
    --add PART --kind KIND [geometry], --remove PART.  All or nothing."""
    ops = [n for n, v in (("--rename", rename), ("--add", add), ("--remove", remove)) if v]
    if kind_part is not None and not add:
        ops.append("--kind")
    if len(ops) != 1:
        raise click.UsageError("give exactly one of --rename OLD NEW, --kind PART KIND, "
                               "--add PART --kind KIND, --remove PART"
                               + (f" (got {', '.join(ops)})" if ops else ""))
    geometry_given = any(v is not None for v in (geojson, wkt, point, radius, bbox))
    if geometry_given and not add:
        raise click.UsageError("geometry options go with --add here; use `sitewatch site "
                               "place` to move a part")
    if kind_value and (add or kind_part is None):
        raise click.UsageError(f"unexpected argument(s): {' '.join(kind_value)}")
    if kind_part is not None and not add and len(kind_value) != 1:
        raise click.UsageError("--kind takes PART KIND (or --add PART --kind KIND)")
    renamed = None
    with ctx.store() as store:
        s = _site(store, site_id)
        if rename:
            new, renamed = rename_part(s, *rename), {rename[0]: rename[1]}
            what = f"part {rename[0]!r} renamed {rename[1]!r}"
        elif add:
            if kind_part is None:
                raise click.UsageError("--add PART needs --kind KIND")
            geom, src = None, ""
            if geometry_given:
                pl = _placement(s, geojson, wkt, point, radius, bbox)
                geom, src = pl.geometry, f"placed from {pl.source}"
            new = add_part(s, add, kind_part, geom, label)
            what = f"part {add!r} ({kind_part}) added" + ("" if geom else ", unplaced")
            note = note or src or None
        elif remove:
            s.part(remove)  # a clear error before the question
            if not yes:
                click.confirm(f"remove part {remove!r} from site {site_id!r}? (its history "
                              "and stored observations are kept)", abort=True, err=True)
            new = remove_part(s, remove)
            what = f"part {remove!r} removed"
        else:
            assert kind_part is not None
            new = set_part_kind(s, kind_part, kind_value[0])
            what = f"part {kind_part!r} is now a {kind_value[0]}"
        store.put_site(new, None, note=note, author=_who(by), renamed=renamed)
    out.print(f"site {esc(repr(site_id))}: {esc(what)}")


@site.command("history")
@click.argument("site_id")
@click.argument("part", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (GeoJSON "
              "geometry of every version).")
@wide_option
@pass_ctx
def history(ctx: Ctx, site_id: str, part: str | None, as_json: bool, wide: bool) -> None:
    """Every geometry version of SITE's parts (or of one PART)."""
    with ctx.store() as store:
        s = _site(store, site_id)
        if part is not None and part not in {p.name for p in s.parts} \
                and not store.part_versions(site_id, part):
            s.part(part)  # names the known parts
        versions = store.part_versions(site_id, part)
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    if not versions:
        out.print(f"site {esc(repr(site_id))}: no part has been placed yet"
                  + (f" ({esc(part)})" if part else ""))
        return
    rows = []
    for v in versions:
        geom: str | Text
        if v.geometry is not None:
            c = v.geometry.centroid
            geom = (f"{v.geometry.geom_type}, {metres_area(v.geometry) / 1e4:.2f} ha, "
                    f"{format_latlon(c.y, c.x)}")
        else:
            geom = styled("not placed", "yellow")
        rows.append((v.part, str(v.version), v.created_at.strftime("%Y-%m-%d %H:%M"), geom,
                     v.author or "", v.note or ""))
    print_table(HISTORY_COLUMNS, rows, wide=wide)


#: `site history`: the geometry and the note are the free text.
HISTORY_COLUMNS = (Col("part"), Col("version", justify="right"), Col("time"),
                   Col("geometry", 1, text=True, one_line=False, min_width=16),
                   Col("by", 2), Col("note", 3, text=True, one_line=False, min_width=16))


__all__ = ["edit", "geometry_options", "history", "place"]
