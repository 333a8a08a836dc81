"""Query fusion (issue 9): the fusion rule on hand-built hits, whole-picture points at ingestion,
and FindSimilar end to end on real Stanford Cars images (real services, real Redis)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import pytest_asyncio

from designsearch.images import decode_image, encode_jpeg, encode_png, read_image
from designsearch.v1 import common_pb2, gateway_pb2
from designsearch.gateway.core import point_id
from designsearch.gateway.fusion import fuse_max_agreement
from designsearch.domain import Hit, SearchFilter
from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE


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
    assert a.score == pytest.approx(0.83) and a.cosine == pytest.approx(0.80) and a.votes == 3
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
    assert by_id["a"].votes == 3 and by_id["a"].cosine == pytest.approx(0.7)
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
        fuse_max_agreement([[_hit("a", 0.5)]], depth=0)


def test_crop_queries_search_catalogue_crops_only():
    from designsearch.gateway.core import crop_filter

    assert crop_filter(SearchFilter()).kinds == (KIND_WHEEL, KIND_CLOSEUP)
    f = crop_filter(SearchFilter(brands=("Dodge",), year_min=2000, kinds=(KIND_CLOSEUP, KIND_WHOLE_IMAGE),
                                 exclude_design_ids=("x",)))
    assert (f.brands, f.year_min, f.kinds, f.exclude_design_ids) == (("Dodge",), 2000, (KIND_CLOSEUP,), ("x",))
    assert crop_filter(SearchFilter(kinds=(KIND_WHOLE_IMAGE,))) is None


def test_whole_picture_is_the_last_region_and_is_bounded():
    from designsearch.gateway.ports import QueryCrop
    from designsearch.gateway.core import WHOLE_PICTURE_MAX_SIDE, query_regions, whole_picture_bytes

    small = np.full((300, 500, 3), 127, np.uint8)
    data = encode_jpeg(small)
    crop = QueryCrop((10, 10, 60, 60), KIND_WHEEL, 0.9, b"jpeg")
    regions = query_regions([crop], data, small)
    assert [r.kind for r in regions] == [KIND_WHEEL, KIND_WHOLE_IMAGE]
    assert regions[1].box == (0, 0, 500, 300) and regions[1].image == data  # small: sent as it came
    assert [r.kind for r in query_regions([], data, small)] == [KIND_WHOLE_IMAGE]  # no duplicate
    big = np.zeros((1500, 3000, 3), np.uint8)
    shrunk = decode_image(whole_picture_bytes(encode_jpeg(big), big))
    assert shrunk.shape == (512, WHOLE_PICTURE_MAX_SIDE, 3)


# ------------------------------------------------------------------------------------ ingestion
async def test_every_catalogue_image_gets_one_whole_picture_point(indexed, stack):
    """Points of an image: its crops (ids 0..n-1), then its whole picture (id n), each with a
    catalogue row; only the whole picture when the segmenter found nothing."""
    catalogue, _, response = indexed
    core = stack["gateway"].core
    version = core.embedder_version
    for img, result in zip(catalogue, response.results):
        seg = await core.backends.segment(img.path.read_bytes(), core.query.policy.max_crops)
        n_crops = len(seg.crops)
        assert result.crops_indexed == n_crops + 1, img.path.name
        ids = [point_id(result.image_id, i, version) for i in range(result.crops_indexed)]
        rows = core.catalogue.crops(ids)
        assert set(rows) == set(ids), "a point without its catalogue row"
        assert [rows[i].kind for i in ids] == [c.kind for c in seg.crops] + [KIND_WHOLE_IMAGE]
        assert rows[ids[-1]].box == (0, 0, seg.width, seg.height)
        assert all(r.thumbnail[:2] == b"\xff\xd8" for r in rows.values())
        assert core.catalogue.indexed_points(result.image_id, version) == result.crops_indexed


async def test_catalogue_whole_pictures_are_flip_averaged_and_crops_are_not(indexed, stack):
    """Catalogue-side flip augmentation through the real services: the stored whole-picture vector
    (photo) of an ingested image is the embedder's flip-averaged vectors of that picture, the
    same as its mirror image's; its crop vectors are the plain ones."""
    catalogue, _, response = indexed
    core = stack["gateway"].core
    version = core.embedder_version
    img, result = catalogue[0], response.results[0]
    data = img.path.read_bytes()
    ids = [point_id(result.image_id, i, version) for i in range(result.crops_indexed)]
    stored = {p.id: p.vectors for p in await core.backends.get_points(core.collection, ids)}
    whole = stored[ids[-1]]
    mirror = encode_png(np.ascontiguousarray(decode_image(data)[:, ::-1]))
    (flip, plain, mirror_flip), _ = await core.backends.embed([data, data, mirror], ["photo"], version,
                                                              [True, False, True])
    assert "lines" not in whole  # catalogue lines vectors are off by default (ingest_lines_view)
    for view in ("photo",):
        assert float(whole[view] @ flip[view]) > 0.999, view
        assert float(whole[view] @ mirror_flip[view]) > 0.99, view  # a car facing the other way: the same vector
        assert float(whole[view] @ plain[view]) < 0.995, view  # not the plain vector
    if result.crops_indexed > 1:
        seg = await core.backends.segment(data, core.query.policy.max_crops)
        (crop,), _ = await core.backends.embed([seg.crops[0].image], ["photo"], version)
        assert float(stored[ids[0]]["photo"] @ crop["photo"]) > 0.999


