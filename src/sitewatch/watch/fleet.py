"""Many sites at once: each site's run as one task on a Dask cluster.

:func:`run_fleet` sends one task per site (:func:`run_job`) to a Dask ``distributed``
scheduler: a :class:`~distributed.LocalCluster` of worker *processes* on this machine by
default, or any scheduler address for a real cluster.  What a task carries is plain data
(:class:`SiteJob`: the site id, the store's URL, the home folder, the run's parameters):
rasterio datasets and database connections do not pickle, so every task opens its own store
connection and its own files.

A task is idempotent: :func:`~sitewatch.watch.pipeline.run_site` processes only the scenes
with no stored result for the parameters (each scene is committed in its own transaction) and
alerts are keyed by their id, so a task run twice, or retried after its worker was killed
half-way, stores what one clean run stores, never twice.  Dask retries a task whose worker
died (``retries``); an error in the input (a sitewatch error: no such site, no scenes) is not
retried: it is the site's outcome, and the other sites go on.

Two tasks never work on one site together: each holds the site's lock
(:func:`~sitewatch.watch.locks.site_lock`, a file lock under the home) for its run, as
``sitewatch run`` does.  With several machines the home must be on a shared file system (the
lock, and the change products the briefs draw), and the store should be PostgreSQL: SQLite is
one file that one machine writes.

A site with several grids (an optical one, SAR orbits) has each grid processed by its own
task (:func:`run_grid`) while the site's task holds the lock and waits without holding a
worker slot; the site's task then scores and delivers.

A caller that runs fleets again and again (``sitewatch watch --workers``, a cycle every few
hours) starts the cluster once with :func:`fleet_client` and hands the client to each
:func:`run_fleet`.  A local cluster starts without its web dashboard (set
``SITEWATCH_DASK_DASHBOARD`` to an address such as ``:8787`` to have one), so two clusters on
one machine do not fight over port 8787.

A task that is told the name of a stop :class:`distributed.Event` (``SiteJob.stop``) checks
it between scenes and ends after the scene in hand once it is set (``SiteOutcome.stopped``),
as a watch's run step does on Ctrl-C.

Dask is an optional extra (``pip install 'sitewatch[cluster]'``); nothing else in sitewatch
imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sitewatch.errors import MissingExtraError, SitewatchError
from sitewatch.watch.params import PipelineError, RunParams, RunReport

log = logging.getLogger(__name__)

#: How often Dask runs a task again after its worker died (a killed process, a lost
#: machine); sitewatch errors are not retried.
RETRIES = 3
CLUSTER_HELP = "many sites at once needs Dask: pip install 'sitewatch[cluster]'"
#: The environment variable that asks a local cluster for its web dashboard (an address such
#: as ``:8787``); without it there is none.
DASHBOARD_ENV = "SITEWATCH_DASK_DASHBOARD"
#: How often (seconds at most) a task asks the scheduler whether a stop was requested.
STOP_POLL_S = 0.5


@dataclass(frozen=True)
class SiteJob:
    """One site's run, as plain data a task can carry to another process or machine."""

    site_id: str
    db: str  # the store's SQLAlchemy URL
    home: str  # the sitewatch home: site locks and change products
    params: dict[str, Any] = field(default_factory=dict)  # RunParams.to_dict()
    purpose: str = "sitewatch run (cluster)"  # written in the site's lock file
    wait: bool = True  # wait for the site's lock (a run) or skip a busy site (a watch)
    stop: str | None = None  # the name of a distributed.Event that asks the task to stop


