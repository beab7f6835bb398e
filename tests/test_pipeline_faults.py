"""`sitewatch run` when scenes go wrong: unreadable pixels, other band sets, a site too big
for the memory budget, scenes removed, and scenes ingested in another order (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import sqlalchemy as sa
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.imagery.grid import site_grid
from sitewatch.imagery.ingest import ingest
from sitewatch.store import Store
from sitewatch.watch import grids, pipeline
from sitewatch.watch.pipeline import PipelineError, RunParams, load_bands, run_site
from test_pipeline import EVENT_AT, PARAMS, TRANSFORM, scene, snapshot, test_site

BANDS = ["blue", "green", "red", "nir"]


def when(i: int) -> str:
    return f"2024-{1 + i // 2:02d}-{1 + 14 * (i % 2):02d}T02:00:00Z"


def write_tiled(path: Path, i: int, *, interleave: str = "pixel",
                names: list[str] | None = None, transform=TRANSFORM,
                cloudy: bool = False) -> Path:
    """Date ``i`` of test_pipeline's series as a tiled, deflated GeoTIFF (3 x 3 tiles)."""
    data = scene(i) * (0 if cloudy else 1)
    if names is not None:
        data = data[:len(names)]
    names = names or BANDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
            path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
            count=data.shape[0], dtype=data.dtype.name, crs="EPSG:32651", transform=transform,
            nodata=0, tiled=True, blockxsize=32, blockysize=32, compress="deflate",
            interleave=interleave) as ds:
        ds.write(data)
        ds.update_tags(ACQUISITION_TIME=when(i))
        for b, n in enumerate(names):
            ds.set_band_description(b + 1, n)
    return path


def corrupt_middle_tile(path: Path, band: int = 1) -> None:
    """Overwrite the data of the middle tile (of ``band`` when bands are interleaved by band):
    ingest reads only the first and last blocks, so the file still passes it."""
    with rasterio.open(path) as ds:
        off = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=band))
        size = int(ds.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=band))
    raw = bytearray(path.read_bytes())
    raw[off + 2:off + size] = b"\xff" * (size - 2)
    path.write_bytes(bytes(raw))


def catalogue(store: Store, folder: Path, indices, **kw) -> None:
    for i in indices:
        write_tiled(folder / f"scene_{i:02d}.tif", i, **kw)
    ingest(store, [folder], "testsite", site=test_site())


def results(store: Store) -> list[tuple]:
    """test_pipeline's snapshot without the alerts (tuples of 4)."""
    return [row for row in snapshot(store) if len(row) != 4]


def statuses(store: Store) -> dict[str, str]:
    return {k: v.status for k, v in store.processed("testsite", PARAMS.hash).items()}


@pytest.fixture
def store(tmp_path):
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as s:
        yield s


def other_store(tmp_path: Path, name: str) -> Store:
    return Store.open_path(tmp_path / name / "sitewatch.db")


# --------------------------------------------------------------------------- unreadable


def test_a_corrupt_tile_fails_its_scene_and_the_run_goes_on(store, tmp_path):
    folder = tmp_path / "imgs"
    catalogue(store, folder, range(8))
    corrupt_middle_tile(folder / "scene_02.tif")
    rep = run_site(store, "testsite", PARAMS)
    why = {s: (st, r) for s, st, r in rep.processed}
    status, reason = why["scene_02"]
    assert status == "failed"
    assert "scene_02.tif: pixels cannot be read" in reason and "\n" not in reason
    assert [why[f"scene_{i:02d}"][0] for i in (4, 5, 6, 7)] == ["ok"] * 4
    row = store.processed("testsite", PARAMS.hash)["scene_04"]
    assert row.previous_id == "scene_01"  # 2 failed, 3 is cloudy
    assert [a.part for a in store.alerts("testsite")] == ["pad"]  # the event is still found
    assert run_site(store, "testsite", PARAMS).processed == []  # failed is a result


def test_a_band_unreadable_after_the_probe_fails_the_full_load(store, tmp_path):
    # Bands interleaved by band: the probe (red) reads, the full load (nir) does not.
    folder = tmp_path / "imgs"
    catalogue(store, folder, range(3), interleave="band")
    corrupt_middle_tile(folder / "scene_01.tif", band=4)
    rep = run_site(store, "testsite", PARAMS)
    got = {s: (st, r) for s, st, r in rep.processed}
    assert got["scene_01"][0] == "failed" and "pixels cannot be read" in got["scene_01"][1]
    assert got["scene_02"][0] == "ok"
    assert store.processed("testsite", PARAMS.hash)["scene_02"].previous_id == "scene_00"


