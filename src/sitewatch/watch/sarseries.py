"""SAR series in the watch: the sequential omnibus test over a part's recent dates of one orbit.

Each SAR grid of a site holds the scenes of one relative orbit and direction
(:func:`sitewatch.watch.grids.grid_key`).  At each new usable date, besides the log-ratio
against the previous date of that orbit (and against the rolling composite), the omnibus
test (:func:`sitewatch.change.sar.omnibus_stack`) runs over the new date and up to
:data:`OMNIBUS_DATES` - 1 usable dates before it.  What it finds per part
(:func:`sitewatch.watch.zonal.omnibus_parts`: whether and when the part first changed in the
series, with p-values) joins the measures of the part's observation against the previous
date; the share it flags at the new date, beyond the rest of the site, is scored like the
log-ratio's changed share (``changed_excess_omnibus``, :mod:`sitewatch.watch.events`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sitewatch.change.base import MethodError
from sitewatch.change.sar import omnibus_stack
from sitewatch.imagery.grid import GridImage
from sitewatch.imagery.scenes import Scene
from sitewatch.watch.records import Observation
from sitewatch.watch.zonal import omnibus_parts

if TYPE_CHECKING:
    from sitewatch.watch.grids import GridRun

log = logging.getLogger(__name__)

#: The sequential omnibus test runs over at most this many dates of one SAR series (the new
#: date and the usable dates before it), at this per-pixel false-alarm rate.
OMNIBUS_DATES = 8
OMNIBUS_ALPHA = 0.01


def omnibus_observations(g: GridRun, sc: Scene, img: GridImage, before: Sequence[str],
             obs: list[Observation]) -> tuple[list[Observation], dict[str, Any]]:
    """The sequential omnibus test over the SAR series ``before`` + ``sc`` (one orbit): its
    per-part findings (:func:`~sitewatch.watch.zonal.omnibus_parts`) join the measures of
    the observations against the previous date, and what it ran on is returned for the
    processed record.  A series on which it cannot run (too few looks to estimate) is
    noted there; the log-ratio results stand."""
    window = int(g.method_params.get("window", 3))
    members = [*before, sc.id]
    try:
        images = [g.aligned(i).data for i in before] + [img.data]
        res = omnibus_stack(images, window=window, alpha=OMNIBUS_ALPHA)
    except MethodError as exc:
        log.warning("%s: omnibus test not run: %s", sc.id, exc)
        return obs, {"members": members, "error": str(exc)}
    per = omnibus_parts(res, g.zones, window)
    times = {s.id: s.acquired for s in g.scenes}
    out = []
    for o in obs:
        m = per.get(o.part) if o.reference == "previous" else None
        if m is not None:
            first = m["omnibus_first"]
            extra = dict(m)
            if isinstance(first, int) and first >= 0:
                extra["omnibus_first_days"] = (
                    sc.acquired - times[members[first]]).total_seconds() / 86400.0
            o = replace(o, measures={**o.measures, **extra})
        out.append(o)
    return out, {"members": members, "enl": round(res.enl, 3), "alpha": res.alpha,
                 "window": window}


__all__ = ["OMNIBUS_ALPHA", "OMNIBUS_DATES", "omnibus_observations"]
