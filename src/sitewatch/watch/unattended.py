"""Unattended watching (``sitewatch watch``): cycles of sync, run, assess and deliver.

One **cycle** of a site (:func:`watch_cycle`), with the site's lock held
(:mod:`sitewatch.watch.locks`; a site another process holds is skipped this cycle):

1. **sync**: new Items of the site's STAC sources catalogued as scenes
   (:func:`sitewatch.sources.sync.sync_site`; a site without sources has nothing to sync);
2. **run**: the new scenes processed and every part's series scored into alerts
   (:func:`~sitewatch.watch.pipeline.run_site`, with the parameters of the site's latest run,
   or the defaults for a site never run);
3. **assess**: the launch / engine-test assessment as of today
   (:func:`~sitewatch.warning.record.assess_site`), kept as a one-line headline;
4. **deliver**: every alert event still pending for each sink subscribed to the site
   (:func:`~sitewatch.watch.sinks.deliver_pending`), this cycle's and any an earlier cycle
   could not deliver.

A step that raises is recorded as failed with a one-line reason and the next steps still
run (a catalogue that cannot be reached does not keep the scenes already catalogued from
being processed, nor pending alerts from being delivered).  Nothing is left half-done: sync
and run store each scene in its own transaction, a failure rolls back only the scene in hand,
and the next cycle starts from what is stored.  The cycle's outcome is a
:class:`CycleReport`, whose :meth:`~CycleReport.line` is the log line.

:func:`watch_forever` runs cycles of several sites every ``every`` until ``stop_event`` is
set.  A stop requested during a cycle is honoured at the next safe point: between scenes
(the scene in hand is committed first), between steps, or while waiting for the next cycle;
a delivery under way is finished (a webhook within its delivery budget).  The library never
prints: lines go to :mod:`logging` (logger ``sitewatch.watch.unattended``) and to an
optional callback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time as _time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sitewatch.errors import SiteError, SitewatchError
from sitewatch.store import Store
from sitewatch.times import iso
from sitewatch.watch.locks import SiteBusyError, describe_holder, site_lock
from sitewatch.watch.params import RunParams

log = logging.getLogger(__name__)

#: What a watcher writes in the lock file of the site it works on.
PURPOSE = "sitewatch watch"
STEPS = ("sync", "run", "assess", "deliver")
#: The shortest interval between cycles without ``allow_short``: public STAC catalogues add
#: Items hours after acquisition (Sentinel-2 revisits a site every 2-5 days), so polling more
#: often than this finds nothing new and only risks being rate limited (HTTP 429); a cycle of
#: a large site can also take minutes, so shorter intervals just run cycles back to back.
MIN_EVERY = timedelta(minutes=5)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class WatchError(SitewatchError, ValueError):
    """A watch cannot start as asked (an interval that cannot be read, or is too short)."""


def parse_every(text: str, *, allow_short: bool = False) -> timedelta:
    """An interval such as ``30m``, ``6h``, ``1d``, ``90s`` or ``1h30m``; shorter than
    :data:`MIN_EVERY` only with ``allow_short``.

    >>> parse_every("6h"), parse_every("1h30m")
    (datetime.timedelta(seconds=21600), datetime.timedelta(seconds=5400))
    """
    s = text.strip().lower()
    total, num = 0.0, ""
    for ch in s:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in _UNITS and num and num.count(".") <= 1:
            total += float(num) * _UNITS[ch]
            num = ""
        else:
            num = "!"
            break
    if not s or num:
        raise WatchError(f"interval {text!r} is not a duration such as 30m, 6h, 1d or 1h30m")
    every = timedelta(seconds=total)
    if every <= timedelta(0):
        raise WatchError(f"interval {text!r} must be longer than zero")
    if every < MIN_EVERY and not allow_short:
        raise WatchError(f"interval {text!r} is shorter than {_span(MIN_EVERY)}: catalogues "
                         "add Items hours apart, so this only adds load (give --allow-short "
                         "to run it anyway)")
    return every


def _span(td: timedelta) -> str:
    s = int(td.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


# ------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Step:
    """One step of a cycle: ``outcome`` is ``ok``, ``failed``, ``stopped`` (a stop was
    requested), ``not run`` (a stop came before it), ``skipped`` (with ``--workers``: another
    process held the site's lock by then), or what there was to do: ``no sources``, ``no
    scenes``, ``no sinks``."""

    name: str
    outcome: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class CycleReport:
    """What one cycle of one site did (see the module notes); ``skipped`` names the process
    holding the site's lock when the cycle did not run."""

    site: str
    cycle: int
    started: datetime
    seconds: float
    steps: tuple[Step, ...] = ()
    new_scenes: int = 0
    scenes_processed: int = 0
    scenes_failed: int = 0
    new_alerts: int = 0
    updated_alerts: int = 0
    events_delivered: int = 0
    events_pending: int = 0
    delivery_failures: int = 0
    assessment: str | None = None
    errors: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def stopped(self) -> bool:
        return any(s.outcome in ("stopped", "not run") for s in self.steps)

    @property
    def ok(self) -> bool:
        """No step failed, no scene failed, nothing left pending for a sink (a skipped
        cycle is ok: the holder of the lock is doing the work)."""
        return not self.errors and not self.events_pending

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        if not self.ok:
            return "FAILED"
        return "stopped" if self.stopped else "ok"

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def line(self) -> str:
        """One line for the log: the site, the cycle, its status and what each step did."""
        head = f"{self.site} cycle {self.cycle} {self.status}"
        if self.skipped is not None:
            return f"{head}: {self.skipped} holds the site's lock; the next cycle tries again"
        parts = []
        for s in self.steps:
            if s.outcome == "ok" and s.name == "run":
                text = (f"run {self.scenes_processed} scene(s)"
                        + (f" ({self.scenes_failed} failed)" if self.scenes_failed else "")
                        + f", {self.new_alerts} new alert(s), {self.updated_alerts} updated")
            elif s.outcome == "ok" and s.name == "deliver":
                text = f"delivered {self.events_delivered} event(s)"
                if self.events_pending:
                    text += (f", {self.events_pending} pending ({self.delivery_failures} "
                             "sink(s) failed)")
            elif s.outcome == "ok" and s.detail:
                text = f"{s.name} {s.detail}"
            else:
                text = f"{s.name} {s.outcome}" + (
                    f": {s.detail}" if s.failed or s.outcome == "skipped" else "")
            parts.append(text)
        line = f"{head} in {self.seconds:.1f} s: " + "; ".join(parts)
        other = [e for e in self.errors
                 if not any(s.failed and s.detail == e for s in self.steps)]
        if other:
            line += " | " + "; ".join(other)
        return _one_line(line)

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "cycle": self.cycle, "started": iso(self.started),
                "seconds": round(self.seconds, 3), "status": self.status, "ok": self.ok,
                "steps": [s.to_dict() for s in self.steps], "new_scenes": self.new_scenes,
                "scenes_processed": self.scenes_processed,
                "scenes_failed": self.scenes_failed, "new_alerts": self.new_alerts,
                "updated_alerts": self.updated_alerts,
                "events_delivered": self.events_delivered,
                "events_pending": self.events_pending,
                "delivery_failures": self.delivery_failures, "assessment": self.assessment,
                "errors": list(self.errors), "skipped": self.skipped}


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _why(exc: BaseException) -> str:
    """An exception in one line: sitewatch's own errors by their message, others with their
    type (a bug or an environment fault: the traceback goes to the debug log)."""
    msg = _one_line(str(exc), 400)
    if isinstance(exc, SitewatchError):
        return msg or type(exc).__name__
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# ------------------------------------------------------------------------------ the steps

