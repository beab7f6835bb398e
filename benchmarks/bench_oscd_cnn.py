#!/usr/bin/env python
"""The change network (``sitewatch.change.cnn``, FC-Siam-diff) on OSCD, leave one city out.

Usage (from the repository root)::

    # 1. the 10 cities prepared as `sitewatch train` prepares a pair (training.prepare_pair:
    #    date 2 co-registered to date 1 on its 10 m grid, masks; the 6 default bands), packed
    #    as uint16 reflectance x 10000 (byte planes, lzma) for a machine without rasterio
    python benchmarks/bench_oscd_cnn.py pack --data ../shared/data --pack PACK.npz.xz
    # 2. leave-one-city-out: for each seed and city, train on the 9 others and test on it
    python benchmarks/bench_oscd_cnn.py loco --pack PACK.npz.xz --seeds 0,1,2 \
        --device cuda --workers 3 --out RESULTS.json [--cities paris,pisa]
    # 3. training on all 10 cities, CPU, 2 threads: the wall time of `sitewatch train`'s step
    python benchmarks/bench_oscd_cnn.py time --pack PACK.npz.xz --threads 2 --out TIME.json
    # 4. the markdown report
    python benchmarks/bench_oscd_cnn.py report --results "LABEL=RESULTS.json" [--results ...]
        [--cpu-check CPU.json] [--time TIME.json] --out docs/bench_oscd_cnn.md

Every choice (bands, architecture, epochs, patch, loss, the threshold rule) is fixed in
advance in :class:`sitewatch.change.cnn.TrainOptions` or chosen inside the training cities
(the threshold: F1 on held-out rows of the 9 training cities); the test city is only
scored.  Scoring is as ``bench_oscd.py`` scores the learned classifier: the detector through
:func:`sitewatch.change.detect.detect_arrays` (threshold = the model's, changed objects under
4 pixels dropped, holes up to 4 filled), confusion counts over labelled pixels observed on
both dates, pooled over cities.

The ``loco`` step needs only numpy, scipy, scikit-image and PyTorch: modules of sitewatch's
geo stack that the change package imports but these steps never call (rasterio, affine,
pyproj, shapely) are stood in for when missing, so it runs on an accelerator machine
without them.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import io
import json
import lzma
import os
import platform
import shlex
import sys
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _scores import confusion, scores

REPO = Path(__file__).resolve().parents[1]
CITIES = ("abudhabi", "aguasclaras", "beihai", "bercy", "bordeaux", "mumbai", "paris",
          "pisa", "rennes", "saclay_e")
BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
_STUBBED = ("rasterio", "affine", "pyproj", "shapely")


class _AnyMeta(type):
    def __getattr__(cls, name: str) -> Any:
        return _Any


class _Any(metaclass=_AnyMeta):
    """Anything: every attribute and call gives another stand-in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return _Any

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _Any()


