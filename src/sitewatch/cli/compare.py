"""``sitewatch compare``: a before/after picture of a part (or the whole site) between any two
processed dates, with or without an alert."""

from __future__ import annotations

from pathlib import Path

import click

from sitewatch.cli.common import Ctx, echo_json, esc, out, pass_ctx


@click.command()
@click.argument("site_id", metavar="SITE")
@click.option("--part", help="The part, by name or label (case-insensitive) [default: the whole "
              "site, or the rest of it outside its parts].")
@click.option("--dates", nargs=2, required=True, metavar="BEFORE AFTER",
              help="The two days (YYYY-MM-DD), each with one processed scene.")
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False),
              help="The PNG to write [default: HOME/figures/SITE_PART_BEFORE_AFTER.png].")
@click.option("--json", "as_json", is_flag=True, help="Print what was drawn as JSON.")
@pass_ctx
def compare(ctx: Ctx, site_id: str, part: str | None, dates: tuple[str, str],
            out_path: str | None, as_json: bool) -> None:
    """Draw a part of SITE before and after: one stretch for both dates, the change objects
    touching the part outlined, unobserved pixels hatched, a caption and the imagery credit
    in the picture.  The site must have been processed (`sitewatch run SITE`)."""
    from sitewatch.report.pairs import compare as draw

    with ctx.store() as store:
        rec = draw(store, site_id, part, dates[0], dates[1], out_path,
                   figures_dir=Path(ctx.home) / "figures")
    if as_json:
        echo_json(rec.to_dict())
        return
    out.print(esc(f"wrote {rec.path}"))
    out.print(esc(rec.caption))


__all__ = ["compare"]
