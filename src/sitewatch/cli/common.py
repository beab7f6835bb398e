"""Shared CLI plumbing: the context object, output helpers, progress bars, error mapping."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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

#: Results go to stdout; messages, progress and errors to stderr.  Piped output is not
#: squeezed into 80 columns: tables stay whole for the next program or file.
out = Console(highlight=False, soft_wrap=True,
              width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)
err = Console(stderr=True, highlight=False)


def esc(value: Any) -> str:
    """Text from users, files or metadata, made safe for rich (``[...]`` is not markup)."""
    return escape(str(value))


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def setup_logging(verbosity: int) -> None:
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}.get(
        verbosity, logging.DEBUG if verbosity > 1 else logging.ERROR
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("sitewatch").setLevel(level)


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
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # unwritable or missing paths the library did not wrap
            raise click.ClickException(f"{exc}") from None
        except MemoryError:
            raise click.ClickException("not enough memory for this; use a coarser "
                                       "resolution or a smaller site") from None
        except KeyboardInterrupt:
            err.print("interrupted: finished work is kept; run the command again to resume")
            raise SystemExit(130) from None

__all__ = ["Ctx", "SitewatchGroup", "echo_json", "err", "esc", "out", "pass_ctx", "progress_bar",
           "setup_logging"]
