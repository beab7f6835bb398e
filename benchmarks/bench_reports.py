#!/usr/bin/env python
"""The collateral reader on real published reports (``../shared/data/reports``: 45 analyst
and news reports on launch and engine-test sites, each labelled from its own stated
conclusion; see its README).

For each report, read from its text alone (no publication date given, as a new user adds a
file), it scores:

* **stated**: the reader's stated judgement (launch: imminent / possible / unlikely / none;
  engine test: preparations / recent test / unlikely / none) against the label, per class,
  with a confusion matrix;
* **assessment**: sitewatch's own assessment from the claims (``assess_reading``, as of the
  report's publication date) against the same label, and its Brier score on "launch
  imminent" and "engine test (preparations or recent)";
* **site**: the report's main site (the site most of its claims are about, else the first
  named) is the labelled one;
* **date**: the publication date found equals the labelled one (to the month when the label
  has only a month);
* **source**: an outlet the reader names (``Reading.outlets``) is the labelled outlet or its
  host.

Usage::

    python benchmarks/bench_reports.py [--reports DIR] [--out docs/bench_reports.md]
        [--errors]

Nothing here is fitted; where a model is fitted on these reports, its figures must come from
leave-one-out (see docs/collateral.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from _provenance import REPO, code_state

REPORTS = Path(os.environ.get("SITEWATCH_DATA", REPO.parent / "shared" / "data")) / "reports"

LAUNCH = ("imminent", "possible", "unlikely", "no_evidence")
ENGINE = ("preparations", "recent_test", "unlikely", "no_evidence")
LABEL_WORDS = {"none_stated": "no_evidence", "recent_test_evidence": "recent_test"}
#: Words of the labelled site -> the gazetteer id sitewatch should give it.
#: First match wins: "shahr" comes before "semnan" (Shahroud lies in Semnan Province).
SITE_IDS = (("sohae", "sohae"), ("tongchang", "sohae"), ("sinpo", "sinpo"), ("shahr", "shahroud"),
            ("imam khomeini", "imam-khomeini-spaceport"), ("semnan", "imam-khomeini-spaceport"),
            ("magunpo", "magunpo"), ("jiuquan", "jiuquan"), ("wenchang", "wenchang"),
            ("plesetsk", "plesetsk"), ("sanum", "sanumdong"),
            ("tonghae", "tonghae"))


def expected_site(label_site: str) -> str | None:
    low = label_site.lower()
    return next((sid for word, sid in SITE_IDS if word in low), None)


def label(value: str) -> str:
    return LABEL_WORDS.get(value, value)


def main_site(reading: Any) -> str | None:
    counts = Counter(c.site for c in reading.claims if c.site)
    if counts:
        return counts.most_common(1)[0][0]
    return reading.sites[0] if reading.sites else None


def _norm(s: str) -> str:
    s = re.sub(r"[^a-z0-9 ]+", " ", s.lower())
    return " ".join(w for w in s.split() if w != "the")


def source_ok(outlets: list[str], label_outlet: str) -> bool:
    want = _norm(label_outlet)
    return any(_norm(o) and _norm(o) in want for o in outlets)


def date_ok(found: str | None, want: str) -> bool:
    return bool(found) and str(found)[:len(want)] == want


def _pub_day(want: str) -> date:
    parts = [int(x) for x in want.split("-")] + [28]
    return date(parts[0], parts[1], parts[2])  # a month-only label: its 28th


def evaluate(folder: Path = REPORTS, errors: bool = False) -> dict[str, Any]:
    from sitewatch.warning.assess import assess_reading
    from sitewatch.warning.collateral import read_text
    from sitewatch.warning.documents import parse_document

    files = sorted(folder.glob("[0-9][0-9].json"))
    stated = {"launch": Counter(), "engine_test": Counter()}
    assessed = {"launch": Counter(), "engine_test": Counter()}
    brier: dict[str, list[float]] = {"launch": [], "engine_test": []}
    site_n = site_ok = date_n = date_hits = url_hits = src_ok = 0
    mistakes: list[str] = []
    t0 = time.perf_counter()
    for f in files:
        rec = json.loads(f.read_text(encoding="utf-8"))
        r = read_text(rec["text"], name=f.name)
        want = {"launch": label(rec["launch_assessment"]),
                "engine_test": label(rec["engine_test_assessment"])}
        # The assessment as of publication (the label's date when the reader found none).
        pub = r.published or None
        if pub is None:
            r2 = read_text(rec["text"], name=f.name, published=_pub_day(rec["date"]))
        else:
            r2 = r
        a = assess_reading(r2)
        for ev in ("launch", "engine_test"):
            got = r.stated[ev]
            stated[ev][(want[ev], got)] += 1
            lvl = a.event(ev).level
            # "No assessment: this site type has no launch" is no judgement of one.
            lvl = "no_evidence" if lvl == "not_applicable" else lvl
            assessed[ev][(want[ev], lvl)] += 1
            p = a.event(ev).likelihood
            hit = want[ev] == "imminent" if ev == "launch" else want[ev] in (
                "preparations", "recent_test")
            brier[ev].append((p - float(hit)) ** 2)
            if errors and got != want[ev]:
                mistakes.append(f"STATED {f.name} {ev}: want {want[ev]} got {got}")
            if errors and lvl != want[ev]:
                mistakes.append(f"ASSESS {f.name} {ev}: want {want[ev]} got {lvl} ({p:.2f})")
        exp = expected_site(rec["site"])
        if exp:
            site_n += 1
            got_site = main_site(r)
            site_ok += got_site == exp
            if errors and got_site != exp:
                mistakes.append(f"SITE {f.name}: want {exp} got {got_site} (named {r.sites})")
        date_n += 1
        date_hits += date_ok(r.published, rec["date"])
        # As `collateral add --url URL` reads it: the page address is known to whoever saved it.
        with_url = parse_document(rec["text"], f.name, url=rec.get("url")).published
        url_hits += date_ok(with_url, rec["date"])
        if errors and not date_ok(r.published, rec["date"]):
            mistakes.append(f"DATE {f.name}: want {rec['date']} got {r.published}")
        outlets = list(getattr(r, "outlets", []) or [])
        ok = source_ok(outlets, rec["source_outlet"])
        src_ok += ok
        if errors and not ok:
            mistakes.append(f"SOURCE {f.name}: want {rec['source_outlet'][:50]!r} got "
                            f"{outlets}")
    n = len(files)

    def agree(c: Counter) -> float:
        tot = sum(c.values())
        return sum(v for (w, g), v in c.items() if w == g) / tot if tot else float("nan")

    return {"n": n, "seconds": time.perf_counter() - t0,
            "stated": {ev: agree(c) for ev, c in stated.items()},
            "assessed": {ev: agree(c) for ev, c in assessed.items()},
            "brier": {ev: sum(v) / len(v) for ev, v in brier.items() if v},
            "confusion_stated": {ev: dict(c) for ev, c in stated.items()},
            "confusion_assessed": {ev: dict(c) for ev, c in assessed.items()},
            "site": site_ok / site_n if site_n else float("nan"), "site_n": site_n,
            "date": date_hits / date_n if date_n else float("nan"),
            "date_url": url_hits / date_n if date_n else float("nan"),
            "source": src_ok / n if n else float("nan"), "mistakes": mistakes}


def _matrix(conf: dict, classes: tuple[str, ...]) -> list[str]:
    lines = ["| label \\ read | " + " | ".join(classes) + " | recall |",
             "|---|" + "---:|" * (len(classes) + 1)]
    for w in classes:
        row = [conf.get((w, g), 0) for g in classes]
        tot = sum(v for (ww, _g), v in conf.items() if ww == w)
        rec = f"{conf.get((w, w), 0) / tot:.2f}" if tot else "-"
        lines.append(f"| {w} | " + " | ".join(str(x) for x in row) + f" | {rec} |")
    return lines


def table(res: dict[str, Any]) -> list[str]:
    out = [f"Reports: {res['n']} ({res['seconds']:.1f} s to read and assess them all).", "",
           "| measure | launch | engine test | target |", "|---|---:|---:|---:|",
           f"| stated judgement agrees | {res['stated']['launch']:.2f} | "
           f"{res['stated']['engine_test']:.2f} | 0.85 |",
           f"| assessment agrees | {res['assessed']['launch']:.2f} | "
           f"{res['assessed']['engine_test']:.2f} | 0.75 |",
           f"| assessment Brier score (lower is better) | {res['brier']['launch']:.3f} | "
           f"{res['brier']['engine_test']:.3f} | |", "",
           "| measure | value | target |", "|---|---:|---:|",
           f"| main site is the labelled one ({res['site_n']} reports) | {res['site']:.2f} | "
           "0.95 |",
           f"| publication date found, text alone | {res['date']:.2f} | 0.90 |",
           f"| publication date found, text and its URL (`collateral add --url`) | "
           f"{res['date_url']:.2f} | 0.90 |",
           f"| outlet named | {res['source']:.2f} | |", ""]
    for kind, key in (("stated judgement", "confusion_stated"),
                      ("assessment", "confusion_assessed")):
        for ev, classes in (("launch", LAUNCH), ("engine_test", ENGINE)):
            out += [f"{kind}, {ev.replace('_', ' ')}:", "", *_matrix(res[key][ev], classes), ""]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", default=str(REPORTS))
    ap.add_argument("--out", default=None, help="write the markdown here")
    ap.add_argument("--errors", action="store_true", help="print every disagreement")
    args = ap.parse_args()
    folder = Path(args.reports)
    if not folder.is_dir():
        raise SystemExit(f"no reports at {folder} (set SITEWATCH_DATA or --reports)")
    res = evaluate(folder, args.errors)
    lines = [f"`python benchmarks/bench_reports.py` at {code_state()}, "
             f"{time.strftime('%Y-%m-%d')}.", "",
             "**Read these as in-sample.** The reader's rules (the stated judgement, the "
             "gazetteer, the date and outlet rules) were written while reading these 45 "
             "reports, so agreement here overstates what a new report gets. The honest "
             "figures are the project's never-tuned holdout in docs/bench_collateral.md and "
             "the leave-one-out calibration in docs/bench_calibration.md; docs/collateral.md "
             "sets them side by side.", "", *table(res)]
    print("\n".join(lines))
    for m in res["mistakes"]:
        print(m)
    if args.out:
        Path(args.out).write_text("# The reader on real reports\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
