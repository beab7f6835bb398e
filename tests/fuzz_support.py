"""Support for tests/test_fuzz.py: small seed files, seeded mutations of them, and a sandboxed
run of the ``sitewatch`` command line (a subprocess with a memory limit, a timeout, its own
TMPDIR and user home) with the checks every fuzz case makes.

Everything is deterministic from a case's seed: a failing case is reproduced by its id alone
(``pytest tests/test_fuzz.py -k 'tif-truncate-0'``).
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conftest import rng_image, write_tif

SRC = Path(__file__).resolve().parents[1] / "src"
#: Address-space limit of every command (bytes): a mutated header must not make sitewatch
#: allocate without bound.
MEMORY_LIMIT = 3 * 1024**3
#: Seconds a command may run before the case fails as a hang.
CASE_TIMEOUT = 90.0
#: The time given to ingest with --time (a file's own time tag wins when it is readable).
GIVEN_TIME = "2024-03-01"
SITE_ID = "fz"
#: Raster formats fuzzed, and the mutations applied to each.
FORMATS = ("tif", "cog", "jp2", "envi", "png")
MUTATIONS = ("truncate", "flip", "overwrite", "header")
SITE_MUTATIONS = ("json", "truncate", "flip")


# ------------------------------------------------------------------------------ seed files


def site_geojson() -> dict:
    """A small site around the seed rasters (Sohae's public coordinates), two placed parts."""
    lon, lat = 124.7054, 39.6597

    def square(cx: float, cy: float, d: float) -> list:
        return [[[cx - d, cy - d], [cx + d, cy - d], [cx + d, cy + d], [cx - d, cy + d],
                 [cx - d, cy - d]]]

    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square(lon, lat, .01)},
         "properties": {"role": "site", "id": SITE_ID, "name": "fuzz site",
                        "site_type": "launch_site"}},
        {"type": "Feature", "geometry": {"type": "Polygon",
                                         "coordinates": square(lon, lat, .002)},
         "properties": {"role": "part", "name": "pad", "kind": "launch_pad"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon + .003, lat]},
         "properties": {"role": "part", "name": "stand", "kind": "engine_test_stand",
                        "radius_m": 60}},
    ]}


def make_seed(fmt: str, folder: Path, seed: int = 7, name: str = "scene") -> list[Path]:
    """The files of one small valid image of ``fmt`` (the main file first; ENVI: data file,
    then header)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = rng_image(seed, bands=4, size=64)
    tags = {"ACQUISITION_TIME": "2024-02-01T02:00:00Z"}
    if fmt == "tif":
        p = write_tif(folder / f"{name}.tif", data, tags=tags)
        return [p]
    if fmt == "cog":
        p = write_tif(folder / f"{name}.tif", data, tags=tags, driver="COG")
        return [p]
    if fmt == "jp2":
        p = write_tif(folder / f"{name}.jp2", data, tags=tags, driver="JP2OpenJPEG")
        for aux in folder.glob(f"{name}.jp2.aux.xml"):
            aux.unlink()
        return [p]
    if fmt == "envi":
        p = write_tif(folder / f"{name}.img", data, tags=tags, driver="ENVI")
        hdr = folder / f"{name}.hdr"
        for aux in folder.glob(f"{name}.img.aux.xml"):
            aux.unlink()
        return [p, hdr]
    if fmt == "png":
        p = write_tif(folder / f"{name}.png", (data[:3] // 16).astype(np.uint8), crs=None,
                      driver="PNG")
        for aux in folder.glob(f"{name}.png.aux.xml"):
            aux.unlink()
        return [p]
    raise ValueError(fmt)


# ------------------------------------------------------------------------------ mutations


def _tiff_header(buf: bytearray, rng: random.Random) -> str:
    """Set one field of the first IFD of a little-endian TIFF to an extreme value."""
    if buf[:4] != b"II*\x00" or len(buf) < 16:
        return _overwrite(buf, rng)
    (ifd,) = struct.unpack_from("<I", buf, 4)
    if ifd + 2 > len(buf):
        return _overwrite(buf, rng)
    (n,) = struct.unpack_from("<H", buf, ifd)
    i = rng.randrange(max(n, 1))
    at = ifd + 2 + 12 * i
    if at + 12 > len(buf):
        return _overwrite(buf, rng)
    tag, _typ, _count, _value = struct.unpack_from("<HHII", buf, at)
    value = rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
    field = rng.choice(["count", "value"])
    struct.pack_into("<I", buf, at + (4 if field == "count" else 8), value)
    return f"tiff tag {tag} {field}={value}"


def _png_header(buf: bytearray, rng: random.Random) -> str:
    """Change the IHDR width or height (and fix its CRC, so libpng reads on)."""
    if buf[12:16] != b"IHDR":
        return _overwrite(buf, rng)
    field = rng.choice(["width", "height", "depth"])
    if field == "depth":
        value = rng.choice([1, 2, 4, 16, 3, 255])
        buf[24] = value
    else:
        value = rng.choice([0, 1, 65_535, 1_000_000, 0x7FFFFFFF])
        struct.pack_into(">I", buf, 16 if field == "width" else 20, value)
    struct.pack_into(">I", buf, 29, zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    return f"png {field}={value}"


def _jp2_header(buf: bytearray, rng: random.Random) -> str:
    """Change the image size or component count in the codestream's SIZ marker."""
    at = buf.find(b"\xff\x51")
    if at < 0 or at + 40 > len(buf):
        return _overwrite(buf, rng)
    field, off, fmt = rng.choice([("Xsiz", 6, ">I"), ("Ysiz", 10, ">I"), ("Csiz", 38, ">H")])
    value = rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, rng.randrange(1 << 16)])
    if fmt == ">H":
        value &= 0xFFFF
    struct.pack_into(fmt, buf, at + off, value)
    return f"jp2 SIZ {field}={value}"


