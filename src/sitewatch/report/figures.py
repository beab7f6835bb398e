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
    unfilled and not outlined), so that one object reads as one object."""
    import matplotlib.patheffects as pe

    if kind != "part" and rings:
        from matplotlib.patches import PathPatch
        from matplotlib.path import Path as MplPath

        compound = MplPath.make_compound_path(*(MplPath(xy, closed=True)
                                                for xy in [*rings, *holes]))
        ax.add_patch(PathPatch(compound, facecolor=ORANGE, alpha=0.3, linewidth=0))
    # Holes are left unfilled, not outlined: an outlined hole reads as another object.
    for xy in rings:
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
                    markers: Sequence[tuple[int, float, float]], caption: str | None = None,
                    *, outline_label: str | None = None) -> Path:
    """The whole site: every placed part outlined and labelled, alerts as numbered markers.
    Labels are placed so that none overlaps another label, a marker or the image's edge
    (:func:`place_labels`), with a leader line when a label sits away from its part.
    ``caption`` is drawn only when given (a brief prints it in the page)."""
    import matplotlib.patheffects as pe

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 7.4), dpi=150)
    # The layout first: label sizes are measured in data units, which depend on it.
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.1 if caption else 0.07)
    h, w = panel.rgb.shape[1:]
    _image(ax, panel)
    for _name, rings in parts:
        _outline(ax, rings, kind="part")
    marker_boxes: list[Box] = []
    r = 0.018 * max(w, h)  # the marker's radius in pixels (13 pt at this size)
    for n, x0, y in markers:
        x = x0
        # Markers side by side, never on top of another (alerts at one part, or at parts
        # one inside the other).
        while any(_overlap((x - r, y - r, x + r, y + r), b) for b in marker_boxes):
            x += 2.2 * r
        ax.plot(x, y, marker="o", markersize=13, markerfacecolor=VERMILION,
                markeredgecolor="black", linestyle="none", zorder=4)
        ax.text(x, y, str(n), fontsize=7, ha="center", va="center", color="white",
                fontweight="bold", zorder=5)
        marker_boxes.append((x - r, y - r, x + r, y + r))
    _frame(ax, panel)
    halo = [pe.withStroke(linewidth=2.5, foreground="white")]
    boxes = [(rings, _bbox(rings)) for _n, rings in parts if rings]
    boxes = [(rings, box) for (name, rings), (_r, box) in
             zip([p for p in parts if p[1]], boxes, strict=True) if name]  # unnamed: no label
    texts = [ax.text(0, 0, _plain(name), fontsize=6.5, ha="left", va="bottom", color="black",
                     path_effects=halo, zorder=6) for name, rings in parts if rings and name]
    renderer = fig.canvas.get_renderer()
    inv = ax.transData.inverted()
    sizes = []
    for t in texts:
        ext = t.get_window_extent(renderer)
        (x0, y0), (x1, y1) = inv.transform([(ext.x0, ext.y0), (ext.x1, ext.y1)])
        sizes.append((abs(x1 - x0), abs(y1 - y0)))
    spots = place_labels([b for _r, b in boxes], sizes, (w, h), marker_boxes)
    for t, (lx, ly, lead) in zip(texts, spots, strict=True):
        t.set_position((lx, ly))
        t.set_va("top")
        if lead is not None:
            ax.plot([lead[0], lead[2]], [lead[1], lead[3]], color="white", linewidth=0.8,
                    path_effects=[pe.withStroke(linewidth=1.8, foreground="black")],
                    zorder=5)
    _legend(fig, with_changes=False, with_markers=bool(markers),
            with_unobserved=panel.masked, above_caption=bool(caption),
            outline_label=outline_label if parts else "")
    _caption(fig, caption, 8)
    return _save(fig, path)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (y down)


def _bbox(rings: Sequence[np.ndarray]) -> Box:
    xy = np.concatenate(list(rings))
    return (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()),
            float(xy[:, 1].max()))


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(parts: Sequence[Box], sizes: Sequence[tuple[float, float]],
                 extent: tuple[float, float], obstacles: Sequence[Box] = ()
                 ) -> list[tuple[float, float, tuple[float, float, float, float] | None]]:
    """Where each part's label goes: (left, top, leader) in pixels, ``leader`` a line from
    the part to a label set away from it (None when the label touches its part).

    Greedy, largest part first: candidates around the part's box (right, left, below, above,
    then the corners), then the same farther out in rings; the first candidate inside the
    image that overlaps no label placed so far and no obstacle (alert markers) wins, and one
    that also clears every part's box is preferred.  With no free spot the label goes on its
    part's box (the rare crowded case: every label still drawn)."""
    w, h = extent
    order = sorted(range(len(parts)), key=lambda i: -(parts[i][2] - parts[i][0])
                   * (parts[i][3] - parts[i][1]))
    placed: list[Box] = []
    out: dict[int, tuple[float, float, tuple[float, float, float, float] | None]] = {}
    pad = 0.006 * max(w, h)
    for i in order:
        x0, y0, x1, y1 = parts[i]
        tw, th = sizes[i]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        best: tuple[float, float, bool] | None = None
        for ring in range(6):
            d = pad + ring * 2.5 * th
            cands = [(x1 + d, cy - th / 2), (x0 - d - tw, cy - th / 2),
                     (cx - tw / 2, y1 + d), (cx - tw / 2, y0 - d - th),
                     (x1 + d, y1 + d), (x0 - d - tw, y1 + d), (x1 + d, y0 - d - th),
                     (x0 - d - tw, y0 - d - th)]
            for lx, ly in cands:
                box = (lx, ly, lx + tw, ly + th)
                edge = 2 * pad  # the halo and the frame: a label never touches the edge
                if lx < edge or ly < edge or box[2] > w - edge or box[3] > h - edge:
                    continue
                if any(_overlap(box, o) for o in (*placed, *obstacles)):
                    continue
                clear = not any(_overlap(box, p) for p in parts)
                if clear:
                    best = (lx, ly, ring > 0)
                    break
                if best is None:
                    best = (lx, ly, ring > 0)
            if best is not None and (not any(_overlap((best[0], best[1], best[0] + tw,
                                                       best[1] + th), p) for p in parts)):
                break
        if best is None:
            best = (max(0.0, min(x0, w - tw)), max(0.0, min(y0, h - th)), False)
        lx, ly, far = best
        placed.append((lx, ly, lx + tw, ly + th))
        lead = None
        gap = max(lx - x1, x0 - (lx + tw), ly - y1, y0 - (ly + th), 0.0)
        if far or gap > 2 * pad:  # a label set apart from its part is tied to it by a line
            tx = min(max(cx, lx), lx + tw)
            ty = min(max(cy, ly), ly + th)
            px = min(max(tx, x0), x1)
            py = min(max(ty, y0), y1)
            lead = (px, py, tx, ty)
        out[i] = (lx, ly, lead)
    return [out[i] for i in range(len(parts))]


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
                   label="normal range")
    ax.plot(times, values, color=BLUE, marker="o", markersize=3, linewidth=1,
            label="observed")
    lo = min([v for v in values if np.isfinite(v)] or [0.0])
    for i, t in enumerate(unobserved):
        ax.axvline(t, color="grey", linewidth=0.6, linestyle=":",
                   label="not observed" if i == 0 else None)
    top = max([v for v in values if np.isfinite(v)] or [0.0])
    labelled: set[str] = set()
    for t, v, *rest in alerts:
        # An alert raised on another measure (``rest[0]`` True) is a diamond at its own
        # value; one with no value at all is hollow at the top of the axis, with a line:
        # never at another date's value.  An event that lasts (``rest[1]``, its last date)
        # is shaded to that date, so its later dates outside the band are read as the same
        # alert.
        other = bool(rest and rest[0])
        end = rest[1] if len(rest) > 1 else None
        if end is not None and end > t:
            ax.axvspan(t, end, color=VERMILION, alpha=0.12, linewidth=0,
                       label="event duration"
                       if "span" not in labelled else None)
            labelled.add("span")
        ax.axvline(t, color=VERMILION, linewidth=0.8, linestyle="--")
        hollow = v is None or not np.isfinite(v)
        what = "alert, no value to show" if hollow else \
            "alert on another measure" if other else "alert"
        ax.plot(t, top if hollow else v, marker="D" if other else "^",
                markersize=7 if other else 9,
                markerfacecolor="white" if hollow else VERMILION, markeredgecolor="black",
                linestyle="none", label=what if what not in labelled else None)
        labelled.add(what)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(_plain(title), fontsize=9)
    ax.tick_params(labelsize=7)
    ax.set_ylim(bottom=min(lo, 0) - 0.02)
    # The legend beside the plot, never over a point or an alert.
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=True,
              borderaxespad=0)
    fig.autofmt_xdate()
    _caption(fig, caption, 7)
    fig.subplots_adjust(left=0.11, right=0.75, top=0.88, bottom=0.3 if caption else 0.2)
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


__all__ = ["Panel", "overview_figure", "pair_figure", "place_labels", "timeline_figure"]
