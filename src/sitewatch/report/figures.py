"""Publication figures for briefs (matplotlib, Agg): before/after pairs, the site overview,
per-part timelines.

Every map has a scale bar and a north arrow (site grids are local UTM, north up); pixels
that were not observed (cloud, shadow, no data) are hatched grey, never black, and named in
the legend.  The caption lives in the page under the figure (a ``<figcaption>``), not in
the picture; only a figure with no page around it (``caption=``) draws it.  Colours are
read in greyscale and by colour-blind readers: part outlines are white dashes on a black
edge, change objects solid orange (Okabe-Ito) on a black edge, alert markers numbered; the
line styles differ, not only the colours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.errors import MissingExtraError

#: Okabe-Ito colours (safe for colour-blind readers).
ORANGE, BLUE, VERMILION, SKY = "#E69F00", "#0072B2", "#D55E00", "#56B4E9"


def _plain(text: str) -> str:
    """Text as text: matplotlib reads what lies between two ``$`` as a formula (and fails on
    a bad one), so names and captions have their dollar signs escaped."""
    return text.replace("$", r"\$")


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("briefs need matplotlib: pip install 'sitewatch[plot]'") from None
    return plt


@dataclass(frozen=True)
class Panel:
    """One map panel: an RGB uint8 image (3, rows, cols) with its pixel size and title, and
    where it was not observed ((rows, cols) bool, True = not observed; None: all observed)."""

    rgb: np.ndarray
    pixel_m: float
    title: str
    unobserved: np.ndarray | None = None

    @property
    def masked(self) -> bool:
        """Whether any pixel of the panel was not observed."""
        return self.unobserved is not None and bool(self.unobserved.any())


#: How unobserved pixels are drawn: dark diagonal hatching on light grey.
HATCH, HATCH_FACE, HATCH_EDGE = "///", "#d9d9d9", "#404040"
NOT_OBSERVED = "not observed (cloud, shadow, no data)"


def _nice_length(max_m: float) -> float:
    """A round scale-bar length no longer than ``max_m`` (1, 2 or 5 x 10^k metres)."""
    if max_m <= 0:
        return 0.0
    k = 10 ** math.floor(math.log10(max_m))
    return max(v * k for v in (1, 2, 5) if v * k <= max_m)


def _decorate(ax: Any, width_px: int, height_px: int, pixel_m: float) -> None:
    """Scale bar (bottom left) and north arrow (top right), black on white halo."""
    import matplotlib.patheffects as pe

    halo = [pe.withStroke(linewidth=3, foreground="white")]
    length_m = _nice_length(width_px * pixel_m / 3)
    if length_m > 0:
        px = length_m / pixel_m
        x0, y0 = width_px * 0.05, height_px * 0.93
        ax.plot([x0, x0 + px], [y0, y0], color="black", linewidth=4, solid_capstyle="butt",
                path_effects=[pe.withStroke(linewidth=6, foreground="white")])
        label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
        ax.text(x0 + px / 2, y0 - height_px * 0.03, label, ha="center", va="bottom",
                fontsize=8, color="black", path_effects=halo)
    xa, ya = width_px * 0.92, height_px * 0.08
    ax.annotate("N", xy=(xa, ya), xytext=(xa, ya + height_px * 0.12), ha="center",
                va="center", fontsize=9, fontweight="bold", color="black",
                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5},
                path_effects=halo)


def _frame(ax: Any, panel: Panel) -> None:
    """Scale bar, north arrow, title; the image's own extent; no ticks."""
    h, w = panel.rgb.shape[1:]
    _decorate(ax, w, h, panel.pixel_m)
    ax.set_title(_plain(panel.title), fontsize=9)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _image(ax: Any, panel: Panel) -> None:
    """The panel's image, its unobserved pixels hatched on top (pixel-exact outlines of the
    unobserved areas, holes kept, so the hatching stays crisp at any zoom)."""
    ax.imshow(np.moveaxis(panel.rgb, 0, -1), interpolation="nearest")
    if not panel.masked or panel.unobserved is None:
        return
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath
    from rasterio.features import shapes

    m = panel.unobserved.astype(np.uint8)
    paths = []
    for geom, _val in shapes(m, mask=m.astype(bool)):
        for ring in geom["coordinates"]:  # exterior, then holes (opposite winding)
            paths.append(MplPath(np.asarray(ring, dtype=float) - 0.5, closed=True))
    patch = PathPatch(MplPath.make_compound_path(*paths), facecolor=HATCH_FACE,
                      edgecolor=HATCH_EDGE, hatch=HATCH, linewidth=0)
    ax.add_patch(patch)


