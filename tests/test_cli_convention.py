"""The CLI convention (docs/cli.md), checked on every command of the click tree: the site is
the first positional argument, ``-o`` and ``--out`` are one option, ``--json`` and ``--wide``
wherever a table is printed (every table through the one helper, cli/tables.py), global
options before or after the subcommand, and the README's command lines parse against the
commands they name.

A command that does not follow a rule yet is listed in ``EXEMPT`` with the reason, so that
it shows here rather than being skipped silently."""

from __future__ import annotations

import inspect
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sitewatch.cli.common import GLOBAL_FLAGS, GLOBAL_VALUED, lift_global_options
from sitewatch.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]

#: Parameter names that hold the site a command is about.
SITE_PARAMS = {"site_id", "site_ref", "site_ids"}
#: How that argument is shown in --help.
SITE_METAVARS = {"SITE", "SITE_ID", "SITE..."}
#: The commands issue 18 names: each must take the site first.
MUST_TAKE_SITE = {"run", "alerts list", "timeline", "assess", "brief", "ingest", "scenes list",
                  "load", "collateral add"}

#: (rule, command) -> why the command does not follow the rule yet; rules are "site",
#: "json", "wide".  Empty: every command follows the convention today.  Commands with no site
#: argument at all (detect, methods, train, indicators, demo, serve, site list/validate/add/
#: import, collateral read, alert ALERT_ID) are not about one stored site (docs/cli.md).
EXEMPT: dict[tuple[str, str], str] = {}


def commands(group: click.Group = cli, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[str, click.Command]]:
    """Every leaf command of the tree as ("site show", command)."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


ALL = dict(commands())


def _arguments(cmd: click.Command) -> list[click.Argument]:
    return [p for p in cmd.params if isinstance(p, click.Argument)]


def _options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


def _metavar(arg: click.Argument) -> str:
    return arg.metavar or (arg.name or "").upper()


def _source(cmd: click.Command) -> str:
    """The callback's source and that of the module functions it calls (two levels): where
    a table would be built."""
    assert cmd.callback is not None
    seen: set[str] = set()
    todo = [inspect.unwrap(cmd.callback)]
    parts: list[str] = []
    for _ in range(3):
        nxt = []
        for fn in todo:
            src = inspect.getsource(fn)
            parts.append(src)
            g = getattr(fn, "__globals__", {})
            for name in set(re.findall(r"\b([A-Za-z_]\w*)\(", src)) - seen:
                seen.add(name)
                obj = g.get(name)
                if inspect.isfunction(obj) and obj.__module__ == fn.__module__:
                    nxt.append(obj)
        todo = nxt
    return "\n".join(parts)


def _exempt(rule: str, name: str) -> bool:
    return (rule, name) in EXEMPT


def test_the_tree_is_walked():
    assert set(ALL) >= MUST_TAKE_SITE, MUST_TAKE_SITE - set(ALL)
    assert len(ALL) > 30


@pytest.mark.parametrize("name", sorted(ALL))
def test_the_site_is_the_first_positional_argument(name):
    cmd = ALL[name]
    names = {p.name for p in cmd.params}
    takes_site = bool(names & SITE_PARAMS) or "site_opt" in names
    if name in MUST_TAKE_SITE:
        assert takes_site, f"{name} must take a site"
    if not takes_site or _exempt("site", name):
        return
    args = _arguments(cmd)
    assert args and args[0].name in SITE_PARAMS, f"{name}: the site is not the first argument"
    assert _metavar(args[0]) in SITE_METAVARS, f"{name}: shown as {_metavar(args[0])}"
    visible_site_options = [o for o in _options(cmd) if "--site" in o.opts and not o.hidden]
    assert not visible_site_options, f"{name}: --site is shown in --help"


@pytest.mark.parametrize("name", sorted(ALL))
def test_out_and_o_are_one_option(name):
    for o in _options(ALL[name]):
        if "--out" in o.opts or "-o" in o.opts:
            assert {"-o", "--out"} <= set(o.opts), f"{name}: {o.opts}"
        if o.name in {"out_dir", "out_path", "output"}:
            assert "--out" in o.opts, f"{name}: output option {o.opts} is not -o/--out"


#: How a command's source shows that it prints a table: the helper every table goes through
#: (and rich's own Table, which test_every_table_goes_through_the_helper keeps out).
TABLE_MARKERS = ("print_table(", "Table(")


def _prints_table(cmd: click.Command) -> bool:
    src = _source(cmd)
    return any(m in src for m in TABLE_MARKERS)


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_command_that_prints_a_table_has_json(name):
    cmd = ALL[name]
    if not _prints_table(cmd) or _exempt("json", name):
        return
    assert any("--json" in o.opts for o in _options(cmd)), f"{name} prints a table, no --json"


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_command_that_prints_a_table_has_wide(name):
    """Rule 6: tables fit the terminal by leaving columns out; --wide shows them all."""
    cmd = ALL[name]
    if not _prints_table(cmd) or _exempt("wide", name):
        return
    wide = [o for o in _options(cmd) if "--wide" in o.opts]
    assert wide and wide[0].is_flag and wide[0].name == "wide", \
        f"{name} prints a table, no --wide"
    assert "wide=wide" in _source(cmd), f"{name} takes --wide but never passes it on"


def test_the_table_check_sees_tables():
    """The heuristic above finds the tables it must (through helpers too)."""
    for name in ("scenes list", "run", "site show", "alerts list", "collateral read",
                 "timeline", "demo", "methods", "indicators", "source list"):
        assert _prints_table(ALL[name]), name


def test_every_table_goes_through_the_helper():
    """One layout rule for every table (cli/tables.py): no command builds a rich Table of
    its own, which would wrap dates and ids at 80 columns again."""
    cli_dir = ROOT / "src" / "sitewatch" / "cli"
    for f in sorted(cli_dir.glob("*.py")):
        if f.name == "tables.py":
            continue
        text = f.read_text(encoding="utf-8")
        assert "Table(" not in text and "rich.table" not in text, f"{f.name} builds a Table"


@pytest.mark.parametrize("name", sorted(ALL))
def test_no_command_reuses_a_global_option(name):
    """Lifting the global options is safe only while no subcommand spells one the same."""
    spelled = {s for o in ALL[name].params for s in getattr(o, "opts", [])}
    assert not spelled & (GLOBAL_FLAGS | GLOBAL_VALUED), name


@pytest.mark.parametrize("name", sorted(ALL))
def test_global_options_after_any_subcommand_are_lifted(name):
    path = name.split()
    ctx = cli.make_context("sitewatch", [*path, "-vv", "--home", "/h", "-q",
                                         "--db=postgresql://u@h/d", "--help"],
                           resilient_parsing=True)
    assert ctx.params == {"home": "/h", "verbose": 2, "quiet": 1,
                          "db": "postgresql://u@h/d"}
    assert [*getattr(ctx, "_protected_args", []), *ctx.args] == [*path, "--help"]


def test_lifting_leaves_values_after_double_dash_alone():
    assert lift_global_options(["note", "s", "--", "-v"]) == ["note", "s", "--", "-v"]
    assert lift_global_options(["--home=/h", "run", "s", "-q"]) == ["-q", "--home=/h", "run",
                                                                     "s"]
    assert lift_global_options(["run", "s", "--db", "postgresql://h/d"]) == [
        "--db", "postgresql://h/d", "run", "s"]


def test_global_options_after_the_subcommand_work(tmp_path):
    """`--home` and `-q` after the subcommand reach `sitewatch` itself."""
    home, f = tmp_path / "h", tmp_path / "mine.geojson"
    runner = CliRunner()
    r = runner.invoke(cli, ["site", "init", "mine", "--lat", "1", "--lon", "2", "-o", str(f)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["site", "add", str(f), "--home", str(home), "-v"])
    assert r.exit_code == 0, r.output
    assert (home / "sitewatch.db").exists()
    r = runner.invoke(cli, ["site", "list", "--json", "-q", f"--home={home}"])
    assert r.exit_code == 0 and '"mine"' in r.stdout, r.output


def _readme_commands() -> Iterator[tuple[str, list[str]]]:
    """The ``sitewatch ...`` lines of the README's and docs' code blocks, as words."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_code = False
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
                continue
            line = line.split("  #")[0].strip()  # "$ ..." lines (transcripts) are skipped
            if not in_code or not line.startswith("sitewatch ") or "[" in line:
                continue
            if "|" in line or ">" in line or "..." in line:
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            yield f"{doc.name}: {line}", words[1:]


