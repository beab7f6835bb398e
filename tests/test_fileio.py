"""Atomic writes (sitewatch.fileio): all or nothing, never a temporary file left behind."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sitewatch.fileio import atomic_path, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    p = tmp_path / "out.json"
    p.write_text("old")
    assert atomic_write(p, '{"new": 1}') == p
    assert p.read_text() == '{"new": 1}'
    atomic_write(p, b"\x00bytes")
    assert p.read_bytes() == b"\x00bytes"
    assert [x.name for x in tmp_path.iterdir()] == ["out.json"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old content")
    with pytest.raises(RuntimeError, match="half way"), atomic_path(p) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("half way")
    assert p.read_text() == "old content"
    assert [x.name for x in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_first_write_creates_nothing(tmp_path):
    p = tmp_path / "new.txt"
    with pytest.raises(TypeError):
        atomic_write(p, 12345)  # type: ignore[arg-type]  # neither text nor bytes
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_path_is_hidden_in_the_same_folder(tmp_path):
    p = tmp_path / "change.tif"
    with atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".change.tif.")
        assert not p.exists()  # nothing at the final name until the block ends
        with rasterio.open(tmp, "w", driver="GTiff", width=3, height=2, count=1,
                           dtype="uint8") as ds:
            ds.write(np.ones((2, 3), np.uint8), 1)
    with rasterio.open(p) as ds:
        assert ds.read(1).sum() == 6
    assert [x.name for x in tmp_path.iterdir()] == ["change.tif"]


def test_a_missing_folder_is_an_oserror_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "f.txt", "x")
    assert list(tmp_path.iterdir()) == []


def _write_many(args: tuple[str, str]) -> int:
    from sitewatch.fileio import atomic_path

    path, letter = args
    for _ in range(30):
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            for _chunk in range(20):
                f.write(letter * 5_000)
    return 30


def test_two_processes_writing_one_file_never_collide(tmp_path):
    """Issue 14: concurrent runs collided on one temporary file name.  Each writer (process
    id + a random token) has its own temporary file: no error, one whole file, nothing
    left behind."""
    import multiprocessing

    target = tmp_path / "change.tif"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        done = pool.map(_write_many, [(str(target), "a"), (str(target), "b")])
    assert done == [30, 30]
    content = target.read_text()
    assert len(content) == 100_000 and len(set(content)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["change.tif"]


def test_temporary_names_differ_per_call_and_process():
    from pathlib import Path

    from sitewatch.fileio import _temporary_name

    a, b = _temporary_name(Path("x/f.tif")), _temporary_name(Path("x/f.tif"))
    assert a != b and a.parent == b.parent == Path("x")
    assert f".f.tif.{__import__('os').getpid()}-" in a.name


def test_concurrent_change_product_writes_give_whole_cogs(tmp_path):
    """Two runs writing the same scene's change products at once (threads here): each COG
    is written under its own temporary name (GDAL's own temporaries derive from it), both
    finish, the result is a valid COG and no temporary file is left."""
    import threading

    from affine import Affine
    from rasterio.crs import CRS
    from rio_cogeo.cogeo import cog_validate

    from sitewatch.change.base import ChangeMap
    from sitewatch.imagery.grid import SiteGrid
    from sitewatch.watch.products import product_paths, write_change_products

    grid = SiteGrid(CRS.from_epsg(32651).to_wkt(), Affine(10, 0, 600_000, 0, -10, 4_400_000),
                    300, 200)
    paths = product_paths(tmp_path, "site", "0123456789abcdef", "optical-10m", "S2A_x")
    errors: list[BaseException] = []

    def run(k: int) -> None:
        rng = np.random.default_rng(k)
        score = rng.random((200, 300), dtype=np.float32)
        ch = ChangeMap(score, score > 0.5, np.ones((200, 300), bool), 0.5, "fixed", "ratio")
        try:
            for _ in range(3):
                write_change_products(ch, grid, paths, {"run": k})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for p in paths.values():
        assert cog_validate(str(p))[0]
    folder = paths["change"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["S2A_x_change.tif", "S2A_x_score.tif"]
