"""Provider quality bands to sitewatch quality codes.

Every loaded image carries a ``quality`` map (uint8) that says, pixel by pixel, why it is or
is not usable.  Provider masks are translated here:

* Fmask / CFmask (Landsat ESPA): 0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill;
* Landsat Collection 2 ``QA_PIXEL`` bits: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow;
* Landsat Collection 1 (ESPA) ``pixel_qa`` bits: 0 fill, 1 clear, 2 water, 3 cloud shadow,
  4 snow, 5 cloud;
* Sentinel-2 ``SCL``: 0 no data, 1 saturated/defective, 3 cloud shadow, 8/9 cloud, 10 cirrus,
  11 snow;
* a generic ``mask`` band: non-zero = not usable.

Only the provider's own cloud flags mark cloud: brightness alone never does, so bright
concrete pads are not thrown away as cloud.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Quality(IntEnum):
    """Why a pixel is (not) usable.  0 is usable; anything else is not observed."""

    VALID = 0
    NODATA = 1  # outside the image, fill, nodata value, NaN
    CLOUD = 2
    SHADOW = 3
    SNOW = 4
    CIRRUS = 5
    DEFECTIVE = 6
    MASKED = 7  # a user or generic mask


def quality_from_mask(kind: str, values: np.ndarray) -> np.ndarray:
    """Translate provider mask ``values`` of ``kind`` to :class:`Quality` codes (uint8).

    >>> quality_from_mask("fmask", np.array([0, 1, 2, 3, 4, 255])).tolist()
    [0, 0, 3, 4, 2, 1]
    """
    v = np.asarray(values)
    q = np.zeros(v.shape, dtype=np.uint8)
    if kind == "fmask":
        q[v == 2] = Quality.SHADOW
        q[v == 3] = Quality.SNOW
        q[v == 4] = Quality.CLOUD
        q[v == 255] = Quality.NODATA
    elif kind == "qa_pixel":
        b = v.astype(np.uint32)

        def bit(n: int) -> np.ndarray:
            return ((b >> n) & 1).astype(bool)

        q[bit(5)] = Quality.SNOW
        q[bit(4)] = Quality.SHADOW
        q[bit(2)] = Quality.CIRRUS
        q[bit(1) | bit(3)] = Quality.CLOUD
        q[bit(0)] = Quality.NODATA
    elif kind == "pixel_qa":
        b = v.astype(np.uint32)
        q[((b >> 4) & 1).astype(bool)] = Quality.SNOW
        q[((b >> 3) & 1).astype(bool)] = Quality.SHADOW
        q[((b >> 5) & 1).astype(bool)] = Quality.CLOUD
        q[(b & 1).astype(bool)] = Quality.NODATA
    elif kind == "scl":
        q[v == 1] = Quality.DEFECTIVE
        q[v == 3] = Quality.SHADOW
        q[np.isin(v, (8, 9))] = Quality.CLOUD
        q[v == 10] = Quality.CIRRUS
        q[v == 11] = Quality.SNOW
        q[v == 0] = Quality.NODATA
    elif kind == "mask":
        q[v != 0] = Quality.MASKED
    else:
        raise ValueError(f"unknown mask kind {kind!r}")
    return q


def combine(*qualities: np.ndarray) -> np.ndarray:
    """Combine quality maps: the first non-valid reason wins, NODATA over everything."""
    out = np.zeros(qualities[0].shape, dtype=np.uint8)
    for q in qualities:
        take = (out == Quality.VALID) & (q != Quality.VALID)
        out[take] = q[take]
    nodata = np.zeros(out.shape, bool)
    for q in qualities:
        nodata |= q == Quality.NODATA
    out[nodata] = Quality.NODATA
    return out
