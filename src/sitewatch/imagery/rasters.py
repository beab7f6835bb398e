"""Opening input rasters safely, and checking that a file holds all the pixels it claims.

:func:`open_raster` is the one way sitewatch opens an image it is given (ingest, ``detect``,
loading a catalogued scene, user masks): only regular files, only the GDAL drivers of the
formats sitewatch supports (:data:`INPUT_DRIVERS`: no VRT, no network formats), no network
access, and a bound on the pixel count a header may claim (:data:`MAX_IMAGE_PIXELS`).

:func:`validate_raster` is what ingest runs on every file: the container checks of formats
whose readers accept a short file without an error (PNG, JPEG, JPEG 2000, BMP, ENVI: a file
shorter than its header promises is refused), then a decode of every block of every band
(stopping at the first failure, whose block it names).  Products that sitewatch writes itself
are read with plain ``rasterio.open``.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import stat
import struct
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.io import DatasetReader
from rasterio.windows import Window

from sitewatch.errors import SceneError

log = logging.getLogger(__name__)

#: GDAL drivers an input raster may be opened with (GeoTIFF and COG, JPEG 2000, ENVI, PNG,
#: JPEG, BMP).  VRT and every network or database driver are left out: a VRT can make GDAL
#: read any local file or fetch a URL.
INPUT_DRIVERS = ("GTiff", "JP2OpenJPEG", "ENVI", "PNG", "JPEG", "BMP")
#: The most pixels one band of an input image may have (about 46,000 x 46,000); a header that
#: claims more is refused before anything is read or allocated.
MAX_IMAGE_PIXELS = 2**31
#: JPEG 2000 files with more pixels per band than this get the codestream structure check
#: only at ingest, not a full decode: OpenJPEG decodes about 2.5 Mpx/s on one core, so a full
#: Sentinel-2 tile (673 Mpx over 13 bands) would take minutes.  Their pixels are decoded when
#: a run loads them, where a read failure fails that scene with one line.
JP2_FULL_DECODE_MAX_PIXELS = 25_000_000
#: Bytes decoded per read while validating (whole rows of blocks where they fit).
VALIDATE_CHUNK_BYTES = 32 * 2**20
#: GDAL settings for opening input: no directory listing, no network.
_INPUT_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE",  # probe sidecar files, never list a folder
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".sitewatch-no-network",  # /vsicurl/ reads nothing
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_ERROR_ON_LIBJPEG_WARNING": "TRUE",  # a truncated JPEG is an error, not grey
}

# ENVI "data type" codes -> bytes per sample.
_ENVI_BYTES = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 8, 9: 16, 12: 2, 13: 4, 14: 8, 15: 8}


def _one_line(exc: BaseException) -> str:
    """The first line of GDAL's own message ("Read failed. See previous exception" points
    at the chained one)."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "previous exception" in str(exc):
        exc = cause
    text = str(exc).strip().split("\n")[0]
    return text[:300]


#: Readers inside :func:`_gdal_messages_as_text` (threads read side by side: the hook is
#: installed by the first and removed by the last, never restored out of order).
_hook_users = 0
_hook_lock = threading.Lock()
_hook_previous: Any = None


@contextmanager
def _gdal_messages_as_text() -> Iterator[None]:
    """rasterio's GDAL message handler decodes messages as UTF-8; a message quoting bytes of a
    damaged file (a mangled TIFF tag) fails there and Python prints an "Exception ignored"
    traceback.  Such messages are dropped (logged at debug level) while input is read."""
    global _hook_users, _hook_previous

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError):
            log.debug("GDAL message that is not UTF-8 dropped: %s", unraisable.exc_value)
            return
        _hook_previous(unraisable)

    with _hook_lock:
        if _hook_users == 0:
            _hook_previous = sys.unraisablehook
            sys.unraisablehook = hook
        _hook_users += 1
    try:
        yield
    finally:
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                sys.unraisablehook = _hook_previous


