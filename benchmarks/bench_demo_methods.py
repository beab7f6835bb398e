"""The demo's change measure against its planted truth, per detector.

Runs the demo (``sitewatch.sim.demo.run_demo``: simulate, ingest, ``run_site``, read back) once
per method on a fresh home, without the brief, and prints one Markdown row per method from
``DemoResult.summary()``: the share of quiet part-pairs flagged (a part of a pair of
consecutive usable dates, observed on both, with no planted event between them), the share of
event part-pairs flagged, and the planted-event checks hit.

    python benchmarks/bench_demo_methods.py [--methods ratio,hacd,...]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _provenance import code_state

from sitewatch.sim.demo import DEMO_METHOD, run_demo

METHODS = ("ratio", "difference", "brightness", "hacd", "irmad", "mad", "cva", "pca-kmeans")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(METHODS))
    args = p.parse_args()
    t0 = time.perf_counter()
    print(f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}  ")
    print(f"Machine: {platform.platform()}, Python {platform.python_version()}  ")
    print(f"Code: {code_state()}\n")
    print("| method | quiet part-pairs flagged | event part-pairs flagged | event checks hit |"
          " run s |")
    print("|---|---:|---:|---:|---:|")
    for m in [x.strip() for x in args.methods.split(",") if x.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            s = run_demo(Path(tmp), brief=False, method=m).summary()
            took = time.perf_counter() - t
        name = f"**{m}** (the demo's)" if m == DEMO_METHOD else m
        print(f"| {name} | {100 * s['quiet_flagged']:.1f} % of {s['quiet_part_pairs']} | "
              f"{100 * s['event_flagged']:.1f} % of {s['event_part_pairs']} | "
              f"{s['event_checks_hit']} / {s['event_checks']} | {took:.0f} |", flush=True)
    print(f"\nWall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
