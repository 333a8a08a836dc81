"""The query plan, ranking and cache keys as pure functions (gateway/plan.py, gateway/query.py): no Redis,
database, service or fake backend. Each table row is one rule; removing the rule fails its row."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE, Hit, SearchFilter
from designsearch.gateway import plan as P
from designsearch.gateway.cache import CachedQuery
from designsearch.gateway.plan import QueryPolicy
from designsearch.gateway.ports import Region
from designsearch.gateway.query import MatchResult, QueryResult, answer_cache_key, answer_dumps, answer_loads, query_cache_key

ALL = frozenset({"photo", "cutout", "lines"})
NO_LINES = frozenset({"photo", "cutout"})


def regions(*kinds: str) -> list[Region]:
    """Query regions of these kinds (the whole picture last, as query_regions orders them)."""
    return [Region((0, 0, 10, 10), kind, 0.9, b"") for kind in kinds]


WHEEL_PHOTO = regions(KIND_WHEEL, KIND_WHOLE_IMAGE)
CLOSEUP = regions(KIND_CLOSEUP, KIND_WHOLE_IMAGE)
NOTHING_FOUND = regions(KIND_WHOLE_IMAGE)


@pytest.mark.parametrize("policy, domain, regs, vectors, expected", [
    # a car photo: its photo vectors only, whatever the sketch rules
    (QueryPolicy(), "photo", WHEEL_PHOTO, ALL, [["photo"], ["photo"]]),
    (QueryPolicy(sketch_search="lines"), "photo", WHEEL_PHOTO, ALL, [["photo"], ["photo"]]),
    # a close-up: its close-up crop also against the cut-outs, by closeup_cutouts
    (QueryPolicy(), "photo", CLOSEUP, ALL, [["photo", "cutout"], ["photo"]]),
    (QueryPolicy(closeup_cutouts="crops_whole"), "photo", CLOSEUP, ALL, [["photo", "cutout"], ["photo", "cutout"]]),
    (QueryPolicy(closeup_cutouts="off"), "photo", CLOSEUP, ALL, [["photo"], ["photo"]]),
    # no cut-out vector in the collection: none searched
    (QueryPolicy(), "photo", CLOSEUP, frozenset({"photo"}), [["photo"], ["photo"]]),
    # a sketch: its views by sketch_search; its wheel crops count as close-up crops
    (QueryPolicy(), "sketch", WHEEL_PHOTO, ALL, [["photo", "cutout"], ["photo"]]),
    (QueryPolicy(sketch_search="lines"), "sketch", WHEEL_PHOTO, ALL, [["lines", "cutout"], ["lines"]]),
    (QueryPolicy(sketch_search="both"), "sketch", WHEEL_PHOTO, ALL, [["lines", "photo", "cutout"], ["lines", "photo"]]),
    # lines asked for on a collection without them: photo
    (QueryPolicy(sketch_search="lines"), "sketch", WHEEL_PHOTO, NO_LINES, [["photo", "cutout"], ["photo"]]),
    (QueryPolicy(sketch_search="both"), "sketch", NOTHING_FOUND, NO_LINES, [["photo"]]),
])
def test_row_views(policy, domain, regs, vectors, expected):
    """Which catalogue vectors each region is searched against."""
    assert P.row_views(policy, domain, regs, vectors) == expected


@pytest.mark.parametrize("policy, regs, expected", [
    (QueryPolicy(), CLOSEUP, [3, 3]),  # a close-up's crop and whole picture are turned
    (QueryPolicy(closeup_rotations=1), CLOSEUP, [1, 1]),
    (QueryPolicy(closeup_rotations=0), CLOSEUP, [0, 0]),
    (QueryPolicy(), WHEEL_PHOTO, [0, 0]),  # a wheel on a car stands upright
    (QueryPolicy(), regions(KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE), [3, 0, 3]),
    (QueryPolicy(), NOTHING_FOUND, [0]),
])
def test_rotated_copies(policy, regs, expected):
    """The embedding plan: rotated copies per region."""
    assert P.rotated_copies(policy, regs) == expected


@pytest.mark.parametrize("flt, k, regs, row_regions, expected_rows, expected_kinds, top_m, limit", [
    # a car photo: the crop against crops, the whole picture against everything; limit max(k, depth)
    (SearchFilter(), 3, WHEEL_PHOTO, [0, 1], [0, 1], [P.CROP_KINDS, ()], 1, 6),
    (SearchFilter(), 10, WHEEL_PHOTO, [0, 1], [0, 1], [P.CROP_KINDS, ()], 1, 10),
    # the caller asks for whole pictures only: the crop is not searched at all
    (SearchFilter(kinds=(KIND_WHOLE_IMAGE,)), 3, WHEEL_PHOTO, [0, 1], [1], [(KIND_WHOLE_IMAGE,)], 1, 6),
    # the caller asks for wheels only: the crop against wheels, the whole picture against wheels too
    (SearchFilter(kinds=(KIND_WHEEL,)), 3, WHEEL_PHOTO, [0, 1], [0, 1], [(KIND_WHEEL,), (KIND_WHEEL,)], 1, 6),
    # a close-up with its rotated copies (rows 2-4 of region 0, 5-7 of region 1): design_top_m points
    (SearchFilter(), 3, CLOSEUP, [0, 1, 0, 0, 0, 1, 1, 1], list(range(8)),
     [P.CROP_KINDS, (), P.CROP_KINDS, P.CROP_KINDS, P.CROP_KINDS, (), (), ()], 5, 6),
])
def test_search_plan(flt, k, regs, row_regions, expected_rows, expected_kinds, top_m, limit):
    """Rows searched, their filters, points per design and limit (photo domain, no cut-outs in the collection)."""
    plan = P.search_plan(QueryPolicy(), "photo", regs, row_regions, flt, k, frozenset({"photo"}))
    assert [s.row for s in plan.searches] == expected_rows
    assert [s.filter.kinds for s in plan.searches] == expected_kinds
    assert all(s.region == row_regions[s.row] for s in plan.searches)
    assert plan.top_m == top_m and all(s.limit == limit for s in plan.searches)
    json.dumps(plan.describe())  # loggable


def hit(point: str, design: str, score: float) -> Hit:
    return Hit(point, score, {"design_id": design})


def test_rank_fuses_regions_and_counts_only_searched_ones():
    """Ranking: best point per design per region, agreement bonus over the searched regions only (a region
    the caller's filter left out is not in n), query_index naming the region."""
    policy = QueryPolicy(fusion_bonus=0.03, fusion_depth=6)
    regs = regions(KIND_WHEEL, KIND_WHEEL, KIND_WHOLE_IMAGE)
    # regions 0 and 2 searched, region 1 not: n = 2, so a design found by both gets the full bonus
    plan = P.SearchPlan((P.Search(0, 0, "photo", 6, SearchFilter()), P.Search(2, 2, "photo", 6, SearchFilter())),
                        1, len(regs), 6)
    found = [[hit("a1", "A", 0.80), hit("b1", "B", 0.82)], [hit("a2", "A", 0.70)]]
    fused, best = P.rank(policy, plan, found)
    assert [m.design_id for m in fused] == ["A", "B"]
    assert fused[0].score == pytest.approx(0.83) and fused[0].query_index == 0 and fused[0].votes == 2
    assert best == {"A": 0.80, "B": 0.82}
    # the whole picture's hit is the best: query_index is the region (2), not the list position (1)
    fused, _ = P.rank(policy, plan, [[hit("a1", "A", 0.6)], [hit("a2", "A", 0.7)]])
    assert fused[0].query_index == 2
    with pytest.raises(ValueError):
        P.rank(policy, plan, found[:1])


@pytest.mark.parametrize("top_m, near_copy, expected", [
    (1, 0.9, [("A", 0.85), ("B", 0.80)]),  # best point per design
    (3, 0.9, [("B", 0.80), ("A", 0.55)]),  # mean of the best 3: one look-alike point weighs less
    (3, 0.8, [("A", 0.85), ("B", 0.80)]),  # A's best point is a near-copy at this threshold: its cosine alone
])
def test_rank_scores_designs_by_their_best_points(top_m, near_copy, expected):
    """design_top_m and the near-copy threshold come from the plan and the policy."""
    policy = QueryPolicy(fusion_bonus=0.0, near_copy_cosine=near_copy)
    plan = P.SearchPlan((P.Search(0, 0, "photo", 6, SearchFilter()),), top_m, 1, 6)
    found = [[hit("a1", "A", 0.85), hit("a2", "A", 0.40), hit("a3", "A", 0.40),
              hit("b1", "B", 0.80), hit("b2", "B", 0.80), hit("b3", "B", 0.80)]]
    fused, _ = P.rank(policy, plan, found)
    assert [(m.design_id, round(m.score, 6)) for m in fused] == expected


def _other_value(field: dataclasses.Field, value):
    """A valid value of a policy field other than ``value``."""
    choices = {"sketch_search": "lines", "closeup_cutouts": "off", "closeup_rotations": 1, "default_k": 5}
    if field.name in choices:
        return choices[field.name]
    return value + 1 if isinstance(value, int) else value * 0.5


def test_both_cache_keys_change_when_any_policy_field_changes():
    """Every policy field is in both keys (through the fingerprint): a rule added to the policy cannot be
    served stale from Redis."""
    base = QueryPolicy()
    args = ("ab" * 32, "learned:sha256:1+pp:2", "sha256:3", "photo")

    def keys(policy):
        return (query_cache_key(*args, policy),
                answer_cache_key("ab" * 32, "learned:sha256:1+pp:2", "sha256:3", "designs_3", "photo", 6,
                                 SearchFilter(), "anonymous", True, policy, 7))

    assert keys(base) == keys(QueryPolicy())  # deterministic
    for f in dataclasses.fields(QueryPolicy):
        changed = base.replace(**{f.name: _other_value(f, getattr(base, f.name))})
        vector_key, answer_key = keys(changed)
        assert vector_key != keys(base)[0], f.name
        assert answer_key != keys(base)[1], f.name


@pytest.mark.parametrize("bad", [
    dict(sketch_search="edges"), dict(closeup_cutouts="all"), dict(closeup_rotations=4), dict(design_top_m=0),
    dict(fusion_depth=0), dict(fusion_bonus=-0.1), dict(default_k=0), dict(default_k=101), dict(answer_ttl_s=-1),
])
def test_policy_refuses_out_of_range_values(bad):
    with pytest.raises(ValueError):
        QueryPolicy(**bad)


def test_policy_from_settings_reads_every_gateway_setting(make_gateway_settings, tmp_path):
    """The gateway's settings build the policy (settings defaults are the policy's)."""
    settings = make_gateway_settings(None, tmp_path, fusion_bonus=0.05, query_closeup_rotations=1,
                                     sketch_search="both", design_top_m=2, answer_ttl_s=30)
    policy = QueryPolicy.from_settings(settings)
    assert (policy.fusion_bonus, policy.closeup_rotations, policy.sketch_search, policy.design_top_m,
            policy.answer_ttl_s) == (0.05, 1, "both", 2, 30)
    assert QueryPolicy.from_settings(make_gateway_settings(None, tmp_path / "d")) == QueryPolicy()


def _answer() -> QueryResult:
    m = MatchResult("d1", "Brand", "Model", 2020, 0.9, (0, 0, 5, 5), "img", (1, 1, 4, 4), b"\x89PNG", "src", 0.88)
    return QueryResult([m], regions(KIND_WHEEL, KIND_WHOLE_IMAGE), "photo", False, "sha256:3", "ab" * 32)


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b"{}", json.dumps({"format": P.CACHE_FORMAT - 1, "matches": []}).encode(),
    json.dumps({"format": P.CACHE_FORMAT, "matches": [{"design_id": "x"}], "crops": []}).encode(),
])
def test_a_corrupt_or_foreign_answer_entry_is_a_miss(raw):
    assert answer_loads(raw) is None


