from datetime import UTC, datetime

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from sitewatch.change.base import MethodError
from sitewatch.change.detect import detect_arrays
from sitewatch.imagery.grid import GridImage, SiteGrid
from sitewatch.watch.zonal import REST, part_changes

GRID = SiteGrid("EPSG:32651", Affine(10, 0, 0, 0, -10, 0), 80, 80)


def image(data, sid="a", quality=None):
    q = np.zeros(data.shape[1:], np.uint8) if quality is None else quality
    d = data.astype(np.float32).copy()
    d[:, q != 0] = np.nan
    return GridImage(sid, datetime(2024, 1, 1, tzinfo=UTC), "x", GRID,
                     ("blue", "green", "red", "nir"), d, q)


def robust_difference(before, after):
    """The misregistration-tolerant difference detector on two grid images."""
    return detect_arrays(before.data, after.data, before.bands, "difference")


def scene(seed=0):
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=(4, 80, 80)), (0, 3, 3)) * 0.05 + 0.2
    return base + rng.normal(scale=0.003, size=base.shape)


def test_planted_object_found_despite_gain_offset_and_noise():
    a = scene()
    rng = np.random.default_rng(5)
    b = a * 1.12 + 0.02 + rng.normal(scale=0.003, size=a.shape)  # gain, offset, new noise
    b[:, 30:36, 40:48] += 0.15  # a new 6 x 8 pixel roof
    r = robust_difference(image(a), image(b, "b"))
    assert r.changed[30:36, 40:48].mean() > 0.9
    outside = np.ones((80, 80), bool)
    outside[28:38, 38:50] = False
    assert r.changed[outside].mean() < 0.01


def test_one_pixel_misregistration_is_tolerated():
    a = scene(1)
    b = np.roll(a, 1, axis=2)  # whole scene one pixel east
    r = robust_difference(image(a), image(b, "b"))
    assert r.changed[:, 2:-2].mean() < 0.02


def test_unobserved_pixels_and_part_statistics():
    a = scene(2)
    b = a.copy()
    b[:, 10:20, 10:20] += 0.2
    cloud = np.zeros((80, 80), np.uint8)
    cloud[:, 60:] = 2
    r = robust_difference(image(a), image(b, "b", cloud))
    assert np.isnan(r.score[:, 60:]).all() and not r.changed[:, 60:].any()
    part = np.zeros((80, 80), bool)
    part[10:20, 10:30] = True  # half changed
    hidden = np.zeros((80, 80), bool)
    hidden[0:10, 65:75] = True  # all under cloud
    stats = part_changes(r, {"pad": part, "hidden": hidden}, 100.0,
                         site_mask=np.ones((80, 80), bool))
    assert stats["pad"].changed_fraction == pytest.approx(0.5, abs=0.05)
    assert stats["pad"].changed_area_m2 == pytest.approx(100 * 100, rel=0.1)
    assert stats["hidden"].observed_fraction == 0 and not stats["hidden"].observed
    assert np.isnan(stats["hidden"].changed_fraction)
    assert stats[REST].pixels == 80 * 80 - 200 - 100


def test_refuses_nearly_unobserved_pairs():
    a = scene(3)
    q = np.full((80, 80), 2, np.uint8)
    with pytest.raises(MethodError, match="observed on both dates"):
        robust_difference(image(a), image(a, "b", q))
