"""``sitewatch``: the entry point and its global options."""

from __future__ import annotations

import click

from sitewatch import __version__
from sitewatch.cli.common import DB_ENV_VAR, Ctx, SitewatchGroup, setup_logging


@click.group(cls=SitewatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="sitewatch")
@click.option("--home", "home", type=click.Path(file_okay=False), envvar="SITEWATCH_HOME",
              help="Folder holding the catalogue and products [env SITEWATCH_HOME; default: "
                   "the user data directory].")
@click.option("--db", "db", metavar="URL", envvar=DB_ENV_VAR,
              help="The catalogue database: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB for a "
                   "server shared by several processes or machines, or sqlite:///PATH [env "
                   "SITEWATCH_DB; default: sitewatch.db in the home].")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="Less output.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db: str | None, verbose: int,
        quiet: int) -> None:
    """Watch facilities from orbit: catalogue imagery of sites and measure change per part.

    A command about a site takes it first (`sitewatch run SITE`), writes to -o/--out, and
    prints --json wherever it prints a table; -v, -q, --home and --db may also follow the
    command (docs/cli.md).
    """
    setup_logging(verbose - quiet)
    ctx.obj = Ctx(home, verbose - quiet, db)


def _register() -> None:
    from sitewatch.cli import (
        catalog,
        collateral,
        compare,
        demo,
        detect,
        parts,
        serve,
        sites,
        smart,
        sources,
        watch,
        watching,
    )

    del parts, smart  # their commands join the `site` group on import

    cli.add_command(sites.site)
    cli.add_command(catalog.ingest)
    cli.add_command(sources.source)
    cli.add_command(sources.sync)
    cli.add_command(catalog.scenes)
    cli.add_command(catalog.load)
    cli.add_command(detect.detect)
    cli.add_command(detect.methods)
    cli.add_command(detect.train)
    cli.add_command(watch.run)
    cli.add_command(watch.timeline)
    cli.add_command(watch.alerts)
    cli.add_command(watch.alert)
    cli.add_command(watching.watch)
    cli.add_command(collateral.collateral)
    cli.add_command(collateral.note)
    cli.add_command(collateral.assess)
    cli.add_command(collateral.indicators)
    cli.add_command(collateral.brief)
    cli.add_command(compare.compare)
    cli.add_command(demo.demo)
    cli.add_command(serve.serve)


_register()


def main() -> None:
    cli(prog_name="sitewatch")


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["cli", "main"]
