"""Names that reach paths, and text that reaches a terminal (issue 14, items 1 and 11).

A scene's PLATFORM tag, a site id, a part name or a report's file name is input: it may hold
``/``, ``..``, control characters or terminal escape sequences.  Nothing sitewatch writes may
land outside the home or the folder the user named, and nothing it prints may drive the
terminal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.errors import OutputError
from sitewatch.fileio import check_name, ensure_under, is_safe_name, path_under, safe_name
from sitewatch.imagery.ingest import ingest
from sitewatch.store import Store
from sitewatch.watch.pipeline import run_site
from sitewatch.watch.products import product_paths
from test_pipeline import PARAMS, TRANSFORM, scene, test_site

ESCAPES = "\x1b]0;pwned\x07\x1b[31m"


def _files(root: Path) -> set[Path]:
    return ({root} | set(root.rglob("*"))) if root.exists() else set()


@pytest.mark.parametrize("name", ["/tmp/xyz/abs", "../../x", "..", ".", "a/b", "a\nb", "",
                                  ".hidden", "x" * 500, "a\x00b", ESCAPES, "S2A/../../etc"])
def test_unsafe_names_are_refused_or_made_safe(name):
    assert not is_safe_name(name)
    made = safe_name(name)
    assert is_safe_name(made) and made == safe_name(name)  # deterministic
    assert "/" not in made and ".." not in made and not made.startswith(".")
    with pytest.raises(OutputError, match="not a safe file name"):
        check_name(name, "scene id")


def test_readable_names_are_kept():
    for name in ("S2A_20160120_T39QZG", "LE07_20080427_035032", "scene_06", "optical-10m",
                 "0123456789abcdef", "sohae-sim"):
        assert is_safe_name(name) and safe_name(name) == name
    assert safe_name("/tmp/a") != safe_name("_tmp/a")  # distinct inputs, distinct names


def test_paths_are_checked_after_resolving_links(tmp_path):
    root, outside = tmp_path / "home", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    assert path_under(root, "a", "b.tif") == root / "a" / "b.tif"
    (root / "link").symlink_to(outside)
    with pytest.raises(OutputError, match="outside"):
        path_under(root, "link", "x.tif")
    with pytest.raises(OutputError, match="outside"):
        ensure_under(root / ".." / "elsewhere" / "x", root)
    with pytest.raises(OutputError, match="not a safe file name"):
        product_paths(root, "../site", "hash", "optical-10m", "S2A_x")
    # a scene id catalogued before ids were made safe is replaced, not followed
    got = product_paths(root, "site", "hash", "optical-10m", "../../x")
    assert got["change"].parent == root / "site" / "hash" / "optical-10m"
    assert got["change"].name == f"{safe_name('../../x')}_change.tif"


def _hostile_scenes(folder: Path, platforms: list[str]) -> None:
    from conftest import write_tif

    for i, platform in enumerate(platforms):
        write_tif(folder / f"T51SXX_2024{1 + i:02d}01T020000.tif", scene(i), transform=TRANSFORM,
                  nodata=0, tags={"PLATFORM": platform}, descriptions=["blue", "green", "red",
                                                                        "nir"])


def test_a_platform_tag_cannot_write_outside_the_home(tmp_path):
    """Reproduces item 1: PLATFORM=/abs/path and ../../x went into the scene id unchecked,
    and `run` wrote change products there."""
    home = tmp_path / "home"
    outside = tmp_path / "xyz"
    # index 0 is the first date (no product) and index 3 is under cloud (unusable)
    platforms = [str(outside / "abs"), "../../x", str(outside / "abs2"), "S2A",
                 "../../../../../../y", ESCAPES]
    _hostile_scenes(tmp_path / "imgs", platforms)
    before = _files(tmp_path) - _files(home)
    with Store.open_path(home / "sitewatch.db") as store:
        ingest(store, [tmp_path / "imgs"], "testsite", site=test_site())
        ids = sorted(s.id for s in store.scenes("testsite"))
        run_site(store, "testsite", PARAMS, products=home / "products")
    assert all(is_safe_name(i) for i in ids), ids
    assert "S2A_20240401_T51SXX" in ids  # a normal platform keeps its readable id
    assert not outside.exists()
    after = _files(tmp_path) - _files(home)
    assert after == before  # nothing new outside the home
    written = [p for p in (home / "products").rglob("*.tif")]
    assert len(written) == 2 * (len(platforms) - 2)
    for p in written:
        assert p.resolve().is_relative_to((home / "products").resolve())


def test_a_products_folder_linked_out_of_the_home_is_refused(tmp_path):
    home, outside = tmp_path / "home", tmp_path / "outside"
    outside.mkdir()
    (home / "products").mkdir(parents=True)
    (home / "products" / "testsite").symlink_to(outside)
    with pytest.raises(OutputError, match="outside"):
        product_paths(home / "products", "testsite", PARAMS.hash, "optical-10m", "S2A_x")
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- terminal


def _no_raw_controls(text: str) -> None:
    bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]
    assert not bad, repr(text)


def test_terminal_text_is_cleaned():
    from sitewatch.cli.common import clean_text, esc

    assert clean_text("S2A_20160120 ok\tx\ny") == "S2A_20160120 ok\tx\ny"
    cleaned = clean_text(f"a{ESCAPES}b\x00c\x0bd\x9be\u202ef")
    _no_raw_controls(cleaned)
    assert "\u202e" not in cleaned and "pwned" in cleaned  # shown, not obeyed
    assert esc("[red]x[/]") == "\\[red]x\\[/]"


def test_cli_prints_no_escape_sequences(tmp_path, home):
    site = test_site()
    doc = site.to_geojson()
    doc["features"][0]["properties"]["name"] = f"Evil {ESCAPES} site\x00\x0b"
    doc["features"][0]["properties"]["note"] = f"note {ESCAPES}[bold]x[/bold]"
    doc["features"][1]["properties"]["label"] = f"pad {ESCAPES}"
    sf = tmp_path / f"site{ESCAPES}.geojson".replace("/", "_")
    sf.write_text(json.dumps(doc), encoding="utf-8")
    runner = CliRunner()
    for args in (["site", "validate", str(sf)], ["site", "show", str(sf)],
                 ["site", "add", str(sf)], ["site", "list"], ["site", "show", "testsite"],
                 ["site", "show", str(tmp_path / f"missing{ESCAPES}.geojson")]):
        r = runner.invoke(cli, args)
        assert r.exit_code in (0, 1), (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        _no_raw_controls(r.output)
    r = runner.invoke(cli, ["site", "show", str(sf)])
    assert "pwned" in r.output and "Evil" in r.output


def test_log_messages_are_cleaned(capsys, monkeypatch):
    import logging

    from sitewatch.cli.common import setup_logging

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a fresh CLI process
    setup_logging(1)
    logging.getLogger("sitewatch.test").warning("file %s", f"x{ESCAPES}.tif")
    text = capsys.readouterr().err
    assert "WARNING sitewatch.test: file x" in text and "pwned" in text
    _no_raw_controls(text)


def test_json_output_escapes_c1_controls(capsys):
    from sitewatch.cli.common import echo_json

    echo_json({"name": f"a{ESCAPES}\x9b31m\x7f"})
    text = capsys.readouterr().out
    _no_raw_controls(text)
    assert json.loads(text)["name"] == f"a{ESCAPES}\x9b31m\x7f"  # the data is unchanged


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    """Item 14: two writers of the same final path (two runs, two threads) each get their own
    temporary file; the result is one whole file and no temporary file is left."""
    import threading

    from sitewatch.fileio import atomic_path

    target = tmp_path / "change.tif"
    names: list[str] = []
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            with atomic_path(target) as tmp:
                names.append(tmp.name)
                barrier.wait(timeout=10)  # all eight temporary files open at once
                with open(tmp, "w") as f:
                    f.write(str(k) * 10_000)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(names)) == 8 and all(str(os.getpid()) in n for n in names)
    content = target.read_text()
    assert len(content) == 10_000 and len(set(content)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["change.tif"]


def test_text_that_is_not_markup_is_printed_not_raised():
    import io

    from sitewatch.cli.common import SafeConsole

    c = SafeConsole(file=io.StringIO(), width=100)
    c.print("site [/x] closed a tag it never opened" + ESCAPES)
    text = c.file.getvalue()
    assert "[/x] closed" in text
    _no_raw_controls(text)


def test_safe_name_of_random_text_is_always_safe():
    import random

    rng = random.Random(14)
    alphabet = "aZ9_-./\\ \n\x00\x1b..é€\u202e"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        for max_len in (40, 120):
            made = safe_name(text, "x", max_len)
            assert is_safe_name(made) and len(made) <= max_len, (text, made)


def test_cli_end_to_end_with_hostile_names(tmp_path, home):
    """ingest, run, note, report, list and brief through the CLI with a PLATFORM tag that is
    a path, and escape sequences in the site name, a note and a report's file name: exit
    0 or 1, nothing written outside the home and the brief folder, no raw control
    characters on the terminal."""
    outside = tmp_path / "xyz"
    _hostile_scenes(tmp_path / "imgs", [str(outside / "abs"), "../../x", str(outside / "b"),
                                        "S2A", "../../../../../../../y", ESCAPES])
    site = test_site()
    doc = site.to_geojson()
    doc["features"][0]["properties"]["name"] = f"Evil {ESCAPES} site"
    sf = tmp_path / "site.geojson"
    sf.write_text(json.dumps(doc), encoding="utf-8")
    rep = tmp_path / f"report {ESCAPES}.txt"
    rep.write_text(f"Published: 2 April 2024\n\nTrains {ESCAPES} arrived at the rail station, "
                   "a U.S. official said.", encoding="utf-8")
    before = _files(tmp_path)
    runner = CliRunner()
    brief_dir = tmp_path / "brief"
    codes: list[int] = []
    steps = [["site", "add", str(sf)], ["ingest", "testsite", str(tmp_path / "imgs")],
             ["scenes", "testsite"], ["run", "testsite"], ["alerts", "testsite"],
             ["note", "testsite", f"vehicles {ESCAPES} at the pad", "--date", "2024-04-01",
              "--author", ESCAPES], ["collateral", "add", "testsite", str(rep)],
             ["collateral", "list", "testsite"], ["timeline", "testsite"],
             ["site", "show", "testsite"], ["brief", "testsite", "--out", str(brief_dir)]]
    for args in steps:
        r = runner.invoke(cli, args)
        assert r.exit_code in (0, 1), (args, r.output, r.exception)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        _no_raw_controls(r.output)
        codes.append(r.exit_code)
    assert codes == [0] * len(steps), list(zip(steps, codes, strict=True))
    assert (brief_dir / "brief.html").is_file()
    new = _files(tmp_path) - before - _files(home) - _files(brief_dir)
    assert not new, sorted(map(str, new))
    assert not outside.exists()
