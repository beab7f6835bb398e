#!/usr/bin/env python
"""sitewatch's unsupervised optical detectors against published deep models, LEVIR-CD and DSIFN-CD.

Usage (from the repository root)::

    python benchmarks/bench_levir_dsifn.py [--data ../shared/data] [--out docs/bench_levir_dsifn.md]

Reads ``<data>/levir_cd_samples`` and ``<data>/dsifn_cd_samples`` in place (never copied): 256 x
256 RGB PNG tiles at 0.5 m (A = before, B = after), labels 0/255 (255 = change), and the
published models' predictions (``predict_<model>/<tile>.png``, same 0/255 encoding, from the
ChangeFormer repository).  A tile is scored when it has both dates, a label and a prediction
from every model of its data set (LEVIR: the 7 tiles of ``list/demo.txt``; DSIFN: all 10).

Each detector runs on each tile on its own, as a user would run it, through
``detect_arrays(before, after, ("red", "green", "blue"), method)`` with its defaults
(normalisation, threshold rule, cleaning), the RGB values scaled to 0..1.  Methods that need
other bands (NIR, SWIR) are skipped.  Scores are pooled over the tiles: precision, recall and F1
of the change class, and Cohen's kappa.  For our detectors an *oracle* F1 is also given: the
best F1 any single threshold on the pooled scores could reach (before cleaning), i.e. how much is
lost to the automatic threshold rather than to the score itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from sitewatch.change.base import MethodError, methods
from sitewatch.change.detect import detect_arrays

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import code_state  # noqa: E402

DATASETS = {"LEVIR-CD": "levir_cd_samples", "DSIFN-CD": "dsifn_cd_samples"}
BANDS = ("red", "green", "blue")  # the PNGs' band order
# Published numbers on the full test splits (Bandara & Patel, IGARSS 2022), for context.
PAPER_F1 = {("LEVIR-CD", "BIT"): 89.31, ("LEVIR-CD", "ChangeFormerV6"): 90.40,
            ("DSIFN-CD", "BIT"): 69.26, ("DSIFN-CD", "ChangeFormerV6"): 86.67,
            ("LEVIR-CD", "SiamUnet_diff"): 86.31}


def _default_data() -> Path:
    env = os.environ.get("SITEWATCH_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def read_png(path: Path) -> np.ndarray:
    """(bands, rows, cols) uint8 of a non-georeferenced PNG."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read()


def models_of(root: Path) -> dict[str, Path]:
    """Published models' prediction folders, one per model (identical duplicates dropped:
    LEVIR ships ChangeFormerV6 twice, as ``predict_CD_ChangeFormerV6`` and
    ``predict_ChangeFormerV6``)."""
    out: dict[str, Path] = {}
    for d in sorted(root.glob("predict_*")):
        name = d.name.removeprefix("predict_").removeprefix("CD_")
        if name in out:
            same = all((d / f.name).is_file() and (d / f.name).read_bytes() == f.read_bytes()
                       for f in out[name].glob("*.png"))
            if not same:
                name = d.name.removeprefix("predict_")
            else:
                continue
        out[name] = d
    return out


def tiles_of(root: Path, models: dict[str, Path]) -> tuple[list[str], list[str]]:
    """Tiles with both dates, a label and every model's prediction; and the ones left out."""
    listed = root / "list" / "demo.txt"
    names = ([ln.strip() for ln in listed.read_text().splitlines() if ln.strip()]
             if listed.is_file() else sorted(p.name for p in (root / "label").glob("*.png")))
    keep, dropped = [], []
    for n in sorted(set(names) | {p.name for p in (root / "A").glob("*.png")}):
        ok = (n in names and all((root / s / n).is_file() for s in ("A", "B", "label"))
              and all((d / n).is_file() for d in models.values()))
        (keep if ok else dropped).append(n)
    return keep, dropped


