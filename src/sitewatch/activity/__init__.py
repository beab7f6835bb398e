"""Watching over time: each part's activity series, its normal level, departures from it
and change points (see ``docs/DESIGN.md``).

* :mod:`.baseline`: a part's normal level and spread from its own history (robust; an annual
  cycle when a year or more is observed), and how unusual a new observation is, honest about
  short histories.
* :mod:`.alerts`: graded alerts (info / watch / warning) with readable text and stable ids.
* :mod:`.changepoints`: persistent new levels (construction, razing) and spikes (transient
  activity) in a series, after the annual cycle is taken out.
"""

from .alerts import Alert, from_changepoint, from_departure, tier_for
from .baseline import Baseline, Departure, days, fit_baseline
from .changepoints import ChangePoint, find_changepoints

__all__ = ["Alert", "Baseline", "ChangePoint", "Departure", "days", "find_changepoints",
           "fit_baseline", "from_changepoint", "from_departure", "tier_for"]
