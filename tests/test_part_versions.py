"""Versioned part geometry through real `sitewatch run`s: a moved part is scored again on
every date under its new version, older observations keep theirs, alerts and the brief name
the version used; the schema upgrade marks stored results without re-scoring (issue 15)."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.report.brief import write_brief
from sitewatch.store import Store
from sitewatch.watch.pipeline import run_site
from sitewatch.watch.zonal import REST
from test_pipeline import PARAMS, catalogue

#: The pad moved: a larger box (pixels 8..24) still holding the planted event (14..20).
PAD_V2 = (8, 8, 24, 24)


def _bbox(r0: int, c0: int, r1: int, c1: int) -> list[str]:
    from test_pipeline import _lonlat_box

    w, s, e, n = _lonlat_box(r0, c0, r1, c1).bounds
    return [f"{v:.7f}" for v in (w, s, e, n)]


def test_a_moved_part_is_rescored_and_old_rows_keep_their_version(tmp_path, store_url):
    db_home = tmp_path / "db"
    with Store.open_url(store_url) as store:
        catalogue(store, tmp_path / "imgs", range(8))
        first = run_site(store, "testsite", PARAMS)
        assert store.current_part_versions("testsite") == {"pad": 1, "quiet": 1, REST: 2}
        v1 = store.observations("testsite", PARAMS.hash, part="pad")
        assert v1 and {o.part_version for o in v1} == {1}
        (alert,) = store.alerts("testsite")
        assert alert.part == "pad" and alert.alert.part_version == 1

        r = CliRunner().invoke(cli, ["--home", str(db_home), "--db", store_url, "site",
                                     "place", "testsite", "pad", "--bbox", *_bbox(*PAD_V2),
                                     "--note", "redrawn"])
        assert r.exit_code == 0 and "version 2" in r.output, r.output
        assert store.current_part_versions("testsite") == {"pad": 2, "quiet": 1, REST: 3}
        # Until the next run the pad has no observations of its current geometry.
        assert store.observations("testsite", PARAMS.hash, part="pad") == []

        second = run_site(store, "testsite", PARAMS)
        # Every date is scored again (the layout is part of each result's chain)...
        assert second.reused == 0 and len(second.processed) == len(first.processed)
        every = store.observations("testsite", PARAMS.hash, part="pad", versions="all")
        by_version = {v: [o for o in every if o.part_version == v] for v in (1, 2)}
        # ... the rows of version 1 are kept as they were, and version 2 has every date.
        assert [o.to_dict() for o in by_version[1]] == [o.to_dict() for o in v1]
        assert ({o.scene_id for o in by_version[2]} == {o.scene_id for o in v1})
        current = store.observations("testsite", PARAMS.hash, part="pad")
        assert {o.part_version for o in current} == {2}
        assert current[0].measures["pixels"] > v1[0].measures["pixels"]  # the larger box
        # The unchanged part keeps version 1 (rewritten, not duplicated); the rest of the
        # site follows the layout version.
        quiet = store.observations("testsite", PARAMS.hash, part="quiet", versions="all")
        assert {o.part_version for o in quiet} == {1}
        assert len(quiet) == len(store.observations("testsite", PARAMS.hash, part="quiet"))
        rest = store.observations("testsite", PARAMS.hash, part=REST)
        assert {o.part_version for o in rest} == {3}
        # The alert is the same event, found again on the version-2 series.
        (alert,) = store.alerts("testsite")
        assert alert.alert.part_version == 2
        assert store.alert_events("testsite")[-1].alert["part_version"] == 2

        third = run_site(store, "testsite", PARAMS)
        assert third.processed == [] and third.reused == len(first.processed)

        page = write_brief(store, "testsite", tmp_path / "brief").html.read_text(
            encoding="utf-8")
        row = next(line for line in page.splitlines() if line.startswith("<tr><td>pad"))
        assert "<td>v2</td>" in row


_V6_OBSERVATIONS = """CREATE TABLE observations (
    site_id VARCHAR(64) NOT NULL, scene_id VARCHAR(128) NOT NULL,
    params_hash VARCHAR(16) NOT NULL, part TEXT NOT NULL, reference VARCHAR(16) NOT NULL,
    grid VARCHAR(64) NOT NULL, acquired VARCHAR(32) NOT NULL, reference_id VARCHAR(128),
    observed_fraction FLOAT NOT NULL, changed_fraction FLOAT, measures TEXT NOT NULL,
    PRIMARY KEY (site_id, scene_id, params_hash, part, reference),
    FOREIGN KEY(site_id, scene_id, params_hash)
        REFERENCES processed (site_id, scene_id, params_hash) ON DELETE CASCADE)"""


def _downgrade_to_v6(db) -> None:
    """The catalogue as the schema before part versions kept it: none anywhere."""
    con = sqlite3.connect(db)
    cols = ("site_id, scene_id, params_hash, part, reference, grid, acquired, reference_id, "
            "observed_fraction, changed_fraction, measures")
    con.execute(f"CREATE TABLE o6 AS SELECT {cols} FROM observations")
    con.execute("DROP TABLE observations")
    con.execute(_V6_OBSERVATIONS)
    con.execute(f"INSERT INTO observations SELECT {cols} FROM o6")
    con.execute("DROP TABLE o6")
    con.execute("DROP TABLE part_versions")
    for key, chain in con.execute("SELECT scene_id, chain FROM processed").fetchall():
        d = json.loads(chain)
        d.pop("parts")
        con.execute("UPDATE processed SET chain = ? WHERE scene_id = ?",
                    (json.dumps(d, sort_keys=True), key))
    for aid, rec in con.execute("SELECT id, record FROM alerts").fetchall():
        d = json.loads(rec)
        d.pop("part_version")
        con.execute("UPDATE alerts SET record = ? WHERE id = ?", (json.dumps(d), aid))
    # Part versions are migration 7 -> 8: version 7 is the one to test (later migrations
    # only add tables).
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("7",))
    con.commit()
    con.close()


def test_upgrading_a_catalogue_marks_results_without_rescoring(tmp_path):
    db = tmp_path / "db" / "sitewatch.db"
    with Store.open_path(db) as store:
        catalogue(store, tmp_path / "imgs", range(8))
        first = run_site(store, "testsite", PARAMS)
        before = [o.to_dict() for o in store.observations("testsite", PARAMS.hash)]
        n_events = len(store.alert_events("testsite"))
    _downgrade_to_v6(db)
    for _ in range(2):  # the upgrade, then opening the upgraded catalogue again
        with Store.open_path(db) as store:
            assert store.current_part_versions("testsite") == {"pad": 1, "quiet": 1, REST: 2}
            assert [v.version for v in store.part_versions("testsite")] == [1, 1]
            assert [o.to_dict() for o in store.observations("testsite", PARAMS.hash)] == before
            (alert,) = store.alerts("testsite")
            assert alert.alert.part_version == 1
    with Store.open_path(db) as store:
        again = run_site(store, "testsite", PARAMS)
        assert again.processed == [] and again.reused == len(first.processed)
        assert len(store.alert_events("testsite")) == n_events  # no update sent for it
