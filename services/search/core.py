"""Search-service domain logic (no grpc): request validation over a :class:`VectorIndex`.

Index calls are blocking (embedded engines do real work on the calling thread), so the servicer
runs them in worker threads; this class keeps them small and checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from designsearch.errors import InvalidArgument, NotFound
from designsearch.domain import Hit, Point, SearchFilter, check_collection_name, check_filter, check_view
from designsearch.services.search.index import HnswConfig, VectorIndex


class SearchCore:
    """Validated operations on one vector index.

    Args:
        index: the engine.
        hnsw: HNSW config for new collections.
        max_limit: largest accepted ``limit``.
    """

    def __init__(self, index: VectorIndex, hnsw: HnswConfig | None = None, max_limit: int = 1000) -> None:
        self.index = index
        self.hnsw = hnsw or HnswConfig()
        self.max_limit = max_limit

    def create_collection(self, name: str, vectors: dict[str, int]) -> bool:
        """Create a collection with named vectors ``{name: dim}``; False if it existed.

        Raises:
            InvalidArgument: bad name, no vectors, unknown vector name or dimension out of 1..4096.
        """
        check_collection_name(name)
        if not vectors:
            raise InvalidArgument("a collection needs at least one named vector", field="vectors")
        for vname, dim in vectors.items():
            check_view(vname, "vectors")
            if not 1 <= dim <= 4096:
                raise InvalidArgument(f"vector {vname!r} dimension {dim} outside 1..4096", field="vectors")
        return self.index.create_collection(name, dict(vectors), self.hnsw)

    def upsert(self, collection: str, points: Sequence[Point]) -> int:
        """Insert/replace points; returns how many. Raises InvalidArgument for empty batches."""
        check_collection_name(collection)
        if not points:
            raise InvalidArgument("no points to upsert", field="points")
        for p in points:
            if not p.id:
                raise InvalidArgument("a point has no id", field="points.id")
            if not p.vectors:
                raise InvalidArgument(f"point {p.id} has no vectors", field="points.vectors")
        self.index.upsert(collection, points)
        return len(points)

    def search(
        self, collection: str, vector: np.ndarray, using: str, limit: int, flt: SearchFilter, group_by_design: bool,
        group_size: int = 1,
    ) -> list[Hit]:
        """Top ``limit`` hits (or the best ``group_size`` hits of each of ``limit`` designs, designs ranked by
        their best hit, each design's hits together, best first), cosine similarity.

        Raises:
            InvalidArgument: limit outside 1..max_limit, group_size outside 1..100, empty/non-finite vector,
                reversed years.
            NotFound: unknown collection.
        """
        check_collection_name(collection)
        if not 1 <= limit <= self.max_limit:
            raise InvalidArgument(f"limit {limit} outside 1..{self.max_limit}", field="limit")
        if not 1 <= group_size <= 100:
            raise InvalidArgument(f"group_size {group_size} outside 1..100", field="group_size")
        if vector.size == 0 or not np.all(np.isfinite(vector)):
            raise InvalidArgument("query vector is empty or not finite", field="vector")
        check_view(using, "using")
        check_filter(flt)
        flt_or_none = None if flt.is_empty() else flt
        if group_by_design:
            groups = self.index.search_groups(collection, vector, using=using, limit=limit, group_by="design_id",
                                              group_size=group_size, flt=flt_or_none)
            return [h for g in groups for h in g[:group_size]]
        return self.index.search(collection, vector, using=using, limit=limit, flt=flt_or_none)

    def delete_collection(self, name: str) -> None:
        """Drop a collection (no-op if absent). Raises InvalidArgument for a malformed name."""
        self.index.delete_collection(check_collection_name(name))

    def vector_dims(self, collection: str) -> dict[str, int]:
        """Named vectors ``{name: dim}`` of a collection or alias.

        Raises:
            InvalidArgument: a malformed name. NotFound: unknown collection or alias.
        """
        return self.index.vector_dims(check_collection_name(collection))

    def list_collections(self, aliases: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
        """Collection names, and the collection each of ``aliases`` names (unset aliases left out).

        Raises:
            InvalidArgument: a malformed alias name.
        """
        resolved = {}
        for alias in aliases:
            target = self.index.resolve_alias(check_collection_name(alias, "aliases"))
            if target:
                resolved[alias] = target
        return self.index.list_collections(), resolved

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically. Raises InvalidArgument / NotFound."""
        self.index.set_alias(check_collection_name(alias, "alias"), check_collection_name(collection))

    def get_points(self, collection: str, ids: Sequence[str], max_ids: int = 10_000) -> list[Point]:
        """Points by id with their vectors (unknown ids skipped).

        Raises:
            InvalidArgument: bad name, more than ``max_ids`` ids. NotFound: unknown collection.
        """
        check_collection_name(collection)
        if len(ids) > max_ids:
            raise InvalidArgument(f"{len(ids)} ids; at most {max_ids} per call", field="ids")
        return self.index.retrieve(collection, list(ids))

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids ignored). Raises InvalidArgument / NotFound."""
        self.index.delete(check_collection_name(collection), list(ids))

    def count(self, collection: str, flt: SearchFilter) -> int:
        """Exact number of points matching ``flt``. Raises InvalidArgument / NotFound."""
        check_collection_name(collection)
        return self.index.count(collection, None if check_filter(flt).is_empty() else flt)

    def create_snapshot(self, collection: str, snapshot_dir: str | Path) -> str:
        """Snapshot ``collection`` into the server's ``snapshot_dir``; returns the file path.

        Raises:
            InvalidArgument / NotFound: bad or unknown collection.
        """
        return self.index.create_snapshot(check_collection_name(collection), str(snapshot_dir))

    def restore_snapshot(self, snapshot_dir: str | Path, snapshot: str, collection: str) -> None:
        """Create or replace ``collection`` from the snapshot file ``snapshot`` of ``snapshot_dir``.

        A snapshot is named, never pathed: the name must be a plain file name in the folder.

        Raises:
            InvalidArgument: a name with a path separator, ``..`` or a leading dot; a bad collection.
            NotFound: no such snapshot.
        """
        if not snapshot or "/" in snapshot or "\\" in snapshot or snapshot.startswith(".") or len(snapshot) > 255:
            raise InvalidArgument(f"snapshot {snapshot!r} must be a file name returned by CreateSnapshot",
                                  field="snapshot")
        path = Path(snapshot_dir) / snapshot
        if not path.is_file():
            raise NotFound(f"no snapshot named {snapshot!r}", field="snapshot")
        self.index.restore_snapshot(str(path), check_collection_name(collection))

    def group_centroid(self, collection: str, using: str, flt: SearchFilter,
                       max_points: int = 200_000) -> tuple[np.ndarray, int, float, float]:
        """The mean embedding of a group of points (its "morph") and how its members sit around it.

        Streams the group once (the engine's filtered scroll), accumulating ``S1 = Σ v`` and
        ``S2 = Σ v vᵀ`` of the unit vectors ``v``; with the unit centroid ``c = S1 / |S1|`` the
        members' cosines to it have mean ``|S1| / n`` and second moment ``cᵀ S2 c / n`` (exact, no
        second pass). Typicality = cosine to the group mean, as in the car modernity/typicality
        reference (Mohr et al., 2023, mean feature per body type and year).

        Returns:
            ``(centroid float32 (D,), n, member cosine mean, member cosine std)``.

        Raises:
            InvalidArgument: bad name/view/filter, or the group has more than ``max_points`` points.
            NotFound: unknown collection, or no point matches (empty group).
        """
        check_collection_name(collection)
        check_view(using, "using")
        check_filter(flt)
        s1: np.ndarray | None = None
        s2: np.ndarray | None = None
        n = 0
        for point in self.index.iter_points(collection, None if flt.is_empty() else flt):
            v = point.vectors.get(using)
            if v is None:
                continue
            v = np.asarray(v, dtype=np.float64)
            v = v / (np.linalg.norm(v) or 1.0)
            if s1 is None:
                s1, s2 = np.zeros_like(v), np.zeros((len(v), len(v)))
            s1 += v
            s2 += np.outer(v, v)
            n += 1
            if n > max_points:
                raise InvalidArgument(f"group has more than {max_points} points; narrow the filter", field="filters")
        if n == 0 or s1 is None:
            raise NotFound("no catalogue point matches the group", field="filters")
        norm = float(np.linalg.norm(s1))
        c = s1 / norm if norm > 0 else s1
        mean = norm / n
        var = max(float(c @ s2 @ c) / n - mean * mean, 0.0)
        return c.astype(np.float32), n, mean, var ** 0.5