@pytest.mark.parametrize("bad, role", [(7, "previous"), (5, "composite"), (0, "reference")])
def test_a_scene_unreadable_since_its_run_is_failed_and_left_out(tmp_path, bad, role):
    """A scene a later date needs (its previous date, a composite member, the grid's
    reference) is corrupted after it was processed: it is failed, the dates resting on it
    are redone without it, and the results are those of a run in which it failed from the
    start."""
    with other_store(tmp_path, "late") as late, other_store(tmp_path, "early") as early:
        catalogue(late, tmp_path / "late", range(8))
        run_site(late, "testsite", PARAMS)
        corrupt_middle_tile(tmp_path / "late" / f"scene_{bad:02d}.tif")
        # (from another folder: ingesting the first again would see the file changed)
        catalogue(late, tmp_path / "later", [8, 9])
        rep = run_site(late, "testsite", PARAMS)
        got = {s: (st, r) for s, st, r in rep.processed}
        assert got[f"scene_{bad:02d}"][0] == "failed"
        assert "can no longer be read" in got[f"scene_{bad:02d}"][1]
        rows = late.processed("testsite", PARAMS.hash)
        assert all(f"scene_{bad:02d}" not in (r.chain.reference, r.chain.previous,
                                              *r.chain.composite) for r in rows.values())
        assert len(got) == len(rep.processed)  # each scene reported once
        if role == "reference":
            assert rep.grids["optical-10m"] == "scene_01"
            assert len(got) == 10  # every date rests on the reference
        assert statuses(late)["scene_09"] == "ok"

        catalogue(early, tmp_path / "early", range(10))
        corrupt_middle_tile(tmp_path / "early" / f"scene_{bad:02d}.tif")
        run_site(early, "testsite", PARAMS)
        assert snapshot(early) == snapshot(late)
        assert run_site(late, "testsite", PARAMS).processed == []


def test_a_grid_with_no_readable_scene_fails_its_scenes_and_the_run_ends(store, tmp_path):
    folder = tmp_path / "imgs"
    catalogue(store, folder, range(3))
    for i in range(3):
        corrupt_middle_tile(folder / f"scene_{i:02d}.tif")
    rep = run_site(store, "testsite", PARAMS)
    assert [(s, st) for s, st, _ in rep.processed] == [
        ("scene_00", "failed"), ("scene_01", "failed"), ("scene_02", "failed")]
    assert run_site(store, "testsite", PARAMS).processed == []


def test_read_errors_of_every_kind_become_the_scenes_failure(store, tmp_path, monkeypatch):
    """GDAL's errors and the file system's, raised by the load itself."""
    from rasterio._err import CPLE_AppDefinedError

    catalogue(store, tmp_path / "imgs", range(4))
    real = grids.load_scene
    kinds = {"scene_01": rasterio.errors.RasterioIOError("Read failed."),
             "scene_02": CPLE_AppDefinedError(1, 1, "IReadBlock failed at X offset 0"),
             "scene_03": PermissionError(13, "Permission denied")}

    def load(sc, *a, **kw):
        if sc.id in kinds:
            raise kinds[sc.id]
        return real(sc, *a, **kw)

    monkeypatch.setattr(grids, "load_scene", load)
    rep = run_site(store, "testsite", PARAMS)
    assert [(s, st) for s, st, _ in rep.processed] == [
        ("scene_00", "first"), ("scene_01", "failed"), ("scene_02", "failed"),
        ("scene_03", "failed")]
    assert "IReadBlock failed" in rep.processed[2][2]
    assert "Permission denied" in rep.processed[3][2]


# --------------------------------------------------------------------------- band sets


