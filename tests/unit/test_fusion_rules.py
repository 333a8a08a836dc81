"""The query fusion rule (issue 9, gateway/fusion.py) on hand-built hits, the crop filter and the query regions:
pure functions, no service, cache or database."""

from __future__ import annotations

import numpy as np
import pytest

from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE, Hit, SearchFilter
from designsearch.gateway.fusion import fuse_max_agreement
from designsearch.images import decode_image, encode_jpeg


def _hit(design: str, score: float, point: str = "") -> Hit:
    return Hit(point or f"{design}-{score}", score, {"design_id": design})


def _order(fused) -> list[str]:
    return [m.design_id for m in fused]


# ------------------------------------------------------------------------------------- the rule
def test_one_query_vector_is_plain_max():
    fused = fuse_max_agreement([[_hit("a", 0.9), _hit("b", 0.8)]], bonus=0.05)
    assert _order(fused) == ["a", "b"]
    assert [m.score for m in fused] == [0.9, 0.8]  # n = 1: no bonus at all
    assert fused[0].votes == 1 and fused[0].query_index == 0


def test_agreement_outweighs_one_slightly_higher_bad_crop():
    """B is found by one (bad) crop at 0.82; A by all three query vectors, best 0.80. A full
    agreement bonus of 0.03 covers the 0.02 gap: A first, scored 0.80 + 0.03."""
    per_query = [
        [_hit("b", 0.82), _hit("a", 0.70)],  # the bad crop
        [_hit("a", 0.80), _hit("c", 0.60)],  # another crop
        [_hit("a", 0.78), _hit("c", 0.75)],  # the whole picture
    ]
    fused = fuse_max_agreement(per_query, bonus=0.03, depth=10)
    assert _order(fused)[:2] == ["a", "b"]
    a, b = fused[0], fused[1]
    assert a.score == pytest.approx(0.83) and a.best == pytest.approx(0.80) and a.votes == 3
    assert a.query_index == 1  # the query vector that gave A's best cosine
    assert b.score == pytest.approx(0.82) and b.votes == 1


def test_max_rule_holds_when_the_bonus_does_not_cover_the_gap():
    per_query = [
        [_hit("b", 0.84), _hit("a", 0.70)],
        [_hit("a", 0.80)],
        [_hit("a", 0.78)],
    ]
    fused = fuse_max_agreement(per_query, bonus=0.03, depth=10)
    assert _order(fused)[:2] == ["b", "a"]
    # without a bonus the rule is CombMAX: the best cosine decides, agreement does not matter
    fused = fuse_max_agreement([[_hit("b", 0.82), _hit("a", 0.70)], [_hit("a", 0.80)], [_hit("a", 0.78)]], bonus=0.0)
    assert _order(fused)[:2] == ["b", "a"] and fused[1].score == pytest.approx(0.80)


def test_bonus_is_proportional_to_agreement_within_depth():
    per_query = [
        [_hit("a", 0.5), _hit("x", 0.4), _hit("y", 0.3)],
        [_hit("x", 0.9), _hit("y", 0.8), _hit("a", 0.7)],  # a is 3rd here: outside depth 2
        [_hit("a", 0.6)],
        [],  # a query vector whose search found nothing still counts in n
        [_hit("a", 0.55)],
    ]
    by_id = {m.design_id: m for m in fuse_max_agreement(per_query, bonus=0.04, depth=2)}
    assert by_id["a"].votes == 3 and by_id["a"].best == pytest.approx(0.7)
    assert by_id["a"].score == pytest.approx(0.7 + 0.04 * (3 - 1) / (5 - 1))
    assert by_id["a"].query_index == 1  # its best cosine came from below the voting depth
    assert by_id["y"].votes == 1 and by_id["y"].score == pytest.approx(0.8)
    # depth=None counts whole lists
    assert {m.design_id: m.votes for m in fuse_max_agreement(per_query, 0.04, None)}["a"] == 4


def test_a_design_repeated_in_one_list_votes_once():
    fused = fuse_max_agreement([[_hit("a", 0.6, "p1"), _hit("a", 0.9, "p2")], [_hit("b", 0.5)]], bonus=0.05)
    assert fused[0].design_id == "a" and fused[0].votes == 1 and fused[0].hit.id == "p2"
    assert fused[0].score == pytest.approx(0.9)


def test_ties_are_deterministic():
    # equal fused scores: the higher best cosine first (0.80 + 0.03 vs 0.83 + 0)
    per_query = [[_hit("agree", 0.80), _hit("single", 0.83)], [_hit("agree", 0.79)]]
    fused = fuse_max_agreement(per_query, bonus=0.03, depth=10)
    assert fused[0].score == pytest.approx(fused[1].score)
    assert _order(fused) == ["single", "agree"]
    # equal everything: ascending design id, whatever the input order
    lists = [[_hit("q", 0.5), _hit("p", 0.5), _hit("r", 0.5)], [_hit("r", 0.5), _hit("q", 0.5), _hit("p", 0.5)]]
    assert _order(fuse_max_agreement(lists, 0.03)) == ["p", "q", "r"]
    assert _order(fuse_max_agreement(lists[::-1], 0.03)) == ["p", "q", "r"]
    # equal cosines of one design from two query vectors: the earlier vector gives the match
    fused = fuse_max_agreement([[_hit("a", 0.7, "crop")], [_hit("a", 0.7, "whole")]], 0.03)
    assert fused[0].query_index == 0 and fused[0].hit.id == "crop"


