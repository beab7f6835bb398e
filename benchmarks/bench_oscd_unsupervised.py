"""OSCD: precision, recall, F1 and kappa of the change class per city and pooled, for
unsupervised detectors at their defaults.

    python benchmarks/bench_oscd_unsupervised.py [--data ../shared/data] [--methods cva,irmad]

Both dates are put on the date-1 10 m grid (the label grid); labels: 2 = change, 1 = none.
Prints a markdown table with the command and machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

from sitewatch.change.detect import detect_arrays
from sitewatch.change.tiled import open_input, scene_grid
from sitewatch.grid import load_scene

CONFIGS = {  # name: (method, bands, threshold)
    "cva-otsu-4": ("cva", ("blue", "green", "red", "nir"), "otsu"),
    "cva-otsu-6": ("cva", ("blue", "green", "red", "nir", "swir16", "swir22"), None),
    "irmad-6": ("irmad", ("blue", "green", "red", "nir", "swir16", "swir22"), None),
    "irmad-6-otsu": ("irmad", ("blue", "green", "red", "nir", "swir16", "swir22"), "otsu"),
    "pca-kmeans-6": ("pca-kmeans", ("blue", "green", "red", "nir", "swir16", "swir22"), None),
    "ndbi-gain": ("ndbi-gain", ("blue", "green", "red", "nir", "swir16", "swir22"), None),
    "brightness": ("brightness", ("blue", "green", "red", "nir", "swir16", "swir22"), None),
}


def counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.array([(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum(),
                     (~pred & ~truth).sum()], dtype=np.int64)


def scores(c: np.ndarray) -> tuple[float, float, float, float]:
    tp, fp, fn, tn = (float(v) for v in c)
    n = tp + fp + fn + tn
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    return p, r, f, (po - pe) / (1 - pe)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get(
        "SITEWATCH_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data")))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    root = Path(args.data) / "oscd"
    if not root.is_dir():
        sys.exit(f"no OSCD data at {root}")
    cities = sorted(p.name for p in root.iterdir() if (p / "cm").is_dir())
    names = args.configs.split(",")
    pooled = {n: np.zeros(4, np.int64) for n in names}
    per_city: dict[str, dict[str, float]] = {n: {} for n in names}
    t0 = time.time()
    for city in cities:
        sb, sa = open_input(root / city / "imgs_1"), open_input(root / city / "imgs_2")
        grid = scene_grid(sb)
        with rasterio.open(root / city / "cm" / f"{city}-cm.tif") as ds:
            truth = ds.read(1) == 2
        bands = tuple(dict.fromkeys(b for n in names for b in CONFIGS[n][1]))
        b = load_scene(sb, grid, bands)
        a = load_scene(sa, grid, bands)
        for n in names:
            method, use, thr = CONFIGS[n]
            idx = [bands.index(x) for x in use]
            cm = detect_arrays(b.data[idx], a.data[idx], use, method, threshold=thr)
            pred = cm.changed & cm.observed
            c = counts(pred[cm.observed], truth[cm.observed])
            pooled[n] += c
            per_city[n][city] = scores(c)[2]
        print(f"{city} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    print(f"Command: `python benchmarks/bench_oscd_unsupervised.py`  \nMachine: "
          f"{platform.platform()}, {os.cpu_count()} CPUs; {time.time() - t0:.0f} s\n")
    print("| config | " + " | ".join(cities) + " | pooled P | R | F1 | kappa |")
    print("|---|" + "---:|" * (len(cities) + 4))
    for n in names:
        p, r, f, k = scores(pooled[n])
        row = " | ".join(f"{per_city[n][c]:.2f}" for c in cities)
        print(f"| {n} | {row} | {p:.3f} | {r:.3f} | **{f:.3f}** | {k:.3f} |")


if __name__ == "__main__":
    main()