@dataclass(frozen=True)
class SyncOutcome:
    """What the sync step did: its one-line ``summary``, scenes ``added``, Items ``failed``
    (a cycle with failed Items is reported failed; the next sync tries them again)."""

    summary: str
    added: int
    failed: int = 0


#: sync(store, site_id, *, start, progress) -> SyncOutcome, or None when the site has no
#: sources to sync from.
SyncStep = Callable[..., "SyncOutcome | None"]


def _sync_step(store: Store, site_id: str, *, start: date | None,
               progress: Callable[..., None], cache: Path | None = None
               ) -> SyncOutcome | None:
    """Catalogue the site's new STAC Items (None: the site has no sources to sync)."""
    from sitewatch.sources.sync import sync_site

    if not store.sources(site_id):
        return None
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC) if start else None
    # The STAC cache lives under the home (a server store has no folder of its own).
    report = sync_site(store, site_id, start=since, progress=progress, cache=cache)
    return SyncOutcome(_one_line(report.summary(), 300), len(report.added),
                       len(report.failed))


def _stopper(stop_event: threading.Event | None) -> Callable[..., None]:
    """A progress callback that interrupts the step at its next safe point (after the scene
    in hand is stored) once a stop is requested."""

    def check(*_a: Any, **_kw: Any) -> None:
        if stop_event is not None and stop_event.is_set():
            # KeyboardInterrupt, not an Exception: the pipeline's per-scene handlers let it
            # through, as they let Ctrl-C, and every transaction open rolls back.
            raise KeyboardInterrupt("stop requested")

    return check


