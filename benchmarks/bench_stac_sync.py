"""Issue 15's two figures, against the real local STAC services the test suite uses
(tests/stac_server.py: PostgreSQL + pgstac, stac-fastapi-pgstac, a Range-capable file server):

1. bytes read per new Sentinel-2-sized scene for a 6 km site versus the asset's size (the
   file server's own log of requests and body bytes sent), and what a re-sync reads;
2. seconds from "a new Item is in the catalogue" to "alerts delivered" for one site with
   ``--history`` dates already catalogued and processed: one :func:`watch_cycle` (sync, run,
   assess, deliver to a JSON-lines sink), repeated ``--repeat`` times on fresh copies of the
   home, with each step timed.

    python benchmarks/bench_stac_sync.py [--history 100] [--repeat 3]
        [--workdir DIR --keep] [--out docs/bench_stac_sync.md]

Needs the test services installed (scripts/install-test-services.sh); writes a 170 MB COG and
the Items' assets under a temporary folder, removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _provenance import REPO, code_state

sys.path.insert(0, str(REPO / "tests"))

from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point

import sitewatch.sources.sync as sync_mod
import sitewatch.warning.record as record_mod
import sitewatch.watch.pipeline as pipeline_mod
import sitewatch.watch.sinks as sinks_mod
from sitewatch.sites.site import Part, Site, bare_site, square_boundary
from sitewatch.sources.access import HttpPolicy
from sitewatch.sources.records import Source
from sitewatch.sources.sync import sync_site
from sitewatch.store import Store
from sitewatch.watch.sinks import JsonLinesSink
from sitewatch.watch.unattended import watch_cycle
from stac_items import big_cog, item_dict, sentinel1_rtc_items
from stac_server import StacServices, start_services

POLICY = HttpPolicy(connect_timeout=5, read_timeout=60, retries=1, backoff=0.0,
                    backoff_max=0.0, retry_after_cap=2.0, page_size=100)
S1_CENTER = (646_260.0, 4_391_410.0)  # UTM 51N, Sohae (as in tests/stac_items.py)


# -- 1. bytes per scene ------------------------------------------------------------------------

def bytes_per_scene(stac: StacServices, work: Path) -> dict[str, Any]:
    """A 6 km site on a Sentinel-2-sized Item (two 10980 x 10980 assets, ``red`` and
    ``nir``); sync it, then re-sync it, counting what the file server sent."""
    assert stac.api is not None and stac.files is not None
    root = stac.files.root
    t0 = time.perf_counter()
    red = big_cog(root / "big/S2_10980_B04.tif")
    nir = root / "big/S2_10980_B08.tif"  # the same bytes under a second name: its own reads
    if not nir.exists():
        os.link(red, nir)
    build_s = time.perf_counter() - t0
    assets = {k: {"href": stac.files.url_for(p.relative_to(root)), "roles": ["data"],
                  "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
              for k, p in (("red", red), ("nir", nir))}
    item = item_dict("S2X_big", datetime(2024, 5, 1, 2, 0, tzinfo=UTC), crs="EPSG:32651",
                     transform=Affine(10, 0, 600_000.0, 0, -10, 4_400_040.0),
                     shape=(10980, 10980),
                     properties={"platform": "sentinel-2b", "eo:cloud_cover": 1.0},
                     assets=assets, extensions=())
    stac.add_collection("sentinel-2-l2a")
    stac.add_items("sentinel-2-l2a", [item])
    site = bare_site("six", square_boundary(124.705, 39.66, 3000), "6 km square")
    out: dict[str, Any] = {"asset_bytes": red.stat().st_size, "build_s": build_s}
    with Store.open_home(work / "home-bytes") as store:
        store.put_site(site, "file")
        store.add_source(Source("six", "s2", stac.api.url, "sentinel-2-l2a", preset="s2-l2a"))
        for label in ("sync", "resync"):
            stac.files.reset_log()
            t0 = time.perf_counter()
            rep = sync_site(store, "six", policy=POLICY)
            secs = time.perf_counter() - t0
            if not rep.ok:
                raise SystemExit(f"{label} failed: {rep.summary()}")
            reqs = stac.files.requests
            out[label] = {"added": len(rep.added), "seconds": secs, "requests": len(reqs),
                          "bytes": sum(r.bytes_sent for r in reqs),
                          "per_asset": {k: (sum(1 for r in reqs if r.path.endswith(p.name)),
                                            sum(r.bytes_sent for r in reqs
                                                if r.path.endswith(p.name)))
                                        for k, p in (("red", red), ("nir", nir))}}
        (scene,) = store.scenes("six")
        out["window"] = (scene.width, scene.height)
    return out


# -- 2. new Item to alerts delivered -------------------------------------------------------------

class StepTimer:
    """Wall time of each step's main call, by wrapping the module functions the cycle
    looks up at call time (nothing else changes)."""

    TARGETS = (("sync", sync_mod, "sync_site"), ("run", pipeline_mod, "run_site"),
               ("assess", record_mod, "assess_site"), ("deliver", sinks_mod, "deliver_pending"))

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        return timed

    @contextlib.contextmanager
    def active(self) -> Iterator[StepTimer]:
        saved = [(mod, attr, getattr(mod, attr)) for _, mod, attr in self.TARGETS]
        try:
            for name, mod, attr in self.TARGETS:
                setattr(mod, attr, self._wrap(name, getattr(mod, attr)))
            yield self
        finally:
            for mod, attr, fn in saved:
                setattr(mod, attr, fn)


def new_item_to_alert(stac: StacServices, work: Path, *, history: int, repeat: int,
                      size: int) -> dict[str, Any]:
    assert stac.api is not None and stac.files is not None
    t0 = time.perf_counter()
    items = sentinel1_rtc_items(stac.files.root, stac.files.url_for, seed=7,
                                n_dates=history + 1, every_days=3, size=size,
                                change_after=history, collection_tag="bench")
    build_s = time.perf_counter() - t0
    stac.add_collection("sentinel-1-rtc")
    stac.add_items("sentinel-1-rtc", items[:history])
    lon, lat = Transformer.from_crs(32651, 4326, always_xy=True).transform(*S1_CENTER)
    # a square site 0.9 x the Items' side, a pad of 150 m radius at the centre, where the
    # new Item's bright 200 m square appears
    site = Site("bench", "bench", square_boundary(lon, lat, size * 10.0 * 0.45),
                (Part("pad", "launch_pad", Point(lon, lat), {"radius_m": 150}),),
                {"site_type": "launch_site"})
    base = work / "home-base"
    with Store.open_home(base) as store:
        store.put_site(site, "file")
        store.add_source(Source("bench", "s1", stac.api.url, "sentinel-1-rtc", preset="s1-rtc"))
        t0 = time.perf_counter()
        first = watch_cycle(store, "bench", home=base)
        first_s = time.perf_counter() - t0
        n_scenes = len(store.scenes("bench"))
    if first.errors or n_scenes != history:
        raise SystemExit(f"history cycle: {n_scenes} scenes, errors {first.errors}")
    stac.add_items("sentinel-1-rtc", items[history:])  # the new Item is in the catalogue
    runs = []
    for i in range(repeat):
        home = work / f"home-{i}"
        shutil.copytree(base, home)
        jsonl = work / f"alerts-{i}.jsonl"
        with Store.open_home(home) as store:
            store.subscribe_sink(JsonLinesSink(jsonl).key, "bench")
            timer = StepTimer()
            with timer.active():
                t0 = time.perf_counter()
                rep = watch_cycle(store, "bench", home=home)
                total = time.perf_counter() - t0
        lines = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
        runs.append({"total": total, "steps": dict(timer.seconds),
                     "outcomes": {s.name: s.outcome for s in rep.steps},
                     "new_scenes": rep.new_scenes, "processed": rep.scenes_processed,
                     "new_alerts": rep.new_alerts, "updated_alerts": rep.updated_alerts,
                     "delivered": rep.events_delivered, "jsonl_lines": len(lines),
                     "jsonl_parts": sorted({str(e["alert"].get("part")) for e in lines}),
                     "errors": list(rep.errors)})
    return {"history": history, "size": size, "build_s": build_s, "first_s": first_s,
            "first_alerts": first.new_alerts, "runs": runs}


# -- report --------------------------------------------------------------------------------------

def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def report(a: argparse.Namespace, b: dict[str, Any], w: dict[str, Any], load0: str,
           load1: str) -> str:
    size = b["asset_bytes"]
    s, r = b["sync"], b["resync"]
    lines = [
        "# STAC sync: bytes per scene, new Item to alert",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} at {code_state()} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); load average "
        f"{load0} at the start, {load1} at the end.",
        f"`python benchmarks/bench_stac_sync.py --history {a.history} --repeat {a.repeat}`, "
        "against the real local services of the test suite (tests/stac_server.py: "
        "stac-fastapi-pgstac on PostgreSQL + pgstac, the Range-capable file server, both on "
        "127.0.0.1, no proxy).",
        "",
        "## 1. Bytes read per Sentinel-2-sized scene, 6 km site",
        "",
        f"One Item with two assets (`red`, `nir`), each a 10980 x 10980 uint16 COG (512 px "
        f"deflate tiles, overviews; `big_cog` in tests/stac_items.py) of {size:,} bytes; the "
        "site is a 6 km square inside it (`s2-l2a` preset).  Counted by the file server "
        "(body bytes it sent, every request):",
        "",
        "| | Items added | requests | bytes sent | per asset | per asset / asset size | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, x in (("sync", s), ("re-sync", r)):
        per = x["bytes"] / 2
        lines.append(f"| {label} | {x['added']} | {x['requests']} | {x['bytes']:,} | "
                     f"{per:,.0f} | {100 * per / size:.2f} % | {x['seconds']:.2f} |")
    pa = s["per_asset"]
    lines += [
        "",
        f"Per asset on the first sync: red {pa['red'][0]} requests / {pa['red'][1]:,} bytes, "
        f"nir {pa['nir'][0]} / {pa['nir'][1]:,} (the two are the same bytes under two names, so "
        "GDAL's cache cannot serve one from the other).  The cached window is "
        f"{b['window'][0]} x {b['window'][1]} px.  Target: under 2 % of the asset; "
        "the re-sync reads no pixels.",
        "",
        f"## 2. New Item in the catalogue to alerts delivered, {w['history']} dates of history",
        "",
        "A square site (0.9 x the Items' side) with one part (`pad`, a 150 m radius around "
        f"the centre), "
        f"{w['history']} synthetic Sentinel-1 RTC Items ({w['size']} x {w['size']} px at 10 m, "
        "`vv`/`vh`, two relative orbits; `sentinel1_rtc_items`), synced and run once by a "
        f"`watch_cycle` (not timed: {w['first_s']:.1f} s, {w['first_alerts']} alerts).  Then "
        "one new Item carrying a +10 dB 200 m square at the centre is added to the catalogue, "
        "and, on a fresh copy of the home each time with a JSON-lines sink subscribed, one "
        "`watch_cycle` (sync, run, assess, deliver) is timed.  Step times are the wall time of "
        "`sync_site`, `run_site`, `assess_site` and `deliver_pending` inside the cycle; "
        "'other' is the rest (lock, store look-ups, sink set-up).",
        "",
        "| repeat | total s | sync s | run s | assess s | deliver s | other s | new scenes | "
        "new alerts | events delivered | lines in the JSON-lines file |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    steps = ("sync", "run", "assess", "deliver")
    for i, run in enumerate(w["runs"], 1):
        st = run["steps"]
        other = run["total"] - sum(st.get(k, 0.0) for k in steps)
        lines.append(f"| {i} | {run['total']:.2f} | "
                     + " | ".join(f"{st.get(k, 0.0):.2f}" for k in steps)
                     + f" | {other:.2f} | {run['new_scenes']} | {run['new_alerts']} | "
                     f"{run['delivered']} | {run['jsonl_lines']} |")
    med = {k: statistics.median(run["steps"].get(k, 0.0) for run in w["runs"]) for k in steps}
    total = statistics.median(run["total"] for run in w["runs"])
    lines.append(f"| **median** | **{total:.2f}** | "
                 + " | ".join(f"{med[k]:.2f}" for k in steps) + " | | | | | |")
    top = max(med, key=lambda k: med[k])
    last = w["runs"][-1]
    lines += [
        "",
        f"Target: under 10 s.  The largest step is `{top}` ({med[top]:.2f} s of "
        f"{total:.2f} s median).  Step outcomes of the last repeat: "
        + ", ".join(f"{k} {v}" for k, v in last["outcomes"].items())
        + f"; parts named in the delivered events: {', '.join(last['jsonl_parts']) or 'none'}"
        + (f"; errors: {'; '.join(last['errors'])}" if last["errors"] else "") + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=320, help="S1 Item side in pixels")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="swbench-stac-"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = _load()
    (work / "services").mkdir(exist_ok=True)
    stac = start_services(work / "services")
    try:
        b = bytes_per_scene(stac, work)
        stac.reset()
        w = new_item_to_alert(stac, work, history=a.history, repeat=a.repeat, size=a.size)
    finally:
        stac.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = report(a, b, w, load0, _load())
    if a.json:
        a.json.write_text(json.dumps({"bytes": b, "watch": w}, indent=2, default=str))
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
