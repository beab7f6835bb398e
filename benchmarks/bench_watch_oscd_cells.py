#!/usr/bin/env python
"""Per-part change flags on OSCD: each city cut into 16 x 16-pixel cells used as parts.

Usage (from the repository root)::

    python benchmarks/bench_watch_oscd_cells.py [--data ../shared/data]
        [--methods hacd,ratio,cva,difference,brightness] [--bands 4] [--cities paris,pisa]
        [--crosscheck hacd] [--out docs/bench_watch_oscd_cells.md]

The cities are loaded exactly as ``bench_oscd.py`` loads them (its ``load_city``: both dates
on the date-1 10 m grid, date 2 co-registered to date 1, the label checked to be on that
grid).  Each method runs through :func:`sitewatch.change.detect.detect_arrays` with its
defaults, on the ``--bands`` set (default the four 10 m bands, what ``sitewatch run`` loads
from a 4-band sensor).  The change map is then reduced per cell as
:func:`sitewatch.watch.zonal.part_changes` reduces it per part:

- a cell is a part of 16 x 16 pixels from the top-left corner; the partial cells along the
  right and bottom edges are kept when at least half of the cell (128 pixels) lies inside
  the image and dropped otherwise;
- a cell is *observed* when ``observed_fraction >= 0.5``
  (:data:`sitewatch.watch.zonal.MIN_OBSERVED`);
  cells that are not are counted separately and are not in P/R/F1;
- a cell is *flagged* when it is observed and ``changed_fraction`` (changed share of its
  observed pixels) ``>= 0.05`` (:data:`sitewatch.sim.demo.FLAG_FRACTION`); 0.02 and 0.10 are
  also reported, and the best F1 over every threshold (chosen on the test cells themselves:
  an optimistic, threshold-free figure, not reachable without labels);
- a cell is *truly active* when at least 5 % of its labelled pixels are labelled change.

``part_changes`` builds its statistics with one full-grid boolean mask per part, so its cost
grows with (number of parts) x (grid pixels).  The per-cell figures of every method are
therefore computed with one vectorised reduction (``np.bincount`` over a cell-index image);
for the methods of ``--crosscheck`` every city also goes through ``part_changes`` itself,
its time is measured, and its ``observed_fraction`` and ``changed_fraction`` must equal the
vectorised ones (the run stops otherwise).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import platform
import resource
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sitewatch.change.detect import detect_arrays
from sitewatch.sim.demo import FLAG_FRACTION
from sitewatch.watch.zonal import MIN_OBSERVED, part_changes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import code_state
from bench_oscd import BAND_SETS, CITIES, City, load_city

REPO = Path(__file__).resolve().parents[1]
CELL = 16
TRUTH_FRACTION = 0.05
THRESHOLDS = (0.02, FLAG_FRACTION, 0.10)
PIXEL_AREA_M2 = 100.0


# --------------------------------------------------------------------------- cells


@dataclass
class Cells:
    """The cell layout of one city: a cell index per pixel (-1 = in a dropped edge cell)."""

    index: np.ndarray  # int64 (rows, cols)
    n: int  # cells kept
    origin: list[tuple[int, int]]  # (row, col) of each kept cell's top-left pixel
    dropped: int  # edge cells dropped (under half inside the image)
    partial: int  # edge cells kept although partial

    def masks(self) -> dict[str, np.ndarray]:
        """One full-grid boolean mask per kept cell, as ``part_changes`` wants them."""
        out = {}
        for k, (r, c) in enumerate(self.origin):
            m = np.zeros(self.index.shape, bool)
            m[r:r + CELL, c:c + CELL] = True
            out[f"cell_{k}"] = m
        return out


def make_cells(shape: tuple[int, int]) -> Cells:
    rows, cols = shape
    index = np.full(shape, -1, np.int64)
    origin, dropped, partial = [], 0, 0
    for r in range(0, rows, CELL):
        for c in range(0, cols, CELL):
            h, w = min(CELL, rows - r), min(CELL, cols - c)
            if h * w * 2 < CELL * CELL:
                dropped += 1
                continue
            partial += h * w < CELL * CELL
            index[r:r + h, c:c + w] = len(origin)
            origin.append((r, c))
    return Cells(index, len(origin), origin, dropped, partial)


def _sums(cells: Cells, values: np.ndarray) -> np.ndarray:
    keep = cells.index >= 0
    return np.bincount(cells.index[keep], weights=values[keep].astype(np.float64),
                       minlength=cells.n)


@dataclass
class CellStats:
    """Per-cell figures of one change map (arrays of length ``cells.n``)."""

    observed_fraction: np.ndarray
    changed_fraction: np.ndarray  # NaN where nothing is observed
    truth: np.ndarray  # bool: truly active
    labelled: np.ndarray  # bool: the cell has labelled pixels


def cell_stats(cells: Cells, city: City, changed: np.ndarray, observed: np.ndarray
               ) -> CellStats:
    """The vectorised equivalent of ``part_changes``'s observed / changed fractions."""
    n = np.bincount(cells.index[cells.index >= 0], minlength=cells.n).astype(np.float64)
    n_obs = _sums(cells, observed)
    n_ch = _sums(cells, changed & observed)
    n_lab = _sums(cells, city.valid)
    n_true = _sums(cells, city.label & city.valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        cf = np.where(n_obs > 0, n_ch / n_obs, np.nan)
        truth = n_true / n_lab >= TRUTH_FRACTION
    return CellStats(n_obs / n, cf, truth & (n_lab > 0), n_lab > 0)


# --------------------------------------------------------------------------- metrics


def prf(c: np.ndarray) -> dict[str, float]:
    tp, fp, fn = (float(v) for v in c[:3])
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def counts(s: CellStats, threshold: float) -> np.ndarray:
    """(tp, fp, fn, tn) over the observed, labelled cells."""
    use = s.labelled & (s.observed_fraction >= MIN_OBSERVED)
    flag = s.changed_fraction[use] >= threshold
    t = s.truth[use]
    return np.array([np.sum(flag & t), np.sum(flag & ~t), np.sum(~flag & t),
                     np.sum(~flag & ~t)], np.int64)


def best_f1(stats: list[CellStats]) -> tuple[float, float, dict[str, float]]:
    """The best pooled F1 over every flag threshold ``changed_fraction >= t`` (t chosen on
    these very cells: optimistic) -> (t, f1, prf)."""
    score = np.concatenate([s.changed_fraction[s.labelled & (s.observed_fraction
                                                              >= MIN_OBSERVED)]
                            for s in stats])
    truth = np.concatenate([s.truth[s.labelled & (s.observed_fraction >= MIN_OBSERVED)]
                            for s in stats])
    order = np.argsort(-score, kind="stable")
    sc, tr = score[order], truth[order]
    tp = np.cumsum(tr)
    fp = np.cumsum(~tr)
    last = np.r_[np.flatnonzero(np.diff(sc) != 0), sc.size - 1]  # flag all cells >= sc[k]
    tp, fp = tp[last], fp[last]
    fn = tr.sum() - tp
    f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    k = int(np.argmax(f1))
    t = float(sc[last[k]])
    return t, float(f1[k]), prf(np.array([tp[k], fp[k], fn[k], 0]))


def pixel_counts(city: City, changed: np.ndarray, observed: np.ndarray) -> np.ndarray:
    m = observed & city.valid
    p, t = changed[m], city.label[m]
    return np.array([np.sum(p & t), np.sum(p & ~t), np.sum(~p & t), np.sum(~p & ~t)],
                    np.int64)


# --------------------------------------------------------------------------- runs


@dataclass
class MethodRun:
    method: str
    stats: dict[str, CellStats] = field(default_factory=dict)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    detect_s: float = 0.0
    reduce_s: float = 0.0
    zonal: dict[str, tuple[int, float]] = field(default_factory=dict)  # city -> (cells, s)
    max_diff: float = 0.0


def crosscheck(cells: Cells, cm, s: CellStats, label: str) -> tuple[float, float]:
    """Run ``part_changes`` on every cell; returns (seconds, largest |difference|) against
    the vectorised fractions, and stops the run when they disagree."""
    masks = cells.masks()
    t0 = time.perf_counter()
    res = part_changes(cm, masks, PIXEL_AREA_M2)
    dt = time.perf_counter() - t0
    of = np.array([res[f"cell_{k}"].observed_fraction for k in range(cells.n)])
    cf = np.array([res[f"cell_{k}"].changed_fraction for k in range(cells.n)])
    both = np.isfinite(cf) | np.isfinite(s.changed_fraction)
    diff = max(float(np.max(np.abs(of - s.observed_fraction), initial=0.0)),
               float(np.max(np.abs(cf[both] - s.changed_fraction[both]), initial=0.0)))
    same_nan = np.array_equal(np.isnan(cf), np.isnan(s.changed_fraction))
    if diff > 1e-12 or not same_nan:
        raise SystemExit(f"{label}: part_changes and the vectorised reduction disagree "
                         f"(largest difference {diff:g}, NaN pattern equal: {same_nan})")
    return dt, diff


# --------------------------------------------------------------------------- report


def _f(v: float) -> str:
    return f"{v:.3f}"


def build_report(args: argparse.Namespace, cmd: str, cities: list[City],
                 layouts: dict[str, Cells], runs: list[MethodRun], wall: float,
                 peak_mib: float, code: str) -> str:
    import scipy

    names = [c.name for c in cities]
    lines = [
        "# Per-part change flags on OSCD (16 x 16-pixel cells as parts)",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}",
        f"- code: {code} (when the run started)",
        f"- wall time: {wall:.0f} s; peak RSS {peak_mib:.0f} MiB",
        "",
        f"Each OSCD city (loaded as in `bench_oscd.py`: date-1 10 m grid, date 2 "
        f"co-registered) is cut into {CELL} x {CELL}-pixel cells ({CELL * 10} m x "
        f"{CELL * 10} m), each used as a part. Edge cells with at least half of their "
        "256 pixels inside the image are kept (partial), the others dropped. Each method "
        "runs through `detect_arrays(before, after, bands, method)` with its defaults on "
        f"bands {', '.join(BAND_SETS[args.bands])}. A cell is **flagged** when it is "
        f"observed (`observed_fraction >= {MIN_OBSERVED}`) and its `changed_fraction` (share "
        "of its observed pixels the detector marks changed) is at least the flag threshold "
        f"(`sitewatch.sim.demo.FLAG_FRACTION` = {FLAG_FRACTION}, also 0.02 and 0.10). A cell is "
        f"**truly active** when at least {TRUTH_FRACTION:.0%} of its labelled pixels are "
        "labelled change. P/R/F1 are of the 'part changed' flag over the observed cells; "
        "*pooled* figures sum the confusion counts over the cities. Unobserved cells "
        "(`observed_fraction < 0.5`) are not in P/R/F1 and are counted below.",
        "",
        "## Cities",
        "",
        "| city | pixels | cells kept | partial edge cells kept | edge cells dropped | "
        "truly active cells | share active | unobserved cells | of which truly active |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = runs[0]
    tot = np.zeros(6, np.int64)
    for c in cities:
        cl, s = layouts[c.name], first.stats[c.name]
        unobs = s.labelled & (s.observed_fraction < MIN_OBSERVED)
        row = np.array([c.label.size, cl.n, cl.partial, cl.dropped, int(s.truth.sum()),
                        int(unobs.sum())])
        tot += row
        lines.append(f"| {c.name} | {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} | "
                     f"{row[4] / max(row[1], 1):.1%} | {row[5]} | "
                     f"{int((unobs & s.truth).sum())} |")
    lines.append(f"| **all** | {tot[0]} | {tot[1]} | {tot[2]} | {tot[3]} | {tot[4]} | "
                 f"{tot[4] / max(tot[1], 1):.1%} | {tot[5]} | |")
    if len(runs) > 1:
        unobs_m = {r.method: sum(int((s.labelled & (s.observed_fraction < MIN_OBSERVED)).sum())
                                 for s in r.stats.values()) for r in runs}
        lines += ["", "Unobserved cells per method (the observed mask is the pixels seen on "
                  "both dates, so it depends on the method only through the bands it reads): "
                  + ", ".join(f"{k} {v}" for k, v in unobs_m.items()) + "."]
    share = tot[4] / max(tot[1], 1)
    lines += [
        "",
        "## Pooled over the cities",
        "",
        f"Baseline: flagging every cell gives precision {share:.3f}, recall 1, F1 "
        f"{2 * share / (1 + share):.3f}. *Best F1* is the best pooled F1 over every "
        "threshold on `changed_fraction`, the threshold chosen on these same cells: "
        "optimistic, an upper bound for a fixed threshold rather than a result. *Pixel F1* "
        "is the pixel-level F1 of the same change maps (as in `bench_oscd.md`), for "
        "comparison.",
        "",
        "| method | " + " | ".join(f"P@{t:g} | R@{t:g} | F1@{t:g}" for t in THRESHOLDS)
        + " | best F1 (optimistic) | at threshold | pixel F1 | detect s | reduce s |",
        "|---|" + "---:|" * (3 * len(THRESHOLDS) + 5),
    ]
    for r in runs:
        cells = []
        for t in THRESHOLDS:
            m = prf(sum(counts(r.stats[n], t) for n in names))
            f1 = f"**{_f(m['f1'])}**" if t == FLAG_FRACTION else _f(m["f1"])
            cells += [_f(m["precision"]), _f(m["recall"]), f1]
        bt, bf, _ = best_f1([r.stats[n] for n in names])
        pix = prf(sum(r.pixels.values()))
        lines.append(f"| {r.method} | " + " | ".join(cells)
                     + f" | {_f(bf)} | {bt:.3f} | {_f(pix['f1'])} | {r.detect_s:.1f} | "
                     f"{r.reduce_s:.2f} |")
    lines += [
        "",
        f"## Per city, flag threshold {FLAG_FRACTION}",
        "",
        "P / R / F1 of the flags per city (– : no truly active and no flagged cell).",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for r in runs:
        row = []
        for n in names:
            c = counts(r.stats[n], FLAG_FRACTION)
            if c[0] + c[1] + c[2] == 0:
                row.append("–")
                continue
            m = prf(c)
            row.append(f"{m['precision']:.2f} / {m['recall']:.2f} / **{m['f1']:.2f}**")
        lines.append(f"| {r.method} | " + " | ".join(row) + " |")
    lines += ["", "Per-city F1 at the three thresholds and the best (per-city optimistic) F1:",
              "", "| method | threshold | " + " | ".join(names) + " |",
              "|---|---|" + "---:|" * len(names)]
    for r in runs:
        for t in THRESHOLDS:
            lines.append(f"| {r.method} | {t:g} | " + " | ".join(
                f"{prf(counts(r.stats[n], t))['f1']:.2f}" for n in names) + " |")
        lines.append(f"| {r.method} | best | " + " | ".join(
            f"{best_f1([r.stats[n]])[1]:.2f}" for n in names) + " |")

    checked = [r for r in runs if r.zonal]
    lines += ["", "## `zonal.part_changes` over thousands of cells", ""]
    if not checked:
        lines.append("Not run (`--crosscheck none`).")
    for r in checked:
        tot_cells = sum(n for n, _ in r.zonal.values())
        tot_s = sum(s for _, s in r.zonal.values())
        lines += [
            f"Method {r.method}: every city also went through `part_changes(changemap, "
            f"masks, pixel_area_m2={PIXEL_AREA_M2})`, one full-grid boolean mask per cell. "
            f"Its `observed_fraction` and `changed_fraction` equal the vectorised reduction's "
            f"on every cell (largest absolute difference {r.max_diff:.1g}). Time of the "
            f"`part_changes` call alone (masks built beforehand), against the same "
            f"reduction for all cells with `np.bincount`:",
            "",
            "| city | pixels | cells | part_changes s | ms per cell | µs per cell per Mpx |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        px = {c.name: c.label.size for c in cities}
        for n, (k, s) in r.zonal.items():
            lines.append(f"| {n} | {px[n]} | {k} | {s:.2f} | {1000 * s / k:.2f} | "
                         f"{1e6 * s / k / (px[n] / 1e6):.0f} |")
        lines += [f"| **all** | | {tot_cells} | {tot_s:.1f} | "
                  f"{1000 * tot_s / max(tot_cells, 1):.2f} | |", ""]
        lines.append(
            f"The vectorised reduction took {r.reduce_s:.2f} s for all cities "
            f"({1000 * r.reduce_s / max(tot_cells, 1):.3f} ms per cell). Every part given "
            "to `part_changes` is a full-grid mask that it sums, ANDs with the observed mask "
            "and scans whole, so its time per part grows with the grid's pixels, and the "
            "masks alone take (parts x grid pixels) bytes.")
        if len(r.zonal) >= 3:
            x = np.array([px[n] / 1e6 for n in r.zonal])
            y = np.array([1000 * s / k for k, s in r.zonal.values()])
            b, a = np.polyfit(x, y, 1)
            big_px, big_cells = 4.0, (2000 // CELL) ** 2
            est = big_cells * (a + b * big_px) / 1000
            lines += ["", f"A least-squares line through the per-city figures gives "
                      f"{a:.2f} ms + {b:.2f} ms per Mpx of grid, per part. Extrapolated "
                      f"(not measured): {big_cells} cells of {CELL} x {CELL} px on a "
                      f"2000 x 2000 grid would take about {est / 60:.0f} min in "
                      f"`part_changes`, with {big_cells * big_px / 1024:.0f} GiB of masks."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("SITEWATCH_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", default=default_data,
                    help="folder holding oscd/ (default: $SITEWATCH_DATA or ../shared/data)")
    ap.add_argument("--methods", default="hacd,ratio,cva,difference,brightness",
                    help="comma-separated optical detectors, run at their defaults")
    ap.add_argument("--bands", default="4", choices=sorted(BAND_SETS),
                    help="band set (3, 4, 6 or 13; default 4 = the 10 m bands)")
    ap.add_argument("--cities", default=",".join(CITIES))
    ap.add_argument("--crosscheck", default="hacd",
                    help="methods (comma-separated, 'all' or 'none') whose cells also go "
                         "through zonal.part_changes on every city, timed and compared")
    ap.add_argument("--coregister", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--out", default=str(REPO / "docs" / "bench_watch_oscd_cells.md"))
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    code = code_state()
    root = Path(args.data) / "oscd"
    if not root.is_dir():
        print(f"no OSCD data under {root}; give --data", file=sys.stderr)
        return 2
    want = [c.strip() for c in args.cities.split(",") if c.strip()]
    unknown = [c for c in want if not (root / c).is_dir()]
    if unknown:
        print(f"unknown cities: {', '.join(unknown)}", file=sys.stderr)
        return 2
    meths = [m.strip() for m in args.methods.split(",") if m.strip()]
    check = (set(meths) if args.crosscheck == "all" else set() if args.crosscheck == "none"
             else {m.strip() for m in args.crosscheck.split(",") if m.strip()})

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    cities: list[City] = []
    layouts: dict[str, Cells] = {}
    for name in want:
        c = load_city(root, name, args.coregister)
        cities.append(c)
        layouts[name] = make_cells(c.label.shape)
        log(f"loaded {name} {c.label.shape}, shift {c.shift}, {layouts[name].n} cells")

    runs: list[MethodRun] = []
    for meth in meths:
        run = MethodRun(meth)
        for c in cities:
            b, a, names = c.bands(args.bands)
            t0 = time.perf_counter()
            cm = detect_arrays(b, a, names, meth)
            run.detect_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            s = cell_stats(layouts[c.name], c, cm.changed, cm.observed)
            run.reduce_s += time.perf_counter() - t0
            run.stats[c.name] = s
            run.pixels[c.name] = pixel_counts(c, cm.changed, cm.observed)
            if meth in check:
                dt, diff = crosscheck(layouts[c.name], cm, s, f"{meth} {c.name}")
                run.zonal[c.name] = (layouts[c.name].n, dt)
                run.max_diff = max(run.max_diff, diff)
                log(f"{meth} {c.name}: part_changes on {layouts[c.name].n} cells {dt:.1f} s, "
                    f"agrees with the vectorised reduction")
        m = prf(sum(counts(s, FLAG_FRACTION) for s in run.stats.values()))
        log(f"{meth}: pooled cell F1 @{FLAG_FRACTION} {m['f1']:.3f} (detect "
            f"{run.detect_s:.1f} s)")
        runs.append(run)
    wall = time.perf_counter() - t_start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    here = Path(__file__)
    shown = (os.path.relpath(here, Path.cwd()) if here.is_relative_to(Path.cwd())
             else str(here))
    cmd = "python " + " ".join(shlex.quote(a) for a in
                               [shown, *(sys.argv[1:] if argv is None else argv)])
    text = build_report(args, cmd, cities, layouts, runs, wall, peak_mib, code)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
