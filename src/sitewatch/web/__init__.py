"""The web view: ``sitewatch serve`` (FastAPI + uvicorn, the ``web`` extra).

A thin layer over the library, in small modules:

* :mod:`.app`: the application (security headers, host check, size limits, error shape);
* :mod:`.errors`: the one table from error class to HTTP status and code;
* :mod:`.auth`: the bearer token every write needs (created on first start, mode 0600);
* :mod:`.api`: the JSON API under ``/api/`` (OpenAPI at ``/api/openapi.json``);
* :mod:`.views`: the records the API returns, built from the store (no HTTP in them);
* :mod:`.tiles`: map tiles of stored scenes on the site grid, masks hatched;
* :mod:`.pages`: the HTML pages; their scripts, styles and Leaflet are in ``static/``.

Nothing here is imported by the core: ``import sitewatch`` never needs FastAPI.
"""

__all__: list[str] = []
