"""Presets for the public STAC catalogues an analyst uses, and the asset -> band mapping.

A :class:`Preset` says where a catalogue is (API URL, collection), which of an Item's assets
are image bands (and under which common band name sitewatch knows them), which are provider
masks (``scl``, ``qa_pixel``), the sensor name, the default DN -> value scale and offset (an
Item's own ``raster:bands`` scale/offset take precedence), and whether its asset URLs must be
signed (Microsoft Planetary Computer).  :func:`asset_map` gives the mapping for one Item: the
preset's, or for a source without a preset one guessed from the Item's ``eo:bands`` common
names and asset keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sitewatch.errors import SourceError
from sitewatch.imagery import bands as B

EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"


@dataclass(frozen=True)
class AssetBand:
    """One asset read as one band: its asset key, the band name sitewatch uses (a common name
    such as ``red``, or ``vv``/``vh`` for radar), and whether an Item must have it (the
    optical presets require red and near infrared; the other bands are read when present)."""

    asset: str
    band: str
    required: bool = True
    wavelength: float | None = None  # micrometres

    @property
    def common_name(self) -> str | None:
        name = B.canonical(self.band)
        return name if name in B.known_common_names() or name == "nir" else None


@dataclass(frozen=True)
class AssetMask:
    """A provider mask asset and how to decode it (:class:`~sitewatch.imagery.scenes.MaskRef`
    kinds: ``scl``, ``qa_pixel``, ``fmask``, ``mask``)."""

    asset: str
    kind: str


@dataclass(frozen=True)
class Preset:
    """A public catalogue: where it is, what its Items' assets are, what they need."""

    name: str
    title: str
    api: str
    collection: str
    sensor: str
    bands: tuple[AssetBand, ...]
    masks: tuple[AssetMask, ...] = ()
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    signing: bool = False  # asset URLs need a SAS token (Planetary Computer's own API)
    cloud_cover: bool = True  # Items carry eo:cloud_cover (max-cloud applies)


def _s2(asset: str, band: str, wl: float, required: bool = True) -> AssetBand:
    return AssetBand(asset, band, required, wl)


PRESETS: dict[str, Preset] = {
    p.name: p for p in (
        Preset(
            "s2-l2a", "Sentinel-2 L2A (Element 84 Earth Search)", EARTH_SEARCH,
            "sentinel-2-l2a", "sentinel-2",
            (_s2("blue", "blue", 0.490, False), _s2("green", "green", 0.560, False),
             _s2("red", "red", 0.665), _s2("nir", "nir", 0.842),
             _s2("swir16", "swir16", 1.610, False), _s2("swir22", "swir22", 2.190, False),
             _s2("rededge1", "rededge1", 0.705, False), _s2("rededge2", "rededge2", 0.740, False),
             _s2("rededge3", "rededge3", 0.783, False), _s2("nir08", "nir08", 0.865, False)),
            (AssetMask("scl", "scl"),),
            # Processing baseline 04.00 adds an offset of -0.1; Earth Search gives it per
            # Item in raster:bands, which takes precedence over this default.
            scale=1e-4, offset=0.0, nodata=0.0),
        Preset(
            "landsat-c2-l2", "Landsat Collection 2 Level-2 (Microsoft Planetary Computer)",
            PLANETARY_COMPUTER, "landsat-c2-l2", "landsat",
            (AssetBand("blue", "blue", False, 0.482), AssetBand("green", "green", False, 0.561),
             AssetBand("red", "red", True, 0.655), AssetBand("nir08", "nir", True, 0.865),
             AssetBand("swir16", "swir16", False, 1.609),
             AssetBand("swir22", "swir22", False, 2.201)),
            (AssetMask("qa_pixel", "qa_pixel"),),
            scale=2.75e-5, offset=-0.2, nodata=0.0, signing=True),
        Preset(
            "s1-rtc", "Sentinel-1 radiometrically terrain corrected (Planetary Computer)",
            PLANETARY_COMPUTER, "sentinel-1-rtc", "sentinel-1",
            (AssetBand("vv", "vv", False), AssetBand("vh", "vh", False)),
            signing=True, cloud_cover=False),
        Preset(
            "s1-grd", "Sentinel-1 GRD (Planetary Computer; georeferenced assets only)",
            PLANETARY_COMPUTER, "sentinel-1-grd", "sentinel-1",
            (AssetBand("vv", "vv", False), AssetBand("vh", "vh", False)),
            signing=True, cloud_cover=False),
    )
}

