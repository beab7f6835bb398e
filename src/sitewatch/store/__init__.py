"""The catalogue database (SQLAlchemy Core; a SQLite file by default), split by area:

* :mod:`~sitewatch.store.schema`: every table and the migrations, in one place;
* :mod:`~sitewatch.store.base`: opening a database, the schema check, transactions;
* :mod:`~sitewatch.store.scenes`: the scene catalogue (sites, scenes, registrations, grids);
* :mod:`~sitewatch.store.results`: what ``sitewatch run`` keeps (processed scenes,
  observations, runs, alerts);
* :mod:`~sitewatch.store.collateral`: reports, notes and evidence;
* :mod:`~sitewatch.store.sources`: STAC sources and the Items a sync has settled.
* :mod:`~sitewatch.store.parts`: every geometry a site's parts have had.

:class:`Store` is one handle on all of them.
"""

from __future__ import annotations

from sitewatch.store.base import DB_NAME
from sitewatch.store.collateral import CollateralStore, report_id
from sitewatch.store.parts import PartStore, PartVersion
from sitewatch.store.results import ResultStore
from sitewatch.store.scenes import SceneStore, SiteRow
from sitewatch.store.schema import SCHEMA_VERSION
from sitewatch.store.sources import SourceStore
from sitewatch.watch.records import ALERT_STATUSES


class Store(SourceStore, SceneStore, ResultStore, CollateralStore, PartStore):
    """The catalogue.  Use as a context manager, or call :meth:`close`.

    >>> with Store.open_path(":memory:") as store:
    ...     store.schema_version() == SCHEMA_VERSION
    True
    """


__all__ = ["ALERT_STATUSES", "DB_NAME", "SCHEMA_VERSION", "PartVersion", "SiteRow", "Store",
           "report_id"]
