#!/usr/bin/env python
"""Calibrating the assessment on the real reports (``../shared/data/reports``), measured
leave-one-out: for each report, the indicator strengths and level thresholds are fitted on
the other 44 (``sitewatch.warning.calibrate``) and the held-out report is assessed with them.

It prints (and with ``--out`` writes) agreement per class with confusion matrices, the Brier
score and a reliability table for launch ``imminent`` and engine test ``preparations or
recent``, for the judgement values (nothing fitted), leave-one-out, and the fit on all
reports (in-sample, for reference); ``--png`` draws the leave-one-out reliability diagram;
``--write`` puts the fit on all reports into ``src/sitewatch/warning/data/launch_site.toml``
(each strength's basis says what was fitted, on how many reports).

    python benchmarks/bench_calibration.py [--out docs/bench_calibration.md]
        [--png docs/bench_calibration.png] [--write]

Reports are read as benchmarks/bench_reports.py reads them (text alone; the labelled date
where the reader finds none) and assessed as of their publication date.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

from _provenance import REPO, code_state
from bench_reports import ENGINE, LAUNCH, REPORTS, _matrix, _pub_day, label

from sitewatch.times import parse_date
from sitewatch.warning.calibrate import (
    Fit,
    Labelled,
    Outcome,
    agrees,
    apply_fits,
    fit_all,
    in_sample,
    judged,
    leave_one_out,
    write_fit,
)
from sitewatch.warning.collateral import read_text
from sitewatch.warning.indicators import load_indicators

TOML = REPO / "src" / "sitewatch" / "warning" / "data" / "launch_site.toml"
CLASSES = {"launch": LAUNCH, "engine_test": ENGINE}
POSITIVE_WORDS = {"launch": "launch imminent", "engine_test": "engine test preparations or recent"}


def load(folder: Path) -> list[Labelled]:
    """The labelled reports, read as bench_reports.py reads them."""
    items = []
    for f in sorted(folder.glob("[0-9][0-9].json")):
        rec = json.loads(f.read_text(encoding="utf-8"))
        r = read_text(rec["text"], name=f.name)
        if not r.published:
            r = read_text(rec["text"], name=f.name, published=_pub_day(rec["date"]))
        at = parse_date(r.published)
        assert at is not None
        items.append(Labelled(f.name, r, at, {"launch": label(rec["launch_assessment"]),
                                              "engine_test": label(
                                                  rec["engine_test_assessment"])}))
    return items


def _scores(title: str, out: dict[str, Outcome]) -> list[str]:
    return [f"| {title} | {out['launch'].agreement():.2f} | {out['engine_test'].agreement():.2f}"
            f" | {out['launch'].brier():.3f} | {out['engine_test'].brier():.3f} |"]


def _reliability(out: dict[str, Outcome]) -> list[str]:
    lines = []
    for ev, o in out.items():
        lines += [f"{POSITIVE_WORDS[ev]} (leave-one-out):", "",
                  "| predicted likelihood | reports | mean predicted | observed share |",
                  "|---|---:|---:|---:|"]
        for b, n, pred, obs in o.reliability():
            lines.append(f"| {b} | {n} | {'-' if n == 0 else f'{pred:.2f}'} | "
                         f"{'-' if n == 0 else f'{obs:.2f}'} |")
        lines.append("")
    return lines


def _params(fits: Sequence[Fit], base_cat: object, fitted_cat: object) -> list[str]:
    from sitewatch.warning.indicators import IndicatorSet

    assert isinstance(base_cat, IndicatorSet) and isinstance(fitted_cat, IndicatorSet)
    lines = ["| indicator | ratio | judgement | fitted (all reports) | reports showing it |",
             "|---|---|---:|---:|---:|"]
    for f in fits:
        for k in sorted(f.log_lr):
            ind, event, which = k.split("|")
            name = f"lr_absent.{event}" if which == "absent" else f"lr.{event}"
            j = base_cat.indicator(ind)
            was = j.lr_absent[event] if which == "absent" else j.lr[event][1]
            lines.append(f"| `{ind}` | {name} | {was:g} | {math.exp(f.log_lr[k]):.3g} | "
                         f"{f.n.get(k, 0)} |")
    lines += ["", "| event | level | judgement | fitted (all reports) |", "|---|---|---:|---:|"]
    for f in fits:
        for lv, t in f.thresholds.items():
            lines.append(f"| {f.event} | {lv} | "
                         f"{base_cat.events[f.event].threshold(lv):.3g} | {t:.3g} |")
    return lines


def project_corpora(sets: dict[str, object]) -> list[str]:
    """Assessment agreement on the project's own labelled corpora (tests/data/collateral, on
    which the reader's rules were tuned, and the never-tuned holdout) under each indicator set
    (``not_applicable`` agrees with a label of no judgement), as bench_collateral.py reads
    them."""
    from sitewatch.warning.assess import assess_reading
    from sitewatch.warning.collateral import read_file

    lines = ["| corpus | strengths | texts | launch | engine test |", "|---|---|---:|---:|---:|"]
    for corpus in ("collateral", "collateral_holdout"):
        folder = REPO / "tests" / "data" / corpus
        labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        readings = []
        for lab in labels:
            r = read_file(folder / lab["file"])
            if r.published is None and lab["published"]:
                r = read_file(folder / lab["file"], published=lab["published"])
            readings.append((r, lab["stated"]))
        for name, cat in sets.items():
            hits = {"launch": 0, "engine_test": 0}
            for r, want in readings:
                a = assess_reading(r, indicator_set=cat)  # type: ignore[arg-type]
                for ev in hits:
                    hits[ev] += agrees(a.event(ev).level, want[ev])
            n = len(readings)
            lines.append(f"| tests/data/{corpus} | {name} | {n} | {hits['launch'] / n:.3f} | "
                         f"{hits['engine_test'] / n:.3f} |")
    return lines


def _spread(fits: Sequence[Fit], folds: dict[str, list[Fit]]) -> list[str]:
    """How much each fitted value moves across the leave-one-out folds (robustness)."""
    lines = ["| event | parameter | all reports | leave-one-out folds: min | max |",
             "|---|---|---:|---:|---:|"]
    for f in fits:
        per = [next(g for g in fs if g.event == f.event) for fs in folds.values()]
        for k in sorted(f.log_lr):
            vals = [math.exp(g.log_lr[k]) for g in per if k in g.log_lr]
            lines.append(f"| {f.event} | `{k.replace('|', ' ')}` | {math.exp(f.log_lr[k]):.3g}"
                         f" | {min(vals):.3g} | {max(vals):.3g} |")
        for lv, t in f.thresholds.items():
            vals = [g.thresholds[lv] for g in per]
            lines.append(f"| {f.event} | level `{lv}` from | {t:.3g} | {min(vals):.3g} | "
                         f"{max(vals):.3g} |")
    return lines


METHOD = """## Method