def test_a_scene_with_other_bands_is_unusable_on_the_grid_and_the_run_goes_on(store,
                                                                             tmp_path):
    folder = tmp_path / "imgs"
    for i in (0, 1, 3):
        write_tiled(folder / f"scene_{i:02d}.tif", i if i != 3 else 2)
    write_tiled(folder / "scene_02.tif", 4, names=["swir16", "swir22", "lwir"])
    # scene_03 carries date 2's picture, so the cloudy date is not in this series
    with rasterio.open(folder / "scene_03.tif", "r+") as ds:
        ds.update_tags(ACQUISITION_TIME=when(3))
    ingest(store, [folder], "testsite", site=test_site())
    rep = run_site(store, "testsite", PARAMS)
    got = {s: (st, r) for s, st, r in rep.processed}
    assert got["scene_02"][0] == "unusable"
    assert "blue, green, red, nir" in got["scene_02"][1]
    assert [got[s][0] for s in ("scene_00", "scene_01", "scene_03")] == ["first", "ok", "ok"]
    assert store.processed("testsite", PARAMS.hash)["scene_03"].bands == tuple(BANDS)
    # the odd scene, first in time, neither shrinks the bands nor becomes the reference
    assert rep.grids["optical-10m"] == "scene_00"


def test_grid_bands_are_those_most_scenes_have():
    from types import SimpleNamespace as S

    four, odd = S(band_names=BANDS), S(band_names=["swir16", "lwir"])
    assert load_bands([odd, four, four], "optical") == tuple(BANDS)
    assert load_bands([four, S(band_names=["red", "nir"])] * 2, "optical") == ("red", "nir")
    # no band with a majority: the earliest scene's
    assert load_bands([odd, four], "optical") == ("swir16",)
    assert load_bands([S(band_names=["vv", "vh"]), S(band_names=["hh"])], "sar") == ("vv", "vh")
    # a majority no scene has whole: the band fewest scenes have goes first
    abc = [S(band_names=["a", "b"]), S(band_names=["b", "c"]), S(band_names=["a", "c"]),
           S(band_names=["a", "b", "c"][:2])]
    assert load_bands(abc, "sar") == ("a", "b")


# --------------------------------------------------------------------------- memory


def test_a_site_too_big_for_the_memory_budget_is_refused_up_front(store, tmp_path,
                                                                  monkeypatch):
    catalogue(store, tmp_path / "imgs", range(3))
    grid = grids.grid_for_scenes(test_site(), store.scenes("testsite"))
    need = pipeline.run_memory(grid, 4, PARAMS.composite, 2)
    monkeypatch.setenv(pipeline.MEMORY_ENV, str(need - 1))
    with pytest.raises(PipelineError) as exc:
        run_site(store, "testsite", PARAMS)
    msg = str(exc.value)
    assert "'testsite'" in msg and f"{grid.width} x {grid.height} px" in msg
    assert "GiB" in msg and pipeline.MEMORY_ENV in msg and "\n" not in msg
    assert store.processed("testsite", PARAMS.hash) == {} and store.last_run("testsite") is None
    monkeypatch.setenv(pipeline.MEMORY_ENV, str(need))
    assert len(run_site(store, "testsite", PARAMS).processed) == 3


def test_memory_budget_reads_sizes_and_refuses_nonsense(monkeypatch):
    monkeypatch.setenv(pipeline.MEMORY_ENV, "1.5G")
    assert pipeline.memory_budget()[0] == int(1.5 * 2**30)
    monkeypatch.setenv(pipeline.MEMORY_ENV, "512MiB")
    assert pipeline.memory_budget()[0] == 512 * 2**20
    for bad in ("lots", "-3G", "0"):
        monkeypatch.setenv(pipeline.MEMORY_ENV, bad)
        with pytest.raises(PipelineError, match=pipeline.MEMORY_ENV):
            pipeline.memory_budget()
    monkeypatch.delenv(pipeline.MEMORY_ENV)
    assert pipeline.memory_budget()[0] > 2**20


def test_memory_estimate_grows_with_what_is_held():
    grid = site_grid(test_site(), 10.0)
    one = pipeline.run_memory(grid, 4, 5, 2)
    assert one > grid.width * grid.height * 4 * 4 * 10  # at least ten images of 4 bands
    assert pipeline.run_memory(grid, 8, 5, 2) > one
    assert pipeline.run_memory(grid, 4, 9, 2) > one


def test_memory_estimate_counts_the_same_season_reference(monkeypatch):
    # A cross-season scene also holds the same-season members and their median.
    from sitewatch.watch import grids

    grid = site_grid(test_site(), 10.0)
    one = pipeline.run_memory(grid, 4, 5, 2)
    monkeypatch.setattr(grids, "SEASON_MEMBERS", grids.SEASON_MEMBERS + 2)
    assert pipeline.run_memory(grid, 4, 5, 2) == one + 2 * grid.width * grid.height * 4 * 4


