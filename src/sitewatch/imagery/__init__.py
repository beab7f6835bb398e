"""Imagery: from files on disk to pixels on the site's grid.

In flow order:

* :mod:`~sitewatch.imagery.naming`: what Sentinel-2 and Landsat file names say;
* :mod:`~sitewatch.imagery.bands`: sensor band tables and common band names;
* :mod:`~sitewatch.imagery.sensors`: per kind of sensor (optical, SAR), the bands compared,
  the registration band, the true-colour bands, the smallest shift applied, default detectors;
* :mod:`~sitewatch.imagery.scenes`: finding scenes in files and folders, checked ``Scene``
  records;
* :mod:`~sitewatch.imagery.ingest`: files -> checked records -> the scene catalogue;
* :mod:`~sitewatch.imagery.masks`: provider quality bands to ``Quality`` codes;
* :mod:`~sitewatch.imagery.geo` and :mod:`~sitewatch.imagery.grid`: the site grid and loading a
  scene onto it (window read, one warp, reflectance, masks);
* :mod:`~sitewatch.imagery.coregister`: sub-pixel shifts between scenes, checked locally.
"""

__all__: list[str] = []
