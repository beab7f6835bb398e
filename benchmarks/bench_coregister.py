"""Co-registration accuracy (synthetic known shifts, the real OSCD pairs) and speed / memory.

Usage (from the repository root)::

    python benchmarks/bench_coregister.py [--data ../shared/data] [--json FILE]
    python benchmarks/bench_coregister.py --speed [--sizes 2000 1000] [--repeats 3]

1. Synthetic: smooth random textures (128 x 128 px), shifted by a known sub-pixel amount
   (uniform in [-2, 2] px per axis, cubic interpolation), plus Gaussian noise at a given
   signal-to-noise ratio (signal std / noise std); RMS error of ``register``'s global shift,
   40 trials per SNR, fixed seeds.
2. OSCD: each city's date-2 scene is registered to date 1 on the city's 10 m grid (red band,
   the reference's own georeferencing); the shift, reliability, local residual and status
   are reported.  There is no ground truth for these shifts: they show how well the two
   Sentinel-2 dates sit on each other after the data set's own resampling.
3. Speed and memory (``--speed``, issue 19): ``register`` (global shift plus the 3 x 3
   windows) on float32 smooth random textures of each size shifted by (1.3, -0.7) px, by
   sitewatch's own matcher and by the path it replaced (scikit-image's
   ``phase_cross_correlation`` on float64 images prepared as before, kept only here).  Each
   path runs in a fresh subprocess: one warm-up call, then the median wall and CPU time
   (``time.process_time``, all threads) of ``--repeats`` calls, the peak of numpy
   allocations during one call (``tracemalloc``) and the rise of the process's peak resident
   memory during one call (``VmHWM`` reset through ``/proc/self/clear_refs``; FFT and BLAS
   buffers included), with OpenBLAS's default threads and with ``OPENBLAS_NUM_THREADS=1``.
   The machine's load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _provenance import code_state
from scipy import ndimage

from sitewatch.imagery.coregister import Shift, register
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
            if site is None:
                raise SystemExit(f"ingesting {city} registered no site")
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


# --- 3. Speed and memory: sitewatch's matcher against the scikit-image path it replaced ---

def _old_prepare(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """coregister._prepare before issue 19 (float64 result: the Hann windows are float64)."""
    x = np.where(valid, a, np.nanmedian(a[valid]))
    x = x - x.mean()
    return x * np.hanning(x.shape[0])[:, None] * np.hanning(x.shape[1])[None, :]


def _old_estimate(ref: np.ndarray, mov: np.ndarray, min_valid: float) -> Shift | None:
    """coregister.estimate_shift before issue 19: scikit-image's phase_cross_correlation."""
    from skimage.registration import phase_cross_correlation

    both = np.isfinite(ref) & np.isfinite(mov)
    if both.mean() < min_valid:
        return None
    s, err, _ = phase_cross_correlation(_old_prepare(ref, both), _old_prepare(mov, both),
                                        upsample_factor=20, normalization=None)
    return Shift(-float(s[0]), -float(s[1]), float(err))


def _old_register(ref: np.ndarray, mov: np.ndarray) -> list[Shift | None]:
    """The estimates register() made before issue 19: the global one, then 3 x 3 windows."""
    out = [_old_estimate(ref, mov, 0.3)]
    h, w = ref.shape
    ys = np.linspace(0, h, 4).astype(int)
    xs = np.linspace(0, w, 4).astype(int)
    for i in range(3):
        for j in range(3):
            win = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
            out.append(_old_estimate(ref[win], mov[win], 0.5))
    return out


def _new_register(ref: np.ndarray, mov: np.ndarray) -> list[Shift | None]:
    reg = register(ref, mov)
    return [reg.shift] + [lw.shift for lw in reg.local]


