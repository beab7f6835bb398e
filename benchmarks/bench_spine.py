#!/usr/bin/env python
"""Speed and memory of sitewatch's spine: ingest, load-to-grid, window reads, the demo.

Every measurement runs in its own child process (this script again, with ``--one TASK``) on
a fresh temporary sitewatch home, so that the child's peak resident set size
(``ru_maxrss``) belongs to that measurement alone.  Each child also reports its RSS just
before the measured work (after imports and setup), so the growth caused by the work can be
read beside the peak.  Results print as markdown tables; ``--json FILE`` writes them all.

    python benchmarks/bench_spine.py --json /tmp/swbench/results.json

The real imagery is read from ``--data`` (default: ``$SITEWATCH_DATA``, else
``../shared/data`` next to the repository); scratch files go to ``--workdir`` (default: a
new temporary folder, removed at the end unless ``--keep``), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OSCD_CITIES = ("abudhabi", "aguasclaras", "beihai", "bercy", "bordeaux", "mumbai", "paris",
               "pisa", "rennes", "saclay_e")
COLORADO = "landsat_timeseries_colorado"
PAIRS = ("Taizhou", "Nanjing")
OSCD_BANDS = "blue,green,red,nir,swir1"
COLORADO_BANDS = "red,nir,swir1"
BIG, SMALL = 10980, 2000  # a Sentinel-2 tile; a small image over the same site
WINDOW_REPEATS = 5
GROUPS = ("ingest", "load", "window", "demo")
NEEDS_DATA = {"ingest", "load"}


# --------------------------------------------------------------------------- helpers


def _peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _default_data() -> Path:
    env = os.environ.get("SITEWATCH_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy
    import rasterio

    import sitewatch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib: Any = None
    try:
        free = subprocess.run(["free", "-g"], capture_output=True, text=True, check=True)
        mem_gib = int(next(ln for ln in free.stdout.splitlines()
                           if ln.startswith("Mem:")).split()[1])
    except (OSError, subprocess.CalledProcessError, StopIteration, ValueError):
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True,
                                   check=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError):
        nproc = os.cpu_count() or 0
    return {
        "nproc": nproc,
        "mem_total_gib_free_g": mem_gib,
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sitewatch": sitewatch.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "numpy": numpy.__version__,
    }


# --------------------------------------------------------------------------- child tasks
# Each returns a dict; the child adds its peak RSS and writes it to --out.


def task_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest ``--item SITE=PATH`` (each timed), optionally a second, no-op time."""
    from sitewatch.imagery.ingest import ingest
    from sitewatch.store import Store

    out: dict[str, Any] = {"items": []}
    with Store.open_home(args.home) as store:
        out["rss_before_mib"] = round(_peak_rss_mib(), 1)
        for item in args.item:
            site, path = item.split("=", 1)
            t0 = time.perf_counter()
            rep = ingest(store, [path], site)
            dt = time.perf_counter() - t0
            nbytes = sum(f.size for sc in store.scenes(site) for f in sc.files)
            out["items"].append({
                "site": site, "path": path, "seconds": round(dt, 3),
                "scenes": len(rep.items), "statuses": _statuses(rep),
                "skipped": len(rep.skipped), "mib_hashed": round(nbytes / 2**20, 1),
            })
        out["peak_rss_mib"] = round(_peak_rss_mib(), 1)
        if args.reingest:
            redo = []
            for item in args.item:
                site, path = item.split("=", 1)
                t0 = time.perf_counter()
                rep = ingest(store, [path], site)
                redo.append({"site": site, "seconds": round(time.perf_counter() - t0, 3),
                             "scenes": len(rep.items), "statuses": _statuses(rep)})
            out["reingest"] = redo
    return out


