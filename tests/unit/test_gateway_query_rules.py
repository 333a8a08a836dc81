"""The gateway's query and ingestion rules with in-memory backends (tests/unit/memory_backends.py), a real
Redis and a real catalogue on SQLite and on PostgreSQL: catalogue-side flip augmentation, close-up
rotations, sketch search views, catalogue cut-outs. Real images from ../shared/data.
"""

from __future__ import annotations

import numpy as np
import pytest

from designsearch.domain import KIND_WHEEL, KIND_WHOLE_IMAGE, SearchFilter
from designsearch.gateway.cache import QueryCache
from designsearch.gateway.catalogue import Catalogue
from designsearch.gateway.core import GatewayCore, IndexItem
from tests.unit.memory_backends import DIM, MemoryBackends


async def test_ingestion_mirrors_the_whole_picture_only_and_queries_never(core, images):
    """Catalogue-side flip augmentation: at ingestion the whole-picture region (last) is embedded
    flip-averaged and the crops are not; a query's vectors are never mirrored; the setting turns it off."""
    catalogue, queries = images
    img = catalogue[0]
    flags = core.backends.mirror_flags
    await core.ingest.index_stream([IndexItem(img.design_id, img.brand, img.model, img.year, img.path.read_bytes())])
    # one crop (the in-memory segmenter's), then the whole picture; the crop's cut-out in a call of its own
    assert flags == [[False, True], []]
    await core.find_similar(queries[0].path.read_bytes(), 3, SearchFilter())
    assert len(flags) == 3 and not any(flags[2])
    core.ingest.mirror_whole_picture = False
    img = catalogue[1]
    await core.ingest.index_stream([IndexItem(img.design_id, img.brand, img.model, img.year, img.path.read_bytes())])
    assert flags[3] == [False, False]


