"""The catalogue database's schema and its migrations, in one place.

Every table of every area (scenes and grids; watch results; collateral and evidence) is
declared here with SQLAlchemy Core, so that the whole database can be read in one file and
the same declarations make it on SQLite and on PostgreSQL (string columns differ there only in
type: :func:`_s`).  ``SCHEMA_VERSION`` is kept in the ``meta`` table;
:func:`migrate` brings an older database up to date inside the opening transaction and
refuses one made by a newer sitewatch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import sqlalchemy as sa

from sitewatch.errors import StoreError

SCHEMA_VERSION = 9


def _s(length: int) -> sa.types.TypeEngine[str]:
    """A string column: ``VARCHAR(length)`` on SQLite (which never enforces the length), and
    ``TEXT COLLATE "C"`` on PostgreSQL: the length is not enforced there either (the same
    input must not fail on one database only), and the "C" collation compares and sorts by
    code point as SQLite does, whatever locale the server's databases were made with, so that
    every ``ORDER BY`` gives the same order on both."""
    return sa.String(length).with_variant(sa.Text(collation="C"), "postgresql")


#: A text column (see :func:`_s`).
_TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", _s(64), primary_key=True),
    sa.Column("value", _TEXT, nullable=False),
)

sites_table = sa.Table(
    "sites",
    metadata,
    sa.Column("id", _s(64), primary_key=True),
    sa.Column("name", _TEXT, nullable=False),
    sa.Column("site_type", _s(64), nullable=False),
    sa.Column("origin", _s(16), nullable=False),  # builtin | file | bare
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("geojson", _TEXT, nullable=False),
    sa.Column("created_at", _s(32), nullable=False),
    sa.Column("updated_at", _s(32), nullable=False),
)

scenes_table = sa.Table(
    "scenes",
    metadata,
    sa.Column("site_id", _s(64), sa.ForeignKey("sites.id"), primary_key=True),
    sa.Column("id", _s(128), primary_key=True),
    sa.Column("acquired", _s(32), nullable=False, index=True),
    sa.Column("sensor", _s(64), nullable=False),
    sa.Column("source", _TEXT, nullable=False),
    sa.Column("checksum", _s(64), nullable=False),
    sa.Column("record", _TEXT, nullable=False),  # the full Scene as JSON
    sa.Column("ingested_at", _s(32), nullable=False),
    sa.Column("updated_at", _s(32), nullable=False),
    sa.UniqueConstraint("site_id", "source", name="uq_scene_source"),
)


registrations_table = sa.Table(
    "registrations",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("scene_id", _s(128), primary_key=True),
    sa.Column("grid", _s(64), primary_key=True),  # e.g. "10m": one grid per resolution
    sa.Column("reference_id", _s(128), nullable=False),
    sa.Column("dy", sa.Float, nullable=False),
    sa.Column("dx", sa.Float, nullable=False),
    sa.Column("reliability", sa.Float, nullable=False),
    sa.Column("residual_px", sa.Float, nullable=True),
    sa.Column("status", _s(16), nullable=False),
    sa.Column("detail", _TEXT, nullable=False),  # the SceneRegistration as JSON
    sa.Column("created_at", _s(32), nullable=False),
    # Version 5: whether the shift was undone when the scene was loaded (the one place the
    # registration is kept; before, processed.detail held a second copy with this flag).
    sa.Column("applied", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.ForeignKeyConstraint(["site_id", "scene_id"], ["scenes.site_id", "scenes.id"],
                            ondelete="CASCADE"),
)


#: Per site and grid, the scene every other scene of that grid is co-registered to.
grids_table = sa.Table(
    "grids",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("grid", _s(64), primary_key=True),
    sa.Column("reference_id", _s(128), nullable=False),
    sa.Column("created_at", _s(32), nullable=False),
)

#: One row per scene processed by ``sitewatch run`` with one set of parameters.  Written in
#: the same transaction as the scene's observations: a scene is processed wholly or not.
processed_table = sa.Table(
    "processed",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("scene_id", _s(128), primary_key=True),
    sa.Column("params_hash", _s(16), primary_key=True),
    sa.Column("grid", _s(64), nullable=False),
    sa.Column("acquired", _s(32), nullable=False),
    sa.Column("status", _s(16), nullable=False),  # see pipeline.STATUSES
    sa.Column("previous_id", _s(128), nullable=True),
    sa.Column("chain", _TEXT, nullable=False),  # JSON: what the result depends on
    sa.Column("params", _TEXT, nullable=False),  # JSON: the parameters (provenance)
    sa.Column("detail", _TEXT, nullable=False),  # JSON: reason, comparisons, products
    sa.Column("created_at", _s(32), nullable=False),
    sa.ForeignKeyConstraint(["site_id", "scene_id"], ["scenes.site_id", "scenes.id"],
                            ondelete="CASCADE"),
)

#: Per scene, part and reference (previous usable date, rolling composite, or none): the
#: part's measures (zonal.PartChange as JSON, NaN as null).
observations_table = sa.Table(
    "observations",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("scene_id", _s(128), primary_key=True),
    sa.Column("params_hash", _s(16), primary_key=True),
    sa.Column("part", _TEXT, primary_key=True),
    sa.Column("reference", _s(16), primary_key=True),  # previous | composite | none
    # Version 7: the part geometry version the row was measured with (part_versions; for
    # the rest of the site, the site's layout version).  Rows of older versions are kept.
    sa.Column("part_version", sa.Integer, primary_key=True, server_default=sa.text("0")),
    sa.Column("grid", _s(64), nullable=False),
    sa.Column("acquired", _s(32), nullable=False, index=True),
    sa.Column("reference_id", _s(128), nullable=True),
    sa.Column("observed_fraction", sa.Float, nullable=False),
    sa.Column("changed_fraction", sa.Float, nullable=True),
    sa.Column("measures", _TEXT, nullable=False),
    sa.ForeignKeyConstraint(["site_id", "scene_id", "params_hash"],
                            ["processed.site_id", "processed.scene_id",
                             "processed.params_hash"], ondelete="CASCADE"),
)

#: Version 7: every geometry a part has had.  A placement or an edit of a part's geometry
#: adds a version (1, 2, ...); ``geometry`` null means the part was removed or unplaced.
#: ``key`` is a hash of what the watch measures (geometry, line width, point radius).
part_versions_table = sa.Table(
    "part_versions",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("part", _TEXT, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", _s(64), nullable=False),
    sa.Column("geometry", _TEXT, nullable=True),  # GeoJSON (lon/lat), null: not placed
    sa.Column("key", _s(16), nullable=False),
    sa.Column("author", _TEXT, nullable=True),
    sa.Column("note", _TEXT, nullable=True),
    sa.Column("created_at", _s(32), nullable=False),
)

#: Alerts with their lifecycle: new -> seen -> dismissed (with a reason) | confirmed.
alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", _s(16), primary_key=True),
    sa.Column("site_id", _s(64), nullable=False, index=True),
    sa.Column("part", _TEXT, nullable=False),
    sa.Column("time", _s(32), nullable=False),
    sa.Column("start", _s(32), nullable=False),  # the usable date before the event
    sa.Column("end", _s(32), nullable=False),  # the last date showing it
    sa.Column("tier", _s(16), nullable=False),
    sa.Column("kind", _s(16), nullable=False),
    sa.Column("status", _s(16), nullable=False),
    sa.Column("reason", _TEXT, nullable=True),
    sa.Column("params_hash", _s(16), nullable=False),
    sa.Column("record", _TEXT, nullable=False),  # the full Alert as JSON
    sa.Column("created_at", _s(32), nullable=False),
    sa.Column("updated_at", _s(32), nullable=False),
    # Version 6: 1 when stored, +1 at every change of the record (part of the event ids).
    sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("1")),
)

#: The outbox (version 6): one row per alert event the sinks publish (a new alert, or an
#: update that is news), written in the same transaction as the alert.  ``id`` is stable (a
#: hash of the alert id, its revision and its record): a re-sent event keeps it, so receivers
#: can de-duplicate.  ``seq`` orders the events and marks where a sink's subscription starts.
alert_events_table = sa.Table(
    "alert_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", _s(32), nullable=False, unique=True),
    sa.Column("alert_id", _s(16), sa.ForeignKey("alerts.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("site_id", _s(64), nullable=False, index=True),
    sa.Column("params_hash", _s(16), nullable=False),
    sa.Column("event", _s(16), nullable=False),  # new | updated
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("payload", _TEXT, nullable=False),  # the alert as the sinks publish it
    sa.Column("created_at", _s(32), nullable=False),
    sqlite_autoincrement=True,  # a seq is never reused, even after deletions
)

#: Per sink (its key, e.g. ``jsonl:/abs/path``) and site: the event ``seq`` after which the
#: sink receives the site's events (the last one stored when the sink was first used).
alert_sinks_table = sa.Table(
    "alert_sinks",
    metadata,
    sa.Column("sink", _TEXT, primary_key=True),
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("since_seq", sa.Integer, nullable=False),
    sa.Column("created_at", _s(32), nullable=False),
)

#: Which sink received which event (written only after the sink wrote or POSTed it).
alert_deliveries_table = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("event_id", _s(32), sa.ForeignKey("alert_events.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("sink", _TEXT, primary_key=True),
    sa.Column("delivered_at", _s(32), nullable=False),
)

#: Every ``sitewatch run``: its parameters and what it did (provenance of the results).
runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", _s(64), nullable=False, index=True),
    sa.Column("params_hash", _s(16), nullable=False),
    sa.Column("params", _TEXT, nullable=False),
    sa.Column("version", _s(32), nullable=False),
    sa.Column("started_at", _s(32), nullable=False),
    sa.Column("finished_at", _s(32), nullable=True),
    sa.Column("summary", _TEXT, nullable=True),
)

#: Collateral reports added to a site: the visible text as read (untrusted: shown escaped),
#: its checksum, and what the reader made of it.
reports_table = sa.Table(
    "reports",
    metadata,
    sa.Column("id", _s(16), primary_key=True),
    sa.Column("site_id", _s(64), nullable=False, index=True),
    sa.Column("name", _TEXT, nullable=False),
    sa.Column("title", _TEXT, nullable=False),
    sa.Column("published", _s(32), nullable=True),
    sa.Column("checksum", _s(64), nullable=False),
    sa.Column("text", _TEXT, nullable=False),
    sa.Column("reading", _TEXT, nullable=False),  # JSON
    sa.Column("added_at", _s(32), nullable=False),
)

#: Evidence from reports, notices and analyst notes (imagery evidence is derived from the
#: alerts each time, so it follows their status).
evidence_table = sa.Table(
    "evidence",
    metadata,
    sa.Column("id", _s(16), primary_key=True),
    sa.Column("site_id", _s(64), nullable=False, index=True),
    sa.Column("kind", _s(16), nullable=False),
    sa.Column("source_id", _s(16), nullable=False, index=True),  # report or note id
    sa.Column("time", _s(32), nullable=True),
    sa.Column("indicator", _s(64), nullable=False),
    sa.Column("record", _TEXT, nullable=False),  # the Evidence as JSON
    sa.Column("added_at", _s(32), nullable=False),
)

#: Analyst notes: what a person saw or knows, with the part and date it is about.
notes_table = sa.Table(
    "notes",
    metadata,
    sa.Column("id", _s(16), primary_key=True),
    sa.Column("site_id", _s(64), nullable=False, index=True),
    sa.Column("part", _TEXT, nullable=True),
    sa.Column("date", _s(32), nullable=False),
    sa.Column("author", _TEXT, nullable=True),
    sa.Column("text", _TEXT, nullable=False),
    sa.Column("added_at", _s(32), nullable=False),
)

#: Version 7: the STAC sources of a site (``sitewatch source add``).  ``header_env`` names the
#: environment variable holding a header or token; the value is never stored.
sources_table = sa.Table(
    "sources",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("name", _s(120), primary_key=True),
    sa.Column("api", _TEXT, nullable=False),
    sa.Column("collection", _TEXT, nullable=False),
    sa.Column("query", _TEXT, nullable=False),  # JSON object
    sa.Column("max_cloud", sa.Float, nullable=True),
    sa.Column("preset", _s(64), nullable=True),
    sa.Column("header_env", _s(120), nullable=True),
    sa.Column("created_at", _s(32), nullable=False),
)

#: Version 7: every STAC Item a sync has settled for a site, keyed by (API, collection, Item
#: id): catalogued as a scene, a duplicate of one (the same acquisition from another
#: collection), or skipped for a lasting reason.  A re-sync reads none of these again.
#: Written in the same transaction as the scene.
stac_items_table = sa.Table(
    "stac_items",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("api", _TEXT, primary_key=True),
    sa.Column("collection", _TEXT, primary_key=True),
    sa.Column("item_id", _TEXT, primary_key=True),
    sa.Column("source", _s(120), nullable=False),
    sa.Column("status", _s(16), nullable=False),  # scene | duplicate | skipped
    sa.Column("scene_id", _s(128), nullable=True),
    sa.Column("platform", _s(64), nullable=False),
    sa.Column("acquired", _s(32), nullable=False),  # Item datetime to the second
    sa.Column("tile", _s(64), nullable=True),
    sa.Column("geometry", _TEXT, nullable=True),  # the Item's footprint, GeoJSON
    sa.Column("reason", _TEXT, nullable=True),
    sa.Column("created_at", _s(32), nullable=False),
    sa.Index("ix_stac_items_acquisition", "site_id", "platform", "acquired"),
)


#: Version 9: where alert scoring stopped, per site and parameter set (JSON: each part's
#: series state, :class:`sitewatch.watch.events.SeriesState`, and a digest of what the
#: scoring read), so that a run scores only new dates and a run with nothing new scores
#: nothing.  A cache: deleting a row only makes the next run score every date again.
scoring_state_table = sa.Table(
    "scoring_state",
    metadata,
    sa.Column("site_id", _s(64), primary_key=True),
    sa.Column("params_hash", _s(16), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", _s(32), nullable=False),
)


def _v1_to_v2(conn: sa.Connection) -> None:
    """Version 2 records every co-registration shift with its scene."""
    registrations_table.create(conn)


def _v2_to_v3(conn: sa.Connection) -> None:
    """Version 3 keeps what ``sitewatch run`` measured: grids, processed scenes, per-part
    observations, alerts and runs."""
    for t in (grids_table, processed_table, observations_table, alerts_table, runs_table):
        t.create(conn)


def _v3_to_v4(conn: sa.Connection) -> None:
    """Version 4 keeps collateral reports, analyst notes and the evidence made of them."""
    for t in (reports_table, evidence_table, notes_table):
        t.create(conn)


#: Shifts smaller than this (pixels) were not applied by the pipeline of version 4.
_V4_MIN_APPLIED_SHIFT_PX = 0.05


def _add_column(conn: sa.Connection, table: sa.Table, name: str) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for a column as ``table`` declares it (SQLite and
    PostgreSQL both take it; the DDL is compiled for the connection's dialect)."""
    col = sa.schema.CreateColumn(table.c[name]).compile(dialect=conn.dialect)
    name_q = conn.dialect.identifier_preparer.format_table(table)
    conn.execute(sa.text(f"ALTER TABLE {name_q} ADD COLUMN {col}"))


