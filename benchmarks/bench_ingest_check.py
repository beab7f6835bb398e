"""What ingest's whole-image check costs on the real data: every dataset folder of
``../shared/data`` is catalogued into a fresh store twice, with the full decode of every
block (:func:`sitewatch.imagery.rasters.decode_all`) and with it replaced by nothing; the
difference is the check's cost.  Each is run ``--repeat`` times; the best is reported.

    python benchmarks/bench_ingest_check.py [--data ../shared/data] [--repeat 3]
        [--out docs/bench_ingest_check.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from _provenance import code_state

from sitewatch.imagery import rasters
from sitewatch.imagery.ingest import ingest
from sitewatch.store import Store

#: (label, folder under the data root, acquisition time for files that carry none)
SETS = [
    ("OSCD, Sentinel-2 band sets (GeoTIFF)", "oscd", None),
    ("Sentinel-2 L1C crop (JPEG 2000 bands)", "s2_l1c_single", None),
    ("Landsat pairs (ENVI)", "landsat_pairs", None),
    ("Colorado series (Landsat GeoTIFF)", "landsat_timeseries_colorado", None),
]


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _ingest_seconds(folder: Path, decode: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, Store.open_path(Path(tmp) / "s.db") as store:
        ctx = (mock.patch.object(rasters, "decode_all", lambda *a, **k: None) if not decode
               else mock.patch.object(rasters, "decode_all", rasters.decode_all))
        with ctx:
            t0 = time.perf_counter()
            rep = ingest(store, [folder], "bench")
            dt = time.perf_counter() - t0
        return dt, rep.count("added")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2]
                    / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rows = []
    for label, sub, _ in SETS:
        folder = a.data / sub
        if not folder.is_dir():
            continue
        full = min(_ingest_seconds(folder, True) for _ in range(a.repeat))
        bare = min(_ingest_seconds(folder, False) for _ in range(a.repeat))
        rows.append((label, sub, full[1], _size(folder) / 2**20, full[0], bare[0]))
    lines = [
        "# What ingest's whole-image check costs",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} at {code_state()} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), best of {a.repeat}:",
        f"`python benchmarks/bench_ingest_check.py --repeat {a.repeat}`.",
        "",
        "| data | scenes | files MiB | ingest s | without the decode s | decode s |",
        "|---|---|---|---|---|---|",
    ]
    for label, sub, n, mib, full_s, bare_s in rows:
        lines.append(f"| {label} (`{sub}`) | {n} | {mib:.1f} | {full_s:.2f} | {bare_s:.2f} | "
                     f"{full_s - bare_s:.2f} |")
    lines += ["", "The container checks (sizes, PNG/JPEG/JPEG 2000 structure) run in both "
              "columns; JPEG 2000 bands over 25 Mpx get those only (not the decode)."]
    text = "\n".join(lines) + "\n"
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