#: Asset keys that are provider masks, when a source has no preset.
_MASK_ASSETS = {"scl": "scl", "qa_pixel": "qa_pixel", "fmask": "fmask", "cloud_mask": "mask",
                "cloudmask": "mask", "mask": "mask"}
#: Radar polarisations kept as bands, when a source has no preset.
_SAR_ASSETS = ("vv", "vh", "hh", "hv")
_IMAGE_TYPES = ("image/tiff", "image/vnd.stac.geotiff", "image/jp2")


def needs_signing(preset: Preset | None, api: str) -> bool:
    """Whether a source's asset URLs must be signed: a signing preset used with its own
    catalogue (the same preset pointed at another API, e.g. a mirror, signs nothing).

    >>> needs_signing(PRESETS["landsat-c2-l2"], PLANETARY_COMPUTER + "/")
    True
    >>> needs_signing(PRESETS["landsat-c2-l2"], "http://127.0.0.1:8080")
    False
    """
    return bool(preset and preset.signing and api.rstrip("/") == preset.api.rstrip("/"))


def get_preset(name: str) -> Preset:
    """The preset called ``name``; :class:`SourceError` listing the presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SourceError(f"no preset {name!r} (presets: {', '.join(sorted(PRESETS))})"
                          ) from None


def sensor_of(properties: Mapping[str, Any], collection: str) -> str:
    """A sensor family from an Item's ``platform``/``constellation`` or its collection.

    >>> sensor_of({"platform": "sentinel-2b"}, "x"), sensor_of({}, "landsat-c2-l2")
    ('sentinel-2', 'landsat')
    """
    text = " ".join(str(properties.get(k) or "") for k in ("constellation", "platform"))
    text = (text + " " + collection).lower()
    for family in ("sentinel-2", "sentinel-1", "landsat"):
        if family in text or family.replace("-", "") in text:
            return family
    return "unknown"


def _common_name(asset: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The ``eo:bands`` (STAC 1.0) or ``bands`` (1.1) common name and centre wavelength of a
    single-band asset."""
    for key in ("eo:bands", "bands"):
        listed = asset.get(key)
        if isinstance(listed, list) and len(listed) == 1 and isinstance(listed[0], dict):
            b = listed[0]
            name = b.get("common_name") or b.get("eo:common_name")
            wl = b.get("center_wavelength") or b.get("eo:center_wavelength")
            return (str(name) if name else None,
                    float(wl) if isinstance(wl, int | float) else None)
    return None, None


def _is_image(asset: Mapping[str, Any]) -> bool:
    kind = str(asset.get("type") or "").lower()
    href = str(asset.get("href") or "").lower().split("?")[0]
    roles = asset.get("roles") or []
    if isinstance(roles, list) and ("thumbnail" in roles or "overview" in roles):
        return False
    return kind.startswith(_IMAGE_TYPES) or href.endswith((".tif", ".tiff", ".jp2"))


