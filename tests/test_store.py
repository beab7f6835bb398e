"""The store on its own, on SQLite and on PostgreSQL (``store_url``): every record through a
real database and back, NaN as null, the registration kept once, a newer catalogue refused, a
failed write leaving nothing, the alert lifecycle and alert ids by prefix; and the version-5
migration from a version-4 file (SQLite: the only database older versions wrote)."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from affine import Affine

from conftest import SOHAE_UTM, rng_image, write_tif
from sitewatch.errors import StoreError
from sitewatch.imagery.coregister import LocalShift, Registration, Shift
from sitewatch.imagery.ingest import ingest
from sitewatch.store import SCHEMA_VERSION, Store
from sitewatch.store.base import database_url
from sitewatch.watch.alerts import Alert
from sitewatch.watch.records import (
    Chain,
    ChangeProducts,
    Comparison,
    Observation,
    ProcessedScene,
    RunSummary,
    SceneRegistration,
    StoredAlert,
)

SITE, GRID, PH = "sohae", "optical-10m", "p1"
T = [datetime(2024, m, 1, 2, 0, tzinfo=UTC) for m in (1, 2, 3)]
NAN = math.nan


def _scenes(folder, n=3):
    t = Affine(10, 0, SOHAE_UTM[0] - 500, 0, -10, SOHAE_UTM[1] + 500)
    for i in range(n):
        write_tif(folder / f"scene_{i}.tif", rng_image(i), transform=t,
                  tags={"ACQUISITION_TIME": f"2024-0{i + 1}-01T02:00:00Z"},
                  descriptions=["blue", "green", "red", "nir"])


def _catalogued(tmp_path, target: str) -> str:
    _scenes(tmp_path / "imgs")
    with Store.open_url(target) as s:
        ingest(s, [tmp_path / "imgs"], SITE)
    return target


@pytest.fixture
def db(tmp_path, store_url) -> str:
    """A catalogue with three scenes of the site, on each database."""
    return _catalogued(tmp_path, store_url)


@pytest.fixture
def sqlite_db(tmp_path) -> str:
    """A catalogue with three scenes of the site, in a SQLite file."""
    return _catalogued(tmp_path, str(tmp_path / "db" / "sitewatch.db"))


@pytest.fixture
def store(db):
    with Store.open_url(db) as s:
        yield s


def _sql(store: Store, statement: str, **params) -> list[tuple]:
    """Rows of one SQL statement on the store's own database, whichever it is."""
    with store.engine.begin() as c:
        res = c.execute(sa.text(statement), params)
        return [tuple(r) for r in res] if res.returns_rows else []


def _registration(scene="scene_2", *, applied=True, residual=NAN) -> SceneRegistration:
    reg = Registration(Shift(0.5, -1.25, 0.2), 0.8, residual,
                       (LocalShift(16.0, 16.0, Shift(0.4, -1.2, 0.1)),
                        LocalShift(16.0, 48.0, None)), "ok", "global shift only")
    return SceneRegistration.of(SITE, scene, GRID, "scene_0", reg, applied=applied)


def _result(scene="scene_2", reg: SceneRegistration | None = None, status="ok"
            ) -> tuple[ProcessedScene, list[Observation]]:
    i = int(scene[-1])
    prev = Comparison("previous", "scene_1", "ratio", 1.7, "otsu", NAN,
                      products=ChangeProducts("/p/scene_2_change.tif", "/p/scene_2_score.tif"))
    comp = Comparison("composite", "scene_0,scene_1", "ratio", 1.9, "otsu", 0.02,
                      members=("scene_0", "scene_1"))
    res = ProcessedScene(SITE, scene, PH, GRID, T[i], status, "80% of the site observed",
                         Chain("abc", "scene_0", "scene_1", ("scene_0", "scene_1")),
                         {"method": "ratio", "pipeline_version": 2}, "scene_1", 0.8,
                         ("blue", "green", "red", "nir"), "ratio", {"k": 3}, "0.test",
                         prev, comp, reg)
    obs = [Observation(SITE, scene, PH, part, ref, GRID, T[i], ref_id, 0.9, frac,
                       {"pixels": 144.0, "changed_area_m2": 300.0, "ndvi_change": NAN})
           for part, frac in (("pad", 0.25), ("(rest of site)", NAN))
           for ref, ref_id in (("previous", "scene_1"), ("composite", "scene_0,scene_1"))]
    return res, obs