@dataclass
class _Cycle:
    """The counts of a cycle as its steps fill them."""

    steps: list[Step] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    assessment: str | None = None

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def not_run(self) -> None:
        """The steps after the last one recorded did not run (a stop was requested)."""
        for rest in STEPS[len(self.steps):]:
            self.steps.append(Step(rest, "not run"))


def _guard(cyc: _Cycle, name: str, stop_event: threading.Event | None,
           fn: Callable[[], tuple[str, str]]) -> bool:
    """Run one step; record its outcome.  Returns False when the cycle must stop."""
    if stop_event is not None and stop_event.is_set():
        cyc.steps.append(Step(name, "not run"))
        return False
    try:
        outcome, detail = fn()
    except KeyboardInterrupt:
        if stop_event is None or not stop_event.is_set():
            raise  # a real Ctrl-C in a caller's own loop
        cyc.steps.append(Step(name, "stopped", "a stop was requested; what is done is kept"))
        return False
    except Exception as exc:  # a failed step fails the cycle, never the watch
        why = _why(exc)
        log.debug("%s failed", name, exc_info=True)
        cyc.steps.append(Step(name, "failed", why))
        cyc.errors.append(why)
        return True
    cyc.steps.append(Step(name, outcome, detail))
    return True


def _params_of(store: Store, site_id: str) -> RunParams:
    """The parameters of the site's latest run (so a watch continues what ``sitewatch run``
    started rather than recomputing everything), else the defaults."""
    last = store.last_run(site_id, finished=True) or store.last_run(site_id)
    if last is None:
        return RunParams()
    try:
        return RunParams.from_dict(dict(last.params))
    except (TypeError, ValueError) as exc:
        log.warning("%s: the latest run's parameters cannot be reused (%s); using the "
                    "defaults", site_id, exc)
        return RunParams()


def headline(assessment: Any) -> str:
    """``launch possible 18% within 30 d (2024-05-31 to 2024-06-11); engine_test unlikely
    3% within 30 d`` from an assessment."""
    out = []
    for event in ("launch", "engine_test"):
        a = assessment.event(event)
        text = f"{event} {a.level} {a.likelihood:.0%} within {a.horizon_days:g} d"
        if a.window is not None and a.window.start is not None:
            text += f" ({a.window.start} to {a.window.end})"
        out.append(text)
    return ", ".join(out)


