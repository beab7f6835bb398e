"""The database handle every area of the store shares: opening (SQLite by default, any
SQLAlchemy URL), the schema check, transactions, and the JSON helpers of stored records."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from sitewatch.errors import StoreError
from sitewatch.store import schema
from sitewatch.times import iso
from sitewatch.watch.records import json_safe

log = logging.getLogger(__name__)

DB_NAME = "sitewatch.db"


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
                         "restore sitewatch.db from a backup, or remove that record") from None


def _now() -> str:
    return iso(datetime.now(UTC))


class StoreBase:
    """The engine and its transactions; the areas (:mod:`.scenes`, :mod:`.results`,
    :mod:`.collateral`) add their tables' methods."""

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

    def _init_schema(self) -> None:
        try:
            with self.engine.begin() as conn:
                schema.migrate(conn, self.url, _now())
        except StoreError:
            raise
        except sa.exc.DatabaseError as exc:
            raise StoreError(f"{self.url}: not a usable database ({exc.orig})") from None

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

__all__ = ["DB_NAME", "StoreBase", "decoded"]