def _alert(aid="0123456789abcdef", part="pad", time="2024-03-01T02:00:00Z",
           start="2024-02-01T02:00:00Z", text="pad: unusual change") -> Alert:
    return Alert(aid, SITE, part, time, "changed_excess", "departure", "watch", 0.25, 0.0,
                 NAN, "low", 3, text, "scene_1", "scene_2", start=start, end=time, grid=GRID,
                 changed_area_m2=300.0, objects=1, objects_area_m2=300.0,
                 largest_object_m2=300.0,
                 findings=({"time": time, "measure": "changed_excess", "z": None},))


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (records compare their JSON forms)."""
    return json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


# --------------------------------------------------------------------------- round trips


def test_a_processed_scene_with_its_registration_and_observations_round_trips(store, db):
    reg = _registration()
    res, obs = _result(reg=reg)
    store.put_result(res, obs)
    got = store.processed(SITE, PH)["scene_2"]
    assert got.created_at is not None and got.registration is not None
    assert got.registration.created_at is not None
    assert replace(got, created_at=None,
                   registration=replace(got.registration, created_at=None)) \
        .to_dict() == res.to_dict()
    assert got.previous == res.previous and got.products == res.products
    assert got.chain == res.chain  # what decides reuse compares equal after storage
    assert got.acquired == T[2] and got.acquired.tzinfo is not None
    back = store.observations(SITE, PH)
    assert len(back) == len(obs) and all(_same(a, b) for a, b in zip(
        sorted(back, key=lambda o: (o.part, o.reference)),
        sorted(obs, key=lambda o: (o.part, o.reference)), strict=True))
    # The JSON forms read back to equal records.
    assert ProcessedScene.from_dict(json.loads(json.dumps(got.to_dict()))).to_dict() \
        == got.to_dict()
    assert _same(Observation.from_dict(json.loads(json.dumps(back[0].to_dict()))), back[0])


def test_nan_is_null_in_the_database_and_nan_when_read(store, db):
    res, obs = _result()
    store.put_result(res, obs)
    rows = _sql(store, "SELECT part, changed_fraction, measures FROM observations "
                       "WHERE reference = 'previous' ORDER BY part")
    detail = json.loads(_sql(store, "SELECT detail FROM processed")[0][0])
    rest, pad = rows
    assert rest[1] is None and pad[1] == 0.25  # SQL NULL, not a number
    assert json.loads(rest[2])["ndvi_change"] is None  # JSON null
    assert detail["previous"]["changed_fraction_site"] is None
    o = next(o for o in store.observations(SITE, PH, part="(rest of site)",
                                           reference="previous"))
    assert math.isnan(o.changed_fraction) and math.isnan(o.measures["ndvi_change"])
    assert math.isnan(store.processed(SITE, PH)["scene_2"].previous.changed_fraction_site)
    assert "NaN" not in json.dumps(o.to_dict())  # valid JSON at the edges


def test_the_registration_is_stored_once(store, db):
    reg = _registration(applied=False)
    res, obs = _result(reg=reg)
    store.put_result(res, obs)
    detail = json.loads(_sql(store, "SELECT detail FROM processed")[0][0])
    regs = _sql(store, "SELECT scene_id, applied FROM registrations")
    assert "registration" not in detail and regs == [("scene_2", False)]  # 0 in SQLite
    (r,) = store.registrations(SITE, GRID)
    assert store.processed(SITE, PH)["scene_2"].registration == r
    assert r.applied_shift is None and r.shift == Shift(0.5, -1.25)
    assert math.isnan(r.residual_px) and math.isnan(r.local[1].dy)
    # Another reference for the grid: the old result no longer claims that registration.
    store.put_registration(replace(reg, reference_id="scene_1"))
    assert store.processed(SITE, PH)["scene_2"].registration is None
    assert len(store.registrations(SITE)) == 1


def test_an_alert_and_a_run_round_trip(store):
    a = _alert()
    assert store.put_alert(a, PH) == "new"
    (got,) = store.alerts(SITE)
    assert got.alert.to_dict()["findings"] == list(a.findings)
    assert _same(got.alert, a) and math.isnan(got.alert.z)
    assert (got.status, got.params_hash, got.reason) == ("new", PH, None)
    assert got.time == datetime(2024, 3, 1, 2, tzinfo=UTC) and got.start == T[1]
    assert got.payload()["z"] is None and got.payload()["status"] == "new"
    assert _same(StoredAlert.from_dict(json.loads(json.dumps(got.to_dict()))), got)
    run = store.start_run(SITE, PH, {"method": "ratio"}, "0.test")
    assert store.last_run(SITE, finished=True) is None
    store.finish_run(run.id, RunSummary(3, 1, 1, 0, 2.5))
    last = store.last_run(SITE, finished=True)
    assert last is not None and last.id == run.id and last.params == {"method": "ratio"}
    assert last.summary == RunSummary(3, 1, 1, 0, 2.5) and last.finished
    assert last.started_at.tzinfo is not None and last.finished_at >= last.started_at


# --------------------------------------------------------------------------- versions


def _make_v4(db, store: Store) -> None:
    """The catalogue as sitewatch wrote it at schema version 4: no ``applied`` column, and
    each processed scene's detail holding a second copy of its registration."""
    store.close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE registrations DROP COLUMN applied")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    now = "2024-06-01T00:00:00Z"
    reg4 = {"dy": 0.0, "dx": 0.0, "reliability": 0.2, "residual_px": None,
            "status": "flagged", "reason": "weak; not applied (provider geolocation used)",
            "local": []}
    # scene_1: a weak match stored as zero, with the measured shift in processed.detail.
    con.execute("INSERT INTO registrations VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (SITE, "scene_1", GRID, "scene_0", 0.0, 0.0, 0.2, None, "flagged",
                 json.dumps(reg4), now))
    # scene_2: a registration no processed row mentions (an older demo wrote such rows).
    reg_b = {**reg4, "dy": 0.3, "dx": 0.4, "status": "ok", "reason": "agree",
             "local": [{"row": 1.0, "col": 2.0, "dy": None, "dx": None}]}
    con.execute("INSERT INTO registrations VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (SITE, "scene_2", "10m", "scene_0", 0.3, 0.4, 0.9, 0.1, "ok",
                 json.dumps(reg_b), now))
    detail4 = {"site_observed": 0.9, "bands": ["red"], "method": "ratio", "method_params": {},
               "version": "0.1.0",
               "registration": {"dy": 1.5, "dx": -0.5, "status": "rejected",
                                "reason": "weak; not applied (provider geolocation used)",
                                "applied": False},
               "previous": {"threshold": 1.7, "rule": "otsu", "method": "ratio",
                            "changed_fraction_site": None,
                            "products": {"change": "/c.tif", "score": "/s.tif"}}}
    chain = {"checksum": "x", "reference": "scene_0", "previous": "scene_0", "composite": []}
    con.execute("INSERT INTO processed VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (SITE, "scene_1", PH, GRID, "2024-02-01T02:00:00Z", "ok", "scene_0",
                 json.dumps(chain), json.dumps({"method": "ratio"}), json.dumps(detail4),
                 now))
    con.execute("INSERT INTO processed VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (SITE, "scene_2", PH, GRID, "2024-03-01T02:00:00Z", "failed", None,
                 json.dumps(chain), json.dumps({"method": "ratio"}),
                 json.dumps({"error": "truncated file"}), now))
    con.commit()
    con.close()


