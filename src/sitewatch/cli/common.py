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
from sitewatch.store import Store
from sitewatch.store.home import resolve_home


@dataclass
class Ctx:
    home_option: str | None
    verbosity: int

    @property
    def home(self) -> Path:
        return resolve_home(self.home_option)

    def store(self) -> Store:
        return Store.open_home(self.home)


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


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr; yields ``tick(stage, done, total)``."""
    if not enabled or not err.is_terminal:
        yield lambda *_: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as prog:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=done, total=total)

        yield tick


class SitewatchGroup(click.Group):
    """Maps library errors to one-line messages and exit code 1 (no tracebacks)."""

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

__all__ = ["Ctx", "SafeConsole", "SitewatchGroup", "clean_text", "echo_json", "echo_json_text",
           "echo_text", "err", "esc", "out", "pass_ctx", "progress_bar", "setup_logging"]
