"""Scenes: the ``Scene`` record of one acquisition and reading it from its files.

:func:`read_scene` opens a :class:`~sitewatch.imagery.discover.SceneSource` (found by
:func:`~sitewatch.imagery.discover.discover`) and returns a :class:`Scene` record: time,
bands with their scale, masks, footprint, checksum (nothing is written anywhere).  Errors are
:class:`~sitewatch.errors.SceneError` and name the file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import rasterio
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SceneError, UndatedSceneError
from sitewatch.imagery import bands as B
from sitewatch.imagery.discover import (
    SceneSource,
)
from sitewatch.imagery.naming import NameInfo, parse_name, parse_text
from sitewatch.imagery.rasters import (
    check_container,
    check_envi_size,
    check_regular_file,
    check_transform,
    open_raster,
    validate_raster,
)
from sitewatch.imagery.sensors import kind_of
from sitewatch.times import as_utc, iso, parse_time

log = logging.getLogger(__name__)

#: Band ids / descriptions that are provider quality masks, and how to decode them.
_MASK_BANDS = {
    "fmask": "fmask",
    "cfmask": "fmask",
    "qa_pixel": "qa_pixel",  # Landsat Collection 2
    "pixel_qa": "pixel_qa",  # Landsat Collection 1 (ESPA): a different bit layout
    "scl": "scl",
    "mask": "mask",
    "cloudmask": "mask",
    "cloud_mask": "mask",
}
_TIME_TAGS = (
    "ACQUISITION_TIME", "ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "SENSING_TIME",
    "DATATAKE_SENSING_START", "DATETIME", "DATE_ACQUIRED", "ACQUISITION_DATE",
)
_KNOWN_S2_SCALE = 1e-4
#: An ENVI header larger than this is refused (hyperspectral headers are tens of KB).
MAX_ENVI_HEADER_BYTES = 4 * 2**20


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class BandRef:
    """Where one band of a scene lives and what it is."""

    name: str  # the name used to select it: a common name when known ("red"), else "b3"
    path: str
    index: int  # 1-based band index in ``path``
    common_name: str | None = None
    wavelength: float | None = None  # micrometres
    resolution: float | None = None  # metres (nominal when the sensor is known)
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandRef:
        return cls(**d)


@dataclass(frozen=True)
class MaskRef:
    """A provider quality/mask band and how to read it (``fmask``, ``qa_pixel``, ``scl``...)."""

    kind: str
    path: str
    index: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskRef:
        return cls(**d)


@dataclass(frozen=True)
class FileRef:
    """A file that makes up a scene, with its size and SHA-256."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRef:
        return cls(**d)


