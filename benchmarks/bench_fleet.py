"""Many sites: N simulated sites x M scenes run serially, then on a Dask LocalCluster of 1 and
of 2 workers (``sitewatch.watch.fleet``), with SQLite (and PostgreSQL with ``--pg URL``):
wall time, speed-up, and whether every store holds results identical to the serial run's.
Then a fault run: ``--trials`` times, one worker is killed (SIGKILL) at a random point of a
random site's run, and the store must still equal the serial run's.

    python benchmarks/bench_fleet.py                       # 20 sites x 30 scenes, 300 px
    python benchmarks/bench_fleet.py --pg postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/bench_fleet.py --sites 4 --scenes 8 --trials 2 --out /tmp/f.md  # quick

The sites are SIMULATED (the synthetic series of bench_watch_speed.py: structured ground,
parts, clouds, sub-pixel shifts, planted changes), one seed per site.  Results go to
docs/bench_fleet.md with the command, commit and machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _provenance import code_state
from bench_watch_speed import scene_plan, site_layout, write_scene

from sitewatch.store import Store
from sitewatch.watch.fleet import SiteJob, SiteOutcome, jobs_for, run_fleet, run_job
from sitewatch.watch.params import RunParams

ROOT = Path(__file__).resolve().parents[1]
PARAMS = RunParams()


def build(work: Path, n_sites: int, n_scenes: int, size: int, parts: int) -> list[str]:
    """Write every site's scenes (one seed per site) into work/scenes/SITE/; return the ids."""
    jobs, ids, sites = [], [], {}
    for i in range(n_sites):
        sid = f"fleet-{i:02d}"
        site_json, lay = site_layout(size, parts, 100 + i)
        site_json["features"][0]["properties"]["id"] = sid
        sites[sid] = site_json
        plan = scene_plan(n_scenes - 1, 100 + i)  # n - 1 of history + 1 = n scenes
        folder = work / "scenes" / sid
        folder.mkdir(parents=True, exist_ok=True)
        jobs += [(k, lay, plan[k], n_scenes - 1, 100 + i, str(folder)) for k in range(n_scenes)]
        ids.append(sid)
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        list(ex.map(write_scene, jobs, chunksize=8))
    (work / "sites.json").write_text(json.dumps(sites))
    return ids


def catalogue(work: Path, db: str, ids: list[str]) -> None:
    """Ingest every site into the store at ``db`` (empty)."""
    from sitewatch.imagery.ingest import ingest
    from sitewatch.sites.site import site_from_geojson

    sites = json.loads((work / "sites.json").read_text())
    with Store.open_url(db) as store:
        for sid in ids:
            ingest(store, [work / "scenes" / sid], sid, site=site_from_geojson(sites[sid], sid))


def snapshot(db: str, ids: list[str]) -> str:
    """Everything the runs stored, without timestamps, as one comparable text."""
    rows: list[Any] = []
    with Store.open_url(db) as store:
        for sid in ids:
            h = PARAMS.hash
            rows += sorted((sid, r.scene_id, r.part, r.reference, r.reference_id,
                            json.dumps(r.to_dict()["measures"], sort_keys=True))
                           for r in store.observations(sid, h))
            rows += sorted((sid, k, v.status) for k, v in store.processed(sid, h).items())
            rows += sorted((sid, a.id, a.tier, a.kind, a.status, repr(a.alert.value))
                           for a in store.alerts(sid, params_hash=h))
    return json.dumps(rows)


def serial(db: str, home: Path, ids: list[str]) -> float:
    from sitewatch.watch.pipeline import run_site

    t0 = time.perf_counter()
    with Store.open_url(db) as store:
        for sid in ids:
            run_site(store, sid, PARAMS, products=home / "products")
    return time.perf_counter() - t0