async def test_closeup_queries_search_rotated_copies_and_cache_them(core, images):
    """A query the segmenter calls a close-up embeds 3 rotated copies of its close-up crop and of its
    whole picture (other queries none); the cached vectors keep the copies, so a cache hit searches the
    same rows; the setting at 0 turns it off."""
    from designsearch.domain import KIND_CLOSEUP

    catalogue, queries = images
    backends = core.backends
    await core.ingest.index_stream([IndexItem(i.design_id, i.brand, i.model, i.year, i.path.read_bytes())
                                    for i in catalogue[:3]])
    backends.segment_kind = KIND_CLOSEUP
    image = queries[0].path.read_bytes()
    first = await core.find_similar(image, 3, SearchFilter(), use_cache=False)
    assert backends.rotation_counts[-1] == [3, 3]  # the close-up crop and the whole picture
    q = await core.query.embed_query(image)  # from the vector cache now
    assert q.cache_hit and q.vectors.shape[0] == 2 + 6 and q.rotated_of == [0, 0, 0, 1, 1, 1]
    assert q.row_regions == [0, 1, 0, 0, 0, 1, 1, 1]
    again = await core.find_similar(image, 3, SearchFilter(), use_cache=False)
    assert [m.design_id for m in again.matches] == [m.design_id for m in first.matches]
    backends.segment_kind = KIND_WHEEL
    await core.find_similar(queries[1].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert not any(backends.rotation_counts[-1])  # a wheel on a car: no copies
    core.query.policy = core.query.policy.replace(closeup_rotations=0)
    backends.segment_kind = KIND_CLOSEUP
    await core.find_similar(queries[2].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert not any(backends.rotation_counts[-1])


async def test_sketch_queries_search_the_catalogue_vectors_the_setting_names(tmp_path, make_gateway_settings,
                                                                            catalogue_url, images):
    """A sketch query searches the catalogue's photo vectors by default, its lines vectors or both (one list
    per region after merging) when set so and the collection holds lines vectors (``ingest_lines_view`` at its
    creation), else its photo vectors — its wheel crop also the catalogue's cut-outs, five points per design;
    a photo query always its photo vectors, one point per design; bad modes are refused."""
    from designsearch.gateway.plan import QueryPolicy

    catalogue, queries = images
    image = queries[0].path.read_bytes()
    for lines_view in (True, False):
        backends = MemoryBackends()
        settings = make_gateway_settings(None, tmp_path / str(lines_view), alias_refresh_s=0.0,
                                         catalogue_url=catalogue_url, ingest_lines_view=lines_view)
        core = GatewayCore(backends, QueryCache(settings.redis_url, 60), Catalogue(settings.catalogue_url), settings)
        await core.start()
        try:
            await core.ingest.index_stream([IndexItem(i.design_id, i.brand, i.model, i.year, i.path.read_bytes())
                                            for i in catalogue[:3]])
            indexed = {name for p in backends.points(core.live.collection) for name in p.vectors}
            assert ("lines" in indexed) == lines_view
            views = backends.searched_views
            # the (wheel) crop, then the whole picture
            for mode, expected in (("photo", ["photo", "cutout", "photo"]), ("lines", ["lines", "cutout", "lines"]),
                                   ("both", ["lines", "photo", "cutout", "lines", "photo"])):
                core.query.policy = core.query.policy.replace(sketch_search=mode)
                sketch = await core.find_similar(image, 3, SearchFilter(), domain="sketch", use_cache=False)
                assert views[-1] == (expected if lines_view else ["photo", "cutout", "photo"]), mode
                assert backends.per_design[-1] == core.query.policy.design_top_m
                assert sketch.domain == "sketch" and len({m.design_id for m in sketch.matches}) == len(sketch.matches)
                await core.find_similar(image, 3, SearchFilter(), domain="photo", use_cache=False)
                assert views[-1] == ["photo", "photo"] and backends.per_design[-1] == 1
        finally:
            await core.close()
    with pytest.raises(ValueError):
        QueryPolicy(sketch_search="edges")


async def test_catalogue_crops_get_a_cutout_vector_that_closeup_queries_search(core, images):
    """Ingestion embeds each crop's cut-out on white (photo view, a call of its own) as the crop point's
    ``cutout`` vector, never one for the whole picture; a close-up query searches it with its close-up crops
    (each rotated copy too), a car-photo query never; neither happens on a collection without the vector."""
    from designsearch.domain import KIND_CLOSEUP, VIEW_CUTOUT

    catalogue, queries = images
    backends = core.backends
    items = [IndexItem(i.design_id, i.brand, i.model, i.year, i.path.read_bytes()) for i in catalogue[:4]]
    await core.ingest.index_stream(items[:3])
    assert backends.embed_views == [["photo"]] * 6  # regions (no lines vector by default), then cut-outs, per image
    points = backends.points(core.live.collection)
    assert len(points) == 6
    for p in points:
        assert (VIEW_CUTOUT in p.vectors) == (p.payload["kind"] != KIND_WHOLE_IMAGE)
        if VIEW_CUTOUT in p.vectors:  # the cut-out is another picture than the crop
            assert not np.allclose(p.vectors[VIEW_CUTOUT], p.vectors["photo"])
    views = backends.searched_views
    backends.segment_kind = KIND_CLOSEUP
    await core.find_similar(queries[0].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    # rows: the crop, the whole picture, 3 turned copies of each; crops search photo and cutout
    assert views[-1] == ["photo", "cutout", "photo"] + ["photo", "cutout"] * 3 + ["photo"] * 3
    core.query.policy = core.query.policy.replace(closeup_cutouts="crops_whole")
    await core.find_similar(queries[0].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert views[-1] == ["photo", "cutout"] * 8
    backends.segment_kind = KIND_WHEEL
    await core.find_similar(queries[1].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert views[-1] == ["photo", "photo"]
    # a collection made before the cutout vector existed (photo vectors only): none computed, none searched
    backends.search.delete_collection(core.live.collection)
    backends.search.create_collection(core.live.collection, {"photo": DIM})
    core.live.forget(core.live.collection)
    backends.embed_views.clear()
    await core.ingest.index_stream(items[3:])
    assert backends.embed_views == [["photo"]]
    backends.segment_kind = KIND_CLOSEUP
    await core.find_similar(queries[2].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert VIEW_CUTOUT not in views[-1]


async def test_closeup_queries_score_designs_by_their_best_points(core, images):
    """A close-up query asks each search for design_top_m points per design and scores a design by their mean;
    a car photo asks for one (its best point), as does design_top_m = 1; an exact copy of a catalogue picture
    keeps its cosine (1) whatever the rule."""
    from designsearch.domain import KIND_CLOSEUP

    catalogue, queries = images
    backends = core.backends
    await core.ingest.index_stream([IndexItem(i.design_id, i.brand, i.model, i.year, i.path.read_bytes())
                                    for i in catalogue[:4]])
    backends.segment_kind = KIND_CLOSEUP
    copy = await core.find_similar(catalogue[0].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert backends.per_design[-1] == core.query.policy.design_top_m == 5
    assert copy.matches[0].design_id == catalogue[0].design_id and copy.matches[0].cosine == pytest.approx(1.0)
    assert copy.matches[0].score >= 1.0  # a near-copy scores its own cosine (plus the agreement bonus)
    # (the mean-of-best-points score itself: tests/unit/test_query_plan.py::test_rank_scores_designs_by_their_best_points)
    backends.segment_kind = KIND_WHEEL
    await core.find_similar(queries[1].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert backends.per_design[-1] == 1
    core.query.policy = core.query.policy.replace(design_top_m=1)
    backends.segment_kind = KIND_CLOSEUP
    await core.find_similar(queries[2].path.read_bytes(), 3, SearchFilter(), use_cache=False)
    assert backends.per_design[-1] == 1