@dataclass(frozen=True)
class SiteOutcome:
    """What one site's task did (``error``: why it could not run; nothing was lost)."""

    site_id: str
    processed: int = 0
    reused: int = 0
    new_alerts: int = 0
    updated_alerts: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    skipped: str | None = None  # the holder of the site's lock, when it was busy (no wait)
    stopped: bool = False  # a stop was requested: the scenes stored before it are kept
    failures: dict[str, str] = field(default_factory=dict)  # scene -> why it failed

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def run_job(job: SiteJob) -> SiteOutcome:
    """The task: open the store, take the site's lock, run the site.  A sitewatch error is
    the outcome (not retried); anything else (a killed process, a lost connection) raises,
    and Dask runs the task again.  A busy site (``job.wait`` False) is ``skipped``; a stop
    requested through ``job.stop`` ends the run after the scene in hand (``stopped``)."""
    from sitewatch.store import Store
    from sitewatch.watch.locks import SiteBusyError, describe_holder, site_lock
    from sitewatch.watch.pipeline import run_site, site_grids

    worker = f"{os.uname().nodename}:{os.getpid()}"
    t0 = time.perf_counter()
    check = _stop_check(job.stop)
    try:
        check()
        with Store.open_url(job.db) as store, \
                site_lock(Path(job.home), job.site_id, purpose=job.purpose, wait=job.wait,
                          store=store):
            grids = _grid_reports(job, site_grids(store, job.site_id))
            rep = run_site(store, job.site_id, RunParams.from_dict(job.params),
                           products=Path(job.home) / "products", progress=check,
                           processed_elsewhere=grids)
    except _Stopped:
        return SiteOutcome(job.site_id, seconds=time.perf_counter() - t0, worker=worker,
                           stopped=True)
    except SiteBusyError as exc:
        return SiteOutcome(job.site_id, seconds=time.perf_counter() - t0, worker=worker,
                           skipped=describe_holder(exc.holder))
    except SitewatchError as exc:
        return SiteOutcome(job.site_id, seconds=time.perf_counter() - t0, error=str(exc),
                           worker=worker)
    statuses: dict[str, int] = {}
    for _scene, status, _why in rep.processed:
        statuses[status] = statuses.get(status, 0) + 1
    return SiteOutcome(job.site_id, len(rep.processed), rep.reused,
                       len(rep.alerts.get("new", [])), len(rep.alerts.get("updated", [])),
                       round(time.perf_counter() - t0, 3), statuses, None, worker,
                       failures={str(sc): str(why) for sc, status, why in rep.processed
                                 if status == "failed"})


def _grid_reports(job: SiteJob, keys: Sequence[str]) -> list[RunReport]:
    """Each of a site's grids processed by its own task on the cluster this task runs on
    (none when the site has one grid, or outside a Dask worker): the site's task holds
    the site's lock for them, and gives up its worker slot while it waits
    (``worker_client``).  A stop reaches them as it reaches the site's task."""
    if len(keys) < 2:
        return []
    try:
        from distributed import worker_client
        from distributed.worker import get_worker

        get_worker()
    except (ImportError, ValueError):
        return []
    run = uuid.uuid4().hex[:8]
    with worker_client() as client:
        futures = [client.submit(run_grid, job, key, key=f"sitewatch-grid-{job.site_id}-{key}-"
                                 f"{run}", pure=False, retries=RETRIES) for key in keys]
        reports: list[tuple[RunReport, bool]] = client.gather(futures)
    if any(stopped for _, stopped in reports):
        raise _Stopped("stop requested")
    return [rep for rep, _ in reports]


def run_grid(job: SiteJob, grid: str) -> tuple[RunReport, bool]:
    """The task for one grid of a site (see :func:`_grid_reports`): its scenes processed,
    nothing scored.  Whether a stop cut it short comes back with the report (the site's
    task then stops)."""
    from sitewatch.store import Store
    from sitewatch.watch.pipeline import run_site

    check = _stop_check(job.stop)
    params = RunParams.from_dict(job.params)
    with Store.open_url(job.db) as store:
        try:
            return run_site(store, job.site_id, params, products=Path(job.home) / "products",
                            progress=check, grids=[grid]), False
        except _Stopped:
            return RunReport(job.site_id, params), True


class _Stopped(KeyboardInterrupt):
    """Raised between scenes when a stop was requested: a KeyboardInterrupt, so that the
    pipeline's per-scene handlers let it through (as Ctrl-C) and the scene in hand rolls
    back; :func:`run_job` turns it into a stopped outcome (Dask never sees it)."""


def _stop_check(name: str | None) -> Callable[..., None]:
    """A progress callback that raises :class:`_Stopped` once the stop event ``name`` is
    set (asking the scheduler at most every :data:`STOP_POLL_S`); a no-op without one."""
    if name is None:
        return lambda *_a, **_kw: None
    from distributed import Event

    event = Event(name)
    last = [float("-inf")]

    def check(*_a: Any, **_kw: Any) -> None:
        now = time.monotonic()
        if now - last[0] < STOP_POLL_S:
            return
        last[0] = now
        if event.is_set():
            raise _Stopped("stop requested")

    return check


