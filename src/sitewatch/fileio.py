"""Writing files so that a reader never sees half of one.

Everything sitewatch writes for others to read (change maps, summaries, briefs, exports,
alert files, models) goes through :func:`atomic_path` or :func:`atomic_write`: the content is
written under a temporary name in the same folder and renamed onto the final name
(``os.replace``, atomic on one file system) only once it is complete.  An error or an
interruption leaves the old file, if any, as it was, and no temporary file behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary_name(path: Path) -> Path:
    # Hidden, unique per writer, in the same folder (a rename across file systems is a copy).
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (for writers that need a path,
    such as rasterio); renamed onto ``path`` when the block ends without an error, removed
    when it raises.  The folder must exist.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('done', ['a.txt'])
    """
    final = Path(path)
    tmp = _temporary_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *,
                 encoding: str = "utf-8") -> Path:
    """Write ``data`` (text in ``encoding``, or bytes) to ``path`` atomically; returns the
    path.  The folder must exist."""
    final = Path(path)
    with atomic_path(final) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return final


__all__ = ["atomic_path", "atomic_write"]
