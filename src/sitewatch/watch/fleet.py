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

Dask is an optional extra (``pip install 'sitewatch[cluster]'``); nothing else in sitewatch
imports it.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sitewatch.errors import MissingExtraError, SitewatchError
from sitewatch.watch.params import PipelineError, RunParams

log = logging.getLogger(__name__)

#: How often Dask runs a task again after its worker died (a killed process, a lost
#: machine); sitewatch errors are not retried.
RETRIES = 3
CLUSTER_HELP = "many sites at once needs Dask: pip install 'sitewatch[cluster]'"


@dataclass(frozen=True)
class SiteJob:
    """One site's run, as plain data a task can carry to another process or machine."""

    site_id: str
    db: str  # the store's SQLAlchemy URL
    home: str  # the sitewatch home: site locks and change products
    params: dict[str, Any] = field(default_factory=dict)  # RunParams.to_dict()


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

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def run_job(job: SiteJob) -> SiteOutcome:
    """The task: open the store, take the site's lock, run the site.  A sitewatch error is
    the outcome (not retried); anything else (a killed process, a lost connection) raises,
    and Dask runs the task again."""
    from sitewatch.store import Store
    from sitewatch.watch.locks import site_lock
    from sitewatch.watch.pipeline import run_site

    worker = f"{os.uname().nodename}:{os.getpid()}"
    t0 = time.perf_counter()
    try:
        with Store.open_url(job.db) as store, \
                site_lock(Path(job.home), job.site_id, purpose="sitewatch run (cluster)",
                          wait=True, store=store):
            rep = run_site(store, job.site_id, RunParams.from_dict(job.params),
                           products=Path(job.home) / "products")
    except SitewatchError as exc:
        return SiteOutcome(job.site_id, seconds=time.perf_counter() - t0, error=str(exc),
                           worker=worker)
    statuses: dict[str, int] = {}
    for _scene, status, _why in rep.processed:
        statuses[status] = statuses.get(status, 0) + 1
    return SiteOutcome(job.site_id, len(rep.processed), rep.reused,
                       len(rep.alerts.get("new", [])), len(rep.alerts.get("updated", [])),
                       round(time.perf_counter() - t0, 3), statuses, None, worker)


def jobs_for(site_ids: Iterable[str], db: str, home: str | Path, params: RunParams
             ) -> list[SiteJob]:
    """One job per site (in the order given, each once)."""
    return [SiteJob(s, db, str(home), params.to_dict()) for s in dict.fromkeys(site_ids)]


def _client(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtraError(CLUSTER_HELP) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise PipelineError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}"
                                ) from None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_fleet(jobs: Sequence[SiteJob], *, scheduler: str | None = None,
              workers: int | None = None,
              progress: Callable[[str, int, int], None] | None = None,
              on_outcome: Callable[[SiteOutcome], None] | None = None,
              retries: int = RETRIES,
              task: Callable[[SiteJob], SiteOutcome] = run_job) -> list[SiteOutcome]:
    """Run every job on a Dask cluster (``scheduler``: its address; else a local cluster of
    ``workers`` processes, by default one per core) and return the outcomes in the jobs'
    order.  ``progress("sites", done, total)`` and ``on_outcome`` are called as each site
    finishes.  A task that failed after its retries is an outcome with its error.  ``task``
    is what runs each job (:func:`run_job`; tests put a faulty one in its place)."""
    if not jobs:
        return []
    tick = progress or (lambda *_: None)
    client, cluster = _client(scheduler, workers)
    try:
        from distributed import as_completed

        run = uuid.uuid4().hex[:8]
        futures = {client.submit(task, j, key=f"sitewatch-run-{j.site_id}-{run}",
                                 pure=False, retries=retries): j for j in jobs}
        done: dict[str, SiteOutcome] = {}
        tick("sites", 0, len(jobs))
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
        return [done[j.site_id] for j in jobs]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["RETRIES", "SiteJob", "SiteOutcome", "jobs_for", "run_fleet", "run_job"]
