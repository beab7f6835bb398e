"""``sitewatch ingest`` and ``sitewatch scenes``."""

from __future__ import annotations

from pathlib import Path

import click

from sitewatch.cli.common import (
    Ctx,
    ListByDefaultGroup,
    deprecated_site_option,
    echo_json,
    err,
    esc,
    out,
    pass_ctx,
    progress_bar,
    site_first,
)
from sitewatch.cli.tables import Col, print_table, styled, wide_option
from sitewatch.errors import SceneError, SiteError
from sitewatch.imagery.grid import grid_for_scenes, load_scene, pixel_grid, write_geotiff
from sitewatch.imagery.ingest import ingest as run_ingest
from sitewatch.times import parse_time


@click.command()
@click.argument("site_id", metavar="SITE", required=False)
@click.argument("paths", nargs=-1, metavar="PATH...", type=click.Path(exists=True))
@deprecated_site_option
@click.option("--time", "time_", help="Acquisition time for images whose metadata and names "
              "carry none (ISO 8601).")
@click.option("--sensor", help="Sensor name, overriding what metadata says.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@pass_ctx
def ingest(ctx: Ctx, site_id: str | None, paths: tuple[str, ...], site_opt: str | None,
           time_: str | None, sensor: str | None, as_json: bool) -> None:
    """Catalogue images (files or folders) for SITE: `sitewatch ingest SITE PATH...`.

    Re-ingesting the same files does nothing; changed files are detected by checksum.
    (The old `--site SITE` still works, with a warning; with it, every argument is a path.)
    """
    site_id, paths = site_first(site_id, site_opt, paths, "paths", "PATH...")
    t = parse_time(time_) if time_ else None
    with ctx.store() as store, progress_bar(not as_json) as tick:
        report = run_ingest(store, paths, site_id, time=t, sensor=sensor, progress=tick)
    if as_json:
        echo_json(report.to_dict())
        return
    if report.site_note:
        err.print(f"[yellow]note:[/] {esc(report.site_note)}")
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {esc(w)}")
    for path, reason in report.skipped:
        err.print(f"skipped {esc(path)}: {esc(reason)}")
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("added", "updated", "unchanged",
                                                          "duplicate") if report.count(s))
    out.print(f"site {esc(repr(site_id))}: {len(report.items)} scene(s): {counts}")
    if ctx.verbosity >= 0:
        for it in report.items:
            if it.status != "unchanged":
                out.print(esc(f"  {it.status:9} {it.scene_id}  {it.acquired}  {it.sensor}"
                              + (f"  ({it.note})" if it.note else "")))


@click.group(cls=ListByDefaultGroup, subcommand_metavar="SITE | COMMAND [ARGS]...")
def scenes() -> None:
    """A site's catalogued scenes: `sitewatch scenes SITE` lists them, oldest first (short
    for `sitewatch scenes list SITE`); `sitewatch scenes remove SITE SCENE_ID` removes one."""


@scenes.command("list")
@click.argument("site_id", metavar="SITE", required=False)
@deprecated_site_option
@click.option("--sensor", help="Only this sensor.")
@click.option("--json", "as_json", is_flag=True, help="Full records as JSON.")
@wide_option
@pass_ctx
def list_scenes(ctx: Ctx, site_id: str | None, site_opt: str | None, sensor: str | None,
                as_json: bool, wide: bool) -> None:
    """List the catalogued scenes of SITE, oldest first."""
    site_id, _ = site_first(site_id, site_opt)
    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue at {ctx.home}")
        rows = store.scenes(site_id, sensor=sensor)
    if as_json:
        echo_json([s.to_dict() for s in rows])
        return
    print_table(SCENE_COLUMNS, [
        (s.id, s.acquired.strftime("%Y-%m-%d %H:%M"), s.sensor, f"{s.resolution:g}"
         if s.resolution else "-", f"{s.width}x{s.height}", str(len(s.bands)),
         ",".join(m.kind for m in s.masks) or "-",
         "yes" if s.georeferenced else styled("no", "yellow")) for s in rows], wide=wide)
    out.print(f"{len(rows)} scene(s)")


#: The scenes table: the id, the time and the sensor always; then what a scene is like.
SCENE_COLUMNS = (Col("id"), Col("acquired (UTC)"), Col("sensor"),
                 Col("res m", 1, justify="right"), Col("size", 3, justify="right"),
                 Col("bands", 4, justify="right"), Col("masks", 5), Col("georef", 2))