def check_regular_file(path: str | Path) -> os.stat_result:
    """``os.stat`` of ``path``; :class:`SceneError` unless it is a regular file (a FIFO,
    socket or device would hang or never end when read)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SceneError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket"
                if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "not a regular file")
        raise SceneError(f"{path}: {kind}, not an image file; refused")
    return st


def _head(path: str | Path, n: int = 1024) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as exc:
        raise SceneError(f"{path}: cannot read ({exc.strerror or exc})") from None


def open_raster(path: str | Path) -> DatasetReader:
    """Open an input raster for reading.  :class:`SceneError` names the file when it is not a
    regular file, is a VRT or another format outside :data:`INPUT_DRIVERS`, cannot be read,
    or claims more than :data:`MAX_IMAGE_PIXELS` pixels per band."""
    check_regular_file(path)
    head = _head(path)
    if b"<VRTDataset" in head or b"<VRTDataset".lower() in head.lower():
        raise SceneError(f"{path}: a GDAL virtual raster (VRT); refused, as it can make GDAL "
                         "read other files or URLs (give the image files themselves)")
    try:
        with warnings.catch_warnings(), _gdal_messages_as_text():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.Env(**_INPUT_ENV):
                # rasterio.open takes one driver name only; the reader takes GDAL's list of
                # allowed drivers.
                ds = DatasetReader(str(path), driver=list(INPUT_DRIVERS))
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(f"{path}: not a readable raster image in a supported format "
                         f"(GeoTIFF, JPEG 2000, ENVI, PNG, JPEG, BMP): {_one_line(exc)}"
                         ) from None
    except (rasterio.errors.RasterioError, ValueError, OverflowError, MemoryError) as exc:
        raise SceneError(f"{path}: not a readable raster image ({_one_line(exc)})") from None
    if ds.width * ds.height > MAX_IMAGE_PIXELS:
        ds.close()
        raise SceneError(f"{path}: the header claims {ds.width} x {ds.height} pixels, more "
                         f"than the {MAX_IMAGE_PIXELS:,} sitewatch reads per band; refused")
    return ds


# --------------------------------------------------------------------------- container checks


def check_envi_size(header: dict[str, str], header_path: Path, data_path: Path) -> None:
    """:class:`SceneError` unless the ENVI header's samples x lines x bands x bytes (plus its
    header offset) fits in the data file.  Runs before GDAL opens it."""

    def num(key: str, default: int | None = None) -> int:
        raw = header.get(key)
        if raw is None or not raw.strip():
            if default is not None:
                return default
            raise SceneError(f"{header_path}: ENVI header lacks '{key}'")
        try:
            value = int(raw.strip())
        except ValueError:
            raise SceneError(f"{header_path}: ENVI '{key}' is not a whole number: "
                             f"{raw.strip()[:40]!r}") from None
        if value < 0:
            raise SceneError(f"{header_path}: ENVI '{key}' is negative ({value})")
        return value

    samples, lines, bands = num("samples"), num("lines"), num("bands", 1)
    offset, dtype = num("header offset", 0), num("data type")
    if dtype not in _ENVI_BYTES:
        raise SceneError(f"{header_path}: ENVI data type {dtype} is not supported")
    if samples == 0 or lines == 0 or bands == 0:
        raise SceneError(f"{header_path}: ENVI image of {samples} x {lines} x {bands}: empty")
    if samples * lines > MAX_IMAGE_PIXELS:
        raise SceneError(f"{header_path}: the header claims {samples} x {lines} pixels, more "
                         f"than the {MAX_IMAGE_PIXELS:,} sitewatch reads per band; refused")
    need = offset + samples * lines * bands * _ENVI_BYTES[dtype]
    size = check_regular_file(data_path).st_size
    if size < need:
        raise SceneError(f"{data_path}: {size:,} bytes, shorter than the {need:,} its ENVI "
                         f"header promises ({samples} x {lines} x {bands} x "
                         f"{_ENVI_BYTES[dtype]} bytes + {offset}); truncated?")


def _check_png(path: Path, mm: mmap.mmap) -> None:
    """Walk the chunks: each must fit in the file, and the last must be IEND."""
    pos, size = 8, len(mm)
    while True:
        if pos + 12 > size:
            raise SceneError(f"{path}: PNG ends at byte {size:,} before its IEND chunk; "
                             "truncated")
        length = struct.unpack(">I", mm[pos:pos + 4])[0]
        kind = bytes(mm[pos + 4:pos + 8])
        end = pos + 12 + length
        if end > size:
            raise SceneError(f"{path}: PNG chunk {kind.decode('latin-1')!r} at byte {pos:,} "
                             f"runs past the end of the file ({size:,} bytes); truncated")
        if kind == b"IEND":
            return
        pos = end


def _check_jpeg(path: Path, mm: mmap.mmap) -> None:
    """An end-of-image marker after the (first) start of scan."""
    sos = mm.find(b"\xff\xda")
    if sos < 0 or mm.rfind(b"\xff\xd9") < sos:
        raise SceneError(f"{path}: JPEG has no end-of-image marker after its image data; "
                         "truncated")


def _check_codestream(path: Path, mm: mmap.mmap, start: int, end: int) -> None:
    """A JPEG 2000 codestream in ``mm[start:end]``: SOC, main-header segments, then tile-parts
    whose lengths (Psot) chain exactly to the EOC marker at its end."""
    def bad(what: str) -> SceneError:
        return SceneError(f"{path}: JPEG 2000 codestream {what}; truncated or corrupt")

    if mm[start:start + 2] != b"\xff\x4f":
        raise bad("does not start with its SOC marker")
    if end - start < 4 or mm[end - 2:end] != b"\xff\xd9":
        raise bad("lacks its end marker")
    pos = start + 2
    while True:  # main header: marker segments up to the first tile-part
        if pos + 4 > end:
            raise bad(f"header is cut off at byte {pos:,}")
        marker = bytes(mm[pos:pos + 2])
        if marker == b"\xff\x90":
            break
        if marker[0] != 0xFF:
            raise bad(f"has no marker at byte {pos:,}")
        pos += 2 + struct.unpack(">H", mm[pos + 2:pos + 4])[0]
    while pos < end - 2:  # tile-parts, each Psot bytes from its SOT marker
        if mm[pos:pos + 2] != b"\xff\x90" or pos + 12 > end:
            raise bad(f"has no tile-part marker at byte {pos:,}")
        psot = struct.unpack(">I", mm[pos + 6:pos + 10])[0]
        if psot == 0:  # the last tile-part runs to the end marker
            return
        if psot < 14:
            raise bad(f"has a tile-part of {psot} bytes at byte {pos:,}")
        pos += psot
    if pos != end - 2:
        raise bad(f"tile-parts run past its end ({pos:,} > {end - 2:,})")


def _check_jp2(path: Path, mm: mmap.mmap) -> None:
    """JP2 boxes must tile the file exactly; the codestream must be whole."""
    size = len(mm)
    if mm[:2] == b"\xff\x4f":  # a bare J2K codestream
        _check_codestream(path, mm, 0, size)
        return
    pos = 0
    while pos < size:
        if pos + 8 > size:
            raise SceneError(f"{path}: JPEG 2000 box header at byte {pos:,} is cut off; "
                             "truncated")
        length = struct.unpack(">I", mm[pos:pos + 4])[0]
        kind = bytes(mm[pos + 4:pos + 8])
        head = 8
        if length == 1:
            if pos + 16 > size:
                raise SceneError(f"{path}: JPEG 2000 box at byte {pos:,} is cut off; "
                                 "truncated")
            length, head = struct.unpack(">Q", mm[pos + 8:pos + 16])[0], 16
        elif length == 0:
            length = size - pos
        if length < head or pos + length > size:
            raise SceneError(f"{path}: JPEG 2000 box {kind.decode('latin-1')!r} at byte "
                             f"{pos:,} runs past the end of the file ({size:,} bytes); "
                             "truncated")
        if kind == b"jp2c":
            _check_codestream(path, mm, pos + head, pos + length)
        pos += length


def _check_bmp(path: Path, mm: mmap.mmap, ds: DatasetReader) -> None:
    """An uncompressed BMP must hold its pixel offset plus rows x padded row size."""
    if len(mm) < 34:
        raise SceneError(f"{path}: BMP header is cut off; truncated")
    offset = struct.unpack("<I", mm[10:14])[0]
    bits = struct.unpack("<H", mm[28:30])[0]
    compression = struct.unpack("<I", mm[30:34])[0]
    if compression not in (0, 3):  # RLE: no fixed size
        return
    need = offset + ((bits * ds.width + 31) // 32) * 4 * ds.height
    if len(mm) < need:
        raise SceneError(f"{path}: {len(mm):,} bytes, shorter than the {need:,} its BMP "
                         "header promises; truncated")


def check_container(path: Path, ds: DatasetReader,
                    envi_header: dict[str, str] | None = None) -> None:
    """The size/structure checks of formats whose readers accept short files silently."""
    driver = ds.driver
    if driver == "ENVI":
        offset = 0
        if envi_header and (envi_header.get("header offset") or "").strip().isdigit():
            offset = int(envi_header["header offset"].strip())
        need = offset + ds.width * ds.height * ds.count * np.dtype(ds.dtypes[0]).itemsize
        size = path.stat().st_size
        if size < need:
            raise SceneError(f"{path}: {size:,} bytes, shorter than the {need:,} its ENVI "
                             "header promises; truncated?")
        return
    if driver not in ("PNG", "JPEG", "JP2OpenJPEG", "BMP"):
        return
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise SceneError(f"{path}: empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if driver == "PNG":
                _check_png(path, mm)
            elif driver == "JPEG":
                _check_jpeg(path, mm)
            elif driver == "JP2OpenJPEG":
                _check_jp2(path, mm)
            else:
                _check_bmp(path, mm, ds)


# --------------------------------------------------------------------------- full decode


def _chunks(ds: DatasetReader, budget: int) -> list[Window]:
    """Windows made of whole blocks that together cover the image, each about ``budget``
    bytes decoded at most (one block at least)."""
    h, w = ds.height, ds.width
    bh, bw = ds.block_shapes[0] if ds.block_shapes else (1, w)
    bh, bw = max(1, min(bh, h)), max(1, min(bw, w))
    item = max(np.dtype(t).itemsize for t in ds.dtypes)
    row_bytes = w * ds.count * item
    if bh * row_bytes <= budget:
        rows, cols = max(1, budget // (bh * row_bytes)) * bh, w
    else:
        rows, cols = bh, max(1, budget // (bh * bw * ds.count * item)) * bw
    return [Window(c, r, min(cols, w - c), min(rows, h - r))
            for r in range(0, h, rows) for c in range(0, w, cols)]


def _failing_block(ds: DatasetReader, win: Window) -> tuple[int, int, int] | None:
    """(band, block row, block col) of the first block in ``win`` that does not decode."""
    bh, bw = ds.block_shapes[0] if ds.block_shapes else (1, ds.width)
    bh, bw = max(1, min(bh, ds.height)), max(1, min(bw, ds.width))
    r0, c0 = int(win.row_off), int(win.col_off)
    r1, c1 = r0 + int(win.height), c0 + int(win.width)
    for r in range(r0, r1, bh):
        for c in range(c0, c1, bw):
            block = Window(c, r, min(bw, c1 - c), min(bh, r1 - r))
            for band in range(1, ds.count + 1):
                try:
                    ds.read(band, window=block)
                except Exception:  # any decode failure marks the block
                    return band, r // bh, c // bw
    return None


def decode_all(ds: DatasetReader, path: str | Path,
               budget: int = VALIDATE_CHUNK_BYTES) -> None:
    """Decode every block of every band once; :class:`SceneError` names the file and the
    first block that fails (truncated or corrupt data anywhere in the image)."""
    for win in _chunks(ds, budget):
        try:
            ds.read(window=win)
        except Exception as exc:  # GDAL reports corruption in many types
            where = _failing_block(ds, win)
            if where is None:
                at = (f"rows {int(win.row_off)}-{int(win.row_off + win.height) - 1}, "
                      f"columns {int(win.col_off)}-{int(win.col_off + win.width) - 1}")
            else:
                bh, bw = ds.block_shapes[0]
                at = (f"band {where[0]}, block row {where[1]}, column {where[2]} (pixel row "
                      f"{where[1] * bh}, column {where[2] * bw}; blocks of {bh} x {bw} px)")
            raise SceneError(f"{path}: image data is corrupt or truncated at {at} "
                             f"({_one_line(exc)})") from None


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn a GDAL read failure inside the block into a :class:`SceneError` naming ``path``
    (a file damaged or replaced after ingest fails that scene, with one line)."""
    try:
        with _gdal_messages_as_text():
            yield
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(f"{path}: pixels cannot be read ({_one_line(exc)})") from None