def _v4_to_v5(conn: sa.Connection) -> None:
    """Version 5 keeps a scene's registration in one place, the registrations table, which
    gains ``applied`` (whether the shift was undone when the scene was loaded).  The flag is
    taken from the copy version 4 kept in each processed scene's detail, which is then
    removed; a registration no processed scene mentions gets the rule version 4 loaded
    scenes with (not rejected, and at least 0.05 px)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("registrations")}
    if "applied" not in have:  # created by _v1_to_v2 in this migration already has it
        _add_column(conn, registrations_table, "applied")
    r, p = registrations_table, processed_table
    copies: dict[tuple[str, str, str, str], bool] = {}
    for row in conn.execute(sa.select(p.c.site_id, p.c.scene_id, p.c.params_hash, p.c.grid,
                                      p.c.chain, p.c.detail)).all():
        detail = json.loads(row.detail)
        copy = detail.pop("registration", None)
        if copy is None:
            continue
        ref = json.loads(row.chain).get("reference")
        copies[(row.site_id, row.scene_id, row.grid, ref)] = bool(copy.get("applied"))
        conn.execute(p.update().where((p.c.site_id == row.site_id)
                                      & (p.c.scene_id == row.scene_id)
                                      & (p.c.params_hash == row.params_hash))
                     .values(detail=json.dumps(detail, sort_keys=True)))
    for reg in conn.execute(sa.select(r.c.site_id, r.c.scene_id, r.c.grid, r.c.reference_id,
                                      r.c.dy, r.c.dx, r.c.status, r.c.detail)).all():
        applied = copies.get((reg.site_id, reg.scene_id, reg.grid, reg.reference_id))
        if applied is None:
            applied = (reg.status != "rejected"
                       and math.hypot(reg.dy, reg.dx) >= _V4_MIN_APPLIED_SHIFT_PX)
        detail = json.loads(reg.detail)
        detail.update({"site_id": reg.site_id, "scene_id": reg.scene_id, "grid": reg.grid,
                       "reference_id": reg.reference_id, "applied": applied})
        conn.execute(r.update().where((r.c.site_id == reg.site_id)
                                      & (r.c.scene_id == reg.scene_id)
                                      & (r.c.grid == reg.grid))
                     .values(applied=applied, detail=json.dumps(detail, sort_keys=True)))


def _v5_to_v6(conn: sa.Connection) -> None:
    """Version 6 adds the alert outbox: alert events, the sinks subscribed to a site and the
    deliveries, and each alert's ``revision``.  Alerts stored before have no event: earlier
    versions sent them when they were stored, so there is nothing to deliver again."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("alerts")}
    if "revision" not in have:  # created by _v2_to_v3 in this migration already has it
        _add_column(conn, alerts_table, "revision")
    for t in (alert_events_table, alert_sinks_table, alert_deliveries_table):
        t.create(conn, checkfirst=True)