def watch_cycle(store: Store, site_id: str, *, cycle: int = 1, home: str | Path | None = None,
                start: date | None = None, stop_event: threading.Event | None = None,
                sync: SyncStep | None = None, webhook: Mapping[str, Any] | None = None,
                today: date | None = None) -> CycleReport:
    """One cycle of ``site_id`` (see the module notes).  With ``home``, the site's lock is
    held for the cycle (a site whose lock another process holds is skipped: the report says
    who), products are kept under ``home/products`` and ``home/indicators/*.toml`` feed the
    assessment.  ``sync``: the sync step (default: ``sources.sync.sync_site`` for a site
    with sources);
    ``webhook``: options for the webhook sinks (``drain_s``...); ``today``: the assessment's
    date.  Never raises for a failed step: the report holds the errors."""
    started, t0 = datetime.now(UTC), _time.perf_counter()
    with contextlib.ExitStack() as stack:
        if home is not None:
            try:
                stack.enter_context(site_lock(home, site_id, purpose=PURPOSE, store=store))
            except SiteBusyError as exc:
                return CycleReport(site_id, cycle, started, _time.perf_counter() - t0,
                                   skipped=describe_holder(exc.holder))
        cyc = _Cycle()
        _run_steps(cyc, store, site_id, home=Path(home) if home is not None else None,
                   start=start, stop_event=stop_event,
                   sync=sync or functools.partial(
                       _sync_step, cache=Path(home) / "cache" if home is not None else None),
                   webhook=webhook, today=today)
    return _report(site_id, cycle, started, t0, cyc)


def _run_steps(cyc: _Cycle, store: Store, site_id: str, *, home: Path | None,
               start: date | None, stop_event: threading.Event | None, sync: SyncStep,
               webhook: Mapping[str, Any] | None, today: date | None) -> None:
    steps = _Steps(cyc, store, site_id, home=home, start=start, stop_event=stop_event,
                   sync=sync, webhook=webhook, today=today)
    for name, fn in zip(STEPS, (steps.sync, steps.run, steps.assess, steps.deliver),
                        strict=True):
        if not _guard(cyc, name, stop_event, fn):
            cyc.not_run()
            return


class _Steps:
    """The four steps of one site's cycle, each filling ``cyc``; ``run`` is split in
    :meth:`run_params` (what to run, in the watch process) and the run itself (here, or as
    a task on a cluster: :func:`_fleet_round`)."""

    cyc: _Cycle
    store: Store
    site_id: str
    home: Path | None
    start: date | None
    stop_event: threading.Event | None
    sync_fn: SyncStep
    webhook: Mapping[str, Any] | None
    today: date | None
    params_hash: str | None

    def __init__(self, cyc: _Cycle, store: Store, site_id: str, *, home: Path | None,
                 start: date | None, stop_event: threading.Event | None, sync: SyncStep,
                 webhook: Mapping[str, Any] | None, today: date | None) -> None:
        self.cyc, self.store, self.site_id, self.home = cyc, store, site_id, home
        self.start, self.stop_event, self.sync_fn = start, stop_event, sync
        self.webhook, self.today, self.params_hash = webhook, today, None
        self.check = _stopper(stop_event)

    def sync(self) -> tuple[str, str]:
        got = self.sync_fn(self.store, self.site_id, start=self.start, progress=self.check)
        if got is None:
            return "no sources", ""
        self.cyc.add("new_scenes", got.added)
        if got.failed:
            self.cyc.errors.append(f"sync: {got.failed} Item(s) failed")
        return "ok", got.summary

    def run_params(self) -> RunParams | None:
        """The parameters to run the site with, None when it has no scenes to run."""
        if self.store.use_site(self.site_id) is None:
            raise SiteError(f"no site {self.site_id!r} in the catalogue (see `sitewatch site "
                            "list`)")
        params = _params_of(self.store, self.site_id)
        self.params_hash = params.hash
        if not any(s.georeferenced for s in self.store.scenes(self.site_id)):
            return None
        return params

    def run(self) -> tuple[str, str]:
        from sitewatch.watch.pipeline import run_site

        params = self.run_params()
        if params is None:
            return "no scenes", ""
        rep = run_site(self.store, self.site_id, params, progress=self.check,
                       products=self.home / "products" if self.home is not None else None)
        failures = {sc: why for sc, status, why in rep.processed if status == "failed"}
        self.ran(len(rep.processed), failures, len(rep.alerts.get("new", [])),
                 len(rep.alerts.get("updated", [])))
        return "ok", ""

    def ran(self, processed: int, failures: Mapping[str, str], new: int, updated: int
            ) -> None:
        """Count what the run did (here or on a cluster's worker)."""
        self.cyc.add("processed", processed)
        for sc, why in failures.items():
            self.cyc.add("failed", 1)
            self.cyc.errors.append(_one_line(f"scene {sc} failed: {why}", 300))
        self.cyc.add("new", new)
        self.cyc.add("updated", updated)

    def assess(self) -> tuple[str, str]:
        from sitewatch.warning.indicators import user_files
        from sitewatch.warning.record import assess_site

        site = self.store.use_site(self.site_id)
        if site is None:
            return "not run", ""
        a = assess_site(self.store, site, at=self.today, indicator_files=user_files(self.home))
        self.cyc.assessment = headline(a)
        return "ok", self.cyc.assessment

    def deliver(self) -> tuple[str, str]:
        from sitewatch.watch.sinks import deliver_pending, sink_of

        store, site_id = self.store, self.site_id
        site = store.use_site(site_id)
        keys = store.sinks_of(site_id) if site is not None else []
        if site is None or not keys:
            return "no sinks", ""
        ph = self.params_hash or _params_of(store, site_id).hash
        sinks = []
        try:
            for k in keys:
                sinks.append(sink_of(k, lambda s: store.alerts(s, params_hash=ph),
                                     webhook=self.webhook))
            got = deliver_pending(store, site, sinks)
        finally:
            for s in sinks:
                s.close()
        for d in got:
            self.cyc.add("delivered", d.delivered)
            self.cyc.add("pending", d.pending)
            if d.error or d.pending:
                self.cyc.add("sink_failures", 1)
                self.cyc.errors.append(_one_line(f"{d.sink}: {d.error or 'events left pending'}",
                                                 300))
        return "ok", ""


