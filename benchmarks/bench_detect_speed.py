#!/usr/bin/env python
"""Speed and peak memory of whole-scene change detection (``detect_scenes``) per method.

Synthesises Sentinel-2-like pairs (one uint16 GeoTIFF per 10 m band, B02/B03/B04/B08, UTM
51N, DN = reflectance x 10000, tiled 512 + deflate) at each ``--sizes`` (the full tile is
10980), written once into ``--cache`` and reused.  The texture is a land-cover map (water,
built-up, soil, vegetation) drawn from smooth multi-scale noise, a fine brightness texture
and per-pixel sensor noise; AFTER has a global gain and offset, a phenology drop of the
vegetation NIR, and planted rectangular changes (new built-up / cleared ground, about 1.5 %
of the area, kept as ``truth.tif`` beside the two scenes).

``--layouts`` also stores the same pixels as users have them (derived once from the per-band
files, in the cache): ``pixel``, one 4-band GeoTIFF per date as GDAL writes it by default
(pixel-interleaved, in strips, deflate); ``band``, one 4-band band-interleaved GeoTIFF in
512 x 512 tiles; ``jp2``, one lossless JPEG 2000 file per band (GDAL's JP2OpenJPEG driver,
1024 x 1024 tiles) named like a Sentinel-2 granule's; ``per-band`` is the original set.  The
multiband files name their bands (descriptions) and carry the DN scale (1e-4), so every
layout gives the detector the same reflectances.

Each (layout, method, size) runs ``detect_scenes(before, after, out)`` in a fresh child
process (this script again, ``--child``): wall time of the process and of ``detect_scenes``
itself, throughput, and the child's peak resident set size (``wait4`` ``ru_maxrss``).  The
change map is then scored against the planted truth (outside the timing) as a sanity check.

    python benchmarks/bench_detect_speed.py                      # 1024, 4096, 10980
    python benchmarks/bench_detect_speed.py --sizes 1024 --methods cva,irmad --out /tmp/x.md
    python benchmarks/bench_detect_speed.py --profile irmad:4096 # adds a cProfile section
    python benchmarks/bench_detect_speed.py --layouts per-band,pixel,band,jp2 \
        --methods hacd,irmad --sizes 2745,5490,10980 --out docs/bench_detect_tiles.md

Nothing is written into the repository except ``--out`` (default docs/bench_speed.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import code_state  # noqa: E402

FULL = 10980
DEFAULT_SIZES = (1024, 4096, FULL)
DEFAULT_FULL_METHODS = ("irmad", "cva")
TARGET_S, TARGET_GIB = 60.0, 2.0  # irmad on a full tile
SYNTH_VERSION = 1  # bump when the synthetic scene changes, to invalidate the cache

# Sentinel-2 band ids of the four 10 m bands and their common names.
S2_BANDS = (("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B08", "nir"))
TILE = "T51SUJ"
DATES = ("20210605T022549", "20210824T022549")  # before baseline 04.00: DN / 10000, no offset
ORIGIN = (300000.0, 4200000.0)  # UL corner, EPSG:32651, like a real S2 tile
# Reflectance (blue, green, red, nir) of the land-cover classes and of the planted changes.
COVER = {
    "water": (0.060, 0.050, 0.030, 0.020),
    "built": (0.110, 0.120, 0.130, 0.180),
    "soil": (0.080, 0.110, 0.140, 0.230),
    "vegetation": (0.030, 0.060, 0.040, 0.340),
}
PLANTED = ((0.170, 0.180, 0.190, 0.220),  # new concrete / roofs
           (0.090, 0.120, 0.160, 0.200))  # cleared ground
GAIN, OFFSET, NIR_PHENOLOGY = 1.07, 0.004, 0.93
NOISE = 0.004  # per-pixel sensor noise (reflectance)
STRIP = 512


# --------------------------------------------------------------------------- synthesis


def _coarse(rng: Any, size: int, scale: int) -> Any:
    """A smooth unit-variance random field sampled every ``scale`` pixels."""
    import numpy as np
    from scipy import ndimage

    n = size // scale + 4
    f = ndimage.gaussian_filter(rng.normal(size=(n, n)), 1.0, mode="wrap")
    return ((f - f.mean()) / f.std()).astype(np.float32)


def _up(coarse: Any, scale: int, r0: int, r1: int, width: int) -> Any:
    """Rows r0..r1 of the field upsampled (bilinear) to one pixel."""
    import numpy as np
    from scipy import ndimage

    rr = (np.arange(r0, r1, dtype=np.float32) / scale)[:, None]
    cc = (np.arange(width, dtype=np.float32) / scale)[None, :]
    rr, cc = np.broadcast_arrays(rr, cc)
    return ndimage.map_coordinates(coarse, [rr, cc], order=1, mode="nearest")


def _rects(rng: Any, size: int, fraction: float = 0.015) -> list[tuple[int, int, int, int, int]]:
    """Planted changes: (row0, col0, height, width, kind) covering about ``fraction``."""
    out, area = [], 0
    while area < fraction * size * size:
        h, w = (int(v) for v in rng.integers(3, min(80, size // 4), size=2))
        r, c = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        out.append((r, c, h, w, int(rng.integers(0, len(PLANTED)))))
        area += h * w
    return out


def synthesise(size: int, root: Path) -> dict[str, Any]:
    """Write the before/after band sets and truth.tif of one ``size`` under ``root``."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    marker = root / "done.json"
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("version") == SYNTH_VERSION and meta.get("size") == size:
            return meta
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(size)
    fields = {s: _coarse(rng, size, s) for s in (256, 48, 12, 3)}
    rects = _rects(rng, size)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1,
               "dtype": "uint16", "nodata": 0, "crs": CRS.from_epsg(32651),
               "transform": Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "predictor": 2,
               "BIGTIFF": "IF_SAFER"}
    dirs = {d: root / d for d in ("before", "after")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    dst = {}
    for (d, folder), date in zip(dirs.items(), DATES, strict=True):
        for bid, _ in S2_BANDS:
            dst[d, bid] = rasterio.open(folder / f"{TILE}_{date}_{bid}.tif", "w", **profile)
    truth_prof = {**profile, "dtype": "uint8", "nodata": None, "predictor": 1}
    truth = rasterio.open(root / "truth.tif", "w", **truth_prof)
    spectra = np.array(list(COVER.values()), np.float32)  # (4 classes, 4 bands)
    planted = np.array(PLANTED, np.float32)
    changed_px = 0
    try:
        for r0 in range(0, size, STRIP):
            r1 = min(size, r0 + STRIP)
            cover = _up(fields[256], 256, r0, r1, size) + 0.6 * _up(fields[48], 48, r0, r1, size)
            cls = np.digitize(cover, [-1.5, -0.6, 0.2]).astype(np.int8)  # 0..3
            bright = 1 + 0.12 * _up(fields[12], 12, r0, r1, size) + 0.05 * _up(
                fields[3], 3, r0, r1, size)
            base = spectra[cls] * bright[..., None]  # (rows, cols, bands)
            after = base * GAIN + OFFSET
            veg = cls == 3
            after[..., 3][veg] *= NIR_PHENOLOGY
            mask = np.zeros(cls.shape, np.uint8)
            for r, c, h, w, kind in rects:
                if r < r1 and r + h > r0:
                    a, b = max(r, r0) - r0, min(r + h, r1) - r0
                    after[a:b, c:c + w] = (planted[kind] * bright[a:b, c:c + w, None]
                                           * GAIN + OFFSET)
                    mask[a:b, c:c + w] = 1
            changed_px += int(mask.sum())
            win = Window(0, r0, size, r1 - r0)
            for arr, d in ((base, "before"), (after, "after")):
                arr = arr + rng.normal(scale=NOISE, size=arr.shape).astype(np.float32)
                dn = np.clip(np.rint(arr * 10000), 1, 65535).astype(np.uint16)
                for i, (bid, _) in enumerate(S2_BANDS):
                    dst[d, bid].write(dn[..., i], 1, window=win)
            truth.write(mask, 1, window=win)
    finally:
        for ds in dst.values():
            ds.close()
        truth.close()
    mib = sum(p.stat().st_size for p in root.rglob("*.tif")) / 2**20
    meta = {"version": SYNTH_VERSION, "size": size, "seconds": round(time.perf_counter() - t0, 1),
            "mib": round(mib, 1), "planted_fraction": changed_px / size**2,
            "planted_objects": len(rects)}
    marker.write_text(json.dumps(meta, indent=1))
    return meta


LAYOUTS = ("per-band", "pixel", "band", "jp2")
LAYOUT_TEXT = {
    "per-band": "one GeoTIFF per band, 512 x 512 tiles, deflate + predictor 2",
    "pixel": "one 4-band GeoTIFF per date, GDAL's defaults: pixel-interleaved, strips of "
             "one row, deflate",
    "band": "one 4-band GeoTIFF per date, band-interleaved, 512 x 512 tiles, deflate",
    "jp2": "one lossless JPEG 2000 per band (JP2OpenJPEG, 1024 x 1024 tiles)",
}


def _multiband_name(date: str) -> str:
    return f"S2A_MSIL2A_{date}_N0300_R046_{TILE}_{date}.tif"


def layout_paths(root: Path, layout: str) -> tuple[Path, Path]:
    """The BEFORE and AFTER inputs of ``layout`` under a size's cache folder."""
    if layout == "per-band":
        return root / "before", root / "after"
    if layout == "jp2":
        return root / "jp2" / "before", root / "jp2" / "after"
    return tuple(root / layout / d / _multiband_name(date)  # type: ignore[return-value]
                 for d, date in zip(("before", "after"), DATES, strict=True))


def write_layout(root: Path, layout: str) -> dict[str, Any]:
    """Store the per-band pair of ``root`` as ``layout`` (once; a marker file says done)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    marker = root / f"{layout}.done.json"
    if layout == "per-band":
        return {"seconds": 0.0}
    if marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(root / layout, ignore_errors=True)
    t0 = time.perf_counter()
    for d, date in zip(("before", "after"), DATES, strict=True):
        files = [root / d / f"{TILE}_{date}_{bid}.tif" for bid, _ in S2_BANDS]
        srcs = [rasterio.open(f) for f in files]
        try:
            prof = {**srcs[0].profile}
            out_dir = root / layout / d
            out_dir.mkdir(parents=True, exist_ok=True)
            if layout == "jp2":
                jp2 = {"driver": "JP2OpenJPEG", "width": prof["width"], "height": prof["height"],
                       "count": 1, "dtype": "uint16", "nodata": 0, "crs": prof["crs"],
                       "transform": prof["transform"], "QUALITY": 100, "REVERSIBLE": "YES",
                       "blockxsize": 1024, "blockysize": 1024}
                for (bid, _), src in zip(S2_BANDS, srcs, strict=True):
                    with rasterio.open(out_dir / f"{TILE}_{date}_{bid}.jp2", "w", **jp2) as dst:
                        dst.write(src.read(1), 1)
                continue
            mb = {"driver": "GTiff", "width": prof["width"], "height": prof["height"],
                  "count": len(srcs), "dtype": "uint16", "nodata": 0, "crs": prof["crs"],
                  "transform": prof["transform"], "compress": "deflate", "BIGTIFF": "IF_SAFER"}
            if layout == "band":
                mb.update(interleave="band", tiled=True, blockxsize=512, blockysize=512)
            with rasterio.open(out_dir / _multiband_name(date), "w", **mb) as dst:
                for r0 in range(0, mb["height"], STRIP):
                    w = Window(0, r0, mb["width"], min(STRIP, mb["height"] - r0))
                    dst.write(np.stack([s.read(1, window=w) for s in srcs]), window=w)
                for i, (_, name) in enumerate(S2_BANDS, 1):
                    dst.set_band_description(i, name)
                dst.scales = (1e-4,) * len(srcs)
                dst.offsets = (0.0,) * len(srcs)
        finally:
            for src in srcs:
                src.close()
    files = [p for p in (root / layout).rglob("*") if p.is_file()]
    meta = {"seconds": round(time.perf_counter() - t0, 1),
            "mib": round(sum(p.stat().st_size for p in files) / 2**20, 1),
            "block": _block_text(files[0])}
    marker.write_text(json.dumps(meta, indent=1))
    return meta


def _block_text(path: Path) -> str:
    import rasterio

    with rasterio.open(path) as ds:
        bh, bw = ds.block_shapes[0]
        inter = ds.profile.get("interleave", "")
        return f"{bh} x {bw}" + (f", {inter}-interleaved" if ds.count > 1 else "")


# --------------------------------------------------------------------------- child


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> int:
    import sitewatch.change.optical  # noqa: F401  (imports before the RSS mark)
    from sitewatch.change.tiled import detect_scenes

    res: dict[str, Any] = {"rss_before_mib": round(_rss_mib(), 1)}
    kw = {"method": args.method, "window": args.window, "sample_pixels": args.sample_pixels,
          "overwrite": True}
    t0 = time.perf_counter()
    if args.profile_out:
        import cProfile

        prof = cProfile.Profile()
        run = prof.runcall(detect_scenes, args.before, args.after, args.result_dir, **kw)
        prof.dump_stats(args.profile_out)
    else:
        run = detect_scenes(args.before, args.after, args.result_dir, **kw)
    res["detect_s"] = round(time.perf_counter() - t0, 3)
    s = run.summary
    res.update({"summary_s": s["seconds"], "threshold": s["threshold"],
                "threshold_rule": s["threshold_rule"], "changed_fraction": s["changed_fraction"],
                "objects": s["objects"], "notes": s["notes"],
                "registration_applied": s["registration_applied"],
                "peak_rss_mib": round(_rss_mib(), 1)})
    Path(args.result).write_text(json.dumps(res, indent=1))
    return 0


# --------------------------------------------------------------------------- parent
def machine() -> dict[str, Any]:
    import numpy
    import rasterio

    import sitewatch

    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(ln.split(":", 1)[1].strip() for ln in
                   Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    mem = None
    try:
        kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
        mem = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpu": cpu, "nproc": len(os.sched_getaffinity(0)), "mem_gib": mem,
            "platform": platform.platform(), "python": platform.python_version(),
            "sitewatch": sitewatch.__version__, "numpy": numpy.__version__,
            "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__}


def spawn(cmd: list[str], log: Path) -> tuple[float, float, float, int]:
    """Run ``cmd``; its wall seconds, CPU seconds (user + system), peak RSS (MiB, from
    wait4) and exit code."""
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    cpu = ru.ru_utime + ru.ru_stime
    return wall, cpu, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def score_against_truth(change: Path, truth: Path) -> dict[str, float]:
    """Precision / recall / F1 of change.tif (1 = change) against the planted truth."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    tp = fp = fn = 0
    with rasterio.open(change) as c, rasterio.open(truth) as t:
        for r0 in range(0, c.height, 1024):
            w = Window(0, r0, c.width, min(1024, c.height - r0))
            pred = c.read(1, window=w) == 1
            ref = t.read(1, window=w) == 1
            tp += int(np.count_nonzero(pred & ref))
            fp += int(np.count_nonzero(pred & ~ref))
            fn += int(np.count_nonzero(~pred & ref))
    p = tp / (tp + fp) if tp + fp else math.nan
    r = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * p * r / (p + r) if p + r else math.nan
    return {"precision": p, "recall": r, "f1": f1}


def run_one(method: str, size: int, root: Path, work: Path, args: argparse.Namespace,
            profile_out: Path | None = None, layout: str = "per-band") -> dict[str, Any]:
    tag = f"{layout}-{method}-{size}" + ("-profile" if profile_out else "")
    before, after = layout_paths(root, layout)
    out_dir = work / tag
    result = work / f"{tag}.json"
    log = work / f"{tag}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--method", method,
           "--before", str(before), "--after", str(after),
           "--result-dir", str(out_dir), "--result", str(result),
           "--window", str(args.window), "--sample-pixels", str(args.sample_pixels)]
    if profile_out:
        cmd += ["--profile-out", str(profile_out)]
    print(f"  {tag} ...", end="", file=sys.stderr, flush=True)
    load0 = os.getloadavg()[0]
    wall, cpu, rss, rc = spawn(cmd, log)
    load1 = os.getloadavg()[0]
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        print(f" FAILED (exit {rc})", file=sys.stderr)
        return {"layout": layout, "method": method, "size": size,
                "error": f"exit {rc}: {tail}"}
    res = json.loads(result.read_text())
    res.update({"layout": layout, "method": method, "size": size, "process_s": round(wall, 2),
                "cpu_s": round(cpu, 2), "wait4_rss_mib": round(rss, 1),
                "load": [round(load0, 1), round(load1, 1)]})
    if not profile_out:
        res.update(score_against_truth(out_dir / "change.tif", root / "truth.tif"))
    print(f" {res['detect_s']:.1f} s, CPU {cpu:.1f} s, {rss:.0f} MiB", file=sys.stderr,
          flush=True)
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    return res


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def profile_section(path: Path, n: int = 25) -> str:
    import io

    parts = []
    for key, label in (("tottime", "own time"), ("cumulative", "cumulative time")):
        buf = io.StringIO()
        st = pstats.Stats(str(path), stream=buf)
        st.strip_dirs().sort_stats(key).print_stats(n)
        text = buf.getvalue()
        start = text.find("   ncalls")
        parts.append(f"Top {n} by {label}:\n\n```\n{text[start:].rstrip()}\n```")
    return "\n\n".join(parts)


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        "## Whole-scene detection speed (`detect_scenes`)",
        "",
        f"Command: `{res['command']}`  ",
        f"Date: {res['date']}  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB RAM, {m['platform']}; "
        f"Python {m['python']}, sitewatch {m['sitewatch']}, numpy {m['numpy']}, rasterio "
        f"{m['rasterio']}, GDAL {m['gdal']}.  ",
        f"Code: {res['code']}.",
        "",
        f"Input: synthetic Sentinel-2-like pairs, 4 bands (B02, B03, B04, B08) at 10 m, uint16, "
        f"one GeoTIFF per band (512 x 512 tiles, deflate) and, with `--layouts`, the same "
        f"pixels stored as the layouts below, read from `{res['cache']}`. "
        f"`detect_scenes(window={res['window']}, sample_pixels={res['sample_pixels']:,})` with "
        "every default otherwise (co-registration on, spectral cloud test on, the method's own "
        "normalisation and threshold). One fresh child process per run; *detect s* is the "
        "call itself, *process s* adds interpreter start and imports; *peak RSS* is the "
        "child's `ru_maxrss` (wait4); *CPU s* is the child's user + system time (imports "
        "included), which is what to compare when the machine is shared; *load* is the "
        "1-minute load average before/after the run (above the CPU count, other work "
        "competed for the cores and wall times are inflated). P/R/F1 score `change.tif` "
        "against the planted changes "
        "(a sanity check, not an accuracy benchmark: the synthetic changes are easy).",
        "",
    ]
    syn = res["synthetic"]
    out.append(_table(
        ["size", "Mpx", "files MiB", "planted change", "objects", "synthesis s (not timed)"],
        [[f"{s} x {s}", f"{s * s / 1e6:.1f}", v["mib"], f"{100 * v['planted_fraction']:.2f} %",
          v["planted_objects"], v["seconds"]]
         for s, v in sorted(((int(k), v) for k, v in syn.items()))]))
    out.append("")
    lays = res.get("layouts", {})
    if len(lays) > 1 or set(lays) - {"per-band"}:
        out += ["Layouts (the same pixels, derived from the per-band files; MiB of the pair "
                "at the largest size):", ""]
        out.append(_table(["layout", "what", "blocks", "MiB"],
                          [[k, LAYOUT_TEXT[k], v.get("block", "512 x 512"), v.get("mib", "")]
                           for k, v in lays.items()]))
        out.append("")
    rows = []
    for r in res["runs"]:
        mpx = r["size"] ** 2 / 1e6
        lay = r.get("layout", "per-band")
        if "error" in r:
            rows.append([lay, r["method"], f"{r['size']}²", "error", *[""] * 10])
            continue
        rows.append([lay, r["method"], f"{r['size']}²", f"{r['detect_s']:.1f}",
                     f"{r['process_s']:.1f}", f"{r['cpu_s']:.1f}",
                     "/".join(f"{v:.1f}" for v in r["load"]), f"{mpx / r['detect_s']:.2f}",
                     f"{r['detect_s'] / mpx:.3f}", f"{r['wait4_rss_mib']:.0f}",
                     _fmt(100 * r["changed_fraction"] if r["changed_fraction"] is not None
                          else None), _fmt(r.get("precision")), _fmt(r.get("recall")),
                     _fmt(r.get("f1"))])
    out.append(_table(["layout", "method", "size", "detect s", "process s", "CPU s", "load",
                       "Mpx/s", "s/Mpx", "peak RSS MiB", "changed %", "P", "R", "F1"], rows))
    # Linearity: s/Mpx per size, one row per layout and method.
    sizes = sorted({r["size"] for r in res["runs"]})
    by = {(r.get("layout", "per-band"), r["method"], r["size"]): r for r in res["runs"]
          if "error" not in r}
    keys = list(dict.fromkeys((r.get("layout", "per-band"), r["method"]) for r in res["runs"]))
    lin = []
    for lay, meth in keys:
        row: list[Any] = [lay, meth]
        for s in sizes:
            r = by.get((lay, meth, s))
            row.append(f"{r['detect_s'] / (s * s / 1e6):.3f}" if r else "")
        big = [s for s in sizes if (lay, meth, s) in by]
        if len(big) >= 2:
            a, b = by[lay, meth, big[0]], by[lay, meth, big[-1]]
            ratio = (b["detect_s"] / big[-1] ** 2) / (a["detect_s"] / big[0] ** 2)
            row.append(f"{ratio:.2f}")
        else:
            row.append("")
        lin.append(row)
    out += ["", "Linearity (seconds per megapixel; the last column is s/Mpx at the largest "
            "size over s/Mpx at the smallest: 1.0 = linear, < 1 = fixed costs amortised):", ""]
    out.append(_table(["layout", "method", *[f"{s}²" for s in sizes], "largest / smallest"],
                      lin))
    full = [r for (lay, meth, size), r in by.items() if size == FULL]
    if full:
        out += ["", f"Target on a full tile: < {TARGET_S:.0f} s and < {TARGET_GIB:.0f} GiB "
                "peak:", ""]
        for r in full:
            ok = r["detect_s"] < TARGET_S and r["wait4_rss_mib"] < TARGET_GIB * 1024
            out.append(f"- {r.get('layout', 'per-band')}, {r['method']}: {r['detect_s']:.1f} s "
                       f"({r['process_s']:.1f} s with start-up), "
                       f"{r['wait4_rss_mib'] / 1024:.2f} GiB: **{'met' if ok else 'missed'}**")
    if res.get("skipped"):
        out += ["", "Not run: " + "; ".join(res["skipped"]) + "."]
    notes = sorted({n for r in res["runs"] for n in r.get("notes", [])})
    if notes:
        out += ["", "Notes reported by detect_scenes: " + "; ".join(notes) + "."]
    if res.get("profile"):
        p = res["profile"]
        out += ["", f"### Profile: {p['method']} on {p['size']}² (cProfile, "
                f"{p['detect_s']:.1f} s under the profiler, layout {p.get('layout', 'per-band')})",
                "", profile_section(
                    Path(p["stats"]), res.get("profile_top", 25))]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                   help="square image sizes in pixels [default: %(default)s]")
    p.add_argument("--methods", default=None,
                   help="optical methods to run [default: all that the 4 bands allow]")
    p.add_argument("--full-methods", default=",".join(DEFAULT_FULL_METHODS),
                   help=f"methods run at the full {FULL} size ('all' = every method) "
                        "[default: %(default)s]")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sw-speed-cache",
                   help="where the synthetic scenes are written once [default: %(default)s]")
    p.add_argument("--workdir", type=Path, default=None,
                   help="scratch folder for outputs [default: a new temp dir, removed]")
    p.add_argument("--keep", action="store_true", help="keep each run's outputs")
    p.add_argument("--layouts", default="per-band",
                   help=f"input layouts to run, of {', '.join(LAYOUTS)} [default: %(default)s]")
    p.add_argument("--window", type=int, default=1024, help="detect_scenes window")
    p.add_argument("--sample-pixels", type=int, default=4_000_000,
                   help="detect_scenes sample_pixels")
    p.add_argument("--profile", default=None, metavar="METHOD:SIZE",
                   help="also run METHOD at SIZE under cProfile and report where time goes")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "bench_speed.md",
                   help="markdown output [default: docs/bench_speed.md]")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    # Child mode (internal).
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for a in ("--method", "--before", "--after", "--result-dir", "--result", "--profile-out"):
        p.add_argument(a, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    from sitewatch.change.base import methods

    bands = {name for _, name in S2_BANDS}
    known = list(methods("optical"))
    usable = [m.name for m in known if set(m.needs) <= bands]
    skipped = [f"{m.name} (needs {', '.join(sorted(set(m.needs) - bands))}; the synthetic "
               "scenes have blue, green, red, nir)" for m in known if not set(m.needs) <= bands]
    chosen = usable if args.methods is None else [s.strip() for s in args.methods.split(",")]
    bad = [m for m in chosen if m not in usable]
    if bad:
        p.error(f"unknown or unusable method(s) {', '.join(bad)}; usable: {', '.join(usable)}")
    full_methods = chosen if args.full_methods == "all" else [
        s.strip() for s in args.full_methods.split(",") if s.strip()]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    if set(layouts) - set(LAYOUTS):
        p.error(f"unknown layout(s) {', '.join(sorted(set(layouts) - set(LAYOUTS)))}; "
                f"known: {', '.join(LAYOUTS)}")
    if any(s < 256 or s > FULL for s in sizes):
        p.error(f"sizes must be between 256 and {FULL}")

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="sw-speed-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cache = args.cache.resolve()
    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *[os.path.relpath(sys.argv[0], REPO)
                                         if i == 0 else a for i, a in enumerate(sys.argv)]]),
        "machine": machine(), "cache": str(cache), "window": args.window,
        "sample_pixels": args.sample_pixels, "synthetic": {}, "runs": [], "layouts": {},
        "code": code_state(),
        "skipped": skipped,
    }
    try:
        for size in sizes:
            print(f"synthesising {size} x {size} ...", file=sys.stderr, flush=True)
            res["synthetic"][str(size)] = synthesise(size, cache / f"s2_{size}")
            for lay in layouts:
                print(f"  storing as {lay} ...", file=sys.stderr, flush=True)
                res["layouts"][lay] = write_layout(cache / f"s2_{size}", lay)
        for size in sizes:
            todo = [m for m in chosen if size < FULL or m in full_methods]
            for m in chosen:
                if size == FULL and m not in full_methods:
                    res["skipped"].append(f"{m} at {FULL}² (not in --full-methods)")
            for lay in layouts:
                for m in todo:
                    res["runs"].append(run_one(m, size, cache / f"s2_{size}", work, args,
                                               layout=lay))
        if args.profile:
            meth, _, sz = args.profile.partition(":")
            size = int(sz or 4096)
            root = cache / f"s2_{size}"
            res["synthetic"][str(size)] = synthesise(size, root)
            lay = layouts[-1]
            write_layout(root, lay)
            stats = work / f"profile-{meth}-{size}.pstats"
            pr = run_one(meth, size, root, work, args, profile_out=stats, layout=lay)
            res["profile"] = {"method": meth, "size": size, "stats": str(stats), "layout": lay,
                              "detect_s": pr.get("detect_s", math.nan)}
        md = report(res)
    finally:
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=str))
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