# ------------------------------------------------------------------------------ end to end
def _paste(rgb: np.ndarray, box: tuple[int, int, int, int], patch: np.ndarray) -> bytes:
    x1, y1, x2, y2 = box
    out = rgb.copy()
    out[y1:y2, x1:x2] = cv2.resize(patch, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    return encode_jpeg(out, quality=92)


async def _old_rule(core, image: bytes, k: int = 5) -> list[tuple[str, float]]:
    """The pre-fusion ranking: each segmenter crop searched against catalogue crops, best cosine per design."""
    seg = await core.backends.segment(image, core.query.policy.max_crops)
    if not seg.crops:
        return []
    embedded, _ = await core.backends.embed([c.image for c in seg.crops], ["photo"], core.embedder_version)
    best: dict[str, float] = {}
    for e in embedded:
        hits = await core.backends.search_designs(core.collection, e["photo"], "photo", k,
                                                  SearchFilter(kinds=(KIND_WHEEL, KIND_CLOSEUP)))
        for h in hits:
            best[h.payload["design_id"]] = max(best.get(h.payload["design_id"], -2.0), h.score)
    return sorted(best.items(), key=lambda t: -t[1])


async def _find(stub, image: bytes, k: int = 5, domain=common_pb2.DOMAIN_PHOTO) -> gateway_pb2.FindSimilarResponse:
    return await stub.FindSimilar(gateway_pb2.FindSimilarRequest(
        image=common_pb2.Image(content=image), k=k, domain=domain, no_cache=True), timeout=30)


async def test_fusion_keeps_the_right_design_first_when_the_best_crop_is_wrong(indexed, gateway_stub, stack):
    """Catalogue photos of design A in which the segmenter finds exactly one wheel get that wheel
    replaced by the catalogue wheel crop of another design B. The only crop now shows B's wheel;
    the whole picture still shows A's car. The old rule (max over crop vectors) ranks a wrong
    design first on several of these queries (checked here, so the test keeps its point when the
    models change); fusion (crops + whole picture) must keep A first on all of them but at most one
    in twenty, rounded down (none of the 12 pasted queries the demo catalogue gives today), with the
    whole picture as A's matched query box. (The miss a larger construction would allow, seen with
    an earlier catalogue: where the segmenter's box takes in the dark road beside a wheel — 00814.jpg,
    a 217x132 photo — the pasted wheel covers an eighth of the picture and the whole-picture vector
    no longer matches A.)"""
    catalogue, _, _ = indexed
    core = stack["gateway"].core
    segs = {img.path: await core.backends.segment(img.path.read_bytes(), core.query.policy.max_crops) for img in catalogue}
    wheel_of: dict[str, np.ndarray] = {}
    for img in catalogue:
        if img.design_id not in wheel_of and segs[img.path].crops:
            wheel_of[img.design_id] = segs[img.path].crops[0].pixels()
    singles = [img for img in catalogue if len(segs[img.path].crops) == 1]
    assert singles, "the construction needs catalogue photos with exactly one detected wheel"
    cases = []
    for a in singles:
        rgb = read_image(str(a.path))
        box = segs[a.path].crops[0].box
        for b, wheel in sorted(wheel_of.items()):
            if b == a.design_id:
                continue
            query = _paste(rgb, box, wheel)
            old = await _old_rule(core, query)
            r = await _find(gateway_stub, query)
            cases.append((a, b, old, r))
    old_wrong = [(a.path.name, b, old[:2]) for a, b, old, _ in cases if not old or old[0][0] != a.design_id]
    print(f"old rule wrong on {len(old_wrong)} of {len(cases)} pasted queries: {old_wrong}")
    assert old_wrong, "the construction no longer defeats the old per-crop max rule"
    sunk = [(a.path.name, "pasted", b, "old", old[:2],
             "new", [(m.design.design_id, round(m.score, 3)) for m in r.matches[:3]])
            for a, b, old, r in cases if r.matches[0].design.design_id != a.design_id]
    assert len(sunk) <= len(cases) // 20, f"{len(sunk)} of {len(cases)} pasted queries lost their design: {sunk}"
    assert len(sunk) < len(old_wrong)
    for a, b, _, r in cases:
        if r.matches[0].design.design_id != a.design_id:
            continue
        top = r.matches[0]
        assert r.query_crops[-1].kind == common_pb2.CROP_KIND_WHOLE_IMAGE
        whole = r.query_crops[-1].box
        assert (top.query_box.x1, top.query_box.y1, top.query_box.x2, top.query_box.y2) == \
            (whole.x1, whole.y1, whole.x2, whole.y2), (a.path.name, b)


def _rotate(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """``rgb`` turned counter-clockwise about its centre; same size, corners filled by edge replication."""
    if degrees == 90:
        return np.ascontiguousarray(np.rot90(rgb))
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


ROTATIONS = (90, 37)


@pytest_asyncio.fixture(scope="module")
async def rotated_ranks(indexed, gateway_stub, stack):
    """For each catalogue image with a wheel crop, its first crop (the pixels the catalogue indexed)
    turned by each of ROTATIONS and sent to FindSimilar: ``[(file, design, degrees, rank or None, top-3)]``.
    (00814.jpg, 217x132 px and dark, has a borderline crop: score 0.811 with the float32 segmenter,
    just under the 0.8 floor with the served INT8 one.)"""
    catalogue, _, _ = indexed
    core = stack["gateway"].core
    out = []
    with_crop = 0
    for img in catalogue:
        seg = await core.backends.segment(img.path.read_bytes(), core.query.policy.max_crops)
        if not seg.crops:
            continue
        with_crop += 1
        wheel = seg.crops[0].pixels()
        for degrees in ROTATIONS:
            r = await _find(gateway_stub, encode_jpeg(_rotate(wheel, degrees), quality=92))
            ids = [m.design.design_id for m in r.matches]
            rank = ids.index(img.design_id) + 1 if img.design_id in ids else None
            out.append((img.path.name, img.design_id, degrees, rank,
                        [(m.design.design_id, round(m.score, 3)) for m in r.matches[:3]]))
    assert with_crop >= 0.9 * len(catalogue), f"wheel crops in {with_crop} of {len(catalogue)} catalogue images"
    return out


async def test_rotated_copy_of_a_catalogue_wheel_finds_its_design_first(rotated_ranks):
    """Issue 9: a catalogue wheel turned by 90° or 37° finds its own design first through FindSimilar
    (48 of 48 with the served `ce-b12` INT8 embedder; it was an expected failure with `ce-b8`, 49 of 50:
    00768.jpg at 37° ranked 3)."""
    misses = [r for r in rotated_ranks if r[3] != 1]
    print(f"rotated catalogue wheels first: {len(rotated_ranks) - len(misses)}/{len(rotated_ranks)}; misses: {misses}")
    assert not misses


async def test_rotated_catalogue_wheels_stay_near_the_top(rotated_ranks):
    """The looser guard kept from before the test above passed: at least 80 % first and every one in the
    top 3."""
    firsts = sum(r[3] == 1 for r in rotated_ranks)
    assert firsts / len(rotated_ranks) >= 0.8, f"{firsts}/{len(rotated_ranks)} first"
    assert all(r[3] is not None and r[3] <= 3 for r in rotated_ranks), [r for r in rotated_ranks if not r[3] or r[3] > 3]


async def test_cached_query_keeps_the_whole_picture_vector(indexed, gateway_stub):
    """The cache entry holds every query vector, the whole picture's included: a cache hit gives
    the same regions, matches, scores and matched boxes as the computed answer."""
    _, queries, _ = indexed
    req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=queries[2].path.read_bytes()), k=5)
    first = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(
        image=req.image, k=5, no_cache=True), timeout=30)
    second = await gateway_stub.FindSimilar(req, timeout=30)
    assert second.cache_hit and not first.cache_hit
    assert [c.kind for c in second.query_crops] == [c.kind for c in first.query_crops]
    assert second.query_crops[-1].kind == common_pb2.CROP_KIND_WHOLE_IMAGE
    assert [(m.design.design_id, round(m.score, 5), m.query_box.x2) for m in second.matches] == \
        [(m.design.design_id, round(m.score, 5), m.query_box.x2) for m in first.matches]


