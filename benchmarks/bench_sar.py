"""SAR change detection accuracy on the Ottawa and San Francisco pairs.

Usage (from the repository root)::

    python benchmarks/bench_sar.py [--data ../shared/data] [--out docs/bench_sar.md]

Reads ``sar/ottawa/ottawa_{1,2,gt}.bmp`` (RADARSAT-1, 350 x 290, 1997 floods, as usually cited)
and ``sar/san_francisco/san_{1,2,gt}.bmp`` (ERS-2, 256 x 256, August 2003 / May 2004) under
``--data`` (default ``$SITEWATCH_DATA``, else ``../shared/data`` beside the repository);
ground truth 255 = change.  Each 8-bit picture is read as it is, once as intensity and once
as amplitude (``amplitude=True`` squares it), since the data sets do not say which.  Every
configuration runs through :func:`sitewatch.change.detect.detect_arrays` (fit, score,
threshold, clean) and is scored against the ground truth over all pixels: PCC (overall
accuracy), Cohen's kappa, precision / recall / F1 of the change class, FA (false alarms,
unchanged pixels called changed) and MA (missed alarms).  The markdown table goes to stdout
and to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from _provenance import code_state
from rasterio.errors import NotGeoreferencedWarning

from sitewatch.change.detect import detect_arrays

REPO = Path(__file__).resolve().parents[1]

#: name -> (folder under data/sar, file stem).
PAIRS = {"ottawa": ("ottawa", "ottawa"), "san-francisco": ("san_francisco", "san")}


def default_data() -> Path:
    env = os.environ.get("SITEWATCH_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def read_band(path: Path) -> np.ndarray:
    """Band 1 of a picture (all bands must be equal: grey stored as RGB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            a = ds.read()
    if any(not np.array_equal(a[0], a[i]) for i in range(1, a.shape[0])):
        raise SystemExit(f"{path}: the bands differ; expected a grey picture")
    return a[0]


def load_pair(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    folder, stem = PAIRS[name]
    d = root / "sar" / folder
    before, after, gt = (read_band(d / f"{stem}_{s}.bmp") for s in ("1", "2", "gt"))
    if not set(np.unique(gt)) <= {0, 255}:
        raise SystemExit(f"{d}: ground truth is not 0/255")
    return before.astype(np.float32), after.astype(np.float32), gt == 255


def scores(changed: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """PCC, kappa, precision, recall, F1 of the change class, FA and MA counts."""
    tp = int(np.sum(changed & truth))
    fp = int(np.sum(changed & ~truth))
    fn = int(np.sum(~changed & truth))
    tn = int(np.sum(~changed & ~truth))
    n = tp + fp + fn + tn
    pcc = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    kappa = (pcc - pe) / (1 - pe) if pe < 1 else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else float("nan")
    return {"pcc": pcc, "kappa": kappa, "precision": prec, "recall": rec, "f1": f1,
            "fa": fp, "ma": fn}


@dataclass(frozen=True)
class Config:
    method: str
    window: int
    threshold: str | None = None  # None = the detector's default
    alpha: float = 0.01
    amplitude: bool = False
    clean: tuple[int, int] = (4, 4)  # detect_arrays' defaults

    def params(self) -> dict[str, Any]:
        return {"window": self.window, "amplitude": self.amplitude}


def configs() -> list[Config]:
    out: list[Config] = []
    for amp in (False, True):
        for w in (1, 3, 5, 7):
            for t in ("otsu", "ki"):
                out.append(Config("sar-log-ratio", w, t, amplitude=amp))
        for w in (1, 3, 5):
            for a in (0.01, 0.001, 0.0001):
                out.append(Config("sar-omnibus", w, "significance", a, amplitude=amp))
    # Cleaning: off, the default, and larger minimum objects, on the default settings.
    for c in ((1, 0), (16, 16), (32, 32)):
        out.append(Config("sar-log-ratio", 3, "otsu", clean=c))
        out.append(Config("sar-omnibus", 3, "significance", 0.001, clean=c))
    return out


def run(root: Path) -> list[dict[str, Any]]:
    rows = []
    for name in PAIRS:
        before, after, truth = load_pair(root, name)
        for c in configs():
            t0 = time.perf_counter()
            cm = detect_arrays(before, after, ["hh"], c.method, sensor="sar",
                               params=c.params(), threshold=c.threshold, alpha=c.alpha,
                               min_pixels=c.clean[0], max_hole_pixels=c.clean[1])
            dt = time.perf_counter() - t0
            looks = cm.details.get("enl")
            rows.append({"data": name, "config": c, "t": cm.threshold,
                         "enl": looks[0] if looks else None, "ms": dt * 1000,
                         **scores(cm.changed, truth)})
    return rows


def _rule(c: Config) -> str:
    return f"significance α={c.alpha:g}" if c.threshold == "significance" else str(c.threshold)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| data | method | input | window | threshold | clean | t | ENL | PCC | kappa | "
            "precision | recall | F1 | FA | MA | ms |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        c: Config = r["config"]
        enl = f"{r['enl']:.1f}" if r["enl"] is not None else ""
        lines.append(
            f"| {r['data']} | {c.method} | {'amplitude' if c.amplitude else 'intensity'} | "
            f"{c.window} | {_rule(c)} | {c.clean[0]}/{c.clean[1]} | {r['t']:.3g} | {enl} | "
            f"{r['pcc']:.4f} | **{r['kappa']:.4f}** | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['f1']:.3f} | {r['fa']} | {r['ma']} | {r['ms']:.0f} |")
    return "\n".join(lines)


def best(rows: list[dict[str, Any]]) -> str:
    """One line per data set with the defaults, one per method with its best row."""
    out = []
    default = {"sar-log-ratio": Config("sar-log-ratio", 3, "otsu"),
               "sar-omnibus": Config("sar-omnibus", 3, "significance", 0.01)}
    for name in PAIRS:
        k = {m: next(r["kappa"] for r in rows if r["data"] == name and r["config"] == c)
             for m, c in default.items()}
        out.append(f"- {name}, defaults (window 3, intensity, clean 4/4): sar-log-ratio "
                   f"(Otsu) kappa {k['sar-log-ratio']:.4f}, sar-omnibus (α=0.01) kappa "
                   f"{k['sar-omnibus']:.4f}")
        for method in ("sar-log-ratio", "sar-omnibus"):
            rs = [r for r in rows if r["data"] == name and r["config"].method == method]
            b = max(rs, key=lambda r: r["kappa"])
            c = b["config"]
            out.append(f"- {name}, {method}: best kappa {b['kappa']:.4f} (window {c.window}, "
                       f"{_rule(c)}, {'amplitude' if c.amplitude else 'intensity'}, clean "
                       f"{c.clean[0]}/{c.clean[1]})")
    return "\n".join(out)


def header(argv: list[str], wall: float) -> str:
    cmd = " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_sar.py", *argv])
    return (f"Command: `{cmd}`\n\n"
            f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"Machine: {platform.platform()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, numpy {np.__version__}\n\n"
            f"Code: {code_state()}\n\n"
            f"Wall time: {wall:.0f} s\n\n"
            "Clean = detect_arrays' min_pixels / max_hole_pixels.  t = the threshold on the "
            "score.  ENL = the number of looks the omnibus test used (estimated on the "
            "filtered images).  FA / MA = false / missed alarms (pixels).  ms = wall time "
            "of detect_arrays.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data(),
                    help="the shared data folder (holds sar/ottawa, sar/san_francisco)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench_sar.md",
                    help="markdown file for the results")
    args = ap.parse_args(argv)
    if not (args.data / "sar" / "ottawa").is_dir():
        raise SystemExit(f"no SAR data under {args.data / 'sar'} (use --data or "
                         "SITEWATCH_DATA)")
    t0 = time.perf_counter()
    rows = run(args.data)
    wall = time.perf_counter() - t0
    text = (f"# SAR change detection benchmark\n\n{header(argv, wall)}\n\n{best(rows)}\n\n"
            f"{table(rows)}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
