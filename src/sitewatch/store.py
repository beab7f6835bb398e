"""The catalogue database: sites and scenes, in SQLite by default.

Written with SQLAlchemy Core (no ORM) so that a PostgreSQL URL can follow without changes to
callers.  The schema carries a version in the ``meta`` table; opening a database made by a
newer sitewatch is refused rather than risked.  Every write is one transaction: an
interrupted ingest leaves whole scenes or none, and re-running completes it.
"""

from __future__ import annotations

import contextlib
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

from .errors import StoreError
from .scenes import Scene, iso, parse_time
from .sites import Site, loads_site

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
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
        with self.engine.begin() as c:
            c.execute(r.delete().where((r.c.site_id == site_id) & (r.c.scene_id == scene_id)))
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

    @contextmanager
    def _conn(self, conn: sa.Connection | None) -> Iterator[sa.Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as c:
                yield c


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


#: Migrations from version N to N+1, keyed by N.  Each runs inside the opening transaction.
MIGRATIONS: dict[int, Any] = {1: _v1_to_v2}

__all__ = ["DB_NAME", "SCHEMA_VERSION", "SiteRow", "Store", "parse_time"]
