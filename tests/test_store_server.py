"""The catalogue shared by several processes, on SQLite and on a real PostgreSQL server.

* ``--db URL`` and ``SITEWATCH_DB`` choose the database, before or after the subcommand; an
  unreachable server, a wrong password, a missing database and a bad URL are one-line errors
  that never show the password;
* four processes writing the same catalogue at once (their own sites, and the same alerts)
  leave exact counts: no lost update, no duplicate, no error;
* a writer killed (SIGKILL) inside a transaction leaves nothing half-written and loses
  nothing it committed;
* the per-site lock: on PostgreSQL an advisory lock on the server keeps apart writers with
  different homes (other machines), names its holder, and is released with a killed holder;
* four processes opening a new database at once make its schema once (they are the writers
  above);
* a server database made with a linguistic collation still sorts as SQLite does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import store_writers
from conftest import PG_PASSWORD
from sitewatch.cli.main import cli
from sitewatch.errors import StoreError
from sitewatch.store import SCHEMA_VERSION, Store
from sitewatch.watch.locks import SiteBusyError, lock_holder, site_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent

WRITERS = str(TESTS / "store_writers.py")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}",
            "PYTHONWARNINGS": "ignore"}


def _spawn(*args: str) -> subprocess.Popen[str]:
    """``python tests/store_writers.py ARGS...`` with this checkout's sitewatch."""
    return subprocess.Popen([sys.executable, WRITERS, *args], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _count(store: Store, table: str, where: str = "TRUE", **params: object) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"),
                             params).scalar() or 0)


# --------------------------------------------------------------------------- choosing it


