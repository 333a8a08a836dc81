"""The vector-index interface of the search service (no grpc): types and the ``VectorIndex`` protocol.

Engines implementing it live beside this file (qdrant-client: server or local mode; the embedded
engine). Semantics shared by every engine:

* distance is cosine: ``score = cosine similarity`` in [-1, 1], higher is closer;
* a collection has named vectors (the views of :data:`designsearch.domain.VIEWS`), each with its
  own dimension;
* a point (:class:`designsearch.domain.Point`) has a string id (a UUID), one vector per name (a
  name may be missing), and a payload (see :mod:`designsearch.domain`);
* filters (:class:`SearchFilter`) apply to the payload before ranking (no post-filtering loss);
* an alias names a collection, so a new collection can go live atomically (model upgrades).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from designsearch.domain import Hit, Point, SearchFilter

__all__ = ["Hit", "HnswConfig", "Point", "SearchFilter", "VectorIndex"]


@dataclass(frozen=True)
class HnswConfig:
    """HNSW graph and quantisation parameters (Malkov & Yashunin, TPAMI 2018).

    Attributes:
        m: edges per node.
        ef_construct: candidate list size while building.
        ef: candidate list size while searching (recall/latency trade-off).
        quantization: ``None`` or ``"int8"`` (scalar quantisation of stored vectors).
        full_scan_threshold: below this many vectors (kilobytes in Qdrant terms) search is exact.
    """

    m: int = 16
    ef_construct: int = 128
    ef: int = 128
    quantization: str | None = None
    full_scan_threshold: int = 10_000


class VectorIndex(Protocol):
    """A vector index with collections, named vectors, payload filters, aliases and snapshots.

    Every method raises :class:`designsearch.errors.NotFound` for an unknown collection or alias,
    :class:`designsearch.errors.InvalidArgument` for a wrong vector name or dimension, and
    :class:`designsearch.errors.BackendUnavailable` when the engine cannot be reached.
    ``collection`` arguments accept an alias wherever a collection name is accepted.
    """

    def create_collection(self, name: str, vectors: dict[str, int], hnsw: HnswConfig | None = None) -> bool:
        """Create ``name`` with named vectors ``{name: dim}``; returns False if it already existed."""
        ...

    def delete_collection(self, name: str) -> None:
        """Drop a collection and its data (no-op if absent)."""
        ...

    def list_collections(self) -> list[str]:
        """Names of existing collections (not aliases)."""
        ...

    def vector_dims(self, collection: str) -> dict[str, int]:
        """Named vectors ``{name: dim}`` of a collection or alias."""
        ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically (create or switch)."""
        ...

    def resolve_alias(self, alias: str) -> str | None:
        """Collection an alias points to, or None."""
        ...

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Insert or replace points by id."""
        ...

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids are ignored)."""
        ...

    def count(self, collection: str, flt: SearchFilter | None = None) -> int:
        """Exact number of points matching ``flt``."""
        ...

    def retrieve(self, collection: str, ids: Sequence[str]) -> list[Point]:
        """Points with these ids (missing ids are skipped), vectors included."""
        ...

    def search(
        self, collection: str, vector: np.ndarray, *, using: str, limit: int, flt: SearchFilter | None = None
    ) -> list[Hit]:
        """Top ``limit`` points by cosine similarity of vector ``using`` to ``vector`` (float32 ``(D,)``)."""
        ...

    def search_groups(
        self,
        collection: str,
        vector: np.ndarray,
        *,
        using: str,
        limit: int,
        group_by: str = "design_id",
        group_size: int = 1,
        flt: SearchFilter | None = None,
    ) -> list[list[Hit]]:
        """Top ``limit`` groups (distinct payload ``group_by`` values), best ``group_size`` hits each,
        groups ordered by their best score."""
        ...

    def iter_points(self, collection: str, flt: SearchFilter | None = None, batch: int = 1024) -> Iterator[Point]:
        """Every point matching ``flt`` (all when None), vectors included, in engine order."""
        ...

    def create_snapshot(self, collection: str, target_dir: str) -> str:
        """Write a snapshot of ``collection`` into ``target_dir``; returns the snapshot file path."""
        ...

    def restore_snapshot(self, snapshot_path: str, collection: str) -> None:
        """Create (or replace) ``collection`` from a snapshot file."""
        ...

    def close(self) -> None:
        """Flush and release files/connections."""
        ...