def _report(site_id: str, cycle: int, started: datetime, t0: float, cyc: _Cycle
            ) -> CycleReport:
    c = cyc.counts
    return CycleReport(site_id, cycle, started, _time.perf_counter() - t0, tuple(cyc.steps),
                       new_scenes=c.get("new_scenes", 0),
                       scenes_processed=c.get("processed", 0),
                       scenes_failed=c.get("failed", 0), new_alerts=c.get("new", 0),
                       updated_alerts=c.get("updated", 0),
                       events_delivered=c.get("delivered", 0),
                       events_pending=c.get("pending", 0),
                       delivery_failures=c.get("sink_failures", 0),
                       assessment=cyc.assessment, errors=tuple(cyc.errors))


# ------------------------------------------------------------------ the run on a cluster


def _fleet_round(store: Store, site_ids: Sequence[str], cycle: int, client: Any, *,
                 stop_event: threading.Event, home: str | Path, start: date | None = None,
                 sync: SyncStep | None = None, webhook: Mapping[str, Any] | None = None,
                 today: date | None = None) -> list[CycleReport]:
    """One round of cycles whose run steps are tasks on a Dask cluster (``client``, from
    :func:`sitewatch.watch.fleet.fleet_client`): each site is synced here (its lock held),
    then every site's run goes to the cluster at once (each task takes the site's lock; a
    site busy by then is skipped), then each site is assessed and delivered here (its lock
    held again).  A stop requested meanwhile ends every task after the scene in hand."""
    from sitewatch.watch.fleet import SiteJob, run_fleet

    home = Path(home)
    sync_fn = sync or functools.partial(_sync_step, cache=home / "cache")
    db = store.engine.url.render_as_string(hide_password=False)
    stop_name = f"sitewatch-watch-stop-{uuid.uuid4().hex[:12]}"
    reports: dict[str, CycleReport] = {}
    todo: dict[str, tuple[datetime, float, _Steps]] = {}
    jobs: list[SiteJob] = []
    for site_id in site_ids:
        if stop_event.is_set():
            break
        started, t0 = datetime.now(UTC), _time.perf_counter()
        steps = _Steps(_Cycle(), store, site_id, home=home, start=start, stop_event=stop_event,
                       sync=sync_fn, webhook=webhook, today=today)
        try:
            with site_lock(home, site_id, purpose=PURPOSE, store=store):
                params = _prepare(steps)
        except SiteBusyError as exc:
            reports[site_id] = CycleReport(site_id, cycle, started, _time.perf_counter() - t0,
                                           skipped=describe_holder(exc.holder))
            continue
        todo[site_id] = (started, t0, steps)
        if params is not None:
            jobs.append(SiteJob(site_id, db, str(home), params.to_dict(),
                                purpose=f"{PURPOSE} (cluster)", wait=False, stop=stop_name))
    for outcome in _run_on(client, jobs, stop_event, stop_name, run_fleet):
        _ran(todo[outcome.site_id][2], outcome)
    for site_id, (started, t0, steps) in todo.items():
        _assess_and_deliver(steps, home)
        reports[site_id] = _report(site_id, cycle, started, t0, steps.cyc)
    return [reports[s] for s in site_ids if s in reports]