def test_an_answer_entry_round_trips():
    back = answer_loads(answer_dumps(_answer()))
    assert back is not None and back.matches == _answer().matches and back.cache_hit


def _vector_entry(**changes) -> bytes:
    entry = CachedQuery([{"box": [0, 0, 5, 5], "kind": KIND_WHEEL, "score": 0.9},
                         {"box": [0, 0, 9, 9], "kind": KIND_WHOLE_IMAGE, "score": 0.0}],
                        np.eye(3, 8, dtype=np.float32), "sketch", [0])
    d = json.loads(entry.dumps())
    d.update(changes)
    return json.dumps(d).encode()


@pytest.mark.parametrize("raw", [
    b"\xff\xfe", b"null", _vector_entry(format=P.CACHE_FORMAT - 1), _vector_entry(vectors="!!"),
    _vector_entry(shape=[2, 8]),  # rows neither one per region and copy
    _vector_entry(rotated_of=[5]), _vector_entry(domain="lines"), _vector_entry(crops=[]),
])
def test_a_corrupt_or_foreign_vector_entry_is_a_miss(raw):
    assert CachedQuery.loads(raw) is None


def test_a_vector_entry_keeps_its_domain():
    back = CachedQuery.loads(_vector_entry())
    assert back is not None and back.domain == "sketch" and back.rotated_of == [0] and back.vectors.shape == (3, 8)
