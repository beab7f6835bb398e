"""The capacity model of docs/scale.md: CPU, memory, storage and store rows per day for N
sites watched with every Sentinel-2 and Sentinel-1 pass, from per-scene costs *measured* by
bench_watch_speed.py (its --json output), and the cluster that needs.

    python benchmarks/capacity.py --measured /tmp/bws.json              # 500 sites
    python benchmarks/capacity.py --measured /tmp/bws.json --sites 100 --site-px 1000

Every input that is not measured is an assumption with its own option, printed in the
output; nothing here is measured by this script itself.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def measured_costs(path: Path) -> dict[str, float]:
    """Per-scene CPU seconds per megapixel of grid, peak RSS and the grid size, from a
    bench_watch_speed --json file (its 'new scene' run: one scene on top of the history)."""
    doc = json.loads(path.read_text())
    runs = doc.get("runs") or []
    new = next((r for r in runs if r.get("label") == "new scene"), None)
    scratch = next((r for r in runs if r.get("label") == "from scratch"), None)
    if new is None or scratch is None:
        raise SystemExit(f"{path}: no 'new scene' and 'from scratch' runs in it")
    shape = doc["grid_shape"]
    mpx = float(shape[0] * shape[1]) / 1e6
    per_scene_cpu = float(scratch["cpu"]) / max(1, int(scratch["processed"]))
    return {"mpx": mpx, "new_cpu_s": float(new["cpu"]), "scratch_cpu_per_scene_s":
            per_scene_cpu, "rss_mib": max(float(new["rss_mib"]), float(scratch["rss_mib"]))}


def model(a: argparse.Namespace, m: dict[str, float]) -> dict[str, Any]:
    scenes_day = a.sites * (a.s2_per_day + a.s1_per_day)
    cpu_per_scene = m["new_cpu_s"] * (a.site_px ** 2 / 1e6) / m["mpx"]
    sar_mix = (a.s2_per_day + a.s1_per_day * a.sar_factor) / (a.s2_per_day + a.s1_per_day)
    cpu_day = scenes_day * cpu_per_scene * sar_mix
    # Scenes of a region arrive together (a satellite's downlink): size the cluster so one
    # burst window's work finishes within it.
    cores = cpu_day * a.burst_share / (a.burst_hours * 3600) / a.utilisation
    grow = max(0.0, m["rss_mib"] - a.base_rss_mib)
    rss_gib = (a.base_rss_mib + grow * (a.site_px ** 2 / 1e6) / m["mpx"]) / 1024
    backfill_h = (a.sites * a.history * m["scratch_cpu_per_scene_s"]
                  * (a.site_px ** 2 / 1e6) / m["mpx"] / 3600)
    product_mb = a.site_px ** 2 * a.product_bytes_per_px / 1e6
    storage_gb_day = scenes_day * product_mb / 1e3
    rows_day = scenes_day * (a.parts + 1) * 2 + scenes_day * 1  # observations + processed
    return {"scenes_day": scenes_day, "cpu_per_scene": cpu_per_scene, "cpu_day_h": cpu_day / 3600,
            "cores": cores, "workers": math.ceil(cores), "rss_gib": rss_gib,
            "storage_gb_day": storage_gb_day, "storage_tb_year": storage_gb_day * 365 / 1e3,
            "rows_day": rows_day, "rows_year": rows_day * 365, "backfill_h": backfill_h}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--measured", required=True, type=Path,
                    help="bench_watch_speed.py --json output")
    ap.add_argument("--sites", type=int, default=500)
    ap.add_argument("--site-px", type=int, default=1000,
                    help="grid side in pixels of a typical site (1000: 10 km at 10 m)")
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--s2-per-day", type=float, default=0.5,
                    help="Sentinel-2 acquisitions per site per day (two satellites, 5-day "
                         "revisit at the equator, overlapping orbits at mid latitudes)")
    ap.add_argument("--s1-per-day", type=float, default=0.5,
                    help="Sentinel-1 acquisitions per site per day (S1A + S1C, 12-day repeat "
                         "each, 2-3 relative orbits over most sites)")
    ap.add_argument("--sar-factor", type=float, default=1.0,
                    help="a SAR scene's cost relative to an optical one (not measured here)")
    ap.add_argument("--burst-share", type=float, default=0.5,
                    help="share of a day's scenes that arrive in one burst")
    ap.add_argument("--burst-hours", type=float, default=4.0,
                    help="the burst's work must finish within this many hours")
    ap.add_argument("--utilisation", type=float, default=0.7)
    ap.add_argument("--product-bytes-per-px", type=float, default=2.2,
                    help="kept change map + score (COGs) per grid pixel per scene (2.2: "
                         "measured on the 56 pairs of the Colorado Landsat series)")
    ap.add_argument("--history", type=int, default=100,
                    help="scenes of history each new site is first run on (the backfill)")
    ap.add_argument("--base-rss-mib", type=float, default=250.0,
                    help="a worker's memory that does not grow with the grid (the measured "
                         "no-op run's peak)")
    a = ap.parse_args(argv)
    m = measured_costs(a.measured)
    r = model(a, m)
    out = sys.stdout
    print(f"Measured ({a.measured.name}): {m['new_cpu_s']:.1f} CPU s for one new scene on a "
          f"{m['mpx']:.1f} Mpx grid; {m['scratch_cpu_per_scene_s']:.1f} CPU s per scene from "
          f"scratch; peak RSS {m['rss_mib']:.0f} MiB.", file=out)
    print(file=out)
    print("| quantity | value |", file=out)
    print("|---|---:|", file=out)
    for k, v in (("sites", a.sites), ("grid side (px)", a.site_px),
                 ("scenes per day (S2 + S1)", f"{r['scenes_day']:.0f}"),
                 ("CPU s per scene (scaled by pixels)", f"{r['cpu_per_scene']:.2f}"),
                 ("CPU hours per day", f"{r['cpu_day_h']:.1f}"),
                 (f"cores to clear a burst ({a.burst_share:.0%} of a day in "
                  f"{a.burst_hours:g} h, {a.utilisation:.0%} busy)", f"{r['cores']:.1f}"),
                 ("peak RSS per worker (GiB: fixed part + the rest scaled by pixels)",
                  f"{r['rss_gib']:.2f}"),
                 (f"backfill: every site's first run on {a.history} scenes (CPU hours)",
                  f"{r['backfill_h']:.0f}"),
                 ("products per day (GB)", f"{r['storage_gb_day']:.1f}"),
                 ("products per year (TB)", f"{r['storage_tb_year']:.2f}"),
                 ("store rows per day", f"{r['rows_day']:,.0f}"),
                 ("store rows per year", f"{r['rows_year']:,.0f}")):
        print(f"| {k} | {v} |", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