def _envi_header(text: str, rng: random.Random) -> tuple[str, str]:
    key = rng.choice(["samples", "lines", "bands", "data type", "byte order", "header offset",
                      "interleave"])
    value = rng.choice(["0", "-1", "2000000000", "99999", "abc", "12", "3", "bip", ""])
    new, n = re.subn(rf"(?im)^{key}\s*=.*$", f"{key} = {value}", text)
    if not n:
        new = text + f"\n{key} = {value}\n"
    return new, f"envi header {key} = {value!r}"


def _truncate(buf: bytearray, rng: random.Random) -> str:
    keep = int(len(buf) * rng.uniform(0.05, 0.98))
    del buf[keep:]
    return f"truncate to {keep} bytes"


def _flip(buf: bytearray, rng: random.Random) -> str:
    k = rng.randint(1, 16)
    at = sorted(rng.randrange(len(buf)) for _ in range(k))
    for i in at:
        buf[i] ^= rng.randrange(1, 256)
    return f"flip {k} bytes at {at[:4]}..."


def _overwrite(buf: bytearray, rng: random.Random) -> str:
    n = rng.randint(1, 256)
    at = rng.randrange(max(1, len(buf) - n))
    buf[at:at + n] = bytes(rng.randrange(256) for _ in range(n))
    return f"overwrite {n} bytes at {at}"


def mutate_raster(fmt: str, files: Sequence[Path], mutation: str, seed: int) -> str:
    """Mutate the seed files of ``fmt`` in place; returns what was done."""
    rng = random.Random(seed)
    if fmt == "envi" and mutation == "header":
        hdr = files[1]
        text, what = _envi_header(hdr.read_text(encoding="latin-1"), rng)
        hdr.write_text(text, encoding="latin-1")
        return what
    target = files[0]
    if fmt == "envi" and mutation != "truncate" and rng.random() < 0.3:
        target = files[1]  # the header is a file too
    buf = bytearray(target.read_bytes())
    if mutation == "header":
        what = {"tif": _tiff_header, "cog": _tiff_header, "png": _png_header,
                "jp2": _jp2_header}[fmt](buf, rng)
    else:
        what = {"truncate": _truncate, "flip": _flip, "overwrite": _overwrite}[mutation](buf, rng)
    target.write_bytes(bytes(buf))
    return f"{target.name}: {what}"


_ODD_VALUES: list[Callable[[random.Random], object]] = [
    lambda r: None, lambda r: "", lambda r: "x" * 100_000, lambda r: -1, lambda r: 1e308,
    lambda r: [], lambda r: {}, lambda r: True, lambda r: "\x1b]0;pwned\x07\u202e",
    lambda r: [[0.0, 0.0]] * r.randint(1, 3), lambda r: 10**r.randint(20, 300),
    lambda r: "../../etc/passwd", lambda r: r.uniform(-1e6, 1e6),
]


def _paths(obj: object, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*here, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*here, i))
    return out