def test_cli_run_refuses_a_site_over_budget_in_one_line(home, tmp_path, monkeypatch):
    with Store.open_home(home) as s:
        catalogue(s, tmp_path / "imgs", range(2))
    monkeypatch.setenv(pipeline.MEMORY_ENV, "1K")
    r = CliRunner().invoke(cli, ["run", "testsite"])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].lower().startswith("error: site 'testsite'")
    assert "Traceback" not in r.output


# --------------------------------------------------------------------------- removal


def test_remove_scene_takes_its_results_and_later_runs_redo_what_rested_on_it(store,
                                                                             tmp_path):
    catalogue(store, tmp_path / "imgs", range(10))
    run_site(store, "testsite", RunParams(method="ratio"))
    other = RunParams(method="ratio", composite=3)
    run_site(store, "testsite", other)
    gone = store.remove_scene("testsite", "scene_04")
    assert gone is not None
    assert gone.results == 2 and gone.observations > 0 and gone.registrations >= 1
    assert store.get_scene("testsite", "scene_04") is None
    for p in (PARAMS, other):
        assert "scene_04" not in store.processed("testsite", p.hash)
        assert all(o.scene_id != "scene_04"
                   for o in store.observations("testsite", p.hash))
    assert store.registrations("testsite", scene_id="scene_04") == []
    assert (tmp_path / "imgs" / "scene_04.tif").exists()  # the user's file stays
    rep = run_site(store, "testsite", PARAMS)
    redone = [s for s, _, _ in rep.processed]
    assert redone[0] == "scene_05"  # its previous date was 4
    assert store.processed("testsite", PARAMS.hash)["scene_05"].previous_id == "scene_02"
    with other_store(tmp_path, "clean") as clean:
        catalogue(clean, tmp_path / "clean", [i for i in range(10) if i != 4])
        run_site(clean, "testsite", PARAMS)
        assert results(clean) == results(store)
        # alerts citing the removed scene are kept (the analyst's); no other differs
        extra = ({a.id for a in store.alerts("testsite", params_hash=PARAMS.hash)}
                 - {a.id for a in clean.alerts("testsite")})
        assert extra <= set(gone.alerts)
    assert store.remove_scene("testsite", "scene_04") is None


def test_removing_the_reference_rechooses_it(store, tmp_path):
    catalogue(store, tmp_path / "imgs", range(4))
    assert run_site(store, "testsite", PARAMS).grids["optical-10m"] == "scene_00"
    store.remove_scene("testsite", "scene_00")
    assert store.grid_reference("testsite", "optical-10m") is None
    assert store.registrations("testsite") == []  # all were to scene_00
    rep = run_site(store, "testsite", PARAMS)
    assert rep.grids["optical-10m"] == "scene_01"
    assert statuses(store) == {"scene_01": "first", "scene_02": "ok", "scene_03": "unusable"}


def test_cli_scenes_remove(home, tmp_path):
    with Store.open_home(home) as s:
        catalogue(s, tmp_path / "imgs", range(EVENT_AT + 2))
    runner = CliRunner()
    assert runner.invoke(cli, ["run", "testsite"]).exit_code == 0
    with Store.open_home(home) as s:
        alerts = [a.id for a in s.alerts("testsite")]
        event = s.processed("testsite", RunParams().hash)[f"scene_{EVENT_AT:02d}"]
    assert alerts and event.products is not None
    products = [Path(p) for _, p in event.products.items()]
    assert all(p.is_file() for p in products)
    # the listing keeps working, as before it became a group
    listing = runner.invoke(cli, ["scenes", "testsite", "--json"])
    assert listing.exit_code == 0 and len(json.loads(listing.output)) == EVENT_AT + 2
    # unknown ids: one line
    r = runner.invoke(cli, ["scenes", "remove", "testsite", "nope", "--yes"])
    assert r.exit_code == 1 and r.output.lower().strip().splitlines() == [
        "error: site 'testsite' has no scene 'nope' (see `sitewatch scenes testsite`)"]
    r = runner.invoke(cli, ["scenes", "remove", "nosite", "nope", "--yes"])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    # without --yes it asks; no is no
    sid = f"scene_{EVENT_AT:02d}"
    r = runner.invoke(cli, ["scenes", "remove", "testsite", sid], input="n\n")
    assert r.exit_code == 1
    with Store.open_home(home) as s:
        assert s.get_scene("testsite", sid) is not None
    r = runner.invoke(cli, ["scenes", "remove", "testsite", sid], input="y\n")
    assert r.exit_code == 0, r.output
    assert f"removed scene '{sid}'" in r.output and "2 change product(s)" in r.output
    assert alerts[0] in r.output  # the alert citing it is named, and kept
    assert not any(p.exists() for p in products)
    assert (tmp_path / "imgs" / f"{sid}.tif").exists()
    with Store.open_home(home) as s:
        assert s.get_scene("testsite", sid) is None
        assert [a.id for a in s.alerts("testsite")] == alerts
    assert runner.invoke(cli, ["run", "testsite"]).exit_code == 0


