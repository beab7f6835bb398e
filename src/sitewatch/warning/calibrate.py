"""Calibrating the indicator strengths and the level thresholds on reports labelled with their
own conclusion, and measuring the result leave-one-out.

The assessment is an odds update (:mod:`.assess`): a report's log-odds for an event is the
prior's plus, per evidence item, its weight times its indicator's log likelihood ratio.  The
weights (certainty, staleness, corroboration) do not depend on the strengths, so for a fixed
set of reports the log-odds is *linear* in the log likelihood ratios, and fitting them is a
logistic regression with the judgement values as its prior:

* **What is fitted.**  For each event, the log ratio of every indicator that the training
  reports show (present, or denied: ``lr_absent``), by minimising the log loss of "the report
  concludes the event is coming" (launch: ``imminent``; engine test: ``preparations`` or
  ``recent_test``) plus a Gaussian penalty pulling each value to its judgement.  The penalty's
  width is the judgement's own range: ``ln(high / low) / 2`` (a ratio judged ``[3, 8, 20]``
  can move by about a factor 2.6 per standard deviation), ``PRIOR_SD_ABSENT`` for a denial.
  After-the-test indicators (a burn scar) are fitted on ``recent_test`` alone.  Indicators no
  training report shows keep their judgement.  The prior (the usual rate) is not fitted: the
  reports are a sample of news, not of 30-day periods.
* **The level thresholds**, then, by maximising agreement with the labels on the training
  reports, less ``THRESHOLD_PENALTY`` reports per unit of log-odds moved away from the
  judgement (a threshold moves only when the move wins more reports than it costs).
* **Leave-one-out.**  :func:`leave_one_out` refits everything without each report in turn and
  assesses that report with the real :func:`~.assess.assess_reading` under the refitted
  strengths: the report never sees a fit it was part of.

Labels and levels: a report that states no judgement is labelled ``no_evidence``; an event the
site's type does not have (``not_applicable``) agrees with ``no_evidence``.

Examples
--------
>>> round(logit(0.5), 3), round(sigmoid(0.0), 3)
(0.0, 0.5)
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
from scipy.optimize import minimize

from sitewatch.warning.assess import assess_reading
from sitewatch.warning.collateral import Reading
from sitewatch.warning.indicators import LEVELS, EventPrior, Indicator, IndicatorSet
from sitewatch.warning.records import EVENTS

log = logging.getLogger(__name__)

#: What counts as "the event is coming" for the log loss, the Brier score and the
#: reliability diagram (what benchmarks/bench_reports.py scores).
POSITIVE = {"launch": frozenset({"imminent"}),
            "engine_test": frozenset({"preparations", "recent_test"})}
#: Width (log units) of the prior on a denial's ratio, which has no judged range.
PRIOR_SD_ABSENT = 0.5
#: The smallest prior width: a judged range can be narrow, no value is certain.
PRIOR_SD_MIN = 0.25
#: Reports of agreement a threshold must win per unit of log-odds it moves.
THRESHOLD_PENALTY = 0.5
#: Candidate thresholds (probabilities), on a log grid.
THRESHOLD_GRID = tuple(round(float(x), 4) for x in np.exp(np.linspace(math.log(0.02),
                                                                      math.log(0.9), 40)))
#: Reliability-diagram bins (predicted probability).
BINS = (0.0, 0.1, 0.2, 0.4, 0.6, 1.0)


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(-50.0, min(50.0, z))))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Labelled:
    """A report read, the day it is assessed as of, and per event the level its own
    conclusion gives (``no_evidence`` where it states none)."""

    name: str
    reading: Reading
    at: date
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Features:
    """What the fit sees of one report for one event: per parameter key (see :func:`key`)
    the summed weight of its evidence before and after the event, whether anything bears on
    the event at all (else the level is ``no_evidence`` whatever the strengths), and whether
    the site's type has the event."""

    before: Mapping[str, float]
    after: Mapping[str, float]
    bearing: bool
    applicable: bool


@dataclass(frozen=True)
class Fit:
    """Fitted log ratios (by :func:`key`), how many training reports showed each, and the
    level thresholds, for one event."""

    event: str
    log_lr: Mapping[str, float]
    n: Mapping[str, int]
    thresholds: Mapping[str, float]
    reports: int