def _prepare(steps: _Steps) -> RunParams | None:
    """Sync the site and find what to run on the cluster (None: nothing; the run step is
    then recorded here)."""
    cyc, stop = steps.cyc, steps.stop_event
    if not _guard(cyc, "sync", stop, steps.sync):
        cyc.not_run()
        return None
    got: dict[str, RunParams | None] = {}

    def params() -> tuple[str, str]:
        got["params"] = steps.run_params()
        return ("ok", "") if got["params"] is not None else ("no scenes", "")

    if not _guard(cyc, "run", stop, params):
        cyc.not_run()
        return None
    if cyc.steps[-1].outcome != "ok":  # failed, or no scenes: recorded as the run step
        return None
    cyc.steps.pop()  # the run step is recorded when the cluster's task is done
    return got["params"]


def _run_on(client: Any, jobs: Sequence[Any], stop_event: threading.Event, stop_name: str,
            run_fleet: Callable[..., list[Any]]) -> list[Any]:
    """Run the jobs on the cluster; a stop requested meanwhile sets the tasks' stop event
    (checked between scenes).  A cluster that fails as a whole fails every site's run."""
    if not jobs:
        return []
    from distributed import Event

    from sitewatch.watch.fleet import SiteOutcome

    done = threading.Event()

    def relay() -> None:
        while not done.wait(0.2):
            if stop_event.is_set():
                Event(stop_name, client=client).set()
                return

    relay_thread = threading.Thread(target=relay, name="sitewatch-stop-relay", daemon=True)
    relay_thread.start()
    try:
        return run_fleet(jobs, client=client, on_outcome=lambda o: log.debug(
            "%s: task done on %s in %.1f s", o.site_id, o.worker, o.seconds))
    except Exception as exc:  # a lost scheduler: this round's runs fail, the watch goes on
        log.debug("the cluster failed", exc_info=True)
        return [SiteOutcome(j.site_id, error=_why(exc)) for j in jobs]
    finally:
        done.set()
        relay_thread.join()


def _ran(steps: _Steps, outcome: Any) -> None:
    """Record the run step of a site from its task's outcome."""
    cyc = steps.cyc
    if outcome.stopped:
        cyc.steps.append(Step("run", "stopped", "a stop was requested; what is done is kept"))
    elif outcome.skipped is not None:
        cyc.steps.append(Step("run", "skipped", f"{outcome.skipped} holds the site's lock"))
    elif outcome.error is not None:
        why = _one_line(outcome.error, 400)
        cyc.steps.append(Step("run", "failed", why))
        cyc.errors.append(why)
    else:
        steps.ran(outcome.processed, outcome.failures, outcome.new_alerts,
                  outcome.updated_alerts)
        cyc.steps.append(Step("run", "ok"))


def _assess_and_deliver(steps: _Steps, home: Path) -> None:
    """The assess and deliver steps of a site, with its lock held (both are recorded as
    skipped when another process holds it now)."""
    cyc = steps.cyc
    if len(cyc.steps) < 2 or cyc.steps[-1].outcome in ("stopped", "not run"):
        cyc.not_run()
        return
    try:
        with site_lock(home, steps.site_id, purpose=PURPOSE, store=steps.store):
            for name, fn in (("assess", steps.assess), ("deliver", steps.deliver)):
                if not _guard(cyc, name, steps.stop_event, fn):
                    cyc.not_run()
                    return
    except SiteBusyError as exc:
        for name in STEPS[len(cyc.steps):]:
            cyc.steps.append(Step(name, "skipped",
                                  f"{describe_holder(exc.holder)} holds the site's lock"))


