"""The database handle every area of the store shares: opening (a SQLite file by default, or
a PostgreSQL server for several processes or machines), the schema check, transactions,
upserts both databases take, the per-site advisory lock on PostgreSQL, and the JSON helpers of
stored records.

Only SQLite and PostgreSQL are supported: every statement is SQLAlchemy Core compiled for the
connection's dialect, and the two places where they differ (``INSERT ... ON CONFLICT`` and
locking) are here (docs/DESIGN.md, "The store").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from sitewatch.errors import MissingExtraError, StoreError
from sitewatch.store import schema
from sitewatch.times import iso
from sitewatch.watch.records import json_safe

log = logging.getLogger(__name__)

DB_NAME = "sitewatch.db"

#: The databases sitewatch keeps its catalogue in.
DIALECTS = ("sqlite", "postgresql")

#: ``postgresql://`` means psycopg (version 3), the driver the ``postgres`` extra installs;
#: SQLAlchemy alone would pick psycopg2.
_PG_ALIASES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}

#: Advisory lock keys (PostgreSQL's two-int form): the first int says what is locked.
LOCK_MIGRATE, LOCK_SITE = 0x73770000, 0x73770001

#: TCP keepalives, so that the server notices a writer whose machine vanished (its locks are
#: then released) within about a minute, and a connect that hangs gives up.
_PG_CONNECT_ARGS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                    "keepalives_interval": 10, "keepalives_count": 3}

_T = TypeVar("_T")

#: What decoding a damaged row raises: bad JSON (a ValueError), a missing key, a wrong type, an
#: unreadable date (TimeFormatError, a ValueError), a value out of range.
_DAMAGE = (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError)


def decoded(table: str, key: object, decode: Callable[..., _T], *args: Any) -> _T:
    """``decode(*args)`` of one stored row; a row that cannot be decoded (edited by hand, written
    by a newer sitewatch, damaged on disk) raises a one-line :class:`StoreError` naming the
    table and the row's key instead of a traceback from deep inside the decoder."""
    try:
        return decode(*args)
    except StoreError:
        raise
    except _DAMAGE as exc:
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise StoreError(f"the catalogue's {table} row {str(key)[:200]!r} is damaged ({why}); "
                         "restore the catalogue from a backup, or remove that record") from None


def _now() -> str:
    return iso(datetime.now(UTC))


_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def mask_url(url: str | sa.engine.URL) -> str:
    """A database URL fit to show: the password replaced by ``***``.

    >>> mask_url("postgresql://ann:s3cret@db.example/sw")
    'postgresql://ann:***@db.example/sw'
    >>> mask_url("not a url :x@y")
    'not a url :x@y'
    """
    if isinstance(url, sa.engine.URL):
        return url.render_as_string(hide_password=True)
    return _USERINFO.sub(r"\1***@", url)


def database_url(target: str | Path | sa.engine.URL) -> sa.engine.URL:
    """The SQLAlchemy URL of a catalogue: a URL (``sqlite:///PATH``, ``postgresql://USER@HOST/
    DB``; ``postgresql://`` and ``postgres://`` mean the psycopg 3 driver) or a file path
    (SQLite).  A string that is neither, or a database other than SQLite or PostgreSQL, is a
    one-line :class:`StoreError` (the password masked)."""
    if isinstance(target, sa.engine.URL):
        url = target
    elif isinstance(target, Path) or "://" not in str(target):
        return sa.engine.URL.create("sqlite+pysqlite", database=str(Path(target).expanduser()))
    else:
        try:
            url = sa.engine.make_url(str(target).strip())
        except (sa.exc.ArgumentError, ValueError):
            raise StoreError(f"not a database URL: {mask_url(str(target))!r} (give "
                             "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, "
                             "sqlite:///PATH or a file path)") from None
    if url.drivername in _PG_ALIASES:
        url = url.set(drivername=_PG_ALIASES[url.drivername])
    if url.get_backend_name() not in DIALECTS:
        raise StoreError(f"unsupported database {url.get_backend_name()!r} in "
                         f"{mask_url(url)!r}: sitewatch keeps its catalogue in SQLite (a file) "
                         "or PostgreSQL (postgresql://...)")
    return url


def _one_line(exc: BaseException, secret: str | None) -> str:
    text = " ".join(str(exc).split())
    if secret and len(secret) >= 4:  # drivers do not quote it; this is a second guard
        text = text.replace(secret, "***")
    return text[:300] or type(exc).__name__