@dataclass
class Outcome:
    """Leave-one-out predictions for one event: per report its label, level, likelihood."""

    event: str
    names: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    likelihoods: list[float] = field(default_factory=list)

    def agreement(self) -> float:
        hits = sum(agrees(lv, lb) for lv, lb in zip(self.levels, self.labels, strict=True))
        return hits / len(self.labels) if self.labels else float("nan")

    def brier(self) -> float:
        ys = [float(lb in POSITIVE[self.event]) for lb in self.labels]
        return (sum((p - y) ** 2 for p, y in zip(self.likelihoods, ys, strict=True)) / len(ys)
                if ys else float("nan"))

    def confusion(self) -> Counter[tuple[str, str]]:
        return Counter((lb, _as_label(lv)) for lb, lv in zip(self.labels, self.levels,
                                                             strict=True))

    def reliability(self, bins: Sequence[float] = BINS) -> list[tuple[str, int, float, float]]:
        """Per bin of predicted likelihood: (bin, reports, mean predicted, observed share)."""
        out = []
        for lo, hi in itertools.pairwise(bins):
            idx = [i for i, p in enumerate(self.likelihoods)
                   if lo <= p < hi or (hi == bins[-1] and p == hi)]
            if not idx:
                out.append((f"{lo:.1f}-{hi:.1f}", 0, float("nan"), float("nan")))
                continue
            pred = sum(self.likelihoods[i] for i in idx) / len(idx)
            obs = sum(self.labels[i] in POSITIVE[self.event] for i in idx) / len(idx)
            out.append((f"{lo:.1f}-{hi:.1f}", len(idx), pred, obs))
        return out


def _as_label(level: str) -> str:
    return "no_evidence" if level == "not_applicable" else level


def agrees(level: str, label: str) -> bool:
    """Whether an assessed level agrees with a label (``not_applicable``: no judgement)."""
    return _as_label(level) == label


def key(indicator: str, event: str, denied: bool) -> str:
    """The parameter key of an indicator's ratio for an event (``lr`` or ``lr_absent``)."""
    return f"{indicator}|{event}|{'absent' if denied else 'present'}"


def _split(k: str) -> tuple[str, str, bool]:
    ind, event, which = k.split("|")
    return ind, event, which == "absent"


def features(item: Labelled, cat: IndicatorSet, event: str) -> Features:
    """The features of ``item`` for ``event``, read off the assessment under ``cat``."""
    from sitewatch.warning.assess import evidence_from_reading

    a = assess_reading(item.reading, indicator_set=cat, at=item.at).event(event)
    denied = {e.id: e.negated for e in evidence_from_reading(item.reading, cat)}
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    for r in (*a.reasons, *a.against):
        ind = cat.indicator(r.indicator)
        k = key(r.indicator, event, denied.get(r.evidence, False))
        side = after if ind.phase == "after" else before
        side[k] = side.get(k, 0.0) + r.weight
    return Features(before, after, a.level not in ("no_evidence", "not_applicable"),
                    a.level != "not_applicable")


def prior_of(cat: IndicatorSet, k: str) -> tuple[float, float]:
    """(mean, sd) of the prior on parameter ``k``: the judged value and the judged range."""
    ind_id, event, denied = _split(k)
    ind = cat.indicator(ind_id)
    if denied:
        judged = ind.lr_absent_judged.get(event, ind.lr_absent.get(event, 1.0))
        return math.log(judged), PRIOR_SD_ABSENT
    lo, mid, hi = ind.lr_judged.get(event, ind.lr[event])
    return math.log(mid), max(PRIOR_SD_MIN, math.log(hi / lo) / 2)


