"""Tables at 80 columns (docs/cli.md rule 6): columns are left out by priority, never cut
inside a date or an id; `alerts` prints one line per alert; `--wide` shows every column in
full; and the demo's library call reports its stages through its progress callback.

The store is filled through the public path (ingest + run_site) on the small synthetic
series of test_pipeline, plus alerts with long part names and long texts."""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from sitewatch.cli import common
from sitewatch.cli.main import cli
from sitewatch.cli.tables import Col, print_table, shorten
from sitewatch.store import Store
from sitewatch.watch.alerts import Alert
from sitewatch.watch.pipeline import run_site
from test_pipeline import PARAMS, catalogue

DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
#: A date or a hex id cut short: "2024-…", "2024-03-1…", "37852131a…".
CUT = re.compile(r"\d{4}-[\d-]{0,5}…|\b[0-9a-f]{6,}…")
LONG = "a_very_long_part_name_for_testing"


def _alert(i: int, part: str) -> Alert:
    day = f"2024-0{1 + i % 9}-{10 + i:02d}"
    text = (f"{part}: unusual change, {day} to 2024-10-{10 + i:02d} (previous usable image "
            f"2024-01-0{1 + i % 9}); 2 change objects at the part, largest 700 m2. "
            + "changed share against the recent composite, 0.0762 on 2024-03-10. " * 6)
    return Alert(f"{i:02d}c0ffee{i:08d}"[:16], "testsite", part, f"{day}T02:00:00Z",
                 "changed_excess", "level_shift", "warning", 0.3, 0.0, 9.0, "low", 3, text)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    h = tmp_path_factory.mktemp("tables") / "home"
    with Store.open_home(h) as store:
        catalogue(store, h.parent / "imgs", range(8))
        run_site(store, "testsite", PARAMS)
        for i in range(13):
            store.put_alert(_alert(i, LONG if i % 2 else "pad"), PARAMS.hash)
    return h


@pytest.fixture
def at80(monkeypatch):
    """The CLI's stdout console 80 columns wide (a terminal of 80 columns)."""
    monkeypatch.setattr(common.out, "_width", 80)


def sw(home: Path, *args: str):
    r = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


TABLE_COMMANDS = [("alerts", "testsite"), ("scenes", "testsite"), ("timeline", "testsite"),
                  ("timeline", "testsite", "--part", "pad"), ("site", "list"),
                  ("site", "show", "testsite"), ("site", "history", "testsite"),
                  ("methods",), ("indicators",), ("source", "list"),
                  ("collateral", "list", "testsite")]


@pytest.mark.parametrize("args", TABLE_COMMANDS, ids=" ".join)
def test_tables_fit_80_columns_without_cutting_dates_or_ids(home, at80, args):
    out = sw(home, *args).stdout
    too_long = [line for line in out.splitlines() if len(line) > 80]
    assert not too_long, too_long
    assert not CUT.search(out), CUT.search(out)


def test_alerts_print_one_line_per_alert_with_whole_dates_and_short_ids(home, at80):
    r = sw(home, "alerts", "testsite")
    with Store.open_home(home) as store:
        alerts = store.alerts("testsite", params_hash=PARAMS.hash)
    rows = [line for line in r.stdout.splitlines() if DATE.match(line)]
    assert len(alerts) >= 13 and len(rows) == len(alerts)
    for a, line in zip(alerts, rows, strict=True):
        assert line.startswith(a.time.strftime("%Y-%m-%d"))
        assert f" {a.part} " in line and f" {a.id[:8]}" in line
    # what was left out is said on stderr, with --wide
    assert "left out at 80 columns" in r.stderr and "--wide" in r.stderr


def test_wide_shows_every_column_and_the_full_text(home, at80):
    r = sw(home, "alerts", "testsite", "--wide")
    header = r.stdout.splitlines()[1].split()
    assert header == ["date", "part", "tier", "status", "kind", "id", "what", "label"]
    with Store.open_home(home) as store:
        alerts = store.alerts("testsite", params_hash=PARAMS.hash)
    for a in alerts:  # the full id and the whole text, on the alert's one line
        line = next(x for x in r.stdout.splitlines() if a.id in x)
        assert a.text.removeprefix(f"{a.part}: ").strip() in line
    assert "left out" not in r.stderr
    assert max(len(x) for x in r.stdout.splitlines()) > 200  # not fitted to 80 columns


def test_alert_shows_one_alert_in_full(home, at80):
    r = sw(home, "alert", "01c0ffee")
    assert "01c0ffee00000001" in r.stdout and "level_shift" in r.stdout
    flat = " ".join(r.stdout.split())
    assert "largest 700 m2. changed share against the recent composite" in flat