def test_a_version_4_catalogue_is_migrated_and_read(sqlite_db):
    db = sqlite_db
    _make_v4(db, Store.open_path(db))
    with Store.open_path(db) as s:
        assert s.schema_version() == SCHEMA_VERSION == 9
        done = s.processed(SITE, PH)
        one = done["scene_1"]
        assert one.registration is not None and not one.registration.applied
        assert one.registration.status == "flagged" and one.registration.applied_shift is None
        assert one.previous is not None and one.previous.reference_id == "scene_0"
        assert one.products == ChangeProducts("/c.tif", "/s.tif")
        assert math.isnan(one.previous.changed_fraction_site)
        assert done["scene_2"].reason == "cannot be loaded: truncated file"
        # The rule version 4 loaded scenes with, where no processed copy says otherwise.
        (other,) = s.registrations(SITE, "10m")
        assert other.applied and other.applied_shift == Shift(0.3, 0.4)
        assert other.reason == "agree" and math.isnan(other.local[0].dy)
    con = sqlite3.connect(db)
    details = [json.loads(d) for (d,) in con.execute("SELECT detail FROM processed")]
    con.close()
    assert all("registration" not in d for d in details)  # the second copy is gone


def test_a_newer_catalogue_is_refused(db, store):
    _sql(store, "UPDATE meta SET value = :v WHERE key = 'schema_version'",
         v=str(SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(StoreError, match="newer than this sitewatch understands"):
        Store.open_url(db)


def test_a_failed_write_leaves_nothing_half_written(store, db):
    first, obs = _result(reg=_registration())
    store.put_result(first, obs)
    # The same result again, but one observation clashes with another (same key): the
    # database refuses it, and the earlier result, observations and registration stay.
    again, obs2 = _result(reg=_registration(applied=False))
    again = replace(again, status="failed", reason="second try")
    with pytest.raises(StoreError, match="nothing was half-written"):
        store.put_result(again, [*obs2, obs2[0]])
    kept = store.processed(SITE, PH)["scene_2"]
    assert kept.status == "ok" and kept.registration is not None and kept.registration.applied
    assert len(store.observations(SITE, PH)) == len(obs)
    with pytest.raises(StoreError, match="stored with the result"):
        store.put_result(again, [replace(obs2[0], scene_id="scene_1")])


# --------------------------------------------------------------------------- alerts


def test_alert_lifecycle_keeps_the_record(store):
    a = _alert()
    store.put_alert(a, PH)
    assert store.put_alert(a, PH) == "unchanged"
    seen = store.set_alert_status(a.id, "seen")
    assert seen.status == "seen" and seen.updated_at >= seen.created_at
    gone = store.set_alert_status(a.id[:6], "dismissed", "a test target")
    assert (gone.status, gone.reason) == ("dismissed", "a test target")
    assert gone.payload()["status_reason"] == "a test target"
    # The event found again with a changed text: updated, its status and reason kept.
    assert store.put_alert(replace(a, text="pad: unusual change, larger"), PH) == "updated"
    (b,) = store.alerts(SITE, status="dismissed")
    assert b.reason == "a test target" and b.text.endswith("larger")
    back = store.set_alert_status(a.id, "new")
    assert back.status == "new" and _same(back.alert, b.alert)
    assert back.created_at == gone.created_at
    with pytest.raises(StoreError, match="unknown alert status"):
        store.set_alert_status(a.id, "burnt")


def test_alert_ids_by_prefix(store):
    store.put_alert(_alert("abcd1111aaaaaaaa"), PH)
    store.put_alert(_alert("abcd2222bbbbbbbb", part="quiet"), PH)
    assert store.get_alert("ABCD1") is not None  # case and spaces do not matter
    assert store.get_alert(" abcd2222 ").part == "quiet"
    assert store.get_alert("ffff") is None
    with pytest.raises(StoreError, match="too short"):
        store.get_alert("abc")
    with pytest.raises(StoreError, match="ambiguous"):
        store.get_alert("abcd")
    with pytest.raises(StoreError, match="no alert"):
        store.set_alert_status("ffff0000", "seen")


def test_a_schema_creation_that_fails_leaves_no_table(store_url, monkeypatch):
    """The schema is made in one transaction on both databases (on SQLite the driver would
    run DDL outside one: ``BEGIN IMMEDIATE`` is what makes it atomic)."""
    from sitewatch.store import schema

    real = schema.metadata.create_all

    def crash(conn):
        real(conn)
        raise StoreError("crashed after creating the tables")

    monkeypatch.setattr(schema.metadata, "create_all", crash)
    with pytest.raises(StoreError, match="crashed"):
        Store.open_url(store_url)
    monkeypatch.undo()
    engine = sa.create_engine(database_url(store_url))
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    with Store.open_url(store_url) as s:  # and the next open makes it whole
        assert s.schema_version() == SCHEMA_VERSION

