"""Per-part observations: observed share, change, objects inside or touching, indices."""

from __future__ import annotations

import numpy as np
import pytest

from sitewatch.change.base import ChangeMap
from sitewatch.watch.zonal import REST, part_changes

SHAPE = (60, 60)
BANDS = ("blue", "green", "red", "nir")


def change_map(changed, observed=None):
    observed = np.ones(SHAPE, bool) if observed is None else observed
    score = np.where(changed, 9.0, 1.0).astype(np.float32)
    score[~observed] = np.nan
    return ChangeMap(score, changed & observed, observed, 5.0, "fixed", "test")


def box(r0, r1, c0, c1):
    m = np.zeros(SHAPE, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_objects_inside_and_touching_a_part_are_counted_whole():
    pad = box(10, 20, 10, 20)
    changed = box(12, 15, 12, 15) | box(18, 24, 18, 24) | box(40, 45, 40, 45)
    # One more object wholly outside that touches the pad's corner diagonally.
    changed |= box(5, 10, 20, 22)
    st = part_changes(change_map(changed), {"pad": pad}, 100.0,
                      site_mask=np.ones(SHAPE, bool))
    p = st["pad"]
    assert p.pixels == 100 and p.observed_fraction == 1.0
    assert p.changed_fraction == pytest.approx((9 + 4) / 100)  # only pixels inside count
    assert p.changed_area_m2 == pytest.approx(13 * 100)
    assert p.objects == 3  # inside, straddling, touching the corner
    assert p.largest_object_m2 == pytest.approx(36 * 100)
    assert p.objects_area_m2 == pytest.approx((9 + 36 + 10) * 100)
    rest = st[REST]
    assert rest.objects == 3  # the far one, the straddling one, the touching one
    assert rest.pixels == 3600 - 100
    assert p.mean_score == pytest.approx(1 + 8 * 0.13) and p.p95_score == 9.0


def test_index_means_and_change_over_pixels_seen_on_both_dates():
    pad, field = box(10, 20, 10, 20), box(30, 40, 30, 40)
    before = np.full((4, *SHAPE), 0.1, np.float32)
    after = before.copy()
    before[3][field] = 0.5  # vegetated field: NDVI (0.5-0.1)/(0.5+0.1) = 2/3
    after[3][field] = 0.1  # cleared: NDVI 0
    after[:3][:, pad] = 0.3  # new bright concrete on the pad
    cloud = box(30, 40, 35, 40)  # half the field unseen on the after date
    after[:, cloud] = np.nan
    cm = change_map(np.zeros(SHAPE, bool), observed=~cloud)
    st = part_changes(cm, {"pad": pad, "field": field}, 100.0, before=before, after=after,
                      bands=BANDS)
    assert st["field"].observed_fraction == 0.5
    assert st["field"].ndvi_before == pytest.approx(2 / 3, rel=1e-5)
    assert st["field"].ndvi_change == pytest.approx(-2 / 3, rel=1e-5)
    assert st["pad"].brightness_before == pytest.approx(0.1)
    assert st["pad"].brightness_change == pytest.approx(0.2)
    assert np.isnan(st["pad"].nbr_before)  # no swir22 band
    assert st["pad"].objects == 0 and st["pad"].largest_object_m2 == 0.0
    plain = part_changes(cm, {"pad": pad}, 100.0)  # no bands given: indices stay NaN
    assert np.isnan(plain["pad"].ndvi_before) and np.isnan(plain["pad"].brightness_change)


def test_an_unseen_part_is_not_observed_rather_than_unchanged():
    pad = box(10, 20, 10, 20)
    cm = change_map(box(10, 20, 10, 20), observed=~pad)
    before = np.full((4, *SHAPE), 0.1, np.float32)
    st = part_changes(cm, {"pad": pad}, 100.0, before=before, after=before, bands=BANDS)
    p = st["pad"]
    assert p.observed_fraction == 0 and not p.observed
    assert np.isnan(p.changed_fraction) and np.isnan(p.mean_score) and np.isnan(p.ndvi_before)
    assert set(p.to_dict()) >= {"objects", "ndvi_change", "brightness_after"}
