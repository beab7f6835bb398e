"""Co-registration accuracy: synthetic known shifts at several SNRs, and the real OSCD pairs.

Usage (from the repository root)::

    python benchmarks/bench_coregister.py [--data ../shared/data] [--json FILE]

1. Synthetic: smooth random textures (128 x 128 px), shifted by a known sub-pixel amount
   (uniform in [-2, 2] px per axis, cubic interpolation), plus Gaussian noise at a given
   signal-to-noise ratio (signal std / noise std); RMS error of ``register``'s global shift,
   40 trials per SNR, fixed seeds.
2. OSCD: each city's date-2 scene is registered to date 1 on the city's 10 m grid (red band,
   the reference's own georeferencing); the shift, reliability, local residual and status
   are reported.  There is no ground truth for these shifts: they show how well the two
   Sentinel-2 dates sit on each other after the data set's own resampling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _provenance import code_state
from scipy import ndimage

from sitewatch.imagery.coregister import register
from sitewatch.imagery.grid import grid_for_scenes, load_scene
from sitewatch.imagery.ingest import ingest
from sitewatch.store import Store


def texture(seed: int, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=(size, size)), 2.0)


def synthetic(snrs: list[float], trials: int = 40) -> list[dict[str, float]]:
    rows = []
    for snr in snrs:
        rng = np.random.default_rng(int(snr * 1000))
        err2, t0 = [], time.perf_counter()
        for _ in range(trials):
            ref = texture(int(rng.integers(1 << 30)))
            dy, dx = rng.uniform(-2, 2, size=2)
            mov = ndimage.shift(ref, (dy, dx), order=3, mode="reflect")
            mov = mov + rng.normal(scale=ref.std() / snr, size=ref.shape)
            s = register(ref, mov, windows=1).shift
            err2.append((s.dy - dy) ** 2 + (s.dx - dx) ** 2)
        rows.append({"snr": snr, "trials": trials, "rms_px": float(np.sqrt(np.mean(err2))),
                     "max_px": float(np.sqrt(np.max(err2))),
                     "ms_per_pair": 1000 * (time.perf_counter() - t0) / trials})
    return rows


def oscd(data: Path) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Store.open_path(Path(tmp) / "db.sqlite") as st:
        for city in sorted(p for p in (data / "oscd").iterdir() if (p / "imgs_1").is_dir()):
            ingest(st, [city / "imgs_1", city / "imgs_2"], city.name)
            site = st.get_site(city.name)
            a, b = st.scenes(city.name)
            grid = grid_for_scenes(site, [a, b])
            ia, ib = (load_scene(s, grid, ["red"]) for s in (a, b))
            reg = register(ia.band("red"), ib.band("red"))
            rows.append({"city": city.name, "dy": round(reg.shift.dy, 2),
                         "dx": round(reg.shift.dx, 2),
                         "magnitude_px": round(reg.shift.magnitude, 2),
                         "reliability": round(reg.reliability, 2),
                         "residual_px": None if np.isnan(reg.residual_px)
                         else round(reg.residual_px, 2),
                         "status": reg.status})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("SITEWATCH_DATA") or str(Path(__file__).parents[1] / ".." /
                                                      "shared" / "data")
    ap.add_argument("--data", default=default)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    t0 = time.perf_counter()
    syn = synthetic([5.0, 10.0, 20.0, 50.0, 100.0])
    print("### Synthetic known shifts (128 x 128 px, 40 trials per SNR)\n")
    print("| SNR (signal std / noise std) | RMS error px | max error px | ms per pair |")
    print("|---:|---:|---:|---:|")
    for r in syn:
        print(f"| {r['snr']:g} | {r['rms_px']:.3f} | {r['max_px']:.3f} | "
              f"{r['ms_per_pair']:.1f} |")
    data = Path(args.data)
    real: list[dict[str, object]] = []
    if (data / "oscd").is_dir():
        real = oscd(data)
        print("\n### OSCD date 2 registered to date 1 (10 m grid, red band)\n")
        print("| city | dy px | dx px | magnitude px | reliability | local residual px | "
              "status |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for r in real:
            print(f"| {r['city']} | {r['dy']} | {r['dx']} | {r['magnitude_px']} | "
                  f"{r['reliability']} | {r['residual_px']} | {r['status']} |")
    else:
        print(f"\n(OSCD not measured: {data / 'oscd'} is absent)", file=sys.stderr)
    print(f"\n- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
          f"- machine: {platform.platform()}, {os.cpu_count()} CPUs; "
          f"Python {platform.python_version()}, numpy {np.__version__}\n"
          f"- code: {code_state()}\n- wall time: {time.perf_counter() - t0:.1f} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"synthetic": syn, "oscd": real}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
