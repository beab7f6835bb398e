"""Change points in a part's activity series: a persistent new level, or a spike.

A persistent new level (construction finished, a building razed, a pad resurfaced) and a
spike (vehicles for a day, a fire, one cloudy mis-detection) need different responses, so
they are told apart:

1. the annual cycle, if the series' :class:`~.baseline.Baseline` has one, is taken out and
   the residuals are put in units of the baseline's robust spread;
2. level shifts are segment boundaries found by PELT with an L1 cost (``ruptures``): L1
   makes a single outlier too cheap to split off, so spikes do not pose as new levels;
3. a spike is one or two observations at least ``spike_z`` from the level of their
   segment, with the series back at that level afterwards;
4. a departure at the last observed date (or a shift with a single date after it) is
   ``unconfirmed``: only the next usable scene can say whether it persists.

Dates without an observation (NaN) are skipped; indices refer to the input positions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sitewatch.robust import mad
from sitewatch.times import iso
from sitewatch.watch.baseline import Baseline, BaselineError, fit_baseline, series_arrays

#: Kinds of change point.
KINDS = ("level_shift", "spike", "unconfirmed")
#: PELT penalty per change point, in robust-spread units (times log n): a shift of 3 spreads
#: lasting 3 dates is found in a series of 100; noise alone rarely splits (tested).
PENALTY = 2.0


@dataclass(frozen=True)
class ChangePoint:
    """``index``/``time``: the first observation of the new regime (or the spike);
    ``kind``: level_shift | spike | unconfirmed; ``before``: the level before; ``after``:
    the new level (level_shift), or the value at the spike; ``size``: (after - before) in
    units of the baseline's spread (signed); ``length``: observed dates in the new regime
    (or in the spike)."""

    index: int
    time: str
    kind: str
    before: float
    after: float
    size: float
    length: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(d: float) -> str:
    """Days since the epoch as the stored ISO form (UTC, with its ``Z``)."""
    return iso(datetime.fromtimestamp(round(d * 86400), UTC))


def find_changepoints(times: Any, values: Any, *, baseline: Baseline | None = None,
                      floor: float = 0.0, min_size: float = 3.0, spike_z: float = 4.0,
                      penalty: float = PENALTY) -> list[ChangePoint]:
    """Level shifts, spikes and unconfirmed departures in a series, in time order.

    ``baseline``: supplies the annual cycle to take out (default: fitted here with
    ``floor``).  Sizes are in spreads: the noise of successive differences, never below
    ``floor``.  ``min_size``: the smallest level shift reported; ``spike_z``: how far a
    spike lies from its segment's level.
    """
    import ruptures

    t, v = series_arrays(times, values)
    order = np.argsort(t, kind="stable")
    if not np.array_equal(order, np.arange(t.size)):
        raise BaselineError("times must be in increasing order")
    idx = np.flatnonzero(np.isfinite(v))
    if idx.size < 3:
        return []
    b = baseline or fit_baseline(t, v, floor=floor)
    r = v[idx] - b.expected(t[idx])  # deseasonalised
    # The noise from successive differences: a level shift or a spike moves only one or two
    # of them, so unlike the series' own spread it is not inflated by the changes sought.
    d = np.diff(r)
    noise = float(mad(d)) / math.sqrt(2.0)
    noise = max(noise, floor, b.floor) or (b.scale if b.scale > 0 else 1.0)
    r = r / noise  # in spreads
    n = r.size
    algo = ruptures.Pelt(model="l1", min_size=1, jump=1).fit(r)
    ends = algo.predict(pen=penalty * math.log(n))
    starts = [0, *ends[:-1]]
    segs = list(zip(starts, ends, strict=True))
    med = [float(np.median(r[s:e])) for s, e in segs]
    out: list[ChangePoint] = []
    spike_segs: set[int] = set()

    def level(k: int) -> float:  # level of segment k in the series' units
        s, e = segs[k]
        return float(np.median(v[idx[s:e]]))

    # Short segments between two at the same level are spikes, not two shifts.
    for k in range(1, len(segs) - 1):
        s, e = segs[k]
        if e - s <= 2 and abs(med[k + 1] - med[k - 1]) < min_size \
                and abs(med[k] - med[k - 1]) >= spike_z:
            spike_segs.add(k)
            peak = s + int(np.argmax(np.abs(r[s:e] - med[k - 1])))
            out.append(ChangePoint(int(idx[peak]), _iso(t[idx[peak]]), "spike", level(k - 1),
                                   float(v[idx[peak]]), float(r[peak] - med[k - 1]), e - s))
    prev = 0
    for k in range(1, len(segs)):
        if k in spike_segs:
            continue
        if k - 1 in spike_segs:
            continue  # the level after a spike is the one before it
        size = med[k] - med[prev]
        s, e = segs[k]
        if abs(size) >= min_size:
            kind = "unconfirmed" if e - s < 2 and e == n else "level_shift"
            out.append(ChangePoint(int(idx[s]), _iso(t[idx[s]]), kind, level(prev), level(k),
                                   float(size), e - s))
        prev = k
    # Departures of one or two dates inside a segment (L1 does not split them off).
    for k, (s, e) in enumerate(segs):
        if k in spike_segs or e - s < 2:
            continue
        dev = r[s:e] - med[k]
        far = np.abs(dev) >= spike_z
        j = 0
        while j < far.size:
            if not far[j]:
                j += 1
                continue
            run_end = j
            while run_end + 1 < far.size and far[run_end + 1] \
                    and np.sign(dev[run_end + 1]) == np.sign(dev[j]):
                run_end += 1
            length = run_end - j + 1
            peak = j + int(np.argmax(np.abs(dev[j:run_end + 1])))
            i = s + peak
            if s + run_end == n - 1 and length == 1:
                kind = "unconfirmed"  # the newest date: the next scene will tell
            elif length <= 2 and s + run_end < n - 1:
                kind = "spike"
            else:
                kind = ""  # a longer run that PELT found too small to split: not reported
            if kind:
                out.append(ChangePoint(int(idx[s + j]) if kind == "unconfirmed" else
                                       int(idx[i]), _iso(t[idx[i]]), kind, level(k),
                                       float(v[idx[i]]), float(dev[peak]), length))
            j = run_end + 1
    out.sort(key=lambda c: c.index)
    return out

__all__ = ["KINDS", "PENALTY", "ChangePoint", "find_changepoints"]