def _outline(ax: Any, rings: Sequence[np.ndarray], *, kind: str,
             holes: Sequence[np.ndarray] = ()) -> None:
    """Part outlines dashed; change objects solid with a faint fill (their ``holes`` left
    unfilled), so that one object whose outline folds into a notch reads as one object."""
    import matplotlib.patheffects as pe

    if kind != "part" and rings:
        from matplotlib.patches import PathPatch
        from matplotlib.path import Path as MplPath

        compound = MplPath.make_compound_path(*(MplPath(xy, closed=True)
                                                for xy in [*rings, *holes]))
        ax.add_patch(PathPatch(compound, facecolor=ORANGE, alpha=0.22, linewidth=0))
    for xy in [*rings, *holes] if kind != "part" else rings:
        if kind == "part":
            ax.plot(xy[:, 0], xy[:, 1], color="white", linewidth=1.4, linestyle=(0, (4, 2)),
                    path_effects=[pe.withStroke(linewidth=2.8, foreground="black")])
        else:
            ax.plot(xy[:, 0], xy[:, 1], color=ORANGE, linewidth=1.6,
                    path_effects=[pe.withStroke(linewidth=3.0, foreground="black")])


def pair_figure(path: Path, before: Panel, after: Panel, part_rings: Sequence[np.ndarray],
                change_rings: Sequence[np.ndarray], caption: str | None = None, *,
                change_holes: Sequence[np.ndarray] = (), credit: str | None = None,
                outline_label: str | None = None) -> Path:
    """Before and after, side by side, part outline on both, change objects (``change_rings``
    one outline per object, ``change_holes`` the unchanged holes in them) on the after.
    ``caption`` is drawn under the pictures only when given: a brief prints it in the page;
    ``credit`` (the imagery credit line) likewise, in small type under the caption.
    ``outline_label`` names the dashed outline in the legend (default: the part's; "" leaves
    it out, for a picture with no outline)."""
    plt = _plt()
    below = bool(caption or credit)
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 4.8 if below else 4.3), dpi=150)
    for ax, panel, changes, holes in ((axes[0], before, (), ()),
                                      (axes[1], after, change_rings, change_holes)):
        _image(ax, panel)
        _outline(ax, part_rings, kind="part")
        _outline(ax, changes, kind="change", holes=holes)
        _frame(ax, panel)
    _legend(fig, with_changes=True, with_unobserved=before.masked or after.masked,
            above_caption=below, outline_label=outline_label)
    if below:  # the legend above a caption of up to two lines and the credit line
        fig.legends[-1].set_bbox_to_anchor((0.99, 0.125))
    _caption(fig, caption, 8, y=0.045 if credit else 0.01)
    if credit:
        fig.text(0.01, 0.01, _plain(credit), fontsize=6.5, color="#404040", va="bottom",
                 ha="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.21 if below else 0.1,
                        wspace=0.03)
    return _save(fig, path)


def _caption(fig: Any, caption: str | None, size: float, y: float = 0.01) -> None:
    if caption:
        fig.text(0.01, y, _plain(caption), fontsize=size, wrap=True, va="bottom",
                 ha="left")


