"""What ``sitewatch run`` keeps: processed scenes with their per-part observations (one
transaction each), runs, and alerts with their lifecycle."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from sitewatch.errors import StoreError
from sitewatch.store.base import StoreBase, _finite, _nan_to_none, _now
from sitewatch.store.schema import (
    ALERT_STATUSES,
    alerts_table,
    observations_table,
    processed_table,
    runs_table,
)


class ResultStore(StoreBase):
    """Processed scenes, observations, runs and alerts."""

    def processed(self, site_id: str, params_hash: str) -> dict[str, dict[str, Any]]:
        """Scenes of a site already processed with these parameters: id -> row (``chain``,
        ``params`` and ``detail`` decoded)."""
        t = processed_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(
                (t.c.site_id == site_id) & (t.c.params_hash == params_hash))).mappings().all()
        out = {}
        for r in rows:
            d = dict(r)
            for k in ("chain", "params", "detail"):
                d[k] = json.loads(d[k])
            out[d["scene_id"]] = d
        return out

    def put_result(self, site_id: str, scene_id: str, params_hash: str, *, grid: str,
                   acquired: str, status: str, previous_id: str | None,
                   chain: dict[str, Any], params: dict[str, Any], detail: dict[str, Any],
                   observations: list[dict[str, Any]]) -> None:
        """Store one scene's result and its per-part observations in one transaction,
        replacing any earlier result of the same scene and parameters."""
        pr, o = processed_table, observations_table
        key_p = ((pr.c.site_id == site_id) & (pr.c.scene_id == scene_id)
                 & (pr.c.params_hash == params_hash))
        key_o = ((o.c.site_id == site_id) & (o.c.scene_id == scene_id)
                 & (o.c.params_hash == params_hash))
        rows = [{
            "site_id": site_id, "scene_id": scene_id, "params_hash": params_hash,
            "part": ob["part"], "reference": ob["reference"], "grid": grid,
            "acquired": acquired, "reference_id": ob.get("reference_id"),
            "observed_fraction": float(ob["observed_fraction"]),
            "changed_fraction": _finite(ob.get("changed_fraction")),
            "measures": json.dumps(_nan_to_none(ob["measures"]), sort_keys=True),
        } for ob in observations]
        try:
            with self.engine.begin() as c:
                c.execute(o.delete().where(key_o))
                c.execute(pr.delete().where(key_p))
                c.execute(pr.insert().values(
                    site_id=site_id, scene_id=scene_id, params_hash=params_hash, grid=grid,
                    acquired=acquired, status=status, previous_id=previous_id,
                    chain=json.dumps(chain, sort_keys=True),
                    params=json.dumps(params, sort_keys=True),
                    detail=json.dumps(_nan_to_none(detail), sort_keys=True, default=str),
                    created_at=_now()))
                if rows:
                    c.execute(o.insert(), rows)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"results of scene {scene_id!r} could not be stored ({exc.orig}); "
                             "nothing was half-written: run the command again") from None

    def observations(self, site_id: str, params_hash: str, *, part: str | None = None,
                     reference: str | None = None) -> list[dict[str, Any]]:
        """Stored per-part observations in time order (``measures`` decoded; null -> NaN)."""
        o = observations_table
        cond = (o.c.site_id == site_id) & (o.c.params_hash == params_hash)
        if part is not None:
            cond &= o.c.part == part
        if reference is not None:
            cond &= o.c.reference == reference
        with self.engine.connect() as c:
            rows = c.execute(sa.select(o).where(cond).order_by(
                o.c.acquired, o.c.scene_id, o.c.part, o.c.reference)).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["measures"] = {k: (float("nan") if v is None else v)
                             for k, v in json.loads(d["measures"]).items()}
            if d["changed_fraction"] is None:
                d["changed_fraction"] = float("nan")
            out.append(d)
        return out

    def start_run(self, site_id: str, params_hash: str, params: dict[str, Any],
                  version: str) -> int:
        with self.engine.begin() as c:
            res = c.execute(runs_table.insert().values(
                site_id=site_id, params_hash=params_hash,
                params=json.dumps(params, sort_keys=True), version=version,
                started_at=_now()))
        key = res.inserted_primary_key
        if key is None:
            raise StoreError(f"run of site {site_id!r} could not be recorded")
        return int(key[0])

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(runs_table.update().where(runs_table.c.id == run_id).values(
                finished_at=_now(), summary=json.dumps(summary, sort_keys=True, default=str)))

    def last_run(self, site_id: str, *, finished: bool = False) -> dict[str, Any] | None:
        """The latest run of a site (its ``params`` decoded), or None."""
        t = runs_table
        cond = t.c.site_id == site_id
        if finished:
            cond &= t.c.finished_at.is_not(None)
        with self.engine.connect() as c:
            row = c.execute(sa.select(t).where(cond).order_by(t.c.id.desc()).limit(1)
                            ).mappings().first()
        if row is None:
            return None
        d = dict(row)
        d["params"] = json.loads(d["params"])
        d["summary"] = json.loads(d["summary"]) if d["summary"] else None
        return d

    # ------------------------------------------------------------------ alerts

    def alerts(self, site_id: str | None = None, *, status: str | tuple[str, ...] | None = None,
               part: str | None = None, params_hash: str | None = None
               ) -> list[dict[str, Any]]:
        """Stored alerts in time order (``record`` decoded), optionally of one parameter set."""
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
        return [{**dict(r), "record": json.loads(r["record"])} for r in rows]

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
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
        return {**dict(rows[0]), "record": json.loads(rows[0]["record"])} if rows else None

    def put_alert(self, record: dict[str, Any], params_hash: str,
                  replaces: str | None = None) -> str:
        """Insert an alert, or update the stored one of the same id (or ``replaces``).

        Returns ``"new"``, ``"updated"`` (tier, kind, dates or text changed; the status and
        its reason are kept) or ``"unchanged"``.
        """
        t = alerts_table
        key = replaces or record["id"]
        values = {
            "site_id": record["site"], "part": record["part"], "time": record["time"],
            "start": record["start"], "end": record["end"], "tier": record["tier"],
            "kind": record["kind"], "params_hash": params_hash,
        }
        with self.engine.begin() as c:
            row = c.execute(sa.select(t).where(t.c.id == key)).mappings().first()
            now = _now()
            if row is None:
                c.execute(t.insert().values(
                    id=record["id"], status="new", reason=None,
                    record=json.dumps(_nan_to_none(record), sort_keys=True),
                    created_at=now, updated_at=now, **values))
                return "new"
            old = json.loads(row["record"])
            record = {**record, "id": row["id"]}
            text = json.dumps(_nan_to_none(record), sort_keys=True)
            if json.dumps(old, sort_keys=True) == text:
                return "unchanged"
            c.execute(t.update().where(t.c.id == row["id"]).values(
                record=text, updated_at=now, **values))
            return "updated"

    def delete_alerts(self, site_id: str) -> int:
        """Remove every alert of a site (the demo does, when its scenario changes)."""
        with self.engine.begin() as c:
            res = c.execute(alerts_table.delete().where(alerts_table.c.site_id == site_id))
        return int(res.rowcount or 0)

    def set_alert_status(self, alert_id: str, status: str, reason: str | None = None
                         ) -> dict[str, Any]:
        """Move an alert along its lifecycle; returns the updated alert."""
        if status not in ALERT_STATUSES:
            raise StoreError(f"unknown alert status {status!r}; use one of "
                             f"{', '.join(ALERT_STATUSES)}")
        found = self.get_alert(alert_id)
        if found is None:
            raise StoreError(f"no alert {alert_id!r} (see `sitewatch alerts SITE`)")
        t = alerts_table
        with self.engine.begin() as c:
            c.execute(t.update().where(t.c.id == found["id"]).values(
                status=status, reason=reason, updated_at=_now()))
        out = self.get_alert(found["id"])
        assert out is not None
        return out