def jobs_for(site_ids: Iterable[str], db: str, home: str | Path, params: RunParams
             ) -> list[SiteJob]:
    """One job per site (in the order given, each once)."""
    return [SiteJob(s, db, str(home), params.to_dict()) for s in dict.fromkeys(site_ids)]


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own log messages (a line per worker started, per client connected...) only
    when sitewatch logs at debug level: they reach the root logger's handler, and a local
    cluster is a detail of the command, not its output (``silence_logs`` quiets only the
    handlers Dask added itself)."""
    dlog = logging.getLogger("distributed")
    old = dlog.level
    if not logging.getLogger("sitewatch").isEnabledFor(logging.DEBUG):
        dlog.setLevel(logging.ERROR)
    try:
        yield
    finally:
        dlog.setLevel(old)


def _ignore_interrupt_plugin() -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreInterrupt(WorkerPlugin):
        """Local workers ignore SIGINT: Ctrl-C in a terminal reaches the whole process
        group, and a worker it killed would lose the scene in hand (and be restarted);
        the process that owns the cluster decides what Ctrl-C does and closes them."""

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupt()


@contextlib.contextmanager
def fleet_client(*, scheduler: str | None = None, workers: int | None = None
                 ) -> Iterator[Any]:
    """A Dask client for :func:`run_fleet`, closed (with its local cluster: no worker
    process outlives the block) on the way out, an exception or a KeyboardInterrupt
    included.  ``scheduler``: the address of a running scheduler; else a local cluster of
    ``workers`` processes (one per core by default), one thread each, without a dashboard
    unless ``$SITEWATCH_DASK_DASHBOARD`` names its address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtraError(CLUSTER_HELP) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise PipelineError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}"
                                ) from None
        with contextlib.closing(client):
            yield client
        return
    n = workers or os.cpu_count() or 1
    dashboard = os.environ.get(DASHBOARD_ENV, "").strip()
    # dashboard_address=None would still start the scheduler's HTTP server on 8787 and warn
    # "Port 8787 is already in use" when another cluster has it: a free port, no dashboard.
    import dask

    # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, so that glibc gives freed
    # memory back at once; a scene's tens of MB of temporaries are then mapped afresh (page
    # faults) on every allocation: a new scene on the 2000 px site took 10.9 s instead of
    # 6.8 s.  Local workers keep glibc's own (adaptive) thresholds; a scheduler's workers
    # are configured where they are started (docs/scale.md).
    with _quiet_dask(), dask.config.set(
            {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=dashboard or ":0",
                               scheduler_kwargs={"dashboard": bool(dashboard)},
                               silence_logs=logging.ERROR)
        with contextlib.closing(cluster), contextlib.closing(Client(cluster)) as client:
            client.register_plugin(_ignore_interrupt_plugin(),
                                   name="sitewatch-ignore-sigint")
            log.debug("local Dask cluster of %d worker(s) at %s", n,
                      cluster.scheduler_address)
            yield client


def run_fleet(jobs: Sequence[SiteJob], *, scheduler: str | None = None,
              workers: int | None = None, client: Any = None,
              progress: Callable[[str, int, int], None] | None = None,
              on_outcome: Callable[[SiteOutcome], None] | None = None,
              retries: int = RETRIES,
              task: Callable[[SiteJob], SiteOutcome] = run_job) -> list[SiteOutcome]:
    """Run every job on a Dask cluster and return the outcomes in the jobs' order: on
    ``client`` (from :func:`fleet_client`, left open), else on a cluster started for these
    jobs alone (``scheduler``: its address; else ``workers`` local processes, by default one
    per core).  ``progress("sites", done, total)`` and ``on_outcome`` are called as each
    site finishes.  A task that failed after its retries is an outcome with its error.
    ``task`` is what runs each job (:func:`run_job`; tests put a faulty one in its place)."""
    if not jobs:
        return []
    if client is None:
        with fleet_client(scheduler=scheduler, workers=workers) as own:
            return _submit(own, jobs, progress, on_outcome, retries, task)
    return _submit(client, jobs, progress, on_outcome, retries, task)


def _submit(client: Any, jobs: Sequence[SiteJob],
            progress: Callable[[str, int, int], None] | None,
            on_outcome: Callable[[SiteOutcome], None] | None, retries: int,
            task: Callable[[SiteJob], SiteOutcome]) -> list[SiteOutcome]:
    from distributed import as_completed

    tick = progress or (lambda *_: None)
    run = uuid.uuid4().hex[:8]
    futures = {client.submit(task, j, key=f"sitewatch-run-{j.site_id}-{run}",
                             pure=False, retries=retries): j for j in jobs}
    done: dict[str, SiteOutcome] = {}
    tick("sites", 0, len(jobs))
    try:
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # the task failed on every try: say why, go on
                outcome = SiteOutcome(job.site_id, error=f"{type(exc).__name__}: {exc}")
            done[job.site_id] = outcome
            if on_outcome:
                on_outcome(outcome)
            tick("sites", len(done), len(jobs))
    finally:
        left = [f for f in futures if not f.done()]
        if left:  # an interrupted wait: leave no task behind on a shared cluster
            client.cancel(left)
    return [done[j.site_id] for j in jobs]


__all__ = ["DASHBOARD_ENV", "RETRIES", "SiteJob", "SiteOutcome", "fleet_client", "jobs_for",
           "run_fleet", "run_grid", "run_job"]
