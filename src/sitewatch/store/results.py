"""What ``sitewatch run`` keeps: processed scenes with their registration and per-part
observations (one transaction each), runs, alerts with their lifecycle, and the alert
outbox (events stored with their alert, delivered per sink).  Every method takes and returns
the typed records of :mod:`sitewatch.watch.records`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sitewatch.errors import StoreError
from sitewatch.store.base import StoreBase, _finite, _now, db_reason, decoded, insert_new, upsert
from sitewatch.store.parts import current_versions
from sitewatch.store.scenes import registration_of, write_registration
from sitewatch.store.schema import (
    alert_deliveries_table,
    alert_events_table,
    alert_sinks_table,
    alerts_table,
    observations_table,
    processed_table,
    registrations_table,
    runs_table,
    scoring_state_table,
)
from sitewatch.times import iso, parse_time
from sitewatch.watch.alerts import Alert
from sitewatch.watch.records import (
    ALERT_STATUSES,
    Observation,
    ProcessedScene,
    RunRecord,
    RunSummary,
    StoredAlert,
    alert_from_dict,
    json_safe,
    measures_of,
    num,
)


def event_id(alert_id: str, revision: int, record: str) -> str:
    """The stable id of an alert event: a hash of the alert id, its revision and its record
    (as stored, sorted JSON text).  The same event sent again keeps its id.

    >>> event_id("a1", 1, "{}") == event_id("a1", 1, "{}") != event_id("a1", 2, "{}")
    True
    """
    text = f"{alert_id}\n{revision}\n{record}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class AlertEvent:
    """One message for the sinks: a new alert, or an update of one that is news.  ``alert``
    is the alert as published when the event was stored (:meth:`StoredAlert.payload`)."""

    id: str
    seq: int
    alert_id: str
    site: str
    params_hash: str
    event: str  # new | updated
    alert: Mapping[str, Any]
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.id, "event": self.event, "site": self.site,
                "alert": dict(self.alert)}


class ResultStore(StoreBase):
    """Processed scenes, observations, runs and alerts."""

    def processed(self, site_id: str, params_hash: str) -> dict[str, ProcessedScene]:
        """Scenes of a site already processed with these parameters, by scene id, each with
        its registration to the reference its result rests on (when it has one)."""
        t, r = processed_table, registrations_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(
                (t.c.site_id == site_id) & (t.c.params_hash == params_hash))).mappings().all()
            regs = c.execute(sa.select(r).where(r.c.site_id == site_id)).mappings().all()
        by_key = {(g["scene_id"], g["grid"], g["reference_id"]): g for g in regs}
        out = {}
        for row in rows:
            rec = decoded("processed", row["scene_id"], _processed_of, row)
            reg = by_key.get((rec.scene_id, rec.grid, rec.chain.reference))
            if reg is not None:
                rec = replace(rec, registration=decoded(
                    "registrations", f"{rec.scene_id} {rec.grid}", registration_of, reg))
            out[rec.scene_id] = rec
        return out

    def put_result(self, result: ProcessedScene, observations: Sequence[Observation]) -> None:
        """Store one scene's result, its registration (when it has one) and its per-part
        observations in one transaction, replacing any earlier result of the same scene and
        parameters and the earlier observations of the same part versions (those of other
        versions, measured with an earlier geometry, are kept): a failure leaves the store as
        it was."""
        site_id, scene_id, params_hash = result.site_id, result.scene_id, result.params_hash
        for ob in observations:
            if (ob.site_id, ob.scene_id, ob.params_hash) != (site_id, scene_id, params_hash):
                raise StoreError(f"observation of {ob.scene_id!r} ({ob.part}) stored with the "
                                 f"result of {scene_id!r}")
        pr, o = processed_table, observations_table
        key_o = ((o.c.site_id == site_id) & (o.c.scene_id == scene_id)
                 & (o.c.params_hash == params_hash))
        rows = [{
            "site_id": site_id, "scene_id": scene_id, "params_hash": params_hash,
            "part": ob.part, "reference": ob.reference, "grid": ob.grid,
            "acquired": iso(ob.acquired), "reference_id": ob.reference_id,
            "observed_fraction": float(ob.observed_fraction),
            "changed_fraction": _finite(ob.changed_fraction),
            "measures": json.dumps(json_safe(dict(ob.measures)), sort_keys=True),
            "part_version": int(ob.part_version),
        } for ob in observations]
        by_version: dict[int, list[str]] = {}
        for ob in observations:
            by_version.setdefault(int(ob.part_version), []).append(ob.part)
        values = {
            "grid": result.grid, "acquired": iso(result.acquired), "status": result.status,
            "previous_id": result.previous_id,
            "chain": json.dumps(result.chain.to_dict(), sort_keys=True),
            "params": json.dumps(dict(result.params), sort_keys=True, default=str),
            "detail": json.dumps(result.detail(), sort_keys=True, default=str),
            "created_at": _now()}
        try:
            with self.engine.begin() as c:
                for version, names in by_version.items():
                    names = sorted(set(names))
                    for i in range(0, len(names), 500):
                        c.execute(o.delete().where(key_o & (o.c.part_version == version)
                                                   & o.c.part.in_(names[i:i + 500])))
                # Updated in place, not deleted: deleting would cascade to the observations
                # of earlier part versions, which are kept.
                upsert(c, pr, {"site_id": site_id, "scene_id": scene_id,
                               "params_hash": params_hash, **values})
                if rows:
                    c.execute(o.insert(), rows)
                if result.registration is not None:
                    write_registration(c, result.registration)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"results of scene {scene_id!r} could not be stored "
                             f"({db_reason(exc)}); nothing was half-written: run the command "
                             "again") from None

    def observations(self, site_id: str, params_hash: str, *, part: str | None = None,
                     reference: str | None = None, versions: str = "current"
                     ) -> list[Observation]:
        """Stored per-part observations in time order (null measures are NaN): those of each
        part's current geometry version (``versions="current"``, what alerts, timelines
        and briefs use), or of every version kept (``"all"``)."""
        if versions not in ("current", "all"):
            raise StoreError(f"versions must be 'current' or 'all', got {versions!r}")
        o = observations_table
        cond = (o.c.site_id == site_id) & (o.c.params_hash == params_hash)
        if part is not None:
            cond &= o.c.part == part
        if reference is not None:
            cond &= o.c.reference == reference
        with self.engine.connect() as c:
            rows = c.execute(sa.select(o).where(cond).order_by(
                o.c.acquired, o.c.scene_id, o.c.part, o.c.reference, o.c.part_version)
            ).mappings().all()
            current = current_versions(c, site_id) if versions == "current" else None
        if current is not None:
            rows = [r for r in rows if r["part_version"] == current.get(r["part"], 0)]
        return [decoded("observations", f"{r['scene_id']} {r['part']}", _observation_of, r)
                for r in rows]

    def scoring_state(self, site_id: str, params_hash: str) -> dict[str, Any] | None:
        """Where alert scoring of a site with these parameters stopped (the JSON
        :func:`sitewatch.watch.pipeline.score_alerts` keeps), or None."""
        t = scoring_state_table
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.c.state).where(
                (t.c.site_id == site_id) & (t.c.params_hash == params_hash))).first()
        if row is None:
            return None
        try:
            got = json.loads(row[0])
        except ValueError:
            return None  # a cache: unreadable means scoring starts again
        return got if isinstance(got, dict) else None

    def put_scoring_state(self, site_id: str, params_hash: str, state: Mapping[str, Any]
                          ) -> None:
        """Keep where alert scoring stopped (replacing what was kept)."""
        row = {"site_id": site_id, "params_hash": params_hash,
               "state": json.dumps(state, sort_keys=True), "updated_at": _now()}
        try:
            with self.engine.begin() as c:
                upsert(c, scoring_state_table, row)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"the scoring state of site {site_id!r} could not be stored "
                             f"({db_reason(exc)})") from None

    # ------------------------------------------------------------------ runs

    def start_run(self, site_id: str, params_hash: str, params: Mapping[str, Any],
                  version: str) -> RunRecord:
        """Record the start of a run; returns it (with its id)."""
        started = _now()
        with self.engine.begin() as c:
            res = c.execute(runs_table.insert().values(
                site_id=site_id, params_hash=params_hash,
                params=json.dumps(dict(params), sort_keys=True, default=str), version=version,
                started_at=started))
        key = res.inserted_primary_key
        if key is None:
            raise StoreError(f"run of site {site_id!r} could not be recorded")
        return RunRecord(int(key[0]), site_id, params_hash, dict(params), version,
                         parse_time(started))

    def finish_run(self, run_id: int, summary: RunSummary) -> None:
        with self.engine.begin() as c:
            c.execute(runs_table.update().where(runs_table.c.id == run_id).values(
                finished_at=_now(), summary=json.dumps(summary.to_dict(), sort_keys=True)))

    def last_run(self, site_id: str, *, finished: bool = False) -> RunRecord | None:
        """The latest run of a site (that finished, with ``finished``), or None."""
        t = runs_table
        cond = t.c.site_id == site_id
        if finished:
            cond &= t.c.finished_at.is_not(None)
        with self.engine.connect() as c:
            row = c.execute(sa.select(t).where(cond).order_by(t.c.id.desc()).limit(1)
                            ).mappings().first()
        if row is None:
            return None
        return decoded("runs", row["id"], lambda: RunRecord.from_dict(
            {**row, "params": json.loads(row["params"]),
             "summary": json.loads(row["summary"]) if row["summary"] else None}))

    # ------------------------------------------------------------------ alerts

    def alerts(self, site_id: str | None = None, *, status: str | tuple[str, ...] | None = None,
               part: str | None = None, params_hash: str | None = None
               ) -> list[StoredAlert]:
        """Stored alerts in time order, optionally of one parameter set."""
        t = alerts_table
        cond: sa.ColumnElement[bool] = sa.true()
        if params_hash is not None:
            cond &= t.c.params_hash == params_hash
        if site_id is not None:
            cond &= t.c.site_id == site_id
        if status:
            cond &= t.c.status.in_([status] if isinstance(status, str) else list(status))
        if part is not None:
            cond &= t.c.part == part
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(cond).order_by(t.c.time, t.c.part, t.c.id)
                             ).mappings().all()
        return [_alert_of(r) for r in rows]

    def get_alert(self, alert_id: str) -> StoredAlert | None:
        """One alert by id, or by a unique prefix of at least 4 characters."""
        t = alerts_table
        alert_id = alert_id.strip().lower()
        if len(alert_id) < 4:
            raise StoreError(f"alert id {alert_id!r} is too short (give at least 4 characters)")
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.id.startswith(alert_id, autoescape=True))
                             .limit(2)).mappings().all()
        if len(rows) > 1:
            raise StoreError(f"alert id {alert_id!r} is ambiguous: give more characters")
        return _alert_of(rows[0]) if rows else None

    def put_alert(self, alert: Alert, params_hash: str, replaces: str | None = None) -> str:
        """Insert an alert, or update the stored one of the same id (or ``replaces``).

        Returns ``"new"``, ``"updated"`` (tier, kind, dates or text changed; the status and
        its reason are kept) or ``"unchanged"``.  A new alert, or an update of one that is
        not dismissed (news; a dismissed alert is not), is also written to the outbox as an
        :class:`AlertEvent` in the same transaction: a crash never keeps one without the
        other.
        """
        key = replaces or alert.id
        record = json_safe(alert.to_dict())
        values = {
            "site_id": alert.site, "part": alert.part, "time": alert.time,
            "start": alert.start or alert.time, "end": alert.end or alert.time,
            "tier": alert.tier, "kind": alert.kind, "params_hash": params_hash,
        }
        try:
            return self._put_alert(alert, params_hash, key, record, values)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"alert {alert.id!r} could not be stored ({db_reason(exc)}); nothing "
                             "was half-written: run the command again") from None

    def _put_alert(self, alert: Alert, params_hash: str, key: str, record: dict[str, Any],
                   values: dict[str, Any]) -> str:
        t = alerts_table
        with self.engine.begin() as c:
            # Read under a row lock (PostgreSQL; SQLite writers take turns anyway): two
            # processes updating one alert each see the other's revision.
            row = c.execute(sa.select(t).where(t.c.id == key).with_for_update()
                            ).mappings().first()
            now = _now()
            if row is None:
                text = json.dumps(record, sort_keys=True)
                if insert_new(c, t, {"id": alert.id, "status": "new", "reason": None,
                                     "record": text, "revision": 1, "created_at": now,
                                     "updated_at": now, **values}):
                    _add_event(c, "new", alert.id, 1, text, "new", None, params_hash, now)
                    return "new"
                # Another process stored it just now: this is an update of that one.
                row = c.execute(sa.select(t).where(t.c.id == alert.id).with_for_update()
                                ).mappings().one()
            old = json.loads(row["record"])
            text = json.dumps({**record, "id": row["id"]}, sort_keys=True)
            if json.dumps(old, sort_keys=True) == text:
                return "unchanged"
            revision = int(row["revision"] or 1) + 1
            c.execute(t.update().where(t.c.id == row["id"]).values(
                record=text, revision=revision, updated_at=now, **values))
            if row["status"] != "dismissed":
                _add_event(c, "updated", row["id"], revision, text, row["status"],
                           row["reason"], params_hash, now)
            return "updated"

    def delete_alerts(self, site_id: str) -> int:
        """Remove every alert of a site (the demo does, when its scenario changes), with
        their outbox events and deliveries."""
        with self.engine.begin() as c:
            res = c.execute(alerts_table.delete().where(alerts_table.c.site_id == site_id))
        return int(res.rowcount or 0)

    def set_alert_status(self, alert_id: str, status: str, reason: str | None = None
                         ) -> StoredAlert:
        """Move an alert along its lifecycle; returns the updated alert."""
        if status not in ALERT_STATUSES:
            raise StoreError(f"unknown alert status {status!r}; use one of "
                             f"{', '.join(ALERT_STATUSES)}")
        found = self.get_alert(alert_id)
        if found is None:
            raise StoreError(f"no alert {alert_id!r} (see `sitewatch alerts SITE`)")
        t = alerts_table
        with self.engine.begin() as c:
            c.execute(t.update().where(t.c.id == found.id).values(
                status=status, reason=reason, updated_at=_now()))
        out = self.get_alert(found.id)
        assert out is not None
        return out


    # ------------------------------------------------------------------ outbox

    def subscribe_sink(self, sink: str, site_id: str) -> bool:
        """Make sure the sink ``sink`` (its key) receives the site's alert events from now
        on: the first time, it is recorded with the last event stored so far, and receives
        only later ones (:meth:`pending_events` with ``replay`` sends the earlier ones).
        Returns whether this was the first time."""
        s, e = alert_sinks_table, alert_events_table
        try:
            with self.engine.begin() as c:
                got = c.execute(sa.select(s.c.since_seq).where(
                    (s.c.sink == sink) & (s.c.site_id == site_id))).first()
                if got is not None:
                    return False
                last = c.execute(sa.select(sa.func.max(e.c.seq))).scalar()
                c.execute(s.insert().values(sink=sink, site_id=site_id,
                                            since_seq=int(last or 0), created_at=_now()))
        except sa.exc.IntegrityError:  # another process subscribed it just now
            return False
        return True

    def sinks_of(self, site_id: str) -> list[str]:
        """The keys of the sinks subscribed to a site, in the order they were first used."""
        s = alert_sinks_table
        with self.engine.connect() as c:
            return list(c.execute(sa.select(s.c.sink).where(s.c.site_id == site_id)
                                  .order_by(s.c.created_at, s.c.sink)).scalars())

    def pending_events(self, sink: str, site_id: str, *, replay: bool = False
                       ) -> list[AlertEvent]:
        """The site's alert events not yet delivered to ``sink``, oldest first: those
        stored since the sink was first used for the site (none when it never was), or, with
        ``replay``, every stored event."""
        e, d, s = alert_events_table, alert_deliveries_table, alert_sinks_table
        with self.engine.connect() as c:
            since = c.execute(sa.select(s.c.since_seq).where(
                (s.c.sink == sink) & (s.c.site_id == site_id))).scalar()
            if since is None and not replay:
                return []
            cond = (e.c.site_id == site_id) & ~sa.exists().where(
                (d.c.event_id == e.c.id) & (d.c.sink == sink))
            if not replay:
                cond &= e.c.seq > since
            rows = c.execute(sa.select(e).where(cond).order_by(e.c.seq)).mappings().all()
        return [_event_of(r) for r in rows]

    def alert_events(self, site_id: str) -> list[AlertEvent]:
        """Every stored alert event of a site, oldest first."""
        e = alert_events_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(e).where(e.c.site_id == site_id).order_by(e.c.seq)
                             ).mappings().all()
        return [_event_of(r) for r in rows]

    def mark_delivered(self, sink: str, event_ids: Iterable[str]) -> int:
        """Record that ``sink`` received these events (call it only after it did); returns
        how many were not recorded before.  Recording one twice is harmless."""
        ids = sorted(set(event_ids))
        if not ids:
            return 0
        d = alert_deliveries_table
        for attempt in range(3):
            try:
                return self._mark(d, sink, ids)
            except sa.exc.IntegrityError:  # another process recorded some just now
                if attempt == 2:
                    raise
        return 0  # pragma: no cover

    def _mark(self, d: sa.Table, sink: str, ids: list[str]) -> int:
        now, added = _now(), 0
        with self.engine.begin() as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                have = set(c.execute(sa.select(d.c.event_id).where(
                    (d.c.sink == sink) & d.c.event_id.in_(chunk))).scalars())
                known = set(c.execute(sa.select(alert_events_table.c.id).where(
                    alert_events_table.c.id.in_(chunk))).scalars())  # not deleted since
                rows = [{"event_id": x, "sink": sink, "delivered_at": now}
                        for x in chunk if x in known and x not in have]
                if rows:
                    c.execute(d.insert(), rows)
                    added += len(rows)
        return added


def _add_event(c: sa.Connection, event: str, alert_id: str, revision: int, record: str,
               status: str, reason: str | None, params_hash: str, now: str) -> None:
    """Write the outbox row of an alert event, in the caller's transaction."""
    alert = StoredAlert(alert_from_dict(json.loads(record)), status, params_hash, reason)
    c.execute(alert_events_table.insert().values(
        id=event_id(alert_id, revision, record), alert_id=alert_id, site_id=alert.site,
        params_hash=params_hash, event=event, revision=revision,
        payload=json.dumps(alert.payload(), sort_keys=True, ensure_ascii=False),
        created_at=now))


def _event_of(row: Any) -> AlertEvent:
    return decoded("alert_events", row["id"], lambda: AlertEvent(
        row["id"], int(row["seq"]), row["alert_id"], row["site_id"], row["params_hash"],
        row["event"], json.loads(row["payload"]), parse_time(row["created_at"])))


def _processed_of(row: Any) -> ProcessedScene:
    return ProcessedScene.from_dict(
        {**row, "chain": json.loads(row["chain"]), "params": json.loads(row["params"]),
         "detail": json.loads(row["detail"])})


def _observation_of(r: Any) -> Observation:
    return Observation(r["site_id"], r["scene_id"], r["params_hash"], r["part"],
                       r["reference"], r["grid"], parse_time(r["acquired"]),
                       r["reference_id"], float(r["observed_fraction"]),
                       num(r["changed_fraction"]), measures_of(json.loads(r["measures"])),
                       int(r["part_version"]))


def _alert_of(row: Any) -> StoredAlert:
    return decoded("alerts", row["id"], lambda: StoredAlert.from_dict(
        {**row, "record": json.loads(row["record"])}))

__all__ = ["AlertEvent", "ResultStore", "event_id"]