def _speed_pair(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    ref = ndimage.gaussian_filter(rng.standard_normal((n, n), dtype=np.float32), 2.0)
    mov = ndimage.shift(ref, (1.3, -0.7), order=3, mode="reflect")
    mov += (0.02 * float(ref.std()) * rng.standard_normal((n, n), dtype=np.float32))
    return ref, mov


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


@dataclass
class SpeedRow:
    """One matcher at one size (what a ``--child`` process measures and prints as JSON)."""

    path: str  # "skimage" (before issue 19) or "sitewatch"
    size: int
    blas_threads: str  # OPENBLAS_NUM_THREADS in the child ("default": OpenBLAS's own choice)
    wall_s: float
    cpu_s: float
    traced_peak_mb: float
    rss_rise_mb: float | None
    shifts: list[list[float] | None]  # dy, dx, error of the global and the 9 window estimates


def _child(path: str, n: int, repeats: int, blas_threads: str) -> SpeedRow:
    """One path at one size, in this (fresh) process: times and traced memory, or (with
    ``repeats`` 0, in a process started with :data:`_RSS_ENV`) the peak RSS rise only."""
    fn = _old_register if path == "skimage" else _new_register
    ref, mov = _speed_pair(n)
    shifts = fn(ref, mov)  # warm-up: imports, FFT plans
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        shifts = fn(ref, mov)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    traced, rss_rise = float("nan"), None
    if repeats:
        tracemalloc.start()
        fn(ref, mov)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        try:  # reset the peak resident size (Linux >= 4.0), then one call
            Path("/proc/self/clear_refs").write_text("5")
            before = _status_kib("VmRSS")
            fn(ref, mov)
            rss_rise = (_status_kib("VmHWM") - before) / 1024
        except OSError:
            pass
    return SpeedRow(path, n, blas_threads, float(np.median(walls or [np.nan])),
                    float(np.median(cpus or [np.nan])), traced, rss_rise,
                    [None if s is None else [s.dy, s.dx, s.error] for s in shifts])


# glibc keeps freed arrays below its (adaptive, up to 32 MiB) mmap threshold in the heap, so a
# later call would reuse resident pages and its RSS rise would miss them: the RSS child
# allocates every block above 64 KiB by mmap and gives it back on free, so RSS follows live
# memory.  (Not for timing: every array then costs fresh page faults.)
_RSS_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _run_child(path: str, n: int, repeats: int, threads: str, env: dict[str, str]) -> SpeedRow:
    out = subprocess.run([sys.executable, __file__, "--child", path, str(n), str(repeats),
                          threads], capture_output=True, text=True, check=True, env=env)
    return SpeedRow(**json.loads(out.stdout.strip().splitlines()[-1]))


def speed(sizes: list[int], repeats: int, blas: list[str]) -> list[SpeedRow]:
    """Both matchers at each size, under each OpenBLAS thread setting: OpenBLAS's threads
    spin for a while after each product, so its default inflates CPU time (a watch run on
    one site has that default; a Dask fleet worker runs with one BLAS thread)."""
    rows = []
    for threads in blas:
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if threads != "default":
            env["OPENBLAS_NUM_THREADS"] = threads
        for n in sizes:
            for path in ("skimage", "sitewatch"):
                row = _run_child(path, n, repeats, threads, env)
                row.rss_rise_mb = _run_child(path, n, 0, threads, env | _RSS_ENV).rss_rise_mb
                rows.append(row)
    return rows


def _max_differences(a: SpeedRow, b: SpeedRow) -> tuple[float, float]:
    """Largest difference of the shifts (px, either axis) and of the errors, estimate by
    estimate (global and windows)."""
    pairs = [(p, q) for p, q in zip(a.shifts, b.shifts, strict=True) if p and q]
    if not pairs:
        return float("nan"), float("nan")
    return (max(max(abs(p[0] - q[0]), abs(p[1] - q[1])) for p, q in pairs),
            max(abs(p[2] - q[2]) for p, q in pairs))


def print_speed(rows: list[SpeedRow], load: tuple[float, ...]) -> None:
    print("### register() speed and memory (global + 3 x 3 windows, upsample 20)\n")
    print("| image px | matcher | BLAS threads | wall s | CPU s | peak numpy MB (tracemalloc) "
          "| peak RSS rise MB | global shift dy, dx |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        g = r.shifts[0] or [float("nan")] * 2
        rss = "n/a" if r.rss_rise_mb is None else f"{r.rss_rise_mb:.0f}"
        name = "scikit-image (before)" if r.path == "skimage" else "sitewatch float32 rfft"
        print(f"| {r.size} x {r.size} | {name} | {r.blas_threads} | {r.wall_s:.3f} | "
              f"{r.cpu_s:.3f} | "
              f"{r.traced_peak_mb:.0f} | {rss} | {g[0]:.2f}, {g[1]:.2f} |")
    by = {(r.size, r.path, r.blas_threads): r for r in rows}
    print()
    for n, threads in sorted({(r.size, r.blas_threads) for r in rows}, reverse=True):
        old, new = by[(n, "skimage", threads)], by[(n, "sitewatch", threads)]
        dshift, derr = _max_differences(old, new)
        print(f"- {n} px, BLAS threads {threads}: {old.cpu_s / new.cpu_s:.1f}x less CPU, "
              f"{old.traced_peak_mb / new.traced_peak_mb:.1f}x less peak numpy memory; "
              f"over the 10 estimates (global, windows) the shifts differ by at most "
              f"{dshift:.3f} px and the errors by {derr:.1e}")
    print(f"- load average (1, 5, 15 min) before / after: "
          f"{' '.join(f'{v:.2f}' for v in load)} / "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")

def _footer(t0: float) -> str:
    from importlib.metadata import version

    return (f"\n- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
            f"- machine: {platform.platform()}, {os.cpu_count()} CPUs; "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {version('scipy')}, scikit-image {version('scikit-image')}\n"
            f"- code: {code_state()}\n- wall time: {time.perf_counter() - t0:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("SITEWATCH_DATA") or str(Path(__file__).parents[1] / ".." /
                                                      "shared" / "data")
    ap.add_argument("--data", default=default)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--speed", action="store_true",
                    help="measure register()'s speed and memory (section 3) only")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blas-threads", nargs="+", default=["default", "1"],
                    help="OPENBLAS_NUM_THREADS settings to measure ('default': unset)")
    ap.add_argument("--child", nargs=4, metavar=("PATH", "SIZE", "REPEATS", "BLAS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asdict(_child(args.child[0], int(args.child[1]),
                                       int(args.child[2]), args.child[3]))))
        return 0
    t0 = time.perf_counter()
    if args.speed:
        load = os.getloadavg()
        rows = speed(args.sizes, args.repeats, args.blas_threads)
        print_speed(rows, load)
        print(_footer(t0))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
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
        for c in real:
            print(f"| {c['city']} | {c['dy']} | {c['dx']} | {c['magnitude_px']} | "
                  f"{c['reliability']} | {c['residual_px']} | {c['status']} |")
    else:
        print(f"\n(OSCD not measured: {data / 'oscd'} is absent)", file=sys.stderr)
    print(_footer(t0))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"synthetic": syn, "oscd": real}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
