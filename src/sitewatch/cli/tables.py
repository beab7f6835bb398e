"""Every table the CLI prints, laid out by one rule so that it reads at 80 columns.

A table declares its columns (:class:`Col`) with a priority.  At the console's width the
columns that do not fit are **left out**, least important first, rather than squeezed:
dates, ids and numbers are never wrapped or cut (the issue-18 "2024-…" and ids broken over
lines).  Only free-text columns (``Col(text=True)``: an alert's "what", a part's label, a
name) give way: they are shortened to one line at a word boundary (``one_line``) or wrapped.
A dim line on stderr says what was left out and that ``--wide`` shows it; with ``wide`` the
table is printed whole at its natural width (no column left out, nothing shortened), for
``less -S`` or a file.

Cells are plain text (escaped here, never read as markup) or :class:`rich.text.Text` for a
style (:func:`styled`).  Tables of very many rows are written as plain columns: rich lays a
table out at about a millisecond a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import click
from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

from sitewatch.cli.common import clean_text, echo_text, err, esc, out

#: Two spaces between columns (no box, no outer padding): the most text per line.
GAP = 2
#: Tables with more rows are written as plain columns (linear in the rows).
PLAIN_OVER = 500

Cell = str | Text


@dataclass(frozen=True)
class Col:
    """One column of a table.

    ``priority`` 0 is always shown; at a narrow console the column with the highest number
    is left out first (ties: the rightmost first).  ``text`` marks free text, the only kind
    of cell that may be shortened or wrapped; it keeps at least ``min_width`` characters or
    is left out.  ``one_line`` text is shortened to one line at a word boundary, other text
    wraps."""

    header: str
    priority: int = 0
    text: bool = False
    one_line: bool = True
    min_width: int = 12
    justify: Literal["left", "right"] = "left"


def styled(value: object, style: str = "") -> Text:
    """``value`` as a table cell shown in ``style`` (control characters escaped)."""
    return Text(clean_text(value), style=style)


F = TypeVar("F")


def wide_option(f: F) -> F:
    """The ``--wide`` option of every command that prints a table (docs/cli.md rule 6)."""
    return click.option("--wide", is_flag=True,
                        help="Every column at full width, nothing shortened (the table may "
                             "be wider than the terminal).")(f)  # type: ignore[type-var]


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(clean_text(cell))


def _width(t: Text) -> int:
    return max((cell_len(line) for line in t.plain.split("\n")), default=0)


def _longest_word(s: str) -> int:
    return max((cell_len(w) for w in s.split()), default=0)


def shorten(t: Text, width: int) -> Text:
    """``t`` on one line of at most ``width`` cells, cut at a word boundary with "…".

    >>> shorten(Text("unusual change, 2024-03-10 to 2024-04-09"), 28).plain
    'unusual change, 2024-03-10…'
    """
    t = Text(" ").join(t.split("\n")) if "\n" in t.plain else t
    if _width(t) <= width:
        return t
    plain = t.plain
    room = max(width - 1, 1)
    cut = plain.rfind(" ", 0, room + 1)
    if cut < room // 2:  # one long word: cut inside it rather than show nothing
        cut = room
    end = len(plain[:cut].rstrip(" ,;:(-"))
    short = t[:end] if end else t[:room]
    short.append("…")
    return short


@dataclass
class _Layout:
    shown: list[int]
    widths: dict[int, int]
    shortened: list[int]


def _layout(cols: Sequence[Col], cells: list[list[Text]], width: int | None,
            headers_wrap: bool = True) -> _Layout:
    """Which columns to show and how wide (``width`` None: all of them, at natural width)."""
    n = len(cols)
    nat = {i: max([cell_len(cols[i].header), *(_width(c[i]) for c in cells)])
           for i in range(n)}
    if width is None:
        return _Layout(list(range(n)), nat, [])
    compact: dict[int, int] = {}
    for i, col in enumerate(cols):
        head = _longest_word(col.header) if headers_wrap else cell_len(col.header)
        body = max((_width(c[i]) for c in cells), default=0)
        compact[i] = (min(nat[i], max(col.min_width, head)) if col.text
                      else max(head, body))
    shown = list(range(n))
    while True:
        gaps = GAP * (len(shown) - 1)
        if sum(nat[i] for i in shown) + gaps <= width:
            return _Layout(shown, {i: nat[i] for i in shown}, [])
        droppable = [i for i in shown if cols[i].priority > 0]
        if sum(compact[i] for i in shown) + gaps <= width:
            widths = _widen({i: compact[i] for i in shown}, nat, cols, width - gaps)
            short = [i for i in shown if cols[i].text and widths[i] < nat[i]]
            # Two texts both cut short read worse than the more important one whole.
            if len(short) < 2 or not set(short) & set(droppable):
                return _Layout(shown, widths, short)
            droppable = [i for i in short if i in droppable]
        if not droppable:  # nothing left to leave out: rich squeezes what is left
            return _Layout(shown, {i: compact[i] for i in shown},
                           [i for i in shown if cols[i].text])
        shown.remove(max(droppable, key=lambda i: (cols[i].priority, i)))


def _widen(widths: dict[int, int], nat: dict[int, int], cols: Sequence[Col],
           room: int) -> dict[int, int]:
    """``widths`` grown towards ``nat`` within ``room`` cells: free text first, the most
    important first, then the headers of the other columns."""
    spare = room - sum(widths.values())
    order = sorted(widths, key=lambda i: (not cols[i].text, cols[i].priority, i))
    for i in order:
        grow = min(spare, nat[i] - widths[i])
        if grow > 0:
            widths[i] += grow
            spare -= grow
    return widths


def _print_trimmed(console: Console, table: Table, width: int) -> None:
    """``table`` rendered ``width`` cells wide (wider than the console with ``--wide``),
    without the spaces rich pads each line's last cell with (a wide table's lines would
    otherwise all be as long as its longest)."""
    lines = console.render_lines(table, console.options.update(width=width), pad=False)
    segs: list[Segment] = []
    for line in lines:
        while line and not line[-1].control and not line[-1].text.rstrip():
            line = line[:-1]
        if line:
            last = line[-1]
            line = [*line[:-1], Segment(last.text.rstrip(), last.style, last.control)]
        segs += [*line, Segment.line()]
    console.print(Segments(segs), crop=False, soft_wrap=True)


def print_table(cols: Sequence[Col], rows: Sequence[Sequence[Cell]], *, title: str = "",
                wide: bool = False, console: Console | None = None) -> list[str]:
    """Print ``rows`` under ``cols`` on ``console`` (stdout by default), fitted to its width
    unless ``wide``; ``title`` is rich markup (escape what comes from users).  Returns the
    headers of the columns left out (a dim note on stderr names them too)."""
    console = console or out
    cells = [[_text(c) for c in r] for r in rows]
    for r in cells:
        if len(r) != len(cols):
            raise ValueError(f"a row has {len(r)} cells for {len(cols)} columns")
    plain = len(cells) > PLAIN_OVER
    lay = _layout(cols, cells, None if wide else console.width, headers_wrap=not plain)
    if plain:
        _print_plain(cols, cells, lay, title)
    else:
        table = Table(box=None, pad_edge=False, header_style="bold", title=title or None,
                      title_justify="left", title_style="", padding=(0, GAP // 2))
        for i in lay.shown:
            col, w = cols[i], lay.widths[i]
            fits = cell_len(col.header) <= w
            table.add_column(col.header, justify=col.justify, width=w,
                             no_wrap=fits and not (col.text and not col.one_line),
                             overflow="fold")
        for r in cells:
            table.add_row(*(shorten(r[i], lay.widths[i])
                            if i in lay.shortened and cols[i].one_line else r[i]
                            for i in lay.shown))
        total = sum(lay.widths.values()) + GAP * (len(lay.shown) - 1)
        _print_trimmed(console, table, max(total, console.width) if wide else console.width)
    dropped = [cols[i].header for i in range(len(cols)) if i not in lay.shown]
    console.file.flush()  # the note follows the table on a terminal
    _note(dropped, [cols[i].header for i in lay.shortened if cols[i].one_line
                    and any(_width(r[i]) > lay.widths[i] for r in cells)], console.width)
    return dropped


def _note(dropped: list[str], shortened: list[str], width: int) -> None:
    parts = []
    if dropped:
        parts.append(f"left out at {width} columns: {', '.join(dropped)}")
    if shortened:
        parts.append(f"shortened: {', '.join(shortened)}")
    if parts:
        err.print(f"[dim]({esc('; '.join(parts))}; --wide shows every column in full)[/dim]")


def _print_plain(cols: Sequence[Col], cells: list[list[Text]], lay: _Layout,
                 title: str) -> None:
    """Left- or right-aligned columns two spaces apart, written at once."""
    if title:
        out.print(title)
    lines = []
    for r in [[Text(c.header) for c in cols], *cells]:
        words = []
        for i in lay.shown:
            t = shorten(r[i], lay.widths[i]) if cols[i].text else r[i]
            s = t.plain
            pad = " " * max(lay.widths[i] - cell_len(s), 0)
            words.append(pad + s if cols[i].justify == "right" else s + pad)
        lines.append((" " * GAP).join(words).rstrip())
    echo_text("\n".join(lines))


__all__ = ["GAP", "PLAIN_OVER", "Col", "print_table", "shorten", "styled", "wide_option"]
