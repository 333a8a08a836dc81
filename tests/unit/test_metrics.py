"""Retrieval metrics on tiny, hand-checkable examples."""

import numpy as np
import pytest

from designsearch.training.metrics import map_at_r, recall_at_k


def _unit(deg):
    """Unit vectors at the given angles (degrees) in 2-D: cosine similarity = cos(angle difference)."""
    rad = np.deg2rad(np.asarray(deg, dtype=float))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_recall_leave_one_out_perfect_clusters():
    # Two tight clusters far apart: every nearest neighbour has the same label.
    emb = _unit([0, 5, 90, 95])
    assert recall_at_k(emb, [0, 0, 1, 1], (1, 2)) == {1: 1.0, 2: 1.0}


def test_recall_leave_one_out_known_values():
    # Angles 0, 10, 30, 100; labels a, b, a, b.
    # Nearest neighbours (self excluded): 0→10 (b, miss), 10→0 (a, miss), 30→10 (b, miss),
    # 100→30 (a, miss)  => R@1 = 0.
    # Second neighbours: 0→30 (a, hit), 10→30 (a, miss), 30→0 (a, hit), 100→10 (b, hit) => R@2 = 3/4.
    emb = _unit([0, 10, 30, 100])
    labels = ["a", "b", "a", "b"]
    assert recall_at_k(emb, labels, (1, 2, 8)) == {1: 0.0, 2: 0.75, 8: 1.0}


def test_recall_is_scale_invariant():
    emb = _unit([0, 10, 30, 100]) * np.array([[1.0], [3.0], [0.5], [7.0]])
    assert recall_at_k(emb, [0, 1, 0, 1], (1, 2)) == {1: 0.0, 2: 0.75}


def test_map_at_r_query_gallery_known_values():
    gallery = _unit([10, 20, 30, 90])
    g_labels = [1, 0, 1, 0]
    # Query at 0°, label 1: R = 2 relevant (10°, 30°); ranking 10 (rel), 20 (irr) →
    # (P(1)*1 + P(2)*0) / 2 = 0.5.
    assert map_at_r(_unit([0]), [1], gallery=gallery, gallery_labels=g_labels) == pytest.approx(0.5)
    # Query at 22°, label 1: ranking 20 (irr), 30 (rel) → (0 + 1/2) / 2 = 0.25.
    assert map_at_r(_unit([22]), [1], gallery=gallery, gallery_labels=g_labels) == pytest.approx(0.25)
    # Both queries: mean 0.375; R@1: first hit, second miss.
    q = _unit([0, 22])
    assert map_at_r(q, [1, 1], gallery=gallery, gallery_labels=g_labels) == pytest.approx(0.375)
    assert recall_at_k(q, [1, 1], (1, 2), gallery=gallery, gallery_labels=g_labels) == {1: 0.5, 2: 1.0}


def test_map_at_r_leave_one_out_perfect_and_known():
    assert map_at_r(_unit([0, 5, 90, 95]), [0, 0, 1, 1]) == pytest.approx(1.0)
    # Angles 0, 10, 30, 100; labels a, b, a, b; every item has R = 1 and its nearest
    # neighbour is of the other label (see the recall test) → mAP@R = 0.
    assert map_at_r(_unit([0, 10, 30, 100]), ["a", "b", "a", "b"]) == 0.0


def test_groups_exclude_same_source():
    # Items 0 and 1 come from the same photo (group "p"). Without groups: 0° and 10° are each
    # other's nearest neighbour (hits), 30°'s nearest is 10° (label 0, miss), 90°'s is 30° (hit)
    # → 3/4. With the same-photo pair excluded: 0°→30° (miss), 10°→30° (miss), 30°→10° (miss),
    # 90°→30° (hit) → 1/4.
    emb = _unit([0, 10, 30, 90])
    labels = [0, 0, 1, 1]
    assert recall_at_k(emb, labels, (1,)) == {1: 0.75}
    assert recall_at_k(emb, labels, (1,), groups=["p", "p", "q", "r"]) == {1: 0.25}
    # mAP@R with groups: items 0 and 1 have no relevant item left (skipped); 30° → R=1, top 10° (miss)
    # → 0; 90° → R=1, top 30° (hit) → 1. Mean 0.5.
    assert map_at_r(emb, labels, groups=["p", "p", "q", "r"]) == pytest.approx(0.5)


def test_query_gallery_groups():
    # An edge query must not retrieve the photo it was made from.
    photos = _unit([0, 40])
    sketches = _unit([1, 39])
    labels = [0, 1]
    assert recall_at_k(sketches, labels, (1,), gallery=photos, gallery_labels=labels) == {1: 1.0}
    got = recall_at_k(sketches, labels, (1,), gallery=photos, gallery_labels=labels, groups=[0, 1], gallery_groups=[0, 1])
    assert got == {1: 0.0}


def test_errors():
    emb = _unit([0, 10])
    with pytest.raises(ValueError):
        recall_at_k(emb, [0, 1, 2], (1,))
    with pytest.raises(ValueError):
        recall_at_k(emb, [0, 1], (0,))
    with pytest.raises(ValueError):
        recall_at_k(emb, [0, 1], (1,), gallery=emb)  # gallery labels missing
    with pytest.raises(ValueError):
        map_at_r(emb, [0, 1])  # no query has a relevant item


def test_verify_calibration_pairs_are_balanced_and_respect_the_drawn_side():
    """Verify calibration pairs: every genuine pair (same label) once, as many impostors (different labels);
    with ``first``, only items that have a drawing are a pair's first member (the drawn side)."""
    from designsearch.training.verify_calibration import pairs

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    p, same = pairs(labels, np.random.default_rng(0), ordered=False)
    assert same.sum() == 3 + 1 + 3 and len(p) == 2 * same.sum()
    assert (labels[p[same, 0]] == labels[p[same, 1]]).all() and (labels[p[~same, 0]] != labels[p[~same, 1]]).all()
    first = np.array([True, False, True, True, False, False, True, True])
    p, same = pairs(labels, np.random.default_rng(0), ordered=True, first=first)
    assert first[p[:, 0]].all() and (p[:, 0] != p[:, 1]).all()
    assert same.sum() == 2 * 2 + 1 + 2 * 2 and len(p) == 2 * same.sum()  # ordered: each drawn item, each partner
    assert (labels[p[~same, 0]] != labels[p[~same, 1]]).all()