def killer(job: SiteJob) -> SiteOutcome:
    """The task, but on the chosen site its first attempt kills its own worker (SIGKILL) at
    the chosen point: after ``k`` scenes, or while scoring alerts (k < 0)."""
    plan = json.loads(os.environ.get("SITEWATCH_BENCH_KILL", "{}") or "{}")
    marker = Path(job.home) / f"killed-{job.site_id}"
    if job.site_id == plan.get("site") and not marker.exists():
        marker.touch()
        from sitewatch.watch.pipeline import run_site

        k = int(plan.get("at", 1))

        def die(stage: str, done: int, _total: int) -> None:
            if (k >= 0 and stage == "process" and done >= k) or (k < 0 and stage == "alerts"):
                os.kill(os.getpid(), signal.SIGKILL)

        with Store.open_url(job.db) as store:
            run_site(store, job.site_id, RunParams.from_dict(job.params), progress=die,
                     products=Path(job.home) / "products")
    return run_job(job)


def fresh_db(kind: str, work: Path, name: str, pg: str | None) -> str:
    """An empty store: a SQLite file under ``work``, or a new database on the PG server."""
    if kind == "sqlite":
        p = work / name / "sitewatch.db"
        shutil.rmtree(p.parent, ignore_errors=True)
        p.parent.mkdir(parents=True)
        return f"sqlite+pysqlite:///{p}"
    import sqlalchemy as sa

    assert pg is not None
    admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
    db = f"bench_{name}".replace("-", "_")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}"'))
        c.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return sa.engine.make_url(pg).set(database=db).render_as_string(hide_password=False)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--size", type=int, default=300, help="grid side in pixels")
    ap.add_argument("--parts", type=int, default=5)
    ap.add_argument("--trials", type=int, default=10, help="fault runs (0: none)")
    ap.add_argument("--pg", help="a PostgreSQL server URL (a database per run is created)")
    ap.add_argument("--pg-start", action="store_true",
                    help="start a throwaway PostgreSQL 15 for the run (tests/pg_server.py: "
                         "Debian's postgresql-15, fsync off) and use it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_fleet.md"))
    ap.add_argument("--keep", help="a work folder to keep (default: a temporary one)")
    a = ap.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    if a.pg_start and not a.pg:
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import start_postgres

        pg = start_postgres()
        try:
            return main([*a.argv, "--pg", pg.dsn])
        finally:
            pg.close()
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import us
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    log(f"writing {a.sites} sites x {a.scenes} scenes of {a.size} px to {work}")
    ids = build(work, a.sites, a.scenes, a.size, a.parts)
    backends = ["sqlite"] + (["postgresql"] if a.pg else [])
    rows: list[dict[str, Any]] = []
    reference: str | None = None
    for kind in backends:
        for label, workers in (("serial", 0), ("1 worker", 1), ("2 workers", 2)):
            name = f"{kind}-{workers}"
            db = fresh_db(kind, work, name, a.pg)
            home = work / f"home-{name}"
            shutil.rmtree(home, ignore_errors=True)
            catalogue(work, db, ids)
            load0 = os.getloadavg()[0]
            c0 = time.process_time()
            if workers == 0:
                wall = serial(db, home, ids)
                cpu = time.process_time() - c0
                failed = 0
            else:
                outs, wall = timed(lambda db=db, home=home, workers=workers: run_fleet(
                    jobs_for(ids, db, home, PARAMS), workers=workers))
                cpu = float("nan")  # the workers' CPU is not this process's
                failed = sum(not o.ok for o in outs)
            snap = snapshot(db, ids)
            reference = reference or snap
            rows.append({"store": kind, "run": label, "wall_s": wall, "cpu_s": cpu,
                         "failed": failed, "identical": snap == reference,
                         "load": f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"})
            log(f"{kind} {label}: {wall:.1f} s, identical to serial: {snap == reference}")
    faults: list[dict[str, Any]] = []
    rng = random.Random(a.seed)
    for t in range(a.trials):
        kind = backends[t % len(backends)]
        name = f"fault-{t}"
        db = fresh_db(kind, work, name, a.pg)
        home = work / f"home-{name}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        catalogue(work, db, ids)
        at = rng.choice([-1, *range(1, a.scenes)])
        site = rng.choice(ids)
        os.environ["SITEWATCH_BENCH_KILL"] = json.dumps({"site": site, "at": at})
        outs, wall = timed(lambda db=db, home=home: run_fleet(
            jobs_for(ids, db, home, PARAMS), workers=2, task=killer))
        same = snapshot(db, ids) == reference
        faults.append({"trial": t + 1, "store": kind, "site": site,
                       "killed at": "scoring alerts" if at < 0 else f"after scene {at}",
                       "killed": (home / f"killed-{site}").exists(),
                       "failed sites": sum(not o.ok for o in outs), "wall_s": wall,
                       "identical": same})
        log(f"fault {t + 1}: killed {site} at {at}: identical {same}")
    os.environ.pop("SITEWATCH_BENCH_KILL", None)
    write_doc(Path(a.out), a, rows, faults, time.perf_counter() - t_start)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    bad = [r for r in rows if not r["identical"] or r["failed"]] + \
        [f for f in faults if not f["identical"] or f["failed sites"]]
    return 1 if bad else 0


def write_doc(path: Path, a: argparse.Namespace, rows: list[dict[str, Any]],
              faults: list[dict[str, Any]], total: float) -> None:
    import distributed
    import numpy

    shown = [x for x in a.argv if not x.startswith("postgresql://")]
    cmd = "python benchmarks/bench_fleet.py " + " ".join(
        x for i, x in enumerate(shown) if not (x == "--pg" and a.pg_start))
    lines = [
        "# Many sites: serial, and on a Dask LocalCluster of 1 and 2 workers", "",
        f"- command: `{cmd}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared with other jobs); Python {platform.python_version()}, numpy "
        f"{numpy.__version__}, dask.distributed {distributed.__version__}",
        f"- code: {code_state()}",
        f"- sites: {a.sites} SIMULATED sites x {a.scenes} scenes of {a.size} x {a.size} px, "
        f"{a.parts} parts each (bench_watch_speed.py's synthetic series, one seed per site); "
        f"default run parameters; total benchmark time {total:.0f} s", "",
        "Each run starts from a freshly catalogued store; *identical* compares everything the "
        "runs stored (observations with their measures, processed-scene statuses, alerts with "
        "their tier, kind, status and value) with the serial SQLite run's. The cluster rows "
        "include starting the local cluster. CPU s is the serial process's own (the workers' "
        "is not counted).", "",
        "| store | run | wall s | speed-up | CPU s | failed sites | identical | load |",
        "|---|---|---:|---:|---:|---:|---|---|"]
    base = {r["store"]: r["wall_s"] for r in rows if r["run"] == "serial"}
    for r in rows:
        cpu = "-" if r["cpu_s"] != r["cpu_s"] else f"{r['cpu_s']:.1f}"
        lines.append(f"| {r['store']} | {r['run']} | {r['wall_s']:.1f} | "
                     f"{base[r['store']] / r['wall_s']:.2f} | {cpu} | {r['failed']} | "
                     f"{'yes' if r['identical'] else '**NO**'} | {r['load']} |")
    if faults:
        lines += ["", "## Fault runs: a worker killed (SIGKILL) in the middle of a site", "",
                  "Each trial: a fresh store, all sites on 2 workers; the first attempt at one "
                  "random site kills its own worker process at a random point (after a "
                  "random number of scenes were stored, or while scoring alerts). Dask "
                  "starts a new worker and runs the task again.", "",
                  "| trial | store | site | killed | failed sites | wall s | identical |",
                  "|---:|---|---|---|---:|---:|---|"]
        for f in faults:
            lines.append(f"| {f['trial']} | {f['store']} | {f['site']} | {f['killed at']}"
                         f"{'' if f['killed'] else ' (not reached)'} | {f['failed sites']} | "
                         f"{f['wall_s']:.1f} | {'yes' if f['identical'] else '**NO**'} |")
        n_ok = sum(f["identical"] and not f["failed sites"] for f in faults)
        lines += ["", f"{n_ok} of {len(faults)} fault runs ended with a store identical to "
                  "the clean run's."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