def test_db_option_and_env_choose_the_catalogue_before_or_after_the_command(
        tmp_path, pg_url, monkeypatch):
    home = tmp_path / "home"
    site = tmp_path / "site.geojson"
    site.write_text(store_writers.site("plant").dumps())
    runner = CliRunner()
    r = runner.invoke(cli, ["site", "add", str(site), "--home", str(home), "--db", pg_url])
    assert r.exit_code == 0, r.output
    with Store.open_url(pg_url) as store:
        assert store.get_site("plant") is not None  # on the server...
    assert not (home / "sitewatch.db").exists()  # ... not in the home's file
    monkeypatch.setenv("SITEWATCH_DB", pg_url)
    r = runner.invoke(cli, ["--home", str(home), "alerts", "plant", "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == [], r.output
    r = runner.invoke(cli, ["--home", str(home), f"--db={home / 'other.db'}", "alerts",
                            "plant", "--json"])  # --db wins over the environment
    assert r.exit_code != 0 and "no site 'plant'" in r.output, r.output


@pytest.mark.parametrize("case", ["password", "unreachable", "database", "url", "dialect"])
def test_unusable_databases_are_one_line_errors_without_the_password(pg_server, case):
    from pg_server import free_port

    wrong = "not-the-pw-4711"
    url, secret = {
        "password": (pg_server.url("postgres", password=wrong), wrong),
        "unreachable": (f"postgresql://sitewatch:{wrong}@127.0.0.1:{free_port()}/x", wrong),
        "database": (pg_server.url("no_such_db"), PG_PASSWORD),
        "url": (f"postgresql://sitewatch:{wrong}@127.0.0.1:notaport/x", wrong),
        "dialect": (f"mysql://sitewatch:{wrong}@127.0.0.1/x", wrong)}[case]
    want = {"password": "refused the user name or password",
            "unreachable": "cannot reach the database server",
            "database": "no such database", "url": "not a database URL",
            "dialect": "unsupported database 'mysql'"}[case]
    with pytest.raises(StoreError, match=want) as got:
        Store.open_url(url)
    assert secret not in str(got.value) and "***" in str(got.value)
    r = CliRunner().invoke(cli, ["alerts", "x", "--db", url])
    assert r.exit_code == 1 and want in r.output and secret not in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- many writers


def test_four_processes_writing_at_once_leave_exact_counts(store_url):
    """The four also open the new database together: one makes the schema, the others wait
    for it (an advisory lock; SQLite's write lock) and find it made."""
    n = 12
    procs = [_spawn("write", store_url, str(k), str(n)) for k in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "done", err[-2000:]
    with Store.open_url(store_url) as store:
        assert [r.site.id for r in store.list_sites()] == [
            "shared", "site-0", "site-1", "site-2", "site-3"]
        assert _count(store, "part_versions", "site_id = 'shared'") == 5  # stored once
        for k in range(4):
            sid = f"site-{k}"
            assert len(store.scenes(sid)) == n
            assert len(store.processed(sid, "p1")) == n
            assert len(store.observations(sid, "p1")) == n * 5
            assert len(store.alerts(sid)) == n and len(store.alert_events(sid)) == n
        shared = store.alerts("shared")
        assert len(shared) == n
        # Every writer's version of each shared alert was applied in turn: one "new" event,
        # then one event per change (no two writers read the same revision).
        events = store.alert_events("shared")
        for a in shared:
            mine = [e for e in events if e.alert_id == a.id]
            revisions = sorted(json.loads(json.dumps(e.alert))["text"] for e in mine)
            assert len(mine) == len({e.id for e in mine}) and 1 <= len(mine) <= 4
            assert mine[0].event == "new" and all(e.event == "updated" for e in mine[1:])
            assert a.text in revisions
        assert len({e.seq for e in events}) == len(events)
        assert store.schema_version() == SCHEMA_VERSION and _count(store, "meta") == 2


def test_a_writer_killed_inside_a_transaction_leaves_nothing_half_written(store_url):
    kill_at = 3
    p = _spawn("killed", store_url, str(kill_at))
    out, err = p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL, err[-2000:]
    assert out.split() == [w for i in range(kill_at) for w in ("stored", str(i))]
    with Store.open_url(store_url) as store:
        done = store.processed("victim", "p1")
        assert sorted(done) == [f"s{i:03d}" for i in range(kill_at)]  # committed: all kept
        assert len(store.observations("victim", "p1")) == kill_at * 5
        # The killed transaction had written its result and observations: none is left.
        assert _count(store, "observations", "scene_id = :s", s=f"s{kill_at:03d}") == 0
        assert store.registrations("victim") == []
        # The store takes the scene again, whole.
        store.put_result(*store_writers.result("victim", kill_at))
        assert len(store.processed("victim", "p1")) == kill_at + 1


# --------------------------------------------------------------------------- the site lock


def _wait_for_line(proc: subprocess.Popen[str], want: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == want, (line, proc.stderr.read() if proc.stderr else "")


def test_the_server_lock_keeps_apart_writers_with_different_homes(pg_url, tmp_path):
    home_a, home_b = tmp_path / "machine-a", tmp_path / "machine-b"
    holder = _spawn("hold", pg_url, str(home_a))
    try:
        _wait_for_line(holder, "held")
        with Store.open_url(pg_url) as store:
            # Another machine: its own home's lock file is free, the server's lock is not.
            busy = rf"pid {holder.pid} \(sitewatch run on "
            with pytest.raises(SiteBusyError, match=busy), site_lock(
                    home_b, "sohae", purpose="sitewatch run", store=store):
                pass
            found = lock_holder(home_b, "sohae", store=store)
            assert found is not None and found.pid == holder.pid
            assert lock_holder(home_b, "sohae") is None  # the file alone knows nothing
            # Another site is not held up.
            with site_lock(home_b, "other", purpose="sitewatch run", store=store):
                pass
            # The holder killed: the server ends its session and the lock with it.
            holder.kill()
            holder.wait(timeout=30)
            deadline = time.monotonic() + 30
            while store.site_lock_holder("sohae") is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            with site_lock(home_b, "sohae", purpose="sitewatch run", store=store):
                assert store.site_lock_holder("sohae").pid == os.getpid()
            assert store.site_lock_holder("sohae") is None  # let go after the block
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


def test_a_waiting_writer_goes_when_the_holder_is_done(pg_url, tmp_path):
    holder = _spawn("hold", pg_url, str(tmp_path / "a"))
    try:
        _wait_for_line(holder, "held")
        seen = []

        def waiting(h: object) -> None:
            seen.append(h)
            holder.kill()  # the holder goes away while this one waits

        with Store.open_url(pg_url) as store, site_lock(
                tmp_path / "b", "sohae", purpose="sitewatch run", wait=True,
                on_wait=waiting, store=store):
            assert store.site_lock_holder("sohae").pid == os.getpid()
        assert len(seen) == 1 and seen[0].pid == holder.pid
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def test_the_lock_does_nothing_more_on_sqlite(tmp_path):
    with Store.open_path(tmp_path / "sitewatch.db") as store, site_lock(
            tmp_path, "sohae", purpose="sitewatch run", store=store):
        assert store.site_lock_holder("sohae") is None
        assert lock_holder(tmp_path, "sohae", store=store).pid == os.getpid()


# --------------------------------------------------------------------------- the schema


def test_a_server_database_with_a_linguistic_collation_sorts_as_sqlite_does(
        pg_server, tmp_path):
    """Without ``COLLATE "C"`` on its text columns, a database made with an ICU collation
    (what a server's locale usually gives) would list "B" after "a"."""
    name = "icu_collation"
    try:
        pg_server.sql(f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
                      "ICU_LOCALE 'en-US' LOCALE 'C'")
    except Exception as exc:  # a server built without ICU
        pytest.skip(f"no ICU collation on this server: {exc}")
    try:
        stores = [Store.open_url(pg_server.url(name)),
                  Store.open_path(tmp_path / "sitewatch.db")]
        orders = []
        for store in stores:
            with store:
                store.put_site(store_writers.site("s"), "file")
                for aid in ("b000000000000000", "B000000000000000", "a000000000000000",
                            "_000000000000000", "A000000000000000"):
                    store.put_alert(store_writers.alert("s", aid), "p1")
                orders.append([a.id for a in store.alerts("s")])
        assert orders[0] == orders[1] == sorted(orders[1])
    finally:
        pg_server.drop_database(name)
