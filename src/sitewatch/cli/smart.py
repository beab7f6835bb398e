"""``sitewatch site export --smart`` and ``sitewatch site import --smart``: IARPA SMART site
models (:mod:`sitewatch.sites.smart`)."""

from __future__ import annotations

from pathlib import Path

import click

from sitewatch.cli.common import Ctx, esc, out, pass_ctx
from sitewatch.cli.sites import site
from sitewatch.errors import SiteError
from sitewatch.sites.smart import read_site_model, site_model, smart_dates, write_site_model


@site.command("export")
@click.argument("site_id")
@click.option("-o", "--out", "--smart", "out_dir", required=True,
              type=click.Path(file_okay=False),
              help="Write a SMART site model (<site_id>.geojson) into this folder.")
@click.option("--region-id", help="SMART region id [default: COUNTRY_C000].")
@click.option("--number", type=click.IntRange(0, 9999), default=1, show_default=True,
              help="Site number within the region (the site_id's last 4 digits).")
@pass_ctx
def export(ctx: Ctx, site_id: str, out_dir: str, region_id: str | None, number: int) -> None:
    """Export SITE, its parts and its watched dates as a SMART site model."""
    with ctx.store() as store:
        s = store.use_site(site_id)
        if s is None:
            raise SiteError(f"no site {site_id!r} in the catalogue or built in")
        dates = smart_dates(store, s)
        versions = store.current_part_versions(site_id)
        history = store.part_versions(site_id)
    layout_date = max((v.created_at for v in history), default=None)
    model = site_model(s, dates, region_id=region_id, number=number, versions=versions,
                       layout_date=layout_date.date().isoformat() if layout_date else None)
    path = write_site_model(model, out_dir)
    n = len(model["features"]) - 1
    out.print(f"wrote {esc(path)}: site {esc(repr(site_id))}, {len(s.placed_parts())} placed "
              f"part(s), {n} observation(s)")


@site.command("import")
@click.option("--smart", "file", required=True, type=click.Path(dir_okay=False),
              help="A SMART site-model GeoJSON file.")
@click.option("--as", "as_id", help="Site id to store it under [default: from the file].")
@click.option("--replace", is_flag=True, help="Replace a stored site of that id (its parts "
              "get new geometry versions where they changed).")
@pass_ctx
def import_(ctx: Ctx, file: str, as_id: str | None, replace: bool) -> None:
    """Import a SMART site model as a site: outline, parts (from the latest observation), and
    the per-date observations kept as provenance (the site's `smart` property)."""
    s = read_site_model(file, as_id)
    with ctx.store() as store:
        if store.get_site(s.id) is not None and not replace:
            raise SiteError(f"{file}: site {s.id!r} is already in the catalogue; use --as "
                            "ANOTHER_ID, or --replace")
        status = store.put_site(s, "file", note=f"imported from SMART site model "
                                                f"{Path(file).name}")
    n = len(s.properties.get("smart", {}).get("observations", []))
    out.print(f"site {esc(repr(s.id))}: {status} from {esc(file)}: {len(s.parts)} part(s), "
              f"{n} dated observation(s) kept as provenance")


__all__ = ["export", "import_"]
