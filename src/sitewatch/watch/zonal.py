"""Per-part statistics of a change map (zonal statistics over the site's parts).

For each part (and the site outside every named part, :data:`REST`): how much of it was
observed, how much changed, the change score's mean and 95th percentile, the change objects
inside or touching it, and, when both dates' bands are given, the part's mean spectral
indices on each date and their change.  "Not observed" is a result: a part under cloud gets
``observed_fraction`` 0 and NaN measures, never zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from sitewatch.change.base import ChangeMap
from sitewatch.change.sar import OmnibusResult

#: The name under which the site area outside every named part is reported.
REST = "(rest of site)"
#: A part counts as observed on a date when at least this share of it was seen.
MIN_OBSERVED = 0.5
#: Indices reported when their bands are present: name -> how to compute from a band dict.
INDEX_BANDS: dict[str, tuple[str, ...]] = {
    "ndvi": ("nir", "red"),
    "nbr": ("nir", "swir22"),
    "brightness": ("blue", "green", "red"),
}
_NAN = float("nan")


@dataclass(frozen=True)
class PartChange:
    """Change at one part between two dates.  Fractions are of the part's pixels
    (``observed_fraction``) or of its observed pixels (``changed_fraction``).

    ``objects``: change objects (8-connected changed pixels) inside or touching the part;
    ``objects_area_m2``: their whole area (inside and outside the part);
    ``largest_object_m2``: the largest of them.  ``<index>_before`` / ``<index>_after``:
    the part's mean NDVI, NBR and visible brightness on each date over the pixels observed
    on both (NaN when the bands are missing or nothing was observed); ``<index>_change`` =
    after - before.
    """

    part: str
    pixels: int
    observed_fraction: float
    changed_fraction: float  # of the observed pixels; NaN when nothing is observed
    changed_area_m2: float
    mean_score: float
    p95_score: float
    objects: int = 0
    objects_area_m2: float = 0.0
    largest_object_m2: float = 0.0
    ndvi_before: float = _NAN
    ndvi_after: float = _NAN
    ndvi_change: float = _NAN
    nbr_before: float = _NAN
    nbr_after: float = _NAN
    nbr_change: float = _NAN
    brightness_before: float = _NAN
    brightness_after: float = _NAN
    brightness_change: float = _NAN

    @property
    def observed(self) -> bool:
        return self.observed_fraction >= MIN_OBSERVED

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _index(arr: np.ndarray, bands: Sequence[str], name: str,
           pixels: np.ndarray | None = None) -> np.ndarray | None:
    """An index from ``arr`` (bands first; any trailing shape: a grid, or with ``pixels``
    the flat grid's pixels of one zone, gathered one band at a time), in float64."""
    need = INDEX_BANDS[name]
    if any(b not in bands for b in need):
        return None
    get = {b: (arr[bands.index(b)] if pixels is None else arr[bands.index(b), pixels])
           .astype(np.float64) for b in need}
    if name == "brightness":
        # np.mean over the stacked bands is this sum, band by band, then the division
        # (the same values), without the (bands, pixels) float64 stack.
        total = get[need[0]]
        for b in need[1:]:
            total += get[b]
        return total / len(need)
    a, b = get[need[0]], get[need[1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a - b) / (a + b)
    out[~np.isfinite(out)] = np.nan
    return out


_EIGHT = np.ones((3, 3), bool)

#: A zone with more observed pixels than this has its index means summed in chunks of it,
#: so that its float64 temporaries stay near 100 MB (the rest of a 2000 x 2000 px site is
#: most of its 4 Mpx: about 200 MB at once before, twice that with both comparisons of a
#: scene running together).  Smaller zones are averaged in one piece as before.
INDEX_CHUNK = 1 << 20


def _index_means(b_flat: np.ndarray, a_flat: np.ndarray, bands: Sequence[str],
                 pixels: np.ndarray) -> dict[str, float]:
    """``<index>_before``, ``_after`` and ``_change``: the mean of each index over the
    zone's ``pixels`` observed (finite) on both dates; none for an index whose bands are
    missing or that no pixel has."""
    out: dict[str, float] = {}
    for iname in INDEX_BANDS:
        sum_b = sum_a = 0.0
        count = 0
        for k in range(0, max(int(pixels.size), 1), INDEX_CHUNK):
            px = pixels[k:k + INDEX_CHUNK]
            ib = _index(b_flat, bands, iname, px)
            ia = _index(a_flat, bands, iname, px)
            if ib is None or ia is None:
                break
            both = np.isfinite(ib) & np.isfinite(ia)
            n = int(np.count_nonzero(both))
            if not n:
                continue
            if pixels.size <= INDEX_CHUNK:  # one piece: numpy's mean, as before
                sum_b, sum_a, count = float(ib[both].mean()), float(ia[both].mean()), 1
                break
            sum_b += float(ib[both].sum())
            sum_a += float(ia[both].sum())
            count += n
        if count:
            vb, va = sum_b / count, sum_a / count
            out.update({f"{iname}_before": vb, f"{iname}_after": va,
                        f"{iname}_change": va - vb})
    return out


class ZoneIndex:
    """The zones of a grid (each part, and the site outside every part, :data:`REST`) as
    flat pixel indices, worked out once per grid: each zone's pixels (in row-major order)
    and the pixels within one of them (where a change object touches the zone).  Per date,
    :func:`part_changes` then gathers only each zone's own pixels, a pass over the site
    instead of a full-grid mask per part, and no full-grid float64 copies of the bands."""

    def __init__(self, masks: Mapping[str, np.ndarray], site_mask: np.ndarray | None = None):
        zones = dict(masks)
        if site_mask is not None:
            outside = site_mask.copy()
            for m in masks.values():
                outside &= ~m
            zones[REST] = outside
        first = next(iter(zones.values()), None)
        self.shape: tuple[int, ...] = first.shape if first is not None else (0, 0)
        self.pixels: dict[str, np.ndarray] = {}
        self.near: dict[str, np.ndarray] = {}
        for name, m in zones.items():
            self.pixels[name] = np.flatnonzero(m).astype(np.intp)
            self.near[name] = _near(m)

    @property
    def names(self) -> list[str]:
        return list(self.pixels)

    def size(self, name: str) -> int:
        return int(self.pixels[name].size)


def _near(m: np.ndarray) -> np.ndarray:
    """Flat indices of the pixels of ``m`` grown by one pixel (8-connected), worked out in
    the part's bounding box plus one, not over the whole grid."""
    if not m.any():
        return np.zeros(0, np.intp)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    r0, c0 = max(rows[0] - 1, 0), max(cols[0] - 1, 0)
    box = (slice(r0, rows[-1] + 2), slice(c0, cols[-1] + 2))
    near = ndimage.binary_dilation(m[box], structure=_EIGHT)
    rr, cc = np.nonzero(near)
    return ((rr + r0) * m.shape[1] + (cc + c0)).astype(np.intp)


def part_changes(
    result: ChangeMap,
    masks: Mapping[str, np.ndarray],
    pixel_area_m2: float,
    *,
    site_mask: np.ndarray | None = None,
    before: np.ndarray | None = None,
    after: np.ndarray | None = None,
    bands: Sequence[str] | None = None,
    zones: ZoneIndex | None = None,
) -> dict[str, PartChange]:
    """Change statistics for each part mask, and for the site outside all parts (``REST``).

    ``before``/``after`` (bands, rows, cols) with their ``bands`` names, on the change
    map's grid, add the index measures; without them those stay NaN.  ``zones``: the same
    masks as a :class:`ZoneIndex` made once for many dates (``masks`` and ``site_mask``
    are then not read again).
    """
    if zones is None:
        zones = ZoneIndex(masks, site_mask)
    names = list(bands) if bands is not None else []
    with_indices = before is not None and after is not None and bands is not None
    labels, n_obj = ndimage.label(result.changed & result.observed, structure=_EIGHT)
    flat_labels = labels.ravel()
    sizes = np.bincount(flat_labels, minlength=n_obj + 1)
    observed, changed = result.observed.ravel(), result.changed.ravel()
    score = result.score.ravel()
    b_flat = before.reshape(before.shape[0], -1) if with_indices and before is not None \
        else None
    a_flat = after.reshape(after.shape[0], -1) if with_indices and after is not None else None
    out: dict[str, PartChange] = {}
    for name in zones.names:
        px = zones.pixels[name]
        n = int(px.size)
        obs_px = px[observed[px]]  # the zone's observed pixels, in row-major order
        n_obs = int(obs_px.size)
        if n == 0 or n_obs == 0:
            out[name] = PartChange(name, n, 0.0, _NAN, 0.0, _NAN, _NAN)
            continue
        ch = int(np.count_nonzero(changed[obs_px]))
        s = score[obs_px]
        s = s[np.isfinite(s)]
        # Objects inside or touching: labels under the zone grown by one pixel.
        hit = np.zeros(n_obj + 1, bool)
        hit[flat_labels[zones.near[name]]] = True
        hit[0] = False
        ids = np.flatnonzero(hit)
        obj_px = sizes[ids]
        extra: dict[str, float] = {}
        if b_flat is not None and a_flat is not None:
            extra = _index_means(b_flat, a_flat, names, obs_px)
        out[name] = PartChange(
            name, n, n_obs / n, ch / n_obs, ch * pixel_area_m2,
            float(np.mean(s)) if s.size else _NAN,
            float(np.percentile(s, 95)) if s.size else _NAN,
            objects=int(ids.size),
            objects_area_m2=float(obj_px.sum()) * pixel_area_m2,
            largest_object_m2=float(obj_px.max()) * pixel_area_m2 if ids.size else 0.0,
            **extra,
        )
    return out


#: A part changes between two dates of the omnibus series when its share of changed pixels
#: is this unlikely without change (binomial, see :func:`omnibus_parts`) ...
OMNIBUS_PART_ALPHA = 0.01
#: ... and at least this large (a large part's 2% is significant, but not a change of it).
OMNIBUS_MIN_SHARE = 0.05


def omnibus_parts(result: OmnibusResult, zones: Mapping[str, np.ndarray], window: int
                  ) -> dict[str, dict[str, float]]:
    """Per zone, what the sequential omnibus test over a series of k dates found:

    ``omnibus_dates`` (k); ``omnibus_changed_fraction``: the share of the zone's observed
    pixels that changed between the last two dates; ``omnibus_p``: how unlikely that share
    is without change; ``omnibus_first``: the index (1..k-1) in the series of the first date
    at which the zone changed, -1 when it did not; ``omnibus_first_p``: that date's p-value;
    ``omnibus_changes``: at how many dates it changed.  A zone changes at a date when the
    share of its pixels the test flags there is at least :data:`OMNIBUS_MIN_SHARE` and has
    a binomial p-value under :data:`OMNIBUS_PART_ALPHA` given the pixels' false-alarm rate
    ``alpha``, counting ``window``² look-averaged pixels as one (they share their speckle).
    A zone seen on less than :data:`MIN_OBSERVED` of its pixels on every date gets NaN.
    """
    from scipy.stats import binom

    k = result.changes.shape[0] + 1
    out: dict[str, dict[str, float]] = {}
    for name, m in zones.items():
        n = int(m.sum())
        obs = m & result.observed
        n_obs = int(obs.sum())
        if n == 0 or n_obs < MIN_OBSERVED * n:
            out[name] = {"omnibus_dates": k, "omnibus_changed_fraction": _NAN,
                         "omnibus_p": _NAN, "omnibus_first": _NAN, "omnibus_first_p": _NAN,
                         "omnibus_changes": _NAN}
            continue
        shares = result.changes[:, obs].mean(axis=1)
        n_eff = max(1, round(n_obs / max(window, 1) ** 2))
        counts = np.round(shares * n_eff)
        p = binom.sf(counts - 1, n_eff, result.alpha)
        hit = (p < OMNIBUS_PART_ALPHA) & (shares >= OMNIBUS_MIN_SHARE)
        first = int(np.argmax(hit)) if hit.any() else -1
        out[name] = {"omnibus_dates": k, "omnibus_changed_fraction": float(shares[-1]),
                     "omnibus_p": float(p[-1]), "omnibus_first": first + 1 if first >= 0 else -1,
                     "omnibus_first_p": float(p[first]) if first >= 0 else _NAN,
                     "omnibus_changes": int(hit.sum())}
    return out


__all__ = ["INDEX_BANDS", "MIN_OBSERVED", "OMNIBUS_MIN_SHARE", "OMNIBUS_PART_ALPHA", "REST",
           "PartChange", "ZoneIndex", "omnibus_parts", "part_changes"]
