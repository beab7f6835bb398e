"""Where alert events go: a JSON-lines file, a GeoJSON file, a webhook.

**Delivery is durable, at least once.**  When a run stores a new alert, or an update of one
that is news (not of a dismissed alert), the store writes an *alert event* in the same
transaction (the outbox: :meth:`~sitewatch.store.results.ResultStore.put_alert`).  Each
event has a stable ``event_id`` (a hash of the alert id, its revision and its record): sent
again, it keeps its id.  :func:`deliver_pending` hands each sink the events it has not yet
received and records them as delivered to that sink only after the sink wrote or POSTed
them.  A run killed or failing anywhere leaves the rest pending, and the next
``sitewatch run`` or ``sitewatch alerts deliver`` sends them.  A kill between the sink's write
and the record sends an event again: **receivers de-duplicate by ``event_id``**.

**A sink is known by its key** (``jsonl:/abs/path``, ``geojson:/abs/path``,
``webhook:URL``).  The first time a sink is used for a site it receives the events stored
from then on (those of that run onwards), not the site's history; ``replay=True``
(``sitewatch alerts deliver SITE --all``) also sends every earlier event it has not
received.  From then on it receives every event of the site, whichever run stored it.

Every sink has ``key``, ``deliver(events, site)`` (returns the ids of the events it
delivered; raises :class:`SinkError` when it delivered none) and ``close()``.
:func:`events_of` turns alerts handed over directly into events, for a sink used outside
the outbox (their ids are derived from the alerts' content).

A JSON-lines line, and the webhook body (one POST per event, ``Content-Type:
application/json``)::

    {"sitewatch": "0.1.0",        # the sending version (webhook only)
     "event_id": "9f2c...",       # stable: the same event sent again has the same id
     "event": "new" | "updated",  # a first alert, or a change to one already sent
     "site": "sohae",
     "alert": {"id", "site", "part", "time", "start", "end", "tier", "kind", "status",
               "measure", "value", "expected", "z", "confidence", "history", "text",
               "before_scene", "after_scene", "grid", "changed_area_m2", "objects",
               "objects_area_m2", "largest_object_m2", "findings": [...]}}

The webhook posts from one background thread, in order, and :meth:`WebhookSink.deliver`
waits for the outcome at most ``drain_s`` seconds in all (the run's results are stored by
then; what is not delivered in that time stays pending for the next run, so nothing is gained
by waiting longer).  Each POST is retried with exponential back-off (1, 2, 4... seconds,
within that budget) on network errors and HTTP 5xx / 429; other 4xx and redirects (never
followed) are not retried.  At most :data:`MAX_REPLY` bytes of a reply are read, whatever
its ``Content-Length`` or chunking; each socket operation times out after ``timeout_s``.
The thread survives any error; every undelivered event is logged on one line naming the URL
and why.  Text fields are data: whoever renders them must escape them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sitewatch import __version__
from sitewatch.errors import SitewatchError
from sitewatch.fileio import atomic_write
from sitewatch.sites.site import Site
from sitewatch.store.results import AlertEvent, ResultStore, event_id
from sitewatch.watch.records import StoredAlert, json_safe

log = logging.getLogger(__name__)

#: The most of a webhook's reply that is read (bytes); the rest is never received.
MAX_REPLY = 4096


class SinkError(SitewatchError, ValueError):
    """A sink that cannot be set up or written (bad URL, unwritable path)."""


class Sink(Protocol):
    """What :func:`deliver_pending` needs of a sink."""

    key: str

    def deliver(self, events: Sequence[AlertEvent], site: Site) -> list[str]: ...

    def close(self) -> None: ...


def alert_payload(alert: StoredAlert) -> dict[str, Any]:
    """A stored alert as the JSON object the sinks publish (record + lifecycle; see
    :meth:`~sitewatch.watch.records.StoredAlert.payload`)."""
    return alert.payload()


def events_of(alerts: Mapping[str, Sequence[StoredAlert]], site: Site) -> list[AlertEvent]:
    """Alerts handed over directly (``{"new": [...], "updated": [...]}``) as events, outside
    the outbox: each id is derived from the alert's id, the event and the alert's record."""
    out = []
    for ev in ("new", "updated"):
        for a in alerts.get(ev, ()):
            record = json.dumps(json_safe(a.alert.to_dict()), sort_keys=True)
            out.append(AlertEvent(event_id(a.id, 0, f"{ev}\n{record}"), 0, a.id, site.id,
                                  a.params_hash, ev, alert_payload(a)))
    return out


def _abs(path: str | Path) -> Path:
    """The path a sink key names: absolute, links resolved where they can be."""
    p = Path(path).expanduser()
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a link loop, an unreadable folder
        return p.absolute()


class JsonLinesSink:
    """Appends one JSON object per alert event to a file (created if needed), flushed to disk
    before the events count as delivered."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create {self.path.parent}: {exc}") from None
        self.key = f"jsonl:{_abs(self.path)}"

    def deliver(self, events: Sequence[AlertEvent], site: Site) -> list[str]:
        lines = [json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True) for e in events]
        if not lines:
            return []
        text = "\n".join(lines) + "\n"
        try:
            with self.path.open("a+b") as f:
                if f.seek(0, os.SEEK_END) > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":  # a line cut by a crash stays a line of its own
                        text = "\n" + text
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from None
        return [e.id for e in events]

    def close(self) -> None:
        pass