def validate_raster(ds: DatasetReader, path: str | Path,
                    envi_header: dict[str, str] | None = None) -> None:
    """The checks ingest runs on an input file: container structure, then a full decode
    (except for JPEG 2000 over :data:`JP2_FULL_DECODE_MAX_PIXELS` pixels per band)."""
    check_container(Path(path), ds, envi_header)
    if ds.driver == "JP2OpenJPEG" and ds.width * ds.height > JP2_FULL_DECODE_MAX_PIXELS:
        return
    with _gdal_messages_as_text():
        decode_all(ds, path)


def check_transform(ds: DatasetReader, path: str | Path) -> None:
    """:class:`SceneError` for georeferencing that cannot place pixels: NaN or infinite
    coefficients, a zero pixel size or any other transform that cannot be inverted."""
    if ds.crs is None:
        return
    t = ds.transform
    coef = tuple(t)[:6]
    if not all(math.isfinite(v) for v in coef):
        raise SceneError(f"{path}: the geotransform holds NaN or infinite values "
                         f"{tuple(round(v, 6) if math.isfinite(v) else v for v in coef)}")
    det = t.a * t.e - t.b * t.d
    if det == 0 or not math.isfinite(det):
        raise SceneError(f"{path}: the geotransform has a zero pixel size or collapses the "
                         f"image to a line {coef}")


__all__ = ["INPUT_DRIVERS", "JP2_FULL_DECODE_MAX_PIXELS", "MAX_IMAGE_PIXELS",
           "VALIDATE_CHUNK_BYTES", "check_container", "check_envi_size", "check_regular_file",
           "check_transform", "decode_all", "open_raster", "reading", "validate_raster"]
