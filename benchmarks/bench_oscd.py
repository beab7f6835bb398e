#!/usr/bin/env python
"""Change detection accuracy on OSCD: every optical detector, the best unsupervised
configurations found, and the learned classifier trained leave-one-city-out.

Usage (from the repository root)::

    python benchmarks/bench_oscd.py [--data ../shared/data] [--methods cva,irmad]
        [--cities paris,pisa] [--out docs/bench_oscd.md] [--no-learned] [--no-variants]

For each OSCD city both dates are put on the date-1 10 m grid (all 13 bands, bilinear),
date 2 is co-registered to date 1 as ``sitewatch detect`` does (one global shift of the red
band from the central window, applied unless the match is rejected), and the label (1 = no change,
2 = change) is checked to be on the same grid.  Each configuration runs through
:func:`sitewatch.change.detect.detect_arrays` (normalisation, fit, score, threshold,
cleaning).  Precision, recall, F1 and Cohen's kappa are for the change class over the
pixels observed on both dates; *pooled* figures come from the confusion counts summed
over the cities, so big cities weigh more.  IR-MAD normalisation of a city's bands is
computed once and reused by every detector that wants it (the same
:func:`~sitewatch.change.detect.normalise_pair` that ``detect_arrays`` would call).

The learned detector (``sitewatch.change.learned``) is trained on 9 cities and tested on
the 10th, for each city in turn; its threshold is chosen out of fold on the 9 training
cities only.  Labels mark urban change only (seasonal vegetation change is "no change").
Results go to ``--out`` as markdown with the command, date, machine and wall time.
"""

from __future__ import annotations

import os

# Before sklearn / numpy start their OpenMP pools: threads that spin while waiting make
# gradient boosting up to 10x slower on a machine whose cores are shared.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import platform
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from _provenance import code_state
from _scores import confusion, scores

from sitewatch.change import post
from sitewatch.change.base import (
    Detector,
    get_detector,
    methods,
    observed_both,
)
from sitewatch.change.detect import detect_arrays, normalise_pair, resolve
from sitewatch.change.tiled import open_input, registration_bands, scene_grid
from sitewatch.errors import SitewatchError
from sitewatch.imagery.coregister import register
from sitewatch.imagery.grid import load_scene

REPO = Path(__file__).resolve().parents[1]
CITIES = ("abudhabi", "aguasclaras", "beihai", "bercy", "bordeaux", "mumbai", "paris",
          "pisa", "rennes", "saclay_e")
ALL13 = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir",
         "nir08", "nir09", "cirrus", "swir16", "swir22")
BAND_SETS: dict[str, tuple[str, ...]] = {
    "3": ("blue", "green", "red"),
    "4": ("blue", "green", "red", "nir"),
    "6": ("blue", "green", "red", "nir", "swir16", "swir22"),
    "13": ALL13,
}
HACD_CANDIDATES = tuple(round(1.0 + 0.1 * i, 1) for i in range(21))  # 1.0 .. 3.0


# --------------------------------------------------------------------------- data


