"""Shared CLI plumbing: the context object, output helpers, progress bars, error mapping."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.segment import Segment

from sitewatch.errors import SitewatchError
from sitewatch.store import DB_NAME, Store
from sitewatch.store.home import resolve_home

#: The environment variable naming the catalogue database (as ``--db``).
DB_ENV_VAR = "SITEWATCH_DB"


@dataclass
class Ctx:
    home_option: str | None
    verbosity: int
    db_option: str | None = None

    @property
    def home(self) -> Path:
        return resolve_home(self.home_option)

    @property
    def db_url(self) -> str | None:
        """The catalogue database given with ``--db`` or ``SITEWATCH_DB`` (None: the SQLite
        file in the home)."""
        return (self.db_option or "").strip() or None

    def store(self) -> Store:
        """The catalogue: the ``--db`` database (PostgreSQL for a server), else the home's
        SQLite file.  The home still keeps products, caches and lock files."""
        url = self.db_url
        return Store.open_url(url) if url else Store.open_home(self.home)

    def has_catalogue(self) -> bool:
        """Whether there is a catalogue to read without creating one: a ``--db`` database
        always counts (a server's is shared), the home's file only once it exists."""
        return self.db_url is not None or (self.home / DB_NAME).exists()


pass_ctx = click.make_pass_decorator(Ctx)

#: Characters that drive a terminal instead of showing: C0 controls but tab and newline,
#: DEL, C1 controls (0x9b is an 8-bit CSI), and Unicode bidirectional overrides, which
#: reorder what is shown.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _show(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean_text(value: Any) -> str:
    """``value`` as text that cannot drive a terminal: control characters and escape
    sequences are shown as ``\\x1b``-style escapes (tab and newline are kept).

    >>> clean_text("a\x1b[31mb\x07")
    'a\\\\x1b[31mb\\\\x07'
    """
    return _CONTROL.sub(_show, str(value))


class SafeConsole(Console):
    """A rich console whose every piece of text (markup, tables, tracebacks) has its control
    characters escaped (:func:`clean_text`) just before it is written; rich's own styling
    codes are kept.  Every terminal path of the CLI goes through one of these."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """As rich's, but text that is not valid markup (a ``[/x]`` from a name that was not
        passed through :func:`esc`) is printed as it is rather than raising."""
        try:
            super().print(*objects, **kwargs)
        except MarkupError:
            super().print(*objects, **{**kwargs, "markup": False})

    def _render_buffer(self, buffer: Any) -> str:
        return super()._render_buffer(
            seg if seg.control else Segment(clean_text(seg.text), seg.style, seg.control)
            for seg in buffer)


#: Results go to stdout; messages, progress and errors to stderr.  Piped output is not
#: squeezed into 80 columns: tables stay whole for the next program or file.
out = SafeConsole(highlight=False, soft_wrap=True,
                  width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)
err = SafeConsole(stderr=True, highlight=False)


def esc(value: Any) -> str:
    """Text from users, files or metadata, made safe for rich (``[...]`` is not markup) and
    for the terminal (control characters escaped)."""
    return escape(clean_text(value))


def echo_json(obj: Any) -> None:
    """``obj`` as JSON on stdout; characters JSON leaves raw but a terminal obeys (DEL, C1
    controls, bidirectional overrides) are written as ``\\u`` escapes: same data."""
    echo_json_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def echo_json_text(text: str, nl: bool = True) -> None:
    """JSON text on stdout with DEL, C1 controls and bidirectional overrides written as
    ``\\u`` escapes (JSON escapes the other control characters itself)."""
    click.echo(_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text), nl=nl)


def echo_text(text: str, nl: bool = True) -> None:
    """Plain text on stdout (no rich markup), control characters escaped."""
    click.echo(clean_text(text), nl=nl)


class _CleanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return clean_text(super().format(record))


def setup_logging(verbosity: int) -> None:
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}.get(
        verbosity, logging.DEBUG if verbosity > 1 else logging.ERROR
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CleanFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("sitewatch").setLevel(level)
    # urllib3 (under pystac-client) logs each retry of a STAC request as a warning; sitewatch
    # reports the outcome in one line itself, so its retries show only with -vv.
    logging.getLogger("urllib3").setLevel(level if level <= logging.DEBUG else logging.ERROR)


def _quiet() -> bool:
    """Whether ``sitewatch -q`` (or -qq) was given to the command running now."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Ctx) if ctx is not None else None
    return obj is not None and obj.verbosity < 0


@contextmanager
def progress_bar(enabled: bool = True, stage_lines: bool = False) -> Iterator[Any]:
    """A rich progress bar on stderr; yields ``tick(stage, done, total)``.  Off (a tick that
    does nothing) when ``enabled`` is False (``--json``), with ``-q``, and when stderr is
    not a terminal (a log file gets no bar redrawn in it); there, ``stage_lines`` writes
    one line as each stage starts instead, for a command that is long and otherwise
    silent (`sitewatch demo`)."""
    if not enabled or _quiet():
        yield lambda *_: None
        return
    if not err.is_terminal:
        yield _stage_lines() if stage_lines else (lambda *_: None)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as prog:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=done, total=total)

        yield tick


def _stage_lines() -> Any:
    """A ``tick`` that writes ``stage (N)...`` on stderr the first time a stage ticks."""
    seen: set[str] = set()

    def tick(stage: str, done: int, total: int) -> None:
        if stage not in seen:
            seen.add(stage)
            err.print(esc(f"{stage} ({total})..." if total > 1 else f"{stage}..."),
                      soft_wrap=True)

    return tick