def test_rotated_copies_merge_to_the_best_hit_per_design():
    """A close-up region's lists (one per rotated copy) become one: each design's best hit, best first."""
    from designsearch.gateway.fusion import best_per_design

    merged = best_per_design([[_hit("a", 0.60, "a0"), _hit("b", 0.50, "b0")],
                              [_hit("b", 0.70, "b90"), _hit("c", 0.40, "c90")],
                              [_hit("a", 0.55, "a180")]])
    assert [(h.payload["design_id"], h.score, h.id) for h in merged] == [("b", 0.70, "b90"), ("a", 0.60, "a0"),
                                                                          ("c", 0.40, "c90")]
    assert best_per_design([]) == [] and best_per_design([[], []]) == []


def test_design_scores_average_each_designs_best_points_unless_one_is_a_near_copy():
    """A region's design score: the mean of the design's top_m points (a point seen in several lists counts
    once, at its best), so several close pictures of one design outrank one look-alike of another; a
    near-copy (cosine >= 0.9) scores its own cosine; top_m = 1 is best_per_design."""
    from designsearch.gateway.fusion import best_per_design, design_scores

    photo = [_hit("a", 0.80, "a0"), _hit("b", 0.70, "b0"), _hit("b", 0.68, "b1"), _hit("a", 0.40, "a1")]
    cutout = [_hit("b", 0.66, "b2"), _hit("b", 0.75, "b0"), _hit("a", 0.35, "a2")]  # b0 again, better here
    got = design_scores([photo, cutout], top_m=3)
    assert [h.payload["design_id"] for h in got] == ["b", "a"]
    assert got[0].id == "b0" and got[0].score == pytest.approx((0.75 + 0.68 + 0.66) / 3)
    assert got[1].id == "a0" and got[1].score == pytest.approx((0.80 + 0.40 + 0.35) / 3)
    assert [h.payload["design_id"] for h in design_scores([photo, cutout], top_m=1)] == ["a", "b"]
    assert design_scores([photo, cutout], top_m=1) == best_per_design([photo, cutout])
    assert design_scores([[_hit("c", 0.5, "c0")]], top_m=5)[0].score == pytest.approx(0.5)  # fewer than top_m
    copy = design_scores([[_hit("a", 0.97, "a0"), _hit("a", 0.30, "a1"), _hit("b", 0.80, "b0"),
                           _hit("b", 0.79, "b1")]], top_m=2)
    assert [(h.payload["design_id"], round(h.score, 3)) for h in copy] == [("a", 0.97), ("b", 0.795)]
    assert design_scores([], top_m=3) == []
    with pytest.raises(ValueError):
        design_scores([photo], top_m=0)


def test_empty_input_and_invalid_parameters():
    assert fuse_max_agreement([], 0.03) == []
    assert fuse_max_agreement([[], []], 0.03) == []
    with pytest.raises(ValueError):
        fuse_max_agreement([[_hit("a", 0.5)]], bonus=-0.01)
    with pytest.raises(ValueError):
        fuse_max_agreement([[_hit("a", 0.5)]], 0.03, depth=0)


def test_crop_queries_search_catalogue_crops_only():
    from designsearch.gateway.core import crop_filter

    assert crop_filter(SearchFilter()).kinds == (KIND_WHEEL, KIND_CLOSEUP)
    f = crop_filter(SearchFilter(brands=("Dodge",), year_min=2000, kinds=(KIND_CLOSEUP, KIND_WHOLE_IMAGE),
                                 exclude_design_ids=("x",)))
    assert (f.brands, f.year_min, f.kinds, f.exclude_design_ids) == (("Dodge",), 2000, (KIND_CLOSEUP,), ("x",))
    assert crop_filter(SearchFilter(kinds=(KIND_WHOLE_IMAGE,))) is None


def test_whole_picture_is_the_last_region_and_is_bounded():
    from designsearch.gateway.ports import Region
    from designsearch.gateway.core import WHOLE_PICTURE_MAX_SIDE, query_regions, whole_picture_bytes

    small = np.full((300, 500, 3), 127, np.uint8)
    data = encode_jpeg(small)
    crop = Region((10, 10, 60, 60), KIND_WHEEL, 0.9, b"jpeg")
    regions = query_regions([crop], data, small)
    assert [r.kind for r in regions] == [KIND_WHEEL, KIND_WHOLE_IMAGE]
    assert regions[1].box == (0, 0, 500, 300) and regions[1].image == data  # small: sent as it came
    assert [r.kind for r in query_regions([], data, small)] == [KIND_WHOLE_IMAGE]  # no duplicate
    big = np.zeros((1500, 3000, 3), np.uint8)
    shrunk = decode_image(whole_picture_bytes(encode_jpeg(big), big))
    assert shrunk.shape == (512, WHOLE_PICTURE_MAX_SIDE, 3)
