"""A real, throwaway PostgreSQL 15 server for the tests (Debian's binaries, no fakes).

:class:`PgCluster` is an ``initdb`` + ``pg_ctl`` cluster in a temporary folder, listening on
127.0.0.1 (and a unix socket in that folder); :meth:`PgCluster.stop` shuts it down and
:meth:`PgCluster.close` removes the folder, so no process or data is left behind.  The STAC
services (tests/stac_server.py) run pgstac in one; the store tests run sitewatch's catalogue
in another (``pg_server`` and ``store_url`` in conftest.py), one fresh database per test made
with ``CREATE DATABASE`` (:meth:`PgCluster.new_database`).

``scripts/install-test-services.sh`` installs the server; docs/testing.md describes the tests.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["PG_BIN", "PgCluster", "ServiceUnavailable", "free_port", "missing_postgres"]

PG_BIN = Path(os.environ.get("SITEWATCH_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ServiceUnavailable(RuntimeError):
    """A test service cannot run here (what is missing is in the message)."""


def missing_postgres() -> str | None:
    """Why a PostgreSQL server cannot run here for the store tests, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "Python package psycopg is missing (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (and a unix socket in its folder).

    PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` user (the
    Debian package creates it) and the folder is handed to that user.  ``password`` set makes
    the cluster require it over TCP (scram-sha-256), for the tests of a wrong password.
    """

    user = "sitewatch"
    database = "postgres"

    def __init__(self, password: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sitewatch-pg-"))
        self.port = free_port()
        self.password = password
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.started = False
        self._names = itertools.count(1)

    @property
    def dsn(self) -> str:
        return self.url(self.database)

    def url(self, database: str, *, password: str | None = None) -> str:
        """A ``postgresql://`` URL of one of the cluster's databases (TCP, 127.0.0.1)."""
        secret = password if password is not None else self.password
        auth = f"{self.user}:{secret}" if secret else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _pg(self, *args: str) -> None:
        env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "HOME": str(self.dir), "LC_ALL": "C",
               "TZ": "UTC"}
        r = subprocess.run([str(PG_BIN / args[0]), *args[1:]], capture_output=True, text=True,
                           env=env, cwd=self.dir, **self._run_as)
        if r.returncode != 0:
            raise ServiceUnavailable(f"{args[0]} failed: {(r.stderr or r.stdout)[-2000:]}")

    def start(self) -> None:
        data = self.dir / "data"
        if not data.exists():
            init = ["initdb", "-D", str(data), "-U", self.user, "-E", "UTF8", "--no-locale",
                    "--no-sync", "--no-instructions"]
            if self.password:
                pwfile = self.dir / "pwfile"
                pwfile.write_text(self.password + "\n")
                if self._run_as:
                    os.chown(pwfile, self._run_as["user"], self._run_as["group"])
                init += ["--auth-local=trust", "--auth-host=scram-sha-256",
                         f"--pwfile={pwfile}"]
            else:
                init += ["--auth=trust"]
            self._pg(*init)
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._pg("pg_ctl", "-D", str(data), "-l", str(self.dir / "postgres.log"), "-w",
                 "-t", "30", "-o", opts, "start")
        self.started = True

    def stop(self) -> None:
        if self.started:
            self._pg("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
            self.started = False

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, statement: str, params: Iterable[Any] | None = None, *,
            database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) as the cluster's superuser; its rows."""
        import psycopg

        dsn = self.url(database or self.database)
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(statement, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def new_database(self, prefix: str = "t") -> str:
        """A new empty database (from ``template0``); returns its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any connection a test left open to it."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_postgres(password: str | None = None) -> PgCluster:
    """A started cluster (a second or two); the caller must ``close()`` it."""
    why = missing_postgres()
    if why:
        raise ServiceUnavailable(why)
    cluster = PgCluster(password)
    try:
        cluster.start()
    except BaseException:
        cluster.close()
        raise
    return cluster