#: Global options of ``sitewatch`` that may also be written after the subcommand
#: (``sitewatch run sohae -v``): flags, and options that take one value.
GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet"})
GLOBAL_VALUED = frozenset({"--home", "--db"})
_SHORT_GLOBALS = re.compile(r"-[vq]+")


def lift_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options found after the subcommand moved before it, so that
    ``sitewatch run sohae -v --home H`` means ``sitewatch -v --home H run sohae``.

    Only the exact global spellings are lifted (``-v``, ``-vv``, ``-q``, ``--verbose``,
    ``--quiet``, ``--home H``, ``--home=H``, ``--db URL``, ``--db=URL``); no subcommand uses
    them for anything else.
    Everything after ``--`` is left alone.

    >>> lift_global_options(["run", "sohae", "-vv", "--home", "/h"])
    ['-vv', '--home', '/h', 'run', 'sohae']
    >>> lift_global_options(["-q", "note", "s", "--", "-v"])
    ['-q', 'note', 's', '--', '-v']
    """
    i = 0
    while i < len(args) and args[i] != "--" and args[i].startswith("-"):
        i += 2 if args[i] in GLOBAL_VALUED else 1
    head, tail = args[:i + 1], args[i + 1:]
    lifted: list[str] = []
    kept: list[str] = []
    j = 0
    while j < len(tail):
        a = tail[j]
        if a == "--":
            kept += tail[j:]
            break
        if a in GLOBAL_FLAGS or _SHORT_GLOBALS.fullmatch(a) or a.startswith(("--home=",
                                                                              "--db=")):
            lifted.append(a)
        elif a in GLOBAL_VALUED and j + 1 < len(tail):
            lifted += tail[j:j + 2]
            j += 1
        else:
            kept.append(a)
        j += 1
    return lifted + head + kept


def deprecated_site_option(f: Any) -> Any:
    """The old ``--site SITE`` option, hidden from help and kept working with a warning
    (the site is now the first positional argument: docs/cli.md)."""
    return click.option("--site", "site_opt", hidden=True, metavar="SITE",
                        help="Deprecated: give the site first.")(f)


def site_first(site_arg: str | None, site_opt: str | None, rest: tuple[str, ...] = (),
               rest_param: str | None = None, usage: str = "") -> tuple[str, tuple[str, ...]]:
    """The site and the other positional values of a command whose first positional
    argument is the site, accepting the deprecated ``--site`` option too.

    The rule that keeps variadic commands (``ingest SITE PATH...``) unambiguous: when
    ``--site`` is given, every positional value is one of the ``rest_param`` values (the
    first one is converted and checked as those are); otherwise the first positional value
    is the site.  ``usage`` is the rest of the new command line, for the warning.
    """
    ctx = click.get_current_context()
    if site_opt is not None:
        moved: tuple[str, ...] = ()
        if site_arg is not None:
            if rest_param is None:
                raise click.UsageError(f"the site is given twice ({site_arg!r} and --site "
                                       f"{site_opt!r}); give it first only", ctx=ctx)
            param = _param(ctx, rest_param)
            moved = (param.type.convert(site_arg, param, ctx),)
        tail = f" {usage}" if usage else ""
        err.print(f"warning: --site is deprecated: give the site first: "
                  f"{esc(ctx.command_path)} {esc(site_opt)}{esc(tail)}", soft_wrap=True)
        site, rest = site_opt, moved + rest
    elif site_arg is None:
        raise click.MissingParameter(ctx=ctx, param=_param(ctx, "site_id"))
    else:
        site = site_arg
    if rest_param is not None and not rest:
        raise click.MissingParameter(ctx=ctx, param=_param(ctx, rest_param))
    return site, rest


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


class ListByDefaultGroup(click.Group):
    """A group whose first argument, when it is not one of its commands, is given to its
    ``list`` command: ``sitewatch alerts SITE`` is short for ``sitewatch alerts list SITE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["list", *args]
        return super().parse_args(ctx, args)


class SitewatchGroup(click.Group):
    """Maps library errors to one-line messages and exit code 1 (no tracebacks); at the root,
    accepts the global options after the subcommand too (:func:`lift_global_options`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = lift_global_options(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SitewatchError as exc:
            raise click.ClickException(clean_text(exc)) from None
        except OSError as exc:  # unwritable or missing paths the library did not wrap
            raise click.ClickException(clean_text(exc)) from None
        except click.ClickException as exc:  # click's own messages quote arguments as given
            exc.message = clean_text(exc.message)  # type: ignore[misc]
            raise
        except MemoryError:
            raise click.ClickException("not enough memory for this; use a coarser "
                                       "resolution or a smaller site") from None
        except KeyboardInterrupt:
            err.print("interrupted: finished work is kept; run the command again to resume")
            raise SystemExit(130) from None

__all__ = ["DB_ENV_VAR", "GLOBAL_FLAGS", "GLOBAL_VALUED", "Ctx", "ListByDefaultGroup",
           "SafeConsole", "SitewatchGroup", "clean_text", "deprecated_site_option", "echo_json",
           "echo_json_text", "echo_text", "err", "esc", "lift_global_options", "out",
           "pass_ctx", "progress_bar", "setup_logging", "site_first"]
