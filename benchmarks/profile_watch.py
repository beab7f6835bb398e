#!/usr/bin/env python
"""cProfile summaries of ``sitewatch run`` on the speed benchmark's synthetic site: the
series from scratch, one new scene, and a run with nothing new, each the top entries by
cumulative and by own (self) time.

Usage (from the repository root, after ``bench_watch_speed.py --keep --workdir DIR``)::

    PYTHONPATH=src python benchmarks/profile_watch.py DIR [--top 25] [--out FILE]
        [--no-scratch-profile]

``DIR`` holds the benchmark's ``scenes/`` (history) and ``new/`` (the extra scene).  A
fresh catalogue is made in a temporary folder; the scratch run is profiled too unless
``--no-scratch-profile`` (it is then only run).  Which sitewatch is profiled is the one
``PYTHONPATH`` selects (so an older checkout's ``src`` can be profiled the same way).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_watch_speed import SITE_ID, site_layout


def _summary(prof: cProfile.Profile, sort: str, top: int) -> str:
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats(sort).print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    head = [ln.strip() for ln in lines[:start] if "function calls" in ln]
    keep = [re.sub(r"\S*/(site-packages|src|lib/python3\.\d+)/", "", ln)
            for ln in lines[start:] if ln.strip()]
    return "\n".join(head + keep)


def _run(db: Path, profile: bool, top: int) -> dict[str, object]:
    from sitewatch.store import Store
    from sitewatch.watch.pipeline import RunParams, run_site

    prof = cProfile.Profile() if profile else None
    with Store.open_path(db) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        rep = run_site(store, SITE_ID, RunParams())
        if prof:
            prof.disable()
        out: dict[str, object] = {"wall_s": time.perf_counter() - t0,
                                  "cpu_s": time.process_time() - c0,
                                  "processed": len(rep.processed)}
    if prof:
        out["cumulative"] = _summary(prof, "cumulative", top)
        out["self"] = _summary(prof, "tottime", top)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", default=None, help="write the summaries here as JSON")
    ap.add_argument("--scratch-profile", action=argparse.BooleanOptionalAction, default=True)
    a = ap.parse_args(argv)
    from sitewatch.imagery.ingest import ingest
    from sitewatch.sites.site import site_from_geojson
    from sitewatch.store import Store

    work = Path(a.workdir)
    plan = json.loads((work / "scenes.json").read_text())
    site_json, _ = site_layout(plan["size"], plan["parts"], plan["seed"])
    tmp = Path(tempfile.mkdtemp(prefix="sw_prof_"))
    try:
        db = tmp / "sw.db"
        with Store.open_path(db) as store:
            ingest(store, [work / "scenes"], SITE_ID, site=site_from_geojson(site_json, "bench"))
        res = {"sitewatch": __import__("sitewatch").__file__,
               "scratch": _run(db, a.scratch_profile, a.top)}
        with Store.open_path(db) as store:
            ingest(store, [work / "new"], SITE_ID)
        res["new scene"] = _run(db, True, a.top)
        res["no-op"] = _run(db, True, a.top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text)
    for k in ("scratch", "new scene", "no-op"):
        r = res[k]
        assert isinstance(r, dict)
        print(f"== {k}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, "
              f"{r['processed']} processed")
        for sort in ("cumulative", "self"):
            if sort in r:
                print(f"-- by {sort}\n{r[sort]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
