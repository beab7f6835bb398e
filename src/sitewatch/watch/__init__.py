"""Watching a site over time (``sitewatch run``).

In flow order:

* :mod:`~sitewatch.watch.pipeline`: each new scene loaded, registered, compared with the
  previous usable date and the rolling composite; results stored per scene;
* :mod:`~sitewatch.watch.zonal`: per-part statistics of one change map;
* :mod:`~sitewatch.watch.products`: the change maps kept as COGs for briefs;
* :mod:`~sitewatch.watch.baseline`, :mod:`~sitewatch.watch.changepoints`,
  :mod:`~sitewatch.watch.events`, :mod:`~sitewatch.watch.alerts`: each part's normal level,
  departures and change points, grouped into graded alerts;
* :mod:`~sitewatch.watch.sinks`: where new and updated alerts go (JSON lines, GeoJSON,
  webhook);
* :mod:`~sitewatch.watch.timeline`: a site's per-part timeline read back from the store.
"""

__all__: list[str] = []