def db_reason(exc: sa.exc.DBAPIError) -> str:
    """What the database said of a failed statement, on one line (PostgreSQL adds DETAIL and
    HINT lines)."""
    return _one_line(exc.orig if exc.orig is not None else exc, None)


def connect_error(where: str, exc: sa.exc.DBAPIError, secret: str | None = None) -> StoreError:
    """A one-line :class:`StoreError` for a database that cannot be used: the server cannot be
    reached, refuses the password, has no such database, or the file is no database."""
    why = _one_line(exc.orig if exc.orig is not None else exc, secret)
    low = why.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return StoreError(f"{where}: the database server refused the user name or password "
                          f"({why})")
    if "does not exist" in low and "database" in low:
        return StoreError(f"{where}: no such database on the server ({why})")
    if any(s in low for s in ("connection refused", "could not translate host name",
                              "timeout expired", "could not connect", "connection failed",
                              "no route to host", "name or service not known")):
        return StoreError(f"{where}: cannot reach the database server ({why})")
    return StoreError(f"{where}: not a usable database ({why})")


def _lock_key(site_id: str) -> int:
    """The advisory lock key of a site: 31 bits of a hash of its id (a collision only makes
    two sites take turns)."""
    return int.from_bytes(hashlib.sha256(site_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class StoreBase:
    """The engine and its transactions; the areas (:mod:`.scenes`, :mod:`.results`,
    :mod:`.collateral`) add their tables' methods.

    ``url`` is any SQLite or PostgreSQL URL (:func:`database_url`); ``self.url`` keeps it
    whole (a worker may open its own connection with it), ``self.where`` is what messages
    show (the password masked)."""

    def __init__(self, url: str | Path | sa.engine.URL):
        u = database_url(url)
        self.url = u.render_as_string(hide_password=False)
        self.where = mask_url(u)
        self._secret = u.password if isinstance(u.password, str) else None
        self.dialect = u.get_backend_name()
        kw: dict[str, Any] = {}
        if self.dialect == "postgresql":
            kw = {"pool_pre_ping": True,
                  "connect_args": {k: v for k, v in _PG_CONNECT_ARGS.items()
                                   if k not in u.query}}
        try:
            self.engine = sa.create_engine(u, **kw)
        except ImportError:
            raise MissingExtraError(f"{self.where}: PostgreSQL catalogues need psycopg: "
                                    "pip install 'sitewatch[postgres]'") from None
        except Exception as exc:
            raise StoreError(f"cannot open database {self.where!r}: "
                             f"{_one_line(exc, self._secret)}") from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._init_schema()
        except BaseException:
            self.engine.dispose()
            raise

    @classmethod
    def open_url(cls, url: str | Path | sa.engine.URL) -> Self:
        """Open (creating the schema if needed) the catalogue at a database URL
        (``postgresql://...``, ``sqlite:///PATH``) or SQLite file path."""
        u = database_url(url)
        if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
            return cls.open_path(u.database)
        return cls(u)

    @classmethod
    def open_path(cls, path: str | Path) -> Self:
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
    def open_home(cls, home: str | Path) -> Self:
        """Open the catalogue kept in a sitewatch home folder."""
        return cls.open_path(Path(home) / DB_NAME)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def is_server(self) -> bool:
        """Whether the catalogue is on a database server (PostgreSQL), shared by processes
        on several machines, rather than a file."""
        return self.dialect == "postgresql"

    def _init_schema(self) -> None:
        """Create or migrate the schema in one transaction, which other processes opening the
        same database meanwhile wait for (then find the schema made): on PostgreSQL under
        an advisory lock (DDL is transactional there); on SQLite under ``BEGIN IMMEDIATE``,
        taken only when there is something to do (the driver would otherwise run DDL
        outside any transaction, and a current catalogue opens without waiting for a
        writer)."""
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:a, 0)"),
                                 {"a": LOCK_MIGRATE})
                elif schema.is_current(conn):
                    return
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                schema.migrate(conn, self.where, _now())
        except StoreError:
            raise
        except sa.exc.DBAPIError as exc:
            raise connect_error(self.where, exc, self._secret) from None

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return schema.stored_version(conn)

    @contextmanager
    def _conn(self, conn: sa.Connection | None) -> Iterator[sa.Connection]:
        """``conn`` when the caller holds a transaction, else a new one."""
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as c:
                yield c

    # ------------------------------------------------------------------ site locks

    @contextmanager
    def site_lock(self, site_id: str, *, purpose: str, wait: bool = False,
                  on_wait: Callable[[Any], None] | None = None) -> Iterator[None]:
        """On PostgreSQL, hold the site's advisory lock for the ``with`` block: a session
        lock (``pg_try_advisory_lock``) on a connection of its own, so that writers on other
        machines sharing the server take turns per site.  The server drops it with the
        connection: a writer killed or cut off releases it (TCP keepalives find a vanished
        machine).  ``wait`` and ``on_wait(holder)`` as :func:`sitewatch.watch.locks.site_lock`,
        which calls this; on SQLite it does nothing (the home's lock file does the work)."""
        if self.dialect != "postgresql":
            yield
            return
        from sitewatch.watch.locks import SiteBusyError

        key = {"a": LOCK_SITE, "b": _lock_key(site_id)}
        conn: sa.Connection | None = None
        try:
            try:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                name = f"{purpose}|{os.getpid()}|{socket.gethostname()}"[:63]
                conn.execute(sa.text("SELECT set_config('application_name', :n, false)"),
                             {"n": name})
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:a, :b)"),
                                   key).scalar()
                if not got:
                    holder = self._holder(conn, key)
                    if not wait:
                        raise SiteBusyError(site_id, holder)
                    if on_wait is not None:
                        on_wait(holder)
                    conn.execute(sa.text("SELECT pg_advisory_lock(:a, :b)"), key)
            except sa.exc.DBAPIError as exc:
                raise connect_error(self.where, exc, self._secret) from None
            yield
        finally:
            # Closing the session releases its locks, as a killed process's would.
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.invalidate()
                with contextlib.suppress(Exception):
                    conn.close()

    def site_lock_holder(self, site_id: str) -> Any:
        """Who holds the site's advisory lock on the server (a
        :class:`~sitewatch.watch.locks.LockHolder`), or None; always None on SQLite."""
        if self.dialect != "postgresql":
            return None
        with self.engine.connect() as conn:
            return self._holder(conn, {"a": LOCK_SITE, "b": _lock_key(site_id)})

    @staticmethod
    def _holder(conn: sa.Connection, key: Mapping[str, int]) -> Any:
        from sitewatch.watch.locks import LockHolder

        row = conn.execute(sa.text(
            "SELECT a.application_name, a.state_change FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid::int8 = :a AND l.objid::int8 = :b "
            "AND l.objsubid = 2 LIMIT 1"), dict(key)).first()
        if row is None:
            return None
        purpose, _, rest = str(row[0] or "").partition("|")
        pid, _, host = rest.partition("|")
        since = iso(row[1]) if row[1] is not None else "?"
        return LockHolder(int(pid) if pid.isdigit() else None,
                          f"{purpose or 'sitewatch'} on {host or 'another machine'}", since)


