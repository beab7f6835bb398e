"""The catalogue database: sites and scenes, in SQLite by default.

Written with SQLAlchemy Core (no ORM) so that a PostgreSQL URL can follow without changes to
callers.  The schema carries a version in the ``meta`` table; opening a database made by a
newer sitewatch is refused rather than risked.  Every write is one transaction: an
interrupted ingest leaves whole scenes or none, and re-running completes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from sitewatch.errors import StoreError
from sitewatch.imagery.scenes import Scene, iso, parse_time
from sitewatch.sites.site import Site, loads_site

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
DB_NAME = "sitewatch.db"

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

sites_table = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("site_type", sa.String(64), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # builtin | file | bare
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("geojson", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

scenes_table = sa.Table(
    "scenes",
    metadata,
    sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), primary_key=True),
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("acquired", sa.String(32), nullable=False, index=True),
    sa.Column("sensor", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the full Scene as JSON
    sa.Column("ingested_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("site_id", "source", name="uq_scene_source"),
)


registrations_table = sa.Table(
    "registrations",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("scene_id", sa.String(128), primary_key=True),
    sa.Column("grid", sa.String(64), primary_key=True),  # e.g. "10m": one grid per resolution
    sa.Column("reference_id", sa.String(128), nullable=False),
    sa.Column("dy", sa.Float, nullable=False),
    sa.Column("dx", sa.Float, nullable=False),
    sa.Column("reliability", sa.Float, nullable=False),
    sa.Column("residual_px", sa.Float, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # the full Registration as JSON
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.ForeignKeyConstraint(["site_id", "scene_id"], ["scenes.site_id", "scenes.id"],
                            ondelete="CASCADE"),
)


#: Per site and grid, the scene every other scene of that grid is co-registered to.
grids_table = sa.Table(
    "grids",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("grid", sa.String(64), primary_key=True),
    sa.Column("reference_id", sa.String(128), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

#: One row per scene processed by ``sitewatch run`` with one set of parameters.  Written in
#: the same transaction as the scene's observations: a scene is processed wholly or not.
processed_table = sa.Table(
    "processed",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("scene_id", sa.String(128), primary_key=True),
    sa.Column("params_hash", sa.String(16), primary_key=True),
    sa.Column("grid", sa.String(64), nullable=False),
    sa.Column("acquired", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # see pipeline.STATUSES
    sa.Column("previous_id", sa.String(128), nullable=True),
    sa.Column("chain", sa.Text, nullable=False),  # JSON: what the result depends on
    sa.Column("params", sa.Text, nullable=False),  # JSON: the parameters (provenance)
    sa.Column("detail", sa.Text, nullable=False),  # JSON: reasons, registration, thresholds
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.ForeignKeyConstraint(["site_id", "scene_id"], ["scenes.site_id", "scenes.id"],
                            ondelete="CASCADE"),
)

#: Per scene, part and reference (previous usable date, rolling composite, or none): the
#: part's measures (zonal.PartChange as JSON, NaN as null).
observations_table = sa.Table(
    "observations",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("scene_id", sa.String(128), primary_key=True),
    sa.Column("params_hash", sa.String(16), primary_key=True),
    sa.Column("part", sa.Text, primary_key=True),
    sa.Column("reference", sa.String(16), primary_key=True),  # previous | composite | none
    sa.Column("grid", sa.String(64), nullable=False),
    sa.Column("acquired", sa.String(32), nullable=False, index=True),
    sa.Column("reference_id", sa.String(128), nullable=True),
    sa.Column("observed_fraction", sa.Float, nullable=False),
    sa.Column("changed_fraction", sa.Float, nullable=True),
    sa.Column("measures", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["site_id", "scene_id", "params_hash"],
                            ["processed.site_id", "processed.scene_id",
                             "processed.params_hash"], ondelete="CASCADE"),
)

#: Alerts with their lifecycle: new -> seen -> dismissed (with a reason) | confirmed.
alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("part", sa.Text, nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("start", sa.String(32), nullable=False),  # the usable date before the event
    sa.Column("end", sa.String(32), nullable=False),  # the last date showing it
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("params_hash", sa.String(16), nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the full Alert as JSON
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

#: Every ``sitewatch run``: its parameters and what it did (provenance of the results).
runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("params_hash", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("finished_at", sa.String(32), nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
)

#: Collateral reports added to a site: the visible text as read (untrusted: shown escaped),
#: its checksum, and what the reader made of it.
reports_table = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("published", sa.String(32), nullable=True),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("reading", sa.Text, nullable=False),  # JSON
    sa.Column("added_at", sa.String(32), nullable=False),
)

#: Evidence from reports, notices and analyst notes (imagery evidence is derived from the
#: alerts each time, so it follows their status).
evidence_table = sa.Table(
    "evidence",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(16), nullable=False, index=True),  # report or note id
    sa.Column("time", sa.String(32), nullable=True),
    sa.Column("indicator", sa.String(64), nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the Evidence as JSON
    sa.Column("added_at", sa.String(32), nullable=False),
)

#: Analyst notes: what a person saw or knows, with the part and date it is about.
notes_table = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("part", sa.Text, nullable=True),
    sa.Column("date", sa.String(32), nullable=False),
    sa.Column("author", sa.Text, nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("added_at", sa.String(32), nullable=False),
)

ALERT_STATUSES = ("new", "seen", "dismissed", "confirmed")


def _now() -> str:
    return iso(datetime.now(UTC))


@dataclass(frozen=True)
class SiteRow:
    """A stored site with its bookkeeping."""

    site: Site
    origin: str
    created_at: str
    updated_at: str
    n_scenes: int = 0


class Store:
    """The catalogue.  Use as a context manager, or call :meth:`close`.

    >>> with Store.open_path(":memory:") as store:
    ...     store.schema_version() == SCHEMA_VERSION
    True
    """

    def __init__(self, url: str | sa.engine.URL):
        self.url = url if isinstance(url, str) else url.render_as_string()
        try:
            self.engine = sa.create_engine(url, future=True)
        except Exception as exc:
            raise StoreError(f"cannot open database {url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._init_schema()

    @classmethod
    def open_path(cls, path: str | Path) -> Store:
        """Open (creating if needed) the SQLite database at ``path`` (``":memory:"`` works)."""
        if str(path) == ":memory:":
            return cls("sqlite+pysqlite:///:memory:")
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the catalogue folder {p.parent}: {exc}") from None
        # URL.create, not string formatting: '?' or '%' in a folder name must stay a path.
        return cls(sa.engine.URL.create("sqlite+pysqlite", database=str(p)))

    @classmethod
    def open_home(cls, home: str | Path) -> Store:
        """Open the catalogue kept in a sitewatch home folder."""
        return cls.open_path(Path(home) / DB_NAME)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ schema

    def _init_schema(self) -> None:
        try:
            with self.engine.begin() as conn:
                insp = sa.inspect(conn)
                if not insp.has_table("meta"):
                    if insp.get_table_names():
                        raise StoreError(
                            f"{self.url}: database has tables but no sitewatch 'meta' table; "
                            "it is not a sitewatch catalogue"
                        )
                    metadata.create_all(conn)
                    conn.execute(
                        meta_table.insert(),
                        [{"key": "schema_version", "value": str(SCHEMA_VERSION)},
                         {"key": "created_at", "value": _now()}],
                    )
                    return
                version = self._version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.url}: database schema version {version} is newer than this "
                        f"sitewatch understands ({SCHEMA_VERSION}); upgrade sitewatch"
                    )
                for v in range(version, SCHEMA_VERSION):
                    MIGRATIONS[v](conn)
                    conn.execute(
                        meta_table.update().where(meta_table.c.key == "schema_version"),
                        {"value": str(v + 1)},
                    )
        except StoreError:
            raise
        except sa.exc.DatabaseError as exc:
            raise StoreError(f"{self.url}: not a usable database ({exc.orig})") from None

    @staticmethod
    def _version(conn: sa.Connection) -> int:
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).first()
        if row is None:
            raise StoreError("catalogue has no schema_version")
        return int(row[0])

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return self._version(conn)

    # ------------------------------------------------------------------ sites

    def put_site(self, site: Site, origin: str, conn: sa.Connection | None = None) -> str:
        """Insert or replace a site.  Returns ``"added"``, ``"updated"`` or ``"unchanged"``."""
        try:
            return self._put_site(site, origin, conn)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"site {site.id!r} could not be stored ({exc.orig}); another "
                             "sitewatch may be writing the catalogue: run the command again"
                             ) from None

    def _put_site(self, site: Site, origin: str, conn: sa.Connection | None) -> str:
        text = site.dumps()
        with self._conn(conn) as c:
            row = c.execute(
                sa.select(sites_table.c.geojson).where(sites_table.c.id == site.id)
            ).first()
            now = _now()
            values = {
                "name": site.name, "site_type": site.site_type, "origin": origin,
                "simulated": site.simulated, "geojson": text, "updated_at": now,
            }
            if row is None:
                c.execute(sites_table.insert().values(id=site.id, created_at=now, **values))
                return "added"
            if row[0] == text:
                return "unchanged"
            c.execute(sites_table.update().where(sites_table.c.id == site.id).values(**values))
            return "updated"

    def get_site(self, site_id: str) -> Site | None:
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(sites_table.c.geojson).where(sites_table.c.id == site_id)
            ).first()
        return loads_site(row[0], f"stored site {site_id!r}") if row else None

    def list_sites(self) -> list[SiteRow]:
        counts = (
            sa.select(scenes_table.c.site_id, sa.func.count().label("n"))
            .group_by(scenes_table.c.site_id)
            .subquery()
        )
        q = (
            sa.select(sites_table, sa.func.coalesce(counts.c.n, 0))
            .select_from(sites_table.outerjoin(counts, counts.c.site_id == sites_table.c.id))
            .order_by(sites_table.c.id)
        )
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return [
            SiteRow(
                loads_site(r.geojson, f"stored site {r.id!r}"),
                r.origin, r.created_at, r.updated_at, int(r[-1]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ scenes

    def put_scene(self, scene: Scene, conn: sa.Connection | None = None) -> str:
        """Insert a scene, or update the stored scene of that id when its record differs.

        Returns ``"added"``, ``"updated"`` (files, time, sensor, source... changed) or
        ``"unchanged"``.  A clash with another writer raises :class:`StoreError`; the
        transaction is rolled back, so nothing is half-written.
        """
        if scene.site_id is None:
            raise StoreError(f"scene {scene.id!r} has no site")
        record = json.dumps(scene.to_dict(), sort_keys=True)
        t = scenes_table
        try:
            with self._conn(conn) as c:
                row = c.execute(
                    sa.select(t.c.record).where(
                        (t.c.site_id == scene.site_id) & (t.c.id == scene.id))
                ).first()
                now = _now()
                values = {
                    "acquired": iso(scene.acquired), "sensor": scene.sensor,
                    "source": scene.source, "checksum": scene.checksum, "record": record,
                    "updated_at": now,
                }
                if row is None:
                    c.execute(t.insert().values(site_id=scene.site_id, id=scene.id,
                                                ingested_at=now, **values))
                    return "added"
                if row.record == record:
                    return "unchanged"
                c.execute(t.update().where((t.c.site_id == scene.site_id)
                                           & (t.c.id == scene.id)).values(**values))
                return "updated"
        except sa.exc.DBAPIError as exc:
            raise StoreError(
                f"scene {scene.id!r} of site {scene.site_id!r} could not be stored "
                f"({exc.orig}); another sitewatch may be writing the catalogue: nothing was "
                "half-written, run the command again"
            ) from None

    def put_registration(self, site_id: str, scene_id: str, grid: str, reference_id: str,
                         registration: Any) -> None:
        """Record (or replace) a scene's co-registration on a grid (e.g. ``"10m"``)."""
        t = registrations_table
        reg = registration
        values = {
            "reference_id": reference_id, "dy": reg.shift.dy, "dx": reg.shift.dx,
            "reliability": reg.reliability,
            "residual_px": None if reg.residual_px != reg.residual_px else reg.residual_px,
            "status": reg.status, "detail": json.dumps(reg.to_dict(), sort_keys=True),
            "created_at": _now(),
        }
        key = (t.c.site_id == site_id) & (t.c.scene_id == scene_id) & (t.c.grid == grid)
        with self.engine.begin() as c:
            c.execute(t.delete().where(key))
            c.execute(t.insert().values(site_id=site_id, scene_id=scene_id, grid=grid,
                                        **values))

    def registrations(self, site_id: str, grid: str | None = None) -> list[dict[str, Any]]:
        """Recorded co-registrations of a site's scenes, as dicts (scene_id, dy, dx, ...)."""
        t = registrations_table
        cond = t.c.site_id == site_id
        if grid is not None:
            cond &= t.c.grid == grid
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(cond).order_by(t.c.scene_id)).mappings().all()
        return [dict(r) for r in rows]

    def delete_scene(self, site_id: str, scene_id: str) -> bool:
        """Remove a scene record (its files are untouched).  True if it existed."""
        t, r = scenes_table, registrations_table
        o, pr = observations_table, processed_table
        with self.engine.begin() as c:
            c.execute(r.delete().where((r.c.site_id == site_id) & (r.c.scene_id == scene_id)))
            c.execute(o.delete().where((o.c.site_id == site_id) & (o.c.scene_id == scene_id)))
            c.execute(pr.delete().where((pr.c.site_id == site_id)
                                        & (pr.c.scene_id == scene_id)))
            res = c.execute(t.delete().where((t.c.site_id == site_id) & (t.c.id == scene_id)))
        return bool(res.rowcount)

    def find_scene(self, site_id: str, *, source: str | None = None,
                   checksum: str | None = None) -> Scene | None:
        """The scene of ``site_id`` read from ``source`` or with ``checksum``, if any."""
        t = scenes_table
        cond = t.c.site_id == site_id
        if source is not None:
            cond &= t.c.source == source
        if checksum is not None:
            cond &= t.c.checksum == checksum
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.c.record).where(cond).limit(1)).first()
        return Scene.from_dict(json.loads(row[0])) if row else None

    def scene_ids(self, site_id: str) -> set[str]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(scenes_table.c.id).where(scenes_table.c.site_id == site_id)
            ).all()
        return {r[0] for r in rows}

    def get_scene(self, site_id: str, scene_id: str) -> Scene | None:
        t = scenes_table
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(t.c.record).where((t.c.site_id == site_id) & (t.c.id == scene_id))
            ).first()
        return Scene.from_dict(json.loads(row[0])) if row else None

    def scenes(self, site_id: str, *, sensor: str | None = None,
               start: datetime | None = None, end: datetime | None = None) -> list[Scene]:
        """The site's scenes in time order, optionally of one sensor and in [start, end]."""
        t = scenes_table
        cond = t.c.site_id == site_id
        if sensor:
            cond &= t.c.sensor == sensor
        if start:
            cond &= t.c.acquired >= iso(start)
        if end:
            cond &= t.c.acquired <= iso(end)
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.record).where(cond).order_by(t.c.acquired, t.c.id))
            return [Scene.from_dict(json.loads(r[0])) for r in rows]

    # ------------------------------------------------------------------ runs and results

    def grid_reference(self, site_id: str, grid: str) -> str | None:
        """The scene a site's grid is co-registered to, once chosen."""
        t = grids_table
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.c.reference_id).where(
                (t.c.site_id == site_id) & (t.c.grid == grid))).first()
        return row[0] if row else None

    def set_grid_reference(self, site_id: str, grid: str, scene_id: str) -> None:
        t = grids_table
        with self.engine.begin() as c:
            c.execute(t.delete().where((t.c.site_id == site_id) & (t.c.grid == grid)))
            c.execute(t.insert().values(site_id=site_id, grid=grid, reference_id=scene_id,
                                        created_at=_now()))

    def processed(self, site_id: str, params_hash: str) -> dict[str, dict[str, Any]]:
        """Scenes of a site already processed with these parameters: id -> row (``chain``,
        ``params`` and ``detail`` decoded)."""
        t = processed_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(
                (t.c.site_id == site_id) & (t.c.params_hash == params_hash))).mappings().all()
        out = {}
        for r in rows:
            d = dict(r)
            for k in ("chain", "params", "detail"):
                d[k] = json.loads(d[k])
            out[d["scene_id"]] = d
        return out

    def put_result(self, site_id: str, scene_id: str, params_hash: str, *, grid: str,
                   acquired: str, status: str, previous_id: str | None,
                   chain: dict[str, Any], params: dict[str, Any], detail: dict[str, Any],
                   observations: list[dict[str, Any]]) -> None:
        """Store one scene's result and its per-part observations in one transaction,
        replacing any earlier result of the same scene and parameters."""
        pr, o = processed_table, observations_table
        key_p = ((pr.c.site_id == site_id) & (pr.c.scene_id == scene_id)
                 & (pr.c.params_hash == params_hash))
        key_o = ((o.c.site_id == site_id) & (o.c.scene_id == scene_id)
                 & (o.c.params_hash == params_hash))
        rows = [{
            "site_id": site_id, "scene_id": scene_id, "params_hash": params_hash,
            "part": ob["part"], "reference": ob["reference"], "grid": grid,
            "acquired": acquired, "reference_id": ob.get("reference_id"),
            "observed_fraction": float(ob["observed_fraction"]),
            "changed_fraction": _finite(ob.get("changed_fraction")),
            "measures": json.dumps(_nan_to_none(ob["measures"]), sort_keys=True),
        } for ob in observations]
        try:
            with self.engine.begin() as c:
                c.execute(o.delete().where(key_o))
                c.execute(pr.delete().where(key_p))
                c.execute(pr.insert().values(
                    site_id=site_id, scene_id=scene_id, params_hash=params_hash, grid=grid,
                    acquired=acquired, status=status, previous_id=previous_id,
                    chain=json.dumps(chain, sort_keys=True),
                    params=json.dumps(params, sort_keys=True),
                    detail=json.dumps(_nan_to_none(detail), sort_keys=True, default=str),
                    created_at=_now()))
                if rows:
                    c.execute(o.insert(), rows)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"results of scene {scene_id!r} could not be stored ({exc.orig}); "
                             "nothing was half-written: run the command again") from None

    def observations(self, site_id: str, params_hash: str, *, part: str | None = None,
                     reference: str | None = None) -> list[dict[str, Any]]:
        """Stored per-part observations in time order (``measures`` decoded; null -> NaN)."""
        o = observations_table
        cond = (o.c.site_id == site_id) & (o.c.params_hash == params_hash)
        if part is not None:
            cond &= o.c.part == part
        if reference is not None:
            cond &= o.c.reference == reference
        with self.engine.connect() as c:
            rows = c.execute(sa.select(o).where(cond).order_by(
                o.c.acquired, o.c.scene_id, o.c.part, o.c.reference)).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["measures"] = {k: (float("nan") if v is None else v)
                             for k, v in json.loads(d["measures"]).items()}
            if d["changed_fraction"] is None:
                d["changed_fraction"] = float("nan")
            out.append(d)
        return out

    def start_run(self, site_id: str, params_hash: str, params: dict[str, Any],
                  version: str) -> int:
        with self.engine.begin() as c:
            res = c.execute(runs_table.insert().values(
                site_id=site_id, params_hash=params_hash,
                params=json.dumps(params, sort_keys=True), version=version,
                started_at=_now()))
        return int(res.inserted_primary_key[0])

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(runs_table.update().where(runs_table.c.id == run_id).values(
                finished_at=_now(), summary=json.dumps(summary, sort_keys=True, default=str)))

    def last_run(self, site_id: str, *, finished: bool = False) -> dict[str, Any] | None:
        """The latest run of a site (its ``params`` decoded), or None."""
        t = runs_table
        cond = t.c.site_id == site_id
        if finished:
            cond &= t.c.finished_at.is_not(None)
        with self.engine.connect() as c:
            row = c.execute(sa.select(t).where(cond).order_by(t.c.id.desc()).limit(1)
                            ).mappings().first()
        if row is None:
            return None
        d = dict(row)
        d["params"] = json.loads(d["params"])
        d["summary"] = json.loads(d["summary"]) if d["summary"] else None
        return d

    # ------------------------------------------------------------------ alerts

    def alerts(self, site_id: str | None = None, *, status: str | tuple[str, ...] | None = None,
               part: str | None = None, params_hash: str | None = None
               ) -> list[dict[str, Any]]:
        """Stored alerts in time order (``record`` decoded), optionally of one parameter set."""
        t = alerts_table
        cond = sa.true()
        if params_hash is not None:
            cond &= t.c.params_hash == params_hash
        if site_id is not None:
            cond &= t.c.site_id == site_id
        if status:
            cond &= t.c.status.in_([status] if isinstance(status, str) else list(status))
        if part is not None:
            cond &= t.c.part == part
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(cond).order_by(t.c.time, t.c.part, t.c.id)
                             ).mappings().all()
        return [{**dict(r), "record": json.loads(r["record"])} for r in rows]

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert by id, or by a unique prefix of at least 4 characters."""
        t = alerts_table
        alert_id = alert_id.strip().lower()
        if len(alert_id) < 4:
            raise StoreError(f"alert id {alert_id!r} is too short (give at least 4 characters)")
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.id.startswith(alert_id, autoescape=True))
                             .limit(2)).mappings().all()
        if len(rows) > 1:
            raise StoreError(f"alert id {alert_id!r} is ambiguous: give more characters")
        return {**dict(rows[0]), "record": json.loads(rows[0]["record"])} if rows else None

    def put_alert(self, record: dict[str, Any], params_hash: str,
                  replaces: str | None = None) -> str:
        """Insert an alert, or update the stored one of the same id (or ``replaces``).

        Returns ``"new"``, ``"updated"`` (tier, kind, dates or text changed; the status and
        its reason are kept) or ``"unchanged"``.
        """
        t = alerts_table
        key = replaces or record["id"]
        values = {
            "site_id": record["site"], "part": record["part"], "time": record["time"],
            "start": record["start"], "end": record["end"], "tier": record["tier"],
            "kind": record["kind"], "params_hash": params_hash,
        }
        with self.engine.begin() as c:
            row = c.execute(sa.select(t).where(t.c.id == key)).mappings().first()
            now = _now()
            if row is None:
                c.execute(t.insert().values(
                    id=record["id"], status="new", reason=None,
                    record=json.dumps(_nan_to_none(record), sort_keys=True),
                    created_at=now, updated_at=now, **values))
                return "new"
            old = json.loads(row["record"])
            record = {**record, "id": row["id"]}
            text = json.dumps(_nan_to_none(record), sort_keys=True)
            if json.dumps(old, sort_keys=True) == text:
                return "unchanged"
            c.execute(t.update().where(t.c.id == row["id"]).values(
                record=text, updated_at=now, **values))
            return "updated"

    def delete_alerts(self, site_id: str) -> int:
        """Remove every alert of a site (the demo does, when its scenario changes)."""
        with self.engine.begin() as c:
            res = c.execute(alerts_table.delete().where(alerts_table.c.site_id == site_id))
        return int(res.rowcount or 0)

    def set_alert_status(self, alert_id: str, status: str, reason: str | None = None
                         ) -> dict[str, Any]:
        """Move an alert along its lifecycle; returns the updated alert."""
        if status not in ALERT_STATUSES:
            raise StoreError(f"unknown alert status {status!r}; use one of "
                             f"{', '.join(ALERT_STATUSES)}")
        found = self.get_alert(alert_id)
        if found is None:
            raise StoreError(f"no alert {alert_id!r} (see `sitewatch alerts SITE`)")
        t = alerts_table
        with self.engine.begin() as c:
            c.execute(t.update().where(t.c.id == found["id"]).values(
                status=status, reason=reason, updated_at=_now()))
        out = self.get_alert(found["id"])
        assert out is not None
        return out

    # ------------------------------------------------------------------ collateral

    def put_report(self, site_id: str, record: dict[str, Any], text: str, checksum: str,
                   evidence: list[dict[str, Any]]) -> tuple[str, bool]:
        """Store a report and its evidence in one transaction; ``(id, new)``.  The same text
        added again to the same site replaces its evidence (a newer reader may read more)."""
        rid = report_id(site_id, checksum)
        now = _now()
        with self.engine.begin() as c:
            exists = c.execute(sa.select(reports_table.c.id).where(
                reports_table.c.id == rid)).first() is not None
            values = {"site_id": site_id, "name": record.get("name", ""),
                      "title": record.get("title", ""), "published": record.get("published"),
                      "checksum": checksum, "text": text,
                      "reading": json.dumps(record, sort_keys=True)}
            if exists:
                c.execute(reports_table.update().where(reports_table.c.id == rid)
                          .values(**values))
            else:
                c.execute(reports_table.insert().values(id=rid, added_at=now, **values))
            self._replace_evidence(c, site_id, rid, evidence, now)
        return rid, not exists

    def _replace_evidence(self, c: sa.Connection, site_id: str, source_id: str,
                          evidence: list[dict[str, Any]], now: str) -> None:
        e = evidence_table
        c.execute(e.delete().where(e.c.source_id == source_id))
        rows = {}
        for item in evidence:
            rows[item["id"]] = {
                "id": item["id"], "site_id": site_id, "kind": item["kind"],
                "source_id": source_id, "time": item.get("time"),
                "indicator": item["indicator"],
                "record": json.dumps(_nan_to_none(item), sort_keys=True), "added_at": now}
        if rows:
            c.execute(e.insert(), list(rows.values()))

    def reports(self, site_id: str) -> list[dict[str, Any]]:
        """Reports added to a site, by publication date (``reading`` decoded; no text)."""
        t = reports_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.id, t.c.site_id, t.c.name, t.c.title, t.c.published,
                                       t.c.checksum, t.c.reading, t.c.added_at)
                             .where(t.c.site_id == site_id)
                             .order_by(t.c.published, t.c.added_at)).mappings().all()
        return [{**dict(r), "reading": json.loads(r["reading"])} for r in rows]

    def delete_report(self, report_id: str) -> bool:
        """Remove a report and its evidence."""
        with self.engine.begin() as c:
            c.execute(evidence_table.delete().where(evidence_table.c.source_id == report_id))
            res = c.execute(reports_table.delete().where(reports_table.c.id == report_id))
        return bool(res.rowcount)

    def put_note(self, site_id: str, text: str, date: str, part: str | None,
                 author: str | None, evidence_of: Any) -> tuple[str, list[dict[str, Any]]]:
        """Store an analyst note and the evidence ``evidence_of(note_id)`` makes of it."""
        nid = hashlib.sha256(f"{site_id}\x1f{date}\x1f{part}\x1f{text}".encode()
                             ).hexdigest()[:16]
        evidence = evidence_of(nid)
        now = _now()
        with self.engine.begin() as c:
            c.execute(notes_table.delete().where(notes_table.c.id == nid))
            c.execute(notes_table.insert().values(id=nid, site_id=site_id, part=part,
                                                  date=date, author=author, text=text,
                                                  added_at=now))
            self._replace_evidence(c, site_id, nid, evidence, now)
        return nid, evidence

    def notes(self, site_id: str) -> list[dict[str, Any]]:
        t = notes_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.site_id == site_id)
                             .order_by(t.c.date, t.c.added_at)).mappings().all()
        return [dict(r) for r in rows]

    def evidence(self, site_id: str) -> list[dict[str, Any]]:
        """Stored evidence records of a site (reports, notices, notes), by date."""
        e = evidence_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(e.c.record).where(e.c.site_id == site_id)
                             .order_by(e.c.time, e.c.id)).all()
        return [json.loads(r[0]) for r in rows]

    @contextmanager
    def _conn(self, conn: sa.Connection | None) -> Iterator[sa.Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as c:
                yield c


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if v == v and v not in (float("inf"), float("-inf")) else None


def _nan_to_none(obj: Any) -> Any:
    """JSON cannot hold NaN: unobserved measures are stored as null."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    with contextlib.suppress(Exception):  # e.g. read-only media
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.close()


def _v1_to_v2(conn: sa.Connection) -> None:
    """Version 2 records every co-registration shift with its scene."""
    registrations_table.create(conn)


def _v2_to_v3(conn: sa.Connection) -> None:
    """Version 3 keeps what ``sitewatch run`` measured: grids, processed scenes, per-part
    observations, alerts and runs."""
    for t in (grids_table, processed_table, observations_table, alerts_table, runs_table):
        t.create(conn)


def report_id(site_id: str, checksum: str) -> str:
    """The id of a report's text (its SHA-256 ``checksum``) as stored for a site."""
    return hashlib.sha256(f"{site_id}\x1f{checksum}".encode()).hexdigest()[:16]


def _v3_to_v4(conn: sa.Connection) -> None:
    """Version 4 keeps collateral reports, analyst notes and the evidence made of them."""
    for t in (reports_table, evidence_table, notes_table):
        t.create(conn)


#: Migrations from version N to N+1, keyed by N.  Each runs inside the opening transaction.
MIGRATIONS: dict[int, Any] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}

__all__ = ["ALERT_STATUSES", "DB_NAME", "SCHEMA_VERSION", "SiteRow", "Store", "parse_time"]
