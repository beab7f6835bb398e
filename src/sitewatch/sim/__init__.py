"""The simulated launch site with ground truth, the demo that runs the real pipeline on it,
and the scoring of alerts against planted events (:mod:`~sitewatch.sim.evaluate`)."""
