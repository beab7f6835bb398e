"""Where new and updated alerts go after a run: a JSON-lines file, a GeoJSON file, a webhook.

Every sink has ``emit(alerts, site)`` (``alerts``: ``{"new": [...], "updated": [...]}`` of
stored alert dicts, as :func:`sitewatch.watch.pipeline.run_site` returns them) and ``close()``.

The webhook body (one POST per alert, ``Content-Type: application/json``)::

    {"sitewatch": "0.1.0",        # the sending version
     "event": "new" | "updated",  # a first alert, or a change to one already sent
     "site": "sohae",
     "alert": {"id", "site", "part", "time", "start", "end", "tier", "kind", "status",
               "measure", "value", "expected", "z", "confidence", "history", "text",
               "before_scene", "after_scene", "grid", "changed_area_m2", "objects",
               "objects_area_m2", "largest_object_m2", "findings": [...]}}

Posting happens on a background thread: the run never waits on a slow or dead endpoint.
Each POST is retried with exponential back-off (1, 2, 4... seconds) on network errors and
HTTP 5xx / 429; other 4xx are not retried.  :meth:`WebhookSink.close` waits a bounded time
for the queue to drain and logs what could not be delivered.  Text fields are data: whoever
renders them must escape them.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sitewatch import __version__
from sitewatch.errors import SitewatchError
from sitewatch.fileio import atomic_write
from sitewatch.sites.site import Site

log = logging.getLogger(__name__)


class SinkError(SitewatchError, ValueError):
    """A sink that cannot be set up or written (bad URL, unwritable path)."""


def alert_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A stored alert as the JSON object the sinks publish (record + lifecycle)."""
    rec = dict(alert.get("record", alert))
    rec["status"] = alert.get("status", "new")
    if alert.get("reason"):
        rec["status_reason"] = alert["reason"]
    return rec


class JsonLinesSink:
    """Appends one JSON object per new or updated alert to a file (created if needed)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create {self.path.parent}: {exc}") from None

    def emit(self, alerts: Mapping[str, Sequence[Mapping[str, Any]]], site: Site) -> None:
        lines = [json.dumps({"event": ev, "site": site.id, "alert": alert_payload(a)},
                            ensure_ascii=False, sort_keys=True)
                 for ev in ("new", "updated") for a in alerts.get(ev, ())]
        if not lines:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def close(self) -> None:
        pass


class GeoJsonSink:
    """Rewrites a GeoJSON FeatureCollection (RFC 7946, lon/lat) of every alert of the site,
    each a Feature with its part's outline (or the site boundary for the rest of the site).
    Needs the store to list all alerts, not only this run's."""

    def __init__(self, path: str | Path, all_alerts: Callable[[str], list[dict[str, Any]]]):
        self.path = Path(path)
        self.all_alerts = all_alerts

    def emit(self, alerts: Mapping[str, Sequence[Mapping[str, Any]]], site: Site) -> None:
        from shapely.geometry import mapping

        feats = []
        for a in self.all_alerts(site.id):
            try:
                geom = site.part(a["part"]).geometry
            except Exception:  # the rest of the site, or a part since removed
                geom = site.boundary
            feats.append({"type": "Feature", "id": a["id"],
                          "geometry": mapping(geom) if geom is not None else None,
                          "properties": alert_payload(a)})
        doc = {"type": "FeatureCollection", "features": feats}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Readers never see half a file.
            atomic_write(self.path, json.dumps(doc, ensure_ascii=False, default=str))
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from None

    def close(self) -> None:
        pass


class WebhookSink:
    """POSTs each new or updated alert to ``url`` from a background thread."""

    def __init__(self, url: str, *, retries: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 10.0, drain_s: float = 30.0,
                 opener: Callable[..., Any] | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SinkError(f"webhook URL must be http(s)://host/..., got {url!r}")
        self.url = url
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.drain_s = drain_s
        self._open = opener or urllib.request.urlopen
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.delivered = 0
        self.failed: list[tuple[str, str]] = []  # (alert id, why)
        self._thread = threading.Thread(target=self._work, name="sitewatch-webhook",
                                        daemon=True)
        self._thread.start()

    def emit(self, alerts: Mapping[str, Sequence[Mapping[str, Any]]], site: Site) -> None:
        for ev in ("new", "updated"):
            for a in alerts.get(ev, ()):
                self._q.put({"sitewatch": __version__, "event": ev, "site": site.id,
                             "alert": alert_payload(a)})

    def _post(self, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        aid = body["alert"].get("id", "?")
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url, data=data, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": f"sitewatch/{__version__}"})
            try:
                with self._open(req, timeout=self.timeout_s) as resp:
                    resp.read()
                self.delivered += 1
                return
            except urllib.error.HTTPError as exc:
                why = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break  # the endpoint refuses this body: retrying will not help
            except (urllib.error.URLError, OSError, ValueError) as exc:
                why = str(getattr(exc, "reason", exc))
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
        log.warning("webhook %s: alert %s not delivered (%s)", self.url, aid, why)
        self.failed.append((aid, why))

    def _work(self) -> None:
        while True:
            body = self._q.get()
            try:
                if body is None:
                    return
                self._post(body)
            finally:
                self._q.task_done()

    def close(self) -> None:
        """Wait up to ``drain_s`` for pending POSTs; what is left is logged, not waited on."""
        self._q.put(None)
        self._thread.join(self.drain_s)
        if self._thread.is_alive():
            log.warning("webhook %s: gave up waiting after %.0f s; %d alert(s) still queued",
                        self.url, self.drain_s, self._q.qsize())


__all__ = ["GeoJsonSink", "JsonLinesSink", "SinkError", "WebhookSink", "alert_payload"]