@dataclass
class City:
    name: str
    before: np.ndarray  # (13, rows, cols) float32 reflectance, NaN = not observed
    after: np.ndarray
    label: np.ndarray  # bool, True = change
    valid: np.ndarray  # bool, labelled
    shift: str
    norm: dict[str, np.ndarray] = field(default_factory=dict)

    def bands(self, key: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        names = BAND_SETS[key]
        ix = [ALL13.index(b) for b in names]
        return self.before[ix], self.after[ix], names

    def normalised_after(self, key: str) -> np.ndarray | None:
        """``after`` normalised to ``before`` on band set ``key`` (None: not possible)."""
        if key not in self.norm:
            b, a, _ = self.bands(key)
            an, norm, _why = normalise_pair(b, a)
            self.norm[key] = an if norm is not None else None
        return self.norm[key]


def load_city(root: Path, name: str, coregister: bool) -> City:
    d = root / name
    s1, s2 = open_input(d / "imgs_1"), open_input(d / "imgs_2")
    grid = scene_grid(s1)
    before = load_scene(s1, grid, ALL13).data
    after = load_scene(s2, grid, ALL13).data
    shift = "not tried"
    if coregister:
        ix = [ALL13.index(b) for b in registration_bands(ALL13)]
        reg = register(np.mean(before[ix], axis=0), np.mean(after[ix], axis=0))
        s = reg.shift
        if reg.status == "rejected":
            shift = f"rejected ({s.dy:+.2f}, {s.dx:+.2f})"
        else:
            after = load_scene(s2, grid, ALL13, shift=s).data
            shift = f"({s.dy:+.2f}, {s.dx:+.2f})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(d / "cm" / f"{name}-cm.tif") as f:
            cm = f.read(1)
    if cm.shape != grid.shape:
        raise SystemExit(f"{name}: label {cm.shape} is not on the date-1 grid {grid.shape}")
    return City(name, before, after, cm == 2, np.isin(cm, (1, 2)), shift)


# --------------------------------------------------------------------------- configs


@dataclass
class Config:
    label: str
    method: str  # detector name
    bands: str  # key of BAND_SETS
    threshold: str | None = None
    alpha: float = 0.01
    normalise: bool | None = None
    min_pixels: int = 4
    max_hole_pixels: int = 4
    params: dict[str, Any] = field(default_factory=dict)
    group: str = "variants"

    def detector(self) -> Detector:
        return resolve(self.method, "optical", self.params)


def default_configs(names: list[str]) -> list[Config]:
    out = []
    for key in ("6", "4"):
        for name in names:
            det = get_detector(name)
            if any(b not in BAND_SETS[key] for b in det.needs):
                continue
            out.append(Config(f"{name} ({key} bands)", name, key, group="defaults"))
    return out


def variant_configs() -> list[Config]:
    c = Config
    return [
        c("cva, otsu, no normalisation (4)", "cva", "4", "otsu", normalise=False),
        c("cva, ki (4)", "cva", "4", "ki"),
        c("difference, ki (4)", "difference", "4", "ki"),
        c("brightness, ki (4)", "brightness", "4", "ki"),
        c("irmad, significance alpha=1e-4 (6)", "irmad", "6", "significance", alpha=1e-4),
        c("irmad (13)", "irmad", "13"),
        c("mad (13)", "mad", "13"),
        c("hacd visible w5 >2.0 (proposed default)", "hacd", "3", "2.0"),
        c("hacd visible w5 >2.0, min_pixels 1", "hacd", "3", "2.0", min_pixels=1,
          max_hole_pixels=0),
        c("hacd visible w5 >2.0, min_pixels 9", "hacd", "3", "2.0", min_pixels=9),
        c("hacd visible w1 (per pixel) >2.6", "hacd", "3", "2.6", params={"window": 1}),
        c("hacd visible w3 >2.2", "hacd", "3", "2.2", params={"window": 3}),
        c("hacd visible w7 >1.8", "hacd", "3", "1.8", params={"window": 7}),
        c("hacd visible w5 >1.8", "hacd", "3", "1.8"),
        c("hacd visible w5 >2.2", "hacd", "3", "2.2"),
        c("hacd visible w5, ki", "hacd", "3", "ki"),
        c("hacd visible w5, otsu", "hacd", "3", "otsu"),
        c("hacd 4 bands w5 >2.0", "hacd", "4", "2.0", params={"bands": "all"}),
        c("hacd 4 bands w5 >2.2", "hacd", "4", "2.2", params={"bands": "all"}),
        c("hacd 6 bands w5 >2.4", "hacd", "6", "2.4", params={"bands": "all"}),
        c("hacd 13 bands w5 >3.0", "hacd", "13", "3.0", params={"bands": "all"}),
    ]


@dataclass
class Result:
    config: Config
    counts: dict[str, np.ndarray]
    seconds: float
    notes: dict[str, str] = field(default_factory=dict)
    maps: dict[str, Any] = field(default_factory=dict)

    def pooled(self) -> dict[str, float]:
        return scores(sum(self.counts.values()))


def run_config(cfg: Config, cities: list[City], keep_maps: bool = False) -> Result:
    t0 = time.perf_counter()
    counts, notes, maps = {}, {}, {}
    for city in cities:
        b, a, names = city.bands(cfg.bands)
        det = cfg.detector()
        want_norm = det.normalise if cfg.normalise is None else cfg.normalise
        if want_norm:
            an = city.normalised_after(cfg.bands)
            if an is None:
                notes[city.name] = "normalisation impossible; raw"
            else:
                a = an
        try:
            cm = detect_arrays(b, a, names, det, threshold=cfg.threshold, alpha=cfg.alpha,
                               normalise=False, min_pixels=cfg.min_pixels,
                               max_hole_pixels=cfg.max_hole_pixels)
        except SitewatchError as exc:  # MethodError; IR-MAD also raises NormalisationError
            notes[city.name] = f"failed ({type(exc).__name__}): {exc}"
            obs = observed_both(b, a)
            counts[city.name] = confusion(np.zeros(obs.shape, bool), city.label,
                                          obs & city.valid)
            continue
        counts[city.name] = confusion(cm.changed, city.label, cm.observed & city.valid)
        if keep_maps:
            maps[city.name] = cm
    return Result(cfg, counts, time.perf_counter() - t0, notes, maps)


def _threshold_table(res: Result, cities: list[City]) -> dict[str, np.ndarray]:
    """Confusion counts of each city at every candidate fixed threshold (after cleaning)."""
    table = {}
    for city in cities:
        cm = res.maps[city.name]
        obs = cm.observed
        mask = obs & city.valid
        rows = []
        for t in HACD_CANDIDATES:
            ch = np.zeros(obs.shape, bool)
            ch[obs] = cm.score[obs] > t
            ch = post.clean(ch, obs, min_pixels=res.config.min_pixels,
                            max_hole_pixels=res.config.max_hole_pixels)
            rows.append(confusion(ch, city.label, mask))
        table[city.name] = np.array(rows)
    return table


def loco_select(runs: list[Result], cities: list[City], label: str
                ) -> tuple[Result, dict[str, str]]:
    """Leave-one-city-out choice among configurations x fixed thresholds: for each city,
    the (configuration, threshold) maximising the pooled F1 of the *other* cities is
    applied to it.  ``runs`` must have kept their change maps."""
    tables = [_threshold_table(r, cities) for r in runs]
    counts, chosen = {}, {}
    for city in cities:
        best = (-1.0, 0, 0)
        for i, table in enumerate(tables):
            others = sum(table[c.name] for c in cities if c.name != city.name)
            for k, row in enumerate(others):
                f = scores(row)["f1"]
                if f > best[0]:
                    best = (f, i, k)
        _, i, k = best
        counts[city.name] = tables[i][city.name][k]
        what = runs[i].config.label.split(" >")[0]
        chosen[city.name] = (f"{what} >{HACD_CANDIDATES[k]:g}" if len(runs) > 1
                             else f"{HACD_CANDIDATES[k]:g}")
    cfg = Config(label, "hacd", runs[0].config.bands, "loco")
    return Result(cfg, counts, sum(r.seconds for r in runs)), chosen


def hacd_grid() -> list[Config]:
    """The HACD settings a leave-one-city-out selection may choose among."""
    out = []
    for key, bands in (("3", "blue,green,red"), ("4", "all")):
        for w in (3, 5, 7):
            out.append(Config(f"hacd {key} bands w{w}", "hacd", key, "2.0",
                              params={"bands": bands, "window": w}))
    return out


def run_learned(cities: list[City], bands_key: str, seed: int, folds: int,
                max_samples: int, holdout: int, log) -> tuple[Result, dict[str, Any]]:
    from sitewatch.change import learned

    t0 = time.perf_counter()
    names = BAND_SETS[bands_key]
    n_train = len(cities) - 1
    per_class = max(1, max_samples // (2 * n_train))
    per_hold = max(1, holdout // n_train)
    samples = {}
    for i, city in enumerate(cities):
        b, a, _ = city.bands(bands_key)
        samples[city.name] = learned.sample_pair(
            b, a, city.label, city.valid, names, per_class=per_class, holdout=per_hold,
            seed=np.random.default_rng(seed + i))
    counts, info = {}, {}
    for city in cities:
        log(f"  learned: testing on {city.name}")
        model = learned.fit_samples([samples[c.name] for c in cities if c.name != city.name],
                                    names, folds=folds, seed=seed)
        b, a, _ = city.bands(bands_key)
        cm = detect_arrays(b, a, names, learned.LearnedDetector(model=model))
        counts[city.name] = confusion(cm.changed, city.label, cm.observed & city.valid)
        info[city.name] = {"threshold": model.threshold,
                           "oof_f1": model.summary["threshold_f1"]}
    cfg = Config(f"learned, leave-one-city-out ({bands_key} bands)", "learned", bands_key,
                 group="learned")
    return Result(cfg, counts, time.perf_counter() - t0), info


# --------------------------------------------------------------------------- report


def _row(res: Result, cities: list[City]) -> str:
    per = []
    for c in cities:
        f = scores(res.counts[c.name])["f1"]
        mark = "†" if c.name in res.notes else ""
        per.append(f"{f:.2f}{mark}")
    p = res.pooled()
    return (f"| {res.config.label} | " + " | ".join(per)
            + f" | {p['precision']:.3f} | {p['recall']:.3f} | **{p['f1']:.3f}** | "
            f"{p['kappa']:.3f} | {res.seconds:.0f} |")


def table(results: list[Result], cities: list[City]) -> list[str]:
    head = ("| config | " + " | ".join(c.name for c in cities)
            + " | pooled P | pooled R | pooled F1 | kappa | s |")
    sep = "|" + "---|" * (len(cities) + 6)
    return [head, sep] + [_row(r, cities) for r in results]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("SITEWATCH_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", default=default_data,
                    help="folder holding oscd/ (default: $SITEWATCH_DATA or ../shared/data)")
    ap.add_argument("--methods", default=None,
                    help="comma-separated optical detectors run at their defaults "
                         "(default: all registered)")
    ap.add_argument("--cities", default=",".join(CITIES))
    ap.add_argument("--out", default=str(REPO / "docs" / "bench_oscd.md"))
    ap.add_argument("--learned", action=argparse.BooleanOptionalAction, default=True,
                    help="leave-one-city-out runs of the learned classifier")
    ap.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                    help="threshold / band / normalisation variants and HACD")
    ap.add_argument("--coregister", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--learned-bands", default="4,13",
                    help="band sets (comma-separated keys: 3, 4, 6, 13) to train on")
    ap.add_argument("--learned-folds", type=int, default=3)
    ap.add_argument("--learned-samples", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    root = Path(args.data) / "oscd"
    if not root.is_dir():
        print(f"no OSCD data under {root}; give --data", file=sys.stderr)
        return 2
    want = [c.strip() for c in args.cities.split(",") if c.strip()]
    unknown = [c for c in want if not (root / c).is_dir()]
    if unknown:
        print(f"unknown cities: {', '.join(unknown)}", file=sys.stderr)
        return 2
    names = ([m.strip() for m in args.methods.split(",") if m.strip()] if args.methods
             else [m.name for m in methods("optical")])

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    cities = []
    for name in want:
        cities.append(load_city(root, name, args.coregister))
        log(f"loaded {name} {cities[-1].label.shape}, shift {cities[-1].shift}")

    configs = default_configs(names) + (variant_configs() if args.variants else [])
    results: list[Result] = []
    extra: list[str] = []
    for cfg in configs:
        keep = cfg.label.endswith("(proposed default)")
        res = run_config(cfg, cities, keep_maps=keep)
        log(f"{cfg.label}: pooled F1 {res.pooled()['f1']:.3f} ({res.seconds:.0f} s)")
        results.append(res)
        if keep and len(cities) > 1:
            lres, chosen = loco_select(
                [res], cities, "hacd visible w5, fixed threshold chosen leave-one-city-out")
            results.append(lres)
            res.maps.clear()
            extra.append("- Leave-one-city-out thresholds of HACD visible w5 (each chosen on "
                         "the other cities): "
                         + ", ".join(f"{k} {v}" for k, v in chosen.items()) + ".")
    if args.variants and len(cities) > 1:
        grid = [run_config(cfg, cities, keep_maps=True) for cfg in hacd_grid()]
        lres, chosen = loco_select(
            grid, cities, "hacd, bands (3 or 4) x window (3, 5, 7) x threshold chosen "
            "leave-one-city-out")
        results.append(lres)
        log(f"{lres.config.label}: pooled F1 {lres.pooled()['f1']:.3f}")
        extra.append("- Nested selection, per test city (chosen on the other cities): "
                     + "; ".join(f"{k}: {v}" for k, v in chosen.items()) + ".")
        del grid
    learned_info: dict[str, dict[str, Any]] = {}
    if args.learned and len(cities) > 2:
        for key in [k.strip() for k in args.learned_bands.split(",") if k.strip()]:
            if key not in BAND_SETS:
                ap.error(f"--learned-bands: unknown band set {key!r}")
            try:
                lres, info = run_learned(cities, key, args.seed, args.learned_folds,
                                         args.learned_samples, 200_000, log)
            except SitewatchError as exc:
                log(f"learned ({key} bands): {exc}")
                continue
            results.append(lres)
            learned_info[key] = info
            log(f"{lres.config.label}: pooled F1 {lres.pooled()['f1']:.3f} "
                f"({lres.seconds:.0f} s)")
    wall = time.perf_counter() - t_start

    import scipy
    import sklearn

    cmd = "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(__file__, Path.cwd()) if Path(__file__).is_relative_to(Path.cwd())
        else __file__, *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# OSCD change detection benchmark",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, scikit-learn {sklearn.__version__}",
        f"- code: {code_state()}",
        f"- wall time: {wall:.0f} s",
        "",
        "Cities (pixels on the date-1 10 m grid, change share, date-2 shift applied in "
        "pixels (dy, dx)):",
        "",
    ]
    for c in cities:
        lines.append(f"- {c.name}: {c.label.size} px, {100 * c.label[c.valid].mean():.2f} % "
                     f"change, shift {c.shift}")
    lines += [
        "",
        "F1 of the change class per city; pooled precision, recall, F1 and Cohen's kappa "
        "from the confusion counts summed over the cities; s = seconds for all cities. "
        "(n bands): 6 = blue green red nir swir16 swir22, 4 = the 10 m bands, 3 = blue "
        "green red, 13 = all. Thresholds are the detector defaults unless named; "
        "normalisation is the detector's preference unless named; changed objects under 4 "
        "pixels dropped and holes up to 4 filled unless named. † = the city failed or ran "
        "without normalisation (see notes).",
        "",
    ]
    for group, title in (("defaults", "Every detector at its defaults"),
                         ("variants", "Variants and HACD"),
                         ("learned", "Learned classifier, leave one city out")):
        rs = [r for r in results if r.config.group == group]
        if rs:
            lines += [f"## {title}", "", *table(rs, cities), ""]
    if extra:
        lines += ["Selections:", "", *extra]
    for key, info in learned_info.items():
        lines += [f"- Learned ({key} bands): threshold on P(change) chosen out of fold on the "
                  "training cities (and that out-of-fold F1), per test city: "
                  + ", ".join(f"{k} {v['threshold']:.3f} ({v['oof_f1']:.2f})"
                              for k, v in info.items()) + "."]
    notes = [f"- {r.config.label}: {k}: {v}" for r in results for k, v in r.notes.items()]
    if notes:
        lines += ["", "Notes:", "", *notes]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