def overview_figure(path: Path, panel: Panel, parts: Sequence[tuple[str, Sequence[np.ndarray]]],
                    markers: Sequence[tuple[int, float, float]], caption: str | None = None
                    ) -> Path:
    """The whole site: every placed part outlined and labelled, alerts as numbered markers.
    ``caption`` is drawn only when given (a brief prints it in the page)."""
    import matplotlib.patheffects as pe

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 7.4), dpi=150)
    w = panel.rgb.shape[2]
    _image(ax, panel)
    halo = [pe.withStroke(linewidth=2.5, foreground="white")]
    for name, rings in parts:
        _outline(ax, rings, kind="part")
        if rings:
            c = rings[0].mean(axis=0)
            ax.text(c[0], c[1], _plain(name), fontsize=6, ha="center", va="center", color="black",
                    path_effects=halo)
    seen: dict[tuple[int, int], int] = {}
    for n, x, y in markers:
        k = (round(x), round(y))
        x += seen.get(k, 0) * w * 0.03  # alerts at one part side by side, not on top
        seen[k] = seen.get(k, 0) + 1
        ax.plot(x, y, marker="o", markersize=13, markerfacecolor=VERMILION,
                markeredgecolor="black", linestyle="none")
        ax.text(x, y, str(n), fontsize=7, ha="center", va="center", color="white",
                fontweight="bold")
    _frame(ax, panel)
    _legend(fig, with_changes=False, with_markers=True, with_unobserved=panel.masked,
            above_caption=bool(caption))
    _caption(fig, caption, 8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.1 if caption else 0.07)
    return _save(fig, path)


def timeline_figure(path: Path, times: Sequence[Any], values: Sequence[float],
                    unobserved: Sequence[Any], alerts: Sequence[Any],
                    band: tuple[float, float] | None, title: str, caption: str | None,
                    ylabel: str) -> Path:
    """A part's changed share (beyond the rest of the site) over time: observations as dots
    on a line, the normal band shaded, unobserved dates as ticks, alerts as triangles."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 2.8), dpi=150)
    if band is not None:
        ax.axhspan(band[0], band[1], color=SKY, alpha=0.35, hatch="//", linewidth=0,
                   label="normal range (median ± 3 spreads)")
    ax.plot(times, values, color=BLUE, marker="o", markersize=3, linewidth=1,
            label="observed")
    lo = min([v for v in values if np.isfinite(v)] or [0.0])
    for i, t in enumerate(unobserved):
        ax.axvline(t, color="grey", linewidth=0.6, linestyle=":",
                   label="not observed" if i == 0 else None)
    top = max([v for v in values if np.isfinite(v)] or [0.0])
    for i, (t, v) in enumerate(alerts):
        # An alert dated where this grid has no observation is drawn at the top of the axis,
        # hollow, with a line: never at another date's value.
        ax.axvline(t, color=VERMILION, linewidth=0.8, linestyle="--")
        hollow = v is None or not np.isfinite(v)
        ax.plot(t, top if hollow else v, marker="^", markersize=9,
                markerfacecolor="white" if hollow else VERMILION, markeredgecolor="black",
                linestyle="none", label="alert" if i == 0 else None)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(_plain(title), fontsize=9)
    ax.tick_params(labelsize=7)
    ax.set_ylim(bottom=min(lo, 0) - 0.02)
    ax.legend(fontsize=6, loc="upper left", frameon=True)
    fig.autofmt_xdate()
    _caption(fig, caption, 7)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.88, bottom=0.3 if caption else 0.2)
    return _save(fig, path)


def _legend(fig: Any, *, with_changes: bool, with_markers: bool = False,
            with_unobserved: bool = False, above_caption: bool = True,
            outline_label: str | None = None) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [] if outline_label == "" else [
        Line2D([], [], color="white", linestyle=(0, (4, 2)), linewidth=1.4,
               label=outline_label or "part outline (dashed)", path_effects=_stroke(2.8))]
    if with_changes:
        handles.append(Line2D([], [], color=ORANGE, linewidth=1.6,
                              label="change objects (solid)", path_effects=_stroke(3.0)))
    if with_markers:
        handles.append(Line2D([], [], marker="o", color=VERMILION, markeredgecolor="black",
                              linestyle="none", label="alert (numbered)"))
    if with_unobserved:
        handles.append(Patch(facecolor=HATCH_FACE, edgecolor=HATCH_EDGE, hatch=HATCH,
                             linewidth=0, label=NOT_OBSERVED))
    fig.legend(handles=handles, loc="lower right", fontsize=7, frameon=True, ncol=3,
               facecolor="#dddddd", bbox_to_anchor=(0.99, 0.07 if above_caption else 0.005))


def _stroke(w: float) -> list[Any]:
    import matplotlib.patheffects as pe

    return [pe.withStroke(linewidth=w, foreground="black")]


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


__all__ = ["Panel", "overview_figure", "pair_figure", "timeline_figure"]
