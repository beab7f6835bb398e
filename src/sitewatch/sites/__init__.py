"""Sites and their named parts: the site-file format (:mod:`~sitewatch.sites.site`) and the
built-in sites (``builtin/*.geojson``)."""

__all__: list[str] = []
