"""Engine tests: persistence, snapshots, errors, concurrency, background indexing, the factory."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from designsearch.errors import InvalidArgument, NotFound
from designsearch.services.search.engines.edge import EdgeIndex
from designsearch.services.search.engines import open_index
from designsearch.services.search.index import HnswConfig, Point, SearchFilter
from designsearch.services.search.engines.qdrant import QdrantIndex
from tests.engines.test_search_congruence import DIMS, make_points


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return make_points(1200, seed=3)


def _edge(path, **kw) -> EdgeIndex:
    return EdgeIndex(path, **{"exact": True, "auto_index": False, **kw})


def _open(kind: str, path) -> EdgeIndex | QdrantIndex:
    return _edge(path) if kind == "edge" else QdrantIndex(path=str(path))


def _snapshot_of_query(ix, coll, q):
    return [(h.id, round(h.score, 6), h.payload) for h in ix.search(coll, q, using="photo", limit=10)]


@pytest.mark.parametrize("kind,n", [("edge", 1200), ("local", 60)])
def test_persistence_across_reopen(tmp_path, points, kind, n):
    ix = _open(kind, tmp_path)
    ix.create_collection("c", DIMS)
    ix.upsert("c", points[:n])
    ix.delete("c", [points[0].id])
    ix.set_alias("live", "c")
    q = points[10].vectors["photo"]
    flt = SearchFilter(year_min=2000)
    before = (ix.count("c"), ix.count("c", flt), _snapshot_of_query(ix, "c", q))
    ix.close()
    ix = _open(kind, tmp_path)
    try:
        after = (ix.count("c"), ix.count("c", flt), _snapshot_of_query(ix, "c", q))
        assert after == before
        assert before[0] == n - 1
        assert ix.resolve_alias("live") == "c"
        assert ix.count("live") == n - 1
        assert ix.list_collections() == ["c"]
    finally:
        ix.close()


def test_edge_reopen_after_hnsw_build(tmp_path, points):
    ix = EdgeIndex(tmp_path, auto_index=False)
    ix.create_collection("c", DIMS, HnswConfig(m=8, ef_construct=64, ef=64, full_scan_threshold=10))
    ix.upsert("c", points)
    ix.optimize("c")
    assert ix.info("c")["indexed_vectors"] > 0
    q = points[33].vectors["photo"]
    before = _snapshot_of_query(ix, "c", q)
    ix.close()
    ix = EdgeIndex(tmp_path, auto_index=False)
    try:
        assert _snapshot_of_query(ix, "c", q) == before
        assert ix.info("c")["indexed_vectors"] > 0
    finally:
        ix.close()


@pytest.mark.parametrize("kind,n", [("edge", 1200), ("local", 60)])
def test_snapshot_restore_into_other_directory(tmp_path, points, kind, n):
    src = _open(kind, tmp_path / "a")
    src.create_collection("c", DIMS)
    src.upsert("c", points[:n])
    snap = src.create_snapshot("c", str(tmp_path / "snaps"))
    src.upsert("c", points[n : n + 5] if kind == "local" else points[:5])  # after the snapshot
    q = points[7].vectors["photo"]
    dst = _open(kind, tmp_path / "b")
    try:
        dst.restore_snapshot(snap, "restored")
        assert dst.count("restored") == n
        assert _snapshot_of_query(dst, "restored", q)[:10] == _snapshot_of_query(src, "c", q)[:10]
        # restoring over an existing collection replaces it
        dst.restore_snapshot(snap, "restored")
        assert dst.count("restored") == n
        with pytest.raises(NotFound):
            dst.restore_snapshot(str(tmp_path / "missing.tar"), "x")
    finally:
        src.close()
        dst.close()


def test_portable_snapshot_moves_between_engines(tmp_path, points):
    """A QdrantIndex (local mode) snapshot restores into EdgeIndex and answers identically."""
    src = QdrantIndex(":memory:")
    src.create_collection("c", DIMS)
    src.upsert("c", points)
    snap = src.create_snapshot("c", str(tmp_path))
    dst = _edge(tmp_path / "edge")
    try:
        dst.restore_snapshot(snap, "c")
        assert dst.count("c") == len(points)
        q = points[100].vectors["lines"]
        a = [(h.id, round(h.score, 4)) for h in src.search("c", q, using="lines", limit=10)]
        b = [(h.id, round(h.score, 4)) for h in dst.search("c", q, using="lines", limit=10)]
        assert a == b
    finally:
        src.close()
        dst.close()


@pytest.mark.parametrize("kind", ["edge", "memory"])
def test_errors(tmp_path, points, kind):
    ix = _edge(tmp_path) if kind == "edge" else QdrantIndex(":memory:")
    try:
        ix.create_collection("c", DIMS)
        ix.upsert("c", points[:50])
        good = points[0].vectors["photo"]
        with pytest.raises(InvalidArgument):
            ix.search("c", np.ones(DIMS["photo"] + 1, np.float32), using="photo", limit=5)
        with pytest.raises(InvalidArgument):
            ix.search("c", good, using="sketch", limit=5)
        with pytest.raises(InvalidArgument):
            ix.search("c", np.zeros(DIMS["photo"], np.float32), using="photo", limit=5)
        with pytest.raises(InvalidArgument):
            ix.search("c", good, using="photo", limit=0)
        with pytest.raises(InvalidArgument):
            ix.upsert("c", [Point(str(uuid.uuid4()), {"photo": np.ones(3)}, {})])
        with pytest.raises(InvalidArgument):
            ix.upsert("c", [Point(str(uuid.uuid4()), {"sketch": good}, {})])
        with pytest.raises(InvalidArgument):
            ix.upsert("c", [Point("not-a-uuid", {"photo": good}, {})])
        with pytest.raises(InvalidArgument):
            ix.create_collection("bad", {"photo": 0})
        for call in (
            lambda: ix.search("nope", good, using="photo", limit=5),
            lambda: ix.search_groups("nope", good, using="photo", limit=5),
            lambda: ix.count("nope"),
            lambda: ix.upsert("nope", points[:1]),
            lambda: ix.retrieve("nope", [points[0].id]),
            lambda: ix.delete("nope", [points[0].id]),
            lambda: ix.create_snapshot("nope", str(tmp_path / "s")),
        ):
            with pytest.raises(NotFound):
                call()
        assert ix.vector_dims("c") == DIMS
        with pytest.raises(NotFound):
            ix.vector_dims("nope")
        assert ix.count("c") == 50  # nothing above damaged the data
    finally:
        ix.close()


@pytest.mark.parametrize("kind", ["edge", "memory"])
def test_concurrent_upserts_while_querying(tmp_path, points, kind):
    """Writers and readers in threads: no errors, and every query finds hits."""
    if kind == "edge":
        # background HNSW builds are triggered by the writes, so the shard is swapped mid-test
        ix = EdgeIndex(tmp_path, auto_index=True, auto_index_min=300)
        ix.create_collection("c", DIMS, HnswConfig(m=8, ef_construct=32, ef=64, full_scan_threshold=10))
    else:
        ix = QdrantIndex(":memory:")
        ix.create_collection("c", DIMS)
    ix.upsert("c", points[:200])
    errors: list[BaseException] = []
    empties: list[int] = []
    stop = threading.Event()

    def writer(part: list[Point]) -> None:
        try:
            for i in range(0, len(part), 50):
                ix.upsert("c", part[i : i + 50])
                time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = points[int(rng.integers(200))].vectors["photo"]
                hits = ix.search("c", q, using="photo", limit=5)
                if len(hits) != 5:
                    empties.append(len(hits))
                groups = ix.search_groups("c", q, using="photo", limit=3, flt=SearchFilter(year_min=1990))
                if not groups:
                    empties.append(0)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    rest = points[200:900]
    writers = [threading.Thread(target=writer, args=(rest[i::2],)) for i in range(2)]
    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    if kind == "edge":
        ix.wait_for_builds(60)
    stop.set()
    for t in readers:
        t.join()
    try:
        assert not errors, errors[:3]
        assert not empties
        assert ix.count("c") == 900
        if kind == "edge":
            info = ix.info("c")
            assert info["generation"] >= 1 and info["build_error"] is None
    finally:
        ix.close()


def test_edge_background_build_keeps_answering(tmp_path, points):
    """build_index(wait=False) optimises off-process: queries and writes go on, data survive."""
    ix = EdgeIndex(tmp_path, auto_index=False)
    ix.create_collection("c", DIMS, HnswConfig(m=16, ef_construct=100, ef=128, full_scan_threshold=10))
    ix.upsert("c", points[:1000])
    q = points[5].vectors["photo"]
    ix.build_index("c", wait=False)
    answered = 0
    late = points[1000:1100]
    ix.upsert("c", late)  # written during the build: replayed into the new generation
    ix.delete("c", [points[1].id])
    while ix.info("c")["building"]:
        assert ix.search("c", q, using="photo", limit=1)[0].id == points[5].id
        answered += 1
    ix.wait_for_builds()
    info = ix.info("c")
    try:
        assert info["build_error"] is None and info["generation"] == 1
        assert info["indexed_vectors"] > 0
        assert answered > 0
        assert ix.count("c") == 1099
        assert len(ix.retrieve("c", [p.id for p in late])) == 100
        assert ix.retrieve("c", [points[1].id]) == []
        assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["collection.json", "gen-1"]
    finally:
        ix.close()
    ix = EdgeIndex(tmp_path, auto_index=False)  # the new generation is what reopens
    try:
        assert ix.count("c") == 1099 and ix.info("c")["generation"] == 1
    finally:
        ix.close()


def test_open_index_factory(tmp_path):
    hnsw = HnswConfig()
    edge = open_index(None, str(tmp_path / "e"), "edge", hnsw)
    local = open_index(None, str(tmp_path / "l"), "local", hnsw)
    try:
        assert isinstance(edge, EdgeIndex) and isinstance(local, QdrantIndex) and local.local
        assert edge.create_collection("c", {"photo": 4}) and local.create_collection("c", {"photo": 4})
    finally:
        edge.close()
        local.close()
    with pytest.raises(InvalidArgument):
        open_index(None, str(tmp_path), "qdrant", hnsw)
    with pytest.raises(InvalidArgument):
        open_index(None, str(tmp_path), "faiss", hnsw)


def test_unreachable_server_is_backend_unavailable():
    """A Qdrant server that cannot be reached maps to BackendUnavailable (retryable), not a crash."""
    from designsearch.errors import BackendUnavailable

    ix = QdrantIndex("http://127.0.0.1:9", grpc_port=9, timeout=2)
    try:
        with pytest.raises(BackendUnavailable):
            ix.list_collections()
        with pytest.raises(BackendUnavailable):
            ix.count("c")
    finally:
        ix.close()


def test_edge_survives_a_crash_without_close(tmp_path):
    """Upserts are WAL-logged: a process killed without close() loses nothing it acknowledged."""
    import subprocess
    import sys

    code = (
        "import os, sys, numpy as np\n"
        "from designsearch.services.search.engines.edge import EdgeIndex\n"
        "from tests.engines.test_search_congruence import DIMS, make_points\n"
        "ix = EdgeIndex(sys.argv[1], auto_index=False)\n"
        "ix.create_collection('c', DIMS)\n"
        "ix.upsert('c', make_points(300, seed=9))\n"
        "ix.delete('c', [make_points(300, seed=9)[0].id])\n"
        "os._exit(0)\n"
    )
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=repo, timeout=120)
    ix = _edge(tmp_path)
    try:
        assert ix.count("c") == 299
        p = make_points(300, seed=9)[5]
        assert ix.search("c", p.vectors["photo"], using="photo", limit=1)[0].id == p.id
    finally:
        ix.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_group_centroid_matches_numpy(tmp_path, points, kind):
    """The streamed group mean (S1, S2 moments over a filtered scroll) equals the direct computation."""
    from designsearch.errors import NotFound
    from designsearch.services.search.core import SearchCore

    ix = _open(kind, tmp_path / kind)
    try:
        ix.create_collection("c", DIMS)
        subset = points[:300]
        ix.upsert("c", subset)
        flt = SearchFilter(year_min=2005, year_max=2012)
        c, n, mean, std = SearchCore(ix).group_centroid("c", "photo", flt)
        members = [p for p in subset if 2005 <= p.payload["year"] <= 2012 and "photo" in p.vectors]
        v = np.stack([p.vectors["photo"] / np.linalg.norm(p.vectors["photo"]) for p in members]).astype(np.float64)
        ref = v.sum(0) / np.linalg.norm(v.sum(0))
        cos = v @ ref
        assert n == len(members) > 10
        assert np.allclose(c, ref, atol=1e-5) and mean == pytest.approx(cos.mean(), abs=1e-6)
        assert std == pytest.approx(cos.std(), abs=1e-5)
        with pytest.raises(NotFound):
            SearchCore(ix).group_centroid("c", "photo", SearchFilter(brands=("no-such-brand",)))
    finally:
        ix.close()


@pytest.mark.parametrize("kind", ["edge", "memory"])
def test_groups_of_several_hits_keep_the_design_order(tmp_path, points, kind):
    """search_groups with group_size > 1 (the gateway's top-m design score): the same designs in the same order
    as with one hit each, each group's first hit that one, at most group_size hits per group, best first."""
    ix = _edge(tmp_path) if kind == "edge" else QdrantIndex(":memory:")
    try:
        ix.create_collection("c", DIMS)
        ix.upsert("c", points[:600])
        for q in (points[5].vectors["photo"], points[321].vectors["photo"]):
            one = ix.search_groups("c", q, using="photo", limit=6, group_by="design_id", group_size=1)
            three = ix.search_groups("c", q, using="photo", limit=6, group_by="design_id", group_size=3)
            assert [g[0].id for g in three] == [g[0].id for g in one]
            for g in three:
                assert 1 <= len(g) <= 3 and len({h.payload["design_id"] for h in g}) == 1
                assert [h.score for h in g] == sorted((h.score for h in g), reverse=True)
            assert any(len(g) == 3 for g in three)
    finally:
        ix.close()


def _brute_force_groups(points: list[Point], q: np.ndarray, limit: int, group_size: int) -> list[list[str]]:
    """Exact groups: designs ranked by their best cosine, each with its group_size best point ids."""
    qn = q / np.linalg.norm(q)
    by_design: dict[str, list[tuple[float, str]]] = {}
    for p in points:
        v = p.vectors["photo"]
        by_design.setdefault(p.payload["design_id"], []).append((float(v @ qn / np.linalg.norm(v)), p.id))
    ranked = sorted(by_design.values(), key=lambda hs: -max(hs)[0])[:limit]
    return [[i for _, i in sorted(hs, reverse=True)[:group_size]] for hs in ranked]


@pytest.mark.parametrize("kind", ["edge", "memory"])
def test_groups_fill_beyond_the_first_page(tmp_path, kind):
    """A design crowding the first page (100 near-copies of the query) leaves the next designs with one or two
    hits in it; their groups still get their group_size best points (the brute-force groups), also under a filter."""
    rng = np.random.default_rng(7)
    d = DIMS["photo"]
    q = rng.normal(size=d).astype(np.float32)
    q /= np.linalg.norm(q)

    def near(scale: float) -> np.ndarray:
        return (q + rng.normal(scale=scale / np.sqrt(d), size=d)).astype(np.float32)

    specs = [("crowd", 100, 0.1, 0)] + [(f"d{j}", 2, 0.5 + 0.05 * j, 10) for j in range(6)] + [("far", 30, 3.0, 0)]
    points = []
    for name, n_close, scale, n_far in specs:
        for i in range(n_close + n_far):
            v = near(scale) if i < n_close else rng.normal(size=d).astype(np.float32)
            points.append(Point(id=str(uuid.UUID(int=len(points) + 1)), vectors={"photo": v},
                                payload={"design_id": name, "brand": "audi" if i % 2 == 0 else "kia", "kind": "wheel",
                                         "year": 2000, "model": "m", "model_version": "t"}))
    ix = _edge(tmp_path) if kind == "edge" else QdrantIndex(":memory:")
    try:
        ix.create_collection("c", DIMS)
        ix.upsert("c", points)
        groups = ix.search_groups("c", q, using="photo", limit=6, group_by="design_id", group_size=5)
        assert [[h.id for h in g] for g in groups] == _brute_force_groups(points, q, 6, 5)
        assert all(len(g) == 5 for g in groups)
        audi = [p for p in points if p.payload["brand"] == "audi"]
        groups = ix.search_groups("c", q, using="photo", limit=6, group_by="design_id", group_size=5,
                                  flt=SearchFilter(brands=("audi",)))
        assert [[h.id for h in g] for g in groups] == _brute_force_groups(audi, q, 6, 5)
        assert all(h.payload["brand"] == "audi" for g in groups for h in g)
    finally:
        ix.close()
