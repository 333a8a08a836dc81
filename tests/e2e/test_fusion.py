"""Query fusion (issue 9) end to end: whole-picture points at ingestion and FindSimilar on real Stanford Cars
images (real services, real Redis). The fusion rule itself on hand-built hits: tests/unit/test_fusion_rules.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest_asyncio

from designsearch.images import decode_image, encode_jpeg, encode_png, read_image
from designsearch.v1 import common_pb2, gateway_pb2
from designsearch.gateway.core import point_id
from designsearch.domain import SearchFilter
from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE


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
    flt = SearchFilter(kinds=(KIND_WHEEL, KIND_CLOSEUP))
    for hits in await core.backends.search_designs_many(core.collection, [(e["photo"], "photo", k, flt) for e in embedded]):
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


async def test_sketch_query_fuses_its_crops_and_whole_drawing(indexed, gateway_stub):
    """Line drawings of catalogue cars are searched as crops + whole drawing (against the catalogue vectors
    of the policy's sketch_search: photo by default) and fused the same way: every match's query box is one of
    the drawing's regions, and most find their own design first."""
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