# --------------------------------------------------------------------------- ingest order


def test_the_same_scenes_give_the_same_results_whatever_the_ingest_order(tmp_path):
    """Older scenes ingested after runs (one of them becoming the grid's reference) give
    what ingesting every scene at once gives."""
    with other_store(tmp_path, "inc") as inc, other_store(tmp_path, "once") as once:
        catalogue(inc, tmp_path / "inc", range(4, 10))
        assert run_site(inc, "testsite", PARAMS).grids["optical-10m"] == "scene_04"
        catalogue(inc, tmp_path / "inc", [1, 2])
        run_site(inc, "testsite", PARAMS)
        catalogue(inc, tmp_path / "inc", [0, 3])
        rep = run_site(inc, "testsite", PARAMS)
        assert rep.grids["optical-10m"] == "scene_00"
        assert inc.grid_reference("testsite", "optical-10m") == "scene_00"

        catalogue(once, tmp_path / "once", range(10))
        assert run_site(once, "testsite", PARAMS).grids["optical-10m"] == "scene_00"
        assert snapshot(once) == snapshot(inc)
        assert run_site(inc, "testsite", PARAMS).processed == []


def test_a_back_filled_scene_that_moves_the_grid_makes_earlier_results_stale(tmp_path):
    """The grid's pixel phase follows the earliest scene on its CRS and resolution: an older
    scene ingested later, half a pixel off, moves the grid, and results computed on the old
    grid are redone (a run from scratch on the same scenes gives the same). The scene is
    under cloud, so the reference, and with it every chain, stays as it was."""
    shifted = TRANSFORM @ TRANSFORM.translation(0.5, 0.5)  # half a pixel east and south
    with other_store(tmp_path, "inc") as inc, other_store(tmp_path, "once") as once:
        catalogue(inc, tmp_path / "inc", range(1, 10))
        run_site(inc, "testsite", PARAMS)
        write_tiled(tmp_path / "inc" / "scene_00.tif", 0, transform=shifted, cloudy=True)
        ingest(inc, [tmp_path / "inc"], "testsite", site=test_site())
        rep = run_site(inc, "testsite", PARAMS)
        assert rep.grids["optical-10m"] == "scene_01"
        assert len(rep.processed) == 10 and rep.reused == 0  # every result was on the old grid

        for i in range(1, 10):
            write_tiled(tmp_path / "once" / f"scene_{i:02d}.tif", i)
        write_tiled(tmp_path / "once" / "scene_00.tif", 0, transform=shifted, cloudy=True)
        ingest(once, [tmp_path / "once"], "testsite", site=test_site())
        run_site(once, "testsite", PARAMS)
        assert snapshot(once) == snapshot(inc)
        assert run_site(inc, "testsite", PARAMS).processed == []


def test_a_scene_with_damaged_rows_can_still_be_removed(store, tmp_path):
    # The damaged-row error says "remove that record": removal must not need to read it.
    catalogue(store, tmp_path / "imgs", range(3))
    run_site(store, "testsite", PARAMS)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE processed SET detail = 'garbage' WHERE scene_id = 'scene_02'"))
        c.execute(sa.text("UPDATE alerts SET record = '[1'"))
    gone = store.remove_scene("testsite", "scene_02")
    assert gone is not None and gone.results == 1
    assert "scene_02" not in store.processed("testsite", PARAMS.hash)
