"""Finding scenes: which files on disk make up one acquisition.

A *scene* is one of

* a single raster file (GeoTIFF/COG, JP2, PNG/BMP/JPEG, ...), one or many bands;
* an ENVI image (a data file beside its ``.hdr``);
* a set of one-file-per-band rasters sharing a stem (Sentinel-2 ``*_B04.tif``, Landsat
  ``*_b4.tif``, Sentinel-1 ``*_VV.tif``/``*_VH.tif`` or a folder's bare ``vv.tif``/``vh.tif``),
  with quality/mask files (``*_fmask.tif``, ``*_QA_PIXEL.tif``, ``*_SCL.tif``);
* a Sentinel-1 ``.SAFE`` (a folder with ``manifest.safe``): its ``measurement/*.tiff``, one
  file per polarisation, are one scene.

:func:`discover` turns paths into :class:`SceneSource` groups of files without reading any
pixel; :func:`sitewatch.imagery.scenes.read_scene` then reads each group into a ``Scene``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sitewatch.errors import SceneError
from sitewatch.imagery.naming import is_auxiliary, parse_name

log = logging.getLogger(__name__)

RASTER_EXTENSIONS = {
    ".tif", ".tiff", ".jp2", ".j2k", ".png", ".bmp", ".jpg", ".jpeg", ".img",
}
#: Found in a folder walk but never read: a GDAL virtual raster can point GDAL at any file
#: or URL (a VRT named on the command line is refused by the opener).
_REFUSED_EXTENSIONS = {".vrt"}
_PLAIN_IMAGE_EXTENSIONS = {".png", ".bmp", ".jpg", ".jpeg"}
ENVI_DATA_EXTENSIONS = ("", ".img", ".dat", ".bsq", ".bil", ".bip", ".raw")

@dataclass(frozen=True)
class SceneSource:
    """A group of files that make up one scene, before anything is read."""

    key: str  # the folder/file path the group is known by
    kind: str  # "single", "envi", "bandset"
    files: tuple[Path, ...]  # data files (for a band set: one per band or mask)
    header: Path | None = None  # ENVI header
    explicit: bool = False  # named by the user (errors are fatal) rather than found in a walk


def _envi_data_for_header(hdr: Path) -> Path | None:
    stem = hdr.with_suffix("")
    for ext in ENVI_DATA_EXTENSIONS:
        cand = Path(str(stem) + ext)
        if cand.is_file() and cand != hdr:
            return cand
    return None


def _is_raster_name(p: Path) -> bool:
    return p.suffix.lower() in RASTER_EXTENSIONS


def _special(p: Path) -> str | None:
    """What ``p`` is when it is not a regular file or folder (a FIFO, socket or device, which
    would block or never end when read), else None."""
    try:
        mode = os.stat(p).st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")


def discover(paths: Iterable[str | Path],
             skipped: list[tuple[str, str]] | None = None) -> list[SceneSource]:
    """Group files under ``paths`` into scenes.

    A file names one scene (a band file of a set brings its siblings along).  A folder is
    walked recursively: ENVI images are found by their headers, band files are grouped by
    stem, other rasters are single scenes; FIFOs, sockets and devices with raster names, and
    VRT files, are left out with a warning (and added to ``skipped`` as (path, reason)).
    Paths that do not exist, and a named path that is not a regular file or folder, raise
    :class:`SceneError`.
    """
    out: list[SceneSource] = []
    seen: set[str] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise SceneError(f"{raw}: no such file or folder")
        p = p.resolve()
        what = _special(p)
        if what is not None:
            raise SceneError(f"{raw}: {what}, not an image file or folder; refused")
        found = _discover_file(p) if p.is_file() else _discover_dir(p, skipped)
        for src in found:
            if src.key not in seen:
                seen.add(src.key)
                out.append(src)
    return out


def _discover_file(p: Path) -> list[SceneSource]:
    if p.suffix.lower() == ".hdr":
        data = _envi_data_for_header(p)
        if data is None:
            raise SceneError(f"{p}: ENVI header without its data file beside it")
        return [SceneSource(str(data), "envi", (data,), p, explicit=True)]
    hdr = _header_for(p)
    if hdr is not None:
        return [SceneSource(str(p), "envi", (p,), hdr, explicit=True)]
    info = parse_name(p.name)
    if info.band is not None:
        siblings = [q for q in sorted(p.parent.iterdir()) if q.is_file() and _is_raster_name(q)]
        group = [q for q in siblings if parse_name(q.name).stem == info.stem
                 and parse_name(q.name).band is not None and not is_auxiliary(q.name)]
        key = str(p.parent / info.stem) if info.stem else str(p.parent)
        return [SceneSource(key, "bandset", tuple(group), explicit=True)]
    return [SceneSource(str(p), "single", (p,), explicit=True)]


def _header_for(p: Path) -> Path | None:
    for ext in (".hdr", ".HDR"):
        cand = p.with_suffix(ext) if p.suffix.lower() in ENVI_DATA_EXTENSIONS[1:] else None
        for c in (cand, Path(str(p) + ext)):
            if c is not None and c.is_file():
                return c
    return None


_RES_SUFFIX = re.compile(r"_(\d+)m$", re.IGNORECASE)


def _discover_dir(root: Path,
                  skipped: list[tuple[str, str]] | None = None) -> list[SceneSource]:
    out: list[SceneSource] = []
    # Band files are grouped by product stem across the whole walk, so a Sentinel-2 .SAFE
    # whose bands sit in R10m/R20m/R60m folders is one scene; where a band comes at several
    # resolutions, the finest is kept.
    groups: dict[str, dict[str, tuple[int, Path]]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        d = Path(dirpath)
        names = sorted(filenames)
        if "manifest.safe" in filenames:
            # A Sentinel-1 .SAFE: its image is measurement/*.tiff (read with the manifest);
            # previews, annotation and support files are not scenes.
            dirnames[:] = [n for n in dirnames if n.lower() == "measurement"]
            names = []
        used: set[str] = set()
        for n in names:  # ENVI first: their data files often have no extension
            if n.lower().endswith(".hdr") and not n.startswith("."):
                special = _special(d / n)
                if special is not None:
                    why = f"{special} with an ENVI header name: not read"
                    log.warning("skipping %s: %s", d / n, why)
                    if skipped is not None:
                        skipped.append((str(d / n), why))
                    continue
                data = _envi_data_for_header(d / n)
                if data is not None:
                    used.update({n, data.name})
                    out.append(SceneSource(str(data), "envi", (data,), d / n))
        for n in names:
            p = d / n
            if n in used or n.startswith("."):
                continue
            refused = p.suffix.lower() in _REFUSED_EXTENSIONS
            if not refused and (not _is_raster_name(p) or is_auxiliary(n)):
                continue
            special = None if refused else _special(p)
            if refused or special is not None:
                reason = ("a GDAL virtual raster (VRT): not read, it can point at any file or "
                          "URL" if refused else f"{special} with an image name: not read")
                log.warning("skipping %s: %s", p, reason)
                if skipped is not None:
                    skipped.append((str(p), reason))
                continue
            info = parse_name(n)
            if info.band is None:
                out.append(SceneSource(str(p), "single", (p,)))
                continue
            m = _RES_SUFFIX.search(n.split(".", 1)[0])
            res = int(m.group(1)) if m else 0
            # A bare polarisation file (vv.tif) belongs to its folder's scene.
            bands = groups.setdefault(info.stem or str(d), {})
            key = info.band.upper()
            if key not in bands or res < bands[key][0]:
                bands[key] = (res, p)
    for stem, bands in groups.items():
        files = tuple(sorted((p for _, p in bands.values()), key=str))
        folders = {p.parent for p in files}
        where = files[0].parent / stem if len(folders) == 1 else root / stem
        out.append(SceneSource(str(where), "bandset", files))
    return out

__all__ = ["ENVI_DATA_EXTENSIONS", "RASTER_EXTENSIONS", "SceneSource", "discover"]
