"""`sitewatch watch`: unattended cycles, with real processes, a real webhook receiver on
127.0.0.1, real signals and the real per-site lock."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.errors import SiteError, SitewatchError
from sitewatch.imagery.ingest import ingest
from sitewatch.store import Store
from sitewatch.watch import grids
from sitewatch.watch.locks import SiteBusyError, lock_holder, lock_path, site_lock
from sitewatch.watch.pipeline import RunParams
from sitewatch.watch.unattended import (
    MIN_EVERY,
    SyncOutcome,
    WatchError,
    parse_every,
    watch_cycle,
    watch_forever,
)
from test_pipeline import catalogue, test_site, write_scenes

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

SITE = "testsite"
#: How long the tests wait for a watcher to get somewhere before failing (not a timing
#: assertion: a healthy watcher gets there in seconds).
PATIENCE = 120.0


def wait_for(what: str, pred: Callable[[], object], proc: subprocess.Popen | None = None,
             log: Path | None = None) -> object:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the watcher exited ({proc.returncode}) before {what}:\n"
                        + (log.read_text() if log and log.exists() else ""))
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}:\n"
                + (log.read_text() if log and log.exists() else ""))


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def cycle_line(log: Path, n: int) -> str | None:
    return next((x for x in log_lines(log) if f" {SITE} cycle {n} " in x), None)


def sitewatch(home: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    """``sitewatch --home HOME ARGS`` as a real process, stderr to ``log``."""
    err = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "sitewatch.cli.main", "--home", str(home),
                             *args], stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def add_scenes(home: Path, folder: Path, indices) -> None:
    """Ingest new dates, as a sync (or an analyst) would while the watcher runs."""
    with Store.open_home(home) as store:
        catalogue(store, folder, indices)


class Receiver:
    """A real webhook endpoint on 127.0.0.1; ``hold`` makes it sit on each request until
    released (a slow receiver keeps a watcher's cycle, and its lock, busy)."""

    def __init__(self, port: int = 0, hold: bool = False):
        self.bodies: list[dict] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrived.set()
                outer.release.wait(PATIENCE)
                outer.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def site_home(tmp_path) -> Path:
    """A home with the synthetic site and its first six dates (no change yet)."""
    home = tmp_path / "home"
    add_scenes(home, tmp_path / "imgs0", range(6))
    return home


def test_watcher_delivers_new_alerts_and_stops_cleanly_on_sigterm(site_home, tmp_path):
    hook = Receiver()
    log, jsonl = tmp_path / "watch.log", tmp_path / "alerts.jsonl"
    proc = sitewatch(site_home, "watch", SITE, "--every", "2s", "--allow-short",
                     "--jsonl", str(jsonl), "--webhook", hook.url, log=log)
    try:
        first = wait_for("the first cycle", lambda: cycle_line(log, 1), proc, log)
        assert "ok" in first and "run 6 scene(s)" in first and "0 new alert(s)" in first
        assert "sync no sources" in first and "assess launch " in first
        # While it runs, new dates arrive; the change planted from date 6 on is alerted.
        add_scenes(site_home, tmp_path / "imgs1", range(6, 10))
        wait_for("the alert in both sinks", lambda: jsonl.exists() and hook.bodies, proc,
                 log)
        alerted = wait_for("the cycle that alerted", lambda: next(
            (x for x in log_lines(log) if "1 new alert(s)" in x), None), proc, log)
        assert "run 4 scene(s)" in alerted and "delivered 2 event(s)" in alerted
        (line,) = jsonl.read_text().splitlines()
        event = json.loads(line)
        assert event["event"] == "new" and event["alert"]["part"] == "pad"
        assert [b["event_id"] for b in hook.bodies] == [event["event_id"]]
        # Timestamped lines, one per site and cycle.
        assert all(x[:4].isdigit() and x[19] == "Z" for x in log_lines(log))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(PATIENCE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        hook.close()
    text = log.read_text()
    assert "SIGTERM: stopping after the step in hand" in text
    assert "stopped after" in text and "Traceback" not in text
    assert lock_holder(site_home, SITE) is None
    with site_lock(site_home, SITE, purpose="test"):  # free for the next process
        pass
    assert len(hook.bodies) == 1  # nothing delivered twice


def test_second_watcher_skips_a_busy_site_and_run_waits_for_the_lock(tmp_path):
    home = tmp_path / "home"
    add_scenes(home, tmp_path / "imgs", range(10))  # the first cycle alerts at once
    hook = Receiver(hold=True)  # ... and sits in delivery, holding the site's lock
    log = tmp_path / "watch.log"
    proc = sitewatch(home, "watch", SITE, "--every", "1h", "--webhook", hook.url,
                     "--webhook-budget", str(PATIENCE), log=log)
    run_log = tmp_path / "run.log"
    manual = None
    try:
        wait_for("the watcher's delivery", hook.arrived.is_set, proc, log)
        holder = lock_holder(home, SITE)
        assert holder is not None and holder.pid == proc.pid
        assert holder.purpose == "sitewatch watch"
        # A second watcher skips the site this cycle and says who holds it.
        second_log = tmp_path / "second.log"
        second = sitewatch(home, "watch", SITE, "--once", log=second_log)
        assert second.wait(PATIENCE) == 0
        skipped = cycle_line(second_log, 1)
        assert skipped is not None and f"{SITE} cycle 1 skipped: pid {proc.pid} " in skipped
        assert "(sitewatch watch, since " in skipped
        # A manual run waits for the cycle instead of interleaving with it.
        manual = sitewatch(home, "run", SITE, log=run_log)
        wait_for("the run to say it waits",
                 lambda: "is working on it" in run_log.read_text(), manual, run_log)
        assert f"pid {proc.pid} (sitewatch watch" in run_log.read_text()
        assert manual.poll() is None
        # Ctrl-C: the watcher finishes the step in hand (the delivery) ...
        proc.send_signal(signal.SIGINT)
        wait_for("the stop request", lambda: "SIGINT: stopping" in log.read_text(), proc,
                 log)
        assert proc.poll() is None
        # ... and a second Ctrl-C exits at once.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(PATIENCE) == 130
        assert "SIGINT again: exiting now" in log.read_text()
        # The kernel released the lock with the process: the run goes ahead.
        assert manual.wait(PATIENCE) == 0, run_log.read_text()
    finally:
        for p in (proc, manual):
            if p is not None and p.poll() is None:
                p.kill()
        hook.close()
    assert lock_holder(home, SITE) is None
    with Store.open_home(home) as store:  # the interrupted delivery stays pending
        (key,) = store.sinks_of(SITE)
        assert len(store.pending_events(key, SITE)) == 1


def test_failed_cycles_are_logged_and_the_next_cycle_recovers(site_home, tmp_path):
    add_scenes(site_home, tmp_path / "imgs1", range(6, 10))
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/hook"
    once_log = tmp_path / "once.log"
    once = sitewatch(site_home, "watch", SITE, "--once", "--webhook", url,
                     "--webhook-budget", "1", log=once_log)
    assert once.wait(PATIENCE) == 1  # --once: the status says the cycle failed
    failed = cycle_line(once_log, 1)
    assert failed is not None and " FAILED " in failed
    assert "1 new alert(s)" in failed and "delivered 0 event(s), 1 pending" in failed
    assert f"webhook:http://127.0.0.1:{port}/…" in failed and "/hook" not in failed

    log = tmp_path / "watch.log"
    proc = sitewatch(site_home, "watch", SITE, "--every", "2s", "--allow-short",
                     "--webhook-budget", "1", log=log)
    hook = None
    try:
        wait_for("a cycle failing delivery", lambda: cycle_line(log, 1), proc, log)
        assert " FAILED " in cycle_line(log, 1)
        hook = Receiver(port)  # the endpoint comes back
        wait_for("the pending alert delivered", lambda: hook.bodies, proc, log)
        assert hook.bodies[0]["alert"]["part"] == "pad"
        ok = wait_for("a cycle that recovered", lambda: next(
            (x for x in log_lines(log) if " ok " in x and "delivered 1 event(s)" in x),
            None), proc, log)
        assert "pending" not in ok
        # A new date whose file is damaged after it was catalogued: held off the watcher
        # (the test holds the site's lock) until the damage is done.
        with site_lock(site_home, SITE, purpose="the test"):
            add_scenes(site_home, tmp_path / "imgs10", [10])
            tif = tmp_path / "imgs10" / "scene_10.tif"
            tif.write_bytes(tif.read_bytes()[:4000])
            wait_for("a cycle skipped for the test's lock", lambda: next(
                (x for x in log_lines(log) if "skipped: pid " in x
                 and "(the test, since" in x), None), proc, log)
        bad = wait_for("the cycle with the damaged scene", lambda: next(
            (x for x in log_lines(log) if "scene scene_10 failed" in x), None), proc, log)
        assert " FAILED " in bad and "run 1 scene(s) (1 failed)" in bad
        n_bad = int(bad.split(" cycle ")[1].split()[0])
        wait_for("the next cycle", lambda: cycle_line(log, n_bad + 1), proc, log)
        assert " ok " in cycle_line(log, n_bad + 1)  # the failed scene is not retried
        add_scenes(site_home, tmp_path / "imgs11", [11])  # a good date afterwards
        wait_for("the next date processed", lambda: next(
            (x for x in log_lines(log) if " ok " in x and "run 1 scene(s)," in x), None),
            proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(PATIENCE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if hook is not None:
            hook.close()
    assert len(hook.bodies) == 1
    with Store.open_home(site_home) as store:
        done = store.processed(SITE, RunParams().hash)
        assert done["scene_10"].status == "failed" and done["scene_11"].status == "ok"
        # Whole scenes only: every processed scene has its observations, and no others.
        obs = {r.scene_id for r in store.observations(SITE, RunParams().hash)}
        assert obs == set(done)


# ------------------------------------------------------------------ the core, in process


@pytest.fixture
def store_home(tmp_path):
    home = tmp_path / "home"
    with Store.open_home(home) as store:
        catalogue(store, tmp_path / "imgs0", range(6))
        yield store, home


class CatalogueDown(SitewatchError, ConnectionError):
    """What a STAC source that cannot be reached raises (a SourceError)."""


def test_a_failing_sync_fails_the_cycle_but_not_the_run_and_the_next_cycle_recovers(
        store_home, tmp_path):
    store, home = store_home
    folder = tmp_path / "source"
    write_scenes(folder, range(6, 10))  # what the "catalogue" holds
    calls = []

    def sync(store, site_id, *, start, progress):  # a local folder as the site's source
        calls.append(start)
        if len(calls) == 1:
            raise CatalogueDown("https://stac.example/api: cannot connect (refused)")
        got = ingest(store, [folder], site_id, site=test_site())
        return SyncOutcome(f"{got.count('added')} added", got.count("added"))

    rep = watch_cycle(store, SITE, home=home, sync=sync, start=date(2024, 1, 1))
    assert not rep.ok and rep.status == "FAILED"
    assert rep.step("sync").failed and rep.step("run").outcome == "ok"
    assert rep.scenes_processed == 6 and rep.assessment.startswith("launch ")
    assert "sync failed: https://stac.example/api: cannot connect (refused)" in rep.line()
    rep = watch_cycle(store, SITE, home=home, sync=sync, cycle=2)
    assert rep.ok and rep.new_scenes == 4 and rep.scenes_processed == 4
    assert rep.new_alerts == 1 and rep.step("deliver").outcome == "no sinks"
    assert calls == [date(2024, 1, 1), None]
    assert rep.to_dict()["steps"][0] == {"name": "sync", "outcome": "ok",
                                         "detail": "4 added"}


def test_a_site_without_sources_has_nothing_to_sync(store_home):
    store, home = store_home
    assert store.sources(SITE) == []
    rep = watch_cycle(store, SITE, home=home)
    assert rep.step("sync").outcome == "no sources" and rep.ok


def test_a_stop_mid_run_keeps_whole_scenes_and_the_next_cycle_resumes(store_home,
                                                                      monkeypatch):
    store, home = store_home
    stop = threading.Event()
    real, calls = grids._observations, {"n": 0}

    def stop_midway(*a, **kw):  # a stop request arriving during the third scene
        calls["n"] += 1
        if calls["n"] == 5:
            stop.set()
        return real(*a, **kw)

    monkeypatch.setattr(grids, "_observations", stop_midway)
    rep = watch_cycle(store, SITE, home=home, stop_event=stop)
    assert rep.step("run").outcome == "stopped"
    assert [s.outcome for s in rep.steps[2:]] == ["not run", "not run"]
    assert rep.ok and rep.status == "stopped" and lock_holder(home, SITE) is None
    done = store.processed(SITE, RunParams().hash)
    assert 0 < len(done) < 6
    assert {r.scene_id for r in store.observations(SITE, RunParams().hash)} == set(done)
    rep = watch_cycle(store, SITE, home=home, cycle=2)
    assert rep.ok and rep.scenes_processed == 6 - len(done)


def test_watch_forever_runs_rounds_and_a_busy_site_is_skipped(store_home):
    store, home = store_home
    seen = []
    with site_lock(home, SITE, purpose="another watcher"):
        got = watch_forever(store, [SITE], every=timedelta(0), max_cycles=2, home=home,
                            on_cycle=seen.append)
    assert got.cycles == 2 and not got.stopped and got.ok
    assert [r.status for r in seen] == ["skipped", "skipped"]
    assert f"pid {os.getpid()} (another watcher, since" in seen[0].line()
    got = watch_forever(store, [SITE], every=None, once=True, home=home)
    assert got.last[SITE].scenes_processed == 6
    stop = threading.Event()
    stop.set()
    assert watch_forever(store, [SITE], every=timedelta(hours=1), stop_event=stop).cycles == 0


def test_a_missing_site_fails_its_cycle_in_one_line(store_home):
    store, home = store_home
    rep = watch_cycle(store, "nosuchsite", home=home)
    assert rep.step("run").failed and "no site 'nosuchsite'" in rep.line()
    assert "\n" not in rep.line()


# ------------------------------------------------------------------ the lock


def test_lock_names_its_holder_and_refuses_bad_site_ids(tmp_path):
    with site_lock(tmp_path, SITE, purpose="sitewatch run"):
        with (pytest.raises(SiteBusyError, match=rf"pid {os.getpid()} \(sitewatch run, since"),
              site_lock(tmp_path, SITE, purpose="sitewatch watch")):
            pass
        assert lock_holder(tmp_path, SITE).pid == os.getpid()
    assert lock_holder(tmp_path, SITE) is None
    assert lock_path(tmp_path, SITE).exists()  # the file stays; the lock does not
    with pytest.raises(SiteError, match="no site '../x'"):
        lock_path(tmp_path, "../x")


def test_a_killed_holder_releases_the_lock(tmp_path):
    script = ("import sys, time\nfrom sitewatch.watch.locks import site_lock\n"
              f"with site_lock({str(tmp_path)!r}, {SITE!r}, purpose='doomed'):\n"
              "    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
        assert lock_holder(tmp_path, SITE).purpose == "doomed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lock_holder(tmp_path, SITE) is None


# ------------------------------------------------------------------ intervals and options


def test_intervals():
    assert parse_every("30m") == timedelta(minutes=30)
    assert parse_every("1d") == timedelta(days=1)
    assert parse_every("1h30m") == timedelta(minutes=90)
    assert parse_every("2s", allow_short=True) == timedelta(seconds=2)
    assert timedelta(minutes=5) == MIN_EVERY
    with pytest.raises(WatchError, match="'1m' is shorter than 5m"):
        parse_every("1m")
    for bad in ("", "6", "h", "6x", "1.2.3h", "-5m"):
        with pytest.raises(WatchError, match="not a duration"):
            parse_every(bad)
    with pytest.raises(WatchError, match="longer than zero"):
        parse_every("0h")


def test_cli_refuses_what_it_cannot_do(home):
    runner = CliRunner()
    r = runner.invoke(cli, ["watch", SITE, "--every", "1m"])
    assert r.exit_code == 1 and "shorter than 5m" in r.output and "--allow-short" in r.output
    r = runner.invoke(cli, ["watch", SITE, "--every", "6h", "--once"])
    assert r.exit_code == 1 and "not both" in r.output
    r = runner.invoke(cli, ["watch", "nosuchsite", "--once"])
    assert r.exit_code == 1 and "no site 'nosuchsite'" in r.output
    r = runner.invoke(cli, ["watch", SITE, "--once", "--from", "May 2024"])
    assert r.exit_code == 1 and "--from 'May 2024' is not YYYY-MM-DD" in r.output
    r = runner.invoke(cli, ["watch", SITE, "--once", "--workers", "2", "--scheduler",
                            "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "--workers (a local cluster) or --scheduler, not both" in r.output
    r = runner.invoke(cli, ["watch", SITE, "--once", "--workers", "0"])
    assert r.exit_code == 2


def test_cli_once_succeeds_and_subscribes_the_sinks_given(home, tmp_path, caplog):
    add_scenes(home, tmp_path / "imgs", range(10))
    jsonl = tmp_path / "a.jsonl"
    r = CliRunner().invoke(cli, ["watch", SITE, "--once", "--jsonl", str(jsonl)])
    assert r.exit_code == 0, r.output
    assert f"{SITE} cycle 1 ok in " in r.output and "delivered 1 event(s)" in r.output
    assert json.loads(jsonl.read_text())["alert"]["part"] == "pad"
    with Store.open_home(home) as store:
        assert store.sinks_of(SITE) == [f"jsonl:{jsonl.resolve()}"]
    # The watch's log set-up is undone: the library's messages reach the usual handlers.
    logging.getLogger("sitewatch.watch.sinks").warning("after the watch")
    assert "after the watch" in caplog.text


# ------------------------------------------------------------------ the runs on a cluster

FLEET = ("alpha", "bravo")


def fleet_home(root: Path, sites=FLEET) -> Path:
    """A home with small sites (the synthetic series, ten dates: each site alerts once)."""
    import dataclasses

    home = root / "home"
    write_scenes(root / "imgs", range(10))
    with Store.open_home(home) as store:
        for sid in sites:
            ingest(store, [root / "imgs"], sid, site=dataclasses.replace(test_site(), id=sid))
    return home


def fleet_snapshot(home: Path, site_id: str) -> list[tuple]:
    """What the runs of a site stored, without timestamps."""
    ph = RunParams().hash
    with Store.open_home(home) as store:
        obs = sorted((r.scene_id, r.part, r.reference, r.reference_id,
                      json.dumps(r.to_dict()["measures"], sort_keys=True))
                     for r in store.observations(site_id, ph))
        done = sorted((k, v.status) for k, v in store.processed(site_id, ph).items())
        alerts = sorted((a.id, a.tier, a.kind, a.status) for a in store.alerts(site_id))
        pending = [len(store.pending_events(k, site_id)) for k in store.sinks_of(site_id)]
    return [*obs, *done, *alerts, ("pending", *pending)]


@pytest.fixture
def port_8787_taken():
    """Port 8787 held, as by another Dask cluster's dashboard (or already held by one)."""
    with socket.socket() as s:
        try:
            s.bind(("", 8787))
            s.listen()
        except OSError:
            pass  # someone else has it: just as busy
        yield


def failing_for_charlie(job):
    """The cluster's task, but a bug in it for the site ``charlie`` (raised on every try)."""
    from sitewatch.watch.fleet import run_job

    if job.site_id == "charlie":
        raise RuntimeError("a bug in charlie's task")
    return run_job(job)


@pytest.mark.filterwarnings("error:Port 8787 is already in use")
def test_watch_once_on_workers_stores_what_a_serial_watch_stores(tmp_path, monkeypatch,
                                                                  port_8787_taken):
    """`watch A B C --once --workers 2`: A and B end as after a serial `watch --once`; C's
    task fails, which fails C's cycle only; no dashboard warning."""
    pytest.importorskip("distributed", reason="the cluster extra is not installed")
    import functools

    import cloudpickle

    from sitewatch.watch import fleet

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    serial = fleet_home(tmp_path / "serial")
    r = CliRunner().invoke(cli, ["--home", str(serial), "watch", *FLEET, "--once",
                                 "--jsonl", str(tmp_path / "serial.jsonl")])
    assert r.exit_code == 0, r.output
    home = fleet_home(tmp_path / "fleet", (*FLEET, "charlie"))
    monkeypatch.setattr(fleet, "run_fleet",
                        functools.partial(fleet.run_fleet, task=failing_for_charlie))
    jsonl = tmp_path / "fleet.jsonl"
    r = CliRunner().invoke(cli, ["--home", str(home), "watch", *FLEET, "charlie", "--once",
                                 "--workers", "2", "--jsonl", str(jsonl)])
    assert r.exit_code == 1, r.output  # charlie failed
    for sid in FLEET:
        line = next(x for x in r.output.splitlines() if f" {sid} cycle 1 " in x)
        assert " ok " in line and "run 10 scene(s), 1 new alert(s)" in line, line
        assert "delivered 1 event(s)" in line
        assert fleet_snapshot(home, sid) == fleet_snapshot(serial, sid), sid
    bad = next(x for x in r.output.splitlines() if " charlie cycle 1 " in x)
    assert " FAILED " in bad and "run failed: RuntimeError: a bug in charlie's task" in bad
    assert "assess launch " in bad  # the steps after a failed run still ran
    events = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert sorted(e["alert"]["site"] for e in events) == sorted(FLEET)
    assert "already in use" not in r.output and "8787" not in r.output
    # Again: nothing new to run, nothing delivered twice.
    r = CliRunner().invoke(cli, ["--home", str(home), "watch", *FLEET, "--once",
                                 "--workers", "1", "--jsonl", str(jsonl)])
    assert r.exit_code == 0, r.output
    assert r.output.count("run 0 scene(s)") == 2 and len(jsonl.read_text().splitlines()) == 2


def descendants(pid: int) -> list:
    psutil = pytest.importorskip("psutil")
    return psutil.Process(pid).children(recursive=True)


def test_sigterm_stops_a_watch_on_workers_and_leaves_no_worker_process(tmp_path,
                                                                       port_8787_taken):
    pytest.importorskip("distributed", reason="the cluster extra is not installed")
    psutil = pytest.importorskip("psutil")
    home = fleet_home(tmp_path)
    log = tmp_path / "watch.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # see warnings
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sitewatch.cli.main", "--home",
                                 str(home), "watch", *FLEET, "--every", "1h", "--workers",
                                 "2"], stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        for sid in FLEET:
            wait_for(f"{sid}'s first cycle", lambda s=sid: next(
                (x for x in log_lines(log) if f" {s} cycle 1 " in x), None), proc, log)
        workers = [p for p in descendants(proc.pid)
                   if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) >= 2, workers  # the cluster's worker processes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(PATIENCE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _gone, alive = psutil.wait_procs(workers, timeout=PATIENCE)
    assert not alive, alive  # no orphan worker
    text = log.read_text()
    for sid in FLEET:
        line = next(x for x in text.splitlines() if f" {sid} cycle 1 " in x)
        assert " ok " in line and "run 10 scene(s)" in line, line
        assert lock_holder(home, sid) is None
    assert "SIGTERM: stopping after the step in hand" in text and "stopped after" in text
    assert "Traceback" not in text and "already in use" not in text, text
    assert "distributed" not in text, text  # no Dask chatter in the watch's log


def slow_scenes(job):
    """The cluster's task with every scene slowed down (a big site), so that a stop can
    arrive while it runs."""
    from sitewatch.watch import grids as worker_grids
    from sitewatch.watch.fleet import run_job

    real = worker_grids._observations

    def slow(*a, **kw):
        time.sleep(0.5)
        return real(*a, **kw)

    worker_grids._observations = slow
    try:
        return run_job(job)
    finally:
        worker_grids._observations = real


def test_a_stop_reaches_the_tasks_on_the_cluster_between_scenes(tmp_path, monkeypatch):
    """A stop requested while a site's run is a task on a worker ends the task after the
    scene in hand: whole scenes only, the later steps not run, and the next round (on the
    same cluster) resumes where it stopped."""
    pytest.importorskip("distributed", reason="the cluster extra is not installed")
    import functools

    import cloudpickle

    from sitewatch.watch import fleet

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    home = fleet_home(tmp_path, ("alpha",))
    stop = threading.Event()

    def stop_once_running() -> None:
        wait_for("the task to hold the site's lock", lambda: (
            lock_holder(home, "alpha") or None) and
            lock_holder(home, "alpha").purpose == "sitewatch watch (cluster)")
        stop.set()

    monkeypatch.setattr(fleet, "run_fleet", functools.partial(fleet.run_fleet,
                                                              task=slow_scenes))
    with fleet.fleet_client(workers=1) as client, Store.open_home(home) as store:
        threading.Thread(target=stop_once_running, daemon=True).start()
        got = watch_forever(store, ["alpha"], every=None, once=True, stop_event=stop,
                            home=home, client=client)
        rep = got.last["alpha"]
        assert got.stopped and rep.status == "stopped", rep.line()
        assert [s.outcome for s in rep.steps] == ["no sources", "stopped", "not run",
                                                  "not run"]
        done = store.processed("alpha", RunParams().hash)
        assert len(done) < 10
        assert {r.scene_id for r in store.observations("alpha", RunParams().hash)} == set(done)
        assert lock_holder(home, "alpha") is None
        again = watch_forever(store, ["alpha"], every=None, once=True, home=home,
                              client=client).last["alpha"]
        assert again.ok and again.scenes_processed == 10 - len(done), again.line()
