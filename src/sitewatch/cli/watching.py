"""``sitewatch watch``: unattended cycles of sync, run, assess and deliver (docs/watching.md).

The command is thin: :mod:`sitewatch.watch.unattended` does the work in a worker thread,
while the main thread only waits and handles signals.  The first SIGINT or SIGTERM asks the
worker to stop at its next safe point (the scene in hand is stored first) and the command
exits 0; a second one exits at once with 130 (an uncommitted scene is rolled back by the
database, and the kernel releases the site's lock with the process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import click

from sitewatch.cli.common import Ctx, clean_text, pass_ctx
from sitewatch.errors import SiteError
from sitewatch.times import parse_date

log = logging.getLogger("sitewatch.watch.unattended")
DEFAULT_EVERY = "6h"


class _Formatter(logging.Formatter):
    """``2024-05-02T10:00:00Z LEVEL message``: UTC timestamps, control characters escaped."""

    converter = staticmethod(time.gmtime)

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        return clean_text(super().format(record))


@contextlib.contextmanager
def _logging(verbosity: int, log_file: str | None) -> Iterator[None]:
    """One line per site and cycle on stderr (and in ``log_file``) with a UTC timestamp; the
    library's other messages only from -v on (the cycle line already names what failed).
    The logging set-up before is restored afterwards."""
    root = logging.getLogger("sitewatch")
    saved = (root.handlers[:], root.propagate, root.level, log.level)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(_Formatter())
    root.handlers[:] = handlers
    root.propagate = False
    root.setLevel(logging.ERROR if verbosity <= 0 else
                  logging.INFO if verbosity == 1 else logging.DEBUG)
    log.setLevel(logging.WARNING if verbosity < 0 else
                 logging.INFO if verbosity <= 1 else logging.DEBUG)
    try:
        yield
    finally:
        for h in handlers:
            h.flush()
            if isinstance(h, logging.FileHandler):
                h.close()
        root.handlers[:], root.propagate = saved[0], saved[1]
        root.setLevel(saved[2])
        log.setLevel(saved[3])


def _subscribe(ctx: Ctx, site_ids: tuple[str, ...], jsonl: tuple[str, ...],
               geojson: tuple[str, ...], webhook: tuple[str, ...]) -> None:
    """Check the sites exist and subscribe the sinks given (they then get each site's
    events from now on, in this watch and in later runs)."""
    from sitewatch.watch.sinks import GeoJsonSink, JsonLinesSink, WebhookSink

    sinks: list[Any] = [JsonLinesSink(p) for p in jsonl]
    sinks += [GeoJsonSink(p, lambda _s: []) for p in geojson]
    sinks += [WebhookSink(u) for u in webhook]
    try:
        with ctx.store() as store:
            for site_id in site_ids:
                if store.use_site(site_id) is None:
                    raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch "
                                    "site list`)")
                for s in sinks:
                    store.subscribe_sink(s.key, site_id)
                if not store.sinks_of(site_id):
                    log.warning("%s has no sinks: its alerts are stored but sent nowhere "
                                "(give --jsonl, --geojson or --webhook)", site_id)
    finally:
        for s in sinks:
            s.close()


def _serve(work: Callable[[threading.Event], Any]) -> Any:
    """Run ``work(stop)`` in a worker thread; SIGINT/SIGTERM set ``stop`` (the first) or exit
    at once (the second)."""
    stop = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work(stop)
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            os.write(2, f"{name} again: exiting now (the scene in hand is rolled back)\n"
                     .encode())
            os._exit(130)
        stop.set()
        log.warning("%s: stopping after the step in hand (send it again to exit at once)",
                    name)

    worker = threading.Thread(target=target, name="sitewatch-watch")
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if "error" in box:
        raise box["error"]
    return box["result"]


@contextlib.contextmanager
def _cluster(workers: int | None, scheduler: str | None, stop: threading.Event
             ) -> Iterator[Any]:
    """The Dask client for the whole watch (None without --workers/--scheduler), closed,
    with its local workers, however the watch ends."""
    if not workers and not scheduler:
        yield None
        return
    from sitewatch.watch.fleet import fleet_client

    with fleet_client(workers=workers, scheduler=scheduler) as client:
        log.info("running the sites on %s", f"the Dask scheduler {scheduler}" if scheduler
                 else f"a local Dask cluster of {workers} worker(s)")
        try:
            yield client
        finally:
            if stop.is_set():
                log.info("closing the Dask cluster")


@click.command()
@click.argument("site_ids", nargs=-1, required=True, metavar="SITE...")
@click.option("--every", metavar="DURATION",
              help=f"Time from one cycle's start to the next: 30m, 6h, 1d, 1h30m "
                   f"[default: {DEFAULT_EVERY}; at least 5m].")
@click.option("--once", is_flag=True, help="One cycle of each site, then exit (for cron or a "
              "systemd timer): status 1 when a cycle failed.")
@click.option("--from", "start", metavar="YYYY-MM-DD",
              help="Sync only Items acquired from this day on.")
@click.option("--max-cycles", type=click.IntRange(min=1), metavar="N",
              help="Stop after N cycles (tests, debugging); status as with --once.")
@click.option("--allow-short", is_flag=True,
              help="Accept --every under 5 minutes (tests, a local catalogue).")
@click.option("--jsonl", multiple=True, type=click.Path(dir_okay=False),
              help="Also send the sites' alerts to this JSON-lines file (repeatable).")
@click.option("--geojson", multiple=True, type=click.Path(dir_okay=False),
              help="Also keep the sites' alerts in this GeoJSON file (repeatable).")
@click.option("--webhook", multiple=True, help="Also POST the sites' alerts to this URL "
              "(repeatable).")
@click.option("--webhook-budget", type=click.FloatRange(min=1), default=30.0,
              show_default=True, metavar="SECONDS",
              help="At most this long per cycle and site waiting for webhooks; what is not "
                   "delivered by then is sent at the next cycle.")
@click.option("--log", "log_file", type=click.Path(dir_okay=False),
              help="Also append the log lines to this file.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Run each cycle's run steps as one task per site on a local Dask cluster "
                   "of N worker processes, started once for the watch (needs the `cluster` "
                   "extra); sync, assess and deliver stay in this process.")
@click.option("--scheduler", metavar="ADDRESS",
              help="As --workers, on this Dask scheduler (tcp://host:8786); its workers need "
                   "sitewatch and the same home (shared file system) and store.")
@pass_ctx
def watch(ctx: Ctx, site_ids: tuple[str, ...], every: str | None, once: bool,
          start: str | None, max_cycles: int | None, allow_short: bool,
          jsonl: tuple[str, ...], geojson: tuple[str, ...], webhook: tuple[str, ...],
          webhook_budget: float, log_file: str | None, workers: int | None,
          scheduler: str | None) -> None:
    """Watch sites unattended: every cycle syncs each site's sources, runs the pipeline on
    the new scenes, assesses, and delivers new alerts to the site's sinks (those used before
    by `sitewatch run` / `alerts deliver`, and those given here), logging one line per site
    and cycle.

    A site whose lock another sitewatch process holds (another watcher, a `sitewatch run`)
    is skipped that cycle, saying which process.  A failed cycle is logged and retried at the
    next one.  Ctrl-C or SIGTERM stops after the step in hand (exit 0); a second one exits
    at once.  With --once or --max-cycles the exit status is 1 when a site's last cycle
    failed.

    With --workers or --scheduler the sites' runs (the heavy step) go to a Dask cluster,
    one task per site, started once for the watch and closed when it stops; a site whose
    task fails fails its cycle and the others go on (docs/watching.md).
    """
    from sitewatch.watch.unattended import WatchError, WatchResult, parse_every, watch_forever

    if workers and scheduler:
        raise click.UsageError("give --workers (a local cluster) or --scheduler, not both")
    if once and every:
        raise WatchError("give --every or --once, not both")
    interval = None if once else parse_every(every or DEFAULT_EVERY, allow_short=allow_short)
    since = parse_date(start, "--from", WatchError)
    site_ids = tuple(dict.fromkeys(site_ids))
    with _logging(ctx.verbosity, log_file):
        _subscribe(ctx, site_ids, jsonl, geojson, webhook)
        log.info("watching %s %s (pid %d, home %s)", ", ".join(site_ids),
                 "once" if once else f"every {every or DEFAULT_EVERY}", os.getpid(), ctx.home)

        def work(stop: threading.Event) -> Any:
            with _cluster(workers, scheduler, stop) as client, ctx.store() as store:
                if stop.is_set():  # stopped while the cluster started
                    return WatchResult(0, True, {})
                return watch_forever(store, site_ids, every=interval, once=once,
                                     stop_event=stop, max_cycles=max_cycles, home=ctx.home,
                                     start=since, webhook={"drain_s": webhook_budget},
                                     client=client)

        result = _serve(work)
        log.info("stopped after %d cycle(s)%s", result.cycles,
                 " (stop requested)" if result.stopped else "")
    if not result.stopped and (once or max_cycles) and not result.ok:
        raise SystemExit(1)


__all__ = ["watch"]