class Counts:
    """Pooled confusion counts."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = 0

    def add(self, pred: np.ndarray, ref: np.ndarray) -> None:
        self.tp += int(np.count_nonzero(pred & ref))
        self.fp += int(np.count_nonzero(pred & ~ref))
        self.fn += int(np.count_nonzero(~pred & ref))
        self.tn += int(np.count_nonzero(~pred & ~ref))

    def scores(self) -> dict[str, float]:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        n = tp + fp + fn + tn
        p = tp / (tp + fp) if tp + fp else float("nan")
        r = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
        kappa = (po - pe) / (1 - pe) if pe < 1 else float("nan")
        return {"f1": f1, "precision": p, "recall": r, "kappa": kappa,
                "changed": (tp + fp) / n}


def auc(scores: np.ndarray, ref: np.ndarray) -> float:
    """Area under the ROC curve of the scores for the change class (0.5 = no information);
    unobserved (NaN) pixels rank lowest."""
    from scipy.stats import rankdata

    s = np.where(np.isfinite(scores), scores, -np.inf)
    n_pos = int(ref.sum())
    n_neg = ref.size - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[ref].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def oracle_f1(scores: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """The best F1 of ``score > t`` over all thresholds t, and that t (NaN scores = no)."""
    ok = np.isfinite(scores)
    s, y = scores[ok], ref[ok]
    n_pos = int(ref.sum())
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    k = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # cut only between distinct scores
    f1 = np.where(last, 2 * tp / (k + n_pos), 0.0)
    i = int(np.argmax(f1))
    t = float(s[i + 1]) if i + 1 < len(s) else float(s[i]) - 1e-9
    return float(f1[i]), t


def run_dataset(name: str, root: Path) -> dict[str, Any]:
    models = models_of(root)
    tiles, dropped = tiles_of(root, models)
    data = []
    for t in tiles:
        a = read_png(root / "A" / t)[:3].astype(np.float32) / 255.0
        b = read_png(root / "B" / t)[:3].astype(np.float32) / 255.0
        ref = read_png(root / "label" / t)[0] > 127
        data.append((t, a, b, ref))
    ours: dict[str, Any] = {}
    skipped: list[str] = []
    for cls in methods("optical"):
        missing = [x for x in cls.needs if x not in BANDS]
        if missing:
            skipped.append(f"{cls.name} (needs {', '.join(missing)})")
            continue
        c = Counts()
        all_s, all_y, rules, errors = [], [], set(), []
        t0 = time.perf_counter()
        for t, a, b, ref in data:
            try:
                cm = detect_arrays(a, b, BANDS, cls.name)
            except MethodError as exc:
                errors.append(f"{t}: {exc}")
                c.add(np.zeros_like(ref), ref)
                continue
            c.add(cm.changed, ref)
            all_s.append(cm.score.ravel())
            all_y.append(ref.ravel())
            rules.add(cm.threshold_rule)
        res = c.scores()
        if all_s:
            sc, yy = np.concatenate(all_s), np.concatenate(all_y)
            res["oracle_f1"], res["oracle_t"] = oracle_f1(sc, yy)
            res["auc"] = auc(sc, yy)
        res.update({"rules": sorted(rules), "errors": errors,
                    "seconds": time.perf_counter() - t0})
        ours[cls.name] = res
    published: dict[str, Any] = {}
    for model, d in models.items():
        c = Counts()
        for t, _, _, ref in data:
            c.add(read_png(d / t)[0] > 127, ref)
        published[model] = c.scores()
    everything = Counts()
    for *_, ref in data:
        everything.add(np.ones_like(ref), ref)
    label_share = float(np.mean([ref.mean() for *_, ref in data]))
    return {"name": name, "root": str(root), "tiles": tiles, "dropped": dropped,
            "models": {k: str(v) for k, v in models.items()}, "ours": ours,
            "published": published, "skipped": skipped, "changed_share": label_share,
            "baseline": {"all change": everything.scores()}}


def _f(v: float | None, pct: bool = True) -> str:
    if v is None or v != v:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def report(results: list[dict[str, Any]], command: str, wall: float) -> str:
    out = ["## LEVIR-CD and DSIFN-CD: unsupervised pixel methods vs published deep models", "",
           f"Command: `{command}`  ",
           f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}  ",
           f"Machine: {platform.platform()}, Python {platform.python_version()}.  ",
           f"Code: {code_state()}.  ",
           f"Wall time: {wall:.0f} s.", ""]
    for r in results:
        out.append(f"- **{r['name']}** (`{Path(r['root']).name}`): {len(r['tiles'])} tiles of "
                   f"256 x 256 px at 0.5 m, {100 * r['changed_share']:.1f} % of pixels labelled "
                   f"change. Scored: {', '.join(r['tiles'])}."
                   + (f" Left out (no label or no published prediction): "
                      f"{', '.join(r['dropped'])}." if r["dropped"] else ""))
    out += ["", "Change class, pooled over the tiles of each data set, in % (kappa as a "
            "fraction). *Ours*: `detect_arrays(before, after, (\"red\", \"green\", \"blue\"), "
            "method)` per tile with every default; *oracle F1* = the best F1 a single "
            "threshold on the pooled scores could give (before cleaning), not reachable "
            "without labels; *AUC* = area under the ROC curve of the pooled scores (0.5 = "
            "the score carries no information about the labels); *s* = seconds for all the "
            "tiles. *All change* flags every pixel: the F1 that needs no image at all. "
            "*Published*: the models' own prediction maps shipped with the "
            "samples (supervised, trained on each data set's training split).", ""]
    head = ["method", "kind"]
    for r in results:
        head += [f"{r['name']} F1", "P", "R", "kappa", "oracle F1", "AUC", "s"]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * (len(head) - 2)]
    names_ours = list(dict.fromkeys(m for r in results for m in r["ours"]))
    names_pub = list(dict.fromkeys(m for r in results for m in r["published"]))
    for kind, names, key in (("trivial baseline", ["all change"], "baseline"),
                             ("ours, unsupervised", names_ours, "ours"),
                             ("published, supervised", names_pub, "published")):
        for m in names:
            row = [m, kind]
            for r in results:
                s = r[key].get(m)
                if s is None:
                    row += ["–"] * 7
                    continue
                row += [_f(s["f1"]), _f(s["precision"]), _f(s["recall"]),
                        _f(s["kappa"], pct=False), _f(s.get("oracle_f1")),
                        _f(s.get("auc"), pct=False),
                        f"{s['seconds']:.1f}" if "seconds" in s else "–"]
            lines.append("| " + " | ".join(row) + " |")
    out.append("\n".join(lines))
    rules = {m: sorted({x for r in results for x in r["ours"].get(m, {}).get("rules", [])})
             for m in names_ours}
    out += ["", "Threshold rules our detectors used: "
            + "; ".join(f"{m}: {', '.join(v)}" for m, v in rules.items()) + "."]
    skipped = sorted({s for r in results for s in r["skipped"]})
    if skipped:
        out.append(f"Skipped (RGB only): {'; '.join(skipped)}.")
    errs = [f"{r['name']} {m}: {e}" for r in results for m, s in r["ours"].items()
            for e in s["errors"]]
    if errs:
        out.append("Errors (tile counted as no change detected): " + "; ".join(errs) + ".")
    out.append("")
    for r in results:
        best_o = max(r["ours"].items(), key=lambda kv: kv[1]["f1"])
        best_p = max(r["published"].items(), key=lambda kv: kv[1]["f1"])
        base = r["baseline"]["all change"]["f1"]
        best_oracle = max(v.get("oracle_f1", float("nan")) for v in r["ours"].values())
        out.append(f"- {r['name']}: best of ours {best_o[0]} F1 {_f(best_o[1]['f1'])} (kappa "
                   f"{_f(best_o[1]['kappa'], pct=False)}) vs best published {best_p[0]} "
                   f"{_f(best_p[1]['f1'])}: a gap of "
                   f"{100 * (best_p[1]['f1'] - best_o[1]['f1']):.1f} points. Flagging every "
                   f"pixel gives F1 {_f(base)}; the best single threshold on any of our scores "
                   f"reaches {_f(best_oracle)}.")
    ctx = ", ".join(f"{d} {m} {v:.2f}" for (d, m), v in PAPER_F1.items())
    out += ["", f"Context: F1 published on the full test splits (Bandara & Patel 2022): {ctx}. "
            "The few sample tiles here are not the full test split, so the published models' "
            "numbers above differ from those."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help="folder holding levir_cd_samples/ and dsifn_cd_samples/ [default: "
                        "$SITEWATCH_DATA, else ../shared/data next to the repository]")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "bench_levir_dsifn.md",
                   help="markdown output [default: docs/bench_levir_dsifn.md]")
    args = p.parse_args(argv)
    data = (args.data or _default_data()).resolve()
    missing = [d for d in DATASETS.values() if not (data / d).is_dir()]
    if missing:
        print(f"bench_levir_dsifn: {', '.join(missing)} not found under {data}; give --data "
              "DIR or set SITEWATCH_DATA", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = [run_dataset(name, data / sub) for name, sub in DATASETS.items()]
    wall = time.perf_counter() - t0
    argv_shown = [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]
    md = report(results, " ".join(["python", *argv_shown]), wall)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