def _statuses(rep: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for it in rep.items:
        counts[it.status] = counts.get(it.status, 0) + 1
    return counts


def task_load(args: argparse.Namespace) -> dict[str, Any]:
    """Load every scene of each ``--site`` onto its grid (``--res``, ``--bands``)."""
    from sitewatch.imagery.grid import load_scene, site_grid
    from sitewatch.store import Store

    bands = args.bands.split(",")
    out: dict[str, Any] = {"sites": [], "bands": bands, "resolution": args.res}
    with Store.open_home(args.home) as store:
        work = []
        for sid in args.site:
            site = store.get_site(sid)
            if site is None:
                raise SystemExit(f"site {sid!r} is not in {args.home}")
            work.append((sid, site_grid(site, args.res), store.scenes(sid)))
    out["rss_before_mib"] = round(_peak_rss_mib(), 1)
    for sid, grid, scenes in work:
        rows = []
        for sc in scenes:
            times, valid = [], math.nan
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                img = load_scene(sc, grid, bands)
                times.append(time.perf_counter() - t0)
                valid = img.valid_fraction
                del img
            rows.append({"scene": sc.id, "image_px": [sc.width, sc.height],
                         "seconds": [round(t, 4) for t in times],
                         "valid_fraction": round(valid, 4)})
        out["sites"].append({"site": sid, "grid": [grid.width, grid.height], "scenes": rows})
    return out


def _content(rows: Any, cols: Any) -> Any:
    """Smooth synthetic reflectance-like values (a sum of sines) that compress well."""
    import numpy as np

    y = rows[:, None].astype("float32")
    x = cols[None, :].astype("float32")
    v = (3000 + 900 * np.sin(x / 410.0) + 700 * np.sin(y / 290.0)
         + 400 * np.sin((x + y) / 97.0) + 150 * np.sin((x - 2 * y) / 23.0))
    return v.astype("uint16")


def _image_transform(size: int) -> tuple[Any, Any]:
    """An affine placing a ``size`` image (10 m) with sohae-sim near its centre, and the CRS."""
    from affine import Affine
    from rasterio.crs import CRS

    from sitewatch.imagery.grid import site_grid
    from sitewatch.sites.site import builtin_site

    grid = site_grid(builtin_site("sohae-sim"), 10.0)
    crs = CRS.from_epsg(32651)
    if CRS.from_wkt(grid.crs) != crs:
        raise SystemExit(f"sohae-sim's grid is not in EPSG:32651 but {grid.crs[:60]}...")
    left, bottom, right, top = grid.bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    x0 = math.floor((cx - size * 10 / 2 + 3333) / 10) * 10  # site a little off centre
    y0 = math.ceil((cy + size * 10 / 2 - 2222) / 10) * 10
    if not (x0 < left and right < x0 + size * 10 and y0 - size * 10 < bottom and top < y0):
        raise SystemExit("synthetic image does not cover the site")
    return Affine(10, 0, x0, 0, -10, y0), crs


def task_write_image(args: argparse.Namespace) -> dict[str, Any]:
    """Write the synthetic single-band uint16 tiled deflate GeoTIFF of ``--size`` pixels."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    size = args.size
    transform, crs = _image_transform(size)
    path = Path(args.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"rss_before_mib": round(_peak_rss_mib(), 1)}
    t0 = time.perf_counter()
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint16",
        "crs": crs, "transform": transform, "tiled": True, "blockxsize": 512,
        "blockysize": 512, "compress": "deflate", "predictor": 2, "BIGTIFF": "IF_SAFER",
    }
    cols = np.arange(size)
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(ACQUISITION_TIME="2024-01-01T00:00:00Z")
        dst.set_band_description(1, "nir")
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            dst.write(_content(np.arange(r0, r0 + h), cols), 1, window=Window(0, r0, size, h))
    out.update({"seconds": round(time.perf_counter() - t0, 3), "size_px": size,
                "file_mib": round(path.stat().st_size / 2**20, 1), "path": str(path)})
    return out


def task_read_full(args: argparse.Namespace) -> dict[str, Any]:
    """For contrast: read the whole band of ``--file`` (what a non-windowed loader would do)."""
    import rasterio

    out: dict[str, Any] = {"rss_before_mib": round(_peak_rss_mib(), 1)}
    t0 = time.perf_counter()
    with rasterio.open(args.file) as ds:
        arr = ds.read(1).astype("float32")
    out.update({"seconds": round(time.perf_counter() - t0, 3), "shape": list(arr.shape)})
    return out


TASKS = {"ingest": task_ingest, "load": task_load, "write-image": task_write_image,
         "read-full": task_read_full}


def run_child(args: argparse.Namespace) -> None:
    # Import the library before the "before" RSS mark so that it measures the work only.
    import sitewatch.imagery.grid
    import sitewatch.imagery.ingest
    import sitewatch.store  # noqa: F401

    res = TASKS[args.one](args)
    res["task"] = args.one
    res.setdefault("peak_rss_mib", round(_peak_rss_mib(), 1))
    res["peak_rss_mib_end"] = round(_peak_rss_mib(), 1)
    Path(args.out).write_text(json.dumps(res, indent=1))


# --------------------------------------------------------------------------- parent


class Runner:
    def __init__(self, work: Path):
        self.work = work
        self.n = 0

    def child(self, task: str, name: str, extra: list[str], home: Path | None = None
              ) -> dict[str, Any]:
        """Run ``--one task`` in a child process; its result plus wall time and wait4 RSS."""
        self.n += 1
        home = home or self.work / f"home-{self.n:02d}-{name}"
        out = self.work / "results" / f"{self.n:02d}-{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", task,
               "--home", str(home), "--out", str(out), *extra]
        wall, kib, rc, log = self._spawn(cmd, name)
        if rc != 0:
            raise SystemExit(f"child {name} failed (exit {rc}); log: {log}\n"
                             + _tail(log))
        res = json.loads(out.read_text())
        res.update({"name": name, "process_wall_s": round(wall, 3),
                    "wait4_maxrss_mib": round(kib / 1024, 1), "home": str(home)})
        return res

    def _spawn(self, cmd: list[str], name: str) -> tuple[float, int, int, Path]:
        log = self.work / "logs" / f"{self.n:02d}-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"  [{name}] ...", file=sys.stderr, flush=True)
        with open(log, "wb") as fh:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        return wall, ru.ru_maxrss, proc.returncode, log

    def command(self, cmd: list[str], name: str) -> dict[str, Any]:
        self.n += 1
        wall, kib, rc, log = self._spawn(cmd, name)
        if rc != 0:
            raise SystemExit(f"{name} failed (exit {rc}): {' '.join(cmd)}\n" + _tail(log))
        return {"name": name, "command": cmd, "wall_s": round(wall, 3),
                "peak_rss_mib": round(kib / 1024, 1),
                "output": log.read_text(errors="replace")}


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def bench_ingest(r: Runner, data: Path) -> dict[str, Any]:
    rows = []
    for city in OSCD_CITIES:
        rows.append(r.child("ingest", f"ingest-oscd-{city}",
                            ["--item", f"{city}={data / 'oscd' / city}"]))
    rows.append(r.child("ingest", "ingest-colorado",
                        ["--item", f"colorado={data / COLORADO}", "--reingest"]))
    for pair in PAIRS:
        rows.append(r.child("ingest", f"ingest-{pair.lower()}",
                            ["--item", f"{pair.lower()}={data / 'landsat_pairs' / pair}"]))
    return {"runs": rows}


def bench_load(r: Runner, data: Path) -> dict[str, Any]:
    home = r.work / "home-load-oscd"
    setup_o = r.child("ingest", "setup-load-oscd",
                      [a for c in OSCD_CITIES for a in ("--item", f"{c}={data / 'oscd' / c}")],
                      home=home)
    oscd = r.child("load", "load-oscd",
                   [a for c in OSCD_CITIES for a in ("--site", c)]
                   + ["--res", "10", "--bands", OSCD_BANDS], home=home)
    home = r.work / "home-load-colorado"
    setup_c = r.child("ingest", "setup-load-colorado",
                      ["--item", f"colorado={data / COLORADO}"], home=home)
    colo = r.child("load", "load-colorado",
                   ["--site", "colorado", "--res", "30", "--bands", COLORADO_BANDS], home=home)
    return {"oscd": oscd, "colorado": colo, "setup": [setup_o, setup_c]}


def bench_window(r: Runner) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, size in (("big", BIG), ("small", SMALL)):
        img = r.work / "images" / label / f"synthetic_{size}.tif"
        write = r.child("write-image", f"write-{label}", ["--size", str(size), "--file",
                                                           str(img)])
        home = r.work / f"home-window-{label}"
        setup = r.child("ingest", f"setup-window-{label}",
                        ["--item", f"sohae-sim={img}"], home=home)
        load = r.child("load", f"window-{label}",
                       ["--site", "sohae-sim", "--res", "10", "--bands", "nir",
                        "--repeat", str(WINDOW_REPEATS)], home=home)
        out[label] = {"write": write, "ingest": setup, "load": load}
    big = r.work / "images" / "big" / f"synthetic_{BIG}.tif"
    out["big_full_read"] = r.child("read-full", "read-full-big", ["--file", str(big)])
    return out


def _sitewatch_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "sitewatch"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("sitewatch")
    if found:
        return [found]
    return [sys.executable, "-c", "from sitewatch.cli.main import main; main()"]


def bench_demo(r: Runner) -> dict[str, Any]:
    home = r.work / "home-demo"
    cmd = [*_sitewatch_cmd(), "--home", str(home), "demo", "--workdir", str(home / "work")]
    runs = [r.command(cmd, f"demo-run-{i}") for i in (1, 2)]
    for run in runs:
        run["catalogued"] = next((ln.strip() for ln in run["output"].splitlines()
                                  if ln.strip().startswith("catalogued")), "")
    return {"runs": runs}


# --------------------------------------------------------------------------- report


def _table(head: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; columns whose cells are all numbers (or blank) align right."""
    def numeric(i: int) -> bool:
        return all(isinstance(r[i], int | float) or r[i] == "" for r in rows)

    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if numeric(i) else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _st(d: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(d.items()))


def report(res: dict[str, Any]) -> str:
    parts = []
    m = res["machine"]
    parts.append(
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_total_gib_free_g']} GiB RAM "
        f"(`free -g`), {m['platform']}; Python {m['python']}, sitewatch {m['sitewatch']}, "
        f"rasterio {m['rasterio']}, GDAL {m['gdal']}, numpy {m['numpy']}."
    )
    if "ingest" in res:
        rows = []
        oscd_t = oscd_mib = oscd_n = 0.0
        oscd_rss = 0.0
        for run in res["ingest"]["runs"]:
            it = run["items"][0]
            rows.append([run["name"].removeprefix("ingest-"), it["scenes"], _st(it["statuses"]),
                         it["mib_hashed"], it["seconds"], run["process_wall_s"],
                         run["peak_rss_mib"], run["rss_before_mib"]])
            if run["name"].startswith("ingest-oscd-"):
                oscd_t += it["seconds"]
                oscd_mib += it["mib_hashed"]
                oscd_n += it["scenes"]
                oscd_rss = max(oscd_rss, run["peak_rss_mib"])
            for redo in run.get("reingest", []):
                rows.append([f"{redo['site']} re-ingest (no-op)", redo["scenes"],
                             _st(redo["statuses"]), it["mib_hashed"], redo["seconds"], "", "",
                             ""])
        rows.append(["all 10 OSCD cities (sum / max)", int(oscd_n), "", round(oscd_mib, 1),
                     round(oscd_t, 3), "", oscd_rss, ""])
        parts.append("### Ingest (each in a fresh home; one child process per row)\n\n" + _table(
            ["data", "scenes", "result", "MiB hashed", "ingest s", "process s",
             "peak RSS MiB", "RSS before MiB"], rows))
    if "load" in res:
        rows = []
        for key, label in (("oscd", "OSCD, 10 cities x 2 dates"),
                           ("colorado", "Colorado, 105 dates (+ fmask)")):
            run = res["load"][key]
            per = [(sc["seconds"][0], sc["scene"], site["site"])
                   for site in run["sites"] for sc in site["scenes"]]
            times = [t for t, _, _ in per]
            worst = max(per)
            grids = sorted({tuple(site["grid"]) for site in run["sites"]})
            npx = [g[0] * g[1] / 1e6 for g in grids]
            gtxt = (f"{grids[0][0]}x{grids[0][1]}" if len(grids) == 1 else
                    f"{len(grids)} grids, {min(npx):.2f}-{max(npx):.2f} Mpx")
            rows.append([label, f"{run['resolution']:g} m", ",".join(run["bands"]), gtxt,
                         len(times), _ms(statistics.mean(times)),
                         _ms(statistics.median(times)),
                         f"{_ms(worst[0])} ({worst[2]}/{worst[1]})", _ms(times[0]),
                         run["peak_rss_mib"], run["rss_before_mib"]])
        parts.append("### Load to grid (one child per row; first load of each scene)\n\n"
                     + _table(["data", "grid res", "bands", "grid", "scenes", "mean ms",
                               "median ms", "max ms (site/scene)", "first scene ms",
                               "peak RSS MiB", "RSS before MiB"], rows))
    if "window" in res:
        rows = []
        for label in ("big", "small"):
            w = res["window"][label]
            sc = w["load"]["sites"][0]["scenes"][0]
            ts = sc["seconds"]
            rows.append([f"{w['write']['size_px']} x {w['write']['size_px']}",
                         w["write"]["file_mib"], w["write"]["seconds"],
                         w["ingest"]["items"][0]["seconds"],
                         "x".join(str(v) for v in w["load"]["sites"][0]["grid"]),
                         _ms(ts[0]), _ms(statistics.median(ts[1:] or ts)),
                         w["load"]["peak_rss_mib"], w["load"]["rss_before_mib"]])
        full = res["window"]["big_full_read"]
        parts.append(
            "### Window read: `load_scene(scene, site_grid(sohae-sim, 10), ['nir'])`\n\n"
            + _table(["image (uint16, 512 tiles, deflate)", "file MiB", "write s (not measured)",
                      "ingest s", "grid", "load ms (first)",
                      f"load ms (median of next {WINDOW_REPEATS - 1})", "peak RSS MiB",
                      "RSS before load MiB"], rows)
            + f"\n\nContrast, not windowed: reading the whole {BIG} x {BIG} band as float32 "
            f"took {full['seconds']} s with peak RSS {full['peak_rss_mib']} MiB "
            f"(before: {full['rss_before_mib']} MiB)."
        )
    if "demo" in res:
        rows = [[run["name"].removeprefix("demo-"), run["wall_s"], run["peak_rss_mib"],
                 run["catalogued"]] for run in res["demo"]["runs"]]
        cmd = " ".join(res["demo"]["runs"][0]["command"][-5:])
        parts.append(f"### Demo end to end (`sitewatch {cmd}`)\n\n"
                     + _table(["run", "wall s", "peak RSS MiB", "catalogue line"], rows))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help="folder of the real imagery [default: $SITEWATCH_DATA, else "
                        "../shared/data next to the repository]")
    p.add_argument("--json", type=Path, help="also write all results as JSON here")
    p.add_argument("--workdir", type=Path,
                   help="scratch folder (databases, synthetic images) [default: a new temp dir]")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--only", default=",".join(GROUPS),
                   help=f"comma-separated subset of {','.join(GROUPS)} [default: all]")
    # Child mode (internal).
    p.add_argument("--one", choices=sorted(TASKS), help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--item", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--site", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--res", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--bands", default="nir", help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--reingest", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=BIG, help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.one:
        run_child(args)
        return 0

    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        p.error(f"unknown --only group(s): {', '.join(sorted(unknown))}")
    data = (args.data or _default_data()).resolve()
    if NEEDS_DATA & set(groups):
        missing = [d for d in ("oscd", COLORADO, "landsat_pairs") if not (data / d).is_dir()]
        if missing:
            print(f"bench_spine: the real imagery is not at {data} (missing: "
                  f"{', '.join(missing)}); give --data DIR or set SITEWATCH_DATA "
                  "(or run only --only window,demo)", file=sys.stderr)
            return 2

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="swbench-"))).resolve()
    if work == REPO or REPO in work.parents:
        print(f"bench_spine: --workdir {work} is inside the repository; use a temp folder",
              file=sys.stderr)
        return 2
    if work.exists() and any(work.iterdir()):
        print(f"bench_spine: --workdir {work} is not empty; give a new or empty folder",
              file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)

    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(), "data": str(data), "workdir": str(work),
    }
    r = Runner(work)
    t0 = time.perf_counter()
    try:
        if "ingest" in groups:
            res["ingest"] = bench_ingest(r, data)
        if "load" in groups:
            res["load"] = bench_load(r, data)
        if "window" in groups:
            res["window"] = bench_window(r)
        if "demo" in groups:
            res["demo"] = bench_demo(r)
    finally:
        res["total_s"] = round(time.perf_counter() - t0, 1)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(report(res))
    print(f"\n(total {res['total_s']} s; scratch in {work}"
          f"{'' if args.keep else ', removed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
