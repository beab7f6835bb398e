"""Collateral: reports, analyst notes and the evidence made of them (one transaction
each; imagery evidence is derived from alerts, never stored)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from sitewatch.store.base import StoreBase, _nan_to_none, _now
from sitewatch.store.schema import evidence_table, notes_table, reports_table


def report_id(site_id: str, checksum: str) -> str:
    """The id of a report's text (its SHA-256 ``checksum``) as stored for a site."""
    return hashlib.sha256(f"{site_id}\x1f{checksum}".encode()).hexdigest()[:16]



class CollateralStore(StoreBase):
    """Reports, notes and evidence."""

    def put_report(self, site_id: str, record: dict[str, Any], text: str, checksum: str,
                   evidence: list[dict[str, Any]]) -> tuple[str, bool]:
        """Store a report and its evidence in one transaction; ``(id, new)``.  The same text
        added again to the same site replaces its evidence (a newer reader may read more)."""
        rid = report_id(site_id, checksum)
        now = _now()
        with self.engine.begin() as c:
            exists = c.execute(sa.select(reports_table.c.id).where(
                reports_table.c.id == rid)).first() is not None
            values = {"site_id": site_id, "name": record.get("name", ""),
                      "title": record.get("title", ""), "published": record.get("published"),
                      "checksum": checksum, "text": text,
                      "reading": json.dumps(record, sort_keys=True)}
            if exists:
                c.execute(reports_table.update().where(reports_table.c.id == rid)
                          .values(**values))
            else:
                c.execute(reports_table.insert().values(id=rid, added_at=now, **values))
            self._replace_evidence(c, site_id, rid, evidence, now)
        return rid, not exists

    def _replace_evidence(self, c: sa.Connection, site_id: str, source_id: str,
                          evidence: list[dict[str, Any]], now: str) -> None:
        e = evidence_table
        c.execute(e.delete().where(e.c.source_id == source_id))
        rows = {}
        for item in evidence:
            rows[item["id"]] = {
                "id": item["id"], "site_id": site_id, "kind": item["kind"],
                "source_id": source_id, "time": item.get("time"),
                "indicator": item["indicator"],
                "record": json.dumps(_nan_to_none(item), sort_keys=True), "added_at": now}
        if rows:
            c.execute(e.insert(), list(rows.values()))

    def reports(self, site_id: str) -> list[dict[str, Any]]:
        """Reports added to a site, by publication date (``reading`` decoded; no text)."""
        t = reports_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.id, t.c.site_id, t.c.name, t.c.title, t.c.published,
                                       t.c.checksum, t.c.reading, t.c.added_at)
                             .where(t.c.site_id == site_id)
                             .order_by(t.c.published, t.c.added_at)).mappings().all()
        return [{**dict(r), "reading": json.loads(r["reading"])} for r in rows]

    def delete_report(self, report_id: str) -> bool:
        """Remove a report and its evidence."""
        with self.engine.begin() as c:
            c.execute(evidence_table.delete().where(evidence_table.c.source_id == report_id))
            res = c.execute(reports_table.delete().where(reports_table.c.id == report_id))
        return bool(res.rowcount)

    def put_note(self, site_id: str, text: str, date: str, part: str | None,
                 author: str | None, evidence_of: Any) -> tuple[str, list[dict[str, Any]]]:
        """Store an analyst note and the evidence ``evidence_of(note_id)`` makes of it."""
        nid = hashlib.sha256(f"{site_id}\x1f{date}\x1f{part}\x1f{text}".encode()
                             ).hexdigest()[:16]
        evidence = evidence_of(nid)
        now = _now()
        with self.engine.begin() as c:
            c.execute(notes_table.delete().where(notes_table.c.id == nid))
            c.execute(notes_table.insert().values(id=nid, site_id=site_id, part=part,
                                                  date=date, author=author, text=text,
                                                  added_at=now))
            self._replace_evidence(c, site_id, nid, evidence, now)
        return nid, evidence

    def notes(self, site_id: str) -> list[dict[str, Any]]:
        t = notes_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.site_id == site_id)
                             .order_by(t.c.date, t.c.added_at)).mappings().all()
        return [dict(r) for r in rows]

    def evidence(self, site_id: str) -> list[dict[str, Any]]:
        """Stored evidence records of a site (reports, notices, notes), by date."""
        e = evidence_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(e.c.record).where(e.c.site_id == site_id)
                             .order_by(e.c.time, e.c.id)).all()
        return [json.loads(r[0]) for r in rows]

