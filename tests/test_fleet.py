"""Many sites on a real Dask LocalCluster (worker processes): every site's results equal a
serial run's, a second run adds nothing, an unknown site is an outcome and not a crash, and a
worker killed in the middle of a site's run is replaced and the store ends identical to a
clean run's (tasks are idempotent: each scene is its own transaction, alerts have ids)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from sitewatch.store import Store
from sitewatch.watch.fleet import SiteJob, SiteOutcome, jobs_for, run_fleet, run_job
from sitewatch.watch.params import RunParams
from sitewatch.watch.pipeline import run_site
from test_pipeline import PARAMS, test_site, write_scenes

pytest.importorskip("distributed", reason="the cluster extra is not installed "
                                          "(pip install 'sitewatch[cluster]')")

SITES = ("alpha", "bravo", "charlie")


def _home(root: Path) -> Path:
    """A home with three small sites (the synthetic series of test_pipeline, one each)."""
    home = root / "home"
    imgs = root / "imgs"
    write_scenes(imgs, range(8))
    from sitewatch.imagery.ingest import ingest

    with Store.open_home(home) as store:
        for sid in SITES:
            ingest(store, [imgs], sid, site=dataclasses.replace(test_site(), id=sid))
    return home


def _snapshot(home: Path, site_id: str, params: RunParams = PARAMS) -> list[tuple]:
    with Store.open_home(home) as store:
        obs = sorted((r.scene_id, r.part, r.reference, r.reference_id,
                      json.dumps(r.to_dict()["measures"], sort_keys=True))
                     for r in store.observations(site_id, params.hash))
        done = sorted((k, v.status) for k, v in store.processed(site_id, params.hash).items())
        alerts = sorted((a.id, a.tier, a.kind, a.status, a.alert.value)
                        for a in store.alerts(site_id))
    return [*obs, *done, *alerts]


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    home = _home(tmp_path_factory.mktemp("serial"))
    with Store.open_home(home) as store:
        for sid in SITES:
            run_site(store, sid, PARAMS, products=home / "products")
    return home


def _db(home: Path) -> str:
    with Store.open_home(home) as store:
        return store.engine.url.render_as_string(hide_password=False)


def test_sites_on_two_workers_equal_a_serial_run_and_a_rerun_adds_nothing(serial, tmp_path):
    home = _home(tmp_path)
    seen: list[str] = []
    jobs = jobs_for(SITES, _db(home), home, PARAMS)
    outcomes = run_fleet(jobs, workers=2, on_outcome=lambda o: seen.append(o.site_id))
    assert [o.site_id for o in outcomes] == list(SITES) and sorted(seen) == sorted(SITES)
    assert all(o.ok and o.processed == 8 for o in outcomes), outcomes
    assert len({o.worker for o in outcomes}) >= 1
    for sid in SITES:
        assert _snapshot(home, sid) == _snapshot(serial, sid), sid
    again = run_fleet(jobs, workers=2)
    assert all(o.ok and o.processed == 0 and o.reused == 8 for o in again), again


def test_an_unknown_site_is_its_own_outcome(tmp_path):
    home = _home(tmp_path)
    jobs = jobs_for(("alpha", "nowhere"), _db(home), home, PARAMS)
    out = {o.site_id: o for o in run_fleet(jobs, workers=1)}
    assert out["alpha"].ok and out["alpha"].processed == 8
    assert not out["nowhere"].ok and "nowhere" in (out["nowhere"].error or "")


def killed_once(job: SiteJob) -> SiteOutcome:
    """The task, but the first attempt at each site kills its own worker process (SIGKILL,
    no clean-up) after three scenes were stored."""
    marker = Path(job.home) / f"killed-{job.site_id}"
    if not marker.exists():
        marker.touch()
        from sitewatch.watch.params import RunParams

        def die(stage: str, done: int, _total: int) -> None:
            if stage == "process" and done >= 3:
                os.kill(os.getpid(), signal.SIGKILL)

        with Store.open_url(job.db) as store:
            run_site(store, job.site_id, RunParams.from_dict(job.params), progress=die,
                     products=Path(job.home) / "products")
    return run_job(job)


def test_a_worker_killed_mid_site_is_retried_and_the_store_matches_a_clean_run(serial,
                                                                              tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    home = _home(tmp_path)
    jobs = jobs_for(SITES[:2], _db(home), home, PARAMS)
    outcomes = run_fleet(jobs, workers=2, task=killed_once)
    assert all(o.ok for o in outcomes), outcomes
    for sid in SITES[:2]:
        assert (home / f"killed-{sid}").exists()  # the first attempt did die
        assert _snapshot(home, sid) == _snapshot(serial, sid), sid


@pytest.mark.filterwarnings("error:Port 8787 is already in use")
def test_cli_runs_several_sites_on_a_local_cluster(serial, tmp_path):
    """`sitewatch run A B --workers 1 --json` (and `--all`) print one outcome per site, with
    no dashboard (no warning that port 8787 is taken, which the test holds); a wrong
    combination is a usage error."""
    import shutil
    import socket

    busy = socket.socket()
    try:
        busy.bind(("", 8787))
        busy.listen()
    except OSError:
        pass  # already taken by someone else: just as busy

    from click.testing import CliRunner

    from sitewatch.cli.main import cli

    home = tmp_path / "home"
    shutil.copytree(serial, home)  # already run: the cluster finds nothing new
    r = CliRunner().invoke(cli, ["--home", str(home), "run", "alpha", "bravo", "--workers",
                                 "1", "--method", "ratio", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert [o["site_id"] for o in got] == ["alpha", "bravo"]
    assert all(o["ok"] and o["processed"] == 0 and o["reused"] == 8 for o in got)
    r = CliRunner().invoke(cli, ["--home", str(home), "run", "--all", "--workers", "1",
                                 "--method", "ratio", "--json"])
    assert r.exit_code == 0 and len(json.loads(r.output)) == len(SITES), r.output
    busy.close()
    assert "8787" not in r.output and "distributed" not in r.output
    for args in (["alpha", "--all"], [], ["alpha", "bravo", "--jsonl", "x.jsonl"],
                 ["alpha", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"]):
        r = CliRunner().invoke(cli, ["--home", str(home), "run", *args])
        assert r.exit_code == 2, (args, r.output)


def _trim_threshold() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def _grid_home(root: Path) -> Path:
    """A home with one site of three grids: an optical one (cloudy) and two SAR orbits."""
    from sitewatch.imagery.ingest import ingest
    from test_sar_watch import sar_site, write_cloudy_optical, write_s1_series

    write_s1_series(root / "s1")
    write_cloudy_optical(root / "s2", n=4)
    home = root / "home"
    with Store.open_home(home) as store:
        ingest(store, [root / "s1", root / "s2"], "sarsite", site=sar_site())
    return home


def test_a_site_s_grids_run_as_their_own_tasks_and_store_what_a_serial_run_does(tmp_path):
    """On a cluster, each grid of a site is processed by its own task while the site's task
    holds the lock, then the site's task scores: the store equals a serial run's, and the
    outcome counts every scene as processed once."""
    from distributed import get_task_stream

    from sitewatch.watch.fleet import fleet_client
    from sitewatch.watch.pipeline import site_grids

    params = RunParams()  # the sensors' own methods (test_pipeline's is optical only)
    serial_home = _grid_home(tmp_path / "serial")
    with Store.open_home(serial_home) as store:
        grids = site_grids(store, "sarsite")
        want = run_site(store, "sarsite", params, products=serial_home / "products")
    assert len(grids) == 3
    home = _grid_home(tmp_path / "cluster")
    with fleet_client(workers=2) as client, get_task_stream(client) as stream:
        # Workers keep glibc's own trim threshold (Dask's 64 KiB made scenes 1.6x slower).
        assert set(client.run(_trim_threshold).values()) == {None}
        (outcome,) = run_fleet(jobs_for(["sarsite"], _db(home), home, params), client=client)
    assert outcome.ok, outcome
    keys = {t["key"] if isinstance(t["key"], str) else str(t["key"]) for t in stream.data}
    assert {g for g in grids if any(f"sitewatch-grid-sarsite-{g}-" in k for k in keys)} \
        == set(grids)
    assert outcome.processed == len(want.processed) and outcome.reused == 0
    assert _snapshot(home, "sarsite", params) == _snapshot(serial_home, "sarsite", params)
    again = run_fleet(jobs_for(["sarsite"], _db(home), home, params), workers=1)
    assert again[0].ok and again[0].processed == 0 and again[0].reused == len(want.processed)
