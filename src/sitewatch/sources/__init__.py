"""STAC imagery sources: where a site's scenes come from, and ``sitewatch sync``.

* :mod:`~sitewatch.sources.presets`: the public catalogues (Sentinel-2 L2A, Landsat C2 L2,
  Sentinel-1 RTC/GRD) and the asset -> band mapping;
* :mod:`~sitewatch.sources.access`: credentials, URL signing, timeouts and retries, redaction;
* :mod:`~sitewatch.sources.stac`: searching an API (pystac-client) and de-duplication;
* :mod:`~sitewatch.sources.cache`: reading only the site's window of a remote COG, cached;
* :mod:`~sitewatch.sources.items`: an Item and its cached windows as a scene;
* :mod:`~sitewatch.sources.sync`: :func:`~sitewatch.sources.sync.sync_site`.
"""

from __future__ import annotations

__all__: list[str] = []