# ---------------------------------------------------------------------- dialect-neutral SQL

def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT that takes ``ON CONFLICT`` (SQLite and PostgreSQL spell it the
    same; SQLAlchemy has one construct per dialect)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_new(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless its primary key is taken; True when it was inserted.  Never a
    unique-key error when another process inserted the same row just before."""
    keys = list(table.primary_key.columns)
    # RETURNING, not rowcount: SQLAlchemy leaves an INSERT's rowcount unset on PostgreSQL.
    res = conn.execute(_insert(conn, table).values(**values).on_conflict_do_nothing(
        index_elements=[c.name for c in keys]).returning(*keys))
    return res.first() is not None


def upsert(conn: sa.Connection, table: sa.Table, rows: Mapping[str, Any]
           | Sequence[Mapping[str, Any]], keep: Sequence[str] = ()) -> None:
    """Insert rows, or update those whose primary key is taken (every column but the key and
    ``keep``, e.g. a creation time), in one statement: race-free between processes."""
    batch = [rows] if isinstance(rows, Mapping) else list(rows)
    if not batch:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = _insert(conn, table)
    cols = [k for k in batch[0] if k not in keys and k not in keep]
    stmt = stmt.on_conflict_do_update(index_elements=keys,
                                      set_={k: stmt.excluded[k] for k in cols}) if cols \
        else stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, batch)


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if v == v and v not in (float("inf"), float("-inf")) else None


def _nan_to_none(obj: Any) -> Any:
    """JSON cannot hold NaN: unobserved measures are stored as null."""
    return json_safe(obj)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    with contextlib.suppress(Exception):  # e.g. read-only media
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.close()

__all__ = ["DB_NAME", "DIALECTS", "StoreBase", "connect_error", "database_url", "db_reason",
           "decoded",
           "insert_new", "mask_url", "upsert"]