def fit_log_lr(xs: Sequence[Mapping[str, float]], ys: Sequence[bool], base: float,
               prior: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Log ratios minimising the log loss of ``ys`` given log-odds ``base + sum(x * theta)``
    plus the Gaussian ``prior`` ((mean, sd) per key).  Keys no ``x`` shows are not returned."""
    keys = sorted({k for x in xs for k, v in x.items() if v})
    if not keys or not xs:
        return {}
    X = np.array([[x.get(k, 0.0) for k in keys] for x in xs])
    y = np.array([float(v) for v in ys])
    mu = np.array([prior[k][0] for k in keys])
    inv_var = np.array([1 / prior[k][1] ** 2 for k in keys])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.clip(base + X @ theta, -50, 50)
        p = 1 / (1 + np.exp(-z))
        eps = 1e-12
        ll = -np.sum(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        pen = 0.5 * np.sum(inv_var * (theta - mu) ** 2)
        grad = X.T @ (p - y) + inv_var * (theta - mu)
        return float(ll + pen), grad

    res = minimize(loss, mu.copy(), jac=True, method="L-BFGS-B")
    if not res.success:
        log.warning("calibration did not converge: %s", res.message)
    return {k: float(v) for k, v in zip(keys, res.x, strict=True)}


def _z(x: Mapping[str, float], theta: Mapping[str, float], fallback: Mapping[str, float],
       base: float) -> float:
    return base + sum(v * theta.get(k, fallback[k]) for k, v in x.items())


def _level(event: str, p_before: float, p_after: float | None, bearing: bool,
           t: Mapping[str, float]) -> str:
    """The level as :func:`.assess._level` gives it, for thresholds ``t``."""
    if event == "launch":
        if not bearing:
            return "no_evidence"
        if p_before >= t["imminent"]:
            return "imminent"
        return "possible" if p_before >= t["possible"] else "unlikely"
    if p_after is not None and p_after >= t["recent_test"]:
        return "recent_test"
    if not bearing:
        return "no_evidence"
    return "preparations" if p_before >= t["preparations"] else "unlikely"


def fit_thresholds(event: str, probs: Sequence[tuple[float, float | None, bool]],
                   labels: Sequence[str], judged: Mapping[str, float]) -> dict[str, float]:
    """The thresholds of ``event``'s two upper levels maximising agreement with ``labels``
    over reports given as (p_before, p_after or None, bearing), less
    :data:`THRESHOLD_PENALTY` per unit of log-odds moved from ``judged``."""
    top, second = LEVELS[event]
    grid = sorted({*THRESHOLD_GRID, *judged.values()})  # staying put is always a candidate
    best: tuple[float, dict[str, float]] | None = None
    for t1 in grid:
        for t2 in grid:
            if event == "launch" and t2 > t1:
                continue
            t = {top: t1, second: t2}
            hits = sum(_level(event, pb, pa, b, t) == lb
                       for (pb, pa, b), lb in zip(probs, labels, strict=True))
            cost = THRESHOLD_PENALTY * sum(abs(logit(t[k]) - logit(judged[k])) for k in t)
            score = hits - cost
            if best is None or score > best[0] + 1e-9:
                best = (score, t)
    assert best is not None
    return best[1]


def fit_event(items: Sequence[tuple[Features, str]], cat: IndicatorSet, event: str) -> Fit:
    """Fit ``event``'s strengths and thresholds on (features, label) pairs (see the module
    doc)."""
    prior_ev = cat.events[event]
    base = logit(prior_ev.prior)
    used = [(f, lb) for f, lb in items if f.applicable]
    bearing = [(f, lb) for f, lb in used if f.bearing]
    keys = {k for f, _ in used for k in (*f.before, *f.after)}
    prior = {k: prior_of(cat, k) for k in keys}
    theta = fit_log_lr([f.before for f, _ in bearing],
                       [lb in POSITIVE[event] for _, lb in bearing], base, prior)
    with_after = [(f, lb) for f, lb in used if f.after]
    theta.update(fit_log_lr([f.after for f, _ in with_after],
                            [lb == "recent_test" for _, lb in with_after], base, prior))
    mean = {k: m for k, (m, _) in prior.items()}
    probs = [(sigmoid(_z(f.before, theta, mean, base)),
              sigmoid(_z(f.after, theta, mean, base)) if f.after else None, f.bearing)
             for f, _ in used]
    judged = {lv: prior_ev.levels_judged.get(lv, prior_ev.threshold(lv))
              for lv in LEVELS[event]}
    thresholds = fit_thresholds(event, probs, [lb for _, lb in used], judged)
    n = Counter(k for f, _ in used for k in {*f.before, *f.after})
    return Fit(event, theta, dict(n), thresholds, len(used))


def judged(cat: IndicatorSet) -> IndicatorSet:
    """``cat`` with its judged strengths and thresholds back where a fit replaced them: what
    a fit starts from, so that refitting does not drift from the judgement."""
    inds = tuple(replace(i, lr={**i.lr, **i.lr_judged}, lr_absent={**i.lr_absent,
                                                                     **i.lr_absent_judged})
                 for i in cat.indicators)
    events = {k: replace(e, levels={**e.levels, **e.levels_judged})
              for k, e in cat.events.items()}
    return replace(cat, indicators=inds, events=events)


def apply_fits(cat: IndicatorSet, fits: Iterable[Fit]) -> IndicatorSet:
    """``cat`` with the fitted strengths (each range keeps its judged width around the new
    central value) and thresholds."""
    inds = {i.id: i for i in cat.indicators}
    events = dict(cat.events)
    for f in fits:
        for k, v in f.log_lr.items():
            ind_id, event, denied = _split(k)
            inds[ind_id] = _with_ratio(inds[ind_id], event, denied, math.exp(v))
        ev = events[f.event]
        events[f.event] = replace(ev, levels={**ev.levels, **f.thresholds},
                                  levels_judged=ev.levels_judged or {
                                      lv: ev.threshold(lv) for lv in LEVELS[f.event]})
    return replace(cat, indicators=tuple(inds[i.id] for i in cat.indicators), events=events)


def _with_ratio(ind: Indicator, event: str, denied: bool, value: float) -> Indicator:
    if denied:
        judged_abs = {**ind.lr_absent, **ind.lr_absent_judged}
        return replace(ind, lr_absent={**ind.lr_absent, event: _sig(min(value, 1.0))},
                       lr_absent_judged=judged_abs)
    lo, mid, hi = ind.lr_judged.get(event, ind.lr[event])
    c = _sig(value)
    new = (_sig(c * lo / mid), c, _sig(c * hi / mid))
    return replace(ind, lr={**ind.lr, event: new},
                   lr_judged={**ind.lr, **ind.lr_judged})


def _sig(x: float) -> float:
    """``x`` to three significant figures (a strength is no more precise than that)."""
    return float(f"{x:.3g}")


#: Indicators of what a report *concludes* (:func:`~.evidence.from_stated`).  They are not
#: fitted: the labels are the reports' conclusions, so fitting them would teach the
#: assessment to echo the reader's stated judgement and drain the strength of what reports
#: show (a burn scar, a notice), which is all sitewatch has where no analyst has written.
JUDGED_PREFIX = "judged_"


def observable(cat: IndicatorSet) -> IndicatorSet:
    """``cat`` without the report-conclusion indicators: what the fit is made on."""
    return replace(cat, indicators=tuple(i for i in cat.indicators
                                         if not i.id.startswith(JUDGED_PREFIX)))


def fit_all(items: Sequence[Labelled], cat: IndicatorSet,
            feats: Mapping[str, Mapping[str, Features]] | None = None) -> list[Fit]:
    """Fits of both events on ``items`` (``feats``: precomputed, by item name and event),
    made on what the reports show (:func:`observable`)."""
    seen = observable(cat)
    feats = feats or {it.name: {ev: features(it, seen, ev) for ev in EVENTS} for it in items}
    return [fit_event([(feats[it.name][ev], it.labels[ev]) for it in items], seen, ev)
            for ev in EVENTS]


def leave_one_out(items: Sequence[Labelled], cat: IndicatorSet
                  ) -> tuple[dict[str, Outcome], dict[str, list[Fit]]]:
    """Per event the predictions of each report by a fit on all the others, assessed with the
    real assessment under the refitted strengths (the report-conclusion indicators at their
    judged strengths); and the fits, by held-out report."""
    seen = observable(cat)
    feats = {it.name: {ev: features(it, seen, ev) for ev in EVENTS} for it in items}
    outcomes = {ev: Outcome(ev) for ev in EVENTS}
    fits_by: dict[str, list[Fit]] = {}
    for i, held in enumerate(items):
        rest = [it for j, it in enumerate(items) if j != i]
        fits = fit_all(rest, cat, feats)
        fits_by[held.name] = fits
        _record(outcomes, held, apply_fits(cat, fits))
    return outcomes, fits_by


def in_sample(items: Sequence[Labelled], cat: IndicatorSet) -> dict[str, Outcome]:
    """Per event the predictions of each report under ``cat`` as it is (nothing refitted)."""
    outcomes = {ev: Outcome(ev) for ev in EVENTS}
    for it in items:
        _record(outcomes, it, cat)
    return outcomes


def _record(outcomes: Mapping[str, Outcome], item: Labelled, cat: IndicatorSet) -> None:
    """Assess ``item`` under ``cat`` and add its level and likelihood per event."""
    a = assess_reading(item.reading, indicator_set=cat, at=item.at)
    for ev in EVENTS:
        o = outcomes[ev]
        o.names.append(item.name)
        o.labels.append(item.labels[ev])
        o.levels.append(a.event(ev).level)
        o.likelihoods.append(a.event(ev).likelihood)


# -- writing the fit into an indicator file -------------------------------------------------

_MARK = re.compile(r" \[(?:fitted|judgement)[^\]]*\]")


def _inline(d: Mapping[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, tuple | list):
            return "[" + ", ".join(f"{float(x):g}" for x in v) + "]"
        return f"{float(v):g}"
    return "{ " + ", ".join(f"{k} = {one(v)}" for k, v in d.items()) + " }"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fitted_note(ind: Indicator, fits: Sequence[Fit], corpus: str) -> str:
    parts = []
    for f in fits:
        for denied in (False, True):
            k = key(ind.id, f.event, denied)
            if k not in f.log_lr:
                continue
            what = f"lr_absent.{f.event}" if denied else f"lr.{f.event}"
            judged = (ind.lr_absent_judged.get(f.event) if denied
                      else ind.lr_judged.get(f.event, (0, 0, 0))[1])
            now = ind.lr_absent.get(f.event) if denied else ind.lr[f.event][1]
            parts.append(f"{what} judged {judged:g}, fitted {now:g} (shown by {f.n.get(k, 0)} "
                         f"of the {f.reports} reports)")
    if not parts:
        return " [judgement: no report in the calibration set shows it]"
    return (f" [fitted on {corpus}: " + "; ".join(parts) + "; the judgement was the prior "
            "and the range keeps its width; see docs/bench_calibration.md]")


def write_fit(text: str, cat: IndicatorSet, fits: Sequence[Fit], corpus: str) -> str:
    """The indicator file ``text`` with ``cat``'s (fitted) strengths and thresholds and an
    honest basis per strength: what was fitted, on what, with how many reports."""
    blocks = re.split(r"(?m)^(?=\[\[indicator\]\]|\[events\.)", text)
    out = []
    for b in blocks:
        m = re.match(r"\[events\.(\w+)\]", b)
        if m and m.group(1) in cat.events:
            out.append(_write_event(b, cat.events[m.group(1)], fits, corpus))
            continue
        m = re.search(r'(?m)^id = "([a-z0-9_]+)"', b) if b.startswith("[[indicator]]") else None
        if m is None:
            out.append(b)
            continue
        ind = cat.indicator(m.group(1))
        b = _set_line(b, "lr", _inline({k: v for k, v in ind.lr.items()}))
        if ind.lr_absent:
            b = _set_line(b, "lr_absent", _inline(ind.lr_absent))
        b = _set_line(b, "lr_judged", _inline(ind.lr_judged) if ind.lr_judged else None,
                      after="lr")
        b = _set_line(b, "lr_absent_judged",
                      _inline(ind.lr_absent_judged) if ind.lr_absent_judged else None,
                      after="lr_absent" if ind.lr_absent else "lr")
        basis = _MARK.sub("", ind.basis) + _fitted_note(ind, fits, corpus)
        b = _set_line(b, "basis", _toml_str(basis))
        out.append(b)
    return "".join(out)


def _write_event(b: str, ev: EventPrior, fits: Sequence[Fit], corpus: str) -> str:
    f = next((f for f in fits if f.event == ev.event), None)
    if f is None:
        return b
    b = _set_line(b, "levels", _inline({k: round(v, 3) for k, v in ev.levels.items()}),
                  after="basis")
    b = _set_line(b, "levels_judged", _inline(ev.levels_judged), after="levels")
    note = (f"Fitted on {corpus} (the {f.reports} whose site can have the event) by agreement "
            f"with each report's own conclusion, less {THRESHOLD_PENALTY:g} report per unit of "
            "log-odds moved from the judgement (levels_judged: imminent or recent test from "
            "0.5, the next level from 1.5 x the prior); see docs/bench_calibration.md.")
    return _set_line(b, "levels_basis", _toml_str(note), after="levels_judged")


def _set_line(block: str, name: str, value: str | None, after: str | None = None) -> str:
    """Set (or, for None, drop) the line ``name = ...`` of a TOML block; a new line goes
    after the line ``after = ...`` (else at the block's end)."""
    pat = re.compile(rf"(?m)^{re.escape(name)} = .*\n?")
    if value is None:
        return pat.sub("", block)
    line = f"{name} = {value}\n"
    if pat.search(block):
        return pat.sub(lambda _m: line, block, count=1)
    if after is not None:
        m = re.search(rf"(?m)^{re.escape(after)} = .*\n", block)
        if m:
            return block[:m.end()] + line + block[m.end():]
    return block.rstrip("\n") + "\n" + line + ("\n" if block.endswith("\n\n") else "")


__all__ = [
    "BINS",
    "JUDGED_PREFIX",
    "POSITIVE",
    "Features",
    "Fit",
    "Labelled",
    "Outcome",
    "agrees",
    "apply_fits",
    "features",
    "fit_all",
    "fit_event",
    "fit_log_lr",
    "fit_thresholds",
    "in_sample",
    "judged",
    "key",
    "leave_one_out",
    "logit",
    "observable",
    "prior_of",
    "sigmoid",
    "write_fit",
]