# ------------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class WatchResult:
    """What :func:`watch_forever` did: the rounds of cycles run, whether a stop ended it, and
    each site's last cycle."""

    cycles: int
    stopped: bool
    last: Mapping[str, CycleReport]

    @property
    def ok(self) -> bool:
        """Whether every site's last cycle was ok (a stopped or skipped one counts as ok)."""
        return all(r.ok for r in self.last.values())


def watch_forever(store: Store, site_ids: Sequence[str], *, every: timedelta | None,
                  once: bool = False, stop_event: threading.Event | None = None,
                  max_cycles: int | None = None,
                  on_cycle: Callable[[CycleReport], None] | None = None,
                  client: Any = None, **cycle_options: Any) -> WatchResult:
    """Cycles of every site in ``site_ids`` (in turn) every ``every``, measured from the
    start of one round to the next (a round longer than ``every`` is followed at once by the
    next), until ``stop_event`` is set, after one round with ``once``, or after
    ``max_cycles`` rounds.  Each report is logged (one line, warning level when it failed)
    and handed to ``on_cycle``.  ``cycle_options`` go to :func:`watch_cycle`.

    With ``client`` (a Dask client, :func:`sitewatch.watch.fleet.fleet_client`; ``home``
    is then needed), each round's run steps are tasks on its cluster, one per site, while
    sync, assess and deliver stay in this process (:func:`_fleet_round`)."""
    if client is not None and cycle_options.get("home") is None:
        raise WatchError("running the sites on a cluster needs the home (site locks, "
                         "products)")
    if not once and every is None:
        raise WatchError("give an interval (every) or once")
    if max_cycles is not None and max_cycles < 1:
        raise WatchError(f"max_cycles must be at least 1, got {max_cycles!r}")
    stop = stop_event or threading.Event()
    last: dict[str, CycleReport] = {}
    n = 0
    while not stop.is_set():
        n += 1
        t0 = _time.monotonic()
        for rep in _round(store, site_ids, n, stop, client, cycle_options):
            last[rep.site] = rep
            log.log(logging.INFO if rep.ok else logging.WARNING, "%s", rep.line())
            if on_cycle is not None:
                on_cycle(rep)
        if once or (max_cycles is not None and n >= max_cycles) or every is None:
            break
        wait = every.total_seconds() - (_time.monotonic() - t0)
        if wait > 0:
            log.debug("next cycle at %s", iso(datetime.now(UTC) + timedelta(seconds=wait)))
            if stop.wait(wait):
                break
    return WatchResult(n, stop.is_set(), last)


def _round(store: Store, site_ids: Sequence[str], n: int, stop: threading.Event,
           client: Any, cycle_options: Mapping[str, Any]) -> Iterator[CycleReport]:
    """The cycles of one round, each report as soon as it is made: one site after the
    other, or (``client``) with the run steps on a cluster."""
    if client is not None:
        try:
            yield from _fleet_round(store, site_ids, n, client, stop_event=stop,
                                    **cycle_options)
        except Exception as exc:  # e.g. an unwritable lock folder: this round fails
            log.debug("round %d failed", n, exc_info=True)
            for site_id in site_ids:
                yield CycleReport(site_id, n, datetime.now(UTC), 0.0, errors=(_why(exc),))
        return
    for site_id in site_ids:
        if stop.is_set():
            break
        try:
            rep = watch_cycle(store, site_id, cycle=n, stop_event=stop, **cycle_options)
        except Exception as exc:  # e.g. an unwritable lock folder: this cycle fails
            rep = CycleReport(site_id, n, datetime.now(UTC), 0.0, errors=(_why(exc),))
        yield rep


__all__ = ["MIN_EVERY", "PURPOSE", "STEPS", "CycleReport",
           "Step", "SyncOutcome", "SyncStep", "WatchError", "WatchResult",
           "headline", "parse_every", "watch_cycle", "watch_forever"]
