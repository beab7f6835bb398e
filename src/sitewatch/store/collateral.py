"""Collateral: reports, analyst notes and the evidence made of them (one transaction
each; imagery evidence is derived from alerts, never stored).

The area takes and returns the warning side's records
(:class:`~sitewatch.warning.records.Report`, :class:`~sitewatch.warning.records.Note`,
:class:`~sitewatch.warning.evidence.Evidence`); they are stored as their ``to_dict()`` JSON
(the reading, the evidence record) and ISO strings (days, times).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from sitewatch.store.base import StoreBase, _nan_to_none, _now, decoded, insert_new, upsert
from sitewatch.store.schema import evidence_table, notes_table, reports_table
from sitewatch.times import iso_day
from sitewatch.warning.evidence import Evidence
from sitewatch.warning.records import Note, Report


def report_id(site_id: str, checksum: str) -> str:
    """The id of a report's text (its SHA-256 ``checksum``) as stored for a site."""
    return hashlib.sha256(f"{site_id}\x1f{checksum}".encode()).hexdigest()[:16]


def note_id(site_id: str, day: date, part: str | None, text: str) -> str:
    """The id of an analyst note: the same text about the same part and day is one note."""
    return hashlib.sha256(f"{site_id}\x1f{iso_day(day)}\x1f{part}\x1f{text}".encode()
                          ).hexdigest()[:16]


class CollateralStore(StoreBase):
    """Reports, notes and evidence."""

    def put_report(self, report: Report, text: str, evidence: Sequence[Evidence]) -> bool:
        """Store a report (its ``text`` too) and its evidence in one transaction; True when
        it is new.  The same text added again to the same site replaces its evidence (a newer
        reader may read more) and keeps the day it was first added."""
        d = report.to_dict()
        now = _now()
        with self.engine.begin() as c:
            values = {"site_id": report.site_id, "name": report.name, "title": report.title,
                      "published": d["published"], "checksum": report.checksum, "text": text,
                      "reading": json.dumps(d["reading"], sort_keys=True)}
            # Inserted unless stored (by this process or another just now): then updated,
            # keeping the day it was first added.
            exists = not insert_new(c, reports_table, {"id": report.id,
                                                       "added_at": d["added_at"] or now,
                                                       **values})
            if exists:
                c.execute(reports_table.update().where(reports_table.c.id == report.id)
                          .values(**values))
            self._replace_evidence(c, report.site_id, report.id, evidence, now)
        return not exists

    def _replace_evidence(self, c: sa.Connection, site_id: str, source_id: str,
                          evidence: Sequence[Evidence], now: str) -> None:
        e = evidence_table
        c.execute(e.delete().where(e.c.source_id == source_id))
        rows = {}
        for item in evidence:
            d = item.to_dict()
            rows[item.id] = {
                "id": item.id, "site_id": site_id, "kind": item.kind,
                "source_id": source_id, "time": d["time"], "indicator": item.indicator,
                "record": json.dumps(_nan_to_none(d), sort_keys=True), "added_at": now}
        if rows:
            c.execute(e.insert(), list(rows.values()))

    def reports(self, site_id: str) -> list[Report]:
        """Reports added to a site, by publication date (without their text)."""
        t = reports_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.id, t.c.site_id, t.c.name, t.c.title, t.c.published,
                                       t.c.checksum, t.c.reading, t.c.added_at)
                             .where(t.c.site_id == site_id)
                             .order_by(t.c.published, t.c.added_at)).mappings().all()
        return [decoded("reports", r["id"], _report_of, r) for r in rows]

    def report_text(self, report_id: str) -> str | None:
        """The text of a stored report as it was read (untrusted: show it escaped)."""
        with self.engine.connect() as c:
            return c.execute(sa.select(reports_table.c.text)
                             .where(reports_table.c.id == report_id)).scalar()

    def delete_report(self, report_id: str) -> bool:
        """Remove a report and its evidence."""
        with self.engine.begin() as c:
            c.execute(evidence_table.delete().where(evidence_table.c.source_id == report_id))
            res = c.execute(reports_table.delete().where(reports_table.c.id == report_id))
        return bool(res.rowcount)

    def put_note(self, note: Note, evidence: Sequence[Evidence]) -> None:
        """Store an analyst note and the evidence made of it in one transaction (the same
        note again replaces it)."""
        d = note.to_dict()
        now = _now()
        with self.engine.begin() as c:
            upsert(c, notes_table, {"id": note.id, "site_id": note.site_id, "part": note.part,
                                    "date": d["date"], "author": note.author,
                                    "text": note.text, "added_at": now})
            self._replace_evidence(c, note.site_id, note.id, evidence, now)

    def notes(self, site_id: str) -> list[Note]:
        """Analyst notes on a site, by the day they are about."""
        t = notes_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.site_id == site_id)
                             .order_by(t.c.date, t.c.added_at)).mappings().all()
        return [decoded("notes", r["id"], Note.from_dict, dict(r)) for r in rows]

    def evidence(self, site_id: str) -> list[Evidence]:
        """Stored evidence of a site (reports, notices, notes), by date."""
        e = evidence_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(e.c.record, e.c.id).where(e.c.site_id == site_id)
                             .order_by(e.c.time, e.c.id)).all()
        return [decoded("evidence", r[1], _evidence_of, r[0]) for r in rows]


def _report_of(r: Any) -> Report:
    return Report.from_dict({**r, "reading": json.loads(r["reading"])})


def _evidence_of(record: str) -> Evidence:
    return Evidence.from_dict(json.loads(record))

__all__ = ["CollateralStore", "note_id", "report_id"]