def guess_assets(item: Mapping[str, Any]) -> tuple[tuple[AssetBand, ...], tuple[AssetMask, ...]]:
    """The bands and masks of an Item of a catalogue without a preset: single-band image
    assets with a known ``eo:bands`` common name, asset keys that are common names or radar
    polarisations, and mask assets (``scl``, ``qa_pixel``, ``fmask``...).

    >>> bands, masks = guess_assets({"assets": {
    ...     "B04": {"href": "a.tif", "eo:bands": [{"common_name": "red"}]},
    ...     "vv": {"href": "v.tif"}, "scl": {"href": "s.tif"}, "thumb": {"href": "t.png"}}})
    >>> [(b.asset, b.band) for b in bands], [(m.asset, m.kind) for m in masks]
    ([('B04', 'red'), ('vv', 'vv')], [('scl', 'scl')])
    """
    assets = item.get("assets") or {}
    bands: list[AssetBand] = []
    masks: list[AssetMask] = []
    taken: set[str] = set()
    known = B.known_common_names() | {"nir"}
    for key in sorted(assets):
        asset = assets[key]
        if not isinstance(asset, dict) or not _is_image(asset):
            continue
        lowered = key.lower()
        if lowered in _MASK_ASSETS:
            masks.append(AssetMask(key, _MASK_ASSETS[lowered]))
            continue
        name, wl = _common_name(asset)
        if name is None and B.canonical(lowered) in known:
            name = B.canonical(lowered)
        if name is None and lowered in _SAR_ASSETS:
            name = lowered
        if name is None and wl is not None:
            name = B.common_name_for_wavelength(wl)
        if name is None or B.canonical(name) in taken:
            continue
        name = B.canonical(name) if lowered not in _SAR_ASSETS else name
        taken.add(name)
        bands.append(AssetBand(key, name, False, wl))
    return tuple(bands), tuple(masks)


def asset_map(item: Mapping[str, Any], preset: Preset | None
              ) -> tuple[tuple[AssetBand, ...], tuple[AssetMask, ...]]:
    """The bands and masks to read from ``item``: the preset's, or guessed."""
    if preset is None:
        return guess_assets(item)
    return preset.bands, preset.masks


def _raster_band(asset: Mapping[str, Any]) -> Mapping[str, Any]:
    listed = asset.get("raster:bands")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        return listed[0]
    # STAC 1.1 puts the raster fields on the asset itself (or in its ``bands``).
    return {k.removeprefix("raster:"): v for k, v in asset.items()
            if k in ("raster:scale", "raster:offset", "nodata", "raster:nodata")}


def scale_offset_nodata(asset: Mapping[str, Any], preset: Preset | None,
                        properties: Mapping[str, Any] | None = None
                        ) -> tuple[float | None, float | None, float | None]:
    """DN -> value ``scale`` and ``offset`` and the ``nodata`` value of an asset: the Item's
    ``raster:bands`` where given, else the preset's defaults, else None (the file's own).
    For Sentinel-2 without an offset in the Item, the offset of -0.1 of processing baseline
    04.00 follows ``s2:processing_baseline``, else the Item's date (from 2022-01-25).

    >>> p = PRESETS["s2-l2a"]
    >>> scale_offset_nodata({}, p, {"s2:processing_baseline": "05.00"})
    (0.0001, -0.1, 0.0)
    >>> scale_offset_nodata({"raster:bands": [{"scale": 0.0001, "offset": 0}]}, p,
    ...                     {"datetime": "2023-01-01T00:00:00Z"})
    (0.0001, 0.0, 0.0)
    """
    rb = _raster_band(asset)
    props = properties or {}

    def num(key: str, default: float | None) -> float | None:
        v = rb.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default

    offset_default = preset.offset if preset else None
    if preset is not None and preset.sensor == "sentinel-2" and "offset" not in rb:
        baseline = props.get("s2:processing_baseline")
        if isinstance(baseline, str) and baseline:
            newer = baseline >= "04.00"
        else:
            newer = str(props.get("datetime") or "")[:10] >= B.S2_BASELINE_04_START
        offset_default = -0.1 if newer else 0.0
    return (num("scale", preset.scale if preset else None), num("offset", offset_default),
            num("nodata", preset.nodata if preset else None))


__all__ = ["EARTH_SEARCH", "PLANETARY_COMPUTER", "PRESETS", "AssetBand", "AssetMask", "Preset",
           "asset_map", "get_preset", "guess_assets", "needs_signing", "scale_offset_nodata",
           "sensor_of"]