def _v6_to_v7(conn: sa.Connection) -> None:
    """Version 7 adds STAC sources and the Items a sync has settled."""
    for t in (sources_table, stac_items_table):
        t.create(conn, checkfirst=True)


def _parts_versions(conn: sa.Connection) -> None:
    """Versioned part geometry: the ``part_versions`` table, and ``observations`` keyed by
    the part version too (so that rows of an older geometry are kept when a part is moved;
    the table is rebuilt, since a primary key cannot be altered in SQLite).  Every stored
    site's placed parts get version 1 (their geometry now); existing observations and alerts
    are marked with it: they were measured with that geometry."""
    from sitewatch.store.parts import backfill_versions  # the store imports this module

    part_versions_table.create(conn, checkfirst=True)
    have = {c["name"] for c in sa.inspect(conn).get_columns("observations")}
    if "part_version" not in have:
        cols = ", ".join(c.name for c in observations_table.columns if c.name != "part_version")
        conn.execute(sa.text("CREATE TABLE observations_before_v8 AS SELECT * FROM observations"))
        conn.execute(sa.text("DROP TABLE observations"))
        observations_table.create(conn)
        conn.execute(sa.text(f"INSERT INTO observations ({cols}, part_version) "
                             f"SELECT {cols}, 0 FROM observations_before_v8"))
        conn.execute(sa.text("DROP TABLE observations_before_v8"))
    backfill_versions(conn)


