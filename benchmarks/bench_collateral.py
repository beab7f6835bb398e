"""The collateral reader on a labelled corpus: claim precision and recall, and agreement of the
stated judgement and of the assessment with each text's own conclusion.

The corpus (``tests/data/collateral``: 30 texts in plain text, Markdown and HTML, with
``labels.json``) was written and labelled by a helper session that did not see the reader's
rules.  A predicted claim matches a labelled one when site, activity and negation agree and
their sentences overlap; each labelled claim matches at most once.  On matched claims the
part, the certainty (firm / hedged) and the source (by origin: "Kyodo citing a Japanese
government source" and "a Japanese official" are both ``government:JP``) are scored.

    python benchmarks/bench_collateral.py [--out docs/bench_collateral.md] [--errors]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from _provenance import REPO, code_state

from sitewatch.warning.assess import assess_reading
from sitewatch.warning.collateral import read_file
from sitewatch.warning.lexicon import match_source

CORPUS = REPO / "tests" / "data" / "collateral"
#: Written after the rules were tuned on CORPUS, by another helper that saw neither; never
#: used to change the rules (look at its figures, not at its mistakes).
HOLDOUT = REPO / "tests" / "data" / "collateral_holdout"
LEVELS = {"launch": ("imminent", "possible", "unlikely", "no_evidence"),
          "engine_test": ("recent_test", "preparations", "unlikely", "no_evidence")}


def _words(s: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", s.lower()))


def _same_sentence(a: str, b: str) -> bool:
    if a in b or b in a:
        return True
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and len(wa & wb) / min(len(wa), len(wb)) >= 0.6


def _origin(source: str | None) -> str:
    if not source:
        return "author"
    rule = match_source(source)
    return rule.origin.split("@")[0] if rule else f"other:{source.lower()}"


def evaluate(corpus: Path = CORPUS, errors: bool = False) -> dict:
    labels = json.loads((corpus / "labels.json").read_text(encoding="utf-8"))
    tp = fp = fn = 0
    part_ok = part_n = cert_ok = cert_n = src_ok = src_n = 0
    date_ok = date_n = 0
    site_tp = site_fp = site_fn = 0
    stated = {"launch": Counter(), "engine_test": Counter()}
    assessed = {"launch": Counter(), "engine_test": Counter()}
    per_activity: dict[str, Counter] = {}
    mistakes: list[str] = []
    t0 = time.perf_counter()
    for lab in labels:
        r = read_file(corpus / lab["file"])
        if lab["published"]:
            date_n += 1
            date_ok += r.published == lab["published"]
        if r.published is None and lab["published"]:
            # Score the claims as a user who knows the date would get them.
            r = read_file(corpus / lab["file"], published=lab["published"])
        got_sites, want_sites = set(r.sites), set(lab["sites"])
        site_tp += len(got_sites & want_sites)
        site_fp += len(got_sites - want_sites)
        site_fn += len(want_sites - got_sites)
        want = list(lab["claims"])
        used = [False] * len(want)
        for c in r.claims:
            hit = None
            for i, w in enumerate(want):
                if used[i]:
                    continue
                if (w["site"], w["activity"], w["negated"]) == (c.site, c.activity,
                                                                 c.negated) \
                        and _same_sentence(w["sentence"], c.sentence):
                    hit = i
                    break
            act = per_activity.setdefault(c.activity, Counter())
            if hit is None:
                fp += 1
                act["fp"] += 1
                mistakes.append(f"FP {lab['file']}: {c.site} {c.activity} "
                                f"{'NEG ' if c.negated else ''}| {c.sentence[:110]}")
                continue
            used[hit] = True
            tp += 1
            act["tp"] += 1
            w = want[hit]
            part_n += 1
            part_ok += w["part"] == c.part
            cert_n += 1
            cert_ok += w["certainty"] == ("firm" if c.certainty == "firm" else "hedged")
            src_n += 1
            ok = _origin(w["source"]) == (c.origin.split("@")[0] if c.source else "author")
            src_ok += ok
            if not ok:
                mistakes.append(f"SRC {lab['file']}: want {w['source']!r} got {c.source!r} "
                                f"| {c.sentence[:80]}")
        for i, w in enumerate(want):
            if not used[i]:
                fn += 1
                per_activity.setdefault(w["activity"], Counter())["fn"] += 1
                mistakes.append(f"FN {lab['file']}: {w['site']} {w['activity']} "
                                f"{'NEG ' if w['negated'] else ''}| {w['sentence'][:110]}")
        a = assess_reading(r)
        for ev in ("launch", "engine_test"):
            stated[ev][(lab["stated"][ev], r.stated[ev])] += 1
            lvl = a.event(ev).level  # "not applicable to this site type": no judgement
            assessed[ev][(lab["stated"][ev], "no_evidence" if lvl == "not_applicable"
                          else lvl)] += 1
            if lab["stated"][ev] != r.stated[ev]:
                mistakes.append(f"STATED {lab['file']} {ev}: want {lab['stated'][ev]} got "
                                f"{r.stated[ev]}")
    elapsed = time.perf_counter() - t0

    def agree(c: Counter) -> float:
        n = sum(c.values())
        return sum(v for (a, b), v in c.items() if a == b) / n if n else float("nan")

    p = tp / (tp + fp) if tp + fp else float("nan")
    rcl = tp / (tp + fn) if tp + fn else float("nan")
    res = {
        "texts": len(labels), "labelled_claims": tp + fn, "predicted_claims": tp + fp,
        "precision": p, "recall": rcl, "f1": 2 * p * rcl / (p + rcl) if p + rcl else 0.0,
        "part_accuracy": part_ok / part_n if part_n else float("nan"),
        "certainty_accuracy": cert_ok / cert_n if cert_n else float("nan"),
        "source_accuracy": src_ok / src_n if src_n else float("nan"),
        "published_found": f"{date_ok}/{date_n}",
        "site_precision": site_tp / (site_tp + site_fp) if site_tp + site_fp else 1.0,
        "site_recall": site_tp / (site_tp + site_fn) if site_tp + site_fn else 1.0,
        "stated_agreement": {ev: agree(c) for ev, c in stated.items()},
        "assessment_agreement": {ev: agree(c) for ev, c in assessed.items()},
        "stated_confusion": {ev: {f"{a}->{b}": v for (a, b), v in sorted(c.items())}
                             for ev, c in stated.items()},
        "assessment_confusion": {ev: {f"{a}->{b}": v for (a, b), v in sorted(c.items())}
                                 for ev, c in assessed.items()},
        "per_activity": {k: dict(v) for k, v in sorted(per_activity.items())},
        "seconds": elapsed,
    }
    if errors:
        res["mistakes"] = mistakes
    return res


def _table(res: dict) -> list[str]:
    lines = ["| measure | value |", "|---|---|"]
    for k in ("texts", "labelled_claims", "predicted_claims", "precision", "recall", "f1",
              "part_accuracy", "certainty_accuracy", "source_accuracy", "published_found",
              "site_precision", "site_recall"):
        v = res[k]
        lines.append(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")
    for k in ("stated_agreement", "assessment_agreement"):
        for ev, v in res[k].items():
            lines.append(f"| {k} ({ev}) | {v:.3f} |")
    lines += ["", "Per activity (true positives, false positives, false negatives):", "",
              "| activity | tp | fp | fn |", "|---|---|---|---|"]
    for a, c in res["per_activity"].items():
        lines.append(f"| {a} | {c.get('tp', 0)} | {c.get('fp', 0)} | {c.get('fn', 0)} |")
    lines += ["", "Labelled level -> sitewatch's assessment from the text alone:", ""]
    for ev, c in res["assessment_confusion"].items():
        lines.append(f"- {ev}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    lines += ["", "Labelled level -> the stated judgement sitewatch reads:", ""]
    for ev, c in res["stated_confusion"].items():
        lines.append(f"- {ev}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench_collateral.md")
    ap.add_argument("--errors", action="store_true",
                    help="Print every mistake on the development corpus (never the held-out).")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = evaluate(CORPUS, errors=args.errors)
    if args.errors:
        for m in res.pop("mistakes"):
            print(m)
    head = [
        "# Collateral reader on labelled corpora",
        "",
        "- command: `python benchmarks/bench_collateral.py`",
        f"- run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPUs; Python {platform.python_version()}",
        f"- code: {code_state()}",
        "",
        "## Development corpus (`tests/data/collateral`: the rules were tuned on it)",
        "",
        f"{res['texts']} texts read and assessed in {res['seconds']:.1f} s.",
        "",
    ]
    body = _table(res)
    if (HOLDOUT / "labels.json").is_file():
        hold = evaluate(HOLDOUT)
        body += ["", "## Held-out corpus (`tests/data/collateral_holdout`: never tuned on)", "",
                 f"{hold['texts']} texts read and assessed in {hold['seconds']:.1f} s.", "",
                 *_table(hold)]
    head.insert(6, f"- wall time: {time.perf_counter() - t0:.1f} s (both corpora)")
    text = "\n".join(head + body) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
