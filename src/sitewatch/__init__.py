"""sitewatch: watch facilities from orbit.

The package keeps a catalogue of every image of a site, puts each image on the site's grid and
measures change for every named part of the site.  Data flows one way:

    site file -> Site -> scene catalogue (store) -> site grid -> change -> per-part scores

The core library never prints; it logs (``logging.getLogger("sitewatch")``) and reports
progress through callbacks.  The command line lives in :mod:`sitewatch.cli`.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
