"""Change detection between two images of a place.

* :mod:`~sitewatch.change.base`: the detector interface (fit on a sample, score any window),
  :class:`~sitewatch.change.base.ChangeMap` and the registry (``sitewatch methods``);
* :mod:`~sitewatch.change.optical` and :mod:`~sitewatch.change.sar`: the detectors;
* :mod:`~sitewatch.change.normalise`: MAD / IR-MAD and relative radiometric normalisation;
* :mod:`~sitewatch.change.thresholds`: Otsu, Kittler-Illingworth, significance levels;
* :mod:`~sitewatch.change.post`: cleaning and change polygons with area;
* :mod:`~sitewatch.change.detect`: a pair of arrays in memory;
  :mod:`~sitewatch.change.tiled`: two whole scenes window by window (``sitewatch detect``);
* :mod:`~sitewatch.change.learned`, :mod:`~sitewatch.change.modelfile` (its model file) and
  :mod:`~sitewatch.change.training`: the trained classifier (``sitewatch train``,
  ``detect --model``).
"""

from sitewatch.change.base import ChangeMap, Detector, MethodError, get_detector, methods
from sitewatch.change.detect import detect_arrays

__all__ = ["ChangeMap", "Detector", "MethodError", "detect_arrays", "get_detector", "methods"]
