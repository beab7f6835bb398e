"""One writer of a site's results at a time: a per-site lock file under the home.

``sitewatch watch`` holds a site's lock for each cycle (sync, run, assess, deliver) and
``sitewatch run`` for its run, so a manual run never interleaves with a watcher's cycle and
two watchers never work on one site together.  The store would survive interleaving (every
scene is its own transaction) but the work would be done twice, alerts scored by two
processes at once and their events sent twice.

The lock is ``fcntl.flock`` on ``HOME/locks/SITE.lock``: the kernel holds it for the open
file, so a watcher that crashes, is killed with SIGKILL or loses its machine releases it with
its process; there is never a stale lock to remove by hand.  The file itself stays; what it
says (the holder's pid, what it runs and since when) is informational, written after the
lock is taken, and only believed while the lock is held.  (``flock`` is advisory: it keeps
sitewatch processes apart, not other programs.  It works on local file systems and on NFS
v4, where Linux maps it onto NFS byte-range locks.)

The standard library is enough for this; the ``filelock`` package would add a dependency for
the same ``flock`` call (plus Windows support, which sitewatch does not claim).

A lock file keeps apart the processes of one machine sharing one home.  When the catalogue is
on a PostgreSQL server (``--db``), processes on other machines with other homes write it too:
given the ``store``, :func:`site_lock` also takes the site's advisory lock on the server
(:meth:`sitewatch.store.base.StoreBase.site_lock`, a session lock keyed by a hash of the site
id), which the server releases with the session of a writer that dies, as the kernel does the
file's.  The file lock is taken first, so the processes of one machine queue on it and only
one of them at a time waits on the server.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sitewatch.errors import SiteError, SitewatchError
from sitewatch.times import iso

LOCK_DIR = "locks"


class ServerLocks(Protocol):
    """What :func:`site_lock` needs of a store to lock a site on its database server too
    (:class:`sitewatch.store.Store` has it; on SQLite it does nothing)."""

    def site_lock(self, site_id: str, *, purpose: str, wait: bool = False,
                  on_wait: Callable[[Any], None] | None = None
                  ) -> contextlib.AbstractContextManager[None]: ...

    def site_lock_holder(self, site_id: str) -> Any: ...


class SiteBusyError(SitewatchError, RuntimeError):
    """Another sitewatch process holds the site's lock."""

    def __init__(self, site_id: str, holder: LockHolder | None):
        self.site_id, self.holder = site_id, holder
        super().__init__(f"site {site_id!r} is busy: {describe_holder(holder)} holds its lock")


@dataclass(frozen=True)
class LockHolder:
    """What the lock file says about the process holding it."""

    pid: int | None
    purpose: str
    since: str

    def to_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "purpose": self.purpose, "since": self.since}


def describe_holder(holder: LockHolder | None) -> str:
    """``"pid 4242 (sitewatch watch, since 2024-05-02T10:00:00Z)"``, or a vaguer phrase when
    the holder had not written its name yet."""
    if holder is None or holder.pid is None:
        return "another sitewatch process"
    return f"pid {holder.pid} ({holder.purpose}, since {holder.since})"


#: Site ids are safe file names (the rule of :mod:`sitewatch.sites.site`); anything else is
#: no site, and never becomes a path ("../x").
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def lock_path(home: str | Path, site_id: str) -> Path:
    """The lock file of a site."""
    if not _SITE_ID.fullmatch(site_id):
        raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
    return Path(home) / LOCK_DIR / f"{site_id}.lock"


def _read_holder(fd: int) -> LockHolder | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return None
    fields = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    pid = fields.get("pid", "")
    if not pid.isdigit():
        return None
    return LockHolder(int(pid), fields.get("purpose", "sitewatch"), fields.get("since", "?"))


class LockFileError(SitewatchError, OSError):
    """The lock file cannot be created, opened or locked (an unwritable home)."""

    def __init__(self, path: Path, exc: OSError):
        super().__init__(f"cannot use the lock file {path}: {exc.strerror or exc}")


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LockFileError(path, exc) from None


def lock_holder(home: str | Path, site_id: str, store: ServerLocks | None = None
                ) -> LockHolder | None:
    """Who holds the site's lock now (None when nobody does): the lock file's holder, else,
    with a ``store`` on a database server, the holder of the site's lock there."""
    local = _file_holder(home, site_id)
    if local is None and store is not None:
        return store.site_lock_holder(site_id)
    return local


def _file_holder(home: str | Path, site_id: str) -> LockHolder | None:
    path = lock_path(home, site_id)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            return _read_holder(fd) or LockHolder(None, "sitewatch", "?")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def site_lock(home: str | Path, site_id: str, *, purpose: str, wait: bool = False,
              on_wait: Callable[[LockHolder | None], None] | None = None,
              store: ServerLocks | None = None) -> Iterator[Path]:
    """Hold the site's lock for the ``with`` block.  Taken at once, or: ``wait`` False
    raises :class:`SiteBusyError` naming the holder; ``wait`` True calls ``on_wait(holder)``
    once and blocks until the holder lets go (a signal, Ctrl-C, interrupts the wait).
    ``purpose`` (``"sitewatch watch"``) is written in the file for whoever finds it held.
    With the ``store``, the site's lock on its database server is held too (PostgreSQL; on
    SQLite the file is the only lock needed)."""
    with _file_lock(home, site_id, purpose=purpose, wait=wait, on_wait=on_wait) as path:
        if store is None:
            yield path
            return
        with store.site_lock(site_id, purpose=purpose, wait=wait, on_wait=on_wait):
            yield path


@contextlib.contextmanager
def _file_lock(home: str | Path, site_id: str, *, purpose: str, wait: bool,
               on_wait: Callable[[LockHolder | None], None] | None) -> Iterator[Path]:
    """The lock file's part of :func:`site_lock`."""
    path = lock_path(home, site_id)
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockFileError(path, exc) from None
            holder = _read_holder(fd)
            if not wait:
                raise SiteBusyError(site_id, holder) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        argv0 = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        os.pwrite(fd, (f"pid={os.getpid()}\npurpose={purpose}\nsince="
                       f"{iso(datetime.now(UTC))}\nprogram={argv0}\n").encode(), 0)
        try:
            yield path
        finally:
            # What the file says is only believed while the lock is held; emptying it first
            # keeps a reader from naming a process that is done.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


__all__ = ["LOCK_DIR", "LockFileError", "LockHolder", "ServerLocks", "SiteBusyError",
           "describe_holder", "lock_holder", "lock_path", "site_lock"]
