"""The simulated launch site with ground truth, the demo that runs the real pipeline on it,
and the scoring of alerts against planted events.

* :mod:`~sitewatch.sim.simulate`: :func:`~sitewatch.sim.simulate.simulate_scenario` writes a
  SIMULATED scenario folder (scenes, ground truth, README); it re-exports the public types.
  Its steps: :mod:`~sitewatch.sim.scenario` (types, constants, reading a folder back),
  :mod:`~sitewatch.sim.plan` (the scripted events, the acquisition schedule),
  :mod:`~sitewatch.sim.truth` (the static truth scene on a fine grid),
  :mod:`~sitewatch.sim.render` (one acquisition: events painted, sensor, clouds, GeoTIFF).
* :mod:`~sitewatch.sim.demo`: simulate, ingest, one ``run_site``, then what the store holds
  beside the ground truth, the assessment story and the brief.
* :mod:`~sitewatch.sim.evaluate`: stored alerts scored against planted changes.
"""

__all__: list[str] = []