@dataclass(frozen=True)
class Scene:
    """A catalogue record of one acquisition.  Geometry is lon/lat; ``crs`` is WKT."""

    id: str
    source: str  # the folder or file it was read from (absolute)
    acquired: datetime  # UTC
    time_source: str  # where ``acquired`` came from ("file name: ...", "tag ...", "given")
    sensor: str  # "sentinel-2", "landsat", "sim-10m", "unknown"...
    platform: str | None
    bands: tuple[BandRef, ...]
    masks: tuple[MaskRef, ...]
    crs: str | None  # WKT; None for images without georeferencing
    width: int  # of the finest band
    height: int
    transform: tuple[float, ...] | None  # affine (a, b, c, d, e, f) of the finest band
    resolution: float | None  # metres, finest band
    footprint: BaseGeometry | None  # lon/lat polygon; None without georeferencing
    files: tuple[FileRef, ...]
    checksum: str  # SHA-256 over the files' hashes
    simulated: bool = False
    site_id: str | None = None
    warnings: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    def band(self, name: str) -> BandRef:
        """The band called ``name`` (a common name such as ``red`` or ``swir1``, or ``b3``)."""
        want = B.canonical(name)
        for b in self.bands:
            if b.name == want or (b.common_name and b.common_name == want):
                return b
        raise SceneError(
            f"scene {self.id!r} has no band {name!r} (bands: {', '.join(self.band_names)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times ISO 8601 UTC, geometry GeoJSON)."""
        return {
            "id": self.id,
            "site": self.site_id,
            "source": self.source,
            "acquired": iso(self.acquired),
            "time_source": self.time_source,
            "sensor": self.sensor,
            "platform": self.platform,
            "bands": [b.to_dict() for b in self.bands],
            "masks": [m.to_dict() for m in self.masks],
            "crs": self.crs,
            "width": self.width,
            "height": self.height,
            "transform": list(self.transform) if self.transform else None,
            "resolution": self.resolution,
            "footprint": mapping(self.footprint) if self.footprint is not None else None,
            "georeferenced": self.georeferenced,
            "files": [f.to_dict() for f in self.files],
            "checksum": self.checksum,
            "simulated": self.simulated,
            "warnings": list(self.warnings),
            "properties": dict(self.properties),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(
            id=d["id"],
            source=d["source"],
            acquired=parse_time(d["acquired"], "acquisition time", SceneError),
            time_source=d["time_source"],
            sensor=d["sensor"],
            platform=d.get("platform"),
            bands=tuple(BandRef.from_dict(b) for b in d["bands"]),
            masks=tuple(MaskRef.from_dict(m) for m in d["masks"]),
            crs=d.get("crs"),
            width=d["width"],
            height=d["height"],
            transform=tuple(d["transform"]) if d.get("transform") else None,
            resolution=d.get("resolution"),
            footprint=shape(d["footprint"]) if d.get("footprint") else None,
            files=tuple(FileRef.from_dict(f) for f in d["files"]),
            checksum=d["checksum"],
            simulated=bool(d.get("simulated", False)),
            site_id=d.get("site"),
            warnings=tuple(d.get("warnings", ())),
            properties=dict(d.get("properties") or {}),
        )


# --------------------------------------------------------------------------- reading


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _file_refs(paths: Sequence[Path]) -> tuple[tuple[FileRef, ...], str]:
    """Each file's size and SHA-256, and the scene checksum over their contents."""
    refs = tuple(
        FileRef(str(p), p.stat().st_size, sha256_file(p)) for p in sorted(paths, key=str)
    )
    # Content only: a copy under another name is the same scene (names are in the record).
    combined = hashlib.sha256("".join(f"{r.sha256}\n" for r in refs).encode()).hexdigest()
    return refs, combined


def _is_geographic(crs: Any) -> bool:
    return bool(crs is not None and crs.is_geographic)


def _resolution_m(ds: rasterio.io.DatasetReader) -> float:
    t = ds.transform  # pixel side lengths, rotated or sheared transforms included
    rx, ry = math.hypot(t.a, t.d), math.hypot(t.b, t.e)
    if _is_geographic(ds.crs):
        b = _bounds(ds)
        lat = (b[1] + b[3]) / 2
        mx = rx * 111_320 * math.cos(math.radians(lat))
        my = ry * 110_574
        return float((mx + my) / 2)
    return float((rx + ry) / 2)


def _footprint(ds: rasterio.io.DatasetReader, path: Path,
               warn: list[str]) -> BaseGeometry | None:
    """The image outline in lon/lat: its four corners (rotated transforms included), each
    edge densified by :data:`~sitewatch.imagery.geo.FOOTPRINT_EDGE_POINTS` points whatever
    the image size."""
    if ds.crs is None:
        return None
    from sitewatch.imagery.geo import footprint_lonlat

    fp, note = footprint_lonlat(ds.transform, ds.width, ds.height, ds.crs, str(path))
    if note:
        warn.append(note)
    return fp


def _time_from_tags(tags: dict[str, str]) -> tuple[datetime | None, str | None]:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in _TIME_TAGS:
        if key in upper and str(upper[key]).strip():
            value = upper[key]
            if key == "DATE_ACQUIRED" and "SCENE_CENTER_TIME" in upper:
                centre = upper["SCENE_CENTER_TIME"].strip('"')
                value = f"{value}T{centre}"
            try:
                return parse_time(value, "time", SceneError), f"tag {key}"
            except SceneError as exc:
                log.warning("ignoring time tag %s: %s", key, exc)
    return None, None


def read_envi_header(path: Path) -> dict[str, str]:
    """The ``key = value`` pairs of an ENVI header (braced values joined on one line)."""
    if check_regular_file(path).st_size > MAX_ENVI_HEADER_BYTES:
        raise SceneError(f"{path}: {path.stat().st_size:,} bytes, too large for an ENVI header "
                         f"(at most {MAX_ENVI_HEADER_BYTES:,})")
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise SceneError(f"{path}: cannot read ENVI header ({exc})") from None
    if not text.lstrip().upper().startswith("ENVI"):
        raise SceneError(f"{path}: not an ENVI header (must start with 'ENVI')")
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, re.MULTILINE):
        out[m.group(1).strip().lower()] = m.group(2).strip().strip("{}").strip()
    return out


def _band_ref_for(
    info: NameInfo, band_id: str, path: Path, index: int, ds: rasterio.io.DatasetReader
) -> BandRef:
    spec: B.BandSpec | None = None
    if info.sensor == "sentinel-2":
        spec = B.SENTINEL2.get(band_id.upper())
        if spec is None and re.fullmatch(r"B\d", band_id.upper()):
            spec = B.SENTINEL2.get("B0" + band_id[1:])
    elif info.sensor == "landsat" and info.mission:
        spec = B.landsat_table(info.mission).get(band_id.upper().lstrip("B").lstrip("0"))
    common = spec.common_name if spec else None
    if band_id.lower() in B.SAR_POLARISATIONS:
        common = band_id.lower()
    scale, offset = _scale_offset(ds, index, info)
    return BandRef(
        name=common or f"b{band_id.lower().lstrip('b')}",
        path=str(path),
        index=index,
        common_name=common,
        wavelength=spec.wavelength if spec else None,
        resolution=spec.resolution if spec and spec.resolution else _resolution_m(ds),
        scale=scale,
        offset=offset,
        nodata=_nodata(ds, index, info),
    )


def _scale_offset(ds: rasterio.io.DatasetReader, index: int, info: NameInfo) -> tuple[float, float]:
    """DN -> reflectance for ``index``: the file's own scale/offset, else the product's.

    Sentinel-2 L1C/L2A: DN / 10000, with an offset of -1000 DN from processing baseline 04.00
    (taken from the product name, else assumed for data sensed from 2022-01-25, when it came
    in).  Landsat Collection 2 L2 surface reflectance: DN * 2.75e-5 - 0.2.  Landsat ESPA
    (Collection 1) surface reflectance (int16): DN / 10000.
    """
    scale = float(ds.scales[index - 1]) if ds.scales else 1.0
    offset = float(ds.offsets[index - 1]) if ds.offsets else 0.0
    if scale != 1.0 or offset != 0.0 or ds.dtypes[index - 1] not in ("uint16", "int16"):
        return scale, offset
    if info.sensor == "sentinel-2":
        if info.baseline is not None:
            newer = info.baseline >= "0400"
        else:
            newer = bool(info.acquired and
                         info.acquired.date().isoformat() >= B.S2_BASELINE_04_START)
        return _KNOWN_S2_SCALE, (-0.1 if newer else 0.0)
    if info.sensor == "landsat":
        if info.level in ("L2SP", "L2SR") and ds.dtypes[index - 1] == "uint16":
            return 2.75e-5, -0.2
        if ds.dtypes[index - 1] == "int16":
            return 1e-4, 0.0
    return scale, offset


def _nodata(ds: rasterio.io.DatasetReader, index: int, info: NameInfo) -> float | None:
    """The band's nodata value; Sentinel-2 and Landsat products use DN 0 as fill even where
    the file does not declare it.  NaN is left to the float data itself (NaN is never valid)."""
    nd = ds.nodatavals[index - 1] if ds.nodatavals else None
    if nd is not None and math.isnan(nd):
        return None
    if nd is None and info.sensor in ("sentinel-2", "landsat", "sentinel-1") and ds.dtypes[
            index - 1] in ("uint8", "uint16"):
        return 0.0
    return nd


def _bands_of_multiband(
    path: Path, ds: rasterio.io.DatasetReader, info: NameInfo, envi: dict[str, str] | None
) -> tuple[list[BandRef], list[MaskRef]]:
    bands: list[BandRef] = []
    masks: list[MaskRef] = []
    wavelengths: list[float | None] = [None] * ds.count
    if envi and envi.get("wavelength"):
        try:
            listed = [float(v) for v in envi["wavelength"].split(",") if v.strip()]
        except ValueError:
            listed = []
        units = envi.get("wavelength units", "micrometers").lower()
        factor = 1e-3 if units.startswith("nano") else 1.0
        if len(listed) == ds.count:
            wavelengths = [w * factor for w in listed]
    for i in range(1, ds.count + 1):
        desc = (ds.descriptions[i - 1] or "").strip()
        tags = ds.tags(i)
        key = desc.lower().replace(" ", "_")
        if key in _MASK_BANDS:
            masks.append(MaskRef(_MASK_BANDS[key], str(path), i))
            continue
        wl = wavelengths[i - 1]
        if wl is None and "wavelength" in {k.lower() for k in tags}:
            try:
                wl = float(next(v for k, v in tags.items() if k.lower() == "wavelength"))
            except ValueError:
                wl = None
        common = None
        if key and B.canonical(key) in B.known_common_names():
            common = B.canonical(key)
        elif wl is not None:
            common = B.common_name_for_wavelength(wl)
        scale, offset = _scale_offset(ds, i, info)
        name = common if common and common not in [b.name for b in bands] else f"b{i}"
        bands.append(BandRef(name, str(path), i, common, wl, _resolution_m(ds), scale, offset,
                             _nodata(ds, i, info)))
    return bands, masks


def source_checksum(src: SceneSource) -> str:
    """The checksum :func:`read_scene` would record for ``src``, without opening any raster.

    Lets a re-ingest recognise unchanged files by content before doing any raster work.
    """
    return _file_refs([*src.files, *([src.header] if src.header else [])])[1]


def read_scene(
    src: SceneSource,
    *,
    time: datetime | None = None,
    sensor: str | None = None,
    decode: bool = True,
) -> Scene:
    """Open the files of ``src`` and build its :class:`Scene` record.

    ``time`` is used only when neither metadata nor the file names give the acquisition
    time; ``sensor`` overrides the sensor read from metadata or names.  Raises
    :class:`SceneError` for unreadable, corrupt or inconsistent input and for a scene whose
    time is unknown.  ``decode=False`` skips the decode of every block (the container checks
    still run): for a caller that reads every pixel at once anyway and turns a failing block
    into a :class:`SceneError` then (``detect``: a second full decode of a whole tile).
    """
    warn: list[str] = []
    envi = read_envi_header(src.header) if src.header else None
    if envi is not None and src.header is not None:
        for path in src.files:
            check_envi_size(envi, src.header, path)  # before GDAL sees the header
    datasets: list[tuple[Path, NameInfo, rasterio.io.DatasetReader]] = []
    try:
        for path in src.files:
            ds = open_raster(path)
            datasets.append((path, parse_name(path.name), ds))
            check_transform(ds, path)
            if decode:
                validate_raster(ds, path, envi)
            else:
                check_container(path, ds, envi)
        return _build(src, datasets, envi, time, sensor, warn)
    finally:
        for _, _, ds in datasets:
            ds.close()


def _build(
    src: SceneSource,
    datasets: list[tuple[Path, NameInfo, rasterio.io.DatasetReader]],
    envi: dict[str, str] | None,
    time: datetime | None,
    sensor: str | None,
    warn: list[str],
) -> Scene:
    key_name = Path(src.key).name
    info = parse_name(key_name) if src.kind != "bandset" else parse_text(key_name)
    if info.acquired is None and envi:
        # ENVI headers often carry the Landsat MTL name in their band names.
        hinfo = parse_text(envi.get("band names", "") + " " + envi.get("description", ""))
        if hinfo.acquired is not None:
            info = replace(hinfo, stem=info.stem)
    if info.acquired is None and src.kind == "bandset":
        # Landsat SR sets keep the scene id as the folder name; S2 sets may too; a
        # Sentinel-1 .SAFE's measurement files each carry the product's name.
        for finfo in (parse_text(Path(src.key).parent.name),
                      parse_text(Path(src.key).parent.parent.name), datasets[0][1]):
            if finfo.acquired is not None:
                info = replace(finfo, stem=info.stem, band=None)
                break
    manifest = _s1_manifest(src)

    # Bands and masks.
    bands: list[BandRef] = []
    masks: list[MaskRef] = []
    if src.kind == "bandset":
        for path, finfo, ds in datasets:
            band_id = finfo.band or "1"
            kind = _MASK_BANDS.get(band_id.lower())
            if kind:
                masks.append(MaskRef(kind, str(path), 1))
                continue
            if ds.count != 1:
                warn.append(f"{path.name}: {ds.count} bands in a band file; using band 1")
            bands.append(_band_ref_for(info, band_id, path, 1, ds))
        bands.sort(key=_band_order)
    else:
        path, _, ds = datasets[0]
        bands, masks = _bands_of_multiband(path, ds, info, envi)
    if not bands:
        raise SceneError(f"{src.key}: no image bands found (only masks)")

    # Geometry: the finest band defines the record's grid; all bands must agree on CRS/extent.
    ref_path, _, ref = min(datasets, key=lambda t: _resolution_m(t[2]))
    for path, _, ds in datasets:
        if (ds.crs is None) != (ref.crs is None) or (ds.crs and ds.crs != ref.crs):
            raise SceneError(
                f"{path}: CRS {ds.crs} differs from {ref_path.name}'s {ref.crs} in one scene"
            )
        if ds.crs is not None and not _same_extent(_bounds(ds), _bounds(ref), ds):
            raise SceneError(f"{path}: extent {_bounds(ds)} differs from "
                             f"{ref_path.name}'s {_bounds(ref)} in one scene")
    georef = ref.crs is not None
    if not georef:
        warn.append("no georeferencing: pixel grid only (cannot be placed on a site's map grid)")
    tags = dict(ref.tags())
    tag_time, tag_src = _time_from_tags(tags)
    if tag_time is None and envi and envi.get("acquisition time"):
        try:
            tag_time = parse_time(envi["acquisition time"], "time", SceneError)
            tag_src = "ENVI header acquisition time"
        except SceneError:
            raise SceneError(f"{src.header}: unreadable 'acquisition time' "
                             f"{envi['acquisition time']!r}") from None
    acquired, time_source = (tag_time, tag_src) if tag_time else (info.acquired, info.time_source)
    if acquired is None and manifest.get("start") is not None:
        acquired, time_source = manifest["start"], "manifest.safe startTime"
    if acquired is None:
        if time is None:
            raise UndatedSceneError(
                f"{src.key}: acquisition time unknown (no time in its metadata and no "
                "Sentinel-2/Landsat file name); give it with --time YYYY-MM-DD"
            )
        acquired, time_source = as_utc(time), "given"
    # A name or tag may date an image in year 9999: refused here, in one line, rather than by
    # an overflow in later date arithmetic.
    acquired = parse_time(acquired, f"{src.key}: acquisition time", SceneError)

    sensor_name = sensor or tags.get("SENSOR") or info.sensor or (
        "sentinel-1" if manifest.get("platform") else None)
    if sensor_name is None and envi and "landsat" in envi.get("sensor type", "").lower():
        sensor_name = "landsat"
    if sensor_name is None and all(b.name in B.SAR_POLARISATIONS for b in bands):
        sensor_name = "sar"  # polarisation bands and nothing else: radar, of unknown origin
    platform = tags.get("PLATFORM") or info.platform or manifest.get("platform")
    simulated = str(tags.get("SIMULATED", "")).lower() == "true"

    footprint = _footprint(ref, ref_path, warn)
    properties: dict[str, Any] = {}
    if kind_of(sensor_name or "") == "sar":
        properties = _sar_properties(datasets, bands, info, manifest, tags, sensor_name,
                                     platform, acquired, footprint, warn)
    refs, checksum = _file_refs([p for p, _, _ in datasets] + ([src.header] if src.header else []))
    scene_id = make_scene_id(info, acquired, platform, sensor_name, Path(src.key))
    return Scene(
        id=scene_id,
        source=src.key,
        acquired=acquired,
        time_source=time_source or "unknown",
        sensor=sensor_name or "unknown",
        platform=platform,
        bands=tuple(bands),
        masks=tuple(masks),
        crs=ref.crs.to_wkt() if georef else None,
        width=ref.width,
        height=ref.height,
        transform=tuple(ref.transform)[:6] if georef else None,
        resolution=min((b.resolution for b in bands if b.resolution), default=None)
        if georef else None,
        footprint=footprint,
        files=refs,
        checksum=checksum,
        simulated=simulated,
        warnings=tuple(warn),
        properties=properties,
    )


def _s1_manifest(src: SceneSource) -> dict[str, Any]:
    """What the ``manifest.safe`` of a Sentinel-1 ``.SAFE`` holding ``src`` says ({} when
    there is none)."""
    from sitewatch.imagery.sentinel1 import find_manifest, read_manifest

    path = find_manifest(src.files[:1])
    return read_manifest(path) if path is not None else {}


def _sar_properties(datasets: list[tuple[Path, NameInfo, rasterio.io.DatasetReader]],
                    bands: Sequence[BandRef], info: NameInfo, manifest: dict[str, Any],
                    tags: dict[str, str], sensor: str | None, platform: str | None,
                    acquired: datetime, footprint: BaseGeometry | None, warn: list[str]
                    ) -> dict[str, Any]:
    """Polarisations, orbit and units of a SAR scene (:mod:`sitewatch.imagery.sentinel1`)."""
    from sitewatch.imagery import sentinel1 as S1

    by_path = {str(p): ds for p, _, ds in datasets}
    lon = footprint.centroid.x if footprint is not None else None
    props: dict[str, Any] = {}
    if (sensor or "").lower().startswith("sentinel-1"):
        props = S1.describe(platform=platform, acquired=acquired, absolute_orbit=info.orbit,
                            band_names=[b.name for b in bands], tags=tags,
                            manifest=manifest, lon=lon, warn=warn)
    else:
        props["polarisations"] = [b.name.upper() for b in bands
                                  if b.name in B.SAR_POLARISATIONS]
    units, why = S1.units_of([by_path[b.path] for b in bands],
                             [(by_path[b.path], b.index) for b in bands],
                             manifest.get("product_type") or info.level,
                             [Path(b.path).name for b in bands])
    props["sar_units"] = units
    if units != "power" or "assumed" in why:
        warn.append(f"SAR values read as {units}: {why}"
                    + ("; converted to linear power on loading" if units != "power" else ""))
    return props


def _bounds(ds: rasterio.io.DatasetReader) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the image's four corners (rotated transforms included;
    rasterio's ``bounds`` takes two corners only)."""
    t = ds.transform
    xs, ys = zip(*(t @ (c, r) for c, r in ((0, 0), (ds.width, 0), (0, ds.height),
                                           (ds.width, ds.height))), strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


def _same_extent(a: Any, b: Any, ds: rasterio.io.DatasetReader) -> bool:
    # Bands of one scene share their extent to within one of the coarser pixel.
    t = ds.transform
    tol = max(math.hypot(t.a, t.d), math.hypot(t.b, t.e)) * 1.01
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _band_order(b: BandRef) -> tuple[float, str]:
    return (b.wavelength if b.wavelength is not None else 99.0, b.name)


def make_scene_id(
    info: NameInfo, acquired: datetime, platform: str | None, sensor: str | None, key: Path
) -> str:
    """A readable id: ``S2A_20160120_T39QZG``, ``LE07_20080427_035032`` or ``<stem>``.

    The id names files (change products, exports), so it is always a safe name
    (:func:`sitewatch.fileio.safe_name`): a platform tag or file name with other characters
    (``/``, ``..``, control characters) keeps its safe characters and gains a short hash.
    """
    from sitewatch.fileio import safe_name  # local: this function's only use of it

    day = acquired.strftime("%Y%m%d")
    if info.key and (platform or sensor):
        head = platform or {"sentinel-2": "S2", "landsat": "L"}.get(sensor or "", "X")
        return safe_name(f"{safe_name(head, 'X', 40)}_{day}_{info.key}")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", key.name.split(".")[0]).strip("_") or "scene"
    return safe_name(stem[:80], "scene")

__all__ = ["BandRef", "FileRef", "MaskRef", "Scene", "make_scene_id", "open_raster",
           "read_envi_header", "read_scene", "sha256_file", "source_checksum"]