@scenes.command("remove")
@click.argument("site_id")
@click.argument("scene_id")
@click.option("--yes", is_flag=True, help="Remove without asking.")
@pass_ctx
def remove_scene(ctx: Ctx, site_id: str, scene_id: str, yes: bool) -> None:
    """Remove a scene from the catalogue, with its processed results, observations,
    registrations and change products of every parameter set.

    The image files are never touched (ingesting them again brings the scene back).  The
    next `sitewatch run` re-processes the dates that were compared with it.  Alerts citing
    the scene are kept, with their status; they are listed.
    """
    with ctx.store() as store:
        if store.use_site(site_id) is None:
            raise SiteError(f"no site {site_id!r} in the catalogue at {ctx.home}")
        sc = store.get_scene(site_id, scene_id)
        if sc is None:
            raise SceneError(f"site {site_id!r} has no scene {scene_id!r} (see `sitewatch "
                             f"scenes {site_id}`)")
        if not yes:
            click.confirm(f"Remove scene {scene_id} ({sc.acquired:%Y-%m-%d %H:%M}) of site "
                          f"{site_id} from the catalogue (its files stay)?", abort=True,
                          err=True)
        gone = store.remove_scene(site_id, scene_id)
    if gone is None:  # removed by another sitewatch meanwhile
        raise SceneError(f"site {site_id!r} has no scene {scene_id!r}")
    deleted = _delete_products(gone.products, ctx.home / "products")
    out.print(esc(f"removed scene {scene_id!r} of site {site_id!r}: {gone.results} result(s), "
                  f"{gone.observations} observation(s), {gone.registrations} "
                  f"registration(s), {deleted} change product(s); its files are kept"))
    err.print(esc(f"the next `sitewatch run {site_id}` re-processes the dates compared "
                  "with it"))
    if gone.alerts:
        err.print("[yellow]note:[/] " + esc(
            f"{len(gone.alerts)} alert(s) cite this scene and are kept with their status: "
            f"{', '.join(gone.alerts)}"))


def _delete_products(paths: tuple[str, ...], root: Path) -> int:
    """Delete the change products among ``paths`` that lie under ``root`` (the home's
    products: nothing else is sitewatch's to delete); returns how many went."""
    top = root.resolve()
    n = 0
    for p in paths:
        path = Path(p).resolve()
        if not path.is_relative_to(top) or not path.is_file():
            continue
        try:
            path.unlink()
            n += 1
        except OSError as exc:
            err.print(f"[yellow]warning:[/] {esc(path)} was not deleted: {esc(exc)}")
    return n


@click.command()
@click.argument("site_id", metavar="SITE", required=False)
@deprecated_site_option
@click.option("--scene", "scene_id", required=True, help="Scene id (see `sitewatch scenes`).")
@click.option("--resolution", type=float,
              help="Grid resolution in metres [default: the sensor's standard GSD].")
@click.option("--bands", help="Comma-separated common names (e.g. red,nir,swir1) "
              "[default: all bands].")
@click.option("-o", "--out", "--output", "output", required=True,
              type=click.Path(dir_okay=False), help="GeoTIFF file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@pass_ctx
def load(ctx: Ctx, site_id: str | None, site_opt: str | None, scene_id: str,
         resolution: float | None, bands: str | None, output: str, overwrite: bool) -> None:
    """Put a catalogued scene on the grid of SITE and write it as a GeoTIFF:
    `sitewatch load SITE --scene SCENE_ID -o FILE`.

    The last band is the quality code (0 observed, 1 no data, 2 cloud, 3 shadow, 4 snow,
    5 cirrus, 6 defective, 7 masked); values are NaN where not observed.
    """
    site_id, _ = site_first(site_id, site_opt, usage=f"--scene {scene_id} -o {output}")
    if Path(output).exists() and not overwrite:
        raise click.ClickException(f"{output} exists; use --overwrite to replace it")
    with ctx.store() as store:
        site = store.use_site(site_id)
        if site is None:
            raise SiteError(f"no site {site_id!r} in the catalogue at {ctx.home}")
        scene = store.get_scene(site_id, scene_id)
    if scene is None:
        raise SceneError(f"site {site_id!r} has no scene {scene_id!r}")
    if resolution is not None and not resolution > 0:
        raise click.BadParameter(f"must be a positive number of metres, not {resolution}",
                                 param_hint="--resolution")
    grid = (grid_for_scenes(site, [scene], resolution) if scene.georeferenced
            else pixel_grid(scene))
    names = [b.strip() for b in bands.split(",") if b.strip()] if bands else None
    img = load_scene(scene, grid, names)
    path = write_geotiff(img, output, overwrite=overwrite)
    err.print(f"{esc(scene.id)} on the {grid.resolution:g} m grid of {esc(repr(site_id))}: "
              f"{grid.width} x {grid.height} px, {img.valid_fraction:.0%} observed")
    out.print(esc(path))

__all__ = ["ingest", "list_scenes", "load", "remove_scene", "scenes"]