def mutate_site(text: str, mutation: str, seed: int) -> tuple[str, str]:
    """A mutated site file text and what was done."""
    rng = random.Random(seed)
    if mutation == "truncate":
        keep = rng.randrange(len(text))
        return text[:keep], f"truncate to {keep} characters"
    if mutation == "flip":
        buf = bytearray(text.encode())
        what = _flip(buf, rng)
        return buf.decode("utf-8", errors="replace"), what
    doc = json.loads(text)
    whats = []
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(doc)[1:])
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = rng.choice(["value", "value", "delete", "duplicate"])
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "duplicate" and isinstance(parent, list):
            parent.extend([parent[path[-1]]] * rng.randint(1, 50))
        else:
            value = rng.choice(_ODD_VALUES)(rng)
            parent[path[-1]] = value
            op = f"value {str(value)[:30]!r}"
        whats.append(f"{op} at {'/'.join(map(str, path))}")
    return json.dumps(doc, allow_nan=True), "; ".join(whats)


# ------------------------------------------------------------------------------ running


@dataclass
class Case:
    """One fuzz case's sandbox: ``root`` holds in/ (the inputs), home/, out/, cwd/ (the
    command's working folder), tmp/ (its TMPDIR) and user/ (its $HOME)."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def inputs(self) -> Path:
        return self.root / "in"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def prepare(self, template_home: Path | None) -> None:
        for d in ("in", "out", "cwd", "tmp", "user"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        if template_home is not None:
            shutil.copytree(template_home, self.home)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(self.root)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in self.root.rglob("*") if p.is_file()}

    def db_dump(self) -> list[str]:
        db = self.home / "sitewatch.db"
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return list(con.iterdump())
        finally:
            con.close()


@dataclass
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    timed_out: bool

    def describe(self) -> str:
        return (f"command: sitewatch {' '.join(self.args)}\nexit: {self.rc}"
                f"{' (timed out)' if self.timed_out else ''}\nstderr:\n{self.stderr[-3000:]}")


def _limits() -> None:  # pragma: no cover - runs in the child
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))


def sitewatch(case: Case, *args: str, timeout: float = CASE_TIMEOUT) -> Result:
    """Run ``sitewatch --home HOME ARGS`` in the case's sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    env.update(PYTHONPATH=str(SRC), TMPDIR=str(case.root / "tmp"),
               HOME=str(case.root / "user"), XDG_CACHE_HOME=str(case.root / "user" / ".cache"),
               MPLCONFIGDIR=str(case.root / "user" / ".mpl"), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200",
               PYTHONHASHSEED="0")
    argv = [sys.executable, "-m", "sitewatch.cli.main", "--home", str(case.home), *args]
    proc = subprocess.Popen(argv, cwd=case.root / "cwd", env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            preexec_fn=_limits)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    return Result(list(args), proc.returncode, out, err, timed_out)


def problems(res: Result, names: Sequence[str]) -> list[str]:
    """What is wrong with a command's outcome: it must succeed, or exit 1 with one error line
    naming one of ``names``; never a traceback, a crash, a hang."""
    bad = []
    if res.timed_out:
        bad.append(f"did not finish within {CASE_TIMEOUT:.0f} s")
    if "Traceback" in res.stderr:
        bad.append("a traceback on stderr")
    if res.rc not in (0, 1):
        bad.append(f"exit code {res.rc} (killed by a signal, or a usage error)")
    if res.rc == 1:
        errors = [ln for ln in res.stderr.splitlines() if ln.lower().startswith("error:")]
        if len(errors) != 1:
            bad.append(f"{len(errors)} 'error:' lines on stderr, not one")
        elif not any(n in errors[0] for n in names):
            bad.append(f"the error does not name the input ({', '.join(names)})")
    return bad


def writes_outside(case: Case, before: dict[str, tuple[int, int]]) -> list[str]:
    """Files created or changed under the case root outside home/ and out/ (the user's
    cache folders excepted: matplotlib and fontconfig keep theirs there)."""
    allowed = ("home/", "out/", "user/.cache/", "user/.mpl/", "user/.config/")
    after = case.snapshot()
    return sorted(p for p, st in after.items()
                  if before.get(p) != st and not p.startswith(allowed))


__all__ = ["CASE_TIMEOUT", "FORMATS", "GIVEN_TIME", "MEMORY_LIMIT", "MUTATIONS",
           "SITE_ID", "SITE_MUTATIONS", "Case", "Result", "make_seed", "mutate_raster",
           "mutate_site", "problems", "site_geojson", "sitewatch", "writes_outside"]