async def test_sketch_query_fuses_its_crops_and_whole_drawing_against_edge_vectors(indexed, gateway_stub):
    """Line drawings of catalogue cars are searched as crops + whole drawing against the catalogue's
    edge vectors (including the whole-picture edge vectors) and fused the same way."""
    from designsearch.images import edge_map, encode_png

    catalogue, _, _ = indexed
    firsts = 0
    for img in catalogue[::3]:
        sketch = encode_png(edge_map(read_image(str(img.path)), size=448))
        r = await gateway_stub.FindSimilar(gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=sketch), k=5),
                                           timeout=30)
        assert r.domain == common_pb2.DOMAIN_SKETCH
        assert r.query_crops[-1].kind == common_pb2.CROP_KIND_WHOLE_IMAGE
        boxes = {(c.box.x1, c.box.y1, c.box.x2, c.box.y2) for c in r.query_crops}
        assert all((m.query_box.x1, m.query_box.y1, m.query_box.x2, m.query_box.y2) in boxes for m in r.matches)
        firsts += r.matches[0].design.design_id == img.design_id
    n = len(catalogue[::3])
    print(f"sketch top-1 over {n} catalogue cars: {firsts}")
    assert firsts / n >= 0.5, f"{firsts}/{n}"


@pytest_asyncio.fixture(scope="module")
async def rendering_ranks(indexed, gateway_stub, stack):
    """Each catalogue wheel drawn as a designer's rendering on white and as a close-up (seeded,
    ``training/designer_pictures.py``) and sent to FindSimilar with the served rule (close-up crops also
    against the catalogue's cut-outs) and with it off: ``{rule: [(file, style, rank or None)]}``."""
    from designsearch.services.segmenter.config import SegmenterSettings
    from designsearch.services.segmenter.core import load_detector
    from designsearch.training.designer_pictures import draw, wheel_cutout

    catalogue, _, _ = indexed
    core = stack["gateway"].core
    detector = load_detector("learned", SegmenterSettings().model_path)  # the served segmenter's model
    rng = np.random.default_rng(0)
    pictures = []
    for img in catalogue:
        cut = wheel_cutout(read_image(str(img.path)), detector, img.path.name)
        if cut is not None:
            pictures += [(img, style, draw(cut, style, rng)) for style in ("rendering", "closeup")]
    out = {}
    served = core.query.policy.closeup_cutouts
    try:
        for rule in (served, "off"):
            core.query.policy = core.query.policy.replace(closeup_cutouts=rule)
            ranks = []
            for img, style, data in pictures:
                r = await _find(gateway_stub, data, domain=common_pb2.DOMAIN_UNSPECIFIED)
                ids = [m.design.design_id for m in r.matches]
                ranks.append((img.path.name, style, ids.index(img.design_id) + 1 if img.design_id in ids else None))
            out[rule] = ranks
    finally:
        core.query.policy = core.query.policy.replace(closeup_cutouts=served)
    return out