Each report is read from its text alone (the labelled date where the reader finds none) and
assessed as of its publication date, as `benchmarks/bench_reports.py` does. What is fitted
(`src/sitewatch/warning/calibrate.py`): per event, the log likelihood ratio of each indicator
that the training reports show (a logistic regression of "the report concludes the event is
coming": launch `imminent`; engine test `preparations` or `recent_test`), with a Gaussian prior
centred on the judged value whose width is the judged range (`ln(high/low)/2`, 0.5 for a
denial's `lr_absent`); then the two level thresholds of each event, by agreement with the
labels less 0.5 report per unit of log-odds moved from the judged threshold. The prior (usual
rate, 5% in 30 days) is not fitted: the reports are a sample of news, not of 30-day periods.
Leave-one-out refits all of it 45 times without the held-out report and assesses that report
with the real `assess_reading` under the refitted set. `not_applicable` (a site type without
the event) counts as agreeing with a label that states no judgement. Labels are the corpus's
own (each report's stated conclusion), not the reader's stated judgement.

Limits: 45 reports, 12 launch-imminent and 14 engine-test positives; many reports give the
assessment no claim that bears on the event (their level is `no_evidence` whatever the
strengths), so the ceiling is set by the reader's claims more than by the strengths.
"""


def _png(out: dict[str, Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (ev, o) in zip(axes, out.items(), strict=True):
        rows = [r for r in o.reliability() if r[1] > 0]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
        ax.plot([r[2] for r in rows], [r[3] for r in rows], "o-", color="C0",
                label="leave-one-out")
        for _b, n, pred, obs in rows:
            ax.annotate(f"n={n}", (pred, obs), textcoords="offset points", xytext=(5, -10),
                        fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted likelihood (bin mean)")
        ax.set_ylabel("observed share of reports")
        ax.set_title(f"{POSITIVE_WORDS[ev]}\nBrier {o.brier():.3f}, {len(o.labels)} reports",
                     fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", default=str(REPORTS))
    ap.add_argument("--out", default=None, help="write the markdown here")
    ap.add_argument("--png", default=None, help="draw the reliability diagram here")
    ap.add_argument("--write", action="store_true",
                    help="put the fit on all reports into launch_site.toml")
    args = ap.parse_args()
    folder = Path(args.reports)
    if not folder.is_dir():
        raise SystemExit(f"no reports at {folder} (set SITEWATCH_DATA or --reports)")
    t0 = time.perf_counter()
    items = load(folder)
    shipped = load_indicators()
    base = judged(shipped)
    before = in_sample(items, base)
    loo, fits_by = leave_one_out(items, base)
    fits = fit_all(items, base)
    fitted = apply_fits(base, fits)
    after = in_sample(items, fitted)
    shipped_out = in_sample(items, shipped)
    corpus = f"the {len(items)} real reports in shared/data/reports"
    lines = [
        "- command: `python benchmarks/bench_calibration.py"
        + (f" --out {args.out}" if args.out else "") + (f" --png {args.png}" if args.png else "")
        + "`",
        f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {platform.platform()}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPUs; Python {platform.python_version()}",
        f"- code: {code_state()}",
        f"- wall time: {time.perf_counter() - t0:.1f} s ({len(items)} reports, "
        f"{len(items)} leave-one-out fits)", "",
        "| strengths and thresholds | agreement launch | agreement engine test | "
        "Brier launch imminent | Brier engine test prep. or recent |",
        "|---|---:|---:|---:|---:|",
        *_scores("judgement (nothing fitted)", before),
        *_scores("**leave-one-out** (fitted on the other 44)", loo),
        *_scores("fitted on all (in-sample, for reference only)", after),
        *_scores("as shipped in launch_site.toml", shipped_out), "",
        "## Leave-one-out per class", ""]
    for ev in ("launch", "engine_test"):
        conf = dict(loo[ev].confusion())
        lines += [f"{ev.replace('_', ' ')}:", "", *_matrix(conf, CLASSES[ev]), ""]
    lines += ["## Reliability (leave-one-out)", "",
              "![reliability diagram](bench_calibration.png)", "", *_reliability(loo),
              "## The fit on all reports (shipped in launch_site.toml)", "",
              *_params(fits, base, fitted), "",
              "How far each value moves across the 45 leave-one-out fits:", "",
              *_spread(fits, fits_by), "",
              "## The project's own labelled corpora, before and after", "",
              "Assessment agreement (bench_collateral.py's texts and labels; `not_applicable` "
              "counts as no judgement):", "",
              *project_corpora({"judgement (nothing fitted)": base,
                                "fitted on the 45 real reports": fitted}), "", METHOD,
              "## Leave-one-out disagreements", ""]
    misses = [f"- {ev} {n}: label {lb}, leave-one-out {lv} ({p:.2f})"
              for ev, o in loo.items()
              for n, lb, lv, p in zip(o.names, o.labels, o.levels, o.likelihoods, strict=True)
              if lb != ("no_evidence" if lv == "not_applicable" else lv)]
    lines += misses
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("# Calibration of the assessment on the real reports\n\n"
                                  + "\n".join(lines) + "\n", encoding="utf-8")
    if args.png:
        _png(loo, Path(args.png))
    if args.write:
        TOML.write_text(write_fit(TOML.read_text(encoding="utf-8"), fitted, fits, corpus),
                        encoding="utf-8")
        print(f"wrote the fit on all {len(items)} reports into {TOML}")


if __name__ == "__main__":
    main()
