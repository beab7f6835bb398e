"""The rolling composite's members kept between runs: the last usable dates of a grid, as
they were loaded onto it (with their co-registration shift undone), in a folder beside the
catalogue.

A new scene is compared with the previous usable date and with the median of the last
``composite`` ones; without this cache every run read and warped those 5 scenes again (on a
2000 x 2000 px site, most of a new scene's time).  A cached image is found by a key made of
everything its pixels depend on (the scene's checksum, its files' sizes and modification
times, the grid, the bands, the shift, this module's format version): whatever changes,
the key changes and the scene is loaded from its files as before (a file damaged since is
then found unreadable, as it was without the cache).  The cache is bounded: after a grid's
pass only the images its next date needs are kept (:meth:`ImageCache.keep`), a few hundred
MB per site and grid at most.
Deleting the folder is always safe.

``$SITEWATCH_WATCH_CACHE``: a folder to use, or ``off``; by default ``cache/watch`` beside
a SQLite catalogue file, and no cache for other databases (a server database has no folder
of its own).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from sitewatch.imagery.coregister import Shift
from sitewatch.imagery.grid import GridImage, SiteGrid
from sitewatch.imagery.scenes import Scene

log = logging.getLogger(__name__)

#: Environment variable: the folder of the image cache, or ``off``.
CACHE_ENV = "SITEWATCH_WATCH_CACHE"
#: Part of every key: changes when what a cached file holds (or how it is loaded) does.
FORMAT = "1"


def cache_folder(store_url: str) -> Path | None:
    """Where a run keeps its images: ``$SITEWATCH_WATCH_CACHE`` (None when ``off``), else
    ``cache/watch`` beside a SQLite catalogue file, else None."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in ("off", "0", "no", "false"):
        return None
    if env:
        return Path(env)
    url = sa.engine.make_url(store_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "cache" / "watch"
    return None


def _hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:24]


def _files(sc: Scene) -> tuple[tuple[str, int, int], ...] | None:
    """The scene's files as they are now (path, size, modification time), part of every
    key: a file changed, replaced or damaged since its pixels were cached is read again
    (and found unreadable when it is), as it was before there was a cache.  None when a
    file cannot be looked at (the scene is then loaded from its files, which says why)."""
    paths = sorted({b.path for b in sc.bands} | {m.path for m in sc.masks})
    try:
        return tuple((p, (st := os.stat(p)).st_size, st.st_mtime_ns) for p in paths)
    except OSError:
        return None


class ImageCache:
    """One grid's cached images (site, parameter set and grid each have their folder)."""

    def __init__(self, root: Path, site_id: str, params_hash: str, grid_key: str,
                 grid: SiteGrid, fingerprint: str, bands: tuple[str, ...]):
        self.folder = root / _hash(site_id, params_hash, grid_key)
        self.grid, self.fingerprint, self.bands = grid, fingerprint, bands

    def _path(self, sc: Scene, shift: Shift | None) -> Path:
        moved = (float(shift.dy), float(shift.dx)) if shift is not None else None
        key = _hash(FORMAT, sc.id, sc.checksum, _files(sc), self.fingerprint, self.bands,
                    moved)
        return self.folder / f"{key}.npz"

    def get(self, sc: Scene, shift: Shift | None) -> GridImage | None:
        """``sc`` as it was loaded with ``shift``, or None when it is not cached (or its file
        cannot be read: it is then loaded from the scene again)."""
        path = self._path(sc, shift)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                data, quality = z["data"], z["quality"]
                bands = tuple(str(b) for b in z["bands"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("%s: cached image %s cannot be read (%s); loading the scene", sc.id,
                        path, exc)
            return None
        if (data.dtype != np.float32 or quality.dtype != np.uint8
                or data.shape != (len(self.bands), *self.grid.shape)
                or quality.shape != self.grid.shape or len(bands) != data.shape[0]):
            return None
        return GridImage(sc.id, sc.acquired, sc.sensor, self.grid, bands, data, quality,
                         shift)

    def drop(self, sc: Scene, shift: Shift | None) -> None:
        """Forget ``sc`` loaded with ``shift`` (no date needs it any more)."""
        with contextlib.suppress(OSError):
            self._path(sc, shift).unlink()

    def put(self, sc: Scene, img: GridImage) -> bool:
        """Keep ``img`` (written to a temporary file, then renamed: a reader never sees half
        a file); whether it is kept.  A cache that cannot be written is logged and
        skipped."""
        return self._write(sc.id, self._path(sc, img.shift), data=img.data,
                           quality=img.quality, bands=np.array(img.bands, dtype=str))

    def _band_path(self, sc: Scene, what: tuple[str, ...]) -> Path:
        key = _hash(FORMAT, "band", sc.id, sc.checksum, _files(sc), self.fingerprint, what)
        return self.folder / f"{key}.npz"

    def get_band(self, sc: Scene, what: tuple[str, ...]) -> np.ndarray | None:
        """A 2-D float32 array derived from ``sc`` on the grid (``what`` names how: e.g. the
        co-registration reference's band), or None when it is not cached."""
        path = self._band_path(sc, what)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                data = z["data"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        if data.dtype != np.float32 or data.shape != self.grid.shape:
            return None
        return data

    def put_band(self, sc: Scene, what: tuple[str, ...], data: np.ndarray) -> None:
        """Keep a 2-D array derived from ``sc`` (see :meth:`get_band`)."""
        self._write(sc.id, self._band_path(sc, what), data=data)

    def _write(self, scene_id: str, path: Path, **arrays: np.ndarray) -> bool:
        """Write ``arrays`` to ``path`` unless it is there; whether it is there after."""
        if path.exists():
            return True
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                savez: Any = np.savez  # numpy's stubs take **kwds as allow_pickle's type
                savez(f, **arrays)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("%s: cannot keep its pixels in %s (%s)", scene_id, self.folder, exc)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return False
        return True

    def keep(self, images: Iterable[tuple[Scene, Shift | None]],
             bands: Iterable[tuple[Scene, tuple[str, ...]]] = ()) -> None:
        """Delete every cached file of the grid but those of ``images`` (scene and shift)
        and ``bands`` (scene and what)."""
        if not self.folder.is_dir():
            return
        names = {self._path(sc, shift).name for sc, shift in images}
        names |= {self._band_path(sc, what).name for sc, what in bands}
        for p in self.folder.iterdir():
            if p.name not in names:
                with contextlib.suppress(OSError):
                    p.unlink()


__all__ = ["CACHE_ENV", "FORMAT", "ImageCache", "cache_folder"]
