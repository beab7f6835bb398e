"""Sensor rules: per kind of sensor (optical or SAR), which bands are compared, which band
co-registration matches on, which bands make a true-colour picture, the smallest shift worth
applying, and the default detectors.

Pair detection (:mod:`sitewatch.change.tiled`), the watch pipeline
(:mod:`sitewatch.watch.pipeline`), training and the report figures all take these rules from
here, so that the same scene is registered and shown the same way everywhere.  Band names
are the common names of :mod:`sitewatch.imagery.bands`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sitewatch.imagery.coregister import Shift

#: The kinds of sensor sitewatch tells apart: reflectance images and radar intensity.
SENSOR_KINDS = ("optical", "sar")
#: The kind assumed for a sensor name sitewatch does not know.
ASSUMED_KIND = "optical"

#: Bands compared on optical images when a detector names none, in order of preference.
OPTICAL_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")

#: Bands tried in turn for co-registration: one band, because averaging a visible band with
#: NIR blurs structure (vegetation is dark in red and bright in NIR); on OSCD the
#: red+green+NIR mean rejected 3 of 10 pairs whose red band matched at 0.1-0.2 px.
REGISTRATION_BANDS = ("red", "green", "blue", "nir", "pan")

#: Co-registration shifts smaller than this (pixels) are recorded but not applied.  It is
#: issue 3's precision target (a test holds the estimate to it at SNR 50); phase correlation
#: upsampled 20 times moves in 0.05 px steps, so one step is within the estimate's noise,
#: and applying it would resample every band of the scene (a warp instead of a plain read)
#: for nothing.
MIN_APPLIED_SHIFT_PX = 0.1

#: A true-colour picture: red, green and blue, in that order.
RGB_BANDS = ("red", "green", "blue")

#: Default detector of a single pair (``sitewatch detect``), chosen on the benchmarks
#: (docs/benchmarks.md; SAR: PCA-k-means had the best worst-case kappa held out, leave one
#: real pair out, docs/bench_sar.md).
PAIR_METHOD = {"optical": "hacd", "sar": "sar-pca-kmeans"}
#: Default detector of a watch run (``sitewatch run``).  Not the pair default (HACD): over
#: time series, where each part's history sets what is unusual, the log ratio of
#: IR-MAD-normalised bands alerted as many planted changes with fewer false alarms, on the
#: simulated scenario (44 of 45 each; 14 false alarms against 34 over 5 seeds) and on the
#: Colorado series with planted events (docs/benchmarks.md, "Watching over time").
WATCH_METHOD = {"optical": "ratio", "sar": "sar-log-ratio"}
#: The log-ratio's threshold in a watch run, in dB: a part's changed share must mean the same
#: from date to date for its history to be a baseline, and Otsu's cut on the histogram of a
#: pair without much change lands inside the speckle (on 4.5-look scenes it flagged 15-50 %
#: of quiet parts, varying date to date).  A doubling (3 dB) of the 3 x 3 local mean is about
#: 3 standard deviations of its speckle at Sentinel-1 GRD's ~4.4 looks (0.98 dB), a
#: false-alarm rate near 0.3 %, and the usual size of a "significant" backscatter change.
SAR_WATCH_THRESHOLD_DB = 3.0


def watch_threshold(method: str) -> float | None:
    """The threshold a watch run gives ``method`` (None: the detector's own rule).  The
    log-ratio scores in natural-log units, so :data:`SAR_WATCH_THRESHOLD_DB` becomes
    ln(10^(dB/10)).

    >>> round(watch_threshold("sar-log-ratio"), 4), watch_threshold("ratio")
    (0.6908, None)
    """
    if method == "sar-log-ratio":
        return SAR_WATCH_THRESHOLD_DB * math.log(10.0) / 10.0
    return None


def kind_of(sensor: str) -> str | None:
    """``optical`` or ``sar`` for a sensor name sitewatch knows, else None.

    >>> kind_of("sentinel-2"), kind_of("Sentinel-1A"), kind_of("sim-3m"), kind_of("camera")
    ('optical', 'sar', 'optical', None)
    """
    s = sensor.lower()
    if "sentinel-1" in s or "sar" in s or s.startswith("s1"):
        return "sar"
    if s.startswith(("sentinel-2", "landsat", "sim")):
        return "optical"
    return None


def registration_bands(use: Sequence[str]) -> list[str]:
    """The band(s) co-registration matches: the first of :data:`REGISTRATION_BANDS`
    present in ``use``, else every band of ``use`` averaged (e.g. SAR polarisations).

    >>> registration_bands(["blue", "green", "red", "nir"])
    ['red']
    >>> registration_bands(["vv", "vh"])
    ['vv', 'vh']
    """
    for b in REGISTRATION_BANDS:
        if b in use:
            return [b]
    return list(use)


def worth_applying(shift: Shift) -> bool:
    """Whether a co-registration shift is large enough to undo (:data:`MIN_APPLIED_SHIFT_PX`).

    >>> worth_applying(Shift(0.05, 0.05)), worth_applying(Shift(0.0, 0.1))
    (False, True)
    """
    return shift.magnitude >= MIN_APPLIED_SHIFT_PX


def rgb_bands(available: Sequence[str]) -> tuple[str, ...]:
    """The bands of a picture from ``available``: :data:`RGB_BANDS` (true colour) when all
    three are there, else :data:`FALSE_COLOUR` when its bands are, else the first three
    available (fewer when there are fewer).  :func:`composite_words` names the choice.

    >>> rgb_bands(["blue", "green", "red", "nir"])
    ('red', 'green', 'blue')
    >>> rgb_bands(["vv", "vh"])
    ('vv', 'vh')
    """
    if all(b in available for b in RGB_BANDS):
        return RGB_BANDS
    if all(b in available for b in FALSE_COLOUR):
        return FALSE_COLOUR
    return tuple(available[:3])


#: The false-colour composite a picture uses when the visible bands are missing (e.g. a
#: Landsat series kept as red, NIR and SWIR): SWIR 1.6 um, NIR, red as red, green, blue, the
#: analysts' "5-4-3" of Landsat TM, where vegetation is green, bare soil and burn scars brown
#: or pink, water dark.
FALSE_COLOUR = ("swir16", "nir", "red")


def composite_words(bands: Sequence[str]) -> str | None:
    """How a caption names the composite ``bands`` (as picked by :func:`rgb_bands`): None
    for true colour (nothing to say), else the bands shown as red, green and blue.

    >>> composite_words(("swir16", "nir", "red"))
    'false colour: SWIR 1.6 µm shown as red, near infrared as green, red as blue (vegetation green)'
    >>> composite_words(("red", "green", "blue")) is None
    True
    """
    bands = tuple(bands)
    if bands == RGB_BANDS:
        return None
    if bands == FALSE_COLOUR:
        return ("false colour: SWIR 1.6 µm shown as red, near infrared as green, red as "
                "blue (vegetation green)")
    if len(bands) == 1:
        return f"band {bands[0]} in grey"
    shown = [f"{b} as {c}" for b, c in zip(bands, ("red", "green", "blue"), strict=False)]
    return "bands shown " + ", ".join(shown)


__all__ = [
    "ASSUMED_KIND",
    "FALSE_COLOUR",
    "MIN_APPLIED_SHIFT_PX",
    "OPTICAL_BANDS",
    "PAIR_METHOD",
    "REGISTRATION_BANDS",
    "RGB_BANDS",
    "SAR_WATCH_THRESHOLD_DB",
    "SENSOR_KINDS",
    "WATCH_METHOD",
    "composite_words",
    "kind_of",
    "registration_bands",
    "rgb_bands",
    "watch_threshold",
    "worth_applying",
]
