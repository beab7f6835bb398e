"""Writing files so that a reader never sees half of one.

Everything sitewatch writes for others to read (change maps, summaries, briefs, exports,
alert files, models) goes through :func:`atomic_path` or :func:`atomic_write`: the content is
written under a temporary name in the same folder and renamed onto the final name
(``os.replace``, atomic on one file system) only once it is complete.  An error or an
interruption leaves the old file, if any, as it was, and no temporary file behind.  The
temporary name holds the process id and a random token, so concurrent writers of one final
name (two ``run``s, two threads) never write into each other's temporary file: the last
rename wins and each reader sees one whole file.

Names that reach a path (scene ids, site ids, part names, parameter hashes, grid keys...)
follow one rule, :func:`is_safe_name`: 1 to :data:`MAX_NAME` characters from
``A-Z a-z 0-9 _ - .``, starting with a letter or digit, without ``..``.  :func:`safe_name`
makes any text into such a name (readable names are kept as they are), and
:func:`path_under` joins names onto a root and checks, after resolving links, that the result
stays under that root.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sitewatch.errors import OutputError

#: The longest name sitewatch puts in a path (file systems allow 255 bytes per name; a
#: suffix such as ``_change.tif`` is added to some).
MAX_NAME = 120
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def is_safe_name(name: object) -> bool:
    """True when ``name`` may be used as one file or folder name as it is.

    >>> [is_safe_name(n) for n in ("S2A_20160120_T39QZG", "../x", "/tmp/a", ".hidden", "a\\n")]
    [True, False, False, False, False]
    """
    return (isinstance(name, str) and 0 < len(name) <= MAX_NAME
            and _SAFE.fullmatch(name) is not None and ".." not in name)


def safe_name(text: object, fallback: str = "unnamed", max_len: int = MAX_NAME) -> str:
    """``text`` as a safe name of at most ``max_len`` (> 16) characters: itself when
    :func:`is_safe_name` and short enough, else its safe characters (others become ``_``)
    followed by ``-`` and 8 hex digits of its SHA-256, so two different unsafe texts never
    become the same name.

    >>> safe_name("S2A"), safe_name("/tmp/xyz/abs"), safe_name("")
    ('S2A', 'tmp_xyz_abs-99fc9b9a', 'unnamed-e3b0c442')
    """
    s = str(text)
    max_len = min(max_len, MAX_NAME)
    if is_safe_name(s) and len(s) <= max_len:
        return s
    digest = hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    core = _UNSAFE_CHARS.sub("_", s).replace("..", "_").strip("._-")[: max_len - 9]
    return f"{core.rstrip('._-') or fallback}-{digest}"


def check_name(name: object, what: str = "name") -> str:
    """``name`` when it is safe; :class:`OutputError` (one line, naming it) when not."""
    if not is_safe_name(name):
        raise OutputError(f"refusing to write: the {what} {str(name)[:100]!r} is not a safe "
                          f"file name (1-{MAX_NAME} of A-Z a-z 0-9 _ - ., starting with a "
                          "letter or digit, no '..')")
    return str(name)


def ensure_under(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """``path`` when it resolves (links followed) inside ``root``; :class:`OutputError`
    naming the path otherwise."""
    p, r = Path(path), Path(root).resolve()
    resolved = p.resolve()
    if resolved != r and not resolved.is_relative_to(r):
        raise OutputError(f"refusing to write {p}: it resolves to {resolved}, outside {r}")
    return p


def path_under(root: str | os.PathLike[str], *names: str) -> Path:
    """``root / name / ...`` after checking each name (:func:`check_name`) and that the
    result, links resolved, is inside ``root``."""
    p = Path(root).joinpath(*(check_name(n) for n in names))
    return ensure_under(p, root)


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


__all__ = ["MAX_NAME", "atomic_path", "atomic_write", "check_name", "ensure_under", "is_safe_name",
           "path_under", "safe_name"]