def _module_attr(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return _Any


class _Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty stand-ins for geo modules missing on a bare accelerator machine."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _STUBBED:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []  # type: ignore[attr-defined]
        m.__getattr__ = _module_attr  # type: ignore[method-assign]
        return m

    def exec_module(self, module):
        return None


def _stub_geo() -> list[str]:
    import torch  # noqa: F401  (first: its import inspects every module loaded)

    missing = []
    for name in _STUBBED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        sys.meta_path.append(_Stub())
    return missing


# --------------------------------------------------------------------------- the pack


def pack(data: Path, out: Path, cities: list[str]) -> None:
    import warnings

    from sitewatch.change.training import prepare_pair, read_label

    arrays: dict[str, np.ndarray] = {"bands": np.array(BANDS)}
    for c in cities:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b, a, _use, grid = prepare_pair(data / "oscd" / c / "imgs_1",
                                           data / "oscd" / c / "imgs_2", BANDS, False)
            change, labelled = read_label(data / "oscd" / c / "cm" / f"{c}-cm.tif",
                                          grid.shape, 2)
        for key, arr in (("before", b), ("after", a)):
            q = np.where(np.isfinite(arr), np.clip(np.round(arr * 10000), 0, 65534),
                         65535).astype("<u2")
            # byte planes: the high bytes compress far better apart from the low ones
            arrays[f"{c}/{key}"] = np.ascontiguousarray(
                np.moveaxis(q.view(np.uint8).reshape((*q.shape, 2)), -1, 0))
        arrays[f"{c}/label"] = change
        arrays[f"{c}/labelled"] = labelled
        print(f"{c}: {b.shape} in {time.perf_counter() - t0:.1f} s", flush=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out.write_bytes(lzma.compress(buf.getvalue(), preset=6))
    print(f"wrote {out}: {out.stat().st_size / 2**20:.1f} MiB")


def load_pack(path: Path, cities: list[str] | None = None
              ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    with np.load(io.BytesIO(lzma.decompress(path.read_bytes())), allow_pickle=False) as z:
        names = sorted({k.split("/")[0] for k in z.files if "/" in k})
        out = {}
        for c in names:
            if cities and c not in cities:
                continue
            dates = []
            for key in ("before", "after"):
                planes = z[f"{c}/{key}"]
                q = np.moveaxis(planes, 0, -1).copy().view("<u2")[..., 0]
                x = q.astype(np.float32) / 10000
                x[q == 65535] = np.nan
                dates.append(x)
            out[c] = (dates[0], dates[1], z[f"{c}/label"], z[f"{c}/labelled"])
    return out


# --------------------------------------------------------------------------- runs




_PACK: dict[str, Any] = {}


def run_fold(pack_path: str, seed: int, test: str, device: str, threads: int | None,
             epochs: int | None, partial: str | None = None, input_norm: str | None = None
             ) -> dict[str, Any]:
    """One leave-one-city-out fold: train on every city but ``test`` with ``seed``, score
    ``test``: the model's threshold and the confusion counts (tp, fp, fn, tn)."""
    _stub_geo()
    from sitewatch.change.cnn import CnnDetector, TrainOptions, train_cnn
    from sitewatch.change.detect import detect_arrays

    if pack_path not in _PACK:  # once per worker process
        _PACK[pack_path] = load_pack(Path(pack_path))
    data = _PACK[pack_path]
    names = list(data)
    t0 = time.perf_counter()
    train = [data[c] for c in names if c != test]
    over: dict[str, Any] = {"epochs": epochs} if epochs else {}
    if input_norm:
        over["input_norm"] = input_norm
    opts = TrainOptions(seed=seed, device=device, threads=threads, **over)
    model = train_cnn(train, BANDS, options=opts,
                      provenance={"cities": [c for c in names if c != test]})
    b, a, label, labelled = data[test]
    cm = detect_arrays(b, a, BANDS, CnnDetector(model=model))
    res = {"confusion": confusion(cm.changed, label, cm.observed & labelled).tolist(),
           "threshold": model.threshold, "threshold_f1": model.summary["threshold_f1"],
           "train_seconds": model.summary["seconds"],
           "seconds": round(time.perf_counter() - t0, 1), "summary": model.summary}
    if partial:  # each fold as it is done: a run cut short keeps what it did
        with open(Path(partial) / f"seed{seed}.jsonl", "a") as f:
            f.write(json.dumps({"city": test, **res}) + "\n")
    print(f"seed {seed} {test}: F1 {scores(res['confusion'])['f1']:.3f} "
          f"threshold {model.threshold:.3f} in {res['seconds']} s", flush=True)
    return res


def loco(args: argparse.Namespace) -> None:
    import torch

    seeds = [int(s) for s in args.seeds.split(",")]
    cities = [c for c in args.cities.split(",") if c] if args.cities else list(CITIES)
    jobs = [(args.pack, s, c, args.device, args.threads, args.epochs, args.partial,
             args.input_norm) for s in seeds for c in cities]
    t0 = time.perf_counter()
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            done = pool.starmap(run_fold, jobs, chunksize=1)
    else:
        done = [run_fold(*j) for j in jobs]
    runs: dict[str, dict[str, Any]] = {}
    for j, r in zip(jobs, done, strict=True):
        runs.setdefault(str(j[1]), {})[j[2]] = r
    dev = args.device
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev += f" ({torch.cuda.get_device_name(0)})"
    res = {"seeds": runs, "device": dev,
           "torch": torch.__version__, "workers": args.workers,
           "cpus": os.cpu_count(), "machine": platform.platform(),
           "python": platform.python_version(),
           "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "wall_seconds": round(time.perf_counter() - t0, 1),
           "command": " ".join(shlex.quote(a) for a in sys.argv)}
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.out} in {res['wall_seconds']} s")


def time_all(args: argparse.Namespace) -> None:
    """Training on all cities at the default options, CPU, ``--threads`` threads."""
    import torch

    from sitewatch.change.cnn import TrainOptions, train_cnn

    data = load_pack(Path(args.pack))
    t0 = time.perf_counter()
    model = train_cnn(list(data.values()), BANDS,
                      options=TrainOptions(seed=args.seed, threads=args.threads),
                      provenance={"cities": list(data)})
    wall = time.perf_counter() - t0
    res = {"wall_seconds": round(wall, 1), "threads": args.threads,
           "torch": torch.__version__, "summary": model.summary,
           "load": os.getloadavg(), "machine": platform.platform(), "cpus": os.cpu_count(),
           "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "command": " ".join(shlex.quote(a) for a in sys.argv)}
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"trained on {len(data)} cities in {wall:.0f} s")


# --------------------------------------------------------------------------- report


def _pooled(run: dict[str, Any]) -> np.ndarray:
    return np.sum([np.array(v["confusion"]) for v in run.values()], axis=0)


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _city_table(seeds: dict[str, Any], cities: list[str]) -> list[str]:
    pooled = {s: scores(_pooled(run)) for s, run in seeds.items()}
    out = ["| seed | " + " | ".join(cities) + " | pooled P | pooled R | pooled F1 | kappa |",
           "|" + "---|" * (len(cities) + 5)]
    for s, run in seeds.items():
        p = pooled[s]
        out.append(f"| {s} | " + " | ".join(f"{scores(run[c]['confusion'])['f1']:.2f}"
                                            for c in cities)
                   + f" | {p['precision']:.3f} | {p['recall']:.3f} | **{p['f1']:.3f}** | "
                   f"{p['kappa']:.3f} |")
    mean = {c: np.mean([scores(run[c]["confusion"])["f1"] for run in seeds.values()])
            for c in cities}
    out.append("| mean | " + " | ".join(f"{mean[c]:.2f}" for c in cities) + " | | | | |")
    return out


def report(args: argparse.Namespace) -> None:
    """The markdown report of one or more ``loco`` result files (``LABEL=PATH``; the first
    is the configuration fixed in advance)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _provenance import code_state

    runs = []
    for item in args.results:
        label, _, path = item.partition("=")
        runs.append((label, json.loads(Path(path).read_text())))
    label0, res = runs[0]
    seeds = res["seeds"]
    cities = [c for c in CITIES if c in next(iter(seeds.values()))]
    summ = next(iter(next(iter(seeds.values())).values()))["summary"]
    lines = ["# OSCD: the change network (FC-Siam-diff), leave one city out", "",
             f"Generated by `python benchmarks/bench_oscd_cnn.py report "
             f"{' '.join(shlex.quote(a) for a in sys.argv[2:])}` on "
             f"{datetime.now(UTC).strftime('%Y-%m-%d')}; library code at {code_state()}.", "",
             "**The leave-one-city-out runs were trained on a GPU** (one NVIDIA H200 lent to "
             "this session, PyTorch " + res["torch"] + "), with the same code, seeds and "
             "options as on a CPU: `bench_oscd_cnn.py loco` over a pack of the 10 cities "
             "that `bench_oscd_cnn.py pack` wrote after preparing each pair as `sitewatch "
             "train` does (`training.prepare_pair`: date 2 co-registered to date 1 on its "
             "10 m grid; bands " + ", ".join(BANDS) + ", `sitewatch train`'s default; "
             "reflectance stored as uint16 x 10000). A fold on the CPU is compared below."
             + (f" {args.note}" if args.note else ""), "",
             "## Protocol", "",
             f"- Network: FC-Siam-diff (Daudt et al., ICIP 2018), encoder widths "
             f"{', '.join(map(str, summ.get('widths', [])))}, "
             "inputs standardised per band.",
             f"- Training, `TrainOptions` defaults, fixed before any run: {summ['epochs']} "
             f"epochs of random {summ['patch']} x {summ['patch']} patches, batch "
             f"{summ['batch']} ({summ['steps']} steps for 9 cities); {summ['augmentations']}; "
             f"{int(summ['change_patches'] * 100)} % of patches centred on a change pixel; "
             f"{summ['loss']} (change weight = sqrt(no-change / change pixels), "
             f"{summ['pos_weight']:.1f} here); {summ['optimiser']} from lr {summ['lr']}, "
             f"weight decay {summ['weight_decay']}. The epoch count was set so that training "
             "on all 10 cities fits 30 minutes on 2 CPU threads.",
             f"- Threshold: {summ['threshold_rule']}, inside the 9 training cities; the test "
             "city is only scored.",
             "- Scoring as `bench_oscd.py` scores the gradient-boosting classifier: "
             "`detect_arrays` with the model's threshold, objects under 4 pixels dropped, "
             "holes up to 4 filled; precision/recall/F1/kappa of the change class over "
             "labelled pixels observed on both dates; pooled = confusion counts summed over "
             "the cities; the spread is the sample sd over seeds.", "",
             "## Pooled F1", "",
             "| configuration | seeds | pooled F1 per seed | **mean ± sd** | P | R | kappa "
             "| run |", "|---|---|---|---|---|---|---|---|"]
    for label, r in runs:
        pooled = [scores(_pooled(run)) for run in r["seeds"].values()]
        f1 = np.array([p["f1"] for p in pooled])
        wall = f"{r['wall_seconds']:.0f} s" if r.get("wall_seconds") else "see note"
        lines.append(f"| {label} | {len(f1)} | " + ", ".join(f"{v:.3f}" for v in f1)
                     + f" | **{f1.mean():.3f} ± {_sd(f1):.3f}** | "
                     f"{np.mean([p['precision'] for p in pooled]):.3f} | "
                     f"{np.mean([p['recall'] for p in pooled]):.3f} | "
                     f"{np.mean([p['kappa'] for p in pooled]):.3f} | "
                     f"`{r['command']}`, {r['date']}, {wall} |")
    f0 = np.array([scores(_pooled(run))["f1"] for run in seeds.values()])
    lines += ["", f"**Target pooled F1 >= 0.60: missed** (the configuration fixed in "
              f"advance: {f0.mean():.3f} ± {_sd(f0):.3f})." if f0.mean() < 0.60 else
              "", "The first row is the configuration fixed in advance (the defaults). The "
              "others were run after seeing it, to see whether it was simply undertrained "
              "(more epochs) or thrown by each city's radiometry (inputs standardised per "
              "scene and date, `input_norm=\"scene\"`, as the gradient-boosting features are "
              "relative to scene statistics); they were not used to choose the defaults, and "
              "neither helped beyond the spread across seeds. For comparison "
              "(docs/bench_oscd.md, same cities and scoring): HACD at its defaults 0.415, "
              "the gradient-boosting classifier leave-one-city-out 0.474 (4 bands).", ""]
    for label, r in runs:
        lines += [f"## Per city: {label}", "", "F1 of the change class:", "",
                  *_city_table(r["seeds"], cities), ""]
        if r.get("note"):
            lines += [f"Note: {r['note']}.", ""]
    lines += [f"Per city and seed for {label0}: precision / recall / kappa, threshold "
              "(its F1 on the held-out rows of the training cities):", ""]
    for s, run in seeds.items():
        parts = []
        for c in cities:
            sc = scores(run[c]["confusion"])
            parts.append(f"{c} {sc['precision']:.2f}/{sc['recall']:.2f}/{sc['kappa']:.2f}, "
                         f"t={run[c]['threshold']:.3f} ({run[c]['threshold_f1']})")
        lines.append(f"- seed {s}: " + "; ".join(parts) + ".")
    if args.cpu_check:
        cpu = json.loads(Path(args.cpu_check).read_text())
        lines += ["", "## CPU check", "",
                  f"`{cpu['command']}` on this project's shared 2-core machine (PyTorch "
                  f"{cpu['torch']}), {cpu['date']}:", ""]
        for s, run in cpu["seeds"].items():
            for c, v in run.items():
                gpu = seeds.get(s, {}).get(c)
                cpu_f1 = scores(v["confusion"])["f1"]
                lines.append(
                    f"- seed {s}, test city {c}: F1 {cpu_f1:.3f} on the CPU (threshold "
                    f"{v['threshold']:.3f}, trained in {v['train_seconds']:.0f} s) vs "
                    + (f"{scores(gpu['confusion'])['f1']:.3f} on the GPU (threshold "
                       f"{gpu['threshold']:.3f})." if gpu else "no GPU run."))
        lines += ["", "The same seed does not give the same weights on the two devices "
                  "(other kernels and reduction orders change the floating-point sums, and "
                  "training amplifies the differences); on one device and PyTorch build a "
                  "seed gives the same model (tests/test_cnn.py)."]
    if args.time:
        tm = json.loads(Path(args.time).read_text())
        lines += ["", "## Training time on a CPU", "",
                  f"`{tm['command']}`: training at the defaults on all "
                  f"{len(tm['summary']['cities'])} cities ({tm['summary']['steps']} steps, "
                  f"the threshold's pass included) took **{tm['wall_seconds'] / 60:.1f} min** "
                  f"with `torch.set_num_threads({tm['threads']})`, PyTorch {tm['torch']}, "
                  f"{tm['date']}, on this project's shared 2-core machine while other sessions "
                  f"ran (load average {tm['load'][0]:.1f} at the end), so an idle 2-core "
                  "machine is faster."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--cities", default=",".join(CITIES))
    p = sub.add_parser("loco")
    p.add_argument("--pack", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cities", default="", help="test cities (default: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="(smoke tests only)")
    p.add_argument("--partial", help="a folder for each fold's result as it is done")
    p.add_argument("--input-norm", choices=["global", "scene"],
                   help="override TrainOptions.input_norm")
    p.add_argument("--out", required=True)
    p = sub.add_parser("time")
    p.add_argument("--pack", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--results", action="append", required=True, metavar="LABEL=PATH",
                   help="a loco result file; repeatable, the first is the fixed-in-advance "
                   "configuration")
    p.add_argument("--cpu-check")
    p.add_argument("--note", help="a sentence added to the report's opening")
    p.add_argument("--time")
    p.add_argument("--out", default=str(REPO / "docs" / "bench_oscd_cnn.md"))
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        sys.path.insert(0, str(REPO / "src"))
        pack(args.data, args.pack, [c for c in args.cities.split(",") if c])
    elif args.cmd == "loco":
        loco(args)
    elif args.cmd == "time":
        time_all(args)
    else:
        report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