def _v8_to_v9(conn: sa.Connection) -> None:
    """Version 9 keeps where alert scoring stopped (``scoring_state``)."""
    scoring_state_table.create(conn, checkfirst=True)


#: Migrations from version N to N+1, keyed by N.  Each runs inside the opening transaction.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3,
                                                          3: _v3_to_v4, 4: _v4_to_v5,
                                                          5: _v5_to_v6, 6: _v6_to_v7,
                                                          7: _parts_versions, 8: _v8_to_v9}


def stored_version(conn: sa.Connection) -> int:
    """The schema version recorded in an open database."""
    row = conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
    ).first()
    if row is None:
        raise StoreError("catalogue has no schema_version")
    return int(row[0])


def is_current(conn: sa.Connection) -> bool:
    """Whether the database holds this version's schema already (nothing to create or
    migrate): a read, so that opening a current catalogue never waits for a writer."""
    if not sa.inspect(conn).has_table("meta"):
        return False
    try:
        return stored_version(conn) == SCHEMA_VERSION
    except StoreError:
        return False


def migrate(conn: sa.Connection, where: str, now: str) -> None:
    """Create the schema in an empty database, or migrate an older one to this version.

    ``where`` names the database in errors; ``now`` is the creation time recorded.
    """
    insp = sa.inspect(conn)
    if not insp.has_table("meta"):
        if insp.get_table_names():
            raise StoreError(
                f"{where}: database has tables but no sitewatch 'meta' table; "
                "it is not a sitewatch catalogue"
            )
        metadata.create_all(conn)
        conn.execute(
            meta_table.insert(),
            [{"key": "schema_version", "value": str(SCHEMA_VERSION)},
             {"key": "created_at", "value": now}],
        )
        return
    version = stored_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where}: database schema version {version} is newer than this "
            f"sitewatch understands ({SCHEMA_VERSION}); upgrade sitewatch"
        )
    for v in range(version, SCHEMA_VERSION):
        MIGRATIONS[v](conn)
        conn.execute(
            meta_table.update().where(meta_table.c.key == "schema_version"),
            {"value": str(v + 1)},
        )

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "alert_deliveries_table", "alert_events_table",
           "alert_sinks_table", "alerts_table", "evidence_table", "grids_table", "is_current",
           "meta_table", "metadata", "migrate", "notes_table", "observations_table",
           "part_versions_table",
           "processed_table", "registrations_table", "reports_table", "runs_table", "scenes_table",
           "scoring_state_table",
           "sites_table", "sources_table", "stac_items_table", "stored_version"]