class GeoJsonSink:
    """Rewrites a GeoJSON FeatureCollection (RFC 7946, lon/lat) of every alert of the site,
    each a Feature with its part's outline (or the site boundary for the rest of the site).
    Needs the store to list all alerts, not only the new ones; rewritten at every delivery,
    events or not, so that it shows the alerts' current status."""

    def __init__(self, path: str | Path, all_alerts: Callable[[str], list[StoredAlert]]):
        self.path = Path(path)
        self.all_alerts = all_alerts
        self.key = f"geojson:{_abs(self.path)}"

    def deliver(self, events: Sequence[AlertEvent], site: Site) -> list[str]:
        from shapely.geometry import mapping

        feats = []
        for a in self.all_alerts(site.id):
            try:
                geom = site.part(a.part).geometry
            except Exception:  # the rest of the site, or a part since removed
                geom = site.boundary
            feats.append({"type": "Feature", "id": a.id,
                          "geometry": mapping(geom) if geom is not None else None,
                          "properties": alert_payload(a)})
        doc = {"type": "FeatureCollection", "features": feats}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Readers never see half a file.
            atomic_write(self.path, json.dumps(doc, ensure_ascii=False, default=str))
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from None
        return [e.id for e in events]

    def close(self) -> None:
        pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are refused, not followed: urllib would read the whole reply body first
    (unbounded) and turn the POST into a GET without the alert."""

    def redirect_request(self, *_a: Any, **_kw: Any) -> None:
        return None


class _Job:
    """One event on its way to the webhook."""

    __slots__ = ("abandoned", "deadline", "done", "event", "ok", "why")

    def __init__(self, event: AlertEvent, deadline: float):
        self.event, self.deadline = event, deadline
        self.done = self.ok = self.abandoned = False
        self.why = ""


class WebhookSink:
    """POSTs each alert event to ``url`` from a background thread (see the module notes)."""

    def __init__(self, url: str, *, retries: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 10.0, drain_s: float = 30.0, max_reply: int = MAX_REPLY,
                 opener: Callable[..., Any] | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SinkError(f"webhook URL must be http(s)://host/..., got {url!r}")
        self.url = url
        self.key = f"webhook:{url}"
        self.label = f"webhook:{redact_url(url)}"
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.drain_s, self.max_reply = drain_s, max_reply
        self._open = opener or urllib.request.build_opener(_NoRedirect).open
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._cv = threading.Condition()
        self.delivered = 0
        self.failed: list[tuple[str, str]] = []  # (alert id, why)
        self._thread = threading.Thread(target=self._work, name="sitewatch-webhook",
                                        daemon=True)
        self._thread.start()

    # -- sending (the worker thread) --------------------------------------------------------

    def _post_once(self, data: bytes) -> tuple[bool, str, bool]:
        """One POST: (delivered, why not, worth retrying)."""
        req = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"sitewatch/{__version__}"})
        try:
            # A few KB at most, whatever it announces; a broken reply after a 2xx status
            # does not matter: the endpoint has the alert.
            with (self._open(req, timeout=self.timeout_s) as resp,
                  contextlib.suppress(OSError, http.client.HTTPException)):
                resp.read(self.max_reply)
            return True, "", False
        except urllib.error.HTTPError as exc:
            exc.close()  # its body is never read
            if 300 <= exc.code < 400:
                return False, f"HTTP {exc.code} (redirects are not followed)", False
            return False, f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            why = getattr(exc, "reason", None) or exc
            return False, str(why) or type(exc).__name__, True

    def _send(self, job: _Job) -> tuple[bool, str]:
        ev = job.event
        body = {"sitewatch": __version__, **ev.to_dict()}
        data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        why = "not sent"
        for attempt in range(self.retries + 1):
            if time.monotonic() >= job.deadline:
                return False, f"{why}; the {self.drain_s:g} s delivery budget is spent"
            ok, why, again = self._post_once(data)
            if ok:
                return True, ""
            if not again or attempt == self.retries:
                break
            wait = self.backoff_s * 2**attempt
            if time.monotonic() + wait >= job.deadline:
                return False, f"{why}; no time left in the {self.drain_s:g} s budget to retry"
            time.sleep(wait)
        return False, why

    def _work(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                try:
                    ok, why = self._send(job)
                except Exception as exc:  # the thread must outlive anything an endpoint does
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                with self._cv:
                    job.ok, job.why, job.done = ok, why, True
                    if ok:
                        self.delivered += 1
                    elif not job.abandoned:
                        self.failed.append((job.event.alert_id, why))
                        self._log_failed(job, why)
                    self._cv.notify_all()
            finally:
                self._q.task_done()

    def _log_failed(self, job: _Job, why: str) -> None:
        log.warning("%s: alert %s not delivered (%s) (event %s); it stays pending",
                    self.label, job.event.alert_id, why, job.event.id)

    # -- the sink --------------------------------------------------------------------------

    def deliver(self, events: Sequence[AlertEvent], site: Site) -> list[str]:
        """POST the events in order; wait at most ``drain_s`` in all.  Returns the ids of
        those the endpoint accepted (2xx); the others are logged, one line each."""
        if not events:
            return []
        deadline = time.monotonic() + self.drain_s
        jobs = [_Job(e, deadline) for e in events]
        for j in jobs:
            self._q.put(j)
        with self._cv:
            self._cv.wait_for(lambda: all(j.done for j in jobs),
                              timeout=max(0.0, deadline - time.monotonic()))
            for j in jobs:
                if not j.done:
                    j.abandoned = True
                    why = f"no answer within the {self.drain_s:g} s delivery budget"
                    self.failed.append((j.event.alert_id, why))
                    self._log_failed(j, why)
            return [j.event.id for j in jobs if j.done and j.ok]

    def close(self) -> None:
        """Stop the sender thread (:meth:`deliver` already waited, within its budget, for
        what it was given; a POST still hanging is abandoned, its event left pending)."""
        self._q.put(None)


# --------------------------------------------------------------------------- the outbox


@dataclass(frozen=True)
class Delivery:
    """What one delivery to one sink did: events delivered, events still pending for it,
    why it failed (when it did), and whether the sink was used for the site the first time."""

    sink: str
    delivered: int
    pending: int
    error: str | None = None
    first_use: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"sink": self.sink, "delivered": self.delivered, "pending": self.pending,
                "error": self.error, "first_use": self.first_use}


def redact_url(url: str) -> str:
    """A URL fit for logs and terminals: scheme and host only, since webhook URLs often carry
    their secret in the path or query (``https://hooks.example/T0/B0/XXXX``).

    >>> redact_url("https://user:pw@hooks.example:8443/services/T0/XX?token=1")
    'https://hooks.example:8443/…'
    >>> redact_url("http://127.0.0.1:9000")
    'http://127.0.0.1:9000'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{rest}"


def sink_label(sink: Any) -> str:
    """How a sink is named in logs and output (its key, with a webhook URL redacted)."""
    return str(getattr(sink, "label", sink.key))


def deliver_pending(store: ResultStore, site: Site, sinks: Sequence[Sink], *,
                    replay: bool = False, first_use: Collection[str] = ()) -> list[Delivery]:
    """Send each sink the site's alert events it has not received (``replay``: including
    those stored before its first use) and record those it delivered.  A sink that fails is
    logged and its events stay pending; the other sinks are not affected.  ``first_use``:
    keys of sinks the caller subscribed for the first time itself (reported as such)."""
    out = []
    for sink in sinks:
        first = store.subscribe_sink(sink.key, site.id) or sink.key in first_use
        events = store.pending_events(sink.key, site.id, replay=replay)
        error = None
        try:
            done = sink.deliver(events, site)
        except (SitewatchError, OSError, ValueError) as exc:
            done, error = [], str(exc)
            log.warning("%s: %d alert event(s) not delivered (%s); they stay pending",
                        sink_label(sink), len(events), exc)
        wanted = {e.id for e in events}
        done = [i for i in done if i in wanted]
        store.mark_delivered(sink.key, done)
        out.append(Delivery(sink_label(sink), len(done), len(wanted) - len(set(done)), error,
                            first))
    return out


def sink_of(key: str, all_alerts: Callable[[str], list[StoredAlert]], *,
            webhook: Mapping[str, Any] | None = None) -> JsonLinesSink | GeoJsonSink | WebhookSink:
    """The sink a key names (``jsonl:PATH``, ``geojson:PATH``, ``webhook:URL``)."""
    kind, _, where = key.partition(":")
    if kind == "jsonl" and where:
        return JsonLinesSink(where)
    if kind == "geojson" and where:
        return GeoJsonSink(where, all_alerts)
    if kind == "webhook" and where:
        return WebhookSink(where, **dict(webhook or {}))
    raise SinkError(f"not a sink key: {key!r} (jsonl:PATH, geojson:PATH or webhook:URL)")


__all__ = ["MAX_REPLY", "Delivery", "GeoJsonSink", "JsonLinesSink", "Sink", "SinkError",
           "WebhookSink", "alert_payload", "deliver_pending", "events_of", "redact_url",
           "sink_label", "sink_of"]
