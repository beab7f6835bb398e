"""The demo's HTML page: per-part change beside the ground truth, and before/after images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

from sitewatch import __version__
from sitewatch.report.quicklook import overlay, stretch, true_colour, write_png

if TYPE_CHECKING:
    from sitewatch.sim.demo import DemoResult


def _env() -> Environment:
    env = Environment(loader=PackageLoader("sitewatch.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["pct"] = lambda v: "—" if v is None or math.isnan(v) else f"{100 * v:.1f}%"
    env.filters["day"] = lambda t: t.strftime("%Y-%m-%d")
    return env


def write_demo_page(res: DemoResult, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` and its PNGs; returns the page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for i, pair in enumerate(res.pairs):
        a, b = pair.images
        rgb_a, lo, hi = stretch(true_colour(a))
        rgb_b, _, _ = stretch(true_colour(b), lo, hi)  # same stretch: real brightness change
        scale = max(1, 360 // max(a.grid.shape))
        stem = f"pair{i:02d}_{pair.sensor}"
        write_png(out_dir / f"{stem}_before.png", rgb_a, scale)
        write_png(out_dir / f"{stem}_after.png", rgb_b, scale)
        write_png(out_dir / f"{stem}_change.png", overlay(rgb_b, pair.result.changed), scale)
        figures.append({"pair": pair, "stem": stem})
    html = _env().get_template("demo.html").render(
        res=res, figures=figures, version=__version__, parts=res.parts,
    )
    page = out_dir / "index.html"
    page.write_text(html, encoding="utf-8")
    return page