DOC_LINES = dict(_readme_commands())


def test_the_docs_have_command_lines():
    assert sum(k.startswith("README.md") for k in DOC_LINES) > 20


GLOBAL_SPELLINGS = GLOBAL_FLAGS | GLOBAL_VALUED | {"-h", "--help", "--version"}


def _leaf(words: list[str]) -> tuple[click.Command, list[str]]:
    """The command a line of words names, and the words after its name."""
    cmd: click.Command = cli
    words = [w for w in lift_global_options(words)]
    while words and words[0].startswith("-"):  # the global options lifted in front
        words = words[2:] if words[0] in GLOBAL_VALUED else words[1:]
    while isinstance(cmd, click.Group) and words:
        sub = cmd.commands.get(words[0])
        if sub is None and "list" in cmd.commands:  # `alerts SITE`, `scenes SITE`
            sub, words = cmd.commands["list"], ["list", *words]
        assert sub is not None, f"no command {words[0]!r}"
        cmd, words = sub, words[1:]
    return cmd, words


@pytest.mark.parametrize("where", sorted(DOC_LINES))
def test_doc_command_lines_name_real_commands_and_options(where):
    """Every example in the README and docs names a real command and only options it has
    (help and docs agree), in the current form (no deprecated --site)."""
    words = DOC_LINES[where]
    assert "--site" not in words, f"{where}: the old --site form"
    cmd, rest = _leaf(words)
    spelled = {s for p in cmd.params for s in (*getattr(p, "opts", []),
                                               *getattr(p, "secondary_opts", []))}
    for w in rest:
        if w == "--":
            break
        if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", w):
            assert w.split("=")[0] in spelled | GLOBAL_SPELLINGS, f"{where}: {w} unknown"
    positional = [a for a in _arguments(cmd) if a.required]
    assert len([w for w in rest if not w.startswith("-")]) >= len(positional), where


def test_help_names_the_default_methods_the_code_uses():
    """`detect --help` and `run --help` name the defaults the library applies, and the
    README names the same pair default (issue 18: they differed)."""
    from sitewatch.imagery.sensors import PAIR_METHOD, WATCH_METHOD

    runner = CliRunner()
    detect_help = " ".join(runner.invoke(cli, ["detect", "--help"]).output.split())
    run_help = " ".join(runner.invoke(cli, ["run", "--help"]).output.split())
    assert f"[default: {PAIR_METHOD['optical']} for optical, {PAIR_METHOD['sar']}" in detect_help
    assert f"[default: {WATCH_METHOD['optical']} for optical, {WATCH_METHOD['sar']}" in run_help
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"The optical default is `{PAIR_METHOD['optical']}`" in readme