async def test_renderings_of_catalogue_wheels_find_their_design_through_the_cutouts(rendering_ranks):
    """A catalogue wheel drawn as a rendering on white or a close-up is found through the catalogue's
    cut-outs: first for most of them, and more often than with the cut-outs not searched."""
    served, off = rendering_ranks["crops"], rendering_ranks["off"]
    first = {rule: sum(r[2] == 1 for r in ranks) for rule, ranks in rendering_ranks.items()}
    print(f"renderings/close-ups of catalogue wheels first: {first} of {len(served)}; "
          f"served misses {[r for r in served if r[2] != 1]}")
    assert len(served) >= 20
    assert first["crops"] >= 0.8 * len(served)
    assert first["crops"] > first["off"]


@pytest_asyncio.fixture(scope="module")
async def line_drawing_ranks(indexed, gateway_stub):
    """Each catalogue wheel drawn as a designer's LINE DRAWING (``training/designer_pictures.py``, seeded) and sent
    to FindSimilar as served (domain detected): ``[(file, detected domain, rank or None)]`` (issue 31)."""
    from designsearch.services.segmenter.config import SegmenterSettings
    from designsearch.services.segmenter.core import load_detector
    from designsearch.training.designer_pictures import draw, wheel_cutout

    catalogue, _, _ = indexed
    detector = load_detector("learned", SegmenterSettings().model_path)
    rng = np.random.default_rng(1)
    ranks = []
    for img in catalogue:
        cut = wheel_cutout(read_image(str(img.path)), detector, img.path.name)
        if cut is None:
            continue
        r = await _find(gateway_stub, draw(cut, "line_drawing", rng), domain=common_pb2.DOMAIN_UNSPECIFIED)
        ids = [m.design.design_id for m in r.matches]
        ranks.append((img.path.name, r.domain, ids.index(img.design_id) + 1 if img.design_id in ids else None))
    return ranks


async def test_line_drawing_of_a_catalogue_wheel_finds_its_design_first(line_drawing_ranks):
    """A line drawing of a catalogue wheel (its cut-out, drawn) is detected as a sketch and finds its design
    first for at least half of them, far above chance (1 in 5 designs; the served embedder: 10 of 16)."""
    ranks = line_drawing_ranks
    first = sum(r[2] == 1 for r in ranks)
    print(f"line drawings of catalogue wheels first: {first} of {len(ranks)}; misses {[r for r in ranks if r[2] != 1]}")
    assert len(ranks) >= 12  # catalogue images with a usable wheel cut-out (16 of 25)
    assert sum(r[1] == common_pb2.DOMAIN_SKETCH for r in ranks) >= 0.9 * len(ranks)
    assert first >= 0.5 * len(ranks)
