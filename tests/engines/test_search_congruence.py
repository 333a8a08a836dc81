"""Congruence tests: the same operations on EdgeIndex and QdrantIndex (local mode) agree.

Both engines run exact search here (Edge with ``exact=True``; qdrant-client local mode is always
brute force), so top-k ids must agree and cosine scores match within 1e-4. The data are ~2000
clustered 64-d "photo" vectors (and 32-d "lines" vectors on two thirds of the points) with the
catalogue payload (design_id, brand, model, year, kind, model_version).
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from designsearch.errors import InvalidArgument, NotFound
from designsearch.services.search.engines.edge import EdgeIndex
from designsearch.services.search.index import HnswConfig, Point, SearchFilter
from designsearch.services.search.engines.qdrant import QdrantIndex

DIMS = {"photo": 64, "lines": 32}
N = 2000
BRANDS = ("audi", "bmw", "fiat", "kia", "mazda", "opel", "seat", "tesla")
KINDS = ("wheel", "hubcap")


def make_points(n: int = N, seed: int = 0) -> list[Point]:
    """Clustered unit vectors: 40 centres, 5 designs per centre, noise 0.35/sqrt(D) per axis."""
    rng = np.random.default_rng(seed)
    centres = {k: rng.normal(size=(40, d)).astype(np.float32) for k, d in DIMS.items()}
    points = []
    for i in range(n):
        c = int(rng.integers(40))
        vectors = {}
        for name, d in DIMS.items():
            if name == "lines" and i % 3 == 0:
                continue  # not every point has an edge-map vector
            v = centres[name][c] / np.linalg.norm(centres[name][c]) + rng.normal(scale=0.35 / np.sqrt(d), size=d)
            vectors[name] = v.astype(np.float32)
        points.append(
            Point(
                id=str(uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | i)),
                vectors=vectors,
                payload={
                    "design_id": f"design-{c:03d}-{i % 5}",
                    "brand": BRANDS[c % len(BRANDS)],
                    "model": f"model-{c}",
                    "year": 1995 + (i * 7) % 30,
                    "kind": KINDS[i % 7 == 0],
                    "model_version": "test-v1",
                },
            )
        )
    return points


FILTERS = {
    "none": None,
    "empty": SearchFilter(),
    "brands": SearchFilter(brands=("audi", "kia")),
    "year_range": SearchFilter(year_min=2000, year_max=2010),
    "year_min_only": SearchFilter(year_min=2015),
    "kinds": SearchFilter(kinds=("hubcap",)),
    "exclude": SearchFilter(exclude_design_ids=("design-001-0", "design-001-1", "design-002-3")),
    "only_designs": SearchFilter(design_ids=("design-001-0", "design-001-1", "design-002-3")),
    "combined": SearchFilter(brands=("bmw", "fiat", "opel"), year_min=2001, kinds=("wheel",)),
    "nothing": SearchFilter(brands=("no-such-brand",)),
}


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return make_points()


@pytest.fixture(scope="module")
def engines(tmp_path_factory, points):
    """(edge, qdrant) with the same collection 'cat' loaded; Edge searched exactly."""
    edge = EdgeIndex(tmp_path_factory.mktemp("edge"), exact=True, auto_index=False)
    qdr = QdrantIndex(":memory:")
    for ix in (edge, qdr):
        assert ix.create_collection("cat", DIMS, HnswConfig(ef=256)) is True
        assert ix.create_collection("cat", DIMS) is False
        ix.upsert("cat", points)
    yield edge, qdr
    edge.close()
    qdr.close()


def assert_same_hits(a, b, tol: float = 1e-4) -> None:
    """Same length, scores equal within ``tol`` rank by rank, ids equal except among near-ties."""
    assert len(a) == len(b)
    sa = np.array([h.score for h in a])
    sb = np.array([h.score for h in b])
    np.testing.assert_allclose(sa, sb, atol=tol)
    for i, (ha, hb) in enumerate(zip(a, b)):
        if ha.id != hb.id:  # allowed only if the two scores tie within tolerance
            near = {h.id for h in b if abs(h.score - ha.score) <= tol}
            assert ha.id in near or abs(ha.score - sb[-1]) <= tol, (i, ha, hb)
    strict = {h.id for h in a if h.score > sa[-1] + tol}
    assert strict <= {h.id for h in b}
    for ha in a:
        match = next((hb for hb in b if hb.id == ha.id), None)
        if match is not None:
            assert match.payload == ha.payload


def test_counts_agree(engines, points):
    edge, qdr = engines
    for name, flt in FILTERS.items():
        c1, c2 = edge.count("cat", flt), qdr.count("cat", flt)
        assert c1 == c2, name
    assert edge.count("cat") == N
    expected = sum(1 for p in points if p.payload["brand"] in ("audi", "kia"))
    assert edge.count("cat", FILTERS["brands"]) == expected


@pytest.mark.parametrize("flt_name", list(FILTERS))
@pytest.mark.parametrize("using", ["photo", "lines"])
def test_search_agrees(engines, points, flt_name, using):
    edge, qdr = engines
    rng = np.random.default_rng(hash((flt_name, using)) % 2**32)
    for _ in range(5):
        q = points[int(rng.integers(N))].vectors.get("photo" if using == "photo" else "lines")
        if q is None:
            q = rng.normal(size=DIMS[using]).astype(np.float32)
        q = q + rng.normal(scale=0.02, size=q.shape).astype(np.float32)
        h1 = edge.search("cat", q, using=using, limit=10, flt=FILTERS[flt_name])
        h2 = qdr.search("cat", q, using=using, limit=10, flt=FILTERS[flt_name])
        assert_same_hits(h1, h2)
        flt = FILTERS[flt_name]
        if flt_name == "nothing":
            assert h1 == []
        elif flt is not None and not flt.is_empty():
            for h in h1:
                p = h.payload
                assert not flt.brands or p["brand"] in flt.brands
                assert not flt.kinds or p["kind"] in flt.kinds
                assert flt.year_min is None or p["year"] >= flt.year_min
                assert flt.year_max is None or p["year"] <= flt.year_max
                assert p["design_id"] not in flt.exclude_design_ids


def test_scores_are_cosine(engines, points):
    edge, _ = engines
    mat = np.stack([p.vectors["photo"] for p in points])
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    q = points[17].vectors["photo"]
    exact = mat @ (q / np.linalg.norm(q))
    order = np.argsort(-exact)[:10]
    hits = edge.search("cat", q, using="photo", limit=10)
    assert [h.id for h in hits] == [points[i].id for i in order]
    np.testing.assert_allclose([h.score for h in hits], exact[order], atol=1e-4)


@pytest.mark.parametrize("group_size", [1, 3])
@pytest.mark.parametrize("flt_name,limit,groups", [("none", 6, 6), ("brands", 6, 6), ("exclude", 6, 6),
                                                   # fewer designs than the limit: every design, each with its best hits
                                                   ("only_designs", 6, 3), ("brands", 60, 50), ("none", 300, 200)])
def test_search_groups_agree(engines, points, group_size, flt_name, limit, groups):
    edge, qdr = engines
    q = points[123].vectors["photo"]
    g1 = edge.search_groups("cat", q, using="photo", limit=limit, group_size=group_size, flt=FILTERS[flt_name])
    g2 = qdr.search_groups("cat", q, using="photo", limit=limit, group_size=group_size, flt=FILTERS[flt_name])
    assert len(g1) == len(g2) == groups
    assert [g[0].payload["design_id"] for g in g1] == [g[0].payload["design_id"] for g in g2]
    for a, b in zip(g1, g2):
        assert_same_hits(a, b)
        assert len({h.payload["design_id"] for h in a}) == 1
    best = [g[0].score for g in g1]
    assert best == sorted(best, reverse=True)


def test_retrieve_agrees(engines, points):
    edge, qdr = engines
    ids = [points[5].id, str(uuid.uuid4()), points[6].id, points[6].id.upper()]
    r1, r2 = edge.retrieve("cat", ids), qdr.retrieve("cat", ids)
    assert [p.id for p in r1] == [p.id for p in r2] == [points[5].id, points[6].id]
    for a, b, src in zip(r1, r2, (points[5], points[6])):
        assert a.payload == b.payload == src.payload
        assert set(a.vectors) == set(b.vectors) == set(src.vectors)
        for n in a.vectors:
            expected = src.vectors[n] / np.linalg.norm(src.vectors[n])
            np.testing.assert_allclose(a.vectors[n], expected, atol=1e-5)
            np.testing.assert_allclose(b.vectors[n], expected, atol=1e-5)


def test_upsert_replace_delete_alias(tmp_path, points):
    """Mutations on fresh collections: replace by id, delete, alias switch; engines agree.

    QdrantIndex runs on disk here (local mode commits SQLite once per point, ~14 ms each on this
    machine), so the collections are small.
    """
    edge = EdgeIndex(tmp_path / "edge", exact=True, auto_index=False)
    qdr = QdrantIndex(path=str(tmp_path / "local"))
    try:
        for ix in (edge, qdr):
            ix.create_collection("v1", DIMS)
            ix.create_collection("v2", DIMS)
            ix.upsert("v1", points[:120])
            ix.upsert("v2", points[500:560])
            # replace: same id, new payload and vector
            moved = Point(points[0].id, {"photo": points[1].vectors["photo"]}, dict(points[0].payload, year=1900))
            ix.upsert("v1", [moved])
            ix.delete("v1", [points[2].id, points[3].id, str(uuid.uuid4())])
            ix.set_alias("live", "v1")
        for ix in (edge, qdr):
            assert ix.count("v1") == 118
            assert ix.count("live") == 118
            assert ix.count("live", SearchFilter(year_max=1900)) == 1
            assert ix.retrieve("v1", [points[2].id]) == []
            (p0,) = ix.retrieve("v1", [points[0].id])
            assert set(p0.vectors) == {"photo"} and p0.payload["year"] == 1900
            assert ix.resolve_alias("live") == "v1"
            assert ix.list_collections() == ["v1", "v2"]
        q = points[530].vectors["photo"]
        before = [edge.search("live", q, using="photo", limit=5), qdr.search("live", q, using="photo", limit=5)]
        assert_same_hits(*before)
        for ix in (edge, qdr):
            ix.set_alias("live", "v2")  # atomic switch
            assert ix.resolve_alias("live") == "v2"
            assert ix.count("live") == 60
        after = [edge.search("live", q, using="photo", limit=5), qdr.search("live", q, using="photo", limit=5)]
        assert_same_hits(*after)
        assert after[0][0].id == points[530].id
        for ix in (edge, qdr):
            with pytest.raises(NotFound):
                ix.set_alias("x", "no-such")
            with pytest.raises(InvalidArgument):
                ix.set_alias("v1", "v2")  # an alias may not shadow a collection
            ix.delete_collection("v2")
            assert ix.resolve_alias("live") is None
            with pytest.raises(NotFound):
                ix.count("live")
            ix.delete_collection("v2")  # no-op
    finally:
        edge.close()
        qdr.close()


def test_edge_hnsw_recall(tmp_path, points):
    """After an HNSW build (ef=128) Edge's approximate top-10 matches exact search (recall ≥ 0.95)."""
    edge = EdgeIndex(tmp_path, auto_index=False)
    edge.create_collection("c", DIMS, HnswConfig(m=16, ef_construct=100, ef=128, full_scan_threshold=10))
    edge.upsert("c", points)
    edge.optimize("c")
    assert edge.info("c")["indexed_vectors"] > 0
    mat = np.stack([p.vectors["photo"] for p in points])
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    recalls = []
    for i in rng.integers(N, size=30):
        q = points[int(i)].vectors["photo"]
        a = {h.id for h in edge.search("c", q, using="photo", limit=10)}
        b = {points[j].id for j in np.argsort(-(mat @ q))[:10]}
        recalls.append(len(a & b) / 10)
    # a ~35% year filter goes through filtered HNSW (full_scan_threshold is 10 kB here): ACORN
    # keeps the graph navigable, so filtered recall stays high too
    flt = SearchFilter(year_min=2005, year_max=2014)
    keep = np.array([flt.year_min <= p.payload["year"] <= flt.year_max for p in points])
    f_recalls = []
    for i in rng.integers(N, size=30):
        q = points[int(i)].vectors["photo"]
        a = {h.id for h in edge.search("c", q, using="photo", limit=10, flt=flt)}
        s = np.where(keep, mat @ q, -np.inf)
        b = {points[j].id for j in np.argsort(-s)[:10]}
        f_recalls.append(len(a & b) / 10)
    edge.close()
    assert np.mean(recalls) >= 0.95
    assert np.mean(f_recalls) >= 0.95