def test_timeline_keeps_the_alerted_parts_when_parts_are_left_out(home, at80, monkeypatch):
    monkeypatch.setattr(common.out, "_width", 30)
    r = sw(home, "timeline", "testsite")
    lines = r.stdout.splitlines()
    assert any(DATE.match(x) for x in lines) and "left out at 30 columns" in r.stderr
    assert all(len(x) <= 30 for x in lines if DATE.match(x))


# --------------------------------------------------------------------------- the helper


def _render(cols, rows, width: int, **kw) -> str:
    buf = io.StringIO()
    print_table(cols, rows, console=Console(file=buf, width=width, color_system=None), **kw)
    return buf.getvalue()


def test_columns_are_left_out_least_important_first():
    cols = [Col("date"), Col("id"), Col("extra", 2), Col("kind", 1),
            Col("what", 3, text=True, min_width=10)]
    rows = [("2024-03-10", "37852131a5f7c35a", "x" * 20, "departure", "word " * 20)]
    text = _render(cols, rows, 44)  # "what" goes first, then "extra"
    assert text.split("\n")[0].split() == ["date", "id", "kind"]
    assert "2024-03-10" in text and "37852131a5f7c35a" in text
    assert all(len(x) <= 44 for x in text.splitlines())
    assert _render(cols, rows, 30).split("\n")[0].split() == ["date", "id"]
    assert _render(cols, rows, 30, wide=True).split("\n")[0].split() == \
        ["date", "id", "extra", "kind", "what"]


def test_free_text_is_shortened_at_a_word_boundary():
    from rich.text import Text

    s = shorten(Text("unusual change, 2024-03-10 to 2024-04-09"), 24).plain
    assert s == "unusual change…" and len(s) <= 24
    assert not CUT.search(shorten(Text("see 2024-03-10 to 2024-04-09 now"), 20).plain)


def test_many_rows_are_written_as_plain_columns_fitted_the_same_way(capsys, monkeypatch):
    monkeypatch.setattr(common.out, "_width", 40)
    rows = [(f"p{i}", "2024-01-01", "label " * 10, "x" * 30) for i in range(600)]
    cols = [Col("part"), Col("date"), Col("label", 1, text=True), Col("more", 2)]
    print_table(cols, rows)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 601 and lines[0].split() == ["part", "date", "label"]
    assert all(len(x) <= 40 for x in lines) and lines[1].endswith("…")


# --------------------------------------------------------------------------- progress


def test_run_demo_reports_its_stages(tmp_path, monkeypatch):
    """Every stage of the demo ticks, named as a step of the demo, in order: the CLI's
    progress bar (or its stage lines when stderr is not a terminal) shows them."""
    import sitewatch.report.brief as brief_mod
    import sitewatch.sim.demo as demo_mod
    from sitewatch.sim.simulate import simulate_scenario

    monkeypatch.setattr(demo_mod, "simulate_scenario",
                        functools.partial(simulate_scenario, n_dates_10m=3, n_dates_3m=1))

    def fake_brief(store, site_id, out, *, end=None, progress=None, **kw):
        progress("figures", 0, 1)
        progress("figures", 1, 1)
        return SimpleNamespace(html=out / "brief.html")

    monkeypatch.setattr(brief_mod, "write_brief", fake_brief)
    seen: list[tuple[str, int, int]] = []
    demo_mod.run_demo(tmp_path / "home", workdir=tmp_path / "work",
                      progress=lambda s, d, n: seen.append((s, d, n)))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == ["simulate scenes", "ingest: read scenes", "ingest: catalogue scenes",
                      "run: co-register and measure each scene", "run: raise alerts",
                      "assess the reports", "brief: figures"]
    for stage in stages:  # each one ends complete
        last = [(d, n) for s, d, n in seen if s == stage][-1]
        assert last[0] == last[1], (stage, last)


def test_stage_lines_when_stderr_is_not_a_terminal(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=buf, width=200, color_system=None))
    with common.progress_bar(stage_lines=True) as tick:
        for i in range(3):
            tick("simulate scenes", i, 3)
        tick("brief: figures", 0, 1)
    assert buf.getvalue().splitlines() == ["simulate scenes (3)...", "brief: figures..."]
    buf.truncate(0)
    with common.progress_bar(enabled=False, stage_lines=True) as tick:  # --json
        tick("simulate scenes", 0, 3)
    with common.progress_bar() as tick:  # other commands: nothing in a log file
        tick("process", 0, 3)
    assert buf.getvalue().strip("\x00") == ""


def test_quiet_turns_progress_off(home):
    """-q: no progress, not even stage lines."""
    got = []

    @cli.command("probe-progress")
    def probe() -> None:
        with common.progress_bar(stage_lines=True) as tick:
            got.append(tick)

    try:
        CliRunner().invoke(cli, ["-q", "probe-progress"], catch_exceptions=False)
        CliRunner().invoke(cli, ["probe-progress"], catch_exceptions=False)
    finally:
        del cli.commands["probe-progress"]
    assert got[0].__name__ == "<lambda>" and got[1].__name__ == "tick"

