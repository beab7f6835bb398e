"""sitewatch: watch facilities from orbit.

The package keeps a catalogue of every image of a site, puts each image on the site's grid,
measures change for every named part of the site, raises alerts, reads collateral reports
into evidence, assesses what is coming and writes a brief.  Data flows one way, through
sub-packages named after the stage:

    sites -> imagery (scenes, ingest, grid, masks, coregister) -> change -> watch (pipeline,
    zonal, baselines, alerts) -> warning (reports, evidence, assessment) -> report (brief)

with :mod:`sitewatch.store` keeping what each stage produced and :mod:`sitewatch.cli` the
command line on top.  The names below are what a Python user needs; they are imported on
first use, so ``import sitewatch`` stays light::

    import sitewatch as sw
    with sw.Store.open_home("~/.sitewatch") as store:
        sw.ingest(store, ["scenes/"], "sohae")
        report = sw.run_site(store, "sohae")

The core library never prints; it logs (``logging.getLogger("sitewatch")``) and reports
progress through callbacks.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: Public name -> the module that defines it.
_FACADE = {
    "SitewatchError": "sitewatch.errors",
    "Site": "sitewatch.sites.site",
    "Part": "sitewatch.sites.site",
    "load_site": "sitewatch.sites.site",
    "builtin_site": "sitewatch.sites.site",
    "Scene": "sitewatch.imagery.scenes",
    "ingest": "sitewatch.imagery.ingest",
    "site_grid": "sitewatch.imagery.grid",
    "load_scene": "sitewatch.imagery.grid",
    "register": "sitewatch.imagery.coregister",
    "detect_arrays": "sitewatch.change.detect",
    "detect_scenes": "sitewatch.change.tiled",
    "RunParams": "sitewatch.watch.pipeline",
    "run_site": "sitewatch.watch.pipeline",
    "build_timeline": "sitewatch.watch.timeline",
    "read_file": "sitewatch.warning.collateral",
    "add_report": "sitewatch.warning.record",
    "add_note": "sitewatch.warning.record",
    "assess_site": "sitewatch.warning.record",
    "write_brief": "sitewatch.report.brief",
    "Store": "sitewatch.store",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from sitewatch.change.detect import detect_arrays
    from sitewatch.change.tiled import detect_scenes
    from sitewatch.errors import SitewatchError
    from sitewatch.imagery.coregister import register
    from sitewatch.imagery.grid import load_scene, site_grid
    from sitewatch.imagery.ingest import ingest
    from sitewatch.imagery.scenes import Scene
    from sitewatch.report.brief import write_brief
    from sitewatch.sites.site import Part, Site, builtin_site, load_site
    from sitewatch.store import Store
    from sitewatch.warning.collateral import read_file
    from sitewatch.warning.record import add_note, add_report, assess_site
    from sitewatch.watch.pipeline import RunParams, run_site
    from sitewatch.watch.timeline import build_timeline


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    module = _FACADE.get(name)
    if module is None:
        raise AttributeError(f"module 'sitewatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACADE])


__all__ = [
    "Part",
    "RunParams",
    "Scene",
    "Site",
    "SitewatchError",
    "Store",
    "__version__",
    "add_note",
    "add_report",
    "assess_site",
    "build_timeline",
    "builtin_site",
    "detect_arrays",
    "detect_scenes",
    "ingest",
    "load_scene",
    "load_site",
    "read_file",
    "register",
    "run_site",
    "site_grid",
    "write_brief",
]
